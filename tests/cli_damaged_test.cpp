// A damaged data partition end to end: `put` refuses it with one line and leaves the image
// byte-identical; `--allow-dirty` writes where the scan proves it safe; reading stays possible.
#include <gtest/gtest.h>

#include <filesystem>

#include "support.hpp"

using namespace imprint::test;

namespace {

TEST(CliDamaged, PutRefusesADamagedPartitionUnlessAllowDirty) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  // The data partition's inode bitmap hands out /lost+found's inode (as e2fsprogs' tests damage images).
  const CommandResult damaged = run({"debugfs", "-w", "-R", "freei <11>", ext_device(image, 4)});
  ASSERT_EQ(damaged.err.find("while"), std::string::npos) << damaged.err;
  const std::string before = file_sha256(image);

  const CommandResult refused = run_imprint({"put", "-", image + ":/data/mender/device-id"}, "dev-0001\n");
  EXPECT_EQ(refused.status, 1) << refused.err;
  EXPECT_EQ(refused.err.find('\n'), refused.err.size() - 1) << "one line: " << refused.err;
  EXPECT_NE(refused.err.find("imprint: data (p4): the filesystem is damaged: inode 11 is in use but marked free"),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("e2fsck -f"), std::string::npos) << refused.err;
  EXPECT_EQ(file_sha256(image), before);
  EXPECT_EQ(run_imprint({"cat", image + ":/data/mender/device_type"}).status, 0);  // reading is best effort

  const CommandResult allowed = run_imprint({"put", "--allow-dirty", "-", image + ":/data/mender/device-id"}, "dev-0001\n");
  ASSERT_EQ(allowed.status, 0) << allowed.err;
  EXPECT_EQ(debugfs(image, 4, "cat /mender/device-id"), "dev-0001\n");
  EXPECT_NE(debugfs(image, 4, "stat /lost+found").find("Type: directory"), std::string::npos);
  const CommandResult fsck = e2fsck(image, 4);
  EXPECT_EQ(fsck.out.find("ultiply-claimed"), std::string::npos) << fsck.out;
  EXPECT_EQ(fsck.out.find("lost+found"), std::string::npos) << fsck.out;
}

// The stamp copies the golden and refuses the copy's damaged data partition: no output, golden unchanged.
TEST(CliDamaged, StampOfADamagedGoldenLeavesNothing) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  const std::string device = "mender-azure-test-device1";
  std::filesystem::create_directories(dir / "out");
  const CommandResult damaged = run({"debugfs", "-w", "-R", "set_bg 0 free_blocks_count 0", ext_device(golden, 4)});
  ASSERT_EQ(damaged.err.find("while"), std::string::npos) << damaged.err;
  run({"debugfs", "-w", "-n", "-R", "set_bg 0 checksum calc", ext_device(golden, 4)});
  const std::string before = file_sha256(golden);
  const std::string credentials = fixture("credentials/") + device;
  const CommandResult result = run_imprint(
      {"stamp", "-p", source_dir() + "/profiles/azure-dps-mender-ota-safe.yaml", "-i", golden, "--device", device, "-o",
       dir / "out/dev.img", "--set", "key_file=" + credentials + ".key.pem", "--set", "cert_file=" + credentials + ".cert.pem",
       "--set", "pfx_file=" + credentials + ".cert.pfx", "--set", "dps_client=" + fixture("elf/hello-armhf")});
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_EQ(result.err.find('\n'), result.err.size() - 1) << "one line: " << result.err;
  EXPECT_NE(result.err.find("data (p4): the filesystem is damaged: group 0's free blocks count (0) disagrees"),
            std::string::npos)
      << result.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir / "out"));
  EXPECT_EQ(file_sha256(golden), before);
}

}  // namespace
