// Generating device credentials like certGen.sh (without the 30-day trap) and exporting them:
// checked with the openssl CLI, never only with our own reader.
// in PEM and DER, chains, PFX files (OpenSSL 3 and legacy RC2), and one-line errors naming the file.
#include <gtest/gtest.h>
#include <openssl/provider.h>

#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "imprint/credentials/credentials.hpp"
#include "imprint/credentials/identity.hpp"
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

std::string cert_public_key(const std::string& cert_path) {
  const auto result = run({"openssl", "x509", "-in", cert_path, "-pubkey", "-noout"});
  EXPECT_EQ(result.status, 0) << result.err;
  return result.out;
}

// generate() with the fixture CA: the intermediate signs; its file holds intermediate + root.
DeviceCredentials generate_device(const std::string& id, const std::string& key_type = "rsa:2048", int days = 30) {
  return DeviceCredentials::generate(cred("chain.cert.pem"), cred("intermediate.key.pem"), "1234", id, key_type, days);
}

TEST(CredentialsGenerate, CertificateVerifiesWithOpensslAndHasTheRightProfile) {
  test::TempDir dir;
  const auto credentials = generate_device(kDevice, "rsa:4096");
  test::write_file(dir / "leaf.pem", credentials.cert_pem());
  const auto verify = run({"openssl", "verify", "-CAfile", cred("root.cert.pem"), "-untrusted",
                           cred("intermediate.cert.pem"), "-purpose", "sslclient", dir / "leaf.pem"});
  EXPECT_EQ(verify.status, 0) << verify.out << verify.err;

  const auto text = run({"openssl", "x509", "-in", dir / "leaf.pem", "-noout", "-text"}).out;
  EXPECT_NE(text.find("Subject: CN = " + kDevice + "\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Public-Key: (4096 bit)"), std::string::npos);
  EXPECT_NE(text.find("Signature Algorithm: sha256WithRSAEncryption"), std::string::npos);
  EXPECT_NE(text.find("X509v3 Basic Constraints: critical\n                CA:FALSE"), std::string::npos) << text;
  EXPECT_NE(text.find("Digital Signature, Key Encipherment"), std::string::npos);
  EXPECT_NE(text.find("TLS Web Client Authentication"), std::string::npos);
  EXPECT_NE(text.find("X509v3 Subject Key Identifier"), std::string::npos);
  EXPECT_NE(text.find("X509v3 Authority Key Identifier"), std::string::npos);

  // A random positive serial of 128 bits (16 octets, top bit clear).
  const std::string serial = run({"openssl", "x509", "-in", dir / "leaf.pem", "-noout", "-serial"}).out;
  ASSERT_EQ(serial.rfind("serial=", 0), 0u);
  EXPECT_EQ(serial.size(), std::string("serial=").size() + 32 + 1) << serial;
  EXPECT_LT(std::stoi(serial.substr(7, 1), nullptr, 16), 8);
  EXPECT_NE(serial, run({"openssl", "x509", "-in", cred(kDevice + ".cert.pem"), "-noout", "-serial"}).out);
  EXPECT_EQ(credentials.chain_pem(), test::read_file(cred("chain.cert.pem")));
  EXPECT_EQ(credentials.not_after() - credentials.not_before(), 30 * 86400);
}

