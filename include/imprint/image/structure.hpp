// The structure of an image's filesystems, checked by the filesystems' own checkers read-only:
// `e2fsck -fn` for ext2/3/4 (on the partition in place, "IMAGE?offset=N"), `fsck.fat -n` for vfat
// (on an in-memory copy of the partition: no host temp file). What `verify --structure` adds to the
// plan's files: a card whose data partition is damaged fails here even when every file reads back.
#pragma once

#include <string>
#include <vector>

#include "imprint/image/image.hpp"

namespace imprint {

struct StructureReport {
  std::vector<std::string> problems;  // "data (p4): e2fsck -fn: Inode 7 has illegal block(s)..."
  std::vector<std::string> checked;   // "data (p4): ext4 clean"
  std::vector<std::string> skipped;   // "swap (p6): swap has no checker"
};

StructureReport check_structure(DiskImage& image);

}  // namespace imprint
