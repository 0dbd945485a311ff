// compare_with_overlay and region_of on files made with truncate/dd: bytes outside an overlay's
// written runs are counted (bytes, ranges, first offset, regions), written runs that differ are
// listed, the image's bytes past the golden's size are ignored, a shorter image is compared as far
// as it goes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "imprint/core/fileio.hpp"
#include "imprint/image/compare.hpp"
#include "imprint/image/overlay.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::TempDir;

constexpr std::uint64_t MiB = 1024 * 1024;
constexpr std::uint64_t kGoldenSize = 3 * MiB + 4096;  // not a whole number of the comparison's 1 MiB blocks

void sh(const std::string& command) { test::shell(command); }

// A DOS layout: boot (p1) at 1 MiB and primary (p2) at 2 MiB, 1 MiB each; a gap before, a tail after.
Layout two_partitions() {
  Layout layout;
  layout.table = TableType::Dos;
  layout.image_size = kGoldenSize;
  Partition boot;
  boot.number = 1;
  boot.offset = MiB;
  boot.size = MiB;
  boot.role = Role::Boot;
  Partition primary = boot;
  primary.number = 2;
  primary.offset = 2 * MiB;
  primary.role = Role::Primary;
  layout.partitions = {boot, primary};
  return layout;
}

// The golden: random 1 MiB at 1 MiB and the last 4 KiB, the rest a hole (reads as zeros).
std::string make_golden(const TempDir& dir) {
  const std::string path = dir / "golden.img";
  sh("truncate -s " + std::to_string(kGoldenSize) + " '" + path + "'");
  sh("dd if=/dev/urandom of='" + path + "' bs=1M count=1 seek=1 conv=notrunc status=none");
  sh("dd if=/dev/urandom of='" + path + "' bs=4096 count=1 seek=" + std::to_string(3 * MiB / 4096) + " conv=notrunc status=none");
  return path;
}

// Two written runs: 1 KiB in boot, and 1 KiB across the 2 MiB block boundary (boot's end, primary's start).
ImageOverlay make_overlay() {
  ImageOverlay overlay;
  overlay.write(MiB + 8192, std::string(1024, 'a'));
  overlay.write(2 * MiB - 512, std::string(1024, 'b'));
  return overlay;
}

// golden + overlay written out, then `tail` more bytes (a card larger than the image).
std::string make_expected_image(const TempDir& dir, const std::string& golden, const ImageOverlay& overlay, std::uint64_t tail,
                                const std::string& name = "image.img") {
  const std::string path = dir / name;
  UniqueFd golden_fd = open_read(golden);
  std::string bytes(kGoldenSize, '\0');
  overlay.read(golden_fd.get(), 0, bytes.size(), bytes.data());
  test::write_file(path, bytes);
  if (tail) sh("head -c " + std::to_string(tail) + " /dev/urandom >> '" + path + "'");
  return path;
}

void poke(const std::string& path, std::uint64_t offset, const std::string& bytes) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  // Flip every bit: whatever the byte was, it now differs.
  std::string flipped = bytes;
  for (char& c : flipped) c = static_cast<char>(~c);
  pwrite_all(fd.get(), flipped, offset, path);
}

// Reads `size` bytes at offset from path (to flip exactly what is there).
std::string peek(const std::string& path, std::uint64_t offset, std::size_t size) {
  UniqueFd fd = open_read(path);
  std::string bytes(size, '\0');
  EXPECT_EQ(::pread(fd.get(), bytes.data(), size, static_cast<off_t>(offset)), static_cast<ssize_t>(size));
  return bytes;
}

OverlayComparison compare(const std::string& golden, const ImageOverlay& overlay, const std::string& image) {
  UniqueFd golden_fd = open_read(golden), image_fd = open_read(image);
  const auto image_size = static_cast<std::uint64_t>(::lseek(image_fd.get(), 0, SEEK_END));
  return compare_with_overlay(golden_fd.get(), kGoldenSize, overlay, image_fd.get(), image_size, two_partitions(), image);
}

TEST(ImageCompare, GoldenPlusOverlayMatchesAndTheTailPastTheGoldenIsIgnored) {
  TempDir dir;
  const std::string golden = make_golden(dir);
  const ImageOverlay overlay = make_overlay();
  const std::string image = make_expected_image(dir, golden, overlay, 5000);
  const OverlayComparison result = compare(golden, overlay, image);
  EXPECT_EQ(result.compared, kGoldenSize);
  EXPECT_EQ(result.outside.bytes, 0u);
  EXPECT_EQ(result.written, (std::vector<Extent>{{MiB + 8192, 1024}, {2 * MiB - 512, 1024}}));
  EXPECT_TRUE(result.written_differ.empty());
  // Independently: the file really is the golden outside the runs (cmp), and longer than it.
  EXPECT_EQ(test::run({"cmp", "-n", std::to_string(MiB + 8192), golden, image}).status, 0);
  EXPECT_NE(test::run({"cmp", golden, image}).status, 0);
}