TEST(CredentialsGenerate, HonoursSourceDateEpochAndRefusesBadInputs) {
  ::setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
  const auto credentials = generate_device("epoch-device", "ec:p256", 10);
  ::unsetenv("SOURCE_DATE_EPOCH");
  EXPECT_EQ(credentials.not_before(), 1700000000);
  EXPECT_EQ(credentials.not_after(), 1700000000 + 10 * 86400);
  EXPECT_NE(credentials.key_pem(KeyFormat::Pkcs1).find("-----BEGIN EC PRIVATE KEY-----"), std::string::npos);

  const auto message = [](auto&& call) {
    try {
      call();
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([] { generate_device("x", "dsa:1024"); }),
            "key type 'dsa:1024' is not one of rsa:2048, rsa:3072, rsa:4096, ec:p256");
  EXPECT_EQ(message([] { DeviceCredentials::generate(cred("chain.cert.pem"), cred("intermediate.key.pem"), "4321", "x"); }),
            cred("intermediate.key.pem") + ": not a private key (wrong password?)");
  EXPECT_EQ(message([] { DeviceCredentials::generate(cred("chain.cert.pem"), cred("other.key.pem"), "", "x"); }),
            cred("other.key.pem") + ": not the key of the CA certificate " + cred("chain.cert.pem"));
  EXPECT_EQ(message([] { DeviceCredentials::generate(cred(kDevice + ".cert.pem"), cred(kDevice + ".key.pem"), "", "x"); }),
            cred(kDevice + ".cert.pem") + ": not a CA certificate");
  EXPECT_EQ(message([] { generate_device("x", "rsa:2048", 0); }), "certs: validity of 0 days is not positive");
}

TEST(CredentialsExport, KeyFormats) {
  const auto credentials = generate_device(kDevice);
  const std::string pkcs1 = credentials.key_pem(KeyFormat::Pkcs1), pkcs8 = credentials.key_pem(KeyFormat::Pkcs8);
  EXPECT_EQ(pkcs1.rfind("-----BEGIN RSA PRIVATE KEY-----\n", 0), 0u);
  EXPECT_EQ(pkcs8.rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u);
  // Both are the same key, and its public half is the certificate's.
  test::TempDir dir;
  test::write_file(dir / "cert.pem", credentials.cert_pem());
  EXPECT_EQ(run({"openssl", "pkey", "-pubout"}, pkcs1).out, cert_public_key(dir / "cert.pem"));
  EXPECT_EQ(run({"openssl", "pkey", "-pubout"}, pkcs8).out, cert_public_key(dir / "cert.pem"));
  EXPECT_EQ(parse_key_format("pkcs1"), KeyFormat::Pkcs1);
  EXPECT_THROW(parse_key_format("PKCS1"), Error);
}

// Extracts the key from a PFX with the openssl CLI (password 1234) as a public key PEM.
std::string pfx_public_key(const std::string& pfx_path, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv{"openssl", "pkcs12", "-in", pfx_path, "-nocerts", "-nodes", "-passin", "pass:1234"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const auto keys = run(argv);
  EXPECT_EQ(keys.status, 0) << keys.err;
  return run({"openssl", "pkey", "-pubout"}, keys.out).out;
}

TEST(CredentialsExport, CompatPfxOpensWithOpensslAndHoldsTheKey) {
  test::TempDir dir;
  const auto credentials = generate_device(kDevice);
  test::write_file(dir / "dev.pfx", credentials.pfx("1234", PfxEncryption::Compat));
  const auto info = run({"openssl", "pkcs12", "-in", dir / "dev.pfx", "-info", "-noout", "-passin", "pass:1234"});
  ASSERT_EQ(info.status, 0) << info.err;  // no -legacy: OpenSSL 3's default provider reads it
  EXPECT_NE(info.err.find("MAC: sha1"), std::string::npos) << info.err;
  EXPECT_NE(info.err.find("pbeWithSHA1And3-KeyTripleDES-CBC"), std::string::npos) << info.err;
  EXPECT_EQ(info.err.find("RC2"), std::string::npos) << info.err;
  EXPECT_EQ(info.err.find("AES"), std::string::npos) << info.err;
  EXPECT_EQ(pfx_public_key(dir / "dev.pfx"), run({"openssl", "pkey", "-pubout"}, credentials.key_pem(KeyFormat::Pkcs1)).out);
  EXPECT_NE(run({"openssl", "pkcs12", "-in", dir / "dev.pfx", "-info", "-noout", "-passin", "pass:4321"}).status, 0);
  // The certificate inside is the leaf only (certGen.sh's PFX: key + leaf).
  const auto certs = run({"openssl", "pkcs12", "-in", dir / "dev.pfx", "-nokeys", "-passin", "pass:1234"});
  EXPECT_NE(certs.out.find("subject=CN = " + kDevice), std::string::npos) << certs.out;
  EXPECT_EQ(certs.out.find("BEGIN CERTIFICATE"), certs.out.rfind("BEGIN CERTIFICATE"));
}

TEST(CredentialsExport, AesPfxUsesOpenssl3Defaults) {
  test::TempDir dir;
  const auto credentials = generate_device(kDevice);
  test::write_file(dir / "dev.pfx", credentials.pfx("1234", PfxEncryption::Aes));
  const auto info = run({"openssl", "pkcs12", "-in", dir / "dev.pfx", "-info", "-noout", "-passin", "pass:1234"});
  ASSERT_EQ(info.status, 0) << info.err;
  EXPECT_NE(info.err.find("MAC: sha256"), std::string::npos) << info.err;
  EXPECT_NE(info.err.find("AES-256-CBC"), std::string::npos) << info.err;
  EXPECT_EQ(pfx_public_key(dir / "dev.pfx"), run({"openssl", "pkey", "-pubout"}, credentials.key_pem(KeyFormat::Pkcs8)).out);
  // Reloading our own PFX gives the same key and certificate back.
  const auto again = DeviceCredentials::load(inputs({{"pfx", dir / "dev.pfx"}, {"pfx_password", "1234"}}));
  EXPECT_EQ(again.cert_pem(), credentials.cert_pem());
  EXPECT_EQ(again.public_key_pem(), credentials.public_key_pem());
}

TEST(CredentialsExport, PreauthPubkeyIsTheCertificatesKey) {
  test::TempDir dir;
  const auto credentials = DeviceCredentials::load(
      inputs({{"key", cred(kDevice + ".pkcs1.key.pem")}, {"cert", cred(kDevice + ".cert.pem")}}));
  const std::string body = preauth_json({{"DeviceId", {kDevice}}}, credentials.public_key_pem());
  const auto json = nlohmann::json::parse(body);
  EXPECT_EQ(json.at("identity_data"), nlohmann::json::parse(R"({"DeviceId":"mender-azure-test-device1"})"));
  const std::string pubkey = json.at("pubkey");
  EXPECT_EQ(pubkey.rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0u);
  const auto parsed = run({"openssl", "pkey", "-pubin", "-pubout"}, pubkey);
  ASSERT_EQ(parsed.status, 0) << parsed.err;
  EXPECT_EQ(parsed.out, cert_public_key(cred(kDevice + ".cert.pem")));
  EXPECT_EQ(body.find("PRIVATE"), std::string::npos);
}

TEST(CredentialsExport, DpsEnrollmentRecordCarriesTheLeafCertificate) {
  test::TempDir dir;
  const auto credentials = DeviceCredentials::load(inputs({{"cert", cred(kDevice + ".cert.pem")}}));
  const auto record = nlohmann::json::parse(dps_enrollment_json(credentials));
  EXPECT_EQ(record.at("registrationId"), kDevice);
  EXPECT_EQ(record.at("attestation").at("type"), "x509");
  const std::string base64 = record.at("attestation").at("x509").at("clientCertificates").at("primary").at("certificate");
  const auto der = run({"openssl", "base64", "-d", "-A"}, base64);
  EXPECT_EQ(der.out, test::read_file(cred(kDevice + ".cert.der")));
}

TEST(CredentialsCerts, WritesTheSetWithModesAndNoOtherFile) {
  test::TempDir dir;
  const std::string out = dir / "out";
  const auto credentials = generate_device(kDevice);
  const auto paths = credentials.write_certs_dir(out, "1234");
  const std::vector<std::string> expected{out + "/" + kDevice + ".key.pem", out + "/" + kDevice + ".cert.pem",
                                          out + "/" + kDevice + ".fullchain.cert.pem", out + "/" + kDevice + ".cert.pfx"};
  EXPECT_EQ(paths, expected);
  const auto mode = [](const std::string& path) {
    return static_cast<unsigned>(std::filesystem::status(path).permissions()) & 0777u;
  };
  EXPECT_EQ(mode(out), 0700u);
  EXPECT_EQ(mode(expected[0]), 0600u);
  EXPECT_EQ(mode(expected[1]), 0644u);
  EXPECT_EQ(mode(expected[2]), 0644u);
  EXPECT_EQ(mode(expected[3]), 0600u);
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) files += entry.is_regular_file();
  EXPECT_EQ(files, 4u);  // no temp file left behind

  const std::string key = test::read_file(expected[0]);
  EXPECT_EQ(key.rfind("-----BEGIN RSA PRIVATE KEY-----", 0), 0u);
  const auto verify = run({"openssl", "verify", "-CAfile", cred("root.cert.pem"), "-untrusted", cred("intermediate.cert.pem"), expected[1]});
  EXPECT_EQ(verify.status, 0) << verify.err;
  EXPECT_EQ(test::read_file(expected[2]), credentials.cert_pem() + test::read_file(cred("chain.cert.pem")));
  EXPECT_EQ(pfx_public_key(expected[3]), run({"openssl", "pkey", "-pubout", "-in", expected[0]}).out);
  // The key's body appears in no file but the key file (the PFX holds it encrypted).
  const std::string body_line = key.substr(key.find('\n') + 1, 64);
  const auto grep = run({"grep", "-rlF", body_line, dir.path()});
  EXPECT_EQ(grep.out, expected[0] + "\n");
}

}  // namespace
}  // namespace imprint
