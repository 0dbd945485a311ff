#include "targets.hpp"

#include <algorithm>

#include "imprint/core/device_view.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/pathspec.hpp"

namespace imprint::profile_detail {

namespace {

// The partitions a path may land on, as "role:partition-relative path" keys. Without the image the
// mount points are taken to be mender-convert's (place_path's default).
std::vector<std::string> target_keys(const std::string& text) {
  const SplitPath split = split_role(text);
  const auto normalized = split.path.starts_with('/') ? lexically_normal(split.path) : std::nullopt;
  // A path that is not absolute yet (it starts with a template) compares by its text only.
  if (!normalized) return {"?" + split.role + ":" + split.path};
  const RolePath placed = place_path(PathSpec{split.role, *normalized});
  if (placed.role == "rootfs") return {"primary:" + placed.path, "secondary:" + placed.path};
  return {placed.role + ":" + placed.path};
}

}  // namespace

SplitPath split_role(std::string_view text) {
  const std::size_t colon = text.find(':');
  if (colon != std::string_view::npos && is_role_name(text.substr(0, colon))) {
    return {std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
  }
  return {"", std::string(text)};
}

void TargetRegistry::add(const std::string& text, const std::string& where, const std::string& label) {
  const std::vector<std::string> keys = target_keys(text);
  for (const std::string& key : keys) {
    const auto found = owners_.find(key);
    if (found == owners_.end()) continue;
    const Owner& first = found->second;
    const std::string same = first.text == text ? "" : " ('" + first.text + "')";
    throw Error(where + ": " + label + ": path '" + text + "' is also written by " + first.label + same + " at " +
                    first.where + " (each path may appear once)",
                ErrorCode::Invalid);
  }
  for (const std::string& key : keys) owners_.emplace(key, Owner{text, where, label});
}

}  // namespace imprint::profile_detail