TEST(ImageCompare, ADifferenceInsideAWrittenRunNamesTheRunOnly) {
  TempDir dir;
  const std::string golden = make_golden(dir);
  const ImageOverlay overlay = make_overlay();
  const std::string image = make_expected_image(dir, golden, overlay, 0);
  poke(image, 2 * MiB + 100, peek(image, 2 * MiB + 100, 1));  // in the second run, past the block boundary
  const OverlayComparison result = compare(golden, overlay, image);
  EXPECT_EQ(result.outside.bytes, 0u);
  EXPECT_EQ(result.written_differ, (std::vector<Extent>{{2 * MiB - 512, 1024}}));
}

TEST(ImageCompare, DifferencesOutsideTheRunsAreCountedWithTheirRegions) {
  TempDir dir;
  const std::string golden = make_golden(dir);
  const ImageOverlay overlay = make_overlay();
  const std::string image = make_expected_image(dir, golden, overlay, 0);
  poke(image, 100, peek(image, 100, 1));                    // the MBR
  poke(image, MiB - 2, peek(image, MiB - 2, 4));            // gap -> boot, across the first block boundary: one range
  poke(image, MiB + 5000, peek(image, MiB + 5000, 2));      // boot
  poke(image, MiB + 8192 + 1024, peek(image, MiB + 8192 + 1024, 1));  // just past the first run
  poke(image, 3 * MiB - 1, peek(image, 3 * MiB - 1, 1));    // primary's last byte
  poke(image, 3 * MiB + 10, peek(image, 3 * MiB + 10, 1));  // after the partitions
  const OverlayComparison result = compare(golden, overlay, image);
  EXPECT_EQ(result.outside.bytes, 1u + 4 + 2 + 1 + 1 + 1);
  EXPECT_EQ(result.outside.ranges, 6u);
  EXPECT_EQ(result.outside.first, 100u);
  EXPECT_EQ(result.outside.regions,
            (std::vector<std::string>{"partition table", "outside the partitions", "boot (p1)", "primary (p2)"}));
  EXPECT_TRUE(result.written_differ.empty());
  // cmp -l (an independent count of differing bytes) agrees.
  const std::string expected = make_expected_image(dir, golden, overlay, 0, "expected.img");
  EXPECT_EQ(test::shell("cmp -l '" + image + "' '" + expected + "' | wc -l"), "10\n");
}

TEST(ImageCompare, AShorterImageIsComparedAsFarAsItGoes) {
  TempDir dir;
  const std::string golden = make_golden(dir);
  const ImageOverlay overlay = make_overlay();
  const std::string image = make_expected_image(dir, golden, overlay, 0);
  sh("truncate -s " + std::to_string(2 * MiB) + " '" + image + "'");  // cuts the second run in half
  const OverlayComparison result = compare(golden, overlay, image);
  EXPECT_EQ(result.compared, 2 * MiB);
  EXPECT_EQ(result.outside.bytes, 0u);
  EXPECT_EQ(result.written, (std::vector<Extent>{{MiB + 8192, 1024}, {2 * MiB - 512, 512}}));
  EXPECT_TRUE(result.written_differ.empty());
}

TEST(ImageCompare, RegionsOfAGptImage) {
  Layout layout = two_partitions();
  layout.table = TableType::Gpt;
  layout.image_size = 10 * MiB;
  EXPECT_EQ(region_of(layout, 0), "partition table");
  EXPECT_EQ(region_of(layout, 34 * 512 - 1), "partition table");  // the last sector of the primary entries
  EXPECT_EQ(region_of(layout, 34 * 512), "outside the partitions");
  EXPECT_EQ(region_of(layout, MiB), "boot (p1)");
  EXPECT_EQ(region_of(layout, 3 * MiB - 1), "primary (p2)");
  EXPECT_EQ(region_of(layout, 10 * MiB - 34 * 512), "outside the partitions");
  EXPECT_EQ(region_of(layout, 10 * MiB - 33 * 512), "partition table");  // the backup entries and header
  EXPECT_EQ(region_of(layout, 10 * MiB - 1), "partition table");
}

TEST(ImageCompare, TheBootRecordsOfAnExtendedContainerArePartitionTable) {
  Layout layout = two_partitions();
  Partition extended;
  extended.number = 3;
  extended.offset = 3 * MiB;
  extended.size = 2 * MiB;
  extended.extended = true;
  Partition logical;
  logical.number = 5;
  logical.offset = 3 * MiB + MiB;
  logical.size = MiB;
  logical.role = Role::Data;
  layout.partitions.push_back(extended);
  layout.partitions.push_back(logical);
  EXPECT_EQ(region_of(layout, 3 * MiB), "partition table");
  EXPECT_EQ(region_of(layout, 4 * MiB), "data (p5)");
  EXPECT_EQ(region_of(layout, 5 * MiB), "outside the partitions");
}

}  // namespace
}  // namespace imprint
