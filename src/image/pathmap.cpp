// Path mapping: device-view paths and explicit roles to (partition, partition path).
#include "imprint/image/pathmap.hpp"

#include "imprint/core/device_view.hpp"
#include "imprint/core/error.hpp"

namespace imprint {

namespace {

std::string join(const std::string& mount, const std::string& path) {
  if (mount == "/") return path;
  return path == "/" ? mount : mount + path;
}

const Partition* find_role(const Layout& layout, Role role) {
  for (const Partition& partition : layout.partitions) {
    if (partition.role == role) return &partition;
  }
  return nullptr;
}

const Partition& need_role(const Layout& layout, Role role, const std::string& path, const std::string& image) {
  const Partition* partition = find_role(layout, role);
  if (partition == nullptr) {
    throw Error(image + " has no " + to_string(role) + " partition (for " + path + ")", ErrorCode::NotFound);
  }
  return *partition;
}

Location locate(const Partition& partition, std::string path, std::string device_path) {
  return Location{partition.number, partition.role, std::move(path), std::move(device_path)};
}

// Both root filesystems: primary first; the secondary only when the image has one (a plain,
// non-A/B image has a single root filesystem).
std::vector<Location> rootfs(const Layout& layout, const std::string& path, const std::string& image) {
  std::vector<Location> locations{locate(need_role(layout, Role::Primary, path, image), path, path)};
  if (const Partition* secondary = find_role(layout, Role::Secondary)) locations.push_back(locate(*secondary, path, path));
  return locations;
}

// A device-view path by the one rule (place_path), leaving out the mount points of partitions this
// image lacks: a plain image without a data partition keeps /data/x on its root filesystem.
std::vector<Location> device_view(const std::string& path, const Layout& layout, const MountMap& mounts,
                                  const std::string& image) {
  const Partition* data = find_role(layout, Role::Data);
  const Partition* boot = find_role(layout, Role::Boot);
  MountMap present{boot != nullptr ? mounts.boot_mounts : std::vector<std::string>{}, data != nullptr ? mounts.data_mount : ""};
  const RolePath placed = place_path(PathSpec{"", path}, present);
  if (placed.role == "data") return {locate(*data, placed.path, path)};
  if (placed.role == "boot") return {locate(*boot, placed.path, path)};
  return rootfs(layout, path, image);
}

}  // namespace

ImageTarget parse_image_target(std::string_view text) {
  for (std::size_t colon = text.find(':'); colon != std::string_view::npos; colon = text.find(':', colon + 1)) {
    if (colon == 0) continue;
    const std::string_view rest = text.substr(colon + 1);
    if (!rest.empty() && rest.front() == '/') return ImageTarget{std::string(text.substr(0, colon)), PathSpec{"", std::string(rest)}};
    const std::size_t role_end = rest.find(':');
    if (role_end != std::string_view::npos && is_role_name(rest.substr(0, role_end)) &&
        rest.substr(role_end + 1).starts_with('/')) {
      return ImageTarget{std::string(text.substr(0, colon)),
                         PathSpec{std::string(rest.substr(0, role_end)), std::string(rest.substr(role_end + 1))}};
    }
  }
  throw Error("'" + std::string(text) + "' is not IMAGE:/PATH or IMAGE:ROLE:/PATH", ErrorCode::Invalid);
}

std::vector<Location> resolve(const PathSpec& spec, ImageView& image) {
  return resolve(spec, image.layout(), image.mounts(), image.path());
}

std::vector<Location> resolve(const PathSpec& spec, const Layout& layout, const MountMap& mounts, const std::string& image) {
  const std::string path = normalize_path(spec.path);
  if (spec.role.empty()) return device_view(path, layout, mounts, image);
  if (spec.role == "rootfs") return rootfs(layout, path, image);
  if (spec.role == "primary") return {locate(need_role(layout, Role::Primary, spec.role + ":" + path, image), path, path)};
  if (spec.role == "secondary") return {locate(need_role(layout, Role::Secondary, spec.role + ":" + path, image), path, path)};
  if (spec.role == "data") {
    return {locate(need_role(layout, Role::Data, spec.role + ":" + path, image), path, join(mounts.data_mount, path))};
  }
  if (spec.role == "boot") {
    const std::string device_path = mounts.boot_mounts.empty() ? "" : join(mounts.boot_mounts.front(), path);
    return {locate(need_role(layout, Role::Boot, spec.role + ":" + path, image), path, device_path)};
  }
  if (const std::optional<int> number = partition_role_number(spec.role)) {
    for (const Partition& partition : layout.partitions) {
      if (partition.number == *number) return {locate(partition, path, "")};
    }
    throw Error(image + " has no partition " + std::to_string(*number) + " (" + spec.role + ")", ErrorCode::NotFound);
  }
  throw Error("unknown role '" + spec.role + "' (roles: primary, secondary, rootfs, data, boot, pN)", ErrorCode::Invalid);
}

std::string describe(const Location& location) {
  const std::string number = "p" + std::to_string(location.partition);
  if (location.role == Role::None) return number;
  return to_string(location.role) + " (" + number + ")";
}

}  // namespace imprint
