// Sparse image copies (reflink, else SEEK_DATA/SEEK_HOLE with zero-block holes) and decompression
// through libarchive.
#include "imprint/image/copy.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/core/progress.hpp"
#include "layout_internal.hpp"

namespace imprint {

namespace {

constexpr std::size_t kBlock = 4096;            // zero blocks of this size become holes
constexpr std::size_t kChunk = 4 * 1024 * 1024;  // bytes decompressed per call
// Bytes copied per pread/pwrite in copy_sparse: 128 KiB like cp. Measured on a 1 GiB image
// (bench/): 4 MiB chunks spent 3-4x longer in the kernel's page-cache copy than 128 KiB ones.
constexpr std::size_t kCopyChunk = 128 * 1024;

struct ArchiveDeleter {
  void operator()(archive* reader) const { archive_read_free(reader); }
};
using Archive = std::unique_ptr<archive, ArchiveDeleter>;

std::string archive_message(archive* reader) {
  const char* message = archive_error_string(reader);
  return message == nullptr ? "unknown libarchive error" : message;
}

// A reader for plain compressed streams (any filter, "raw" format) and .zip archives.
Archive open_archive(int fd, const std::string& path) {
  Archive reader(archive_read_new());
  if (!reader) throw Error("cannot create a libarchive reader for " + path);
  archive_read_support_filter_all(reader.get());
  archive_read_support_format_raw(reader.get());
  archive_read_support_format_zip(reader.get());
  if (::lseek(fd, 0, SEEK_SET) < 0) throw_errno("cannot seek in " + path);
  if (archive_read_open_fd(reader.get(), fd, 1024 * 1024) != ARCHIVE_OK) {
    throw Error(path + ": cannot read: " + archive_message(reader.get()), ErrorCode::Corrupt);
  }
  return reader;
}

// Next entry, or nullptr at the end of the archive.
archive_entry* next_entry(archive* reader, const std::string& path) {
  archive_entry* entry = nullptr;
  const int status = archive_read_next_header(reader, &entry);
  if (status == ARCHIVE_EOF) return nullptr;
  if (status < ARCHIVE_WARN) throw Error(path + ": cannot decompress: " + archive_message(reader), ErrorCode::Corrupt);
  return entry;
}

bool is_zip(archive* reader) { return (archive_format(reader) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_ZIP; }

bool is_image_member(archive_entry* entry) {
  const char* name = archive_entry_pathname(entry);
  if (name == nullptr || archive_entry_filetype(entry) != AE_IFREG) return false;
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.size() > 4 && lower.ends_with(".img");
}

// The one *.img member of a zip; Error(Invalid) when there is none or more than one.
std::string zip_image_member(int fd, const std::string& path) {
  Archive reader = open_archive(fd, path);
  std::vector<std::string> members;
  while (archive_entry* entry = next_entry(reader.get(), path)) {
    if (is_image_member(entry)) members.emplace_back(archive_entry_pathname(entry));
  }
  if (members.empty()) throw Error(path + ": the zip archive holds no .img file", ErrorCode::Invalid);
  if (members.size() > 1) {
    throw Error(path + ": the zip archive holds " + std::to_string(members.size()) + " .img files (" + members[0] + ", " +
                    members[1] + (members.size() > 2 ? ", ..." : "") + "); expected exactly one",
                ErrorCode::Invalid);
  }
  return members.front();
}

// A copy someone stopped (BackgroundCopy's owner failed first) ends between chunks.
void throw_if_stopped(const std::atomic<bool>* stop, const std::string& what) {
  if (stop != nullptr && stop->load(std::memory_order_relaxed)) throw Error("the copy of " + what + " was stopped");
}

bool all_zero(const char* data, std::size_t size) {
  return size == 0 || (data[0] == 0 && std::memcmp(data, data + 1, size - 1) == 0);
}

// Writes data at offset, leaving every all-zero block (aligned to kBlock relative to `offset`,
// which callers keep aligned) unwritten so it stays a hole.
void write_skipping_zeros(int fd, const char* data, std::size_t size, std::uint64_t offset, const std::string& what) {
  std::size_t run_start = 0;
  bool in_run = false;
  for (std::size_t position = 0; position < size; position += kBlock) {
    const std::size_t length = std::min(kBlock, size - position);
    const bool zero = all_zero(data + position, length);
    if (!zero && !in_run) {
      run_start = position;
      in_run = true;
    } else if (zero && in_run) {
      pwrite_all(fd, std::string_view(data + run_start, position - run_start), offset + run_start, what);
      in_run = false;
    }
  }
  if (in_run) pwrite_all(fd, std::string_view(data + run_start, size - run_start), offset + run_start, what);
}

bool is_regular(int fd) {
  struct stat info {};
  return ::fstat(fd, &info) == 0 && S_ISREG(info.st_mode);
}

// Sets a regular output file's size (a trailing hole is not written); devices keep theirs.
void set_size(int fd, std::uint64_t size, const std::string& what) {
  if (is_regular(fd) && ::ftruncate(fd, static_cast<off_t>(size)) != 0) throw_errno("cannot set the size of " + what);
}

// How far a decompression may go: a few MiB of compressed zeros expand to 100 GiB and fill the
// disk. The partition table, read from the first chunk once it is written, says how large the image
// is: the end of its last partition plus a margin (backup GPT, slack), or a generous cap without one.
constexpr std::uint64_t kNoTableCap = 64ull << 30;
std::uint64_t decompression_cap(int fd) {
  const std::optional<std::uint64_t> span = detail::table_span_fd(fd);
  if (!span) return kNoTableCap;
  return *span + std::max<std::uint64_t>(1 << 20, *span / 100);
}

Error decompression_bomb(const std::string& path, std::uint64_t cap) {
  if (cap == kNoTableCap) {
    return Error(path + ": decompresses to more than " + format_limit(cap) + " and starts with no partition table",
                 ErrorCode::Corrupt);
  }
  return Error(path + ": decompresses to more than " + std::to_string(cap) +
                   " bytes, past the end of the partitions its table describes (a decompression bomb, or not a disk image)",
               ErrorCode::Corrupt);
}

// Streams the current entry of reader into fd, holes for zero blocks. Returns the bytes written.
// A golden of several GiB takes a while to decompress: progress on a terminal.
std::uint64_t extract_entry(archive* reader, int fd, const std::string& path, const std::atomic<bool>* stop) {
  ProgressLine progress("decompressing", "decompressed", path);
  std::vector<char> buffer(kChunk);
  std::uint64_t offset = 0;
  std::optional<std::uint64_t> cap;  // known once the first chunk (the partition table) is written
  const std::string what = "the decompressed copy of " + path;
  for (;;) {
    // Fill the whole buffer so that block boundaries stay aligned to the output offset.
    std::size_t filled = 0;
    while (filled < buffer.size()) {
      const la_ssize_t got = archive_read_data(reader, buffer.data() + filled, buffer.size() - filled);
      if (got < 0) throw Error(path + ": cannot decompress: " + archive_message(reader), ErrorCode::Corrupt);
      if (got == 0) break;
      filled += static_cast<std::size_t>(got);
    }
    if (cap && offset + filled > *cap) throw decompression_bomb(path, *cap);
    throw_if_stopped(stop, path);
    write_skipping_zeros(fd, buffer.data(), filled, offset, what);
    offset += filled;
    if (!cap) {
      cap = decompression_cap(fd);
      // The partition table tells how large the image is: the line can show a share and an ETA.
      if (const std::optional<std::uint64_t> span = detail::table_span_fd(fd)) progress.set_total(*span);
    }
    if (filled < buffer.size()) {
      progress.finish(offset);
      return offset;
    }
    progress.update(offset);
  }
}

// Copies [begin, end) of src into dst at the same offsets, zero blocks left as holes.
void copy_range(int src_fd, int dst_fd, std::uint64_t begin, std::uint64_t end, std::vector<char>& buffer,
                const std::string& src_name, ProgressLine* progress, const std::atomic<bool>* stop, EarlyWriteback& writeback) {
  while (begin < end) {
    throw_if_stopped(stop, src_name);
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - begin));
    const ssize_t got = ::pread(src_fd, buffer.data(), want, static_cast<off_t>(begin));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot read " + src_name);
    }
    if (got == 0) return;  // the file shrank under us: stop at its end
    write_skipping_zeros(dst_fd, buffer.data(), static_cast<std::size_t>(got), begin, "the copy of " + src_name);
    begin += static_cast<std::uint64_t>(got);
    writeback.written_up_to(begin);
    if (progress) progress->update(begin);
  }
}

