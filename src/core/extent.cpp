// Extent arithmetic on merged, sorted lists: a linear sweep, no per-block sets.
#include "imprint/core/extent.hpp"

#include <algorithm>

namespace imprint {

std::vector<Extent> merged(std::vector<Extent> extents) {
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) { return a.offset < b.offset; });
  std::vector<Extent> result;
  for (const Extent& extent : extents) {
    if (extent.length == 0) continue;
    if (!result.empty() && result.back().end() >= extent.offset) {
      result.back().length = std::max(result.back().end(), extent.end()) - result.back().offset;
    } else {
      result.push_back(extent);
    }
  }
  return result;
}

std::vector<Extent> subtract(const std::vector<Extent>& extents, const std::vector<Extent>& removed) {
  const std::vector<Extent> keep = merged(extents);
  const std::vector<Extent> cut = merged(removed);
  std::vector<Extent> result;
  std::size_t next_cut = 0;
  for (const Extent& extent : keep) {
    std::uint64_t position = extent.offset;
    while (next_cut < cut.size() && cut[next_cut].end() <= position) ++next_cut;
    for (std::size_t i = next_cut; i < cut.size() && cut[i].offset < extent.end(); ++i) {
      if (cut[i].offset > position) result.push_back(Extent{position, cut[i].offset - position});
      position = std::max(position, cut[i].end());
    }
    if (position < extent.end()) result.push_back(Extent{position, extent.end() - position});
  }
  return result;
}

std::vector<Extent> intersect(const std::vector<Extent>& extents, const std::vector<Extent>& within) {
  const std::vector<Extent> a = merged(extents);
  const std::vector<Extent> b = merged(within);
  std::vector<Extent> result;
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const std::uint64_t begin = std::max(a[i].offset, b[j].offset);
    const std::uint64_t end = std::min(a[i].end(), b[j].end());
    if (begin < end) result.push_back(Extent{begin, end - begin});
    if (a[i].end() < b[j].end()) ++i; else ++j;
  }
  return result;
}

}  // namespace imprint
