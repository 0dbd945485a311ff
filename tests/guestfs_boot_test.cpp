// The vfat boot partition through the libguestfs backend: the CLI (auto backend, fstab mapping of
// /uboot and the boot: role) and the library (ls, cat, put, mkdir, rm), checked with mtools and
// fsck.vfat -n, and a batch writing each device's boot partition. A machine that cannot launch the
// appliance gets one clear error.
#include <gtest/gtest.h>

#include <filesystem>

#include "imprint/core/error.hpp"
#include "imprint/guestfs/guestfs.hpp"
#include "support.hpp"

using namespace imprint;
using namespace imprint::test;

namespace {

std::string mtools_image(const std::string& image) {
  return image + "@@" + std::to_string(partition_span(image, 1).offset);
}

// mtype of a file on the boot partition (independent of libguestfs).
std::string mtype(const std::string& image, const std::string& path) {
  return shell("MTOOLS_SKIP_CHECK=1 mtype -i '" + mtools_image(image) + "' '::" + path + "'");
}

std::string mdir(const std::string& image, const std::string& path) {
  return shell("MTOOLS_SKIP_CHECK=1 mdir -b -i '" + mtools_image(image) + "' '::" + path + "'");
}

// fsck.vfat -n on the boot partition copied out.
CommandResult fsck_boot(const std::string& image, const TempDir& dir) {
  const Span span = partition_span(image, 1);
  const std::string part = dir / "boot.vfat";
  shell("dd if='" + image + "' of='" + part + "' bs=1M skip=" + std::to_string(span.offset >> 20) +
        " count=" + std::to_string(span.size >> 20) + " status=none");
  return run({"fsck.vfat", "-n", part});
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t found = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++found;
  return found;
}

}  // namespace

TEST(GuestfsBoot, CliPutAndCatReachTheBootPartition) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  const std::string zimage = mtype(image, "/zImage");
  write_file(dir / "uEnv.txt", "uenvcmd=run imprint_boot\n");

  // /uboot is where the image's fstab mounts p1: the auto backend opens the vfat with libguestfs.
  // A fresh cache directory: this machine has not been told about TCG yet.
  const std::vector<std::string> cache{"XDG_CACHE_HOME=" + dir / "cache"};
  const CommandResult put = run_imprint({"put", dir / "uEnv.txt", image + ":/uboot/uEnv.txt"}, "", cache);
  ASSERT_EQ(put.status, 0) << put.err;
  EXPECT_LE(count(put.err, "TCG"), 1u) << put.err;
  EXPECT_EQ(mtype(image, "/uEnv.txt"), "uenvcmd=run imprint_boot\n");
  EXPECT_EQ(mtype(image, "/zImage"), zimage);
  const CommandResult fsck = fsck_boot(image, dir);
  EXPECT_EQ(fsck.status, 0) << fsck.out << fsck.err;
  for (int number : {2, 3, 4}) {
    EXPECT_EQ(partition_sha256(image, number), partition_sha256(fixture("mbr.img"), number)) << "p" << number << " changed";
  }

  const CommandResult cat = run_imprint({"cat", image + ":boot:/uEnv.txt"}, "", cache);
  ASSERT_EQ(cat.status, 0) << cat.err;
  EXPECT_EQ(cat.out, "uenvcmd=run imprint_boot\n");
  // The TCG note (KVM unusable, or failed here before) is shown once per machine, not per command.
  EXPECT_EQ(count(cat.err, "TCG"), 0u) << cat.err;
  EXPECT_EQ(count(put.err, "TCG") == 1, std::filesystem::exists(dir / "cache/imprint/tcg-noted")) << put.err;
}

TEST(GuestfsBoot, LibraryListsReadsWritesAndRemovesOnVfat) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  const std::string uenv = mtype(image, "/uEnv.txt");
  auto session = std::make_shared<GuestfsSession>(std::vector<GuestfsSession::Drive>{{image, true, image, false, {}}});
  auto boot = open_guestfs(GuestfsOpenOptions{session, 0, 1, "vfat", true, "boot (p1)"});

  std::vector<std::string> names;
  for (const DirEntry& entry : boot->list("/")) names.push_back(entry.name);
  EXPECT_EQ(names, (std::vector<std::string>{"uEnv.txt", "zImage"}));
  const auto zimage = boot->stat("/zImage");
  ASSERT_TRUE(zimage.has_value());
  EXPECT_EQ(zimage->size, 6144u);
  EXPECT_EQ(zimage->mode, 0644u);
  EXPECT_EQ(zimage->mtime, 1700000000);
  EXPECT_EQ(read_all(*boot, "/uEnv.txt"), uenv);
  EXPECT_EQ(boot->type(), "vfat");

  MemorySource config("dtoverlay=imprint\n");
  boot->write("/config.txt", config, Attributes{0644, 0, 0, 1700000100});
  make_directories(*boot, "/overlays", Attributes{0755, 0, 0, 1700000200});
  MemorySource overlay("not really a dtbo\n");
  boot->write("/overlays/imprint.dtbo", overlay, Attributes{0644, 0, 0, 1700000300});
  boot->remove("/uEnv.txt", false);
  EXPECT_EQ(boot->stat("/config.txt")->mtime, 1700000100);

  // FAT cannot keep these: refused, not silently dropped.
  MemorySource secret("secret\n");
  EXPECT_NE(std::string(expect_error([&] { boot->write("/secret", secret, Attributes{0600, 0, 0, {}}); }, ErrorCode::Unsupported).what())
                .find("boot (p1): /secret: vfat keeps no owners or permissions"),
            std::string::npos);
  expect_error([&] { boot->symlink("/link", "config.txt", {}); }, ErrorCode::Unsupported);
  expect_error([&] { boot->remove("/overlays", false); }, ErrorCode::NotEmpty);
  expect_error([&] { boot->read("/uEnv.txt", [](std::string_view) {}); }, ErrorCode::NotFound);
  EXPECT_FALSE(boot->stat("/secret").has_value());
  session->shutdown();

  EXPECT_EQ(mtype(image, "/config.txt"), "dtoverlay=imprint\n");
  EXPECT_EQ(mtype(image, "/overlays/imprint.dtbo"), "not really a dtbo\n");
  const std::string listing = mdir(image, "/");
  EXPECT_EQ(listing.find("uEnv.txt"), std::string::npos) << listing;
  EXPECT_EQ(listing.find(".imprint-"), std::string::npos) << listing;
  const CommandResult fsck = fsck_boot(image, dir);
  EXPECT_EQ(fsck.status, 0) << fsck.out << fsck.err;
}

