// Fuzzes the profile loader and everything a profile's text reaches before an image is opened:
// strict YAML loading, template syntax (required_variables), and plan building (expansion, path
// checks, duplicate targets). Any imprint::Error is a clean refusal; anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "imprint/core/error.hpp"
#include "imprint/profile/plan.hpp"
#include "imprint/profile/profile.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace imprint;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    Profile profile = parse_profile(text, "fuzz.yaml", "/nonexistent/imprint-fuzz");
    // A source: names a host file; reading arbitrary host paths (/dev/zero) is not what is being
    // fuzzed, so sources become inline content of the same template text.
    for (FileSpec& file : profile.files) {
      if (file.kind == ContentKind::Source) file.kind = ContentKind::Content;
    }
    Variables values;
    for (const std::string& name : required_variables(profile)) values[name] = "v-" + name;
    const Variables variables = device_variables(profile, values, "fuzz-device");
    const Plan plan = build_plan(profile, variables, [](const std::string& name, const std::string& format) {
      return "credential " + name + " " + format;
    });
    (void)format_plan(plan);
    (void)plan_to_json(plan);
  } catch (const Error&) {
  }
  return 0;
}
