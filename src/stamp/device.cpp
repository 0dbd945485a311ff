#include "imprint/stamp/device.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "imprint/core/device_view.hpp"
#include "imprint/edit/edit.hpp"
#include "imprint/credentials/elf.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/credentials/identity.hpp"
#include "imprint/image/pathmap.hpp"

namespace imprint {

namespace {

constexpr const char* kDefaultPfxPassword = "1234";  // hard-coded in the reference DPS client

// Where a plan target lands, before an image is known: mender-convert's mount points.
RolePath place_target(const PathSpec& target) { return place_path(PathSpec{target.role, normalize_path(target.path)}); }

bool is_identity_script(const RolePath& placed) {
  const bool rootfs = placed.role == "primary" || placed.role == "secondary" || placed.role == "rootfs";
  return rootfs && placed.path == kMenderIdentityScript;
}

class CredentialSource {
 public:
  CredentialSource(const Profile& profile, const Variables& variables) : profile_(profile), variables_(variables) {}

  std::optional<DeviceCredentials> load(const std::string& device_id) const {
    if (!profile_.credentials) return std::nullopt;
    const CredentialsSpec& spec = *profile_.credentials;
    try {
      if (spec.generate) {
        const GenerateSpec& generate = *spec.generate;
        return DeviceCredentials::generate(path(generate.ca_cert), path(generate.ca_key), expand(generate.ca_key_password),
                                           device_id, generate.key_type, generate.days);
      }
      CredentialInputs inputs;
      inputs.key = path(spec.key);
      inputs.key_password = expand(spec.key_password);
      inputs.cert = path(spec.cert);
      inputs.chain = path(spec.chain);
      inputs.pfx = path(spec.pfx);
      if (!spec.pfx.empty()) inputs.pfx_password = pfx_password();
      return DeviceCredentials::load(inputs);
    } catch (const Error& error) {
      throw Error(spec.where.str() + ": " + error.what(), error.code());
    }
  }

  // The password the device's DPS client opens the PFX with.
  std::string pfx_password() const {
    // The default template names a variable that profiles without a PFX need not define.
    if (!profile_.credentials || (profile_.credentials->pfx_password == "{{pfx_password}}" && !variables_.count("pfx_password"))) {
      return kDefaultPfxPassword;
    }
    return expand(profile_.credentials->pfx_password);
  }

  std::string bytes(const DeviceCredentials* credentials, const std::string& name, const std::string& format) const {
    if (credentials == nullptr) throw Error("from: credentials." + name + " needs a credentials: section", ErrorCode::Invalid);
    if (name == "key") return credentials->key_pem(format.empty() ? KeyFormat::Pkcs1 : parse_key_format(format));
    if (name == "cert") return credentials->cert_pem();
    if (name == "chain") return credentials->chain_pem();
    if (name == "fullchain") return credentials->fullchain_pem();
    if (name == "pfx") {
      if (credentials->loaded_pfx()) return *credentials->loaded_pfx();
      return credentials->pfx(pfx_password(), parse_pfx_encryption(profile_.credentials->pfx_encryption));
    }
    throw Error("unknown credential '" + name + "'", ErrorCode::Invalid);
  }

 private:
  std::string expand(const std::string& text) const {
    return expand_template(text, variables_, profile_.credentials->where.str());
  }
  std::string path(const std::string& text) const {
    return text.empty() ? "" : resolve_host_path(profile_, text, expand(text));
  }

