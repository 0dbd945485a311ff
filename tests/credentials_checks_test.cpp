// The credential checks: each passes on good input and fails, naming check, device and reason, on
// the bad input it exists for.
// in PEM and DER, chains, PFX files (OpenSSL 3 and legacy RC2), and one-line errors naming the file.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

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

// The message of the CheckFailed error run_check throws, or "passed".
std::string check(const std::string& name, const CheckContext& context, const std::string& argument = "") {
  try {
    run_check(name, argument, context);
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::CheckFailed) << error.what();
    return error.what();
  }
  return "passed";
}

std::string failure(const std::string& name, const std::string& why, const std::string& device = kDevice) {
  return "check " + name + " failed for device " + device + ": " + why;
}

struct Device {
  DeviceCredentials credentials;
  CheckContext context;
  Device(const CredentialInputs& in, const std::string& id = kDevice) : credentials(DeviceCredentials::load(in)) {
    context.device_id = id;
    context.credentials = &credentials;
  }
};

Device good_device() {
  return Device(inputs({{"key", cred(kDevice + ".key.pem")}, {"cert", cred(kDevice + ".cert.pem")}, {"chain", cred("chain.cert.pem")}}));
}

TEST(CredentialsChecks, AllPassOnTheGoodDevice) {
  Device device = good_device();
  device.context.pfx = test::read_file(cred(kDevice + ".cert.pfx"));
  device.context.identity_script = "#!/bin/sh\necho DeviceId=" + kDevice + "\n";
  for (const auto& name : known_checks()) {
    EXPECT_EQ(check(name, device.context, name.ends_with("-valid-for-days") ? "30" : ""), "passed") << name;
  }
  EXPECT_EQ(known_checks(), (std::vector<std::string>{"cert-not-ca", "cert-valid-for-days", "chain-valid-for-days", "chain-verifies", "cn-is-device-id",
                                                      "dps-registration-id", "identity-prints-device-id", "key-matches-cert",
                                                      "pfx-opens", "rsa-only"}));
}

TEST(CredentialsChecks, UnknownCheckOrBadArgumentIsInvalid) {
  Device device = good_device();
  try {
    run_check("key-matches-certificate", "", device.context);
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::Invalid);
    EXPECT_EQ(std::string(error.what()), "unknown check 'key-matches-certificate'");
  }
  for (const char* argument : {"", "thirty", "-1", "30d"}) {
    try {
      run_check("cert-valid-for-days", argument, device.context);
      FAIL() << argument;
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::Invalid) << argument;
    }
  }
  EXPECT_THROW(run_check("rsa-only", "1", device.context), Error);
}

TEST(CredentialsChecks, MissingCredentialsFailTheChecksThatNeedThem) {
  CheckContext context;
  context.device_id = kDevice;
  EXPECT_EQ(check("key-matches-cert", context),
            failure("key-matches-cert", "no credentials are configured (credentials: in the profile)"));
  Device cert_only(inputs({{"cert", cred(kDevice + ".cert.pem")}}));
  EXPECT_EQ(check("rsa-only", cert_only.context), failure("rsa-only", "the credentials have no device key"));
  EXPECT_EQ(check("chain-verifies", cert_only.context),
            failure("chain-verifies", "no certificate chain is configured (credentials.chain or a PFX with CA certificates)"));
  EXPECT_EQ(check("pfx-opens", cert_only.context), failure("pfx-opens", "no PFX goes onto the device (from: credentials.pfx)"));
  EXPECT_EQ(check("identity-prints-device-id", cert_only.context),
            failure("identity-prints-device-id", "no identity script goes onto the image"));
}

TEST(CredentialsChecks, KeyMatchesCertFailsOnAMismatchedKey) {
  Device device(inputs({{"key", cred("other.key.pem")}, {"cert", cred(kDevice + ".cert.pem")}}));
  EXPECT_EQ(check("key-matches-cert", device.context),
            failure("key-matches-cert", "the device key is not the key of the certificate (its public key differs)"));
  Device ec(inputs({{"key", cred("ec.key.pem")}, {"cert", cred(kDevice + ".cert.pem")}}));
  EXPECT_NE(check("key-matches-cert", ec.context), "passed");
  Device ec_good(inputs({{"key", cred("ec.sec1.key.pem")}, {"cert", cred("ec.cert.pem")}}), "ec-device");
  EXPECT_EQ(check("key-matches-cert", ec_good.context), "passed");  // the round trip works for EC keys too
}

