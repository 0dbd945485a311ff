// Which variables a device is given versus which the profile uses: all missing ones in one error,
// and a name the profile never uses (a typo: --set dps_clinet=...) named with its closest match.
#include <algorithm>
#include <set>
#include <vector>

#include "imprint/core/error.hpp"
#include "imprint/profile/profile.hpp"

namespace imprint {

namespace {

// Levenshtein distance: insertions, deletions and substitutions, one each.
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "'" : ", '") + name + "'";
  return out;
}

}  // namespace

bool variable_has_default(const Profile& profile, const std::string& name) {
  if (profile.variables.count(name) != 0) return true;
  // credentials.pfx_password left at its default template: the PFX gets the built-in password.
  return name == "pfx_password" && profile.credentials && profile.credentials->pfx_password == "{{pfx_password}}";
}

void require_variables(const Profile& profile, const Variables& variables) {
  std::vector<std::string> missing;
  for (const std::string& name : required_variables(profile)) {
    if (variables.find(name) == variables.end() && !variable_has_default(profile, name)) missing.push_back(name);
  }
  if (missing.empty()) return;
  const bool one = missing.size() == 1;
  throw Error(profile.path + ": no value for " + (one ? "variable " : "variables ") + quoted_list(missing) + ": set " +
                  (one ? "it" : "each") + " with --set NAME=... or a column of the devices CSV",
              ErrorCode::Invalid);
}

std::string unused_variable_problem(const Profile& profile, const std::string& name) {
  std::set<std::string> known;
  for (const std::string& used : required_variables(profile)) known.insert(used);
  for (const auto& [defined, value] : profile.variables) known.insert(defined);
  if (known.count(name) != 0) return "";
  std::string problem = profile.path + " never uses variable '" + name + "'";
  // The closest name the profile knows, as a typo's likely intent (device_id is always known).
  const auto closest = std::min_element(known.begin(), known.end(), [&](const std::string& a, const std::string& b) {
    return edit_distance(name, a) < edit_distance(name, b);
  });
  if (closest != known.end()) problem += " (did you mean '" + *closest + "'?)";
  return problem;
}

}  // namespace imprint
