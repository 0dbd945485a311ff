// Helpers shared by the credentials tests: the fixture credentials and ELF binaries (built by
// ctest's build_fixtures), and CredentialInputs built by field name.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "imprint/credentials/credentials.hpp"
#include "support.hpp"

namespace imprint::test {

inline const std::string kDevice = "mender-azure-test-device1";

inline std::string cred(const std::string& name) { return fixture("credentials/" + name); }
inline std::string elf_fixture(const std::string& name) { return fixture("elf/" + name); }

// CredentialInputs by field name (designated initializers trip -Wmissing-field-initializers).
inline CredentialInputs inputs(const std::vector<std::pair<std::string, std::string>>& fields) {
  CredentialInputs in;
  for (const auto& [name, value] : fields) {
    std::string* field = name == "key" ? &in.key : name == "key_password" ? &in.key_password : name == "cert" ? &in.cert
                       : name == "chain" ? &in.chain : name == "pfx" ? &in.pfx : name == "pfx_password" ? &in.pfx_password : nullptr;
    if (field == nullptr) throw std::logic_error("no input " + name);
    *field = value;
  }
  return in;
}

}  // namespace imprint::test