TEST(CredentialsChecks, CnIsDeviceId) {
  Device device = good_device();
  device.context.device_id = "mender-azure-test-device2";
  EXPECT_EQ(check("cn-is-device-id", device.context),
            failure("cn-is-device-id", "the certificate CN is \"" + kDevice + "\", not the device id", "mender-azure-test-device2"));
}

// A self-signed certificate with a 65-character CN: the openssl CLI refuses to write one
// (ub-common-name), so it is built with the API, bypassing the string table's size limit.
std::string long_cn_cert(const test::TempDir& dir, const std::string& cn) {
  const std::string key_pem = test::read_file(cred("other.key.pem"));
  BIO* bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  X509* cert = X509_new();
  X509_NAME* name = X509_NAME_new();
  X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING, reinterpret_cast<const unsigned char*>(cn.data()),
                             static_cast<int>(cn.size()), -1, 0);
  X509_set_version(cert, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
  X509_set_subject_name(cert, name);
  X509_set_issuer_name(cert, name);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_set_pubkey(cert, key);
  X509_sign(cert, key, EVP_sha256());
  BIO* out = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(out, cert);
  char* data = nullptr;
  const long size = BIO_get_mem_data(out, &data);
  const std::string path = dir / "long-cn.cert.pem";
  test::write_file(path, std::string(data, static_cast<std::size_t>(size)));
  BIO_free(out);
  X509_NAME_free(name);
  X509_free(cert);
  EVP_PKEY_free(key);
  return path;
}

TEST(CredentialsChecks, DpsRegistrationIdRefusesSpacesAndLongNames) {
  Device space(inputs({{"key", cred("space-cn.key.pem")}, {"cert", cred("space-cn.cert.pem")}}), "bad device");
  EXPECT_EQ(check("cn-is-device-id", space.context), "passed");
  EXPECT_EQ(check("dps-registration-id", space.context),
            failure("dps-registration-id",
                    "the certificate CN \"bad device\" is not a valid DPS registration id (letters, digits, '-', '.', '_', "
                    "starting and ending alphanumeric)",
                    "bad device"));
  test::TempDir dir;
  const std::string cn(65, 'd');
  const std::string path = long_cn_cert(dir, cn);
  ASSERT_NE(test::run({"openssl", "x509", "-in", path, "-noout", "-subject"}).out.find(cn), std::string::npos);
  Device long_cn(inputs({{"cert", path}}), cn);
  EXPECT_EQ(check("cn-is-device-id", long_cn.context), "passed");
  EXPECT_EQ(check("dps-registration-id", long_cn.context),
            failure("dps-registration-id", "the certificate CN \"" + cn + "\" has 65 characters; a DPS registration id has at most 64", cn));
  // 64 characters are fine; without a certificate the device id is checked.
  CheckContext no_cert;
  no_cert.device_id = std::string(64, 'a');
  EXPECT_EQ(check("dps-registration-id", no_cert), "passed");
  no_cert.device_id = "-leading-dash";
  EXPECT_NE(check("dps-registration-id", no_cert), "passed");
}

TEST(CredentialsChecks, CertNotCaRefusesACaCertificateAsLeaf) {
  Device device(inputs({{"cert", cred("ca-as-leaf.cert.pem")}}), "Azure IoT Hub Intermediate Cert Test Only");
  EXPECT_EQ(check("cert-not-ca", device.context),
            failure("cert-not-ca", "the device certificate is a CA certificate (basicConstraints CA:TRUE)", device.context.device_id));
}

