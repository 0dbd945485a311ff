// What the native ext4 backend refuses (symlink components, journal recovery, unknown features, quota,
// truncated images, bad superblocks, unnormalized paths), and a filesystem inside a bigger file at
// an offset, whose surrounding bytes must stay untouched.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/fs/ext4.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::debugfs;
using test::debugfs_write;
using test::run;
using test::TempDir;

void run_ok(const std::vector<std::string>& argv) {
  const test::CommandResult result = run(argv);
  if (result.status != 0) throw std::runtime_error(argv.at(0) + " failed (is it installed?): " + result.err);
}

// A 32 MiB ext4 (1.47 defaults, 4 KiB blocks) holding /etc/hostname and the mender-convert
// /var/lib/mender -> /data/mender link.
std::string make_rootfs(const TempDir& dir) {
  std::filesystem::create_directories(dir / "content/etc");
  std::filesystem::create_directories(dir / "content/var/lib");
  test::write_file(dir / "content/etc/hostname", "device\n");
  std::filesystem::create_symlink("/data/mender", dir / "content/var/lib/mender");
  const std::string image = dir / "rootfs.img";
  run_ok({"mkfs.ext4", "-q", "-F", "-b", "4096", "-d", dir / "content", image, "32M"});
  return image;
}

std::unique_ptr<Filesystem> open_image(const std::string& image, bool writable, std::uint64_t offset = 0,
                                       std::uint64_t size = 0) {
  return open_ext4(Ext4OpenOptions{image, offset, size, writable, "rootfs (p2)"});
}

void expect_fsck_clean(const std::string& device) {
  const test::CommandResult result = run({"e2fsck", "-fn", device});
  EXPECT_EQ(result.status, 0) << "e2fsck -fn " << device << ":\n" << result.out << result.err;
}

// The shared check, plus: the message is one line.
template <class Action>
std::string expect_error(Action action, ErrorCode code) {
  const Error error = test::expect_error(action, code);
  EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos) << "one line: " << error.what();
  return error.what();
}

void put(Filesystem& fs, const std::string& path, const std::string& bytes) {
  MemorySource source(bytes);
  fs.write(path, source, Attributes{});
}

TEST(Ext4Refusal, NeverWalksThroughASymlink) {
  TempDir dir;
  const std::string image = make_rootfs(dir);
  {
    auto fs = open_image(image, true);
    const std::string message = expect_error([&] { put(*fs, "/var/lib/mender/mender.conf", "{}"); }, ErrorCode::Symlink);
    EXPECT_EQ(message, "rootfs (p2): /var/lib/mender is a symlink to /data/mender");
    expect_error([&] { fs->mkdir("/var/lib/mender/x", Attributes{}); }, ErrorCode::Symlink);
    expect_error([&] { fs->stat("/var/lib/mender/x"); }, ErrorCode::Symlink);
    expect_error([&] { fs->list("/var/lib/mender"); }, ErrorCode::Symlink);
    expect_error([&] { read_all(*fs, "/var/lib/mender"); }, ErrorCode::Symlink);
    expect_error([&] { make_directories(*fs, "/var/lib/mender/a/b", Attributes{}); }, ErrorCode::Symlink);
    // The link itself is visible (lstat) and stays as it is.
    const FileStat link = fs->stat("/var/lib/mender").value();
    EXPECT_EQ(link.type, FileType::Symlink);
    EXPECT_EQ(link.link_target, "/data/mender");
    expect_error([&] { put(*fs, "/etc/hostname/x", "x"); }, ErrorCode::NotDirectory);
    expect_error([&] { put(*fs, "/nowhere/x", "x"); }, ErrorCode::NotFound);
    fs->flush();
  }
  EXPECT_NE(debugfs(image, "stat /var/lib/mender").find("Fast link dest: \"/data/mender\""), std::string::npos);
  expect_fsck_clean(image);
}

TEST(Ext4Refusal, RefusesUnnormalizedPaths) {
  TempDir dir;
  const std::string image = make_rootfs(dir);
  auto fs = open_image(image, true);
  for (const std::string path : {"etc/hostname", "/etc/../x", "/etc/./hostname", "/etc//hostname", "/etc/", ""}) {
    expect_error([&] { put(*fs, path, "x"); }, ErrorCode::Invalid);
  }
  expect_error([&] { fs->stat("/etc/.."); }, ErrorCode::Invalid);
}

TEST(Ext4Refusal, NeedsJournalRecovery) {
  TempDir dir;
  const std::string image = make_rootfs(dir);
  debugfs_write(image, "feature needs_recovery");
  ASSERT_NE(run({"dumpe2fs", "-h", image}).out.find("needs_recovery"), std::string::npos);
  const std::string before = test::file_sha256(image);
  for (const bool writable : {true, false}) {
    const std::string message = expect_error([&] { open_image(image, writable); }, ErrorCode::Unsupported);
    EXPECT_NE(message.find("rootfs (p2): "), std::string::npos) << message;
    EXPECT_NE(message.find("journal recovery"), std::string::npos) << message;
    EXPECT_NE(message.find("e2fsck"), std::string::npos) << message;
  }
  EXPECT_EQ(test::file_sha256(image), before);
}

