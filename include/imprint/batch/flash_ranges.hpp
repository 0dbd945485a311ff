// What flash writes, as ranges of the image: the arithmetic of flash.hpp apart from its I/O, so
// it is tested on its own (tests/batch_flash_test.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "imprint/core/extent.hpp"

namespace imprint {

// A piece of what flash writes: bytes of the image, or a run the image holds as a hole, made to
// read as zeros on the target.
struct FlashPiece {
  Extent range;
  bool zeros = false;
};

// The map's ranges split at the image's holes (data: the image's data extents), in offset order.
std::vector<FlashPiece> flash_pieces(const std::vector<Extent>& ranges, const std::vector<Extent>& data);

// The unmapped gaps of [0, size) between the ranges: what zero_unmapped zeroes as well.
std::vector<Extent> unmapped_gaps(const std::vector<Extent>& ranges, std::uint64_t size);

// A bmap is trusted for its checksums, never for what it leaves out (a bmap made from the file's
// holes misses zero blocks the filesystems need): the ranges written are the image's own block map
// and the bmap's ranges together, block aligned; missing is what of the map the bmap leaves out.
struct BmapRanges {
  std::vector<Extent> ranges;
  std::vector<Extent> missing;
};
BmapRanges ranges_with_bmap(const std::vector<Extent>& map, const std::vector<Extent>& listed, std::uint64_t size);

}  // namespace imprint
