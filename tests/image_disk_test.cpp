// DiskImage: opening raw and compressed images, refusals, filesystems in place, the fstab mounts.
// (Links the ext4 backend of src/fs.)
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "imprint/core/error.hpp"
#include "imprint/fs/filesystem.hpp"
#include "imprint/image/image.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::CommandResult;
using test::TempDir;
using test::expect_error;

constexpr std::uint64_t MiB = 1024 * 1024;

struct FsSpec {
  int number;
  std::string type;  // ext4, vfat
  std::string root;  // mkfs.ext4 -d tree, "" for empty
};

std::string build_image(const TempDir& dir, const std::string& name, const std::string& script,
                        const std::vector<FsSpec>& filesystems) {
  const std::string image = dir / name;
  EXPECT_EQ(test::run({"truncate", "-s", "96M", image}).status, 0);
  const CommandResult partitioned = test::run({"sfdisk", "-q", image}, script);
  EXPECT_EQ(partitioned.status, 0) << "sfdisk: " << partitioned.err;
  for (const FsSpec& fs : filesystems) {
    const test::Span span = test::partition_span(image, fs.number);
    const std::string kib = std::to_string(span.size / 1024);
    std::vector<std::string> argv;
    if (fs.type == "ext4") {
      argv = {"mkfs.ext4", "-q", "-F", "-E", "offset=" + std::to_string(span.offset), image, kib + "k"};
      if (!fs.root.empty()) argv.insert(argv.begin() + 1, {"-d", fs.root});
    } else {
      argv = {"mkfs.vfat", "--offset", std::to_string(span.offset / 512), image, kib};
    }
    const CommandResult made = test::run(argv);
    EXPECT_EQ(made.status, 0) << argv[0] << " on partition " << fs.number << ": " << made.err;
  }
  return image;
}

const std::string kMbrScript = "label: dos\n8M,8M,c\n16M,24M,83\n40M,24M,83\n64M,,83\n";

// A mender-like image whose rootfs fstab mounts p1 on /boot/efi and p4 on /data.
std::string mender_image(const TempDir& dir, const std::string& name = "disk.img") {
  const std::string root = dir / "rootfs";
  std::filesystem::create_directories(root + "/etc");
  test::write_file(root + "/etc/fstab",
                   "/dev/root / auto defaults 1 1\n/dev/mmcblk0p1 /boot/efi auto defaults 0 0\n"
                   "/dev/mmcblk0p4 /data auto defaults 0 0\n");
  return build_image(dir, name, kMbrScript, {{1, "vfat", ""}, {2, "ext4", root}, {3, "ext4", root}, {4, "ext4", ""}});
}

TEST(ImageDisk, OpensRawImageReadOnly) {
  TempDir dir;
  const std::string image = mender_image(dir);
  DiskImage disk = DiskImage::open(image, OpenMode::ReadOnly);
  EXPECT_EQ(disk.path(), image);
  EXPECT_EQ(disk.io_path(), image);
  EXPECT_FALSE(disk.writable());
  EXPECT_EQ(disk.layout().table, TableType::Dos);
  EXPECT_EQ(disk.partition(Role::Data).number, 4);
  EXPECT_EQ(disk.partition_number(2).role, Role::Primary);
  EXPECT_EQ(disk.partition(Role::Primary).offset, test::partition_span(image, 2).offset);
  const MountMap& mounts = disk.mounts();
  EXPECT_EQ(mounts.boot_mounts, std::vector<std::string>{"/boot/efi"});
  EXPECT_EQ(mounts.data_mount, "/data");
  EXPECT_EQ(disk.filesystem(disk.partition(Role::Secondary)).type(), "ext4");
}

TEST(ImageDisk, MissingPartitionsAreNamed) {
  TempDir dir;
  const std::string image = build_image(dir, "two.img", "label: dos\n8M,8M,c\n16M,,83\n", {{2, "ext4", ""}});
  DiskImage disk = DiskImage::open(image, OpenMode::ReadOnly);
  EXPECT_EQ(std::string(expect_error([&] { disk.partition(Role::Data); }, ErrorCode::NotFound).what()),
            image + " has no data partition");
  EXPECT_EQ(std::string(expect_error([&] { disk.partition_number(9); }, ErrorCode::NotFound).what()),
            image + " has no partition 9");
}

TEST(ImageDisk, MountsFallBackToDefaultsWithoutFstab) {
  TempDir dir;
  // The primary rootfs is an empty ext4: no /etc/fstab.
  const std::string image = build_image(dir, "bare.img", kMbrScript, {{2, "ext4", ""}});
  DiskImage disk = DiskImage::open(image, OpenMode::ReadOnly);
  EXPECT_EQ(disk.mounts().boot_mounts, (std::vector<std::string>{"/uboot", "/boot/efi"}));
  EXPECT_EQ(disk.mounts().data_mount, "/data");
}

TEST(ImageDisk, NativeBackendRefusesNonExtFilesystems) {
  TempDir dir;
  const std::string image = mender_image(dir);
  DiskImage disk = DiskImage::open(image, OpenMode::ReadOnly, Backend::Native);
  EXPECT_EQ(std::string(expect_error([&] { disk.filesystem(disk.partition(Role::Boot)); }, ErrorCode::Unsupported).what()),
            "vfat on boot (p1) needs the libguestfs backend (--backend auto or guestfs); the native backend opens ext2/3/4 only");
}

