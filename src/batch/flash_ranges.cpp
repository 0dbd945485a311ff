// The range arithmetic of flash: pieces to copy or zero, unmapped gaps, a bmap joined to the map.
#include "imprint/batch/flash_ranges.hpp"

#include <algorithm>

#include "imprint/image/block_map.hpp"

namespace imprint {

std::vector<FlashPiece> flash_pieces(const std::vector<Extent>& ranges, const std::vector<Extent>& data) {
  std::vector<FlashPiece> result;
  const std::vector<Extent> with_data = intersect(ranges, data);
  const std::vector<Extent> holes = subtract(ranges, data);
  for (const Extent& extent : with_data) result.push_back(FlashPiece{extent, false});
  for (const Extent& extent : holes) result.push_back(FlashPiece{extent, true});
  std::sort(result.begin(), result.end(), [](const FlashPiece& a, const FlashPiece& b) { return a.range.offset < b.range.offset; });
  return result;
}

std::vector<Extent> unmapped_gaps(const std::vector<Extent>& ranges, std::uint64_t size) {
  return subtract({Extent{0, size}}, ranges);
}

BmapRanges ranges_with_bmap(const std::vector<Extent>& map, const std::vector<Extent>& listed, std::uint64_t size) {
  BmapRanges result;
  result.missing = subtract(map, listed);
  std::vector<Extent> all = map;
  all.insert(all.end(), listed.begin(), listed.end());
  result.ranges = block_aligned(merged(std::move(all)), size);
  return result;
}

}  // namespace imprint
