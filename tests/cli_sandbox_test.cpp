// imprint stamp with hostile template values in the identity script: the value cannot reach the
// host (the script runs sandboxed), and a value with a line break never reaches a #! script at all
// unless the profile marks the variable raw.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "support.hpp"

using namespace imprint::test;

namespace {

std::string profile_text(const std::string& serial_variable) {
  return "version: 1\n" + serial_variable +
         "files:\n"
         "  - path: /usr/share/mender/identity/mender-device-identity\n"
         "    content: |\n"
         "      #!/bin/sh\n"
         "      echo \"DeviceId={{device_id}}\"\n"
         "      echo \"Serial={{serial}}\"\n"
         "    mode: \"0755\"\n"
         "checks: [identity-prints-device-id]\n";
}

struct Stamped {
  CommandResult result;
  bool output_exists = false;
};

Stamped stamp(const TempDir& dir, const std::string& profile, const std::string& serial) {
  write_file(dir / "profile.yaml", profile);
  const std::string output = dir / "out.img";
  std::filesystem::remove(output);
  Stamped stamped;
  stamped.result = run_imprint({"stamp", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--device", "dev-1",
                                "--set", "serial=" + serial, "-o", output});
  stamped.output_exists = std::filesystem::exists(output);
  return stamped;
}

TEST(CliSandbox, AnInjectedValueFailsTheCheckWithoutTouchingTheHost) {
  TempDir dir;
  std::random_device random;
  const std::string hostfile = "/tmp/imprint-HOSTFILE-" + std::to_string(random());
  const std::string golden_sha = file_sha256(fixture("mbr.img"));
  const auto stamped = stamp(dir, profile_text(""), "x\"; echo pwned > " + hostfile + "; cat /etc/shadow; \"");
  EXPECT_EQ(stamped.result.status, 3) << stamped.result.err;
  EXPECT_EQ(stamped.result.err.rfind("imprint: ", 0), 0u) << stamped.result.err;
  EXPECT_NE(stamped.result.err.find("identity script: exit status 127"), std::string::npos) << stamped.result.err;
  EXPECT_EQ(std::count(stamped.result.err.begin(), stamped.result.err.end(), '\n'), 1) << stamped.result.err;
  EXPECT_EQ(stamped.result.err.find("root:"), std::string::npos);  // nothing of /etc/shadow
  EXPECT_FALSE(std::filesystem::exists(hostfile));
  EXPECT_FALSE(stamped.output_exists);
  EXPECT_EQ(file_sha256(fixture("mbr.img")), golden_sha);
}

TEST(CliSandbox, ControlCharactersInAScriptValueNeedRawTrue) {
  TempDir dir;
  const auto refused = stamp(dir, profile_text(""), "a\nexit 0");
  EXPECT_EQ(refused.result.status, 1) << refused.result.err;
  EXPECT_NE(refused.result.err.find("variable 'serial' holds a newline"), std::string::npos) << refused.result.err;
  EXPECT_EQ(refused.result.err.find("exit 0"), std::string::npos);  // the value is not echoed
  EXPECT_FALSE(refused.output_exists);
  // raw: true lets it through (a tab here, which the identity output keeps as it is).
  const auto allowed = stamp(dir, profile_text("variables:\n  serial: { raw: true }\n"), "a\tb");
  EXPECT_EQ(allowed.result.status, 0) << allowed.result.err;
  EXPECT_TRUE(allowed.output_exists);
  const std::string script = debugfs(dir / "out.img", 2, "cat /usr/share/mender/identity/mender-device-identity");
  EXPECT_NE(script.find("echo \"Serial=a\tb\""), std::string::npos) << script;
  // Without raw, the same tab is refused (the map form with a plain value works like a plain value).
  EXPECT_EQ(stamp(dir, profile_text("variables:\n  serial: { value: \"1\" }\n"), "a\tb").result.status, 1);
}

}  // namespace