TEST(CredentialsChecks, CertValidForDaysCatchesTheThirtyDayTrap) {
  Device short_lived(inputs({{"key", cred("short-validity.key.pem")}, {"cert", cred("short-validity.cert.pem")}}), "short-validity-device");
  EXPECT_EQ(check("cert-valid-for-days", short_lived.context, "7"), "passed");
  ::setenv("SOURCE_DATE_EPOCH", "86400", 1);  // reproducible builds must not move the check's clock
  EXPECT_EQ(check("cert-valid-for-days", short_lived.context, "7"), "passed");
  ::unsetenv("SOURCE_DATE_EPOCH");
  const std::string expiry = format_utc(short_lived.credentials.not_after());
  EXPECT_EQ(check("cert-valid-for-days", short_lived.context, "60"),
            failure("cert-valid-for-days", "the certificate expires on " + expiry + ", within 60 days", "short-validity-device"));
  // openssl agrees that it ends within 60 days but not within 7.
  EXPECT_EQ(test::run({"openssl", "x509", "-in", cred("short-validity.cert.pem"), "-noout", "-checkend", std::to_string(60 * 86400)}).status, 1);
  EXPECT_EQ(test::run({"openssl", "x509", "-in", cred("short-validity.cert.pem"), "-noout", "-checkend", std::to_string(7 * 86400)}).status, 0);
}

TEST(CredentialsChecks, CertValidForDaysRefusesExpiredAndNotYetValid) {
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  ::setenv("SOURCE_DATE_EPOCH", std::to_string(now - 10 * 86400).c_str(), 1);
  auto expired = DeviceCredentials::generate(cred("chain.cert.pem"), cred("intermediate.key.pem"), "1234", kDevice, "ec:p256", 2);
  ::setenv("SOURCE_DATE_EPOCH", std::to_string(now + 10 * 86400).c_str(), 1);
  auto future = DeviceCredentials::generate(cred("chain.cert.pem"), cred("intermediate.key.pem"), "1234", kDevice, "ec:p256", 300);
  ::unsetenv("SOURCE_DATE_EPOCH");
  test::TempDir dir;
  test::write_file(dir / "expired.pem", expired.cert_pem());
  ASSERT_EQ(test::run({"openssl", "x509", "-in", dir / "expired.pem", "-noout", "-checkend", "0"}).status, 1);  // really expired

  CheckContext context;
  context.device_id = kDevice;
  context.credentials = &expired;
  EXPECT_EQ(check("cert-valid-for-days", context, "0"),
            failure("cert-valid-for-days", "the certificate expired on " + format_utc(now - 8 * 86400)));
  context.credentials = &future;
  EXPECT_EQ(check("cert-valid-for-days", context, "0"),
            failure("cert-valid-for-days", "the certificate is not valid before " + format_utc(now + 10 * 86400)));
}

TEST(CredentialsChecks, ChainVerifiesNeedsTheWholeChain) {
  Device good = good_device();
  EXPECT_EQ(check("chain-verifies", good.context), "passed");
  Device root_only(inputs({{"cert", cred(kDevice + ".cert.pem")}, {"chain", cred("root.cert.pem")}}));
  EXPECT_EQ(check("chain-verifies", root_only.context),
            failure("chain-verifies", "the certificate does not verify against its chain: unable to get local issuer certificate"));
  Device no_root(inputs({{"cert", cred(kDevice + ".cert.pem")}, {"chain", cred("intermediate.cert.pem")}}));
  EXPECT_EQ(check("chain-verifies", no_root.context),
            failure("chain-verifies", "the certificate chain has no root (self-signed) certificate"));
}

// A device certificate valid for 400 days under an intermediate that ends sooner (the fixture CA:
// 365 days; certGen.sh's: 30), made with the openssl CLI, which does not refuse it.
TEST(CredentialsChecks, ChainValidForDaysChecksEveryCertificateOfTheChain) {
  test::TempDir dir;
  test::shell("openssl req -new -newkey rsa:2048 -nodes -keyout '" + dir / "k.pem" + "' -subj /CN=" + kDevice + " -out '" +
              dir / "r.csr" + "' 2>/dev/null");
  test::shell("openssl x509 -req -in '" + dir / "r.csr" + "' -CA '" + cred("intermediate.cert.pem") + "' -CAkey '" +
              cred("intermediate.key.pem") + "' -passin pass:1234 -set_serial 77 -days 400 -out '" + dir / "c.pem" + "' 2>/dev/null");
  Device outliving(inputs({{"key", dir / "k.pem"}, {"cert", dir / "c.pem"}, {"chain", cred("chain.cert.pem")}}));
  EXPECT_EQ(check("cert-valid-for-days", outliving.context, "370"), "passed");  // the leaf alone looks fine
  const std::string intermediate_end = test::shell("openssl x509 -in '" + cred("intermediate.cert.pem") + "' -noout -enddate");
  ASSERT_EQ(test::run({"openssl", "x509", "-in", cred("intermediate.cert.pem"), "-noout", "-checkend", std::to_string(370 * 86400)}).status, 1)
      << "the fixture intermediate lives longer than 370 days (" << intermediate_end << "): this test needs one that ends sooner";
  const std::string result = check("chain-valid-for-days", outliving.context, "370");
  EXPECT_NE(result.find("failed for device " + kDevice + ": the chain's certificate "), std::string::npos) << result;
  EXPECT_NE(result.find("within 370 days"), std::string::npos) << result;
  EXPECT_EQ(check("chain-valid-for-days", outliving.context, "30"), "passed");
  // Without a chain there is nothing to check: a failure, not a silent pass.
  Device no_chain(inputs({{"key", dir / "k.pem"}, {"cert", dir / "c.pem"}}));
  EXPECT_NE(check("chain-valid-for-days", no_chain.context, "30").find("no certificate chain"), std::string::npos);
}

