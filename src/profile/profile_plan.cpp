// From a loaded profile to one device's Plan: variables, template expansion, source files and
// credentials, and the final duplicate check on the expanded paths.
#include <algorithm>
#include <filesystem>
#include <set>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/profile/profile.hpp"
#include "imprint/core/pathspec.hpp"
#include "targets.hpp"

namespace imprint {

namespace {

using profile_detail::TargetRegistry;

std::string label_of(const char* section, std::size_t index) {
  return std::string(section) + "[" + std::to_string(index) + "]";
}


bool pfx_is_used(const Profile& profile) {
  if (!profile.credentials) return false;
  if (!profile.credentials->pfx.empty()) return true;
  for (const FileSpec& file : profile.files) {
    if (file.kind == ContentKind::Credential && file.value == "pfx") return true;
  }
  for (const CheckSpec& check : profile.checks) {
    if (check.name == "pfx-opens") return true;
  }
  return false;
}

class PlanBuilder {
 public:
  PlanBuilder(const Profile& profile, const Variables& variables, const CredentialBytes& credentials)
      : profile_(profile), variables_(variables), credentials_(credentials) {}

  Plan build() {
    Plan plan;
    if (const auto id = variables_.find("device_id"); id != variables_.end()) plan.device_id = id->second;
    for (std::size_t i = 0; i < profile_.directories.size(); ++i) plan.ops.push_back(directory(profile_.directories[i], label_of("directories", i)));
    for (std::size_t i = 0; i < profile_.files.size(); ++i) plan.ops.push_back(file(profile_.files[i], label_of("files", i)));
    for (std::size_t i = 0; i < profile_.symlinks.size(); ++i) plan.ops.push_back(symlink(profile_.symlinks[i], label_of("symlinks", i)));
    for (std::size_t i = 0; i < profile_.removes.size(); ++i) plan.ops.push_back(remove(profile_.removes[i], label_of("remove", i)));
    return plan;
  }

 private:
  const Profile& profile_;
  const Variables& variables_;
  const CredentialBytes& credentials_;
  TargetRegistry targets_;

  [[noreturn]] static void fail(const SourcePosition& where, const std::string& label, const std::string& message) {
    throw Error(where.str() + ": " + label + ": " + message, ErrorCode::Invalid);
  }

  std::string expand(const std::string& text, const SourcePosition& where, const std::string& what) const {
    return expand_template(text, variables_, where.str() + ": " + what);
  }

  std::string expand_content(const std::string& text, const SourcePosition& where, const std::string& what) const {
    return expand_content_template(text, variables_, profile_.raw_variables, where.str() + ": " + what);
  }

  // Expands and checks a target path, and refuses one an earlier entry already writes.
  PlanOp start_op(OpKind kind, const std::string& path_template, const SourcePosition& where, const std::string& label) {
    const std::string text = expand(path_template, where, label + ".path");
    const auto split = profile_detail::split_role(text);
    if (text.find('\0') != std::string::npos || text.find('\n') != std::string::npos) {
      fail(where, label, "path '" + text + "' contains a NUL or newline character");
    }
    if (!split.path.starts_with('/')) {
      fail(where, label, "path '" + text + "' (expanded from '" + path_template + "') is not absolute");
    }
    if (!lexically_normal(split.path)) fail(where, label, "path '" + text + "' climbs above the root with '..'");
    targets_.add(text, where.str(), label);
    PlanOp op;
    op.kind = kind;
    op.target = PathSpec{split.role, split.path};
    op.origin = where.str();
    return op;
  }

  PlanOp directory(const DirectorySpec& spec, const std::string& label) {
    PlanOp op = start_op(OpKind::Directory, spec.path, spec.where, label);
    op.mode = spec.mode;
    op.owner = spec.owner;
    return op;
  }

