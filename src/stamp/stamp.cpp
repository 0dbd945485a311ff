#include "imprint/stamp/stamp.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <thread>

#include "imprint/artifact/artifact.hpp"
#include "imprint/image/block_map.hpp"
#include "imprint/image/bmap.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/image/copy.hpp"
#include "imprint/edit/edit.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/core/overwrite.hpp"
#include "imprint/core/progress.hpp"
#include "imprint/image/overlay.hpp"

namespace imprint {

namespace {

// Owners resolved once per image (names need the image's /etc/passwd).
class OwnerCache {
 public:
  explicit OwnerCache(ImageView& image) : image_(image) {}
  Owner get(const std::string& owner) {
    auto found = cache_.find(owner);
    if (found == cache_.end()) found = cache_.emplace(owner, resolve_image_owner(image_, owner)).first;
    return found->second;
  }

 private:
  ImageView& image_;
  std::map<std::string, Owner> cache_;
};

void apply_op(Filesystem& filesystem, const Location& location, const PlanOp& op, const Owner& owner) {
  const Attributes attributes{op.mode, owner.uid, owner.gid, op.mtime};
  const Attributes parent_attributes{0755, 0, 0, op.mtime};
  switch (op.kind) {
    case OpKind::File: {
      make_directories(filesystem, parent_path(location.path), parent_attributes);
      MemorySource source(op.bytes);
      filesystem.write(location.path, source, attributes);
      break;
    }
    case OpKind::Directory:
      make_directories(filesystem, location.path, attributes);
      // An existing directory takes the planned mode and owner too.
      filesystem.chmod(location.path, op.mode);
      filesystem.chown(location.path, owner.uid, owner.gid);
      break;
    case OpKind::Symlink:
      make_directories(filesystem, parent_path(location.path), parent_attributes);
      filesystem.symlink(location.path, op.bytes, attributes);
      break;
    case OpKind::Remove:
      if (filesystem.stat(location.path)) filesystem.remove(location.path, op.recursive);
      break;
  }
  verbose_note("applied " + to_string(op.kind) + " " + location.path + " on " + to_string(location.role) + " (p" +
               std::to_string(location.partition) + ")" +
               (op.kind == OpKind::File ? ": " + std::to_string(op.bytes.size()) + " bytes" : "") +
               (op.kind == OpKind::Remove
                    ? ""
                    : ", " + format_mode(op.mode) + " " + std::to_string(owner.uid) + ":" + std::to_string(owner.gid)));
}

void add_difference(std::vector<std::string>& differences, const Location& location, const std::string& what) {
  differences.push_back(describe(location) + ": " + location.path + ": " + what);
}

std::string read_sha256(Filesystem& filesystem, const std::string& path) {
  Sha256 hash;
  filesystem.read(path, [&](std::string_view chunk) { hash.update(chunk); });
  return hash.hex_digest();
}

void verify_op(Filesystem& filesystem, const Location& location, const PlanOp& op, const Owner& owner,
               std::vector<std::string>& differences) {
  const auto stat = filesystem.stat(location.path);
  if (op.kind == OpKind::Remove) {
    if (stat) add_difference(differences, location, "exists, expected removed");
    return;
  }
  if (!stat) return add_difference(differences, location, "missing");
  const FileType expected_type = op.kind == OpKind::File        ? FileType::Regular
                                 : op.kind == OpKind::Directory ? FileType::Directory
                                                                : FileType::Symlink;
  if (stat->type != expected_type) return add_difference(differences, location, "is not a " + to_string(op.kind));
  if (op.kind == OpKind::Symlink) {
    if (stat->link_target != op.bytes) add_difference(differences, location, "points to " + stat->link_target + ", expected " + op.bytes);
  } else if ((stat->mode & 07777) != op.mode) {
    add_difference(differences, location, "mode " + format_mode(stat->mode) + ", expected " + format_mode(op.mode));
  }
  if (stat->uid != owner.uid || stat->gid != owner.gid) {
    add_difference(differences, location,
                   "owner " + std::to_string(stat->uid) + ":" + std::to_string(stat->gid) + ", expected " +
                       std::to_string(owner.uid) + ":" + std::to_string(owner.gid));
  }
  if (op.kind == OpKind::File && !op.reproducible) return;  // compared by meaning in verify_plan
  if (op.kind == OpKind::File && (stat->size != op.bytes.size() || read_sha256(filesystem, location.path) != sha256_hex(op.bytes))) {
    add_difference(differences, location, "content differs (" + std::to_string(stat->size) + " bytes, expected " +
                                              std::to_string(op.bytes.size()) + " bytes with sha256 " + sha256_hex(op.bytes) + ")");
  }
}

// A PFX rebuilt for every stamp differs in its random salt: what must hold is that it opens with
// the device client's password and carries the device's key and certificate.
void verify_pfx_meaning(const DevicePlan& device, const std::string& pfx, const Location& location,
                        std::vector<std::string>& differences) {
  CheckContext context;
  context.device_id = device.plan.device_id;
  context.credentials = device.credentials ? &*device.credentials : nullptr;
  context.pfx = pfx;
  context.pfx_password = device.pfx_password;
  try {
    run_check("pfx-opens", "", context);
  } catch (const Error& error) {
    add_difference(differences, location, error.what());
  }
}

bool touches_rootfs(ImageView& image, const Plan& plan) {
  for (const PlanOp& op : plan.ops) {
    for (const Location& location : resolve(op.target, image)) {
      if (location.role == Role::Primary || location.role == Role::Secondary) return true;
    }
  }
  return false;
}

void refuse_output_over_golden(const std::string& golden, const std::string& output) {
  struct stat golden_stat {}, output_stat {};
  if (::stat(golden.c_str(), &golden_stat) == 0 && ::stat(output.c_str(), &output_stat) == 0 &&
      golden_stat.st_dev == output_stat.st_dev && golden_stat.st_ino == output_stat.st_ino) {
    throw Error(output + " is the golden image itself; the golden image is never modified (use --in-place to patch it)",
                ErrorCode::Invalid);
  }
}

std::uint64_t file_size_of(const PendingFile& file) {
  struct stat info {};
  if (::fstat(file.fd(), &info) != 0) throw_errno("cannot stat the image for " + file.final_path());
  return static_cast<std::uint64_t>(info.st_size);
}

// The stamped image's bmap (its block map, with range checksums), pending beside the output.
PendingFile pending_bmap(const PendingFile& output, const std::string& path) {
  const std::uint64_t size = file_size_of(output);
  const BlockMap map = image_block_map(output.temp_path(), output.final_path());
  const MappedImage mapped = map_image(output.fd(), size, data_extents(output.fd()), map.extents, output.final_path());
  PendingFile bmap(path);
  const std::string text = format_bmap(mapped.bmap);
  pwrite_all(bmap.fd(), text, 0, path);
  if (::fchmod(bmap.fd(), 0644) != 0) throw_errno("cannot set the mode of " + path);
  return bmap;
}

void refuse_emit_over_output(const std::vector<PendingFile>& emitted, const std::string& output) {
  std::error_code error;
  for (const PendingFile& file : emitted) {
    if (std::filesystem::weakly_canonical(file.final_path(), error) == std::filesystem::weakly_canonical(output, error)) {
      throw Error("--emit would write " + file.final_path() + ", which is the output image", ErrorCode::Invalid);
    }
  }
}

// What stamp() checked before writing, for its success line: the profile's checks, the ELF
// expectations of the plan's files, and that every file fits its partition (always).
std::vector<std::string> checks_passed(const Profile& profile, const Plan& plan) {
  std::vector<std::string> checks;
  for (const CheckSpec& check : profile.checks)
    checks.push_back(check.argument.empty() ? check.name : check.name + " " + check.argument);
  std::map<std::string, int> elf;  // arch -> files
  for (const PlanOp& op : plan.ops) {
    if (op.kind == OpKind::File && !op.elf_arch.empty()) ++elf[op.elf_arch];
  }
  for (const auto& [arch, files] : elf) checks.push_back("elf " + arch + " (" + std::to_string(files) + " file(s))");
  checks.push_back("files fit their partitions");
  return checks;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string text;
  for (const std::string& item : items) text += (text.empty() ? "" : separator) + item;
  return text;
}

// The partitions a plan writes (both rootfs slots for a rootfs path).
std::vector<int> written_partitions(ImageView& image, const Plan& plan) {
  std::vector<int> numbers;
  for (const PlanOp& op : plan.ops) {
    for (const Location& location : resolve(op.target, image)) numbers.push_back(location.partition);
  }
  return numbers;
}

bool overlay_applies(DiskImage& golden, const Plan& plan) { return !overlay_obstacle(golden, plan); }

void append(std::vector<std::string>& to, std::vector<std::string> more) {
  to.insert(to.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
}

}  // namespace

// Does the golden + overlay path apply? A raw golden whose written partitions all reach the overlay
// (native ext, or libguestfs through its qcow2 overlay: overlay_covers), and no bootstrap Artifact to
// renew (the renewal hashes the finished partitions through a second open of the image, which must
// then be a file): otherwise stamp edits a copy as before.
std::optional<std::string> overlay_obstacle(DiskImage& golden, const Plan& plan) {
  try {
    for (const int number : written_partitions(golden, plan)) {
      if (!golden.overlay_covers({number})) {
        return "the plan writes " + partition_name(golden.partition_number(number)) + ", which only libguestfs opens";
      }
    }
    if (!bootstrap_renewable(golden) || !touches_rootfs(golden, plan)) return std::nullopt;
    if (!golden.filesystem(golden.partition(Role::Data)).stat("/mender/bootstrap.mender")) return std::nullopt;
    return std::string("the plan edits the root filesystems and data:/mender/bootstrap.mender is renewed after them");
  } catch (const Error& error) {
    return std::string(error.what());  // stamp's copy path reports it, as it always has
  }
}

void stamp_open_image(DiskImage& image, StampResult& result) {
  check_plan_against_image(image, result.plan);  // before the first write
  verbose_note("the plan fits the image (file sizes, ELF expectations); applying " + std::to_string(result.plan.ops.size()) +
               " operation(s)");
  apply_plan(image, result.plan);
  // Renewed once the image is closed (renew_bootstrap_artifact); where it cannot be, say it is stale.
  if (!bootstrap_renewable(image)) {
    if (auto warning = bootstrap_warning(image, result.plan)) result.warnings.push_back(*warning);
  }
  image.flush();
}

void apply_plan(ImageView& image, const Plan& plan) {
  OwnerCache owners(image);
  for (const PlanOp& op : plan.ops) {
    const Owner owner = owners.get(op.owner);
    try {
      for_each_location(image, op.target, [&](Filesystem& filesystem, const Location& location) {
        apply_op(filesystem, location, op, owner);
      });
    } catch (const Error& error) {
      throw Error(op.origin.empty() ? error.what() : op.origin + ": " + error.what(), error.code());
    }
  }
}

VerifyResult verify(const VerifyRequest& request) {
  const Profile profile = load_profile(request.profile_path);
  const DevicePlan device = prepare_device(profile, request.device_id, request.overrides);
  VerifyResult result;
  if (!request.golden_path.empty()) {
    result.differences = verify_against_golden(request.golden_path, request.image_path, device, request.backend);
    if (!request.structure) return result;
  }
  DiskImage disk = DiskImage::open(request.image_path, OpenMode::ReadOnly, request.backend);
  if (request.golden_path.empty()) result.differences = verify_plan(disk, device);
  if (request.structure) {
    result.structure = check_structure(disk);
    result.differences.insert(result.differences.end(), result.structure->problems.begin(), result.structure->problems.end());
  }
  return result;
}

std::vector<std::string> verify_plan(ImageView& image, const DevicePlan& device) {
  OwnerCache owners(image);
  std::vector<std::string> differences;
  for (const PlanOp& op : device.plan.ops) {
    const Owner owner = owners.get(op.owner);
    for_each_location(image, op.target, [&](Filesystem& filesystem, const Location& location) {
      verify_op(filesystem, location, op, owner, differences);
      if (op.kind == OpKind::File && !op.reproducible && filesystem.stat(location.path)) {
        verify_pfx_meaning(device, read_all(filesystem, location.path), location, differences);
      }
    });
  }
  return differences;
}

std::vector<std::string> renew_bootstrap_artifact(const std::string& image_path, const Plan& plan, Backend backend,
                                                  const std::string& artifact_key) {
  DiskImage image = DiskImage::open(image_path, OpenMode::ReadWrite, backend);
  if (!bootstrap_renewable(image) || !touches_rootfs(image, plan)) return {};
  std::vector<std::string> warnings = refresh_bootstrap_artifact(image, artifact_key);
  image.flush();
  return warnings;
}

std::optional<std::string> bootstrap_warning(ImageView& image, const Plan& plan) {
  try {
    Filesystem& data = image.filesystem(image.partition(Role::Data));
    if (!data.stat("/mender/bootstrap.mender") || !touches_rootfs(image, plan)) return std::nullopt;
  } catch (const Error&) {
    return std::nullopt;
  }
  return std::string(
      "the data partition holds mender/bootstrap.mender, whose rootfs checksum is now stale because this plan "
      "edits the root filesystems; regenerate it or remove it");
}

Compression output_compression(const std::string& path, const std::optional<Compression>& asked) {
  Compression by_name = Compression::None;
  for (const Compression candidate : {Compression::Gzip, Compression::Xz, Compression::Zstd}) {
    if (path.ends_with(compression_suffix(candidate))) by_name = candidate;
  }
  if (asked && *asked != by_name) {
    const std::string suffix = compression_suffix(*asked);
    throw Error("--compress " + (suffix.empty() ? std::string("none") : suffix.substr(1)) + " contradicts the name of " + path +
                    (suffix.empty() ? " (a compressed image's extension)" : " (a " + suffix.substr(1) + " image ends in " + suffix + ")"),
                ErrorCode::Invalid);
  }
  return by_name;
}

void require_generated_credentials_kept(const Profile& profile, const std::string& device_id, bool kept, const std::string& keeper) {
  if (kept || !profile.credentials || !profile.credentials->generate) return;
  throw Error(profile.credentials->where.str() + ": generate: makes a new key and certificate for " + device_id +
                  " that would exist only inside the image (nobody could preauthorize or enroll the device): " + keeper +
                  " keeps its public key, thumbprints, preauthorization and enrollment",
              ErrorCode::Invalid);
}

namespace {

// The stamped raw image (pending, unnamed) compressed into the output, pending under its final name.
PendingFile compress_output(const PendingFile& raw, const std::string& output, Compression compression) {
  struct stat info {};
  if (::fstat(raw.fd(), &info) != 0) throw_errno("cannot stat the image for " + output);
  PendingFile compressed(output);
  write_compressed(raw.fd(), static_cast<std::uint64_t>(info.st_size), data_extents(raw.fd()), compressed.fd(), compression,
                   std::max(1u, std::thread::hardware_concurrency()), output);
  return compressed;
}

}  // namespace

std::shared_ptr<ImageOverlay> stamp_overlay(const std::string& golden_path, StampResult& result, Backend backend,
                                            const std::string& qcow2_beside, const std::string& name) {
  if (is_compressed_image(golden_path)) return nullptr;  // its bytes exist only once decompressed
  auto overlay = std::make_shared<ImageOverlay>();
  DiskImage golden = DiskImage::open_overlay(golden_path, overlay, backend, name, qcow2_beside);
  if (!overlay_applies(golden, result.plan)) return nullptr;
  stamp_open_image(golden, result);
  return overlay;
}

StampResult stamp(const StampRequest& request) {
  const Profile profile = load_profile(request.profile_path);
  if (!request.dry_run) require_generated_credentials_kept(profile, request.device_id, !request.emit_directory.empty(), "--emit DIR");
  const Compression compression =
      request.in_place || request.output_path.empty() ? Compression::None : output_compression(request.output_path, request.compression);
  const DevicePlan device = prepare_device(profile, request.device_id, request.overrides);
  StampResult result;
  result.plan = device.plan;
  result.checks = checks_passed(profile, device.plan);
  std::vector<std::string> profile_checks;
  for (const CheckSpec& check : profile.checks) profile_checks.push_back(check.name);
  verbose_note(request.device_id + ": " + std::to_string(device.plan.ops.size()) + " operation(s) planned from " +
               request.profile_path + "; the profile's checks passed: " + join(profile_checks, ", "));
  result.exports = request.emit_directory.empty() ? std::nullopt : device_exports(device);

  if (request.dry_run) {
    // The plan is applied for real, to an overlay thrown away: every refusal the write itself makes
    // (a path through a symlink, a full partition, a damaged filesystem) is made here too.
    DiskImage golden = DiskImage::open_overlay(request.golden_path, nullptr, request.backend);
    stamp_open_image(golden, result);
    return result;
  }
  if (!request.in_place) {  // before --emit's directory is made: a refused stamp leaves nothing
    refuse_output_over_golden(request.golden_path, request.output_path);
    refuse_existing_output(request.output_path, request.force);
    if (!request.bmap_path.empty()) refuse_existing_output(request.bmap_path, request.force);
  }
  // The emitted files are written (unnamed) before the image is touched and named only after it:
  // either the output and every emitted file appear, or none does.
  std::vector<PendingFile> emitted;
  if (result.exports) {
    emitted = stage_exports(request.emit_directory, *result.exports);
    refuse_emit_over_output(emitted, request.in_place ? request.golden_path : request.output_path);
  }
  if (request.in_place) {
    {
      DiskImage image = DiskImage::open(request.golden_path, OpenMode::ReadWrite, request.backend);
      stamp_open_image(image, result);
    }
    append(result.warnings, renew_bootstrap_artifact(request.golden_path, result.plan, request.backend, request.artifact_key));
    result.output_path = request.golden_path;
    result.output_size = std::filesystem::file_size(request.golden_path);
  } else {
    PendingFile output(request.output_path);  // the raw image; never named when the output is compressed
    std::optional<PendingFile> bmap;
    try {
      // One pass where it applies: the golden is copied (reflinked where the filesystem can) on
      // another thread while this one applies the plan to the read-only golden, its writes kept in
      // an overlay; then the overlay's few MiB go over the copy. The copy starts only now, after
      // the credentials' checks: nothing is written for a device whose key and certificate do not
      // belong together. Where the overlay does not apply, the copy is edited in place.
      BackgroundCopy copy(request.golden_path, output.fd());
      StampResult overlaid = result;
      if (const auto overlay = stamp_overlay(request.golden_path, overlaid, request.backend, request.output_path)) {
        result = std::move(overlaid);
        copy.wait();
        overlay->write_to(output.fd(), request.output_path);
      } else {
        copy.wait();
        {
          DiskImage image = DiskImage::open(output.temp_path(), OpenMode::ReadWrite, request.backend, request.golden_path);
          stamp_open_image(image, result);
        }
        append(result.warnings, renew_bootstrap_artifact(output.temp_path(), result.plan, request.backend, request.artifact_key));
      }
      if (!request.bmap_path.empty()) bmap.emplace(pending_bmap(output, request.bmap_path));
    } catch (const Error& error) {
      // Out of space (the output's disk, a file size limit, or a full partition in the image):
      // the inner message names the golden copy or a partition, so say which output it was.
      if (error.code() != ErrorCode::NoSpace) throw;
      throw Error(request.output_path + ": " + error.what(), error.code());
    }
    if (compression == Compression::None) {
      result.output_size = file_size_of(output);
      output.commit();
    } else {
      PendingFile compressed = compress_output(output, request.output_path, compression);
      result.output_size = file_size_of(compressed);
      compressed.commit();
    }
    if (bmap) bmap->commit();
    result.output_path = request.output_path;
  }
  for (PendingFile& file : emitted) file.commit();
  return result;
}

}  // namespace imprint
