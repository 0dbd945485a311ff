// compare_with_overlay (see compare.hpp): an image read side by side with golden + overlay.
#include "imprint/image/compare.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "imprint/core/error.hpp"
#include "imprint/image/overlay.hpp"

namespace imprint {

namespace {

constexpr std::size_t kBlock = 1 << 20;  // one pread of each side: large and sequential
constexpr std::size_t kProbe = 4096;     // a differing block is searched byte by byte only where it differs
constexpr std::uint64_t kSector = 512;
constexpr std::uint64_t kGptSectors = 34;  // protective MBR, header, 128 entries of 128 bytes

void read_exact(int fd, char* out, std::size_t size, std::uint64_t offset, const std::string& name) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t got = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw_errno("cannot read " + name + " at byte " + std::to_string(offset + done));
    if (got == 0) throw Error(name + " ended at byte " + std::to_string(offset + done) + " while being read", ErrorCode::Corrupt);
    done += static_cast<std::size_t>(got);
  }
}

// Counts the differing bytes of [start, start + length) into `differences`; last_end is one past the
// last differing byte counted so far, so a range that continues across blocks is counted once.
void count_differences(const char* expected, const char* actual, std::uint64_t start, std::size_t length, const Layout& layout,
                       ByteDifferences& differences, std::uint64_t& last_end) {
  for (std::size_t probe = 0; probe < length; probe += kProbe) {
    const std::size_t size = std::min(kProbe, length - probe);
    if (std::memcmp(expected + probe, actual + probe, size) == 0) continue;
    for (std::size_t i = probe; i < probe + size; ++i) {
      if (expected[i] == actual[i]) continue;
      const std::uint64_t at = start + i;
      if (differences.bytes == 0) differences.first = at;
      if (at != last_end || differences.bytes == 0) {
        ++differences.ranges;
        std::string region = region_of(layout, at);
        if (std::find(differences.regions.begin(), differences.regions.end(), region) == differences.regions.end()) {
          differences.regions.push_back(std::move(region));
        }
      }
      ++differences.bytes;
      last_end = at + 1;
    }
  }
}

}  // namespace

std::string region_of(const Layout& layout, std::uint64_t offset) {
  for (const Partition& partition : layout.partitions) {
    if (!partition.extended && offset >= partition.offset && offset < partition.offset + partition.size) return partition_name(partition);
  }
  if (offset < kSector) return "partition table";  // the MBR (the GPT's protective one too)
  if (layout.table == TableType::Gpt &&
      (offset < kGptSectors * kSector || offset + (kGptSectors - 1) * kSector >= layout.image_size)) {
    return "partition table";  // the primary header and entries, and the backup ones at the end
  }
  for (const Partition& partition : layout.partitions) {
    // Inside an extended container but in none of its logical partitions: the chain of EBRs.
    if (partition.extended && offset >= partition.offset && offset < partition.offset + partition.size) return "partition table";
  }
  return "outside the partitions";
}

OverlayComparison compare_with_overlay(int golden_fd, std::uint64_t golden_size, const ImageOverlay& overlay, int image_fd,
                                       std::uint64_t image_size, const Layout& layout, const std::string& image_name) {
  OverlayComparison result;
  result.compared = std::min(golden_size, image_size);
  const std::vector<Extent> runs = intersect(overlay.extents(), {Extent{0, result.compared}});
  result.written = runs;
  // Both are read once, front to back.
  ::posix_fadvise(golden_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  ::posix_fadvise(image_fd, 0, static_cast<off_t>(result.compared), POSIX_FADV_SEQUENTIAL);
  std::vector<char> expected(kBlock), actual(kBlock);
  std::uint64_t last_end = 0;
  std::size_t next_run = 0;  // the first run that does not end before the current block
  for (std::uint64_t offset = 0; offset < result.compared;) {
    const auto length = static_cast<std::size_t>(std::min<std::uint64_t>(kBlock, result.compared - offset));
    overlay.read(golden_fd, offset, length, expected.data());
    read_exact(image_fd, actual.data(), length, offset, image_name);
    const std::uint64_t block_end = offset + length;
    while (next_run < runs.size() && runs[next_run].end() <= offset) ++next_run;
    if (std::memcmp(expected.data(), actual.data(), length) != 0) {
      // The block differs somewhere: split it at the written runs and judge each piece.
      std::size_t run = next_run;
      for (std::uint64_t at = offset; at < block_end;) {
        const bool inside = run < runs.size() && runs[run].offset <= at;
        const std::uint64_t end = inside ? std::min(runs[run].end(), block_end)
                                         : (run < runs.size() ? std::min(runs[run].offset, block_end) : block_end);
        const char* want = expected.data() + (at - offset);
        const char* got = actual.data() + (at - offset);
        const auto size = static_cast<std::size_t>(end - at);
        if (inside) {
          if (std::memcmp(want, got, size) != 0 && (result.written_differ.empty() || !(result.written_differ.back() == runs[run]))) {
            result.written_differ.push_back(runs[run]);
          }
          if (end == runs[run].end()) ++run;
        } else {
          count_differences(want, got, at, size, layout, result.outside, last_end);
        }
        at = end;
      }
    }
    offset = block_end;
  }
  return result;
}

}  // namespace imprint