TEST(GuestfsBoot, NoApplianceIsOneClearErrorAndTheImageIsUntouched) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  const std::string before = file_sha256(image);
  write_file(dir / "x", "x\n");
  // An appliance path holding nothing: libguestfs finds no appliance to launch.
  std::filesystem::create_directories(dir / "empty");
  const CommandResult put = run_imprint({"put", dir / "x", image + ":/uboot/x"}, "", {"LIBGUESTFS_PATH=" + (dir / "empty")});
  EXPECT_NE(put.status, 0);
  EXPECT_NE(put.err.find("cannot launch the libguestfs appliance for " + image), std::string::npos) << put.err;
  EXPECT_NE(put.err.find("scripts/setup.sh"), std::string::npos) << put.err;
  EXPECT_EQ(file_sha256(image), before);
}

// libguestfs is loaded only when an appliance is needed (src/guestfs/api.hpp): where it cannot be
// loaded (IMPRINT_LIBGUESTFS names a file that does not exist), the command that needs it says so in
// one line naming the library and its Debian package, and nothing is started or left behind.
TEST(GuestfsBoot, MissingLibguestfsIsOneClearErrorAndNothingIsLeft) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  const std::string before = file_sha256(image);
  write_file(dir / "x", "x\n");
  std::filesystem::create_directories(dir / "tmp");
  const std::string missing = dir / "libguestfs.so.0";
  const CommandResult put =
      run_imprint({"put", dir / "x", image + ":/uboot/x"}, "",
                  {"IMPRINT_LIBGUESTFS=" + missing, "TMPDIR=" + (dir / "tmp"), "XDG_CACHE_HOME=" + (dir / "cache")});
  EXPECT_EQ(put.status, 1) << put.err;
  EXPECT_EQ(count(put.err, "\n"), 1u) << put.err;
  EXPECT_NE(put.err.find(
                "cannot launch the libguestfs appliance for " + image +
                ": cannot load libguestfs.so.0 (Debian package libguestfs0; install it with scripts/setup.sh): " + missing),
            std::string::npos)
      << put.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir / "tmp")) << "temp files left behind";
  EXPECT_FALSE(std::filesystem::exists(dir / "cache")) << "the TCG note was shown before the library was found";
  EXPECT_EQ(file_sha256(image), before);
}

// A batch whose profile writes the boot partition (auto backend: libguestfs for vfat, libext2fs for
// the data partition): the shared file goes into the base once, each device gets its own, and every
// image reads back right with mtools and debugfs.
TEST(GuestfsBoot, BatchWritesEachDevicesBootPartition) {
  TempDir dir;
  write_file(dir / "profile.yaml",
             "version: 1\n"
             "files:\n"
             "  - path: /uboot/fleet.txt\n"
             "    content: \"fleet=imprint-test\\n\"\n"
             "    mode: \"0644\"\n"
             "  - path: /uboot/device-id.txt\n"
             "    content: \"{{device_id}}\\n\"\n"
             "    mode: \"0644\"\n"
             "  - path: /data/device-id\n"
             "    content: \"{{device_id}}\\n\"\n"
             "    mode: \"0644\"\n");
  write_file(dir / "devices.csv", "device_id\nboot-dev-1\nboot-dev-2\n");
  const std::string golden_before = file_sha256(fixture("mbr.img"));
  CommandResult batch = run_imprint({"batch", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--devices",
                                     dir / "devices.csv", "-O", dir / "out", "-j", "2", "-v"});
  ASSERT_EQ(batch.status, 0) << batch.err;
  // fleet.txt is the same for both, but each device launches an appliance for its device-id.txt
  // anyway: the shared base gets no launch of its own, fleet.txt goes with each device's writes.
  EXPECT_EQ(count(batch.err, "(vfat, libguestfs, read-write)"), 2u) << batch.err;
  EXPECT_EQ(count(batch.err, "1 shared operation(s) on partitions libguestfs writes go with each device's own"), 1u) << batch.err;
  for (const std::string id : {"boot-dev-1", "boot-dev-2"}) {
    const std::string image = dir / ("out/" + id + ".img");
    EXPECT_EQ(mtype(image, "/device-id.txt"), id + "\n");
    EXPECT_EQ(mtype(image, "/fleet.txt"), "fleet=imprint-test\n");
    EXPECT_EQ(debugfs(image, 4, "cat /device-id"), id + "\n");
    EXPECT_EQ(fsck_boot(image, dir).status, 0) << id;
    EXPECT_EQ(e2fsck(image, 4).status, 0) << id;
  }
  EXPECT_EQ(file_sha256(fixture("mbr.img")), golden_before);
}
