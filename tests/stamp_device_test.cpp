// Device preparation (device.hpp): a profile expanded for one device, its credentials, the
// refusals before anything is written, and the checks that need the target image
// (check_plan_against_image, on an image of in-memory filesystems).
#include <gtest/gtest.h>

#include <filesystem>

#include "imprint/stamp/device.hpp"
#include "imprint/core/error.hpp"
#include "imprint/stamp/stamp.hpp"
#include "memory_image_support.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::expect_error;
using test::mender_image;
using test::put_file;

Profile profile_of(const std::string& yaml, const std::string& directory = "/") {
  return parse_profile("version: 1\n" + yaml, "profile.yaml", directory);
}

const PlanOp& op_at(const Plan& plan, const std::string& path) {
  for (const PlanOp& op : plan.ops) {
    if (op.target.path == path) return op;
  }
  throw std::runtime_error("no op for " + path);
}

TEST(StampDevice, VariablesComeFromDefaultsThenOverridesThenTheDeviceId) {
  const Profile profile = profile_of(R"(variables:
  site: default-site
  tenant: default-tenant
files:
  - path: /data/mender/site
    content: "{{site}} {{tenant}} {{device_id}}"
    mode: "0644"
)");
  const DevicePlan device = prepare_device(profile, "dev-7", {{"site", "berlin"}, {"device_id", "ignored"}});
  EXPECT_EQ(device.plan.device_id, "dev-7");
  EXPECT_EQ(op_at(device.plan, "/data/mender/site").bytes, "berlin default-tenant dev-7");
  EXPECT_EQ(device.variables.at("device_id"), "dev-7");
  EXPECT_FALSE(device.credentials);
  EXPECT_EQ(device.pfx_password, "1234");  // the reference DPS client's, when the profile names none
}

TEST(StampDevice, DeviceIdsThatCannotNameAFileAreRefused) {
  const Profile profile = profile_of("files: []\n");
  for (const std::string& id : std::vector<std::string>{"", ".", "..", "a/b", "tab\there", "del\x7f"}) {
    const Error error = expect_error([&] { prepare_device(profile, id, {}); }, ErrorCode::Invalid);
    EXPECT_EQ(std::string(error.what()), "device id '" + id + "' cannot name a file (no '/', control characters, '.' or '..')");
  }
}

// The profile loader refuses inline content it can see; what only the expanded plan shows (a
// source file, a template filled from a variable) is refused here, before anything is written.
TEST(StampDevice, AnIdentityScriptOrExecutableContentWithoutShebangIsRefused) {
  test::TempDir dir;
  test::write_file(dir / "identity.sh", "echo DeviceId=$(cat /data/mender/device-id)\n");
  const Error identity = expect_error(
      [&] {
        prepare_device(profile_of("files:\n  - path: /usr/share/mender/identity/mender-device-identity\n    source: identity.sh\n"
                                  "    mode: \"0755\"\n",
                                  dir.path()),
                       "dev-1", {});
      },
      ErrorCode::CheckFailed);
  EXPECT_EQ(std::string(identity.what()),
            "profile.yaml:3:5: /usr/share/mender/identity/mender-device-identity does not start with #! (or an ELF header): the "
            "device (the Mender client) would fail to run it with 'exec format error'; start it with a line such as #!/bin/sh");
  const Profile templated = profile_of("files:\n  - path: /usr/bin/hello\n    content: \"{{script}}\"\n    mode: \"0755\"\n");
  const Error executable = expect_error([&] { prepare_device(templated, "dev-1", {{"script", "echo hi"}}); }, ErrorCode::CheckFailed);
  EXPECT_EQ(std::string(executable.what()),
            "profile.yaml:3:5: /usr/bin/hello does not start with #! (or an ELF header): the device would fail to run it with "
            "'exec format error'; start it with a line such as #!/bin/sh");
  // With a #!, or not executable: fine.
  prepare_device(templated, "dev-1", {{"script", "#!/bin/true"}});
  prepare_device(profile_of("files:\n  - path: /etc/motd\n    content: \"{{script}}\"\n    mode: \"0644\"\n"), "dev-1",
                 {{"script", "echo hi"}});
}

