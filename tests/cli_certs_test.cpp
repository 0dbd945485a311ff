// imprint certs, and the promise that secrets go nowhere but the requested outputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "support.hpp"

using namespace imprint::test;

namespace {

std::string credential(const std::string& name) { return fixture("credentials/" + name); }

// Makes a device's credentials with imprint certs (CA password from a file, never argv).
CommandResult make_certs(const TempDir& dir, const std::string& device, const std::vector<std::string>& extra = {},
                         const std::vector<std::string>& environment = {}) {
  write_file(dir / "ca.pass", "1234\n");
  std::vector<std::string> arguments{"certs", "--ca-cert", credential("intermediate.cert.pem"), "--ca-key",
                                     credential("intermediate.key.pem"), "--ca-key-pass-file", dir / "ca.pass",
                                     "--device", device, "-O", dir / "certs", "--key", "rsa:2048"};
  // The fixture CA lives 365 days from the fixture build: the default 365 would outlive it.
  if (std::find(extra.begin(), extra.end(), "--days") == extra.end()) arguments.insert(arguments.end(), {"--days", "30"});
  arguments.insert(arguments.end(), extra.begin(), extra.end());
  return run_imprint(arguments, "", environment);
}

TEST(Certs, SignedByTheCaAndReadableByOpenssl) {
  TempDir dir;
  CommandResult result = make_certs(dir, "dev-0001");
  ASSERT_EQ(result.status, 0) << result.err;
  const std::string cert = dir / "certs/dev-0001.cert.pem", key = dir / "certs/dev-0001.key.pem";
  EXPECT_EQ(shell("openssl verify -CAfile '" + credential("root.cert.pem") + "' -untrusted '" + credential("intermediate.cert.pem") +
                  "' '" + cert + "'"),
            cert + ": OK\n");
  EXPECT_EQ(shell("openssl x509 -in '" + cert + "' -noout -subject"), "subject=CN = dev-0001\n");
  EXPECT_EQ(read_file(key).rfind("-----BEGIN RSA PRIVATE KEY-----", 0), 0u);
  // The PFX opens with the DPS client's password and holds the same key.
  const std::string pfx = dir / "certs/dev-0001.cert.pfx";
  EXPECT_EQ(run({"openssl", "pkcs12", "-info", "-in", pfx, "-passin", "pass:1234", "-noout"}).status, 0);
  EXPECT_EQ(shell("openssl pkcs12 -in '" + pfx + "' -passin pass:1234 -nocerts -nodes | openssl pkey -pubout"),
            shell("openssl pkey -in '" + key + "' -pubout"));
  EXPECT_EQ(std::filesystem::status(key).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST(Certs, GeneratedCredentialsStampAndPassEveryCheck) {
  TempDir dir;
  ASSERT_EQ(make_certs(dir, "dev-0002").status, 0);
  const std::string base = dir / "certs/dev-0002";
  CommandResult result = run_imprint({"stamp", "-p", source_dir() + "/profiles/azure-dps-mender.yaml", "-i", fixture("mbr.img"),
                                      "--device", "dev-0002", "--set", "key_file=" + base + ".key.pem", "--set",
                                      "cert_file=" + base + ".cert.pem", "--set", "pfx_file=" + base + ".cert.pfx", "--set",
                                      "dps_client=" + fixture("elf/hello-armhf"), "-o", dir / "out.img"});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(e2fsck(dir / "out.img", 4).status, 0);
}

TEST(Certs, WrongCaPasswordIsOneClearLine) {
  TempDir dir;
  write_file(dir / "bad.pass", "not-the-password\n");
  CommandResult result = run_imprint({"certs", "--ca-cert", credential("intermediate.cert.pem"), "--ca-key",
                                      credential("intermediate.key.pem"), "--ca-key-pass-file", dir / "bad.pass", "--device",
                                      "dev-0003", "-O", dir / "certs"});
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.err.find("intermediate.key.pem"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("not-the-password"), std::string::npos) << "the password was printed";
  EXPECT_FALSE(std::filesystem::exists(dir / "certs/dev-0003.key.pem"));
}

// --days 3000000 wrote a certificate whose notAfter openssl prints as "Bad time value", exit 0.
TEST(Certs, DaysOutOfRangeAreRefused) {
  TempDir dir;
  for (const char* days : {"3000000", "36501", "0", "-5"}) {
    const CommandResult result = make_certs(dir, "dev-days", {"--days", days});
    EXPECT_EQ(result.status, 1) << days << ": " << result.err;
    EXPECT_NE(result.err.find(std::string("certs: validity of ") + days + " days is "), std::string::npos) << result.err;
    EXPECT_TRUE(directory_entries(dir / "certs").empty()) << days;
  }
}

// The device certificate never outlives the CA that signs it: refused, saying how many days fit.
TEST(Certs, ValidityPastTheCaIsRefusedSayingWhatFits) {
  TempDir dir;
  const CommandResult result = make_certs(dir, "dev-long", {"--days", "400"});
  EXPECT_EQ(result.status, 1) << result.err;
  const std::string prefix = "imprint: certs: a certificate valid for 400 days would outlive its CA: the CA certificate " +
                             credential("intermediate.cert.pem") + " is valid until ";
  ASSERT_EQ(result.err.rfind(prefix, 0), 0u) << result.err;
  const std::size_t at = result.err.find("; at most ");
  ASSERT_NE(at, std::string::npos) << result.err;
  const int fit = std::stoi(result.err.substr(at + 10));
  EXPECT_EQ(result.err.substr(at), "; at most " + std::to_string(fit) + " days fit\n");
  EXPECT_TRUE(directory_entries(dir / "certs").empty());
  // openssl agrees: the CA is still valid `fit` days from now, not `fit + 1`.
  const auto checkend = [&](int days) {
    return run({"openssl", "x509", "-in", credential("intermediate.cert.pem"), "-noout", "-checkend", std::to_string(days * 86400)}).status;
  };
  EXPECT_EQ(checkend(fit), 0);
  EXPECT_EQ(checkend(fit + 1), 1);
  // And that many days are issued, the chain verifying.
  ASSERT_EQ(make_certs(dir, "dev-long", {"--days", std::to_string(fit)}).status, 0);
  const std::string cert = dir / "certs/dev-long.cert.pem";
  EXPECT_EQ(shell("openssl verify -CAfile '" + credential("root.cert.pem") + "' -untrusted '" + credential("intermediate.cert.pem") +
                  "' '" + cert + "'"),
            cert + ": OK\n");
}

// Run twice for one device, imprint certs replaced the key of a possibly enrolled device, exit 0.
TEST(Certs, ExistingCredentialsAreKeptWithoutForceAndReplacedTogetherWithIt) {
  TempDir dir;
  ASSERT_EQ(make_certs(dir, "dev-twice").status, 0);
  const std::string base = dir / "certs/dev-twice";
  const std::vector<std::string> files{base + ".key.pem", base + ".cert.pem", base + ".fullchain.cert.pem", base + ".cert.pfx"};
  std::vector<std::string> before;
  for (const auto& file : files) before.push_back(file_sha256(file));

  const CommandResult again = make_certs(dir, "dev-twice");
  EXPECT_EQ(again.status, 1);
  EXPECT_EQ(again.err, "imprint: certs: " + files[0] + " already exists (a device's key cannot be recovered once replaced); --force replaces it\n");
  for (std::size_t i = 0; i < files.size(); ++i) EXPECT_EQ(file_sha256(files[i]), before[i]) << files[i];
  // Any one of the four is enough to refuse (here only the PFX is left).
  for (std::size_t i = 0; i < 3; ++i) std::filesystem::remove(files[i]);
  const CommandResult pfx_only = make_certs(dir, "dev-twice");
  EXPECT_EQ(pfx_only.status, 1);
  EXPECT_NE(pfx_only.err.find(files[3] + " already exists"), std::string::npos) << pfx_only.err;
  EXPECT_EQ(directory_entries(dir / "certs"), std::vector<std::string>{"dev-twice.cert.pfx"});

  // --force replaces all four together: a new key, and the PFX holds it.
  ASSERT_EQ(make_certs(dir, "dev-twice", {"--force"}).status, 0);
  EXPECT_NE(file_sha256(files[3]), before[3]);
  EXPECT_EQ(shell("openssl pkcs12 -in '" + files[3] + "' -passin pass:1234 -nocerts -nodes | openssl pkey -pubout"),
            shell("openssl pkey -in '" + files[0] + "' -pubout"));
  EXPECT_EQ(shell("openssl x509 -in '" + files[1] + "' -noout -pubkey"), shell("openssl pkey -in '" + files[0] + "' -pubout"));

  // Even with --force, a name that cannot be replaced (a directory) is found before any is written.
  std::vector<std::string> current;
  for (std::size_t i = 0; i < 3; ++i) current.push_back(file_sha256(files[i]));
  std::filesystem::remove(files[3]);
  std::filesystem::create_directory(files[3]);
  const CommandResult blocked = make_certs(dir, "dev-twice", {"--force"});
  EXPECT_EQ(blocked.status, 1);
  EXPECT_EQ(blocked.err, "imprint: certs: " + files[3] + " is a directory\n");
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(file_sha256(files[i]), current[i]) << files[i] << " was replaced";
  EXPECT_EQ(directory_entries(dir / "certs").size(), 4u) << "a temporary file was left";
}

// No private key or password on stdout/stderr, and nothing in the temp directory: every command
// runs with TMPDIR pointing at a fresh directory that must stay empty.
TEST(Secrets, NeverPrintedNorStagedInTempFiles) {
  TempDir dir, tmp;
  const std::vector<std::string> environment{"TMPDIR=" + tmp.path(), "PFX_PASSWORD=s3cret-pfx-pass"};
  std::vector<CommandResult> results;
  results.push_back(make_certs(dir, "dev-0004", {"--pfx-pass-env", "PFX_PASSWORD"}, environment));
  ASSERT_EQ(results.back().status, 0) << results.back().err;
  const std::string base = dir / "certs/dev-0004";
  const std::vector<std::string> variables{"--set", "key_file=" + base + ".key.pem", "--set", "cert_file=" + base + ".cert.pem",
                                           "--set", "pfx_file=" + base + ".cert.pfx", "--set-env", "pfx_password=PFX_PASSWORD",
                                           "--set", "dps_client=" + fixture("elf/hello-armhf")};
  for (const char* mode : {"--dry-run", "--json"}) {
    std::vector<std::string> arguments{"stamp", "-p", source_dir() + "/profiles/azure-dps-mender.yaml", "-i",
                                       fixture("mbr.img.gz"), "--device", "dev-0004", "-o", dir / "out.img", mode,
                                       "--emit", dir / "emit"};
    arguments.insert(arguments.end(), variables.begin(), variables.end());
    results.push_back(run_imprint(arguments, "", environment));
    ASSERT_EQ(results.back().status, 0) << results.back().err;
  }
  std::vector<std::string> verify{"verify", "-p", source_dir() + "/profiles/azure-dps-mender.yaml", "--device", "dev-0004", dir / "out.img"};
  verify.insert(verify.end(), variables.begin(), variables.end());
  results.push_back(run_imprint(verify, "", environment));
  ASSERT_EQ(results.back().status, 0) << results.back().out << results.back().err;
  results.push_back(run_imprint({"cat", dir / "out.img:/etc/fstab"}, "", environment));

  // A line from the end of the private key (the secret primes and exponents; the start holds the
  // public modulus, which may legitimately appear in the public outputs), and the password.
  const std::string key = read_file(base + ".key.pem");
  const std::size_t end_line = key.rfind("-----END");
  const std::size_t last_line = key.rfind('\n', end_line - 2) + 1;
  const std::size_t line_before = key.rfind('\n', last_line - 2) + 1;
  const std::string key_line = key.substr(line_before, 64);
  ASSERT_EQ(key_line.size(), 64u);
  for (const CommandResult& result : results) {
    for (const std::string* stream : {&result.out, &result.err}) {
      EXPECT_EQ(stream->find(key_line), std::string::npos) << "key material printed";
      EXPECT_EQ(stream->find("PRIVATE KEY"), std::string::npos) << "key printed";
      EXPECT_EQ(stream->find("s3cret-pfx-pass"), std::string::npos) << "password printed";
    }
  }
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path())) << "something was left in TMPDIR";
  // Only the requested outputs exist.
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir / "emit")) names.insert(entry.path().filename());
  EXPECT_EQ(names, (std::set<std::string>{"dev-0004.enrollment.json", "dev-0004.preauth.json", "dev-0004.pub.pem",
                                          "dev-0004.thumbprints.txt"}));
  for (const auto& name : names) {
    EXPECT_EQ(read_file(dir / ("emit/" + name)).find(key_line), std::string::npos) << name << " holds key material";
  }
}

}  // namespace
