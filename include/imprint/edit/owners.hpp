// Owners: "uid:gid" numbers, or "user:group" names resolved through the image's own /etc/passwd
// and /etc/group (the device's users, not the host's).
#pragma once

#include <cstdint>
#include <string>

namespace imprint {

struct Owner {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
};

// passwd and group are the files' texts (may be empty when the image has none). A name that is
// not found is Error(Invalid) naming it; "user" alone means user:user's primary group.
Owner resolve_owner(const std::string& owner, const std::string& passwd, const std::string& group);

}  // namespace imprint
