// The range logic of flash (batch/flash_ranges.hpp): which pieces are copied and which made zero,
// the gaps zero_unmapped covers, and a bmap joined to the image's own block map.
#include <gtest/gtest.h>

#include "imprint/batch/flash_ranges.hpp"

namespace imprint {
namespace {

constexpr std::uint64_t kBlock = 4096;

Extent blocks(std::uint64_t first, std::uint64_t count) { return Extent{first * kBlock, count * kBlock}; }

TEST(BatchFlash, TheMapIsSplitIntoDataToCopyAndHolesToZeroInOrder) {
  // The map: blocks 0-9 and 20-24. The image's data: blocks 2-4, 8-21 (the rest are holes).
  const std::vector<FlashPiece> pieces = flash_pieces({blocks(0, 10), blocks(20, 5)}, {blocks(2, 3), blocks(8, 14)});
  const std::vector<std::pair<Extent, bool>> expected{{blocks(0, 2), true},  {blocks(2, 3), false}, {blocks(5, 3), true},
                                                      {blocks(8, 2), false}, {blocks(20, 2), false}, {blocks(22, 3), true}};
  ASSERT_EQ(pieces.size(), expected.size());
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    EXPECT_EQ(pieces[i].range.offset, expected[i].first.offset) << i;
    EXPECT_EQ(pieces[i].range.length, expected[i].first.length) << i;
    EXPECT_EQ(pieces[i].zeros, expected[i].second) << i;
  }
  // Data outside the map is never written; an image without data is all zeros to make.
  EXPECT_TRUE(flash_pieces({}, {blocks(0, 100)}).empty());
  const std::vector<FlashPiece> all_holes = flash_pieces({blocks(0, 3)}, {});
  ASSERT_EQ(all_holes.size(), 1u);
  EXPECT_TRUE(all_holes[0].zeros);
}

TEST(BatchFlash, PiecesCoverTheMapExactlyWhateverTheData) {
  const std::vector<Extent> map{Extent{0, 1000}, Extent{5000, 3}, Extent{9000, 4096}};
  const std::vector<Extent> data{Extent{10, 5}, Extent{900, 4200}, Extent{5001, 1}, Extent{12000, 99999}};
  std::vector<Extent> covered;
  std::uint64_t end = 0;
  for (const FlashPiece& piece : flash_pieces(map, data)) {
    EXPECT_GE(piece.range.offset, end) << "pieces overlap or go backwards";
    end = piece.range.end();
    EXPECT_EQ(intersect({piece.range}, data).empty(), piece.zeros);  // zeros exactly where the image has a hole
    covered.push_back(piece.range);
  }
  EXPECT_EQ(merged(covered), merged(map));
}

TEST(BatchFlash, GapsAreWhatTheMapLeavesOfTheImage) {
  const std::vector<Extent> gaps = unmapped_gaps({blocks(1, 2), blocks(5, 1)}, 8 * kBlock);
  EXPECT_EQ(gaps, (std::vector<Extent>{blocks(0, 1), blocks(3, 2), blocks(6, 2)}));
  EXPECT_EQ(unmapped_gaps({blocks(0, 8)}, 8 * kBlock), std::vector<Extent>{});
  EXPECT_EQ(unmapped_gaps({}, 100), (std::vector<Extent>{Extent{0, 100}}));
}

TEST(BatchFlash, ABmapAddsToTheMapButNeverTakesAway) {
  const std::uint64_t size = 10 * kBlock + 100;  // a last partial block
  // The image's map: blocks 0-1 and 6-7; the bmap lists 1-3 and the partial last block only.
  const BmapRanges joined = ranges_with_bmap({blocks(0, 2), blocks(6, 2)}, {blocks(1, 3), Extent{10 * kBlock, 100}}, size);
  EXPECT_EQ(joined.ranges, (std::vector<Extent>{blocks(0, 4), blocks(6, 2), Extent{10 * kBlock, 100}}));
  EXPECT_EQ(joined.missing, (std::vector<Extent>{blocks(0, 1), blocks(6, 2)}));  // the bmap left these out
  // Unaligned ranges are widened to whole blocks (never past the end of the image).
  const BmapRanges unaligned = ranges_with_bmap({Extent{100, 10}}, {Extent{kBlock + 1, 1}}, 3 * kBlock);
  EXPECT_EQ(unaligned.ranges, (std::vector<Extent>{blocks(0, 2)}));
  // A bmap listing everything the map has: nothing missing.
  EXPECT_TRUE(ranges_with_bmap({blocks(2, 2)}, {blocks(0, 8)}, 8 * kBlock).missing.empty());
}

}  // namespace
}  // namespace imprint
