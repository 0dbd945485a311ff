// Owners: "uid:gid" numbers, or "user:group" names resolved through the image's own /etc/passwd
// and /etc/group (the device's users, not the host's).
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace imprint {

struct Owner {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
};

// passwd and group are the files' texts (may be empty when the image has none). A name that is
// not found is Error(Invalid) naming it; "user" alone means user:user's primary group.
Owner resolve_owner(const std::string& owner, const std::string& passwd, const std::string& group);

// The other direction, for `ls -l`: uid and gid to the names in the image's /etc/passwd and
// /etc/group; a number without an entry stays a number.
struct OwnerNames {
  std::map<std::uint32_t, std::string> users, groups;
  static OwnerNames parse(const std::string& passwd, const std::string& group);
  std::string user(std::uint32_t uid) const;
  std::string group(std::uint32_t gid) const;
};

}  // namespace imprint
