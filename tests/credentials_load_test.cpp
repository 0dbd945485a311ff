// Loading device credentials: every key format certGen.sh and OpenSSL 1.x/3 produce, certificates
// in PEM and DER, chains, PFX files (OpenSSL 3 and legacy RC2), and one-line errors naming the file.
#include <gtest/gtest.h>
#include <openssl/provider.h>

#include <cstdlib>
#include <filesystem>

#include "imprint/credentials/credentials.hpp"
#include "imprint/core/error.hpp"
#include "credentials_support.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::run;

using test::cred;
using test::elf_fixture;
using test::inputs;
using test::kDevice;

// `openssl pkey -pubout` of a private key file: two loads of the same key compare equal this way.
std::string public_of_key_file(const std::string& path, const std::string& password = "") {
  std::vector<std::string> argv{"openssl", "pkey", "-in", path, "-pubout"};
  if (!password.empty()) argv.insert(argv.end(), {"-passin", "pass:" + password});
  const auto result = run(argv);
  EXPECT_EQ(result.status, 0) << result.err;
  return result.out;
}

std::string public_of_cert_file(const std::string& path) {
  const auto result = run({"openssl", "x509", "-in", path, "-pubkey", "-noout"});
  EXPECT_EQ(result.status, 0) << result.err;
  return result.out;
}

TEST(CredentialsLoad, KeyInEveryPemFormatAndCertificate) {
  const std::string expected = public_of_key_file(cred(kDevice + ".key.pem"));
  for (const char* key : {".key.pem", ".pkcs1.key.pem"}) {
    const auto credentials = DeviceCredentials::load(inputs({{"key", cred(kDevice + key)}, {"cert", cred(kDevice + ".cert.pem")}}));
    EXPECT_EQ(credentials.public_key_pem(), expected) << key;
    EXPECT_EQ(credentials.common_name(), kDevice);
  }
  const auto encrypted = DeviceCredentials::load(inputs({{"key", cred(kDevice + ".encrypted.key.pem")}, {"key_password", "1234"}, {"cert", cred(kDevice + ".cert.der")}}));
  EXPECT_EQ(encrypted.public_key_pem(), expected);
  EXPECT_EQ(encrypted.cert_pem(), test::read_file(cred(kDevice + ".cert.pem")));  // DER read back as the same cert

  const auto sec1 = DeviceCredentials::load(inputs({{"key", cred("ec.sec1.key.pem")}}));
  EXPECT_EQ(sec1.public_key_pem(), public_of_key_file(cred("ec.key.pem")));
  EXPECT_FALSE(sec1.has_cert());
}

TEST(CredentialsLoad, WrongOrMissingPasswordNamesTheFile) {
  const std::string key = cred(kDevice + ".encrypted.key.pem");
  try {
    DeviceCredentials::load(inputs({{"key", key}, {"key_password", "4321"}}));
    FAIL() << "a wrong password loaded the key";
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), key + ": not a private key (wrong password?)");
    EXPECT_EQ(std::string(error.what()).find("4321"), std::string::npos);
  }
  try {
    DeviceCredentials::load(inputs({{"key", key}}));
    FAIL() << "an encrypted key loaded without a password";
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), key + ": the key is encrypted and no password was given");
  }
}

TEST(CredentialsLoad, NotAKeyOrCertNamesTheFile) {
  const std::string cert = cred(kDevice + ".cert.pem");
  try {
    DeviceCredentials::load(inputs({{"key", cert}}));
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), cert + ": not a private key: it holds a certificate (PEM), not a private key");
  }
  const std::string key = cred(kDevice + ".key.pem");
  try {
    DeviceCredentials::load(inputs({{"cert", key}}));
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), key + ": not a certificate (PEM or DER)");
  }
  try {
    DeviceCredentials::load(inputs({{"key", "/nonexistent/dev1.key.pem"}}));
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::NotFound);
    EXPECT_NE(std::string(error.what()).find("/nonexistent/dev1.key.pem"), std::string::npos);
  }
  EXPECT_THROW(DeviceCredentials::load(inputs({})), Error);
}

// Issue 12: an empty or DER file as the key got "not a private key (wrong password?)".
TEST(CredentialsLoad, AFileThatIsNoPrivateKeySaysWhatItHolds) {
  test::TempDir dir;
  const std::string key = cred(kDevice + ".key.pem");
  const auto make = [&](const std::string& name, const std::string& command) {
    const std::string path = dir / name;
    test::shell(command + " > '" + path + "'");
    return path;
  };
  const std::vector<std::pair<std::string, std::string>> cases{
      {make("empty.pem", "true"), "the file is empty"},
      {make("key.der", "openssl pkey -in '" + key + "' -outform DER"), "it is DER (binary); imprint reads private keys in PEM"},
      {cred(kDevice + ".cert.der"), "it holds a DER certificate, not a private key"},
      {make("pub.pem", "openssl pkey -in '" + key + "' -pubout"), "it holds a public key, not a private key"},
      {make("csr.pem", "openssl req -new -key '" + key + "' -subj /CN=x"), "it holds a certificate signing request (CSR)"},
      {cred(kDevice + ".cert.pfx"), "it is a PKCS#12 (PFX) file: give it as the pfx credential"},
      {make("text.txt", "echo hello"), "it is neither PEM nor DER"},
  };
  for (const auto& [path, expected] : cases) {
    try {
      DeviceCredentials::load(inputs({{"key", path}}));
      ADD_FAILURE() << path << " loaded as a key";
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_EQ(message.rfind(path + ": not a private key: ", 0), 0u) << message;
      EXPECT_NE(message.find(expected), std::string::npos) << message;
      EXPECT_EQ(message.find("wrong password"), std::string::npos) << message;
    }
  }
}

