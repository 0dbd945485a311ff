// Internal to flash (src/batch/flash*.cpp): the image to write (flash_source.cpp), the target and
// its refusals (flash_target.cpp), the write pass and the read-back (flash_write.cpp). flash.cpp runs
// them in that order and writes the record.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "imprint/batch/flash_ranges.hpp"
#include "imprint/image/bmap.hpp"
#include "imprint/core/extent.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/core/progress.hpp"
#include "imprint/batch/flash.hpp"
#include "imprint/batch/manifest.hpp"
#include "imprint/image/overlay.hpp"

namespace imprint::flash_detail {

// The image to write: an open descriptor, its size, its data extents (the rest are holes, which read
// as zeros), the ranges a card must hold (the image's block map, block aligned), and the bmap whose
// checksums the write pass checks, when one was given.
struct Source {
  UniqueFd fd;
  // flash -p: fd is the golden, opened read-only, and the device's image is fd + overlay (no copy
  // of the golden on the host disk). Null: fd holds the image itself.
  std::shared_ptr<const ImageOverlay> overlay;
  std::uint64_t size = 0;
  std::vector<Extent> data;
  std::vector<Extent> ranges;
  std::optional<Bmap> bmap;
  std::string name;
  std::string device_id;
  ManifestRecord record;  // what is known about the image (device, credentials, files)
  std::vector<std::string> warnings;
};

// Reads `size` bytes of the image at `offset` (through the overlay, when there is one); Error naming
// the source when the image is shorter.
void read_source(const Source& source, char* out, std::size_t size, std::uint64_t offset);
// The sha256 of the whole image (holes as zeros).
std::string source_sha256(const Source& source);

// Stamp mode: the device's image, the golden + an overlay of the plan's writes (a libguestfs
// partition's by way of a qcow2 file in memory-backed storage); where that does not apply
// (stamp_overlay), stamped from the golden into an unnamed temp file.
Source stamped_source(const FlashRequest& request);
// Image mode: an existing image (decompressed into an unnamed temp file when compressed), its
// bmap's checksums when it has one.
Source image_source(const FlashRequest& request);

// The size of an open regular file or block device.
std::uint64_t fd_size(int fd, const std::string& name);

// What the target is decides how a range that must read as zero is made so.
enum class TargetKind {
  NewFile,       // created (and sized) by this flash: every byte already reads as zero
  ExistingFile,  // a regular file with old content: punch holes
  BlockDevice,   // a card: BLKZEROOUT, else written zeros
};

struct Target {
  UniqueFd fd;
  TargetKind kind = TargetKind::NewFile;
};

// Refuses a target that is one of the flash's own inputs (the golden, the image, its bmap, the
// profile, a file a variable names): flashing over it would destroy what is being read.
void refuse_input_targets(const FlashRequest& request);
// Opens the target for writing after the refusals; creates a regular file when missing.
Target open_target(const FlashRequest& request, const Source& source);

// Feeds FlashRequest::progress, when there is one, with the bytes of the current phase, counted
// by core's ProgressMeter (the same numbers the command line's and the station's views show).
class Meter {
 public:
  explicit Meter(const FlashProgress& progress) : progress_(progress) {}
  void start(FlashPhase phase, std::uint64_t total) {
    phase_ = phase;
    meter_.restart(total);
    report();
  }
  void add(std::uint64_t bytes) {
    meter_.add(bytes);
    report();
  }

 private:
  void report() const {
    if (progress_) progress_(phase_, meter_.done(), meter_.total());
  }
  const FlashProgress& progress_;
  FlashPhase phase_ = FlashPhase::Stamping;
  ProgressMeter meter_;
};

struct WritePass {
  std::vector<FlashPiece> written;  // what the read-back compares, in order
  std::uint64_t bytes_written = 0;
  std::uint64_t zero_bytes = 0;  // of the map, the bytes that must read as zeros
};

// Writes every range of the map: image data as it is, hole runs as zeros. When the bmap lists
// exactly these ranges (imprint's own), each range is checked against its checksum with the same read.
WritePass write_map(const Source& source, const Target& target, const std::string& target_name, Meter& meter);
// --zero-unmapped: makes the gaps between the map's ranges read as zeros too (and read back).
void zero_unmapped(const Source& source, const Target& target, const std::string& target_name, WritePass& pass);
// Test hook: a card that changes a byte between the write and the read-back (IMPRINT_TEST_CORRUPT_AT
// = byte offset): the byte there is flipped on the target itself, past every cache.
void corrupt_for_test(const std::string& target);
// Reads the target back past the page cache and compares it byte for byte with the image: every
// range of the map, zero runs included (cheaper than hashing, and exact). Returns the first range
// that differs, or "".
std::string read_back(const std::string& target, int write_fd, const Source& source, const std::vector<FlashPiece>& written,
                      Meter& meter);

}  // namespace imprint::flash_detail
