// Fuzzes the identity-output parser and the JSON it feeds (identity and preauthorization bodies,
// whose encoder handles invalid UTF-8 the way Go does).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "imprint/core/error.hpp"
#include "imprint/credentials/identity.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace imprint;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const IdentityAttributes identity = parse_identity_output(text);
    const std::string json = identity_json(identity);
    // The encoder's output must be valid JSON whatever bytes the script printed.
    if (!nlohmann::json::accept(json)) __builtin_trap();
    (void)preauth_json(identity, "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n");
  } catch (const Error&) {
  }
  return 0;
}
