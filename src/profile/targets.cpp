#include "targets.hpp"

#include <algorithm>

#include "imprint/error.hpp"
#include "imprint/pathspec.hpp"

namespace imprint::profile_detail {

namespace {

// Under `prefix` ("/data"): the rest of the path ("/mender/x", "/" for the prefix itself).
std::optional<std::string> strip_mount(const std::string& path, std::string_view prefix) {
  if (path == prefix) return std::string("/");
  if (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 && path[prefix.size()] == '/') {
    return path.substr(prefix.size());
  }
  return std::nullopt;
}

// The partitions a path may land on, as "role:partition-relative path" keys. Without the image
// the boot mount point is taken to be one of mender-convert's usual ones (/uboot, /boot/efi).
std::vector<std::string> target_keys(const std::string& text) {
  const SplitPath split = split_role(text);
  const auto normalized = split.path.starts_with('/') ? lexically_normal(split.path) : std::nullopt;
  // A path that is not absolute yet (it starts with a template) compares by its text only.
  if (!normalized) return {"?" + split.role + ":" + split.path};
  const std::string& path = *normalized;
  if (split.role == "rootfs") return {"primary:" + path, "secondary:" + path};
  if (!split.role.empty()) return {split.role + ":" + path};
  if (auto rest = strip_mount(path, "/data")) return {"data:" + *rest};
  for (std::string_view boot : {"/uboot", "/boot/efi"}) {
    if (auto rest = strip_mount(path, boot)) return {"boot:" + *rest};
  }
  return {"primary:" + path, "secondary:" + path};
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
