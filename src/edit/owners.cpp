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

// Each line of a passwd/group style file with at least name, password and id, split at ':'; fn
// returns true to stop.
template <typename Fn>
void for_each_entry(const std::string& database, Fn&& fn) {
  std::istringstream lines(database);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> fields;
    std::istringstream parts(line);
    std::string field;
    while (std::getline(parts, field, ':')) fields.push_back(field);
    if (fields.size() >= 3 && fn(fields)) return;
  }
}

// Fields of the line in a passwd/group style file whose first field is name.
std::optional<std::vector<std::string>> find_entry(const std::string& database, const std::string& name) {
  std::optional<std::vector<std::string>> found;
  for_each_entry(database, [&](std::vector<std::string>& fields) {
    if (fields[0] != name) return false;
    found = std::move(fields);
    return true;
  });
  return found;
}

// id -> name; the first entry of an id wins, as getpwuid() returns it.
std::map<std::uint32_t, std::string> names_by_id(const std::string& database) {
  std::map<std::uint32_t, std::string> names;
  for_each_entry(database, [&](const std::vector<std::string>& fields) {
    if (const auto id = parse_id(fields[2])) names.emplace(*id, fields[0]);
    return false;
  });
  return names;
}

std::string name_or_number(const std::map<std::uint32_t, std::string>& names, std::uint32_t id) {
  const auto found = names.find(id);
  return found == names.end() ? std::to_string(id) : found->second;
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

OwnerNames OwnerNames::parse(const std::string& passwd, const std::string& group) {
  return OwnerNames{names_by_id(passwd), names_by_id(group)};
}

std::string OwnerNames::user(std::uint32_t uid) const { return name_or_number(users, uid); }
std::string OwnerNames::group(std::uint32_t gid) const { return name_or_number(groups, gid); }

}  // namespace imprint
