#include "imprint/core/pathspec.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

#include "imprint/core/error.hpp"

namespace imprint {

std::optional<int> partition_role_number(std::string_view role) {
  if (role.size() < 2 || role.size() > 4 || role[0] != 'p' || role[1] == '0') return std::nullopt;
  if (!std::all_of(role.begin() + 1, role.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    return std::nullopt;
  }
  return std::stoi(std::string(role.substr(1)));
}


std::optional<std::string> lexically_normal(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(start, end - start);
    start = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) return std::nullopt;
      parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string normalized;
  for (std::string_view part : parts) {
    normalized += '/';
    normalized += part;
  }
  return normalized.empty() ? "/" : normalized;
}

std::string normalize_path(std::string_view path) {
  if (path.empty() || path.front() != '/') {
    throw Error("'" + std::string(path) + "' is not an absolute path", ErrorCode::Invalid);
  }
  auto normalized = lexically_normal(path);
  if (!normalized) throw Error(std::string(path) + " is outside the filesystem", ErrorCode::Invalid);
  return *normalized;
}

std::string parent_path(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

bool is_role_name(std::string_view text) {
  return text == "primary" || text == "secondary" || text == "rootfs" || text == "data" || text == "boot" ||
         partition_role_number(text).has_value();
}

PathSpec parse_path_spec(std::string_view text) {
  const std::size_t colon = text.find(':');
  if (text.empty() || text.front() == '/' || colon == std::string_view::npos) return PathSpec{"", std::string(text)};
  const std::string_view role = text.substr(0, colon);
  if (!is_role_name(role)) {
    throw Error("unknown role '" + std::string(role) + "' in " + std::string(text) +
                    " (roles: primary, secondary, rootfs, data, boot, pN)",
                ErrorCode::Invalid);
  }
  return PathSpec{std::string(role), std::string(text.substr(colon + 1))};
}

}  // namespace imprint
