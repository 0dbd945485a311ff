// Block maps in bmaptool's format (version 2.0, sha256): which 4096-byte blocks of an image hold
// data, with a checksum per mapped range and one over the bmap itself. Built from the extents the
// copy already knows (reading only the mapped ranges, for their checksums), never by a rescan.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "imprint/copy.hpp"

namespace imprint {

constexpr std::uint64_t kBmapBlockSize = 4096;

struct BmapRange {
  std::uint64_t first = 0;  // first block
  std::uint64_t last = 0;   // last block (inclusive)
  std::string sha256;       // of the range's bytes (clipped at the end of the image)
};

struct Bmap {
  std::uint64_t image_size = 0;
  std::vector<BmapRange> ranges;
  std::uint64_t blocks_count() const { return (image_size + kBmapBlockSize - 1) / kBmapBlockSize; }
  std::uint64_t mapped_blocks() const;
  // The byte extents the ranges cover, clipped to the image size.
  std::vector<Extent> extents() const;
};

// Byte extents rounded out to whole blocks, merged, clipped to the image's block count.
std::vector<Extent> block_aligned(const std::vector<Extent>& extents, std::uint64_t image_size);

// Reads the mapped ranges of an open image once: the bmap (range checksums) and the sha256 of the
// whole image (holes hashed as the zeros they read as, without reading them).
struct MappedImage {
  Bmap bmap;
  std::string image_sha256;
};
MappedImage map_image(int fd, std::uint64_t image_size, const std::vector<Extent>& extents, const std::string& name);
// The sha256 of the whole image alone (what `sha256sum` prints), reading only the mapped ranges.
std::string sparse_image_sha256(int fd, std::uint64_t image_size, const std::vector<Extent>& extents, const std::string& name);

// bmaptool's XML, byte for byte the layout BmapCreate writes, with BmapFileChecksum computed over
// the text with the checksum field all "0" (as bmaptool checks it).
std::string format_bmap(const Bmap& bmap);
// Reads a bmap (version 2.x, sha256): Error(Corrupt) naming the file when its own checksum does
// not match or the XML is not a block map.
Bmap parse_bmap(const std::string& text, const std::string& name);

}  // namespace imprint