  const Profile& profile_;
  const Variables& variables_;
};

// A PFX built here (not loaded from a file) has a random salt: verify compares it by meaning, not
// bytes. build_plan has set op.credential on every op that carries a credential.
void mark_built_pfx(const DevicePlan& device, Plan& plan) {
  const bool built = device.credentials && !device.credentials->loaded_pfx();
  for (PlanOp& op : plan.ops) {
    if (op.credential == "pfx") op.reproducible = !built;
  }
}

// The identity script and data-partition files the plan writes: what running the script needs.
void add_plan_files(const Plan& plan, CheckContext& context) {
  for (const PlanOp& op : plan.ops) {
    if (op.kind != OpKind::File) continue;
    const RolePath placed = place_target(op.target);
    if (is_identity_script(placed)) context.identity_script = op.bytes;
    if (placed.role == "data") context.data_files[placed.path] = op.bytes;
  }
}

// The Mender client executes the identity script directly: without "#!" (or an ELF header) it fails
// with "exec format error" and the device never authorizes, whatever the profile's checks list says.
// The same holds for inline content given an execute bit. Checked on the expanded bytes.
void require_runnable(const Plan& plan) {
  for (const PlanOp& op : plan.ops) {
    if (op.kind != OpKind::File || starts_like_an_executable(op.bytes)) continue;
    const bool identity = is_identity_script(place_target(op.target));
    const bool inline_executable = op.inline_content && (op.mode & 0111) != 0;
    if (!identity && !inline_executable) continue;
    throw Error(op.origin + ": " + op.target.path + " does not start with #! (or an ELF header): the device " +
                    (identity ? "(the Mender client) " : "") + "would fail to run it with 'exec format error'; start it with a line such as #!/bin/sh",
                ErrorCode::CheckFailed);
  }
}

CheckContext check_context(const DevicePlan& device, const CredentialSource& source) {
  CheckContext context;
  context.device_id = device.plan.device_id;
  context.credentials = device.credentials ? &*device.credentials : nullptr;
  context.pfx_password = source.pfx_password();
  add_plan_files(device.plan, context);
  for (const PlanOp& op : device.plan.ops) {
    if (op.kind == OpKind::File && op.credential == "pfx") context.pfx = op.bytes;
  }
  if (!context.pfx && context.credentials && context.credentials->loaded_pfx()) context.pfx = context.credentials->loaded_pfx();
  return context;
}

// Where path leads in the filesystem, following symlinks inside it the way the device's loader
// would (library directories are often links: /lib -> usr/lib, libc.so.6 -> libc-2.31.so); nullopt
// when nothing is there (or a link loops or climbs out of the root).
std::optional<std::string> resolve_following_links(Filesystem& filesystem, std::string path) {
  for (int hops = 0; hops < 40; ++hops) {
    std::string resolved;
    bool restarted = false;
    std::size_t start = 1;
    while (start <= path.size()) {
      const std::size_t end = std::min(path.find('/', start), path.size());
      const std::string candidate = resolved + "/" + path.substr(start, end - start);
      const auto stat = filesystem.stat(candidate);
      if (!stat) return std::nullopt;
      if (stat->type == FileType::Symlink) {
        const std::string& target = stat->link_target;
        const std::string base = target.front() == '/' ? target : (resolved.empty() ? "/" : resolved) + "/" + target;
        try {
          path = normalize_path(base + path.substr(end));
        } catch (const Error&) {
          return std::nullopt;
        }
        restarted = true;
        break;
      }
      resolved = candidate;
      start = end + 1;
    }
    if (!restarted) return resolved.empty() ? "/" : resolved;
  }
  return std::nullopt;  // a symlink loop
}

// PRETTY_NAME from the root filesystem's /etc/os-release (or /usr/lib/os-release), "" when unknown.
std::string os_name(Filesystem& filesystem) {
  for (const char* candidate : {"/etc/os-release", "/usr/lib/os-release"}) {
    const auto path = resolve_following_links(filesystem, candidate);
    if (!path) continue;
    try {
      std::istringstream lines(read_all(filesystem, *path));
      for (std::string line; std::getline(lines, line);) {
        if (!line.starts_with("PRETTY_NAME=")) continue;
        std::string value = line.substr(12);
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'')) value = value.substr(1, value.size() - 2);
        return value;
      }
    } catch (const Error&) {
    }
  }
  return "";
}

}  // namespace

