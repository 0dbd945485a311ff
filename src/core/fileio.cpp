#include "imprint/core/fileio.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <random>
#include <utility>

#include "imprint/core/error.hpp"

namespace imprint {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

UniqueFd::~UniqueFd() { reset(); }

int UniqueFd::release() noexcept {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

namespace {
const char* file_type_name(mode_t mode) {
  if (S_ISFIFO(mode)) return "a pipe (FIFO)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

void check_input_type(const std::string& path, mode_t mode, InputKind kind, std::string_view noun) {
  if (S_ISREG(mode) || (S_ISBLK(mode) && kind == InputKind::FileOrBlockDevice)) return;
  std::string message = path + " is " + file_type_name(mode) + ", not " + std::string(noun);
  if (S_ISFIFO(mode)) message += ": pipes are not supported (inputs must be seekable files; save the stream to a file first)";
  throw Error(message, ErrorCode::Invalid);
}

std::string too_large(const std::string& path, std::uint64_t limit) {
  return path + " is larger than " + format_limit(limit) + ", the limit for this input";
}
}  // namespace

std::string format_limit(std::uint64_t bytes) {
  if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0) return std::to_string(bytes >> 30) + " GiB";
  if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1ull << 10) && bytes % (1ull << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

UniqueFd open_read(const std::string& path, InputKind kind, std::string_view noun) {
  return open_input(path, O_RDONLY, kind, noun);
}

UniqueFd open_input(const std::string& path, int flags, InputKind kind, std::string_view noun) {
  // O_NONBLOCK: opening a FIFO without a writer would otherwise block forever, before any check.
  UniqueFd fd(::open(path.c_str(), flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) throw_errno("cannot open " + path);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw_errno("cannot stat " + path);
  check_input_type(path, info.st_mode, kind, noun);
  // Back to blocking reads (a block device may return EAGAIN otherwise).
  const int status = ::fcntl(fd.get(), F_GETFL);
  if (status < 0 || ::fcntl(fd.get(), F_SETFL, status & ~O_NONBLOCK) != 0) throw_errno("cannot read " + path);
  return fd;
}

std::string read_fd(int fd, const std::string& what, std::uint64_t limit) {
  std::string content;
  char buffer[65536];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot read " + what);
    }
    if (got == 0) break;
    // Checked while reading too: a file may grow, and /proc files report size 0.
    if (content.size() + static_cast<std::size_t>(got) > limit) throw Error(too_large(what, limit), ErrorCode::Invalid);
    content.append(buffer, static_cast<std::size_t>(got));
  }
  return content;
}

std::string read_host_file(const std::string& path, std::uint64_t limit) {
  UniqueFd fd = open_read(path, InputKind::File);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw_errno("cannot stat " + path);
  if (static_cast<std::uint64_t>(info.st_size) > limit) throw Error(too_large(path, limit), ErrorCode::Invalid);
  return read_fd(fd.get(), path, limit);
}

void write_all(int fd, std::string_view bytes, const std::string& what) {
  while (!bytes.empty()) {
    const ssize_t put = ::write(fd, bytes.data(), bytes.size());
    if (put < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write " + what);
    }
    bytes.remove_prefix(static_cast<std::size_t>(put));
  }
}

void pwrite_all(int fd, std::string_view bytes, std::uint64_t offset, const std::string& what) {
  while (!bytes.empty()) {
    const ssize_t put = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (put < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write " + what);
    }
    bytes.remove_prefix(static_cast<std::size_t>(put));
    offset += static_cast<std::uint64_t>(put);
  }
}

void pread_all(int fd, char* out, std::size_t size, std::uint64_t offset, const std::string& what) {
  for (std::size_t done = 0; done < size;) {
    const ssize_t got = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw_errno("cannot read " + what);
    if (got == 0) throw Error("cannot read " + what + ": it ends before byte " + std::to_string(offset + size), ErrorCode::Corrupt);
    done += static_cast<std::size_t>(got);
  }
}

namespace {
std::string random_suffix() {
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device device;
  std::string suffix;
  for (int i = 0; i < 8; ++i) suffix.push_back(alphabet[device() % (sizeof alphabet - 1)]);
  return suffix;
}

void fsync_directory_of(const std::string& path) {
  std::string directory = std::filesystem::path(path).parent_path().string();
  if (directory.empty()) directory = ".";
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
}  // namespace

std::string default_cache_directory() {
  if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache != nullptr && *cache == '/') return std::string(cache) + "/imprint";
  if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') return std::string(home) + "/.cache/imprint";
  return "";
}

void EarlyWriteback::written_up_to(std::uint64_t end) {
  if (end < started_ + window_) return;
  ::sync_file_range(fd_, static_cast<off64_t>(started_), static_cast<off64_t>(end - started_), SYNC_FILE_RANGE_WRITE);
  started_ = end;
}

PendingFile::PendingFile(std::string final_path) : final_path_(std::move(final_path)) {
  const std::filesystem::path final_fs(final_path_);
  const std::string name = final_fs.filename().string();
  if (name.empty()) throw Error("output path " + final_path_ + " names a directory", ErrorCode::Invalid);
  std::string directory = final_fs.parent_path().string();
  if (directory.empty()) directory = ".";
  remove_stale_partials(directory, name);
  // An unnamed file (O_TMPFILE) vanishes by itself if the process dies, even by kill -9; it gets a
  // name only in commit(). Filesystems without O_TMPFILE get a hidden temp name instead.
  fd_ = open_unnamed(directory, "cannot create " + final_path_);
  if (fd_) {
    temp_path_ = fd_path(fd_.get());
    return;
  }
  create_named_temp(directory, name);
}

namespace {
// The pid in the name lets a later run tell a killed run's partial from a live run's.
std::string temp_name(const std::string& directory, const std::string& name) {
  return directory + "/" + partial_prefix(name) + std::to_string(::getpid()) + "-" + random_suffix();
}
}  // namespace

void PendingFile::name_temp(std::string path) {
  named_temp_ = std::move(path);
  signal_slot_ = remove_on_signal(named_temp_);
}

void PendingFile::create_named_temp(const std::string& directory, const std::string& name) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    // Registered before it exists: a signal between open and registration would leave it. The pid
    // in the name keeps the handler off another process's file should O_EXCL fail.
    name_temp(temp_name(directory, name));
    const int fd = ::open(named_temp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      fd_.reset(fd);
      temp_path_ = named_temp_;
      return;
    }
    const int error = errno;
    forget_on_signal(std::exchange(signal_slot_, -1));
    named_temp_.clear();
    if (error != EEXIST) throw_errno("cannot create output beside " + final_path_, error);
  }
  throw Error("cannot create a temporary output beside " + final_path_);
}

