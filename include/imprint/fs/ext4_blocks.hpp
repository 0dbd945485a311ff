// Which bytes of an ext2/3/4 filesystem hold something a reader needs: the blocks its own
// allocation bitmap marks in use (superblocks, group descriptors, reserved GDT blocks, bitmaps,
// inode tables, journal, directories, file data: zero-filled ones too), read with libext2fs.
#pragma once

#include <vector>

#include "imprint/fs/ext4.hpp"
#include "imprint/core/extent.hpp"

namespace imprint {

// Byte extents relative to the start of the image (options.offset added), merged. Inode table blocks
// past what a group's descriptor says is in use (bg_itable_unused, trusted only where the group's
// checksum holds) are left out: e2fsck and the kernel never read them before initialising them.
// Throws Error (Corrupt) naming options.name when the filesystem or its descriptors cannot be
// trusted (bad superblock, ext2fs_check_desc fails, unreadable bitmap): the caller then keeps the
// whole partition.
std::vector<Extent> ext4_used_extents(const Ext4OpenOptions& options);

}  // namespace imprint
