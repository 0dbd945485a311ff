// The damage scan of an ext2/3/4 filesystem opened for writing. libext2fs allocates whatever the
// on-disk bitmaps call free and trusts the group descriptors, so a damaged filesystem is written
// over its own metadata or another file's blocks. Two stages:
//   check_layout() on open (cheap): state flags, the orphan list, group descriptor checksums, every
//     bitmap and inode table inside the filesystem and clear of each other and of the superblocks,
//     descriptors and reserved GDT blocks, the journal's blocks likewise;
//   scan() before the first write (e2fsck pass 1 in miniature): every in-use inode's blocks
//     (extent-tree and indirect blocks included) against the metadata, each other and the block
//     bitmap; in-use inodes against the inode bitmap; group free counts against the bitmaps.
// Both record the first problem and keep going, so protect() can fence off everything really used.
#pragma once

#include <ext2fs/ext2fs.h>

#include <string>

namespace imprint::ext4 {

class Scanner {
 public:
  explicit Scanner(ext2_filsys fs);
  ~Scanner();
  Scanner(const Scanner&) = delete;
  Scanner& operator=(const Scanner&) = delete;

  // Before the bitmaps are read. Returns the first problem ("" when none).
  std::string check_layout();
  // After ext2fs_read_bitmaps. Returns the first problem found so far ("" when none).
  std::string scan();
  // False when the scan could not account for every block in use (unreadable inodes or block
  // maps, misplaced metadata, an orphan list): then no allocation is provably safe.
  bool complete() const noexcept { return complete_; }
  // Marks every block and inode the scan found in use in the allocation bitmaps, and recounts the
  // group and superblock free counts from them, so the allocator hands out only really free ones.
  void protect();

 private:
  void note(const std::string& problem);
  void incomplete(const std::string& problem);
  void build_metadata();
  bool place(dgrp_t group, const char* what, blk64_t start, blk64_t count, blk64_t first, blk64_t last);
  void check_metadata_marked();
  void claim(ext2_ino_t ino, blk64_t start, blk64_t count);
  void walk(ext2_ino_t ino, ext2_inode_large& inode);
  void walk_extents(ext2_ino_t ino, ext2_inode_large& inode);
  void walk_block_map(ext2_ino_t ino);
  void claim_xattr_block(ext2_ino_t ino, blk64_t block);
  void scan_inodes();
  void check_inode_in_use(ext2_ino_t ino);
  void check_group_counts();

  ext2_filsys fs_;
  ext2fs_block_bitmap metadata_ = nullptr;  // superblocks, descriptors, reserved GDT, bitmaps, inode tables
  ext2fs_block_bitmap used_ = nullptr;      // metadata + every block an in-use inode refers to
  ext2fs_block_bitmap xattr_ = nullptr;     // shared extended-attribute blocks (several inodes may use one)
  ext2fs_inode_bitmap inodes_ = nullptr;    // in-use inodes
  bool against_bitmap_ = false;             // claims are compared with the on-disk block bitmap
  bool complete_ = true;
  std::string problem_;
};

}  // namespace imprint::ext4