PendingFile::PendingFile(PendingFile&& other) noexcept
    : final_path_(std::move(other.final_path_)),
      temp_path_(std::move(other.temp_path_)),
      named_temp_(std::move(other.named_temp_)),
      signal_slot_(other.signal_slot_),
      fd_(std::move(other.fd_)),
      committed_(other.committed_) {
  other.committed_ = true;  // the moved-from object owns nothing to clean up
  other.signal_slot_ = -1;
}

PendingFile::~PendingFile() {
  if (!committed_ && !named_temp_.empty()) ::unlink(named_temp_.c_str());
  forget_on_signal(signal_slot_);
}

void PendingFile::commit() {
  if (::fsync(fd_.get()) != 0) throw_errno("cannot write " + final_path_);
  if (named_temp_.empty()) {
    // Name the unnamed file directly when the final name is free: nothing else ever exists.
    if (::linkat(AT_FDCWD, temp_path_.c_str(), AT_FDCWD, final_path_.c_str(), AT_SYMLINK_FOLLOW) == 0) {
      committed_ = true;
      fd_.reset();
      fsync_directory_of(final_path_);
      return;
    }
    if (errno != EEXIST) throw_errno("cannot create " + final_path_);
    // The final name exists: link under a hidden name, then rename over it (linkat cannot
    // replace). The hidden name exists only between these two calls.
    const std::string directory = std::filesystem::path(final_path_).parent_path().string();
    for (int attempt = 0; named_temp_.empty() && attempt < 16; ++attempt) {
      const std::string candidate =
          temp_name(directory.empty() ? "." : directory, std::filesystem::path(final_path_).filename().string());
      if (::linkat(AT_FDCWD, temp_path_.c_str(), AT_FDCWD, candidate.c_str(), AT_SYMLINK_FOLLOW) == 0) {
        name_temp(candidate);
      } else if (errno != EEXIST) {
        throw_errno("cannot create " + final_path_);
      }
    }
    if (named_temp_.empty()) throw Error("cannot create " + final_path_ + ": no free temporary name");
  }
  if (::rename(named_temp_.c_str(), final_path_.c_str()) != 0) throw_errno("cannot create " + final_path_);
  committed_ = true;
  forget_on_signal(std::exchange(signal_slot_, -1));
  fd_.reset();
  fsync_directory_of(final_path_);
}

