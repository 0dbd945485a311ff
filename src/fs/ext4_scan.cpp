// The damage scan (see ext4_scan.hpp). Like e2fsck pass 1 and 5, but only what decides whether an
// allocation can land on something in use; it reads inode tables and block maps, never data.
#include "ext4_scan.hpp"

#include <memory>

#include "imprint/core/error.hpp"

namespace imprint::ext4 {

namespace {

std::string str(std::uint64_t value) { return std::to_string(value); }

template <class Bitmap>
void free_bitmap(Bitmap& bitmap) {
  if (bitmap != nullptr) ext2fs_free_generic_bmap(reinterpret_cast<ext2fs_generic_bitmap>(bitmap));
  bitmap = nullptr;
}

// Free inodes of a group in an inode bitmap (run by run, not bit by bit).
std::uint64_t free_inodes(ext2fs_inode_bitmap map, ext2_ino_t first, ext2_ino_t last) {
  std::uint64_t count = 0;
  ext2_ino_t at = first;
  while (at <= last) {
    ext2_ino_t zero = 0, set = 0;
    if (ext2fs_find_first_zero_inode_bitmap2(map, at, last, &zero) != 0) break;
    if (ext2fs_find_first_set_inode_bitmap2(map, zero, last, &set) != 0) set = last + 1;
    count += set - zero;
    at = set;
  }
  return count;
}

}  // namespace

Scanner::Scanner(ext2_filsys fs) : fs_(fs) {
  errcode_t code = ext2fs_allocate_block_bitmap(fs_, "metadata", &metadata_);
  if (code == 0) code = ext2fs_allocate_block_bitmap(fs_, "in use", &used_);
  if (code == 0) code = ext2fs_allocate_block_bitmap(fs_, "xattr blocks", &xattr_);
  if (code == 0) code = ext2fs_allocate_inode_bitmap(fs_, "inodes in use", &inodes_);
  if (code != 0) {
    free_bitmap(metadata_);
    free_bitmap(used_);
    free_bitmap(xattr_);
    throw Error(std::string("cannot allocate the scan's bitmaps: ") + error_message(code));
  }
}

Scanner::~Scanner() {
  free_bitmap(metadata_);
  free_bitmap(used_);
  free_bitmap(xattr_);
  free_bitmap(inodes_);
}

void Scanner::note(const std::string& problem) {
  if (problem_.empty()) problem_ = problem;
}

void Scanner::incomplete(const std::string& problem) {
  note(problem);
  complete_ = false;
}

std::string Scanner::check_layout() {
  ext2_super_block* super = fs_->super;
  if ((super->s_state & EXT2_ERROR_FS) != 0) note("the superblock says the filesystem has errors");
  if ((super->s_state & EXT2_VALID_FS) == 0) note("the superblock says the filesystem was not cleanly unmounted");
  // Orphans hold blocks while having no links: the scan would not see them.
  if (super->s_last_orphan != 0 || ext2fs_has_feature_orphan_present(super)) {
    incomplete("the orphan list is not empty (inode " + str(super->s_last_orphan) + ")");
  }
  for (dgrp_t group = 0; group < fs_->group_desc_count; ++group) {
    if (ext2fs_has_group_desc_csum(fs_) && ext2fs_group_desc_csum_verify(fs_, group) == 0) {
      incomplete("group " + str(group) + "'s descriptor checksum is wrong");
      break;
    }
    // Without uninit_bg/metadata_csum these fields mean nothing to the kernel or e2fsck, but the
    // inodes they call unused are handed out as if they were initialized (e2fsck: "marked
    // uninitialized without feature set").
    if (!ext2fs_has_group_desc_csum(fs_) &&
        (ext2fs_bg_itable_unused(fs_, group) != 0 ||
         ext2fs_bg_flags_test(fs_, group, EXT2_BG_INODE_UNINIT | EXT2_BG_BLOCK_UNINIT) != 0)) {
      note("group " + str(group) + " is marked uninitialized (bg_itable_unused " + str(ext2fs_bg_itable_unused(fs_, group)) +
           ") on a filesystem without uninit_bg or metadata_csum");
    }
  }
  build_metadata();
  if (complete_ && ext2fs_has_feature_journal(super) && super->s_journal_inum != 0) {
    ext2_inode_large journal{};
    const errcode_t code = ext2fs_read_inode_full(fs_, super->s_journal_inum, reinterpret_cast<ext2_inode*>(&journal),
                                                  sizeof journal);
    if (code != 0) {
      incomplete("cannot read the journal inode: " + std::string(error_message(code)));
    } else {
      walk(super->s_journal_inum, journal);
    }
  }
  return problem_;
}

// Records [start, start+count) of a group's metadata; false (and a problem) when it lies outside
// [first, last] or overlaps metadata already placed. Misplaced metadata makes the whole scan
// incomplete: the library would read and write those bitmaps there.
bool Scanner::place(dgrp_t group, const char* what, blk64_t start, blk64_t count, blk64_t first, blk64_t last) {
  const std::string where = "group " + str(group) + "'s " + what + " (block " + str(start) + ")";
  if (start < first || start > last || count > last - start + 1) {
    incomplete(where + " lies outside " + (ext2fs_has_feature_flex_bg(fs_->super) ? "the filesystem" : "its group"));
    return false;
  }
  if (!ext2fs_test_block_bitmap_range2(metadata_, start, static_cast<unsigned>(count))) {
    incomplete(where + " overlaps other metadata (superblock, descriptors, bitmaps or inode tables)");
    return false;
  }
  ext2fs_mark_block_bitmap_range2(metadata_, start, static_cast<unsigned>(count));
  return true;
}

// ext2fs_check_desc, naming the group and the structure.
void Scanner::build_metadata() {
  for (dgrp_t group = 0; group < fs_->group_desc_count; ++group) ext2fs_reserve_super_and_bgd(fs_, group, metadata_);
  blk64_t first = fs_->super->s_first_data_block;
  blk64_t last = ext2fs_blocks_count(fs_->super) - 1;
  for (dgrp_t group = 0; group < fs_->group_desc_count; ++group) {
    if (!ext2fs_has_feature_flex_bg(fs_->super)) {
      first = ext2fs_group_first_block2(fs_, group);
      last = ext2fs_group_last_block2(fs_, group);
    }
    if (!place(group, "block bitmap", ext2fs_block_bitmap_loc(fs_, group), 1, first, last) ||
        !place(group, "inode bitmap", ext2fs_inode_bitmap_loc(fs_, group), 1, first, last) ||
        !place(group, "inode table", ext2fs_inode_table_loc(fs_, group), fs_->inode_blocks_per_group, first, last)) {
      return;
    }
  }
  // used_ starts as the metadata; claim() adds the inodes' blocks.
  for (blk64_t block = fs_->super->s_first_data_block; block < ext2fs_blocks_count(fs_->super);) {
    blk64_t start = 0, end = 0;
    if (ext2fs_find_first_set_block_bitmap2(metadata_, block, ext2fs_blocks_count(fs_->super) - 1, &start) != 0) break;
    if (ext2fs_find_first_zero_block_bitmap2(metadata_, start, ext2fs_blocks_count(fs_->super) - 1, &end) != 0) {
      end = ext2fs_blocks_count(fs_->super);
    }
    ext2fs_mark_block_bitmap_range2(used_, start, static_cast<unsigned>(end - start));
    block = end;
  }
}

// Every block in use so far (metadata, the journal) must be marked in the on-disk block bitmap.
void Scanner::check_metadata_marked() {
  const blk64_t end_block = ext2fs_blocks_count(fs_->super) - 1;
  for (blk64_t block = fs_->super->s_first_data_block; block <= end_block;) {
    blk64_t start = 0, end = 0, unmarked = 0;
    if (ext2fs_find_first_set_block_bitmap2(used_, block, end_block, &start) != 0) break;
    if (ext2fs_find_first_zero_block_bitmap2(used_, start, end_block, &end) != 0) end = end_block + 1;
    if (ext2fs_find_first_zero_block_bitmap2(fs_->block_map, start, end - 1, &unmarked) == 0) {
      note("block " + str(unmarked) + " (filesystem metadata or the journal) is marked free in the block bitmap");
      return;
    }
    block = end;
  }
}

// One run of blocks an in-use inode refers to.
void Scanner::claim(ext2_ino_t ino, blk64_t start, blk64_t count) {
  const blk64_t total = ext2fs_blocks_count(fs_->super);
  if (count == 0) return;
  if (start < fs_->super->s_first_data_block || start >= total || count > total - start) {
    note("inode " + str(ino) + " refers to block " + str(start) + ", outside the filesystem");
    return;  // nothing there to protect: the allocator never hands out such a block
  }
  const auto length = static_cast<unsigned>(count);
  if (!ext2fs_test_block_bitmap_range2(metadata_, start, length)) {
    blk64_t at = start;
    ext2fs_find_first_set_block_bitmap2(metadata_, start, start + count - 1, &at);
    note("inode " + str(ino) + " refers to block " + str(at) + ", which is filesystem metadata");
  } else if (!ext2fs_test_block_bitmap_range2(used_, start, length)) {
    blk64_t at = start;
    ext2fs_find_first_set_block_bitmap2(used_, start, start + count - 1, &at);
    note("block " + str(at) + " is claimed twice (inode " + str(ino) + " and another inode)");
  }
  blk64_t unmarked = 0;
  if (against_bitmap_ && ext2fs_find_first_zero_block_bitmap2(fs_->block_map, start, start + count - 1, &unmarked) == 0) {
    note("inode " + str(ino) + " uses block " + str(unmarked) + ", which the block bitmap marks free");
  }
  ext2fs_mark_block_bitmap_range2(used_, start, length);
}

void Scanner::claim_xattr_block(ext2_ino_t ino, blk64_t block) {
  if (block == 0) return;
  // One extended-attribute block may be shared by many inodes (it keeps a reference count).
  if (block < ext2fs_blocks_count(fs_->super) && ext2fs_test_block_bitmap2(xattr_, block)) return;
  claim(ino, block, 1);
  if (block < ext2fs_blocks_count(fs_->super)) ext2fs_mark_block_bitmap2(xattr_, block);
}

void Scanner::walk_extents(ext2_ino_t ino, ext2_inode_large& inode) {
  ext2_extent_handle_t handle = nullptr;
  errcode_t code = ext2fs_extent_open2(fs_, ino, reinterpret_cast<ext2_inode*>(&inode), &handle);
  if (code != 0) {
    incomplete("inode " + str(ino) + "'s extent tree is damaged (" + error_message(code) + ")");
    return;
  }
  std::unique_ptr<std::remove_pointer_t<ext2_extent_handle_t>, void (*)(ext2_extent_handle_t)> closer(
      handle, ext2fs_extent_free);
  ext2fs_extent extent{};
  code = ext2fs_extent_get(handle, EXT2_EXTENT_ROOT, &extent);
  while (code == 0) {
    if ((extent.e_flags & EXT2_EXTENT_FLAGS_LEAF) != 0) {
      claim(ino, extent.e_pblk, extent.e_len);
    } else if ((extent.e_flags & EXT2_EXTENT_FLAGS_SECOND_VISIT) == 0) {
      claim(ino, extent.e_pblk, 1);  // an index entry: the tree block below it
    }
    code = ext2fs_extent_get(handle, EXT2_EXTENT_NEXT, &extent);
  }
  if (code != EXT2_ET_EXTENT_NO_NEXT) {
    incomplete("inode " + str(ino) + "'s extent tree is damaged (" + error_message(code) + ")");
  }
}

void Scanner::walk_block_map(ext2_ino_t ino) {
  auto visit = [](ext2_filsys, blk64_t* block, e2_blkcnt_t, blk64_t, int, void* data) -> int {
    auto& [scanner, owner] = *static_cast<std::pair<Scanner*, ext2_ino_t>*>(data);
    if (*block >= ext2fs_blocks_count(scanner->fs_->super) || *block < scanner->fs_->super->s_first_data_block) {
      scanner->note("inode " + str(owner) + " refers to block " + str(*block) + ", outside the filesystem");
      return BLOCK_ABORT;  // an indirect block out there cannot be read
    }
    scanner->claim(owner, *block, 1);
    return 0;
  };
  std::pair<Scanner*, ext2_ino_t> data{this, ino};
  const errcode_t code = ext2fs_block_iterate3(fs_, ino, BLOCK_FLAG_READ_ONLY, nullptr, visit, &data);
  if (code != 0) incomplete("inode " + str(ino) + "'s block map is damaged (" + error_message(code) + ")");
}

// The blocks of one in-use inode.
void Scanner::walk(ext2_ino_t ino, ext2_inode_large& inode) {
  auto* small = reinterpret_cast<ext2_inode*>(&inode);
  claim_xattr_block(ino, ext2fs_file_acl_block(fs_, small));
  if (ino == EXT2_RESIZE_INO) {
    // Its block map lists the reserved GDT blocks, already metadata; only its own index block is new.
    if (inode.i_block[EXT2_DIND_BLOCK] != 0) claim(ino, inode.i_block[EXT2_DIND_BLOCK], 1);
    return;
  }
  if (!ext2fs_inode_has_valid_blocks2(fs_, small)) return;  // inline data, fast symlinks, devices
  if ((inode.i_flags & EXT4_EXTENTS_FL) != 0) {
    walk_extents(ino, inode);
  } else {
    walk_block_map(ino);
  }
}

void Scanner::check_inode_in_use(ext2_ino_t ino) {
  ext2fs_mark_inode_bitmap2(inodes_, ino);
  if (!ext2fs_test_inode_bitmap2(fs_->inode_map, ino)) {
    note("inode " + str(ino) + " is in use but marked free in the inode bitmap");
  }
}

void Scanner::scan_inodes() {
  ext2_inode_scan scan = nullptr;
  errcode_t code = ext2fs_open_inode_scan(fs_, 0, &scan);
  if (code != 0) {
    incomplete(std::string("cannot scan the inode tables: ") + error_message(code));
    return;
  }
  std::unique_ptr<std::remove_pointer_t<ext2_inode_scan>, void (*)(ext2_inode_scan)> closer(scan,
                                                                                              ext2fs_close_inode_scan);
  const ext2_ino_t journal = ext2fs_has_feature_journal(fs_->super) ? fs_->super->s_journal_inum : 0;
  const ext2_ino_t first_regular = EXT2_FIRST_INODE(fs_->super);
  ext2_inode_large inode{};
  ext2_ino_t ino = 0;
  while (true) {
    code = ext2fs_get_next_inode_full(scan, &ino, reinterpret_cast<ext2_inode*>(&inode), sizeof inode);
    if (code == 0 && ino == 0) break;
    if (code != 0 && code != EXT2_ET_INODE_CSUM_INVALID && code != EXT2_ET_INODE_IS_GARBAGE) {
      incomplete(std::string("cannot scan the inode tables: ") + error_message(code));
      return;
    }
    // Reserved inodes are always in use (mkfs marks them so); the others while they have links.
    if (ino >= first_regular && inode.i_links_count == 0) continue;
    if (code != 0) {
      incomplete("inode " + str(ino) + " is damaged (" + error_message(code) + ")");
      continue;
    }
    check_inode_in_use(ino);
    if (ino != journal) walk(ino, inode);  // the journal was walked by check_layout
  }
}

// The group descriptors' free counts must match the bitmaps (libext2fs decrements them blindly:
// a count of 0 wraps around).
void Scanner::check_group_counts() {
  const std::uint32_t per_group = fs_->super->s_inodes_per_group;
  for (dgrp_t group = 0; group < fs_->group_desc_count; ++group) {
    blk64_t used = 0;
    const blk64_t first = ext2fs_group_first_block2(fs_, group), last = ext2fs_group_last_block2(fs_, group);
    if (ext2fs_count_used_clusters(fs_, first, last, &used) != 0) continue;
    const blk64_t clusters = EXT2FS_NUM_B2C(fs_, last - first + 1);
    const blk64_t free_blocks = clusters - used;
    if (ext2fs_bg_free_blocks_count(fs_, group) != free_blocks) {
      note("group " + str(group) + "'s free blocks count (" + str(ext2fs_bg_free_blocks_count(fs_, group)) +
           ") disagrees with its block bitmap (" + str(free_blocks) + " free)");
      return;
    }
    const std::uint64_t free_count = free_inodes(fs_->inode_map, group * per_group + 1, (group + 1) * per_group);
    if (ext2fs_bg_free_inodes_count(fs_, group) != free_count) {
      note("group " + str(group) + "'s free inodes count (" + str(ext2fs_bg_free_inodes_count(fs_, group)) +
           ") disagrees with its inode bitmap (" + str(free_count) + " free)");
      return;
    }
  }
}

std::string Scanner::scan() {
  if (!complete_) return problem_;  // misplaced bitmaps: what was read from there means nothing
  against_bitmap_ = true;
  check_metadata_marked();
  scan_inodes();
  check_group_counts();  // last: a stale bitmap shows here too, but the inodes name it better
  return problem_;
}

void Scanner::protect() {
  const blk64_t end_block = ext2fs_blocks_count(fs_->super) - 1;
  for (blk64_t block = fs_->super->s_first_data_block; block <= end_block;) {
    blk64_t start = 0, end = 0;
    if (ext2fs_find_first_set_block_bitmap2(used_, block, end_block, &start) != 0) break;
    if (ext2fs_find_first_zero_block_bitmap2(used_, start, end_block, &end) != 0) end = end_block + 1;
    ext2fs_mark_block_bitmap_range2(fs_->block_map, start, static_cast<unsigned>(end - start));
    block = end;
  }
  const ext2_ino_t inode_count = fs_->super->s_inodes_count;
  for (ext2_ino_t ino = 1; ino <= inode_count;) {
    ext2_ino_t found = 0;
    if (ext2fs_find_first_set_inode_bitmap2(inodes_, ino, inode_count, &found) != 0) break;
    ext2fs_mark_inode_bitmap2(fs_->inode_map, found);
    ino = found + 1;
  }
  // Recount from the bitmaps the allocator now uses; groups with marks must be written out.
  const std::uint32_t per_group = fs_->super->s_inodes_per_group;
  blk64_t free_total = 0;
  std::uint64_t free_inode_total = 0;
  for (dgrp_t group = 0; group < fs_->group_desc_count; ++group) {
    blk64_t used = 0;
    const blk64_t first = ext2fs_group_first_block2(fs_, group), last = ext2fs_group_last_block2(fs_, group);
    ext2fs_count_used_clusters(fs_, first, last, &used);
    const blk64_t free_blocks = EXT2FS_NUM_B2C(fs_, last - first + 1) - used;
    const std::uint64_t free_count = free_inodes(fs_->inode_map, group * per_group + 1, (group + 1) * per_group);
    ext2fs_bg_free_blocks_count_set(fs_, group, static_cast<std::uint32_t>(free_blocks));
    ext2fs_bg_free_inodes_count_set(fs_, group, static_cast<std::uint32_t>(free_count));
    ext2fs_bg_flags_clear(fs_, group, EXT2_BG_BLOCK_UNINIT);
    if (free_count != per_group) ext2fs_bg_flags_clear(fs_, group, EXT2_BG_INODE_UNINIT);
    if (!ext2fs_has_group_desc_csum(fs_)) {  // as e2fsck would: the flags mean nothing here
      ext2fs_bg_itable_unused_set(fs_, group, 0);
      ext2fs_bg_flags_clear(fs_, group, EXT2_BG_INODE_UNINIT);
    }
    ext2fs_group_desc_csum_set(fs_, group);
    free_total += free_blocks;
    free_inode_total += free_count;
  }
  ext2fs_free_blocks_count_set(fs_->super, EXT2FS_C2B(fs_, free_total));
  fs_->super->s_free_inodes_count = static_cast<std::uint32_t>(free_inode_total);
  ext2fs_mark_super_dirty(fs_);
  ext2fs_mark_bb_dirty(fs_);
  ext2fs_mark_ib_dirty(fs_);
}

}  // namespace imprint::ext4
