// Reading bmap files (parse_bmap, libxml2): imprint's own, one written by bmaptool create, and the
// spellings other tools use (single quotes, extra elements and attributes); refusals name the file.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

#include "imprint/image/bmap.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/core/fileio.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::CommandResult;
using test::expect_error;
using test::TempDir;

const std::string kBlockA = sha256_hex(std::string(4096, 'a'));
const std::string kBlockB = sha256_hex(std::string(4096, 'b'));

// A bmap for an image of 12 blocks; SUM stands for its own checksum, which is filled in as bmaptool
// computes it (over the text with the checksum's digits all "0").
std::string signed_bmap(std::string text) {
  const std::string zeros(64, '0');
  text.replace(text.find("SUM"), 3, zeros);
  const std::string checksum = sha256_hex(text);
  text.replace(text.find(zeros), zeros.size(), checksum);
  return text;
}

std::string bmap_with(const std::string& mapped, const std::string& ranges) {
  return signed_bmap("<?xml version=\"1.0\" ?>\n<bmap version=\"2.0\">\n<ImageSize> 49152 </ImageSize>\n"
                     "<BlockSize> 4096 </BlockSize>\n<BlocksCount> 12 </BlocksCount>\n<MappedBlocksCount> " +
                     mapped + " </MappedBlocksCount>\n<ChecksumType> sha256 </ChecksumType>\n"
                     "<BmapFileChecksum> SUM </BmapFileChecksum>\n<BlockMap>\n" +
                     ranges + "</BlockMap>\n</bmap>\n");
}

TEST(ImageBmap, ItsOwnFormatReadsBack) {
  Bmap bmap;
  bmap.image_size = 12 * 4096 - 100;
  bmap.ranges = {{0, 0, kBlockA}, {3, 5, kBlockB}, {11, 11, kBlockA}};
  const Bmap read = parse_bmap(format_bmap(bmap), "own.bmap");
  EXPECT_EQ(read.image_size, bmap.image_size);
  ASSERT_EQ(read.ranges.size(), 3u);
  EXPECT_EQ(read.ranges[1].first, 3u);
  EXPECT_EQ(read.ranges[1].last, 5u);
  EXPECT_EQ(read.ranges[1].sha256, kBlockB);
  EXPECT_EQ(read.mapped_blocks(), 5u);
}

TEST(ImageBmap, SingleQuotesExtraElementsAndAttributesAreRead) {
  const std::string text = signed_bmap(
      "<?xml version='1.0' encoding='UTF-8'?>\n<bmap version='2.1' creator='other-tool'>\n"
      "  <Generator>other-tool 1.0</Generator>\n  <ImageSize>49152</ImageSize>\n  <BlockSize>4096</BlockSize>\n"
      "  <BlocksCount>12</BlocksCount>\n  <MappedBlocksCount>4</MappedBlocksCount>\n"
      "  <ChecksumType>sha256</ChecksumType>\n  <BmapFileChecksum>SUM</BmapFileChecksum>\n"
      "  <BlockMap count='2'>\n    <!-- a comment -->\n    <Range chksum='" + kBlockA + "' note='x'>1</Range>\n"
      "    <Extra/>\n    <Range note=\"y\" chksum=\"" + kBlockB + "\">\n 4-6 \n</Range>\n  </BlockMap>\n</bmap>\n");
  const Bmap bmap = parse_bmap(text, "other.bmap");
  EXPECT_EQ(bmap.image_size, 49152u);
  ASSERT_EQ(bmap.ranges.size(), 2u);
  EXPECT_EQ(bmap.ranges[0].first, 1u);
  EXPECT_EQ(bmap.ranges[0].last, 1u);
  EXPECT_EQ(bmap.ranges[0].sha256, kBlockA);
  EXPECT_EQ(bmap.ranges[1].first, 4u);
  EXPECT_EQ(bmap.ranges[1].last, 6u);
  EXPECT_EQ(bmap.ranges[1].sha256, kBlockB);
}

