#include "imprint/edit/owners.hpp"

#include <charconv>
#include <optional>
#include <sstream>
#include <string_view>
#include <vector>

#include "imprint/core/error.hpp"

namespace imprint {

namespace {

std::optional<std::uint32_t> parse_id(std::string_view text) {
  std::uint32_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Fields of the line in a passwd/group style file whose first field is name.
std::optional<std::vector<std::string>> find_entry(const std::string& database, const std::string& name) {
  std::istringstream lines(database);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> fields;
    std::istringstream parts(line);
    std::string field;
    while (std::getline(parts, field, ':')) fields.push_back(field);
    if (fields.size() >= 3 && fields[0] == name) return fields;
  }
  return std::nullopt;
}

std::uint32_t lookup(const std::string& database, const std::string& file, const std::string& name, std::size_t field) {
  if (auto id = parse_id(name)) return *id;
  const auto entry = find_entry(database, name);
  if (!entry || entry->size() <= field) {
    throw Error("owner '" + name + "' is not in the image's " + file, ErrorCode::Invalid);
  }
  const auto id = parse_id((*entry)[field]);
  if (!id) throw Error("the image's " + file + " has a malformed entry for '" + name + "'", ErrorCode::Corrupt);
  return *id;
}

}  // namespace

Owner resolve_owner(const std::string& owner, const std::string& passwd, const std::string& group) {
  const auto colon = owner.find(':');
  const std::string user = owner.substr(0, colon);
  if (user.empty()) throw Error("owner '" + owner + "' names no user (use uid:gid or user:group)", ErrorCode::Invalid);
  Owner result;
  result.uid = lookup(passwd, "/etc/passwd", user, 2);
  if (colon == std::string::npos) {
    // "user" alone: the user's primary group, as chown does for "user:".
    if (parse_id(user)) {
      result.gid = result.uid;
    } else {
      result.gid = lookup(passwd, "/etc/passwd", user, 3);
    }
    return result;
  }
  const std::string group_name = owner.substr(colon + 1);
  if (group_name.empty()) throw Error("owner '" + owner + "' names no group", ErrorCode::Invalid);
  result.gid = lookup(group, "/etc/group", group_name, 2);
  return result;
}

}  // namespace imprint