  PlanOp file(const FileSpec& spec, const std::string& label) {
    PlanOp op = start_op(OpKind::File, spec.path, spec.where, label);
    op.mode = spec.mode;
    op.owner = spec.owner;
    op.elf_arch = spec.elf_arch;
    switch (spec.kind) {
      case ContentKind::Content:
        op.bytes = expand_content(spec.value, spec.where, label + ".content");
        op.secret = holds_variables(spec.value);
        op.inline_content = true;
        break;
      case ContentKind::Source: op.bytes = source_bytes(spec, label, op.secret, op.source); break;
      case ContentKind::Credential:
        op.credential = spec.value;
        op.bytes = credential_bytes(spec, label);
        op.secret = true;
        break;
    }
    op.secret = op.secret || spec.secret;
    return op;
  }

  // Does a template take any value besides device_id? Values can be secrets (a PIN from --set-file,
  // a password column of the CSV), and a digest of a short secret is as good as the secret.
  static bool holds_variables(std::string_view text) {
    const std::set<std::string> names = template_variables(text, "");
    return std::any_of(names.begin(), names.end(), [](const std::string& name) { return name != "device_id"; });
  }

  // A source file is copied byte for byte (a binary must never be rewritten) unless it says
  // template: true.
  std::string source_bytes(const FileSpec& spec, const std::string& label, bool& secret, std::string& source) const {
    const std::string path = resolve_host_path(profile_, spec.value, expand(spec.value, spec.where, label + ".source"));
    source = path;
    std::string bytes;
    try {
      // A binary may be large; a template (a script, a config file) is held to the small-input limit.
      bytes = read_host_file(path, spec.template_source ? kSmallInputLimit : kSourceInputLimit);
    } catch (const Error& error) {
      fail(spec.where, label, std::string("source: ") + error.what());
    }
    if (!spec.template_source) return bytes;
    std::string expanded = expand_content(bytes, spec.where, label + ".source " + path);
    secret = holds_variables(bytes);
    return expanded;
  }

  std::string credential_bytes(const FileSpec& spec, const std::string& label) const {
    if (!credentials_) {
      fail(spec.where, label, "from: credentials." + spec.value + " but credentials are not configured for this command");
    }
    try {
      return credentials_(spec.value, spec.format);
    } catch (const Error& error) {
      throw Error(spec.where.str() + ": " + label + ": credentials." + spec.value + ": " + error.what(), error.code());
    }
  }

  PlanOp symlink(const SymlinkSpec& spec, const std::string& label) {
    PlanOp op = start_op(OpKind::Symlink, spec.path, spec.where, label);
    op.owner = spec.owner;
    op.bytes = expand(spec.target, spec.where, label + ".target");
    if (op.bytes.empty() || op.bytes.find('\0') != std::string::npos) {
      fail(spec.where, label, "symlink target '" + op.bytes + "' is empty or contains a NUL");
    }
    return op;
  }

