// flash's write pass (the image's block map onto the target, zero runs made zero the cheapest way
// the target allows) and its read-back past the page cache.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "flash_internal.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"

namespace imprint::flash_detail {

namespace {

// Bytes per buffered read/write: 128 KiB, like the stamp's copy (src/image/copy.cpp): through the
// page cache, larger chunks cost several times more CPU (bench/), and the kernel merges the writes
// into large requests to the card anyway. The read-back bypasses the cache (O_DIRECT), so there
// large reads are what keeps a card busy.
constexpr std::size_t kChunk = 128 * 1024;
constexpr std::size_t kReadBackChunk = 4 * 1024 * 1024;

void write_zeros(int target, const Extent& extent, const std::string& target_name, std::vector<char>& buffer) {
  std::fill(buffer.begin(), buffer.end(), '\0');
  for (std::uint64_t at = extent.offset; at < extent.end();) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), extent.end() - at));
    pwrite_all(target, std::string_view(buffer.data(), want), at, target_name);
    at += want;
  }
}

// Makes a range of the target read as zeros the cheapest way its kind allows; returns the bytes
// actually sent to it (0 when nothing needed writing).
std::uint64_t zero_range(const Target& target, const Extent& extent, const std::string& target_name, std::vector<char>& buffer) {
  switch (target.kind) {
    case TargetKind::NewFile:
      return 0;
    case TargetKind::ExistingFile:
      if (::fallocate(target.fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(extent.offset),
                      static_cast<off_t>(extent.length)) == 0) {
        return 0;
      }
      break;
    case TargetKind::BlockDevice: {
      // The card zeroes the range itself (write-zeroes/discard), and the kernel drops its cached pages.
      std::uint64_t span[2] = {extent.offset, extent.length};
      if (extent.offset % 512 == 0 && extent.length % 512 == 0 && ::ioctl(target.fd.get(), BLKZEROOUT, span) == 0) {
        return extent.length;
      }
      break;
    }
  }
  write_zeros(target.fd.get(), extent, target_name, buffer);
  return extent.length;
}

// Copies one piece of the image onto the target; feeds its bytes to range_digest when given.
void copy_range(const Source& source, int target, const Extent& extent, const std::string& target_name, std::vector<char>& buffer,
                Sha256* range_digest, Meter& meter, EarlyWriteback& writeback) {
  for (std::uint64_t at = extent.offset; at < extent.end();) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), extent.end() - at));
    read_source(source, buffer.data(), want, at);
    const std::string_view chunk(buffer.data(), want);
    if (range_digest != nullptr) range_digest->update(chunk);
    pwrite_all(target, chunk, at, target_name);
    meter.add(want);
    at += want;
    writeback.written_up_to(at);
  }
}

using AlignedBuffer = std::unique_ptr<char, decltype(&std::free)>;

AlignedBuffer aligned_buffer(std::size_t size, const std::string& purpose) {
  void* memory = nullptr;
  if (::posix_memalign(&memory, 4096, size) != 0) throw Error("out of memory for " + purpose);
  return AlignedBuffer(static_cast<char*>(memory), &std::free);
}

// Compares `length` bytes read back from the card at `offset` with the source (from its page cache,
// where the write pass just left it) or with zeros, a cache-sized slice of the source at a time.
bool matches_source(const Source& source, bool zeros, std::uint64_t offset, const char* card, std::size_t length,
                    std::vector<char>& expected) {
  for (std::size_t done = 0; done < length;) {
    const std::size_t part = std::min(expected.size(), length - done);
    const auto at = static_cast<off_t>(offset + done);
    if (zeros) {
      std::fill(expected.begin(), expected.begin() + static_cast<std::ptrdiff_t>(part), '\0');
    } else {
      read_source(source, expected.data(), part, static_cast<std::uint64_t>(at));
    }
    if (std::memcmp(card + done, expected.data(), part) != 0) return false;
    done += part;
  }
  return true;
}

// Checks a bmap's range checksums against the image when its ranges are not the ones written (a
// bmap made by another tool): one more read of those ranges, from the page cache.
void check_bmap_checksums(const Source& source, std::vector<char>& buffer) {
  for (const BmapRange& range : source.bmap->ranges) {
    const std::uint64_t begin = range.first * kBmapBlockSize;
    const std::uint64_t end = std::min((range.last + 1) * kBmapBlockSize, source.size);
    Sha256 digest;
    for (std::uint64_t at = begin; at < end;) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - at));
      read_source(source, buffer.data(), want, at);
      digest.update(std::string_view(buffer.data(), want));
      at += want;
    }
    if (digest.hex_digest() != range.sha256) {
      throw Error(source.name + ": blocks " + std::to_string(range.first) + "-" + std::to_string(range.last) +
                      " do not match the checksum in its bmap",
                  ErrorCode::Corrupt);
    }
  }
}

}  // namespace

