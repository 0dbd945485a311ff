// Block maps in bmaptool's format (version 2.0, sha256): which 4096-byte blocks of an image a card
// must hold (the image's block map, block_map.hpp: zero blocks the filesystems need included, so
// `bmaptool copy` onto a card that held anything before gives the image), with a checksum per
// mapped range and one over the bmap itself.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "imprint/image/block_map.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/image/copy.hpp"

namespace imprint {

constexpr std::uint64_t kBmapBlockSize = kMapBlockSize;

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

// Feeds `length` zero bytes to a hash without reading anything (the holes of an image).
void hash_zeros(Sha256& hash, std::uint64_t length);

// Reads an open image once: the bmap of `map` (a checksum per range) and the sha256 of the whole
// image. Reads the data extents and the map; the rest are holes, hashed as the zeros they read as.
struct MappedImage {
  Bmap bmap;
  std::string image_sha256;
};
MappedImage map_image(int fd, std::uint64_t image_size, const std::vector<Extent>& data, const std::vector<Extent>& map,
                      const std::string& name);
// The sha256 of the whole image alone (what `sha256sum` prints), reading only the mapped ranges.
std::string sparse_image_sha256(int fd, std::uint64_t image_size, const std::vector<Extent>& extents, const std::string& name);
// The same for a host file by name (a block device or other non-regular file: read whole).
std::string sparse_file_sha256(const std::string& path);

// bmaptool's XML, byte for byte the layout BmapCreate writes, with BmapFileChecksum computed over
// the text with the checksum field all "0" (as bmaptool checks it).
std::string format_bmap(const Bmap& bmap);
// Reads a bmap (version 2.x, sha256) with libxml2, as any XML (quotes, attribute order, elements
// it does not know). Error(Corrupt) naming the file when the XML is not a block map, its own
// checksum does not match, a range lacks its sha256 or lies outside the image, it lists no range,
// or <MappedBlocksCount> disagrees with its ranges (bmaptool checks that too).
Bmap parse_bmap(const std::string& text, const std::string& name);

}  // namespace imprint
