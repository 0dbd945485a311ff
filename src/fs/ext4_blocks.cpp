// The in-use blocks of an ext2/3/4 filesystem from its block bitmap (see ext4_blocks.hpp).
#include "imprint/fs/ext4_blocks.hpp"

#include <ext2fs/ext2fs.h>

#include <memory>

#include "imprint/core/error.hpp"

namespace imprint {

namespace {

struct CloseFs {
  void operator()(ext2_filsys fs) const { ext2fs_close_free(&fs); }
};
using Fs = std::unique_ptr<struct struct_ext2_filsys, CloseFs>;

[[noreturn]] void distrust(const Ext4OpenOptions& options, const std::string& what, errcode_t code) {
  throw Error(options.name + ": " + what + " (" + error_message(code) + ")", ErrorCode::Corrupt);
}

// Clears, in the in-memory bitmap only, the inode-table blocks of each group that hold no inode the
// group descriptor counts as used. Only with group checksums (uninit_bg / metadata_csum): without
// them nothing says which part of a table is valid.
void drop_unused_inode_tables(ext2_filsys fs) {
  if (!ext2fs_has_group_desc_csum(fs)) return;
  const std::uint64_t inode_size = EXT2_INODE_SIZE(fs->super);
  for (dgrp_t group = 0; group < fs->group_desc_count; ++group) {
    if (!ext2fs_group_desc_csum_verify(fs, group)) continue;
    const std::uint64_t unused = ext2fs_bg_flags_test(fs, group, EXT2_BG_INODE_UNINIT)
                                     ? fs->super->s_inodes_per_group
                                     : std::min<std::uint64_t>(ext2fs_bg_itable_unused(fs, group), fs->super->s_inodes_per_group);
    const std::uint64_t used = fs->super->s_inodes_per_group - unused;
    const std::uint64_t needed = (used * inode_size + fs->blocksize - 1) / fs->blocksize;
    if (needed >= fs->inode_blocks_per_group) continue;
    ext2fs_unmark_block_bitmap_range2(fs->block_map, ext2fs_inode_table_loc(fs, group) + needed,
                                      static_cast<unsigned int>(fs->inode_blocks_per_group - needed));
  }
}

}  // namespace

std::vector<Extent> ext4_used_extents(const Ext4OpenOptions& options) {
  initialize_ext2_error_table();
  const std::string io_options = "offset=" + std::to_string(options.offset);
  ext2_filsys raw = nullptr;
  const errcode_t opened =
      ext2fs_open2(options.image_path.c_str(), io_options.c_str(), EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &raw);
  if (opened != 0) distrust(options, "cannot read the ext2/3/4 superblock", opened);
  Fs fs(raw);
  const std::uint64_t block_size = fs->blocksize;
  const std::uint64_t blocks = ext2fs_blocks_count(fs->super);
  if (options.size != 0 && blocks * block_size > options.size) {
    throw Error(options.name + ": the filesystem is larger than its partition", ErrorCode::Corrupt);
  }
  if (const errcode_t code = ext2fs_check_desc(fs.get()); code != 0) distrust(options, "its group descriptors are damaged", code);
  if (const errcode_t code = ext2fs_read_block_bitmap(fs.get()); code != 0) distrust(options, "cannot read its block bitmap", code);
  drop_unused_inode_tables(fs.get());

  // Block 0 before the first data block (1 KiB blocks: the boot sector) is in no bitmap.
  std::vector<Extent> extents{Extent{options.offset, (fs->super->s_first_data_block + 1) * block_size}};
  const blk64_t last = blocks - 1;
  for (blk64_t block = fs->super->s_first_data_block; block <= last;) {
    blk64_t start = 0, end = 0;
    if (ext2fs_find_first_set_block_bitmap2(fs->block_map, block, last, &start) != 0) break;
    if (ext2fs_find_first_zero_block_bitmap2(fs->block_map, start, last, &end) != 0) end = last + 1;
    extents.push_back(Extent{options.offset + start * block_size, (end - start) * block_size});
    block = end;
  }
  return merged(std::move(extents));
}

}  // namespace imprint
