#include "imprint/core/device_view.hpp"

#include <optional>
#include <string_view>

namespace imprint {

namespace {

// The rest of `path` under `mount` ("/data/mender/x" under "/data" -> "/mender/x", "/data" -> "/"),
// nullopt when it is not under it ("/database" is not under "/data").
std::optional<std::string> under_mount(const std::string& path, std::string_view mount) {
  if (mount.empty()) return std::nullopt;
  if (mount == "/") return path;
  if (path == mount) return std::string("/");
  if (path.size() > mount.size() && path.starts_with(mount) && path[mount.size()] == '/') return path.substr(mount.size());
  return std::nullopt;
}

}  // namespace

MountMap mender_convert_mounts() { return MountMap{{"/uboot", "/boot/efi"}, "/data"}; }

RolePath place_path(const PathSpec& spec, const MountMap& mounts) {
  if (!spec.role.empty()) return {spec.role, spec.path};
  if (auto rest = under_mount(spec.path, mounts.data_mount)) return {"data", *rest};
  for (const std::string& mount : mounts.boot_mounts) {
    if (auto rest = under_mount(spec.path, mount)) return {"boot", *rest};
  }
  return {"rootfs", spec.path};
}

}  // namespace imprint
