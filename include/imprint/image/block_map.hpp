// The block map of a disk image: every byte a card must hold exactly for the image's partition
// table and filesystems to read as they do in the image, computed from the image's own structures
// (never from the holes of the image file: a filesystem needs many of its zero blocks to read as
// zero on a card that held other data before).
//   - partition table areas: MBR/EBR sectors (an extended container is kept whole but for its
//     logical partitions), the GPT header and entries and their backup at the image's end;
//   - ext2/3/4 partitions: the blocks their bitmap marks in use (ext4_blocks.hpp);
//   - every other partition (vfat, swap, xfs, unknown) and any ext partition that cannot be
//     trusted: the whole partition;
//   - and everywhere (e.g. a boot loader before the first partition, stale bytes in free blocks):
//     the non-hole data of the image file, so a card that started zeroed is the image byte for byte.
// Only the hole-backed free blocks of a parsed filesystem and the holes outside partitions are left
// out: nothing reads them (--zero-unmapped clears them too).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "imprint/core/extent.hpp"

namespace imprint {

// The unit of block maps: bmaptool's block size.
constexpr std::uint64_t kMapBlockSize = 4096;

struct BlockMap {
  std::uint64_t image_size = 0;
  std::vector<Extent> extents;     // whole kMapBlockSize blocks (the last clipped to the image), merged
  std::vector<std::string> notes;  // partitions mapped whole because their filesystem could not be read
  std::uint64_t mapped_bytes() const;
};

// io_path: a path libraries can open for the image's bytes (the file, or /proc/self/fd/N of an
// unnamed temp file); name: how messages call the image.
BlockMap image_block_map(const std::string& io_path, const std::string& name);

// Byte extents rounded out to whole kMapBlockSize blocks, merged, clipped to the image's end.
std::vector<Extent> block_aligned(const std::vector<Extent>& extents, std::uint64_t image_size);

}  // namespace imprint
