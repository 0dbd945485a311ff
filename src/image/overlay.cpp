// ImageOverlay (see overlay.hpp): written pages over a read-only golden.
#include "imprint/image/overlay.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "imprint/core/error.hpp"

namespace imprint {

namespace {

// Reads what the golden holds; bytes past its end read as zeros (a sparse tail).
void pread_or_zero(int fd, char* out, std::size_t size, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t got = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw_errno("cannot read the golden image");
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  std::memset(out + done, 0, size - done);
}

}  // namespace

void ImageOverlay::write(std::uint64_t offset, std::string_view bytes) {
  if (offset % kPage != 0 || bytes.size() % kPage != 0) {
    throw Error("overlay write at byte " + std::to_string(offset) + " of " + std::to_string(bytes.size()) +
                " bytes is not sector aligned");
  }
  for (std::size_t at = 0; at < bytes.size(); at += kPage) {
    const std::uint64_t index = (offset + at) / kPage;
    const char* data = bytes.data() + at;
    if (auto found = memory_.find(index); found != memory_.end()) {
      std::memcpy(found->second.data(), data, kPage);
    } else if (auto spilled = spilled_.find(index); spilled != spilled_.end()) {
      pwrite_all(spill_.get(), std::string_view(data, kPage), spilled->second, "the overlay's spill file");
    } else if (memory_.size() * kPage < memory_limit_) {
      std::memcpy(memory_[index].data(), data, kPage);
    } else {
      // The spill holds what the plan wrote, keys among it: a memfd, never a file on the host's disk
      // (its pages are not mapped, so they do not count in the process's RSS).
      if (!spill_) spill_ = memory_file("imprint-overlay-spill");
      pwrite_all(spill_.get(), std::string_view(data, kPage), spill_end_, "the overlay's spill file");
      spilled_.emplace(index, spill_end_);
      spill_end_ += kPage;
    }
  }
}

void ImageOverlay::page_bytes(std::uint64_t index, char* out) const {
  if (auto found = memory_.find(index); found != memory_.end()) {
    std::memcpy(out, found->second.data(), kPage);
    return;
  }
  const std::uint64_t at = spilled_.at(index);
  pread_or_zero(spill_.get(), out, kPage, at);
}

void ImageOverlay::read(int golden_fd, std::uint64_t offset, std::size_t size, char* out) const {
  if (below_) {
    below_->read(golden_fd, offset, size, out);
  } else {
    pread_or_zero(golden_fd, out, size, offset);
  }
  Page page{};
  // Written pages over [offset, offset + size), from both stores.
  auto overlay_page = [&](std::uint64_t index) {
    const std::uint64_t start = index * kPage;
    const std::uint64_t from = std::max(start, offset), to = std::min(start + kPage, offset + size);
    page_bytes(index, page.data());
    std::memcpy(out + (from - offset), page.data() + (from - start), to - from);
  };
  const std::uint64_t first = offset / kPage;
  for (auto it = memory_.lower_bound(first); it != memory_.end() && it->first * kPage < offset + size; ++it) overlay_page(it->first);
  for (auto it = spilled_.lower_bound(first); it != spilled_.end() && it->first * kPage < offset + size; ++it) overlay_page(it->first);
}

std::vector<Extent> ImageOverlay::extents() const {
  std::vector<Extent> runs;
  auto add = [&](std::uint64_t index) { runs.push_back(Extent{index * kPage, kPage}); };
  for (const auto& entry : memory_) add(entry.first);
  for (const auto& entry : spilled_) add(entry.first);
  return merged(std::move(runs));
}

void ImageOverlay::write_to(int fd, const std::string& what) const {
  std::string run;
  for (const Extent& extent : extents()) {
    // Runs of at most 8 MiB at a time keep the buffer small.
    for (std::uint64_t at = extent.offset; at < extent.end(); at += run.size()) {
      const std::uint64_t length = std::min<std::uint64_t>(extent.end() - at, 8ull << 20);
      run.resize(length);
      for (std::uint64_t done = 0; done < length; done += kPage) page_bytes((at + done) / kPage, run.data() + done);
      pwrite_all(fd, run, at, what);
    }
  }
}

}  // namespace imprint
