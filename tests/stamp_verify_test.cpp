// verify_plan on an image of in-memory filesystems: nothing to report after apply_plan, and one
// line per difference, naming the partition and the path, for each way an image can drift from
// its plan. A PFX rebuilt on every stamp (random salt) is compared by meaning.
#include <gtest/gtest.h>

#include "imprint/stamp/device.hpp"
#include "imprint/core/error.hpp"
#include "imprint/stamp/stamp.hpp"
#include "memory_image_support.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::mender_image;
using test::plan_op;
using test::put_file;

DevicePlan device_plan(std::vector<PlanOp> ops) {
  DevicePlan device;
  device.plan = Plan{"dev-1", std::move(ops)};
  return device;
}

DevicePlan sample() {
  return device_plan({plan_op(OpKind::Directory, "/data/app", "", 0750, "mender:mender"),
                      plan_op(OpKind::File, "/data/mender/device-id", "dev-1\n", 0600),
                      plan_op(OpKind::File, "/etc/hostname", "dev-1\n", 0644),
                      plan_op(OpKind::Symlink, "/var/lib/mender", "/data/mender"),
                      plan_op(OpKind::Remove, "/etc/old")});
}

TEST(StampVerify, AnImageJustStampedMatchesItsPlan) {
  MemoryImage image = mender_image();
  put_file(image.memory_filesystem(Role::Primary), "/etc/old", "stale");
  const DevicePlan device = sample();
  EXPECT_FALSE(verify_plan(image, device).empty());  // before: everything is missing
  apply_plan(image, device.plan);
  EXPECT_EQ(verify_plan(image, device), std::vector<std::string>{});
}

TEST(StampVerify, EachDifferenceIsOneLineNamingPartitionAndPath) {
  MemoryImage image = mender_image();
  const DevicePlan device = sample();
  apply_plan(image, device.plan);
  Filesystem& primary = image.memory_filesystem(Role::Primary);
  Filesystem& secondary = image.memory_filesystem(Role::Secondary);
  Filesystem& data = image.memory_filesystem(Role::Data);
  put_file(primary, "/etc/hostname", "dev-2\n!", Attributes{0644, 0, 0, 1});
  secondary.chmod("/etc/hostname", 0664);
  data.chown("/mender/device-id", 5, 6);
  data.remove("/app", false);
  primary.symlink("/var/lib/mender", "/elsewhere", Attributes{});
  secondary.remove("/var/lib/mender", false);
  secondary.mkdir("/var/lib/mender", Attributes{});
  put_file(secondary, "/etc/old", "back again");

  EXPECT_EQ(verify_plan(image, device),
            (std::vector<std::string>{
                "data (p4): /app: missing",
                "data (p4): /mender/device-id: owner 5:6, expected 0:0",
                "primary (p2): /etc/hostname: content differs (7 bytes, expected 6 bytes with sha256 " + sha256_hex("dev-1\n") + ")",
                "secondary (p3): /etc/hostname: mode 0664, expected 0644",
                "primary (p2): /var/lib/mender: points to /elsewhere, expected /data/mender",
                "secondary (p3): /var/lib/mender: is not a symlink",
                "secondary (p3): /etc/old: exists, expected removed",
            }));
}

TEST(StampVerify, OwnersAreComparedAsTheImageNamesThem) {
  MemoryImage image = mender_image();
  const DevicePlan device = device_plan({plan_op(OpKind::File, "/data/x", "x", 0644, "mender")});
  apply_plan(image, device.plan);
  EXPECT_EQ(image.memory_filesystem(Role::Data).stat("/x")->uid, 999u);
  EXPECT_TRUE(verify_plan(image, device).empty());
  // A different /etc/passwd in the image: the same name is now another number.
  put_file(image.memory_filesystem(Role::Primary), "/etc/passwd", "mender:x:1000:1000::/:/bin/false\n");
  EXPECT_EQ(verify_plan(image, device), std::vector<std::string>{"data (p4): /x: owner 999:999, expected 1000:1000"});
}

// The PFX of a profile with a key and a certificate is built for every stamp with a random salt:
// its bytes never match the plan's, so verify opens it with the device client's password instead.
TEST(StampVerify, AFreshlyBuiltPfxIsVerifiedByMeaning) {
  const std::string key = test::fixture("credentials/mender-azure-test-device1.key.pem");
  const std::string cert = test::fixture("credentials/mender-azure-test-device1.cert.pem");
  const std::string other_pfx = test::read_file(test::fixture("credentials/mender-azure-test-device1.legacy.pfx"));
  const Profile profile = parse_profile("version: 1\ncredentials:\n  key: " + key + "\n  cert: " + cert +
                                            "\n  pfx_password: secret\nfiles:\n  - path: /data/mender/device.pfx\n"
                                            "    from: credentials.pfx\n    mode: \"0600\"\n",
                                        "profile.yaml", "/");
  const DevicePlan device = prepare_device(profile, "mender-azure-test-device1", {});
  ASSERT_EQ(device.plan.ops.size(), 1u);
  EXPECT_FALSE(device.plan.ops[0].reproducible);
  EXPECT_EQ(device.pfx_password, "secret");

  MemoryImage image = mender_image();
  apply_plan(image, device.plan);
  EXPECT_TRUE(verify_plan(image, device).empty());
  // Another PFX of the same device, but under another password: its bytes were never going to
  // match, its meaning does not either.
  put_file(image.memory_filesystem(Role::Data), "/mender/device.pfx", other_pfx, Attributes{0600, 0, 0, 1});
  const std::vector<std::string> differences = verify_plan(image, device);
  ASSERT_EQ(differences.size(), 1u);
  EXPECT_EQ(differences[0].rfind("data (p4): /mender/device.pfx: ", 0), 0u) << differences[0];
  EXPECT_NE(differences[0].find("(the device client's password)"), std::string::npos) << differences[0];
}

}  // namespace
}  // namespace imprint
