// Byte sources and digests shared by every module.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace imprint {

// A stream of bytes to write into an image (a host file, stdin, or bytes in memory).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Fills up to buffer.size() bytes; returns 0 only at the end of the stream.
  virtual std::size_t read(std::span<char> buffer) = 0;
};

class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
  std::size_t read(std::span<char> buffer) override;

 private:
  std::string_view bytes_;
  std::size_t position_ = 0;
};

// Reads a host file descriptor (not owned) to its end.
class FdSource final : public ByteSource {
 public:
  FdSource(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  std::size_t read(std::span<char> buffer) override;

 private:
  int fd_;
  std::string name_;
};

// Receives bytes read out of an image, chunk by chunk.
using ByteSink = std::function<void(std::string_view chunk)>;

std::string to_hex(std::span<const unsigned char> bytes);
std::string sha256_hex(std::string_view bytes);
// sha256 of a host file, read in chunks (never the whole file in memory).
std::string sha256_file_hex(const std::string& path);

// Text safe for a terminal: C0 controls and DEL as \n, \r, \t or \xHH, C1 controls (U+0080..U+009F)
// and bytes that are not valid UTF-8 as \xHH per byte; everything else (valid UTF-8) unchanged.
// Untrusted bytes (device ids, CSV headers, names inside an image) go through it before they reach
// stderr or a listing, so they can neither split a line nor send escape sequences.
std::string escape_control(std::string_view text);

// Incremental sha256 for streamed data.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view bytes);
  std::string hex_digest();  // finishes the digest

 private:
  void* context_;  // EVP_MD_CTX*
};

}  // namespace imprint
