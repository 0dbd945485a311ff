// Fuzzes template expansion on its own (shorter inputs reach its corners faster than through
// YAML). Input: the template, then after the first NUL byte "name=value" lines of variables.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "imprint/core/error.hpp"
#include "imprint/profile/template.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace imprint;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find('\0');
  const std::string_view text = input.substr(0, split);
  Variables variables;
  if (split != std::string_view::npos) {
    std::string_view rest = input.substr(split + 1);
    while (!rest.empty()) {
      const std::size_t newline = rest.find('\n');
      const std::string_view line = rest.substr(0, newline);
      rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
      const std::size_t equals = line.find('=');
      if (equals != std::string_view::npos) variables[std::string(line.substr(0, equals))] = line.substr(equals + 1);
    }
  }
  try {
    const auto names = template_variables(text, "fuzz");
    const std::string expanded = expand_template(text, variables, "fuzz");
    // Every name the scan reports must be defined for expansion to have succeeded.
    for (const std::string& name : names) {
      if (!is_variable_name(name) || variables.count(name) == 0) __builtin_trap();
    }
    (void)expanded;
  } catch (const Error&) {
  }
  return 0;
}
