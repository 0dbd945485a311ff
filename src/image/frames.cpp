// Framed compression for batches (frames.hpp): libzstd, zlib and liblzma directly, because
// libarchive writes one stream and cannot end a frame where we need it to.
#include "imprint/image/frames.hpp"

#include <lzma.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "imprint/core/error.hpp"
#include "imprint/image/bmap.hpp"

namespace imprint {

namespace {

// Same levels as libarchive's defaults (write_compressed), so framed outputs compress like before.
constexpr int kZstdLevel = 3;
constexpr int kGzipLevel = 6;
constexpr std::uint32_t kXzPreset = 6;

std::string zstd_frame(const char* data, std::size_t size) {
  std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> context(ZSTD_createCCtx(), ZSTD_freeCCtx);
  if (!context) throw Error("cannot create a zstd context");
  ZSTD_CCtx_setParameter(context.get(), ZSTD_c_compressionLevel, kZstdLevel);
  ZSTD_CCtx_setParameter(context.get(), ZSTD_c_checksumFlag, 1);  // zstd -t checks every frame
  std::string out(ZSTD_compressBound(size), '\0');
  const std::size_t written = ZSTD_compress2(context.get(), out.data(), out.size(), data, size);
  if (ZSTD_isError(written)) throw Error(std::string("zstd compression failed: ") + ZSTD_getErrorName(written));
  out.resize(written);
  return out;
}

// One gzip member; zlib's default header has mtime 0, so the bytes are reproducible.
std::string gzip_member(const char* data, std::size_t size) {
  z_stream stream{};
  if (deflateInit2(&stream, kGzipLevel, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw Error("cannot initialise zlib");
  }
  std::string out(deflateBound(&stream, static_cast<uLong>(size)), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
  stream.avail_in = static_cast<uInt>(size);
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int status = deflate(&stream, Z_FINISH);
  const auto written = stream.total_out;
  deflateEnd(&stream);
  if (status != Z_STREAM_END) throw Error("gzip compression failed (zlib status " + std::to_string(status) + ")");
  out.resize(written);
  return out;
}

// One xz stream (CRC64, as xz(1) writes); the dictionary no larger than the frame needs keeps the
// encoder's memory at a fraction of preset 6's.
std::string xz_stream(const char* data, std::size_t size) {
  lzma_options_lzma options{};
  if (lzma_lzma_preset(&options, kXzPreset)) throw Error("liblzma has no preset 6");
  std::uint32_t dictionary = LZMA_DICT_SIZE_MIN;
  while (dictionary < size && dictionary < options.dict_size) dictionary *= 2;
  options.dict_size = std::min(options.dict_size, dictionary);
  lzma_filter filters[] = {{LZMA_FILTER_LZMA2, &options}, {LZMA_VLI_UNKNOWN, nullptr}};
  std::string out(lzma_stream_buffer_bound(size), '\0');
  std::size_t written = 0;
  const lzma_ret status = lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC64, nullptr, reinterpret_cast<const std::uint8_t*>(data),
                                                    size, reinterpret_cast<std::uint8_t*>(out.data()), &written, out.size());
  if (status != LZMA_OK) throw Error("xz compression failed (liblzma status " + std::to_string(status) + ")");
  out.resize(written);
  return out;
}

// The extents (sorted, disjoint) that overlap [begin, end), clipped to it.
std::vector<Extent> clipped(const std::vector<Extent>& extents, std::uint64_t begin, std::uint64_t end) {
  std::vector<Extent> out;
  auto at = std::upper_bound(extents.begin(), extents.end(), begin, [](std::uint64_t value, const Extent& extent) { return value < extent.end(); });
  for (; at != extents.end() && at->offset < end; ++at) {
    const std::uint64_t from = std::max(at->offset, begin);
    const std::uint64_t to = std::min(at->end(), end);
    if (to > from) out.push_back({from, to - from});
  }
  return out;
}

// Reads the image bytes [begin, begin + length) into buffer: the mapped parts from fd, zeros elsewhere.
void read_image_range(int fd, const std::vector<Extent>& extents, std::uint64_t begin, std::uint64_t length,
                      std::vector<char>& buffer, const std::string& name) {
  buffer.assign(length, '\0');
  for (const Extent& part : clipped(extents, begin, begin + length)) {
    pread_all(fd, buffer.data() + (part.offset - begin), part.length, part.offset, "the image for " + name);
  }
}

// Copies length bytes at offset of src to the end of dst: in the kernel where it can, else through memory.
void copy_range(int src_fd, std::uint64_t offset, std::uint64_t length, int dst_fd, const std::string& name) {
  auto in = static_cast<off_t>(offset);
  while (length > 0) {
    const ssize_t put = ::copy_file_range(src_fd, &in, dst_fd, nullptr, length, 0);
    if (put > 0) {
      length -= static_cast<std::uint64_t>(put);
      continue;
    }
    if (put < 0 && errno == EINTR) continue;
    if (put == 0 || errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP) break;
    throw_errno("cannot write " + name);
  }
  std::vector<char> buffer(std::min<std::uint64_t>(length, 1 << 20));
  while (length > 0) {
    const auto part = static_cast<std::size_t>(std::min<std::uint64_t>(length, buffer.size()));
    pread_all(src_fd, buffer.data(), part, static_cast<std::uint64_t>(in), "the compressed base for " + name);
    write_all(dst_fd, std::string_view(buffer.data(), part), name);
    in += static_cast<off_t>(part);
    length -= part;
  }
}

// Appends to a file, starting its writeback as it grows (EarlyWriteback).
class Appender {
 public:
  Appender(int fd, std::string name) : fd_(fd), name_(std::move(name)), writeback_(fd) {}
  void append(std::string_view bytes) {
    write_all(fd_, bytes, name_);
    advanced(bytes.size());
  }
  // `bytes` more were written at the file's position by someone else (copy_file_range).
  void advanced(std::uint64_t bytes) {
    end_ += bytes;
    writeback_.written_up_to(end_);
  }

 private:
  int fd_;
  std::string name_;
  EarlyWriteback writeback_;
  std::uint64_t end_ = 0;
};

// Copies length bytes at offset of src to the end of dst through memory, hashing them on the way.
void copy_and_hash(int src_fd, std::uint64_t offset, std::uint64_t length, Appender& dst, Sha256& digest) {
  std::vector<char> buffer(std::min<std::uint64_t>(length, 1 << 20));
  while (length > 0) {
    const auto part = static_cast<std::size_t>(std::min<std::uint64_t>(length, buffer.size()));
    pread_all(src_fd, buffer.data(), part, offset, "the compressed base");
    digest.update(std::string_view(buffer.data(), part));
    dst.append(std::string_view(buffer.data(), part));
    offset += part;
    length -= part;
  }
}

std::uint64_t frame_count(std::uint64_t size, std::uint64_t frame_size) { return (size + frame_size - 1) / frame_size; }

// Hashes a frame's bytes: `bytes`, or `length` zeros for a frame without data (bytes empty).
void hash_frame(Sha256& digest, const std::vector<char>& bytes, std::uint64_t length) {
  if (bytes.empty()) return hash_zeros(digest, length);
  digest.update(std::string_view(bytes.data(), bytes.size()));
}

// An unnamed file for compressed frames: in `directory` (the outputs' filesystem), else in $TMPDIR.
UniqueFd compressed_file(const std::string& directory, const std::string& name) {
  UniqueFd file = open_unnamed(directory, "cannot create the compressed base for " + name);
  return file ? std::move(file) : unnamed_temp_file("the compressed base of " + name);
}

// Runs work(0..count-1) on up to `threads` threads; the first exception is rethrown after all stop.
void run_parallel(std::size_t count, unsigned threads, const std::function<void(std::size_t)>& work) {
  std::atomic<std::size_t> next{0};
  std::exception_ptr failure;
  std::mutex mutex;
  const auto worker = [&] {
    try {
      for (std::size_t i; (i = next.fetch_add(1)) < count;) work(i);
    } catch (...) {
      std::lock_guard lock(mutex);
      if (!failure) failure = std::current_exception();
      next = count;
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::min<std::size_t>(std::max(1u, threads), count); ++t) pool.emplace_back(worker);
  worker();
  for (auto& thread : pool) thread.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

std::string compress_frame(Compression compression, const char* data, std::size_t size) {
  switch (compression) {
    case Compression::Zstd: return zstd_frame(data, size);
    case Compression::Gzip: return gzip_member(data, size);
    case Compression::Xz: return xz_stream(data, size);
    case Compression::None: break;
  }
  throw Error("compress_frame needs a compression", ErrorCode::Invalid);
}

ChangedRanges changed_ranges_by_comparison(int base_fd, const std::vector<Extent>& base_extents, int device_fd,
                                           const std::vector<Extent>& device_extents, std::uint64_t size,
                                           std::uint64_t granularity) {
  std::vector<Extent> either = base_extents;
  either.insert(either.end(), device_extents.begin(), device_extents.end());
  either = intersect(merged(either), {{0, size}});
  const std::vector<Extent> base_sorted = merged(base_extents);
  const std::vector<Extent> device_sorted = merged(device_extents);
  constexpr std::uint64_t kRead = 1 << 20;  // per read, a multiple of any sane granularity
  std::vector<char> base_bytes, device_bytes;
  std::vector<Extent> changed;
  for (const Extent& range : either) {
    for (std::uint64_t at = range.offset; at < range.end();) {
      const std::uint64_t length = std::min(kRead, range.end() - at);
      read_image_range(base_fd, base_sorted, at, length, base_bytes, "the shared base");
      read_image_range(device_fd, device_sorted, at, length, device_bytes, "the device image");
      for (std::uint64_t block = 0; block < length; block += granularity) {
        const auto part = static_cast<std::size_t>(std::min(granularity, length - block));
        if (std::memcmp(base_bytes.data() + block, device_bytes.data() + block, part) != 0) changed.push_back({at + block, part});
      }
      at += length;
    }
  }
  return ChangedRanges{merged(std::move(changed))};
}

FramedBase FramedBase::build(int base_fd, std::uint64_t size, std::vector<Extent> extents, Compression compression,
                             unsigned threads, const std::string& directory, const std::string& name,
                             std::uint64_t frame_size, Sha256* digest) {
  if (compression == Compression::None || frame_size == 0) throw Error("FramedBase needs a compression and a frame size", ErrorCode::Invalid);
  FramedBase base;
  base.compression_ = compression;
  base.size_ = size;
  base.frame_size_ = frame_size;
  base.extents_ = intersect(merged(std::move(extents)), {{0, size}});
  UniqueFd file = compressed_file(directory, name);

  const std::uint64_t count = frame_count(size, frame_size);
  // Frames without data all compress to the same bytes (per length): compressed once.
  std::map<std::uint64_t, std::string> zero_frames;
  std::vector<std::string> compressed(count);
  std::vector<std::vector<char>> raw(count);  // with digest: a frame's bytes until hashed (at most `window`)
  std::vector<bool> empty(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t begin = i * frame_size;
    const std::uint64_t length = std::min(frame_size, size - begin);
    empty[i] = clipped(base.extents_, begin, begin + length).empty();
    if (empty[i] && !zero_frames.contains(length)) {
      const std::string zeros(length, '\0');
      zero_frames[length] = compress_frame(compression, zeros.data(), zeros.size());
    }
  }
  // Workers take frames in order and hand them to this thread, which writes them in order; at most
  // `window` compressed frames wait in memory.
  const unsigned workers = std::max(1u, threads);
  const std::uint64_t window = 2ull * workers;
  std::atomic<std::uint64_t> next{0};
  std::vector<std::exception_ptr> failures(workers);
  std::uint64_t written_upto = 0;
  std::mutex mutex;
  std::condition_variable ready, drained;
  std::vector<bool> done(count);
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < workers; ++w) {
    pool.emplace_back([&, w] {
      std::vector<char> buffer;
      try {
        for (std::uint64_t i; (i = next.fetch_add(1)) < count;) {
          {
            std::unique_lock lock(mutex);
            drained.wait(lock, [&] { return i < written_upto + window; });
          }
          if (!empty[i]) {
            const std::uint64_t begin = i * frame_size;
            const std::uint64_t length = std::min(frame_size, size - begin);
            read_image_range(base_fd, base.extents_, begin, length, buffer, name);
            std::string frame = compress_frame(compression, buffer.data(), buffer.size());
            std::lock_guard lock(mutex);
            compressed[i] = std::move(frame);
            if (digest) raw[i] = std::move(buffer);
          }
          std::lock_guard lock(mutex);
          done[i] = true;
          ready.notify_all();
        }
      } catch (...) {
        std::lock_guard lock(mutex);
        failures[w] = std::current_exception();
        next = count;  // the others stop taking frames
        ready.notify_all();
      }
    });
  }
  std::uint64_t offset = 0;
  const auto failed = [&] { return std::any_of(failures.begin(), failures.end(), [](const auto& f) { return f != nullptr; }); };
  // Whatever ends the loop, no worker may stay waiting for room in the window.
  const auto release_and_join = [&] {
    {
      std::lock_guard lock(mutex);
      next = count;
      written_upto = count;
      drained.notify_all();
    }
    for (auto& thread : pool) thread.join();
  };
  try {
    for (std::uint64_t i = 0; i < count; ++i) {
      std::string frame;
      std::vector<char> bytes_of_frame;
      {
        std::unique_lock lock(mutex);
        ready.wait(lock, [&] { return done[i] || failed(); });
        if (!done[i]) break;
        frame = std::move(compressed[i]);
        bytes_of_frame = std::move(raw[i]);
      }
      if (digest) hash_frame(*digest, bytes_of_frame, std::min(frame_size, size - i * frame_size));
      const std::string& bytes = empty[i] ? zero_frames.at(std::min(frame_size, size - i * frame_size)) : frame;
      write_all(file.get(), bytes, "the compressed base for " + name);
      base.frames_.push_back({offset, bytes.size(), 0});
      offset += bytes.size();
      std::lock_guard lock(mutex);
      written_upto = i + 1;
      drained.notify_all();
    }
  } catch (...) {
    release_and_join();
    throw;
  }
  release_and_join();
  for (const auto& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
  base.files_.push_back(std::make_shared<const UniqueFd>(std::move(file)));
  return base;
}

FramedBase FramedBase::patched(const FramedBase& base, const ImageReader& read, const ChangedRanges& changed, unsigned threads,
                               const std::string& directory, const std::string& name) {
  FramedBase result = base;  // shares base's files
  const std::vector<Extent> touched = merged(changed.ranges);
  std::vector<std::size_t> redo;
  for (std::size_t i = 0; i < base.frames_.size(); ++i) {
    const std::uint64_t begin = i * base.frame_size_;
    if (!clipped(touched, begin, std::min(begin + base.frame_size_, base.size_)).empty()) redo.push_back(i);
  }
  if (redo.empty()) return result;
  std::vector<std::string> frames(redo.size());
  run_parallel(redo.size(), threads, [&](std::size_t k) {
    const std::uint64_t begin = redo[k] * base.frame_size_;
    std::vector<char> buffer(static_cast<std::size_t>(std::min(base.frame_size_, base.size_ - begin)));
    read(begin, buffer.size(), buffer.data());
    frames[k] = compress_frame(base.compression_, buffer.data(), buffer.size());
  });
  UniqueFd file = compressed_file(directory, name);
  const auto index = static_cast<std::uint32_t>(result.files_.size());
  std::uint64_t offset = 0;
  for (std::size_t k = 0; k < redo.size(); ++k) {
    write_all(file.get(), frames[k], "the compressed base for " + name);
    result.frames_[redo[k]] = FrameSpan{offset, frames[k].size(), index};
    offset += frames[k].size();
  }
  result.files_.push_back(std::make_shared<const UniqueFd>(std::move(file)));
  std::vector<Extent> extents = result.extents_;
  extents.insert(extents.end(), touched.begin(), touched.end());
  result.extents_ = intersect(merged(std::move(extents)), {{0, base.size_}});
  return result;
}

FramedBase FramedBase::adopt(UniqueFd file, Compression compression, std::uint64_t size, std::uint64_t frame_size,
                             std::vector<Extent> extents, std::vector<FrameSpan> frames) {
  if (frames.size() != frame_count(size, frame_size)) throw Error("a framed base needs one frame per " + std::to_string(frame_size) + " bytes", ErrorCode::Invalid);
  FramedBase base;
  base.compression_ = compression;
  base.size_ = size;
  base.frame_size_ = frame_size;
  base.extents_ = std::move(extents);
  base.frames_ = std::move(frames);
  base.files_.push_back(std::make_shared<const UniqueFd>(std::move(file)));
  return base;
}

FrameStats write_framed(const FramedBase& base, int src_fd, const std::vector<Extent>& extents,
                        const ChangedRanges& changed, int dst_fd, const std::string& name) {
  const std::vector<Extent> device_extents = intersect(merged(extents), {{0, base.size()}});
  const ImageReader read = [&](std::uint64_t offset, std::size_t size, char* out) {
    std::fill(out, out + size, '\0');
    for (const Extent& part : clipped(device_extents, offset, offset + size)) {
      pread_all(src_fd, out + (part.offset - offset), part.length, part.offset, "the image for " + name);
    }
  };
  return write_framed(base, read, changed, dst_fd, name);
}

FrameStats write_framed(const FramedBase& base, const ImageReader& read, const ChangedRanges& changed, int dst_fd,
                        const std::string& name, Sha256* digest) {
  FrameStats stats;
  const std::vector<Extent> touched = merged(changed.ranges);
  const auto& frames = base.frames();
  Appender out(dst_fd, name);
  std::vector<char> buffer;
  // Runs of reused frames go out as one copy.
  std::uint64_t run_begin = 0, run_length = 0;
  std::uint32_t run_file = 0;
  const auto flush_run = [&] {
    if (run_length > 0) {
      if (digest) {
        copy_and_hash(base.file_fd(run_file), run_begin, run_length, out, *digest);
      } else {
        copy_range(base.file_fd(run_file), run_begin, run_length, dst_fd, name);
        out.advanced(run_length);
      }
    }
    run_length = 0;
  };
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const std::uint64_t begin = i * base.frame_size();
    const std::uint64_t length = std::min(base.frame_size(), base.size() - begin);
    if (clipped(touched, begin, begin + length).empty()) {
      if (run_length > 0 && (frames[i].file != run_file || frames[i].offset != run_begin + run_length)) flush_run();
      if (run_length == 0) run_begin = frames[i].offset, run_file = frames[i].file;
      run_length += frames[i].length;
      ++stats.reused;
      continue;
    }
    flush_run();
    buffer.resize(length);
    read(begin, length, buffer.data());
    const std::string frame = compress_frame(base.compression(), buffer.data(), buffer.size());
    if (digest) digest->update(frame);
    out.append(frame);
    ++stats.recompressed;
  }
  flush_run();
  return stats;
}

}  // namespace imprint