WritePass write_map(const Source& source, const Target& target, const std::string& target_name, Meter& meter) {
  std::vector<char> buffer(kChunk);
  const bool check_inline = source.bmap && source.bmap->extents() == source.ranges;
  if (source.bmap && !check_inline) check_bmap_checksums(source, buffer);
  WritePass pass;
  pass.written = flash_pieces(source.ranges, source.data);
  // The pieces go in ascending order: the card writes while the next ones are read, and the meter
  // shows the card's pace rather than the page cache's.
  EarlyWriteback writeback(target.fd.get());
  std::size_t piece = 0;
  for (std::size_t i = 0; i < source.ranges.size(); ++i) {
    const Extent& range = source.ranges[i];
    Sha256 digest;
    for (; piece < pass.written.size() && pass.written[piece].range.offset < range.end(); ++piece) {
      const FlashPiece& part = pass.written[piece];
      if (part.zeros) {
        pass.bytes_written += zero_range(target, part.range, target_name, buffer);
        pass.zero_bytes += part.range.length;
        meter.add(part.range.length);
        if (check_inline) hash_zeros(digest, part.range.length);
      } else {
        copy_range(source, target.fd.get(), part.range, target_name, buffer, check_inline ? &digest : nullptr, meter, writeback);
        pass.bytes_written += part.range.length;
      }
    }
    if (check_inline && source.bmap->ranges[i].sha256 != digest.hex_digest()) {
      throw Error(source.name + ": blocks " + std::to_string(source.bmap->ranges[i].first) + "-" +
                      std::to_string(source.bmap->ranges[i].last) + " do not match the checksum in its bmap",
                  ErrorCode::Corrupt);
    }
  }
  return pass;
}

void zero_unmapped(const Source& source, const Target& target, const std::string& target_name, WritePass& pass) {
  std::vector<char> buffer(kChunk);
  for (const Extent& gap : unmapped_gaps(source.ranges, source.size)) {
    pass.bytes_written += zero_range(target, gap, target_name, buffer);
    pass.written.push_back(FlashPiece{gap, true});
  }
}

void corrupt_for_test(const std::string& target) {
  const char* at = std::getenv("IMPRINT_TEST_CORRUPT_AT");
  if (at == nullptr || *at == '\0') return;
  const auto offset = static_cast<off_t>(std::stoull(at));
  UniqueFd fd(::open(target.c_str(), O_RDWR | O_CLOEXEC));
  char byte = 0;
  if (!fd || ::pread(fd.get(), &byte, 1, offset) != 1) throw_errno("test hook: cannot read " + target);
  byte = static_cast<char>(byte ^ 0x5a);
  if (::pwrite(fd.get(), &byte, 1, offset) != 1 || ::fsync(fd.get()) != 0) throw_errno("test hook: cannot write " + target);
}

std::string read_back(const std::string& target, int write_fd, const Source& source, const std::vector<FlashPiece>& written,
                      Meter& meter) {
  UniqueFd fd(::open(target.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
  if (!fd) {  // no O_DIRECT here (tmpfs): drop the cached pages instead
    ::posix_fadvise(write_fd, 0, 0, POSIX_FADV_DONTNEED);
    fd = open_read(target);
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
  }
  AlignedBuffer card = aligned_buffer(kReadBackChunk, "the read-back of " + target);
  std::vector<char> expected(kChunk);
  const char* hook = std::getenv("IMPRINT_TEST_CORRUPT_READBACK");
  bool corrupt = hook != nullptr && std::string(hook) == "1";  // test hook: a card that returns a flipped bit
  for (const FlashPiece& range : written) {
    const Extent& extent = range.range;
    for (std::uint64_t at = extent.offset; at < extent.end();) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kReadBackChunk, extent.end() - at));
      const std::size_t aligned = (want + 4095) / 4096 * 4096;  // O_DIRECT reads whole blocks
      const ssize_t got = ::pread(fd.get(), card.get(), aligned, static_cast<off_t>(at));
      if (got < 0 && errno == EINTR) continue;
      if (got < static_cast<ssize_t>(want)) throw_errno("cannot read back " + target);
      if (corrupt) card.get()[0] ^= 0x01;
      corrupt = false;
      if (!matches_source(source, range.zeros, at, card.get(), want, expected)) {
        return "bytes " + std::to_string(extent.offset) + "-" + std::to_string(extent.end() - 1) + " (" +
               (range.zeros ? "must read as zeros" : "image data") + ") read back differently from the image";
      }
      meter.add(want);
      at += want;
    }
  }
  return "";
}

}  // namespace imprint::flash_detail
