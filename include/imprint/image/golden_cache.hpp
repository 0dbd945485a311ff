// What a batch learns about a golden image once and needs again on every run with the same golden:
// its sha256 (every manifest record names it) and its bytes compressed as frames (every compressed
// output reuses them). Both cost a full read of the golden (plus its compression: tens of seconds on a
// 4 GiB image) and both are the same until the golden changes, so they are kept in a cache directory
// ($XDG_CACHE_HOME/imprint, else ~/.cache/imprint), keyed by the golden's identity: device, inode,
// size, modification and change times to the nanosecond (a rewritten or replaced golden gets another
// key; a changed ctime cannot be faked without root). Only the golden's own bytes are cached, never a
// profile's or a device's: nothing secret is written there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "imprint/core/fileio.hpp"  // default_cache_directory
#include "imprint/image/copy.hpp"
#include "imprint/image/frames.hpp"

namespace imprint {

class GoldenCache {
 public:
  // directory "": no cache (everything is computed, nothing stored).
  GoldenCache(std::string directory, std::string golden_path);

  const std::string& directory() const noexcept { return directory_; }

  // The golden's sha256 (its bytes, holes as zeros), from the cache or computed and stored (building
  // the frames computes it on the way: call frames() first when both are needed).
  std::string digest();

  // The golden (golden_fd: the same file, open) compressed as frames: the cached frames when an
  // entry for this golden and compression exists and is whole, else built on `threads` threads and
  // stored (in the cache; or as an unnamed file in scratch_directory without one). At most
  // kKeptFrames frame entries (and kKeptDigests digests) are kept: the least recently used go.
  struct Frames {
    FramedBase frames;
    bool from_cache = false;
  };
  Frames frames(int golden_fd, Compression compression, unsigned threads, const std::string& scratch_directory);

  static constexpr std::size_t kKeptFrames = 4;    // a 4 GiB golden's zst frames: ~0.7 GB each
  static constexpr std::size_t kKeptDigests = 256;  // 64 bytes each

 private:
  std::string entry_path(const std::string& kind, const std::string& suffix) const;
  std::optional<FramedBase> load_frames(Compression compression) const;
  void store_digest(const std::string& digest) const;
  void store_frames(const FramedBase& frames, Compression compression) const;

  std::string directory_;
  std::string golden_path_;
  std::string key_;  // hex, from the golden's identity
  std::string digest_;  // once known
};

}  // namespace imprint
