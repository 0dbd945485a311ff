#include "targets.hpp"

#include <algorithm>

#include "imprint/error.hpp"

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
  const auto normalized = split.path.starts_with('/') ? normalize_lexically(split.path) : std::nullopt;
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

bool is_known_role(std::string_view text) {
  static constexpr std::string_view roles[] = {"primary", "secondary", "rootfs", "data", "boot"};
  if (std::find(std::begin(roles), std::end(roles), text) != std::end(roles)) return true;
  // pN: a partition by number ("p4"), for layouts the roles do not describe.
  return text.size() >= 2 && text[0] == 'p' &&
         std::all_of(text.begin() + 1, text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

SplitPath split_role(std::string_view text) {
  const std::size_t colon = text.find(':');
  if (colon != std::string_view::npos && is_known_role(text.substr(0, colon))) {
    return {std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
  }
  return {"", std::string(text)};
}

std::optional<std::string> normalize_lexically(std::string_view absolute_path) {
  std::vector<std::string_view> parts;
  std::size_t position = 0;
  while (position <= absolute_path.size()) {
    std::size_t slash = absolute_path.find('/', position);
    if (slash == std::string_view::npos) slash = absolute_path.size();
    const std::string_view part = absolute_path.substr(position, slash - position);
    if (part == "..") {
      if (parts.empty()) return std::nullopt;
      parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    position = slash + 1;
  }
  std::string out;
  for (std::string_view part : parts) {
    out += '/';
    out += part;
  }
  return out.empty() ? std::string("/") : out;
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