TEST(StampDevice, CredentialsAreLoadedMarkedAndCheckedBeforeAnythingIsWritten) {
  const std::string key = test::fixture("credentials/mender-azure-test-device1.key.pem");
  const std::string cert = test::fixture("credentials/mender-azure-test-device1.cert.pem");
  const Profile profile = profile_of("credentials:\n  key: " + key + "\n  cert: " + cert + R"(
files:
  - path: /data/mender/mender-agent.pem
    from: credentials.key
    mode: "0600"
  - path: /data/mender/device.pfx
    from: credentials.pfx
    mode: "0600"
checks:
  - key-matches-cert
  - cn-is-device-id
)");
  const DevicePlan device = prepare_device(profile, "mender-azure-test-device1", {});
  ASSERT_TRUE(device.credentials);
  const PlanOp& key_op = op_at(device.plan, "/data/mender/mender-agent.pem");
  EXPECT_EQ(key_op.credential, "key");
  EXPECT_TRUE(key_op.reproducible);
  EXPECT_EQ(key_op.bytes.rfind("-----BEGIN RSA PRIVATE KEY-----", 0), 0u);  // PKCS#1 by default
  EXPECT_EQ(op_at(device.plan, "/data/mender/device.pfx").credential, "pfx");
  EXPECT_FALSE(op_at(device.plan, "/data/mender/device.pfx").reproducible);  // a fresh salt every time
  // The same certificate for another device: its CN is not that device's id.
  const Error error = expect_error([&] { prepare_device(profile, "dev-2", {}); }, ErrorCode::CheckFailed);
  EXPECT_NE(std::string(error.what()).find("cn-is-device-id"), std::string::npos) << error.what();
}

TEST(StampDevice, AnExecutableIsCheckedAgainstEachRootFilesystemFollowingItsLinks) {
  const std::string hello = test::fixture("elf/hello-armhf");
  const Profile profile = profile_of("files:\n  - path: /usr/bin/hello\n    source: " + hello +
                                     "\n    mode: \"0755\"\n    expect: { elf: armhf }\n");
  const DevicePlan device = prepare_device(profile, "dev-1", {});
  MemoryImage image = mender_image();
  const Error bare = expect_error([&] { check_plan_against_image(image, device.plan); }, ErrorCode::CheckFailed);
  EXPECT_EQ(std::string(bare.what()),
            "primary (p2): profile.yaml:3:5: /usr/bin/hello: needs the interpreter /lib/ld-linux-armhf.so.3 which the root "
            "filesystem lacks; needs libc.so.6 which the root filesystem lacks");
  // Merged /usr: /lib is a link to usr/lib, followed inside the filesystem as the loader would.
  for (Role role : {Role::Primary, Role::Secondary}) {
    Filesystem& rootfs = image.memory_filesystem(role);
    rootfs.symlink("/lib", "usr/lib", Attributes{});
    put_file(rootfs, "/usr/lib/ld-linux-armhf.so.3", "loader");
  }
  const Error no_libc = expect_error([&] { check_plan_against_image(image, device.plan); }, ErrorCode::CheckFailed);
  EXPECT_EQ(std::string(no_libc.what()),
            "primary (p2): profile.yaml:3:5: /usr/bin/hello: needs libc.so.6 which the root filesystem lacks");
  // A libc that is no library (found in /lib/<triplet>, through the link) is named with the path found.
  put_file(image.memory_filesystem(Role::Primary), "/usr/lib/arm-linux-gnueabihf/libc.so.6", "not an ELF");
  const Error not_elf = expect_error([&] { check_plan_against_image(image, device.plan); }, ErrorCode::CheckFailed);
  EXPECT_EQ(std::string(not_elf.what()),
            "primary (p2): profile.yaml:3:5: /usr/bin/hello: needs libc.so.6, but the root filesystem's "
            "/lib/arm-linux-gnueabihf/libc.so.6 is not a readable library (not an ELF file)");
  // The real armhf libc (libc6-armhf-cross, which the fixtures are built with) on both: it passes.
  const std::string host_libc = "/usr/arm-linux-gnueabihf/lib/libc.so.6";
  ASSERT_TRUE(std::filesystem::exists(host_libc)) << host_libc << " is missing: install libc6-armhf-cross (scripts/setup.sh)";
  for (Role role : {Role::Primary, Role::Secondary}) {
    put_file(image.memory_filesystem(role), "/usr/lib/arm-linux-gnueabihf/libc.so.6", test::read_file(host_libc));
  }
  check_plan_against_image(image, device.plan);
}

}  // namespace
}  // namespace imprint
