// What the device would do with the stamped image, caught before a card is written: a client whose
// glibc symbol versions or libraries the image lacks, an identity script the Mender client cannot
// exec (no "#!"), whatever the profile's checks list says.
#include <gtest/gtest.h>

#include <filesystem>

#include "support.hpp"

using namespace imprint::test;

namespace {

std::string client_profile(const std::string& client) {
  return "version: 1\nfiles:\n  - path: /usr/bin/prov_dev_client_bbb\n    source: \"" + client +
         "\"\n    mode: \"0755\"\n    expect: { elf: armhf }\n";
}

CommandResult stamp(const TempDir& dir, const std::string& profile, const std::vector<std::string>& extra = {}) {
  write_file(dir / "profile.yaml", profile);
  std::vector<std::string> arguments{"stamp", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--device", "truth-1",
                                     "-o", dir / "out.img"};
  arguments.insert(arguments.end(), extra.begin(), extra.end());
  return run_imprint(arguments);
}

TEST(DeviceTruth, AClientNeedingANewerGlibcThanTheImageHasIsRefused) {
  TempDir dir;
  std::string client = read_file(fixture("elf/hello-armhf"));
  for (std::size_t at = client.find("GLIBC_2.34"); at != std::string::npos; at = client.find("GLIBC_2.34", at)) {
    client.replace(at, 10, "GLIBC_2.99");
  }
  write_file(dir / "client", client);
  const CommandResult refused = stamp(dir, client_profile(dir / "client"));
  EXPECT_EQ(refused.status, 3) << refused.err;
  EXPECT_NE(refused.err.find("needs GLIBC_2.99 from libc.so.6, which the root filesystem's /lib/arm-linux-gnueabihf/libc.so.6 lacks "
                             "(newest there: GLIBC_2."),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("/usr/bin/prov_dev_client_bbb"), std::string::npos) << refused.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out.img"));
  // The device's own loader agrees: the dynamic loader, under qemu-arm-static with the cross
  // toolchain's libc (the one the fixture image carries), refuses the rewritten client.
  const std::string loader = shell("chmod +x '" + dir / "client" + "'; qemu-arm-static -L /usr/arm-linux-gnueabihf '" + dir / "client" +
                                    "' 2>&1; echo \"exit $?\"");
  EXPECT_NE(loader.find("GLIBC_2.99' not found"), std::string::npos) << loader;
  EXPECT_EQ(loader.find("exit 0"), std::string::npos) << loader;
  const CommandResult accepted = stamp(dir, client_profile(fixture("elf/hello-armhf")));
  EXPECT_EQ(accepted.status, 0) << accepted.err;
}

TEST(DeviceTruth, AClientNeedingOpenSsl11IsRefusedWithTheImagesOwnName) {
  TempDir dir;
  const CommandResult refused = stamp(dir, client_profile(fixture("elf/needs-ssl11-armhf")));
  EXPECT_EQ(refused.status, 3) << refused.err;
  EXPECT_NE(refused.err.find("needs libssl.so.1.1, libcrypto.so.1.1 which the root filesystem lacks"), std::string::npos) << refused.err;
  // The hint comes from the image's /etc/os-release, not from a guess about Debian 12.
  const std::string os = shell("debugfs -R 'cat /etc/os-release' '" + ext_device(fixture("mbr.img"), 2) + "' 2>/dev/null | sed -n 's/^PRETTY_NAME=\"\\(.*\\)\"/\\1/p'");
  ASSERT_FALSE(os.empty());
  EXPECT_NE(refused.err.find("the image (" + os.substr(0, os.find('\n')) + ")"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.err.find("Debian 12 ships"), std::string::npos) << refused.err;
}

TEST(DeviceTruth, AnIdentityScriptWithoutShebangIsRefusedWithoutAnyCheck) {
  TempDir dir;
  // Inline content: refused when the profile is loaded (profile check too), naming its line.
  const std::string inline_profile =
      "version: 1\nfiles:\n  - path: /usr/share/mender/identity/mender-device-identity\n    content: |\n      echo DeviceId={{device_id}}\n"
      "    mode: \"0755\"\n";
  write_file(dir / "inline.yaml", inline_profile);
  const CommandResult checked = run_imprint({"profile", "check", dir / "inline.yaml"});
  EXPECT_EQ(checked.status, 1);
  EXPECT_NE(checked.err.find("inline.yaml:4:"), std::string::npos) << checked.err;
  EXPECT_NE(checked.err.find("does not start with #!"), std::string::npos) << checked.err;
  EXPECT_EQ(stamp(dir, inline_profile).status, 1);

  // A script from a host file, or one that starts with a variable: refused once expanded (exit 3).
  write_file(dir / "identity.sh", "echo DeviceId=truth-1\n");
  const CommandResult from_file = stamp(dir,
      "version: 1\nfiles:\n  - path: primary:/usr/share/mender/identity/mender-device-identity\n    source: \"" + dir / "identity.sh" +
      "\"\n    mode: \"0644\"\n");
  EXPECT_EQ(from_file.status, 3) << from_file.err;
  EXPECT_NE(from_file.err.find("exec format error"), std::string::npos) << from_file.err;
  const CommandResult from_variable = stamp(dir,
      "version: 1\nfiles:\n  - path: /opt/run-me\n    content: \"{{script}}\"\n    mode: \"0755\"\n", {"--set", "script=echo hi"});
  EXPECT_EQ(from_variable.status, 3) << from_variable.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out.img"));
  // With the interpreter line it is stamped.
  write_file(dir / "identity.sh", "#!/bin/sh\necho DeviceId=truth-1\n");
  EXPECT_EQ(stamp(dir, "version: 1\nfiles:\n  - path: /usr/share/mender/identity/mender-device-identity\n    source: \"" + dir / "identity.sh" +
                           "\"\n    mode: \"0755\"\n").status, 0);
}

}  // namespace
