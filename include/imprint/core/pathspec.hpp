// Path specs: "ROLE:PATH" or a device-view "PATH", and lexical path normalization. Shared by the
// profile module (which checks targets without an image) and the image module (which resolves
// them against a partition table).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace imprint {

// "ROLE:PATH" or "PATH": role is empty for a device-view path.
struct PathSpec {
  std::string role;  // "", "primary", "secondary", "rootfs", "data", "boot", "p4"
  std::string path;  // as written (normalized by resolve)
};

// "primary", "secondary", "rootfs", "data", "boot" or "pN" (a partition by number).
bool is_role_name(std::string_view text);
// N of "pN"; nullopt for anything else.
std::optional<int> partition_role_number(std::string_view role);

// Splits "ROLE:PATH"; Error(Invalid) for an unknown role.
PathSpec parse_path_spec(std::string_view text);

// Collapses "//" and "."; resolves ".." lexically. nullopt when the path climbs above "/".
std::optional<std::string> lexically_normal(std::string_view absolute_path);
// The same, but throws Error(Invalid) for a relative path or one that escapes the root
// ("/../etc" names a path outside the filesystem).
std::string normalize_path(std::string_view path);
// The directory of a normalized absolute path: "/a/b" -> "/a", "/a" -> "/".
std::string parent_path(const std::string& path);

}  // namespace imprint