TEST(ImageBmap, AMappedBlocksCountThatDisagreesIsRefused) {
  EXPECT_EQ(parse_bmap(bmap_with("3", "<Range chksum=\"" + kBlockA + "\"> 2-4 </Range>\n"), "x.bmap").mapped_blocks(), 3u);
  const Error error = expect_error([] { parse_bmap(bmap_with("4", "<Range chksum=\"" + kBlockA + "\"> 2-4 </Range>\n"), "x.bmap"); },
                                   ErrorCode::Corrupt);
  EXPECT_EQ(std::string(error.what()), "x.bmap: <MappedBlocksCount> says 4 blocks, but its ranges hold 3");
}

TEST(ImageBmap, ABmapWithNoRangesIsRefused) {
  const Error error = expect_error([] { parse_bmap(bmap_with("0", ""), "empty.bmap"); }, ErrorCode::Corrupt);
  EXPECT_EQ(std::string(error.what()), "empty.bmap: the bmap lists no ranges: it would write nothing");
}

TEST(ImageBmap, BadRangesAreRefusedNamingTheFile) {
  const auto refused = [](const std::string& mapped, const std::string& ranges) {
    return std::string(expect_error([&] { parse_bmap(bmap_with(mapped, ranges), "r.bmap"); }, ErrorCode::Corrupt).what());
  };
  EXPECT_EQ(refused("1", "<Range> 2 </Range>\n"), "r.bmap: range 2 has no sha256 chksum (imprint checks every range against one)");
  EXPECT_EQ(refused("1", "<Range chksum=\"" + kBlockA + "\"> 12 </Range>\n"), "r.bmap: range 12 lies outside the image");
  EXPECT_EQ(refused("1", "<Range chksum=\"" + kBlockA + "\"> 5-3 </Range>\n"), "r.bmap: range 5-3 lies outside the image");
  EXPECT_EQ(refused("1", "<Range chksum=\"" + kBlockA + "\"> x </Range>\n"), "r.bmap: <Range> 'x' is not FIRST or FIRST-LAST");
}

TEST(ImageBmap, NotABmapIsRefusedNamingTheFile) {
  EXPECT_EQ(std::string(expect_error([] { parse_bmap("<bmap version=\"2.0\"><ImageSize>", "cut.bmap"); }, ErrorCode::Corrupt).what())
                .rfind("cut.bmap: not a bmap file (", 0),
            0u);
  EXPECT_EQ(std::string(expect_error([] { parse_bmap("<?xml version=\"1.0\"?><other/>", "o.bmap"); }, ErrorCode::Corrupt).what()),
            "o.bmap: not a bmap file (its root element is not <bmap>)");
  std::string tampered = bmap_with("1", "<Range chksum=\"" + kBlockA + "\"> 2 </Range>\n");
  tampered.replace(tampered.find("> 2 <"), 5, "> 3 <");
  EXPECT_EQ(std::string(expect_error([&] { parse_bmap(tampered, "t.bmap"); }, ErrorCode::Corrupt).what()),
            "t.bmap: the bmap's own checksum does not match its content");
}

TEST(ImageBmap, ABmapWrittenByBmaptoolCreateIsRead) {
  TempDir dir;
  const std::string image = dir / "sparse.img";
  {
    UniqueFd fd(::open(image.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::ftruncate(fd.get(), 64 * 4096), 0);
    pwrite_all(fd.get(), std::string(2 * 4096, 'a'), 4 * 4096, image);
    pwrite_all(fd.get(), std::string(4096, 'b'), 40 * 4096, image);
  }
  const CommandResult created = test::run({"bmaptool", "create", "-o", dir / "sparse.bmap", image});
  ASSERT_EQ(created.status, 0) << "bmaptool create (Debian package bmap-tools) failed: " << created.err;
  const std::string text = test::read_file(dir / "sparse.bmap");
  const Bmap bmap = parse_bmap(text, dir / "sparse.bmap");
  EXPECT_EQ(bmap.image_size, 64u * 4096);
  ASSERT_EQ(bmap.ranges.size(), 2u) << text;
  EXPECT_EQ(bmap.ranges[0].first, 4u);
  EXPECT_EQ(bmap.ranges[0].last, 5u);
  EXPECT_EQ(bmap.ranges[0].sha256, sha256_hex(std::string(2 * 4096, 'a')));
  EXPECT_EQ(bmap.ranges[1].first, 40u);
  EXPECT_EQ(bmap.ranges[1].last, 40u);
  EXPECT_EQ(bmap.ranges[1].sha256, kBlockB);
}

}  // namespace
}  // namespace imprint
