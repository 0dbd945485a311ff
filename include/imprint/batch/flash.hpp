// flash: put one image onto a card (or a regular file standing in for one), the factory line's job.
//
// Two sources: a device stamped on the fly (profile + golden + device id; the stamped image lives
// only in an unnamed O_TMPFILE in $TMPDIR, so no intermediate image ever has a name), or an
// existing image (raw or compressed, with IMAGE.bmap when present: its checksums are checked while
// writing, and a bmap that leaves out blocks the filesystems need is warned about and completed).
// What is written is the image's block map (block_map.hpp), computed from the image itself: data
// as it is, and the runs the image holds as zeros made zero on the target (BLKZEROOUT on a card,
// punched holes in an existing file), so a card that held anything before comes out as the image.
// The rest is zeroed only with zero_unmapped. Then fsync, then every range of the map is read
// back past the page cache (O_DIRECT, else POSIX_FADV_DONTNEED) and compared with the image.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "imprint/image/image.hpp"
#include "imprint/batch/manifest.hpp"
#include "imprint/profile/template.hpp"

namespace imprint {

enum class FlashPhase { Stamping, Writing, Verifying };
// Called from flash()'s thread as it goes: the phase, and its bytes done of total (0 of 0 while
// stamping). An exception thrown by it aborts the flash.
using FlashProgress = std::function<void(FlashPhase phase, std::uint64_t done, std::uint64_t total)>;

struct FlashRequest {
  // Stamp mode (profile_path set): the device's image is stamped from golden_path.
  std::string profile_path;
  std::string golden_path;
  std::string device_id;  // required in stamp mode; in image mode a label (default: the file's stem)
  Variables overrides;
  // Image mode: an existing image; bmap_path empty = IMAGE.bmap / STEM.bmap when present.
  std::string image_path;
  std::string bmap_path;

  std::string target;          // a block device or a regular file
  bool force = false;          // a non-removable disk; overwriting an existing regular file
  bool zero_unmapped = false;  // also write zeros over the unmapped blocks of the image's span
  std::string manifest_path;   // when set, the flash record is appended to it
  bool record_kept = false;    // the caller keeps the record itself (the station: in its ledger), so a
                               // generate: credential is not lost without manifest_path
  bool record_printed = false;  // the caller prints the record (flash --json)
  // Does the record leave flash()? Only then are its digests computed (image_sha256, golden_sha256:
  // each a read and hash of the whole image, on the core the write pass and read-back also need).
  bool record_wanted() const { return !manifest_path.empty() || record_kept || record_printed; }
  Backend backend = Backend::Auto;  // stamp mode: which Filesystem implementation opens each partition
  FlashProgress progress;           // optional (the factory station's operator view)
  // Stamp mode: the record's golden_sha256 when the caller already has it (golden_digest of the
  // golden as the user named it: the station hashes it once, not per card, and hands flash the
  // decompressed copy); empty: flash computes it from golden_path.
  std::string golden_sha256;
};

struct FlashResult {
  std::string device_id;
  std::string target;
  std::uint64_t image_size = 0;
  std::uint64_t mapped_bytes = 0;   // the image's block map: what the card must hold exactly
  std::uint64_t zero_bytes = 0;     // of those, the bytes the image holds as zeros (written as zeros)
  std::uint64_t bytes_written = 0;  // sent to the target (zeros a file target keeps as holes are not)
  std::size_t ranges = 0;
  bool verified = false;
  std::string failure;  // the first range whose read-back differs
  std::string image_sha256;  // empty (null in the record) unless request.record_wanted()
  std::vector<std::string> warnings;
  ManifestRecord record;
};

// Writes and verifies; a read-back mismatch gives verified == false (the record says so too).
// Refusals and write errors throw Error naming the target.
FlashResult flash(const FlashRequest& request);

// The golden_sha256 of records: SHA-256 of the golden file as named (a compressed one's compressed
// bytes), read sparse-aware. batch, flash -p and the station record the same digest for one file.
// Kept in the golden cache ($XDG_CACHE_HOME/imprint, see golden_cache.hpp) between runs.
std::string golden_digest(const std::string& path);

// The refusals for a block device: mounted (itself or a partition of it; "/" makes it "the running
// system"), used as swap or by device-mapper, smaller than the image, not removable (unless
// force). Error(Invalid) naming the device and why.
void check_block_target(const std::string& device, std::uint64_t image_size, bool force);

}  // namespace imprint
