// Internal to the profile module: where a profile path lands, as far as it can be known without
// an image, so two entries that write the same place are refused before anything is written.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imprint::profile_detail {

// "ROLE:PATH" split leniently: the role is the text before the first ':' only when it is a role
// name (a template may still supply the rest), unlike the strict parse_path_spec.
struct SplitPath {
  std::string role;  // "" for a device-view path
  std::string path;
};
SplitPath split_role(std::string_view text);

// Remembers every target written so far and refuses one that lands on the same place as an
// earlier one: "/etc/x" (both root filesystems), "primary:/etc/x" and "rootfs:/etc/x" overlap, so
// do "/data/mender/x" and "data:/mender/x".
class TargetRegistry {
 public:
  // `where` is "<file>:<line>:<col>", `label` e.g. "files[2]"; throws Error(Invalid) on overlap.
  void add(const std::string& text, const std::string& where, const std::string& label);

 private:
  struct Owner {
    std::string text;
    std::string where;
    std::string label;
  };
  std::map<std::string, Owner> owners_;  // "primary:/etc/x" -> first entry writing it
};

}  // namespace imprint::profile_detail
