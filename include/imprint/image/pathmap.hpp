// Path mapping: paths (device view or ROLE:PATH, see device_view.hpp for the rule) resolved against
// an image's partitions: primary:/x, secondary:/x, rootfs:/x (both), data:/x, boot:/x, pN:/x name
// partition-relative paths; a device-view path lands where place_path puts it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imprint/image/image.hpp"
#include "imprint/core/pathspec.hpp"

namespace imprint {


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
// `image_name` starts that error ("golden.img has no primary partition (for /etc/x)").
std::vector<Location> resolve(const PathSpec& spec, const Layout& layout, const MountMap& mounts,
                              const std::string& image_name = "the image");
// The same on an open image, whose errors name it as the user gave it.
std::vector<Location> resolve(const PathSpec& spec, ImageView& image);

// Human name for messages: "primary (p2)".
std::string describe(const Location& location);

}  // namespace imprint