  PlanOp remove(const RemoveSpec& spec, const std::string& label) {
    PlanOp op = start_op(OpKind::Remove, spec.path, spec.where, label);
    op.recursive = spec.recursive;
    return op;
  }
};

// Collects the variables a template uses; `where` points at the entry for syntax errors.
void add_variables(std::set<std::string>& names, const std::string& text, const SourcePosition& where, const std::string& what) {
  for (const std::string& name : template_variables(text, where.str() + ": " + what)) names.insert(name);
}

}  // namespace

std::string resolve_host_path(const Profile& profile, const std::string& template_text, const std::string& expanded) {
  const std::filesystem::path path(expanded);
  if (path.is_absolute()) return expanded;
  // A path that starts with a variable came from the command line (the working directory) or a
  // CSV column (the CSV's directory).
  if (template_text.rfind("{{", 0) == 0) {
    const std::size_t close = template_text.find("}}");
    std::string name = template_text.substr(2, close == std::string::npos ? std::string::npos : close - 2);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    const auto found = profile.variable_directories.find(name);
    if (found != profile.variable_directories.end()) return (std::filesystem::path(found->second) / path).lexically_normal().string();
  }
  if (template_text.rfind("{{", 0) == 0 || profile.directory.empty()) return std::filesystem::absolute(path).lexically_normal().string();
  return (std::filesystem::path(profile.directory) / path).lexically_normal().string();
}

std::vector<std::string> required_variables(const Profile& profile) {
  std::set<std::string> names{"device_id"};
  for (std::size_t i = 0; i < profile.directories.size(); ++i) {
    add_variables(names, profile.directories[i].path, profile.directories[i].where, label_of("directories", i) + ".path");
  }
  for (std::size_t i = 0; i < profile.files.size(); ++i) {
    const FileSpec& file = profile.files[i];
    const std::string label = label_of("files", i);
    add_variables(names, file.path, file.where, label + ".path");
    if (file.kind == ContentKind::Credential) continue;
    add_variables(names, file.value, file.where, label + (file.kind == ContentKind::Source ? ".source" : ".content"));
    // A templated source file named without variables can be read now; one whose name is itself
    // a template is only known per device (build_plan reports its variables then).
    if (file.kind == ContentKind::Source && file.template_source && template_variables(file.value, "").empty()) {
      const std::string path = resolve_host_path(profile, file.value, file.value);
      std::error_code error;
      if (std::filesystem::is_regular_file(path, error)) add_variables(names, read_host_file(path), file.where, label + ".source " + path);
    }
  }
  for (std::size_t i = 0; i < profile.symlinks.size(); ++i) {
    const SymlinkSpec& link = profile.symlinks[i];
    add_variables(names, link.path, link.where, label_of("symlinks", i) + ".path");
    add_variables(names, link.target, link.where, label_of("symlinks", i) + ".target");
  }
  for (std::size_t i = 0; i < profile.removes.size(); ++i) {
    add_variables(names, profile.removes[i].path, profile.removes[i].where, label_of("remove", i) + ".path");
  }
  if (const auto& credentials = profile.credentials) {
    const SourcePosition& where = credentials->where;
    for (const std::string* text : {&credentials->key, &credentials->key_password, &credentials->cert, &credentials->chain, &credentials->pfx}) {
      add_variables(names, *text, where, "credentials");
    }
    if (pfx_is_used(profile)) add_variables(names, credentials->pfx_password, where, "credentials.pfx_password");
    if (const auto& generate = credentials->generate) {
      for (const std::string* text : {&generate->ca_cert, &generate->ca_key, &generate->ca_key_password}) {
        add_variables(names, *text, where, "credentials.generate");
      }
    }
  }
  return {names.begin(), names.end()};
}

Variables device_variables(const Profile& profile, const Variables& overrides, const std::string& device_id) {
  if (device_id.empty()) throw Error("the device id is empty", ErrorCode::Invalid);
  Variables variables = profile.variables;
  for (const auto& [name, value] : overrides) {
    if (!is_variable_name(name)) throw Error("'" + name + "' is not a variable name (letters, digits, '_')", ErrorCode::Invalid);
    variables[name] = value;
  }
  variables["device_id"] = device_id;  // built in: nothing overrides the device's own id
  return variables;
}

Plan build_plan(const Profile& profile, const Variables& variables, const CredentialBytes& credentials) {
  return PlanBuilder(profile, variables, credentials).build();
}

bool is_mender_identity_script(const std::string& path) {
  try {
    const PathSpec spec = parse_path_spec(path);
    if (!spec.role.empty() && spec.role != "primary" && spec.role != "secondary" && spec.role != "rootfs") return false;
    const auto normal = lexically_normal(spec.path);
    return normal && *normal == kMenderIdentityScript;
  } catch (const Error&) {
    return false;
  }
}

bool starts_like_an_executable(std::string_view bytes) { return bytes.starts_with("#!") || bytes.starts_with("\x7f" "ELF"); }

}  // namespace imprint
