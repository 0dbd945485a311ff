// Byte ranges of an image or file: what a copy reads, a bmap maps, a card must hold.
#pragma once

#include <cstdint>
#include <vector>

namespace imprint {

struct Extent {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::uint64_t end() const { return offset + length; }
  bool operator==(const Extent&) const = default;
};

// Sorted by offset, overlapping and touching extents merged, empty ones dropped.
std::vector<Extent> merged(std::vector<Extent> extents);

// What of `extents` lies outside `removed` (both need not be sorted); the result is merged.
std::vector<Extent> subtract(const std::vector<Extent>& extents, const std::vector<Extent>& removed);

// What of `extents` lies inside `within`; the result is merged.
std::vector<Extent> intersect(const std::vector<Extent>& extents, const std::vector<Extent>& within);

}  // namespace imprint
