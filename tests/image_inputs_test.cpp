// Hostile host inputs and image contents (issue 12): FIFOs, devices and oversized files as inputs,
// partition tables whose partitions overlap, decompression bombs, an fstab mounting the boot
// partition at /, and the sweep of partial outputs left by killed runs.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "imprint/image/copy.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/image/image.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::expect_error;
using test::TempDir;
namespace fs = std::filesystem;

void expect_contains(const std::string& text, const std::string& needle) {
  EXPECT_NE(text.find(needle), std::string::npos) << "expected '" << needle << "' in: " << text;
}

// A FIFO with no writer: open(2) without O_NONBLOCK would block forever. The alarm turns a hang
// into a failed test (SIGALRM ends the process) instead of a stuck suite.
std::string make_fifo(const TempDir& dir, const std::string& name) {
  const std::string path = dir / name;
  EXPECT_EQ(::mkfifo(path.c_str(), 0600), 0);
  return path;
}

struct HangGuard {
  HangGuard() { ::alarm(20); }
  ~HangGuard() { ::alarm(0); }
};

TEST(ImageInputs, FifosAreRefusedWithoutBlocking) {
  TempDir dir;
  const std::string fifo = make_fifo(dir, "golden.img");
  HangGuard guard;
  Error error = expect_error([&] { read_host_file(fifo); }, ErrorCode::Invalid);
  EXPECT_EQ(std::string(error.what()),
            fifo + " is a pipe (FIFO), not a regular file: pipes are not supported (inputs must be seekable files; save the "
                   "stream to a file first)");
  error = expect_error([&] { DiskImage::open(fifo, OpenMode::ReadOnly); }, ErrorCode::Invalid);
  expect_contains(error.what(), fifo + " is a pipe (FIFO), not a disk image: pipes are not supported");
  error = expect_error([&] { DiskImage::open(fifo, OpenMode::ReadWrite); }, ErrorCode::Invalid);
  expect_contains(error.what(), "pipes are not supported");
  error = expect_error([&] { probe_layout(fifo); }, ErrorCode::Invalid);
  expect_contains(error.what(), "pipes are not supported");
  error = expect_error([&] { copy_image(fifo, -1); }, ErrorCode::Invalid);
  expect_contains(error.what(), "pipes are not supported");
}

TEST(ImageInputs, DevicesAreRefusedAsFilesAndBlockDevicesOnlyWhereAsked) {
  Error error = expect_error([] { read_host_file("/dev/zero"); }, ErrorCode::Invalid);
  EXPECT_EQ(std::string(error.what()), "/dev/zero is a character device, not a regular file");
  error = expect_error([] { DiskImage::open("/dev/null", OpenMode::ReadOnly); }, ErrorCode::Invalid);
  EXPECT_EQ(std::string(error.what()), "/dev/null is a character device, not a disk image");
  // A golden is copied by its size, which a block device has not: refused where a file is needed.
  std::string device = test::shell("losetup -f --show -r '" + test::fixture("mbr.img") + "'");
  device.erase(device.find_last_not_of('\n') + 1);
  struct Detach {
    std::string device;
    ~Detach() { test::run({"losetup", "-d", device}); }
  } detach{device};
  error = expect_error([&] { copy_image(detach.device, -1); }, ErrorCode::Invalid);
  EXPECT_EQ(std::string(error.what()), detach.device + " is a block device, not an image file");
  EXPECT_NO_THROW(UniqueFd fd = open_read(detach.device)) << "a card is read where the command reads devices";
}

TEST(ImageInputs, SmallInputsHaveASizeLimitNamingFileAndLimit) {
  TempDir dir;
  const std::string big = dir / "key.pem";
  test::write_file(big, std::string(kSmallInputLimit + 1, 'A'));
  const Error error = expect_error([&] { read_host_file(big); }, ErrorCode::Invalid);
  EXPECT_EQ(std::string(error.what()), big + " is larger than 1 MiB, the limit for this input");
  test::write_file(big, std::string(kSmallInputLimit, 'A'));
  EXPECT_EQ(read_host_file(big).size(), kSmallInputLimit);
  EXPECT_EQ(read_host_file(big, 2 * kSmallInputLimit).size(), kSmallInputLimit);
  EXPECT_EQ(format_limit(kListInputLimit), "256 MiB");
}

