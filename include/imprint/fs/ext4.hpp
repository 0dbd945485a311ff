// The native backend: ext2/3/4 on libext2fs, opened in place at the partition's byte offset inside
// the image file (io option "?offset="), never copied out.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <string>

#include "imprint/fs/filesystem.hpp"

namespace imprint {

struct Ext4OpenOptions {
  std::string image_path;        // a host path libext2fs can open (may be /proc/self/fd/N)
  std::uint64_t offset = 0;      // partition start in bytes
  std::uint64_t size = 0;        // partition size in bytes (0: to end of file); bounds checks
  bool writable = false;
  std::string name;              // for messages, e.g. "data partition (p4)"
  // Write into a damaged filesystem where the scan proves it safe (see open_ext4).
  bool allow_dirty = false;
  // Copies of one golden share its scan (a batch's base and device images): when set, a clean
  // scan is remembered under this key for the rest of the process, and a filesystem opened later
  // with the same key is not scanned again. The caller vouches that one key means the same
  // filesystem bytes, or those bytes plus what imprint wrote after the scan.
  std::string scan_key = {};
  // Writable with commit_to set: image_path is opened read-only and is never written; flush() hands
  // the changed bytes (offset in the image file) to commit_to instead (an ImageOverlay; nothing,
  // for a dry run). It may throw.
  std::function<void(std::uint64_t offset, std::string_view bytes)> commit_to = {};
  // With commit_to: where the filesystem's bytes are read from instead of image_path (offset in the
  // image file), e.g. the golden plus a batch's shared overlay. It may throw (the read fails).
  std::function<void(std::uint64_t offset, std::size_t size, char* out)> read_from = {};
};

// Refuses (Error with a clear message naming `name`): a bad superblock, a filesystem that needs
// journal recovery, read-only-compat or incompat features libext2fs cannot write (when writable),
// a filesystem extending past the end of the image or of its partition.
//
// Writable: the group descriptors and state flags are checked on open, and before the first change
// a scan compares the allocation bitmaps with what the inodes really use. A damaged filesystem is
// Error(Corrupt) naming the first problem; with allow_dirty it is written anyway when the scan saw
// every block in use, and the allocator then hands out only blocks and inodes nothing uses.
// Changes stay in memory until flush(): a failed or unflushed filesystem leaves the image as it was.
std::unique_ptr<Filesystem> open_ext4(const Ext4OpenOptions& options);

// The scans of this process so far: run (with their total time) and reused through a scan_key.
// IMPRINT_TIMING=1 makes the CLI print them; bench/ and the tests read them.
struct Ext4ScanStats {
  unsigned run = 0;
  unsigned reused = 0;
  double seconds = 0;
};
Ext4ScanStats ext4_scan_stats();

// The default of Ext4OpenOptions::allow_dirty for every later open in this process (the CLI's
// --allow-dirty; DiskImage opens partitions without a way to pass it).
void set_default_allow_dirty(bool allow);

}  // namespace imprint