std::uint64_t file_size(int fd, const std::string& name) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) throw_errno("cannot stat " + name);
  return static_cast<std::uint64_t>(info.st_size);
}

}  // namespace

std::vector<Extent> data_extents(int fd) {
  const std::uint64_t size = file_size(fd, "the image");
  std::vector<Extent> extents;
  std::uint64_t position = 0;
  while (position < size) {
    const off_t data = ::lseek(fd, static_cast<off_t>(position), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      return {Extent{0, size}};   // no SEEK_DATA here: everything counts as data
    }
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) hole = static_cast<off_t>(size);
    const auto begin = static_cast<std::uint64_t>(data);
    const auto end = std::min(static_cast<std::uint64_t>(hole), size);
    if (!extents.empty() && extents.back().offset + extents.back().length == begin) {
      extents.back().length += end - begin;
    } else if (end > begin) {
      extents.push_back(Extent{begin, end - begin});
    }
    position = end;
  }
  return extents;
}

bool is_compressed_image(const std::string& path) {
  UniqueFd fd = open_read(path, InputKind::FileOrBlockDevice, "a disk image");
  Archive reader(archive_read_new());
  if (!reader) throw Error("cannot create a libarchive reader for " + path);
  archive_read_support_filter_all(reader.get());
  archive_read_support_format_raw(reader.get());
  archive_read_support_format_zip(reader.get());
  // Filters are recognized when the reader opens, the format with the first header.
  if (archive_read_open_fd(reader.get(), fd.get(), 64 * 1024) != ARCHIVE_OK) return false;
  const bool filtered = archive_filter_code(reader.get(), 0) != ARCHIVE_FILTER_NONE;
  archive_entry* entry = nullptr;
  if (archive_read_next_header(reader.get(), &entry) < ARCHIVE_WARN) return filtered;
  return filtered || is_zip(reader.get());
}