void write_file_atomically(const std::string& path, std::string_view bytes, unsigned mode) {
  PendingFile file(path);
  write_all(file.fd(), bytes, path);
  if (::fchmod(file.fd(), mode) != 0) throw_errno("cannot set the mode of " + path);
  file.commit();
}

unsigned parse_octal_mode(std::string_view text, const std::string& what) {
  const auto invalid = [&] {
    return Error(what + ": mode '" + std::string(text) + "' is not an octal mode like \"0644\"", ErrorCode::Invalid);
  };
  if (text.empty() || text.size() > 5) throw invalid();
  unsigned value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, 8);
  if (error != std::errc() || end != text.data() + text.size() || value > 07777) throw invalid();
  return value;
}

std::string format_mode(unsigned mode) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "%04o", mode & 07777);
  return buffer;
}

std::int64_t reproducible_now() {
  if (const char* epoch = std::getenv("SOURCE_DATE_EPOCH"); epoch != nullptr && *epoch != '\0') {
    std::int64_t value = 0;
    const std::string_view text(epoch);
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error == std::errc() && end == text.data() + text.size() && value >= 0) return value;
  }
  return static_cast<std::int64_t>(std::time(nullptr));
}

std::string temp_directory() {
  const char* directory = std::getenv("TMPDIR");
  return directory != nullptr && *directory != '\0' ? directory : "/tmp";
}

std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

UniqueFd open_unnamed(const std::string& directory, const std::string& failure) {
  UniqueFd fd(::open(directory.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  // The errors a filesystem without O_TMPFILE gives (EISDIR: a kernel that predates it).
  if (!fd && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) throw_errno(failure);
  return fd;
}

UniqueFd unnamed_temp_file(const std::string& purpose) {
  const std::string directory = temp_directory();
  const std::string failure = "cannot create a temp file in " + directory + " for " + purpose;
  if (UniqueFd fd = open_unnamed(directory, failure)) return fd;
  std::string pattern = directory + "/imprint-XXXXXX";
  UniqueFd named(::mkostemp(pattern.data(), O_CLOEXEC));
  if (!named) throw_errno(failure);
  ::unlink(pattern.c_str());  // unnamed from here on
  return named;
}

UniqueFd memory_file(const std::string& name) {
  UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC));
  if (!fd) throw_errno("cannot create a memory file (" + name + ")");
  return fd;
}

UniqueFd unnamed_file_beside(const std::string& path) {
  const std::filesystem::path directory = std::filesystem::absolute(path).parent_path();
  UniqueFd fd(::open(directory.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  return fd ? std::move(fd) : memory_file("imprint-decompressed");
}

std::string path_for_another_process(const std::string& path) {
  if (!path.starts_with("/proc/self/")) return path;
  return "/proc/" + std::to_string(::getpid()) + path.substr(10);
}

}  // namespace imprint