// An MBR image of four 2 MiB partitions from sfdisk (which refuses overlaps), then one entry's
// start sector rewritten in place, as a hostile table would have it.
std::string four_partitions(const TempDir& dir) {
  const std::string image = dir / "table.img";
  test::shell("truncate -s 16M '" + image + "'");
  const auto made = test::run({"sfdisk", "-q", image}, "label: dos\nstart=2048, size=4096\nsize=4096\nsize=4096\nsize=4096\n");
  EXPECT_EQ(made.status, 0) << made.err;
  return image;
}

void set_start_sector(const std::string& image, int entry, std::uint32_t sector) {
  std::fstream file(image, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(446 + 16 * (entry - 1) + 8);
  const char bytes[4] = {static_cast<char>(sector & 0xff), static_cast<char>((sector >> 8) & 0xff),
                         static_cast<char>((sector >> 16) & 0xff), static_cast<char>(sector >> 24)};
  file.write(bytes, 4);
}

TEST(ImageInputs, OverlappingPartitionsAreRefusedNamingBoth) {
  TempDir dir;
  const std::string image = four_partitions(dir);
  EXPECT_EQ(probe_layout(image).partitions.size(), 4u);
  set_start_sector(image, 4, 6144);  // p4 over p2 (sectors 6144-10239)
  const std::string sha = test::file_sha256(image);
  Error error = expect_error([&] { probe_layout(image); }, ErrorCode::Corrupt);
  EXPECT_EQ(std::string(error.what()), image + ": partitions 2 and 4 overlap (p2: sectors 6144-10239, p4: sectors 6144-10239)");
  error = expect_error([&] { DiskImage::open(image, OpenMode::ReadWrite); }, ErrorCode::Corrupt);
  expect_contains(error.what(), "partitions 2 and 4 overlap");
  EXPECT_EQ(test::file_sha256(image), sha) << "refusing must not touch the image";
}

std::uint32_t crc32(const unsigned char* data, std::size_t size) {  // the GPT's CRC-32 (IEEE 802.3)
  std::uint32_t crc = 0xffffffffu;
  for (std::size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// Points GPT entry 4 at entry 2's sectors and fixes the primary header's CRCs (libblkid reads the
// primary GPT when it is valid), as a hostile table would have it.
void gpt_entry4_over_entry2(const std::string& image) {
  std::fstream file(image, std::ios::in | std::ios::out | std::ios::binary);
  std::vector<unsigned char> table(34 * 512);
  file.read(reinterpret_cast<char*>(table.data()), static_cast<std::streamsize>(table.size()));
  unsigned char* header = table.data() + 512;
  unsigned char* entries = table.data() + 1024;  // entries at LBA 2, 128 bytes each
  std::memcpy(entries + 3 * 128 + 32, entries + 1 * 128 + 32, 16);  // first and last LBA
  std::uint32_t count = 0, entry_size = 0, header_size = 0;
  std::memcpy(&count, header + 80, 4);
  std::memcpy(&entry_size, header + 84, 4);
  std::memcpy(&header_size, header + 12, 4);
  const std::uint32_t entries_crc = crc32(entries, std::size_t{count} * entry_size);
  std::memcpy(header + 88, &entries_crc, 4);
  std::memset(header + 16, 0, 4);
  const std::uint32_t header_crc = crc32(header, header_size);
  std::memcpy(header + 16, &header_crc, 4);
  file.seekp(0);
  file.write(reinterpret_cast<const char*>(table.data()), static_cast<std::streamsize>(table.size()));
}

TEST(ImageInputs, OverlappingGptPartitionsAreRefusedToo) {
  TempDir dir;
  const std::string image = test::copy_fixture("gpt.img", dir);
  gpt_entry4_over_entry2(image);
  const Error error = expect_error([&] { probe_layout(image); }, ErrorCode::Corrupt);
  expect_contains(error.what(), image + ": partitions 2 and 4 overlap (p2: sectors ");
}

TEST(ImageInputs, PartitionOverTheTableOrPastTheEndIsRefused) {
  TempDir dir;
  const std::string image = four_partitions(dir);
  set_start_sector(image, 1, 0);
  Error error = expect_error([&] { probe_layout(image); }, ErrorCode::Corrupt);
  EXPECT_EQ(std::string(error.what()), image + ": partition 1 starts at sector 0, over the partition table itself");
  set_start_sector(image, 1, 2048);
  set_start_sector(image, 4, 30000);  // 4096 sectors from 30000 run past the 32768-sector image
  error = expect_error([&] { probe_layout(image); }, ErrorCode::Corrupt);
  expect_contains(error.what(), "partition 4 ends at");
}

TEST(ImageInputs, LogicalPartitionsInsideTheirExtendedContainerAreFine) {
  const Layout layout = probe_layout(test::fixture("v1.img"));  // p4 extended holding p5 and p6
  ASSERT_GE(layout.partitions.size(), 6u);
  EXPECT_TRUE(layout.partitions[3].extended);
}

TEST(ImageInputs, DecompressionStopsPastWhatThePartitionTableSpans) {
  TempDir dir;
  const std::string bomb = dir / "bomb.img.zst";
  // The image, then 64 MiB of zeros no partition covers: a few KiB compressed.
  test::shell("{ cat '" + test::fixture("mbr.img") + "'; head -c 64M /dev/zero; } | zstd -q -o '" + bomb + "'");
  const Error error = expect_error([&] { DiskImage::open(bomb, OpenMode::ReadOnly); }, ErrorCode::Corrupt);
  expect_contains(error.what(), bomb + ": decompresses to more than ");
  expect_contains(error.what(), "past the end of the partitions its table describes");
  // The image itself still opens (its last partition ends at its end).
  EXPECT_EQ(DiskImage::open(test::fixture("mbr.img.zst"), OpenMode::ReadOnly).layout().partitions.size(), 4u);
}

TEST(ImageInputs, ErrorsAboutACopyNameTheImageTheUserGave) {
  TempDir dir;
  const std::string copy = dir / "copy.img";
  test::write_file(copy, std::string(1 << 20, '\0'));
  const Error error = expect_error([&] { DiskImage::open(copy, OpenMode::ReadOnly, Backend::Auto, "golden.img"); },
                                   ErrorCode::Corrupt);
  EXPECT_EQ(std::string(error.what()), "golden.img: no partition table found");
}

TEST(ImageInputs, FstabMountingANonRootPartitionAtRootIsRefused) {
  const Layout layout = probe_layout(test::fixture("mbr.img"));
  const Error error = expect_error(
      [&] { parse_fstab("/dev/root / ext4 defaults 1 1\n/dev/mmcblk0p1 / vfat defaults 0 0\n", layout); }, ErrorCode::Corrupt);
  EXPECT_EQ(std::string(error.what()),
            "/etc/fstab line 2 mounts the boot partition (p1) at /, where only a root filesystem may be mounted");
  expect_error([&] { parse_fstab("/dev/mmcblk0p4 / ext4 defaults 0 0\n", layout); }, ErrorCode::Corrupt);
  EXPECT_EQ(parse_fstab("/dev/mmcblk0p2 / ext4 defaults 0 0\n/dev/mmcblk0p1 /uboot vfat defaults 0 0\n", layout).boot_mounts,
            std::vector<std::string>{"/uboot"});
}

TEST(ImageInputs, StalePartialsOfDeadRunsAreRemovedOthersStay) {
  TempDir dir;
  const pid_t dead = [] {
    const pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    ::waitpid(child, nullptr, 0);
    return child;
  }();
  const std::string stale = dir / (".out.img.imprint-" + std::to_string(dead) + "-abcdefgh");
  const std::string live = dir / (".out.img.imprint-" + std::to_string(::getppid()) + "-abcdefgh");
  const std::string other_output = dir / (".other.img.imprint-" + std::to_string(dead) + "-abcdefgh");
  const std::string not_ours = dir / (".out.img.imprint-" + std::to_string(dead) + "-ABC");
  for (const auto& path : {stale, live, other_output, not_ours}) test::write_file(path, "partial");
  PendingFile output(dir / "out.img");
  EXPECT_FALSE(fs::exists(stale)) << "a dead run's partial of the same output is removed";
  EXPECT_TRUE(fs::exists(live)) << "a live run's partial stays";
  EXPECT_TRUE(fs::exists(other_output)) << "another output's partial stays";
  EXPECT_TRUE(fs::exists(not_ours)) << "a name off the exact pattern stays";
}

}  // namespace
}  // namespace imprint
