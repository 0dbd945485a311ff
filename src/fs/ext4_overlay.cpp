// The in-memory write overlay (see ext4_overlay.hpp). Pending bytes are kept in 1 KiB pages (the
// smallest ext block size; libext2fs also writes the superblock through write_byte), keyed by
// their offset inside the filesystem.
#include "ext4_overlay.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <new>
#include <string>

namespace imprint::ext4 {

namespace {

constexpr std::uint64_t kPage = 1024;

struct Overlay {
  int fd = -1;
  std::uint64_t offset = 0;  // of the filesystem inside the file
  std::map<std::uint64_t, std::array<char, kPage>> pages;  // page index -> pending bytes
  OverlaySink sink;  // when set, commit hands the pending bytes here instead of writing the file
  OverlaySource source;  // when set, what the file would be read for comes from here
};

thread_local OverlaySource opening_source;  // ScopedOverlaySource's, for sink_open

Overlay& state(io_channel channel) { return *static_cast<Overlay*>(channel->private_data); }

// Reads the file (no overlay); bytes past its end read as zeros, as a sparse tail would.
errcode_t read_file(const Overlay& overlay, std::uint64_t at, std::size_t size, char* data) {
  if (overlay.source) {
    try {
      overlay.source(overlay.offset + at, size, data);
      return 0;
    } catch (...) {
      return EIO;
    }
  }
  std::size_t done = 0;
  while (done < size) {
    const ssize_t got = ::pread(overlay.fd, data + done, size - done, static_cast<off_t>(overlay.offset + at + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errno;
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  if (done < size) {
    std::memset(data + done, 0, size - done);
    return EXT2_ET_SHORT_READ;
  }
  return 0;
}

errcode_t read_bytes(io_channel channel, std::uint64_t at, std::size_t size, void* buffer) {
  const Overlay& overlay = state(channel);
  auto* data = static_cast<char*>(buffer);
  errcode_t code = read_file(overlay, at, size, data);
  // Pending pages over the range replace what the file holds.
  for (auto page = overlay.pages.lower_bound(at / kPage); page != overlay.pages.end(); ++page) {
    const std::uint64_t start = page->first * kPage;
    if (start >= at + size) break;
    const std::uint64_t from = std::max(start, at), to = std::min(start + kPage, at + size);
    std::memcpy(data + (from - at), page->second.data() + (from - start), to - from);
  }
  // A short read the overlay covered completely is no error (a write beyond the old end).
  if (code == EXT2_ET_SHORT_READ && overlay.pages.count((at + size - 1) / kPage) != 0) code = 0;
  return code;
}

errcode_t write_bytes(io_channel channel, std::uint64_t at, std::size_t size, const void* buffer) {
  Overlay& overlay = state(channel);
  const auto* data = static_cast<const char*>(buffer);
  try {
    for (std::uint64_t index = at / kPage; index * kPage < at + size; ++index) {
      const std::uint64_t start = index * kPage;
      auto [page, inserted] = overlay.pages.try_emplace(index);
      const std::uint64_t from = std::max(start, at), to = std::min(start + kPage, at + size);
      if (inserted && (from != start || to != start + kPage)) {
        // A partial page starts from the file's bytes.
        const errcode_t code = read_file(overlay, start, kPage, page->second.data());
        if (code != 0 && code != EXT2_ET_SHORT_READ) {
          overlay.pages.erase(page);
          return code;
        }
      }
      std::memcpy(page->second.data() + (from - start), data + (from - at), to - from);
    }
  } catch (const std::bad_alloc&) {
    return EXT2_ET_NO_MEMORY;
  }
  return 0;
}

// A negative count is a size in bytes (libext2fs convention).
std::size_t byte_count(io_channel channel, int count) {
  return count < 0 ? static_cast<std::size_t>(-static_cast<long>(count))
                   : static_cast<std::size_t>(count) * static_cast<std::size_t>(channel->block_size);
}

errcode_t open_channel(const char* name, bool file_writable, io_manager manager, io_channel* result) {
  if (name == nullptr) return EXT2_ET_BAD_DEVICE_NAME;
  auto* channel = static_cast<io_channel>(std::calloc(1, sizeof(struct struct_io_channel)));
  auto* overlay = new (std::nothrow) Overlay;
  char* copy = ::strdup(name);
  if (channel == nullptr || overlay == nullptr || copy == nullptr) {
    std::free(channel);
    delete overlay;
    std::free(copy);
    return EXT2_ET_NO_MEMORY;
  }
  // Opened read-write only to commit; nothing is written before overlay_commit().
  overlay->fd = ::open(name, (file_writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (overlay->fd < 0) {
    const errcode_t code = errno;
    std::free(channel);
    delete overlay;
    std::free(copy);
    return code;
  }
  channel->magic = EXT2_ET_MAGIC_IO_CHANNEL;
  channel->manager = manager;
  channel->name = copy;
  channel->block_size = 1024;
  channel->refcount = 1;
  channel->private_data = overlay;
  *result = channel;
  return 0;
}

errcode_t overlay_open(const char* name, int flags, io_channel* result) {
  return open_channel(name, (flags & IO_FLAG_RW) != 0, overlay_io_manager(), result);
}

// The golden of a stamp without a copy: the file is only read; writes reach a sink at commit.
errcode_t sink_open(const char* name, int, io_channel* result) {
  const errcode_t code = open_channel(name, false, overlay_sink_io_manager(), result);
  if (code == 0) state(*result).source = opening_source;
  return code;
}

errcode_t overlay_close(io_channel channel) {
  if (--channel->refcount > 0) return 0;
  Overlay* overlay = &state(channel);
  ::close(overlay->fd);
  delete overlay;  // pending writes never committed are dropped
  std::free(channel->name);
  std::free(channel);
  return 0;
}

errcode_t overlay_set_blksize(io_channel channel, int size) {
  channel->block_size = size;
  return 0;
}

errcode_t overlay_read_blk64(io_channel channel, unsigned long long block, int count, void* data) {
  return read_bytes(channel, block * static_cast<std::uint64_t>(channel->block_size), byte_count(channel, count), data);
}

errcode_t overlay_write_blk64(io_channel channel, unsigned long long block, int count, const void* data) {
  return write_bytes(channel, block * static_cast<std::uint64_t>(channel->block_size), byte_count(channel, count), data);
}

errcode_t overlay_read_blk(io_channel channel, unsigned long block, int count, void* data) {
  return overlay_read_blk64(channel, block, count, data);
}

errcode_t overlay_write_blk(io_channel channel, unsigned long block, int count, const void* data) {
  return overlay_write_blk64(channel, block, count, data);
}

errcode_t overlay_write_byte(io_channel channel, unsigned long offset, int size, const void* data) {
  return write_bytes(channel, offset, static_cast<std::size_t>(size), data);
}

errcode_t overlay_flush(io_channel) { return 0; }  // nothing reaches the file before commit

errcode_t overlay_set_option(io_channel channel, const char* option, const char* argument) {
  if (std::strcmp(option, "offset") != 0 || argument == nullptr) return EXT2_ET_INVALID_ARGUMENT;
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(argument, &end, 0);
  if (errno != 0 || end == argument || *end != '\0') return EXT2_ET_INVALID_ARGUMENT;
  state(channel).offset = value;
  return 0;
}

struct struct_io_manager make_manager(const char* name, errcode_t (*open)(const char*, int, io_channel*)) {
  struct struct_io_manager result {};
  result.magic = EXT2_ET_MAGIC_IO_MANAGER;
  result.name = name;
  result.open = open;
  result.close = overlay_close;
  result.set_blksize = overlay_set_blksize;
  result.read_blk = overlay_read_blk;
  result.write_blk = overlay_write_blk;
  result.flush = overlay_flush;
  result.write_byte = overlay_write_byte;
  result.set_option = overlay_set_option;
  result.read_blk64 = overlay_read_blk64;
  result.write_blk64 = overlay_write_blk64;
  return result;
}

struct struct_io_manager manager = make_manager("imprint overlay I/O manager", overlay_open);
struct struct_io_manager sink_manager = make_manager("imprint overlay I/O manager (read-only file)", sink_open);

}  // namespace

io_manager overlay_io_manager() { return &manager; }
io_manager overlay_sink_io_manager() { return &sink_manager; }

void overlay_set_sink(io_channel channel, OverlaySink sink) { state(channel).sink = std::move(sink); }

ScopedOverlaySource::ScopedOverlaySource(OverlaySource source) { opening_source = std::move(source); }
ScopedOverlaySource::~ScopedOverlaySource() { opening_source = nullptr; }

errcode_t overlay_commit(io_channel channel) {
  if (channel->manager != &manager && channel->manager != &sink_manager) return EXT2_ET_INVALID_ARGUMENT;
  Overlay& overlay = state(channel);
  if (overlay.sink) {
    // Runs of consecutive pages, each handed over once (the sink may throw imprint::Error).
    std::string run;
    std::uint64_t run_start = 0;
    for (const auto& [index, bytes] : overlay.pages) {
      if (!run.empty() && run_start + run.size() != index * kPage) {
        overlay.sink(overlay.offset + run_start, run);
        run.clear();
      }
      if (run.empty()) run_start = index * kPage;
      run.append(bytes.data(), bytes.size());
    }
    if (!run.empty()) overlay.sink(overlay.offset + run_start, run);
    // Kept: the file never gets them, so the filesystem still reads as file + writes after the
    // commit (a batch verifies the device's plan on the flushed view). A later commit hands them
    // over again, which the sink takes as the same bytes.
    return 0;
  }
  if (channel->manager != &manager) return EBADF;  // a read-only file and nowhere to put the writes
  // Runs of consecutive pages go out in one pwrite each.
  std::string run;
  std::uint64_t run_start = 0;
  auto write_run = [&]() -> errcode_t {
    std::size_t done = 0;
    while (done < run.size()) {
      const ssize_t put = ::pwrite(overlay.fd, run.data() + done, run.size() - done,
                                   static_cast<off_t>(overlay.offset + run_start + done));
      if (put < 0 && errno == EINTR) continue;
      if (put < 0) return errno;
      done += static_cast<std::size_t>(put);
    }
    run.clear();
    return 0;
  };
  for (const auto& [index, bytes] : overlay.pages) {
    if (!run.empty() && run_start + run.size() != index * kPage) {
      if (const errcode_t code = write_run(); code != 0) return code;
    }
    if (run.empty()) run_start = index * kPage;
    run.append(bytes.data(), bytes.size());
    if (run.size() >= (8u << 20)) {
      if (const errcode_t code = write_run(); code != 0) return code;
    }
  }
  if (const errcode_t code = write_run(); code != 0) return code;
  overlay.pages.clear();
  return 0;
}

}  // namespace imprint::ext4