TEST(CredentialsLoad, ChainFileInOrder) {
  const auto credentials = DeviceCredentials::load(inputs({{"key", cred(kDevice + ".key.pem")}, {"cert", cred(kDevice + ".cert.pem")}, {"chain", cred("chain.cert.pem")}}));
  EXPECT_EQ(credentials.chain_size(), 2u);
  EXPECT_EQ(credentials.chain_pem(), test::read_file(cred("chain.cert.pem")));
  EXPECT_EQ(credentials.fullchain_pem(), test::read_file(cred(kDevice + ".fullchain.cert.pem")));
  const std::string key = cred(kDevice + ".key.pem");
  try {
    DeviceCredentials::load(inputs({{"chain", key}}));
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), key + ": no PEM certificate in the chain file");
  }
}

TEST(CredentialsLoad, Pfx) {
  const std::string pfx = cred(kDevice + ".cert.pfx");
  const auto credentials = DeviceCredentials::load(inputs({{"pfx", pfx}, {"pfx_password", "1234"}}));
  EXPECT_EQ(credentials.public_key_pem(), public_of_key_file(cred(kDevice + ".key.pem")));
  EXPECT_EQ(credentials.cert_pem(), test::read_file(cred(kDevice + ".cert.pem")));
  ASSERT_TRUE(credentials.loaded_pfx().has_value());
  EXPECT_EQ(*credentials.loaded_pfx(), test::read_file(pfx));
  try {
    DeviceCredentials::load(inputs({{"pfx", pfx}, {"pfx_password", "12345"}}));
    FAIL() << "a wrong PFX password opened it";
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), pfx + ": the PFX does not open with the given password");
  }
  try {
    DeviceCredentials::load(inputs({{"pfx", cred(kDevice + ".cert.pem")}, {"pfx_password", "1234"}}));
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), cred(kDevice + ".cert.pem") + ": not a PKCS#12 (PFX) file");
  }
}

TEST(CredentialsLoad, LegacyRc2PfxLoadsWithoutTouchingTheDefaultContext) {
  const std::string pfx = cred(kDevice + ".legacy.pfx");
  // The fixture really is the OpenSSL 1.x kind: RC2-40 for the certificate bag.
  const auto info = run({"openssl", "pkcs12", "-in", pfx, "-info", "-noout", "-legacy", "-passin", "pass:1234"});
  ASSERT_EQ(info.status, 0) << info.err;
  EXPECT_NE(info.err.find("RC2"), std::string::npos) << info.err;
  // ... which OpenSSL 3 without the legacy provider cannot read.
  EXPECT_NE(run({"openssl", "pkcs12", "-in", pfx, "-info", "-noout", "-passin", "pass:1234"}).status, 0);

  const auto credentials = DeviceCredentials::load(inputs({{"pfx", pfx}, {"pfx_password", "1234"}}));
  EXPECT_EQ(credentials.public_key_pem(), public_of_key_file(cred(kDevice + ".key.pem")));
  EXPECT_EQ(credentials.common_name(), kDevice);
  EXPECT_EQ(OSSL_PROVIDER_available(nullptr, "legacy"), 0) << "the process default library context was changed";
}

TEST(CredentialsLoad, KeyAndCertFilesOverrideThePfx) {
  const auto credentials = DeviceCredentials::load(inputs({{"key", cred("other.key.pem")}, {"pfx", cred(kDevice + ".cert.pfx")}, {"pfx_password", "1234"}}));
  EXPECT_EQ(credentials.public_key_pem(), public_of_key_file(cred("other.key.pem")));
  EXPECT_EQ(credentials.cert_pem(), test::read_file(cred(kDevice + ".cert.pem")));
}

TEST(CredentialsLoad, ThumbprintsAndDatesMatchOpenssl) {
  const std::string cert = cred(kDevice + ".cert.pem");
  const auto credentials = DeviceCredentials::load(inputs({{"cert", cert}}));
  const auto fingerprint = [&](const char* digest) {
    std::string out = run({"openssl", "x509", "-in", cert, "-noout", "-fingerprint", digest}).out;
    out = out.substr(out.find('=') + 1);
    std::erase(out, ':');
    std::erase(out, '\n');
    return out;
  };
  EXPECT_EQ(credentials.sha1_thumbprint(), fingerprint("-sha1"));
  EXPECT_EQ(credentials.sha256_thumbprint(), fingerprint("-sha256"));
  EXPECT_EQ(credentials.sha1_thumbprint().size(), 40u);
  const auto end = run({"openssl", "x509", "-in", cert, "-noout", "-enddate", "-dateopt", "iso_8601"});
  ASSERT_EQ(end.status, 0) << end.err;  // notAfter=2026-11-30 14:16:33Z
  EXPECT_EQ(format_utc(credentials.not_after()).substr(0, 19), end.out.substr(9, 19));
  EXPECT_EQ(credentials.public_key_pem(), public_of_cert_file(cert));  // no key: the certificate's
}

}  // namespace
}  // namespace imprint
