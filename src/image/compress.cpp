// Compressing images through libarchive (batch --compress): a single-member raw stream, gzip, xz or
// zstd, the image's holes fed as zeros. Its decompressing twin is in copy.cpp.
#include <archive.h>
#include <archive_entry.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "imprint/image/copy.hpp"
#include "imprint/core/error.hpp"

namespace imprint {

namespace {

constexpr std::size_t kChunk = 4 * 1024 * 1024;

struct ArchiveWriterDeleter {
  void operator()(archive* writer) const { archive_write_free(writer); }
};

void archive_check(archive* writer, int status, const std::string& name) {
  if (status < ARCHIVE_WARN) {
    const char* message = archive_error_string(writer);
    throw Error("cannot compress " + name + ": " + (message ? message : "libarchive error"));
  }
}

void archive_write_all(archive* writer, const char* data, std::size_t size, const std::string& name) {
  while (size > 0) {
    const la_ssize_t put = archive_write_data(writer, data, size);
    if (put <= 0) archive_check(writer, ARCHIVE_FATAL, name);
    data += put;
    size -= static_cast<std::size_t>(put);
  }
}

}  // namespace

Compression parse_compression(const std::string& text) {
  if (text == "none" || text.empty()) return Compression::None;
  if (text == "gz" || text == "gzip") return Compression::Gzip;
  if (text == "xz") return Compression::Xz;
  if (text == "zst" || text == "zstd") return Compression::Zstd;
  throw Error("--compress " + text + ": expected none, gz, xz or zst", ErrorCode::Invalid);
}

std::string compression_suffix(Compression compression) {
  switch (compression) {
    case Compression::None: return "";
    case Compression::Gzip: return ".gz";
    case Compression::Xz: return ".xz";
    case Compression::Zstd: return ".zst";
  }
  return "";
}

void write_compressed(int src_fd, std::uint64_t size, const std::vector<Extent>& extents, int dst_fd,
                      Compression compression, unsigned threads, const std::string& name) {
  std::unique_ptr<archive, ArchiveWriterDeleter> owner(archive_write_new());
  archive* writer = owner.get();
  if (writer == nullptr) throw Error("cannot create a libarchive writer for " + name);
  archive_check(writer, archive_write_set_format_raw(writer), name);
  const std::string thread_count = std::to_string(std::max(1u, threads));
  switch (compression) {
    case Compression::Gzip:
      archive_check(writer, archive_write_add_filter_gzip(writer), name);
      archive_write_set_filter_option(writer, "gzip", "timestamp", nullptr);  // reproducible output
      break;
    case Compression::Xz:
      archive_check(writer, archive_write_add_filter_xz(writer), name);
      archive_write_set_filter_option(writer, "xz", "threads", thread_count.c_str());  // ARCHIVE_WARN where unsupported
      break;
    case Compression::Zstd:
      archive_check(writer, archive_write_add_filter_zstd(writer), name);
      archive_write_set_filter_option(writer, "zstd", "threads", thread_count.c_str());
      break;
    case Compression::None:
      throw Error("write_compressed needs a compression", ErrorCode::Invalid);
  }
  archive_write_set_bytes_in_last_block(writer, 1);  // no zero padding after the compressed stream
  archive_check(writer, archive_write_open_fd(writer, dst_fd), name);
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname(entry.get(), "image.img");
  archive_entry_set_filetype(entry.get(), AE_IFREG);
  archive_entry_set_perm(entry.get(), 0600);
  archive_entry_set_size(entry.get(), static_cast<la_int64_t>(size));
  archive_check(writer, archive_write_header(writer, entry.get()), name);

  static const std::string zeros(kChunk, '\0');
  std::vector<char> buffer(kChunk);
  std::uint64_t position = 0;
  const auto write_zeros = [&](std::uint64_t length) {
    while (length > 0) {
      const auto part = static_cast<std::size_t>(std::min<std::uint64_t>(length, zeros.size()));
      archive_write_all(writer, zeros.data(), part, name);
      length -= part;
    }
  };
  for (const Extent& extent : extents) {
    const std::uint64_t begin = std::max(extent.offset, position);
    const std::uint64_t end = std::min(extent.offset + extent.length, size);
    if (end <= begin) continue;
    write_zeros(begin - position);
    for (std::uint64_t at = begin; at < end;) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - at));
      const ssize_t got = ::pread(src_fd, buffer.data(), want, static_cast<off_t>(at));
      if (got <= 0) {
        if (got < 0 && errno == EINTR) continue;
        throw_errno("cannot read the image for " + name);
      }
      archive_write_all(writer, buffer.data(), static_cast<std::size_t>(got), name);
      at += static_cast<std::uint64_t>(got);
    }
    position = end;
  }
  write_zeros(size - position);
  archive_check(writer, archive_write_close(writer), name);
}

}  // namespace imprint