// libext2fs allocates without updating quota files: writing is refused, reading is fine.
TEST(Ext4Refusal, QuotaFilesBlockWriting) {
  TempDir dir;
  const std::string image = dir / "quota.img";
  run_ok({"mkfs.ext4", "-q", "-F", "-O", "quota", "-b", "4096", image, "32M"});
  ASSERT_NE(run({"dumpe2fs", "-h", image}).out.find("quota"), std::string::npos);
  const std::string before = test::file_sha256(image);
  const std::string message = expect_error([&] { open_image(image, true); }, ErrorCode::Unsupported);
  EXPECT_NE(message.find("rootfs (p2): "), std::string::npos) << message;
  EXPECT_NE(message.find("'quota'"), std::string::npos) << message;
  EXPECT_NE(message.find("--backend guestfs"), std::string::npos) << message;
  EXPECT_NO_THROW(open_image(image, false)->stat("/"));
  EXPECT_EQ(test::file_sha256(image), before);
}

TEST(Ext4Refusal, UnknownReadOnlyCompatFeatureBlocksWriting) {
  TempDir dir;
  const std::string image = make_rootfs(dir);
  // ro_compat bit 31: unknown to e2fsprogs 1.47 (which prints unknown bits as FEATURE_R<n>).
  ASSERT_NE(debugfs_write(image, "feature FEATURE_R31").find("FEATURE_R31"), std::string::npos);
  const std::string message = expect_error([&] { open_image(image, true); }, ErrorCode::Unsupported);
  EXPECT_NE(message.find("rootfs (p2): "), std::string::npos) << message;
  EXPECT_NE(message.find("ro_compat 0x80000000"), std::string::npos) << message;
  // Reading is still safe: an ro_compat feature only forbids writing.
  auto fs = open_image(image, false);
  EXPECT_EQ(read_all(*fs, "/etc/hostname"), "device\n");
}

TEST(Ext4Refusal, UnknownIncompatFeatureBlocksEverything) {
  TempDir dir;
  const std::string image = make_rootfs(dir);
  ASSERT_NE(debugfs_write(image, "feature FEATURE_I31").find("FEATURE_I31"), std::string::npos);
  for (const bool writable : {true, false}) {
    const std::string message = expect_error([&] { open_image(image, writable); }, ErrorCode::Unsupported);
    EXPECT_NE(message.find("incompat 0x80000000"), std::string::npos) << message;
  }
}

TEST(Ext4Refusal, TruncatedImage) {
  TempDir dir;
  const std::string image = make_rootfs(dir);
  std::filesystem::resize_file(image, 20 << 20);
  for (const bool writable : {true, false}) {
    const std::string message = expect_error([&] { open_image(image, writable); }, ErrorCode::Corrupt);
    EXPECT_NE(message.find("rootfs (p2): truncated image"), std::string::npos) << message;
  }
}

TEST(Ext4Refusal, FilesystemLargerThanItsPartition) {
  TempDir dir;
  const std::string image = make_rootfs(dir);
  const std::string message = expect_error([&] { open_image(image, true, 0, 16 << 20); }, ErrorCode::Corrupt);
  EXPECT_NE(message.find("larger than its partition"), std::string::npos) << message;
  EXPECT_NO_THROW(open_image(image, true, 0, 32 << 20));
}

TEST(Ext4Refusal, NoSuperblock) {
  TempDir dir;
  const std::string image = dir / "zeros.img";
  test::write_file(image, "");
  std::filesystem::resize_file(image, 8 << 20);
  const std::string message = expect_error([&] { open_image(image, false); }, ErrorCode::Corrupt);
  EXPECT_NE(message.find("rootfs (p2): no valid ext2/3/4 superblock at offset 0"), std::string::npos) << message;
  expect_error([&] { open_image(dir / "missing.img", false); }, ErrorCode::NotFound);
}

TEST(Ext4Offset, WritesInPlaceAndLeavesTheRestOfTheFileAlone) {
  TempDir dir;
  constexpr std::uint64_t offset = 8 << 20, fs_size = 32 << 20, tail = 4 << 20;
  const std::string image = dir / "disk.img";
  // 8 MiB of random bytes, the filesystem, then 4 MiB of random bytes after it.
  run_ok({"dd", "if=/dev/urandom", "of=" + image, "bs=1M", "count=8", "status=none"});
  run_ok({"mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "offset=" + std::to_string(offset), image, "32M"});
  run_ok({"dd", "if=/dev/urandom", "of=" + image, "bs=1M", "count=4", "seek=40", "conv=notrunc", "status=none"});
  ASSERT_EQ(std::filesystem::file_size(image), offset + fs_size + tail);
  auto region_sha = [&](std::uint64_t start, std::uint64_t length) {
    return test::shell("dd if='" + image + "' bs=1M iflag=skip_bytes,count_bytes skip=" + std::to_string(start) +
                       " count=" + std::to_string(length) + " status=none | sha256sum | cut -c1-64");
  };
  const std::string head = region_sha(0, offset), after = region_sha(offset + fs_size, tail);
  const std::string device = image + "?offset=" + std::to_string(offset);
  const std::string content(3 << 20, 'z');
  {
    auto fs = open_image(image, true, offset, fs_size);
    make_directories(*fs, "/mender", Attributes{0700, 0, 0, std::nullopt});
    put(*fs, "/mender/file", content);
    fs->symlink("/mender/link", "file", Attributes{});
    fs->flush();
  }
  EXPECT_EQ(region_sha(0, offset), head);
  EXPECT_EQ(region_sha(offset + fs_size, tail), after);
  EXPECT_EQ(sha256_hex(debugfs(device, "cat /mender/file")), sha256_hex(content));
  expect_fsck_clean(device);
  // Without the offset there is no filesystem at the start of the file.
  expect_error([&] { open_image(image, false); }, ErrorCode::Corrupt);
}

}  // namespace
}  // namespace imprint
