// Host file helpers: owned descriptors, whole-file reads, and output files that appear under their
// final name only when complete (temp name in the same directory, fsync, rename).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace imprint {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept;
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// Opens a host file read-only; throws Error naming the path.
UniqueFd open_read(const std::string& path);
// Reads a whole (small) host file; throws Error naming the path.
std::string read_host_file(const std::string& path);
// Writes all bytes to fd; throws Error naming `what`.
void write_all(int fd, std::string_view bytes, const std::string& what);
// pwrite all bytes at offset; throws Error naming `what`.
void pwrite_all(int fd, std::string_view bytes, std::uint64_t offset, const std::string& what);

// An output file created 0600 in the directory of its final path, unnamed (O_TMPFILE) where the
// filesystem allows, else under a hidden temp name (".NAME.imprint-XXXXXX"). commit() fsyncs,
// gives it the final name (rename) and fsyncs the directory. Until then nothing exists under the
// final name; the destructor removes a named temp file, and an unnamed one vanishes even on kill -9.
class PendingFile {
 public:
  explicit PendingFile(std::string final_path);
  PendingFile(PendingFile&&) noexcept;
  PendingFile& operator=(PendingFile&&) = delete;
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;
  ~PendingFile();

  int fd() const noexcept { return fd_.get(); }
  // A path that opens the pending file (/proc/self/fd/N for an unnamed one).
  const std::string& temp_path() const noexcept { return temp_path_; }
  const std::string& final_path() const noexcept { return final_path_; }
  void commit();

 private:
  void create_named_temp(const std::string& directory, const std::string& name);

  std::string final_path_;
  std::string temp_path_;
  std::string named_temp_;  // the hidden name, once the file has one
  UniqueFd fd_;
  bool committed_ = false;
};

// Writes bytes to path atomically (PendingFile), mode 0600 unless told otherwise.
void write_file_atomically(const std::string& path, std::string_view bytes, unsigned mode = 0600);

// Parses an octal mode string ("600", "0600", "0755", "4755"); throws Error(Invalid) naming `what`.
unsigned parse_octal_mode(std::string_view text, const std::string& what);
// "0600"
std::string format_mode(unsigned mode);

// SOURCE_DATE_EPOCH when set and valid, else the current time.
std::int64_t reproducible_now();

}  // namespace imprint
