#include "imprint/stamp/artifact_update.hpp"

#include <sys/stat.h>

#include <regex>
#include <string_view>

#include "imprint/artifact/artifact.hpp"
#include "imprint/image/copy.hpp"
#include "imprint/stamp/device.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/inspect/inspect.hpp"
#include "imprint/image/pathmap.hpp"
#include "imprint/profile/profile.hpp"
#include "imprint/stamp/stamp.hpp"

namespace imprint {

namespace {

// Does the entry land on a root filesystem? Its path is expanded with a stand-in device id only to
// find out where it goes: a per-device path is refused later, when the plan is built without one.
bool targets_rootfs(DiskImage& image, const std::string& path, const Variables& variables, const SourcePosition& where) {
  Variables with_device = variables;
  with_device.emplace("device_id", "device");
  const std::string expanded = expand_template(path, with_device, where.str());
  for (const Location& location : resolve(parse_path_spec(expanded), image.layout(), image.mounts())) {
    if (location.role == Role::Primary || location.role == Role::Secondary) return true;
  }
  return false;
}

template <typename Spec>
std::vector<Spec> rootfs_entries(DiskImage& image, const std::vector<Spec>& specs, const Variables& variables) {
  std::vector<Spec> kept;
  for (const Spec& spec : specs) {
    if (targets_rootfs(image, spec.path, variables, spec.where)) kept.push_back(spec);
  }
  return kept;
}

// The profile cut down to its root filesystem entries, without credentials or checks.
Profile fleet_profile(DiskImage& image, const Profile& profile, const Variables& variables) {
  Profile fleet = profile;
  fleet.credentials.reset();
  fleet.checks.clear();
  fleet.directories = rootfs_entries(image, profile.directories, variables);
  fleet.files = rootfs_entries(image, profile.files, variables);
  fleet.symlinks = rootfs_entries(image, profile.symlinks, variables);
  fleet.removes = rootfs_entries(image, profile.removes, variables);
  for (const FileSpec& file : fleet.files) {
    if (file.kind == ContentKind::Credential) {
      throw Error(file.where.str() + ": " + file.path + " is a device credential (credentials." + file.value +
                      ") on the root filesystem; a fleet-wide rootfs update cannot hold it",
                  ErrorCode::Invalid);
    }
  }
  return fleet;
}

// Built without device_id and without per-device values: an entry that needs one is named.
Plan fleet_plan(const Profile& fleet, const Variables& variables) {
  try {
    return build_plan(fleet, variables, {});
  } catch (const Error& error) {
    if (std::string_view(error.what()).find("undefined variable") == std::string_view::npos) throw;
    // build_plan numbers the entries of the cut-down profile ("files[0]"); the line and column name the entry.
    static const std::regex label(R"((files|directories|symlinks|remove)\[[0-9]+\]\.?)");
    throw Error(std::regex_replace(error.what(), label, "") + " (this rootfs entry depends on the device; the fleet's rootfs update holds only "
                "what every device shares: give the variable a fleet-wide value with --set, or move the entry to /data)",
                ErrorCode::Invalid);
  }
}

std::vector<std::string> device_types(DiskImage& image, const std::string& golden) {
  const std::string type = inspect_image(image).device_type;
  if (type.empty()) {
    throw Error(golden + ": data:/mender/device_type holds no device_type=...; the Artifact needs the device type",
                ErrorCode::NotFound);
  }
  return {type};
}

void refuse_output_over_golden(const std::string& golden, const std::string& output) {
  struct stat golden_stat {}, output_stat {};
  if (::stat(golden.c_str(), &golden_stat) == 0 && ::stat(output.c_str(), &output_stat) == 0 &&
      golden_stat.st_dev == output_stat.st_dev && golden_stat.st_ino == output_stat.st_ino) {
    throw Error(output + " is the golden image itself; the golden image is never modified", ErrorCode::Invalid);
  }
}

}  // namespace

ArtifactResult write_rootfs_update(const ArtifactRequest& request) {
  if (request.artifact_name.empty()) throw Error("the Artifact needs a name (--artifact-name)", ErrorCode::Invalid);
  const Profile profile = load_profile(request.profile_path);
  Variables variables = profile.variables;
  for (const auto& [key, value] : request.overrides) variables[key] = value;
  variables.erase("device_id");

  refuse_output_over_golden(request.golden_path, request.output_path);
  ArtifactResult result;
  PendingFile output(request.output_path);
  // The rootfs is edited in a scratch copy of the golden image (never named, never kept).
  PendingFile scratch(request.output_path + ".image");
  copy_image(request.golden_path, scratch.fd());
  DiskImage image = DiskImage::open(scratch.temp_path(), OpenMode::ReadWrite, request.backend);
  result.device_types = device_types(image, request.golden_path);
  result.plan = fleet_plan(fleet_profile(image, profile, variables), variables);
  check_plan_against_image(image, result.plan);
  apply_plan(image, result.plan);
  image.flush();

  const Partition& rootfs = image.partition(Role::Primary);
  RootfsArtifact spec;
  spec.name = request.artifact_name;
  spec.device_types = result.device_types;
  spec.payload_name = "rootfs." + (rootfs.fs_type.empty() ? std::string("img") : rootfs.fs_type);
  spec.key_path = request.key_path;
  result.checksum = write_rootfs_artifact(spec, scratch.fd(), rootfs.offset, rootfs.size, output.fd(), request.output_path + ".payload");
  output.commit();
  return result;
}

}  // namespace imprint