TEST(CredentialsChecks, PfxOpensWithTheDevicePasswordAndHoldsTheDeviceKey) {
  Device device = good_device();
  device.context.pfx = device.credentials.pfx("not-1234", PfxEncryption::Compat);
  EXPECT_EQ(check("pfx-opens", device.context),
            failure("pfx-opens", "the PFX: the PFX does not open with the given password (the device client's password)"));
  device.context.pfx_password = "not-1234";
  EXPECT_EQ(check("pfx-opens", device.context), "passed");

  Device other(inputs({{"key", cred("other.key.pem")}, {"cert", cred(kDevice + ".cert.pem")}}));
  other.context.pfx = test::read_file(cred(kDevice + ".cert.pfx"));
  EXPECT_EQ(check("pfx-opens", other.context), failure("pfx-opens", "the key inside the PFX is not the device key"));
  other.context.pfx = test::read_file(cred(kDevice + ".legacy.pfx"));  // OpenSSL 1.x RC2 PFX opens too
  EXPECT_EQ(check("pfx-opens", other.context), failure("pfx-opens", "the key inside the PFX is not the device key"));
}

TEST(CredentialsChecks, RsaOnlyRefusesAnEcKey) {
  Device ec(inputs({{"key", cred("ec.key.pem")}, {"cert", cred("ec.cert.pem")}}), "ec-device");
  EXPECT_EQ(check("rsa-only", ec.context), failure("rsa-only", "the device key is EC, the DPS client reads only RSA keys", "ec-device"));
}

TEST(CredentialsChecks, IdentityScriptMustStartWithShebangAndPrintTheId) {
  Device device = good_device();
  device.context.identity_script = "echo DeviceId=" + kDevice + "\n";
  EXPECT_EQ(check("identity-prints-device-id", device.context),
            failure("identity-prints-device-id",
                    "the identity script does not start with #! (the Mender client execs it directly: ENOEXEC)"));
  device.context.identity_script = "#!/bin/sh\necho mac=00:11:22:33:44:55\n";
  EXPECT_EQ(check("identity-prints-device-id", device.context),
            failure("identity-prints-device-id", "the identity script prints no DeviceId (it prints {\"mac\":\"00:11:22:33:44:55\"})"));
  device.context.identity_script = "#!/bin/sh\necho 'DeviceId= " + kDevice + "'\n";  // no trimming: the space counts
  EXPECT_EQ(check("identity-prints-device-id", device.context),
            failure("identity-prints-device-id", "the identity script prints DeviceId [\" " + kDevice + "\"], not \"" + kDevice + "\""));
  device.context.identity_script = "#!/bin/sh\necho DeviceId\n";
  EXPECT_EQ(check("identity-prints-device-id", device.context),
            failure("identity-prints-device-id", "identity output line 1 has no '=': DeviceId"));
  // Reading the id from the data partition, as the tutorial's script does.
  device.context.identity_script = "#!/bin/sh\nprintf 'DeviceId=%s\\n' \"$(cat /data/mender/device-id)\"\n";
  device.context.data_files = {{"mender/device-id", kDevice}};
  EXPECT_EQ(check("identity-prints-device-id", device.context), "passed");
  device.context.data_files = {{"mender/device-id", "someone-else"}};
  EXPECT_NE(check("identity-prints-device-id", device.context), "passed");
}

}  // namespace
}  // namespace imprint
