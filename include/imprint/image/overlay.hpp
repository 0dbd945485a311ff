// A device's image without a copy of the golden: the golden (opened read-only) plus the bytes the
// plan wrote, kept here. Writes arrive from the filesystems' commits (ext4 io_manager overlays) at
// image byte offsets; they are kept in the process's memory up to a limit and past it in a memfd
// (never a file on the host's disk: the pages hold keys), so a plan that writes much keeps the
// process's memory flat. Reads (range by range: stamp -o's output,
// flash -p's card) yield the golden's bytes with the written ones on top.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "imprint/core/extent.hpp"
#include "imprint/core/fileio.hpp"

namespace imprint {

class ImageOverlay {
 public:
  static constexpr std::uint64_t kPage = 512;  // a sector: partitions and ext blocks align to it
  // memory_limit: bytes kept in the process's heap before the rest spills to a memfd.
  explicit ImageOverlay(std::uint64_t memory_limit = 16ull << 20) : memory_limit_(memory_limit) {}
  // A layer over another overlay (a batch device's over the shared ops'): reads see the golden, then
  // `below`'s pages, then this one's; extents(), bytes() and write_to() are this layer's own.
  explicit ImageOverlay(std::shared_ptr<const ImageOverlay> below, std::uint64_t memory_limit = 16ull << 20)
      : memory_limit_(memory_limit), below_(std::move(below)) {}
  const std::shared_ptr<const ImageOverlay>& below() const noexcept { return below_; }

  // Records bytes written at an image offset. Offset and size are multiples of kPage (what the
  // filesystems commit always is); Error otherwise.
  void write(std::uint64_t offset, std::string_view bytes);
  // size bytes at offset: the golden's (zeros past its end) with the written pages on top.
  void read(int golden_fd, std::uint64_t offset, std::size_t size, char* out) const;
  // The written runs, merged, in order.
  std::vector<Extent> extents() const;
  std::uint64_t bytes() const noexcept { return (memory_.size() + spilled_.size()) * kPage; }
  std::uint64_t spilled_bytes() const noexcept { return spilled_.size() * kPage; }
  // Writes every written run to fd at its offset (the golden's bytes already there: one pass).
  void write_to(int fd, const std::string& what) const;

 private:
  using Page = std::array<char, kPage>;
  void page_bytes(std::uint64_t index, char* out) const;

  std::uint64_t memory_limit_;
  std::shared_ptr<const ImageOverlay> below_;
  std::map<std::uint64_t, Page> memory_;          // page index -> bytes
  std::map<std::uint64_t, std::uint64_t> spilled_;  // page index -> offset in spill_
  UniqueFd spill_;
  std::uint64_t spill_end_ = 0;
};

}  // namespace imprint