// A compressed image may be a stamped one, with a device's key: its decompressed copy goes beside
// it, unnamed (the directory holds those bytes already), never into TMPDIR (here a directory that
// does not exist: a temp file there would be an error).
TEST(ImageDisk, CompressedImageIsReadFromAnUnnamedFileBesideIt) {
  TempDir dir;
  const std::string image = mender_image(dir);
  ASSERT_EQ(test::run({"gzip", "-k", image}).status, 0);
  const auto names_before = test::shell("ls -A '" + dir.path() + "'");
  const char* old_tmpdir = std::getenv("TMPDIR");
  const std::string saved = old_tmpdir == nullptr ? "" : old_tmpdir;
  ::setenv("TMPDIR", (dir / "no-such-dir").c_str(), 1);
  DiskImage raw = DiskImage::open(image, OpenMode::ReadOnly);
  DiskImage disk = DiskImage::open(image + ".gz", OpenMode::ReadOnly);
  if (old_tmpdir == nullptr) ::unsetenv("TMPDIR"); else ::setenv("TMPDIR", saved.c_str(), 1);

  EXPECT_EQ(disk.path(), image + ".gz");
  EXPECT_EQ(disk.io_path().rfind("/proc/self/fd/", 0), 0u) << disk.io_path();
  const std::string copy = std::filesystem::read_symlink(disk.io_path()).string();
  EXPECT_EQ(copy.rfind(std::filesystem::canonical(dir.path()).string() + "/#", 0), 0u) << "the copy is not beside the image: " << copy;
  EXPECT_EQ(test::shell("ls -A '" + dir.path() + "'"), names_before) << "the copy must have no name";
  // The decompressed copy is sparse and identical to the raw image.
  EXPECT_EQ(test::file_sha256(disk.io_path()), test::file_sha256(image));
  EXPECT_LT(test::allocated_bytes(disk.io_path()), 48 * MiB);
  ASSERT_EQ(disk.layout().partitions.size(), raw.layout().partitions.size());
  for (std::size_t i = 0; i < raw.layout().partitions.size(); ++i) {
    EXPECT_EQ(disk.layout().partitions[i].offset, raw.layout().partitions[i].offset);
    EXPECT_EQ(disk.layout().partitions[i].uuid, raw.layout().partitions[i].uuid);
    EXPECT_EQ(disk.layout().partitions[i].role, raw.layout().partitions[i].role);
  }
  EXPECT_EQ(disk.mounts().boot_mounts, std::vector<std::string>{"/boot/efi"});
  EXPECT_EQ(read_all(disk.filesystem(disk.partition(Role::Primary)), "/etc/fstab"),
            test::read_file(dir / "rootfs/etc/fstab"));
}

TEST(ImageDisk, WritingACompressedImageIsRefused) {
  TempDir dir;
  const std::string image = mender_image(dir);
  ASSERT_EQ(test::run({"xz", "-k", "-T1", image}).status, 0);
  const std::string compressed = image + ".xz";
  EXPECT_EQ(std::string(expect_error([&] { DiskImage::open(compressed, OpenMode::ReadWrite); }, ErrorCode::Unsupported).what()),
            compressed + " is compressed; write commands need a raw image (decompress it first, or use stamp)");
}

TEST(ImageDisk, RefusesTruncatedAndMissingImages) {
  TempDir dir;
  const std::string image = mender_image(dir);
  ASSERT_EQ(test::run({"truncate", "-s", "80M", image}).status, 0);
  EXPECT_EQ(std::string(expect_error([&] { DiskImage::open(image, OpenMode::ReadWrite); }, ErrorCode::Corrupt).what()),
            image + ": partition 4 ends at 100663296 bytes but the image is 83886080 bytes (truncated image?)");
  expect_error([&] { DiskImage::open(dir / "nope.img", OpenMode::ReadOnly); }, ErrorCode::NotFound);
}

TEST(ImageDisk, WritesLandInPlaceAndFlush) {
  TempDir dir;
  const std::string image = mender_image(dir);
  const std::string boot_before = test::partition_sha256(image, 1);
  const std::string secondary_before = test::partition_sha256(image, 3);
  {
    DiskImage disk = DiskImage::open(image, OpenMode::ReadWrite);
    ASSERT_TRUE(disk.writable());
    Filesystem& data = disk.filesystem(disk.partition(Role::Data));
    EXPECT_EQ(&data, &disk.filesystem(disk.partition_number(4)));  // cached per partition
    make_directories(data, "/mender", Attributes{0755, 0, 0, 0});
    MemorySource content("device_type=beaglebone\n");
    data.write("/mender/device_type", content, Attributes{0644, 0, 0, 0});
    disk.flush();
  }
  EXPECT_EQ(test::debugfs(image, 4, "cat /mender/device_type"), "device_type=beaglebone\n");
  EXPECT_EQ(test::e2fsck(image, 4).status, 0) << test::e2fsck(image, 4).out;
  EXPECT_EQ(test::partition_sha256(image, 1), boot_before);
  EXPECT_EQ(test::partition_sha256(image, 3), secondary_before);
}

}  // namespace
}  // namespace imprint
