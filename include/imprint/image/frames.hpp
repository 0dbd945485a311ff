// Compressed images as independent frames (zstd frames, gzip members, xz streams: each format reads
// a concatenation as one stream), so a batch compresses its shared base once and every device reuses
// the compressed bytes of the frames its changes leave alone, recompressing only the others.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "imprint/core/bytes.hpp"
#include "imprint/core/extent.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/image/copy.hpp"

namespace imprint {

// Uncompressed bytes per frame: small enough that a device's few changed blocks touch few frames,
// large enough that the compression ratio stays that of one stream (zstd's default window is 2 MiB;
// xz gets a dictionary of the frame's size).
inline constexpr std::uint64_t kDefaultFrameSize = 4ull << 20;

// The byte ranges of a device image that may differ from the shared base it was copied from. Any
// superset is correct (a frame it touches is recompressed, never wrongly reused). Filled today by
// changed_ranges_by_comparison; a write-tracking io layer (the per-device overlay) can fill it
// directly with the blocks it wrote.
struct ChangedRanges {
  std::vector<Extent> ranges;  // merged (sorted, disjoint)
};

// Where `device` differs from `base` (same size; each given with its data extents, the rest holes
// that read as zeros): reads only what either maps, and compares it in blocks of `granularity`.
ChangedRanges changed_ranges_by_comparison(int base_fd, const std::vector<Extent>& base_extents, int device_fd,
                                           const std::vector<Extent>& device_extents, std::uint64_t size,
                                           std::uint64_t granularity = 64 * 1024);

// Fills out with `size` bytes of the device image at `offset` (within the base's size).
using ImageReader = std::function<void(std::uint64_t offset, std::size_t size, char* out)>;

// One compressed frame in one of the base's compressed files.
struct FrameSpan {
  std::uint64_t offset = 0;  // in the compressed file
  std::uint64_t length = 0;  // compressed bytes
  std::uint32_t file = 0;    // which of the base's files (FramedBase::file_fd)
};

// What write_framed did, for tests and timing.
struct FrameStats {
  std::size_t reused = 0;        // frames copied from the base
  std::size_t recompressed = 0;  // frames compressed from the device image
};

// The shared base compressed as independent frames, held in an unnamed file (in the output
// directory: same filesystem as the outputs, so copy_file_range can share or copy in the kernel).
class FramedBase {
 public:
  // Compresses the base image (size bytes; only `extents` are read, the rest is zeros; frames with
  // no data share one compressed zero frame) on `threads` threads.
  // With `digest`, the image's bytes (holes as zeros) are hashed in order on the way, by the thread
  // that would otherwise wait for the compressing ones (the image's sha256 without another read).
  static FramedBase build(int base_fd, std::uint64_t size, std::vector<Extent> extents, Compression compression,
                          unsigned threads, const std::string& directory, const std::string& name,
                          std::uint64_t frame_size = kDefaultFrameSize, Sha256* digest = nullptr);

  // `base` with the frames `changed` touches recompressed from `read` (e.g. the golden's frames
  // under a batch's shared operations): the untouched frames stay in base's file(s), shared, and the
  // recompressed ones go to a new unnamed file in `directory`, on `threads` threads.
  static FramedBase patched(const FramedBase& base, const ImageReader& read, const ChangedRanges& changed, unsigned threads,
                            const std::string& directory, const std::string& name);
  // A base whose frames are already in `file` (a cache's), as build made them.
  static FramedBase adopt(UniqueFd file, Compression compression, std::uint64_t size, std::uint64_t frame_size,
                          std::vector<Extent> extents, std::vector<FrameSpan> frames);

  Compression compression() const { return compression_; }
  std::uint64_t size() const { return size_; }
  std::uint64_t frame_size() const { return frame_size_; }
  const std::vector<FrameSpan>& frames() const { return frames_; }
  const std::vector<Extent>& extents() const { return extents_; }  // the base image's data extents
  int fd() const { return file_fd(0); }                           // the first file's concatenated frames
  int file_fd(std::uint32_t file) const { return files_.at(file)->get(); }

 private:
  Compression compression_ = Compression::Zstd;
  std::uint64_t size_ = 0;
  std::uint64_t frame_size_ = kDefaultFrameSize;
  std::vector<FrameSpan> frames_;
  std::vector<Extent> extents_;
  std::vector<std::shared_ptr<const UniqueFd>> files_;  // shared with the bases patched from this one
};

// Writes the device image (src_fd, the base's size, data `extents`) to dst_fd in the base's format:
// the base's compressed frames where `changed` does not touch them, frames compressed from src_fd
// where it does. The result is one valid .zst/.gz/.xz, byte-identical to the base's frames where
// reused.
FrameStats write_framed(const FramedBase& base, int src_fd, const std::vector<Extent>& extents,
                        const ChangedRanges& changed, int dst_fd, const std::string& name);

// The same, reading the touched frames through `read` (e.g. golden + a device's overlay, so no
// device-sized file exists). With `digest`, every byte written to dst_fd is hashed on the way (the
// output's sha256 without reading the output back); the reused frames then go through memory
// instead of copy_file_range.
FrameStats write_framed(const FramedBase& base, const ImageReader& read, const ChangedRanges& changed, int dst_fd,
                        const std::string& name, Sha256* digest = nullptr);

// Compresses `size` bytes as one independent frame of `compression` (zstd frame, gzip member, xz
// stream), as FramedBase and write_framed do.
std::string compress_frame(Compression compression, const char* data, std::size_t size);

}  // namespace imprint
