// Copying images: reflink when the filesystem supports it, else a sparse copy that reads only the
// allocated extents (SEEK_DATA/SEEK_HOLE) and writes holes for all-zero blocks; decompression of
// compressed images through libarchive (copy.cpp), and compression (compress.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <string>
#include <vector>

#include "imprint/core/extent.hpp"
#include "imprint/core/fileio.hpp"

namespace imprint {

// Is this a compressed or archived image libarchive must unpack (by content, not by name)?
bool is_compressed_image(const std::string& path);

// Copies src into dst (both open; dst empty), keeping holes. Tries FICLONE first. Returns the data
// extents of the result (what a bmap maps). Sets dst's size to src's size.
std::vector<Extent> copy_sparse(int src_fd, int dst_fd, const std::string& src_name);

// Decompresses a compressed image (any filter libarchive reads; a .zip with exactly one .img
// member) into dst_fd, writing holes for all-zero blocks. Returns the data extents.
std::vector<Extent> decompress_image(const std::string& path, int dst_fd);

// A compressed image decompressed into an unnamed file that goes with the process, kill -9 included.
// Where it goes depends on what it may hold:
// - decompressed_beside: any image, a stamped one too (a device's key never goes to $TMPDIR): beside
//   `path` (unnamed_file_beside: that directory holds those bytes already), else in memory.
// - decompressed_golden: a golden, which holds no device's secrets: in $TMPDIR (unnamed_temp_file).
UniqueFd decompressed_beside(const std::string& path);
UniqueFd decompressed_golden(const std::string& path);

// Copies or decompresses `path` into dst_fd, whichever it needs. A set `stop` ends it between
// chunks with an Error.
std::vector<Extent> copy_image(const std::string& path, int dst_fd, const std::atomic<bool>* stop = nullptr);

// copy_image on another thread, so that the golden's copy (the bulk of a stamp's time) runs while
// the caller stamps the plan into an overlay. wait() returns the extents or rethrows the copy's
// error; destroyed without wait() (the caller failed first), it stops the copy and waits for it.
class BackgroundCopy {
 public:
  BackgroundCopy(std::string path, int dst_fd);
  BackgroundCopy(const BackgroundCopy&) = delete;
  BackgroundCopy& operator=(const BackgroundCopy&) = delete;
  ~BackgroundCopy();
  std::vector<Extent> wait();

 private:
  std::atomic<bool> stop_{false};
  std::future<std::vector<Extent>> copy_;  // last: started once stop_ exists
};

enum class Compression { None, Gzip, Xz, Zstd };
Compression parse_compression(const std::string& text);  // "none" | "gz" | "xz" | "zst"
std::string compression_suffix(Compression compression);  // "", ".gz", ".xz", ".zst"

// Writes the image bytes of src (size bytes; only `extents` are read, the rest is zeros) to dst as
// a single-member raw stream compressed by libarchive (gzip, xz or zstd; xz and zstd use `threads`).
void write_compressed(int src_fd, std::uint64_t size, const std::vector<Extent>& extents, int dst_fd,
                      Compression compression, unsigned threads, const std::string& name);

// The data extents of an open file (SEEK_DATA/SEEK_HOLE).
std::vector<Extent> data_extents(int fd);

}  // namespace imprint
