// The device-view path rule, the heart of the user model: a path names a file as the running device
// sees it, and the mount points say which partition holds it.
//   under the data mount point (/data)       -> data partition (mount point stripped)
//   under a boot mount point (/uboot, ...)   -> boot partition (mount point stripped)
//   any other absolute path                  -> the root filesystems (both A and B)
// An explicit role ("primary:/x", "data:/x", "p4:/x") overrides the rule and keeps its path as it is.
// The profile (before an image exists), device preparation and the image's path mapping all place
// paths with place_path, so a profile's overlap check and apply agree on where a path lands.
#pragma once

#include <string>
#include <vector>

#include "imprint/core/pathspec.hpp"

namespace imprint {

// Where the device mounts what (the image module reads it from the primary rootfs /etc/fstab).
struct MountMap {
  std::vector<std::string> boot_mounts;  // e.g. {"/uboot"} or {"/boot/efi"}; none when empty
  std::string data_mount = "/data";      // "" when the device mounts no data partition
};

// mender-convert's mount points: the boot partition at /uboot (U-Boot) or /boot/efi (GRUB), the
// data partition at /data. What a profile is checked against, and what an image without a readable
// fstab is taken to use.
MountMap mender_convert_mounts();

// A path placed on a role: "data", "boot" or "rootfs" for a device-view path, or the explicit role
// as written ("primary", "secondary", "rootfs", "data", "boot", "pN").
struct RolePath {
  std::string role;
  std::string path;  // inside that partition's filesystem
};

// `spec.path` must be normalized (normalize_path or lexically_normal). The data mount point is
// tried first, then the boot mount points in order; a mount point "/" holds every path.
RolePath place_path(const PathSpec& spec, const MountMap& mounts = mender_convert_mounts());

}  // namespace imprint