namespace {

// copy_sparse, telling `progress` (when given) how far into the source it is.
std::vector<Extent> copy_sparse_shown(int src_fd, int dst_fd, const std::string& src_name, ProgressLine* progress,
                                      const std::atomic<bool>* stop = nullptr) {
  if (::ioctl(dst_fd, FICLONE, src_fd) == 0) return data_extents(dst_fd);  // shares blocks, keeps holes
  const std::uint64_t size = file_size(src_fd, src_name);
  if (progress) progress->set_total(size);
  std::vector<char> buffer(kCopyChunk);
  EarlyWriteback writeback(dst_fd);
  std::uint64_t position = 0;
  while (position < size) {
    off_t data = ::lseek(src_fd, static_cast<off_t>(position), SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;
    off_t hole = static_cast<off_t>(size);
    if (data < 0) {
      data = static_cast<off_t>(position);  // no SEEK_DATA support: read everything
    } else {
      hole = ::lseek(src_fd, data, SEEK_HOLE);
      if (hole < 0) hole = static_cast<off_t>(size);
    }
    const std::uint64_t end = std::min(static_cast<std::uint64_t>(hole), size);
    copy_range(src_fd, dst_fd, static_cast<std::uint64_t>(data), end, buffer, src_name, progress, stop, writeback);
    position = end;
  }
  set_size(dst_fd, size, "the copy of " + src_name);
  if (progress) progress->finish(size);
  return data_extents(dst_fd);
}

}  // namespace

std::vector<Extent> copy_sparse(int src_fd, int dst_fd, const std::string& src_name) {
  return copy_sparse_shown(src_fd, dst_fd, src_name, nullptr);
}

namespace {

std::vector<Extent> decompress_stoppable(const std::string& path, int dst_fd, const std::atomic<bool>* stop) {
  UniqueFd fd = open_read(path, InputKind::File, "a compressed image file");
  Archive reader = open_archive(fd.get(), path);
  archive_entry* entry = next_entry(reader.get(), path);
  if (entry == nullptr) throw Error(path + ": the archive is empty", ErrorCode::Corrupt);
  if (is_zip(reader.get())) {
    const std::string member = zip_image_member(fd.get(), path);
    reader = open_archive(fd.get(), path);
    do {
      entry = next_entry(reader.get(), path);
      if (entry == nullptr) throw Error(path + ": " + member + " vanished from the zip archive", ErrorCode::Corrupt);
    } while (!is_image_member(entry) || member != archive_entry_pathname(entry));
  }
  const std::uint64_t size = extract_entry(reader.get(), dst_fd, path, stop);
  set_size(dst_fd, size, "the decompressed copy of " + path);
  return data_extents(dst_fd);
}

}  // namespace

std::vector<Extent> decompress_image(const std::string& path, int dst_fd) { return decompress_stoppable(path, dst_fd, nullptr); }

UniqueFd decompressed_beside(const std::string& path) {
  UniqueFd fd = unnamed_file_beside(path);
  decompress_image(path, fd.get());
  return fd;
}

UniqueFd decompressed_golden(const std::string& path) {
  UniqueFd fd = unnamed_temp_file("decompressing " + path);
  decompress_image(path, fd.get());
  return fd;
}

std::vector<Extent> copy_image(const std::string& path, int dst_fd, const std::atomic<bool>* stop) {
  if (is_compressed_image(path)) return decompress_stoppable(path, dst_fd, stop);
  // A golden is a file: copy_sparse sizes the copy by st_size, which a block device does not have.
  UniqueFd src = open_read(path, InputKind::File, "an image file");
  // A golden of several GiB takes a while to copy where it cannot be reflinked: progress on a terminal.
  ProgressLine progress("copying", "copied", path);
  return copy_sparse_shown(src.get(), dst_fd, path, &progress, stop);
}

BackgroundCopy::BackgroundCopy(std::string path, int dst_fd)
    : copy_(std::async(std::launch::async, [this, path = std::move(path), dst_fd] { return copy_image(path, dst_fd, &stop_); })) {}

BackgroundCopy::~BackgroundCopy() {
  if (!copy_.valid()) return;
  stop_ = true;
  try {
    copy_.get();
  } catch (const Error&) {
    // stopped, or failed: nobody waits for this copy's result (the caller's own error is on its way)
  }
}

std::vector<Extent> BackgroundCopy::wait() { return copy_.get(); }

}  // namespace imprint