// Device ids name output files (DIR/<id>.img): nothing that could leave the directory.
void require_safe_device_id(const std::string& device_id) {
  const bool has_bad_character = std::any_of(device_id.begin(), device_id.end(), [](char c) {
    return c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  if (device_id.empty() || device_id == "." || device_id == ".." || has_bad_character) {
    throw Error("device id '" + device_id + "' cannot name a file (no '/', control characters, '.' or '..')",
                ErrorCode::Invalid);
  }
}

namespace {

// A source: file is limited by the partition it goes to (the plan, built before the image was open,
// only guarded memory): refused before anything is written, naming the file and the partition.
void check_source_fits(const PlanOp& op, const Partition& partition) {
  if (op.source.empty() || op.bytes.size() <= partition.size) return;
  throw Error(op.origin + ": source " + op.source + " is " + std::to_string(op.bytes.size()) + " bytes, larger than " +
                  partition_name(partition) + " (" + std::to_string(partition.size) + " bytes), where " +
                  op.target.path + " goes",
              ErrorCode::Invalid);
}

// The profile's checks; the first failure in the profile's order is the one reported. The identity
// script's check spends its time waiting for its sandbox (two processes, ~10 ms), so it runs on a
// second thread while the others run on this one (the sandbox prepares everything before it forks:
// nothing the other thread holds is needed in the child).
void run_checks(const std::vector<CheckSpec>& checks, const CheckContext& context) {
  std::vector<std::future<void>> results;
  for (const CheckSpec& check : checks) {
    const auto policy = check.name == "identity-prints-device-id" ? std::launch::async : std::launch::deferred;
    results.push_back(std::async(policy, [&check, &context] { run_check(check.name, check.argument, context); }));
  }
  for (std::future<void>& result : results) result.get();  // an async one still running is waited for
}

}  // namespace

DevicePlan prepare_device(const Profile& profile, const std::string& device_id, const Variables& overrides) {
  require_safe_device_id(device_id);
  DevicePlan device;
  device.variables = device_variables(profile, overrides, device_id);
  require_variables(profile, device.variables);  // every missing one at once, before any is looked up
  const CredentialSource source(profile, device.variables);
  device.credentials = source.load(device_id);
  device.pfx_password = source.pfx_password();
  const DeviceCredentials* credentials = device.credentials ? &*device.credentials : nullptr;
  device.plan = build_plan(profile, device.variables, [&](const std::string& name, const std::string& format) {
    return source.bytes(credentials, name, format);
  });
  mark_built_pfx(device, device.plan);
  require_runnable(device.plan);
  const CheckContext context = check_context(device, source);
  run_checks(profile.checks, context);
  return device;
}

void check_plan_against_image(ImageView& image, const Plan& plan) {
  // Files the plan itself puts there (a library shipped beside the client) count as present.
  std::map<std::pair<int, std::string>, const PlanOp*> planned;
  for (const PlanOp& op : plan.ops) {
    // Before any check below opens a filesystem (a vfat boot partition starts the appliance).
    if (op.kind == OpKind::Remove) continue;
    const FileType type = op.kind == OpKind::File ? FileType::Regular : op.kind == OpKind::Directory ? FileType::Directory : FileType::Symlink;
    try {
      require_representable(image, op.target, type, op.mode, op.owner);
    } catch (const Error& error) {
      throw Error(op.origin + ": " + error.what(), error.code());
    }
  }
  for (const PlanOp& op : plan.ops) {
    if (op.kind != OpKind::File && op.kind != OpKind::Symlink) continue;
    for (const Location& location : resolve(op.target, image)) {
      planned[{location.partition, location.path}] = &op;
      check_source_fits(op, image.partition_number(location.partition));
    }
  }
  for (const PlanOp& op : plan.ops) {
    if (op.kind != OpKind::File || op.elf_arch.empty()) continue;
    for_each_location(image, op.target, [&](Filesystem& filesystem, const Location& location) {
      const bool is_rootfs = location.role == Role::Primary || location.role == Role::Secondary;
      RootFilesystem root;
      root.exists = [&](const std::string& path) {
        if (!is_rootfs) return true;  // only a root filesystem has libraries to look for
        return planned.count({location.partition, path}) > 0 || resolve_following_links(filesystem, path).has_value();
      };
      root.read = [&](const std::string& path) -> std::optional<std::string> {
        if (!is_rootfs) return std::nullopt;
        if (const auto found = planned.find({location.partition, path}); found != planned.end()) {
          return found->second->kind == OpKind::File ? std::optional<std::string>(found->second->bytes) : std::nullopt;
        }
        const auto resolved = resolve_following_links(filesystem, path);
        if (!resolved) return std::nullopt;
        return read_all(filesystem, *resolved);
      };
      if (is_rootfs) root.os_name = os_name(filesystem);
      check_elf(op.bytes, op.elf_arch, root, op.origin + ": " + location.path);
    });
  }
}

std::optional<DeviceExports> device_exports(const DevicePlan& device) {
  if (!device.credentials) return std::nullopt;
  const DeviceCredentials& credentials = *device.credentials;
  DeviceExports exports;
  exports.device_id = device.plan.device_id;
  IdentityAttributes identity{{"DeviceId", {device.plan.device_id}}};
  CheckContext context;
  add_plan_files(device.plan, context);
  if (context.identity_script) identity = parse_identity_output(run_identity_script(*context.identity_script, context.data_files));
  exports.identity_json = identity_json(identity);
  exports.public_key_pem = credentials.public_key_pem();
  exports.preauth_json = preauth_json(identity, exports.public_key_pem);
  if (credentials.has_cert()) {
    exports.sha1_thumbprint = credentials.sha1_thumbprint();
    exports.sha256_thumbprint = credentials.sha256_thumbprint();
    exports.enrollment_json = dps_enrollment_json(credentials);
  }
  return exports;
}

std::vector<PendingFile> stage_exports(const std::string& directory, const DeviceExports& exports) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error || !std::filesystem::is_directory(directory)) {
    throw Error("--emit " + directory + ": cannot make it a directory" + (error ? ": " + error.message() : ""), ErrorCode::Invalid);
  }
  const std::string base = directory + "/" + exports.device_id;
  std::vector<std::pair<std::string, std::string>> files{{base + ".pub.pem", exports.public_key_pem},
                                                         {base + ".preauth.json", exports.preauth_json + "\n"}};
  if (!exports.enrollment_json.empty()) files.emplace_back(base + ".enrollment.json", exports.enrollment_json + "\n");
  if (!exports.sha1_thumbprint.empty()) {
    files.emplace_back(base + ".thumbprints.txt", "sha1 " + exports.sha1_thumbprint + "\nsha256 " + exports.sha256_thumbprint + "\n");
  }
  std::vector<PendingFile> pending;
  for (const auto& [path, bytes] : files) {
    struct stat info {};
    // A directory under a final name would make its rename fail after the image was committed.
    if (::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
      throw Error("--emit: " + path + " is a directory", ErrorCode::IsDirectory);
    }
    pending.emplace_back(path);
    write_all(pending.back().fd(), bytes, path);
    if (::fchmod(pending.back().fd(), 0644) != 0) throw_errno("cannot set the mode of " + path);
  }
  return pending;
}

}  // namespace imprint
