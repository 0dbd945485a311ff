// Path mapping, the heart of the user model: a path names a file as the running device sees it.
//   /data/...                        -> data partition (prefix stripped)
//   the boot mount point (/uboot...) -> boot partition (prefix stripped)
//   any other absolute path          -> both root filesystems
// An explicit role overrides: primary:/x, secondary:/x, rootfs:/x (both), data:/x, boot:/x, pN:/x
// (partition-relative paths).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imprint/image.hpp"

namespace imprint {

// Collapses "//" and "."; resolves ".." lexically; throws Error(Invalid) for a relative path or
// one that escapes the root ("/../etc" names a path outside the filesystem).
std::string normalize_path(std::string_view path);

// "ROLE:PATH" or "PATH": role is empty for a device-view path.
struct PathSpec {
  std::string role;  // "", "primary", "secondary", "rootfs", "data", "boot", "p4"
  std::string path;  // as written (normalized by resolve)
};
PathSpec parse_path_spec(std::string_view text);
// Is text a role name this mapping understands ("primary", "p4", ...)?
bool is_role_name(std::string_view text);

// "IMAGE:PATH" or "IMAGE:ROLE:PATH" from the command line. The image is everything before the
// first ':' that is followed by '/' or by "ROLE:/". Error(Invalid) when there is no such ':'.
struct ImageTarget {
  std::string image;
  PathSpec spec;
};
ImageTarget parse_image_target(std::string_view text);

// One place a path lands: a partition and the normalized path inside its filesystem.
struct Location {
  int partition = 0;   // partition number
  Role role = Role::None;
  std::string path;    // partition-relative, normalized
  std::string device_path;  // the path as the device sees it, for messages ("" for pN: roles)
};

// Resolves a spec against an image's layout and mount points: one location, or two for rootfs
// paths (primary first). Error(NotFound) when the role's partition does not exist.
std::vector<Location> resolve(const PathSpec& spec, const Layout& layout, const MountMap& mounts);

// Human name for messages: "primary (p2)".
std::string describe(const Location& location);

}  // namespace imprint
