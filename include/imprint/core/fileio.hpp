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

// Host inputs are read whole or streamed: a FIFO would block open() or read() forever, a character
// device (/dev/zero) never ends, and a pipe cannot be measured or seeked. So every input is opened
// without blocking and refused unless it is a regular file (or, where a command reads disks, a
// block device): Error(Invalid) "PATH is a pipe (FIFO), not a regular file: ...".
// `noun` is what the input should have been ("a regular file", "a disk image").
enum class InputKind { File, FileOrBlockDevice };
UniqueFd open_read(const std::string& path, InputKind kind = InputKind::FileOrBlockDevice,
                   std::string_view noun = "a regular file");
// The same with other open(2) flags (O_RDWR for an image edited in place).
UniqueFd open_input(const std::string& path, int flags, InputKind kind, std::string_view noun);

// Size limits for host inputs read into memory (Error(Invalid) naming the file and the limit).
inline constexpr std::uint64_t kSmallInputLimit = 1 << 20;        // keys, certificates, PFX, values, profiles
inline constexpr std::uint64_t kListInputLimit = 256ull << 20;    // device lists, manifests, bmaps (grow with a fleet)
// source: files are held in memory until written, and the plan is built before the image is open:
// this guards memory only. Their real limit, the size of the partition they go to, is checked once
// the image is open, before anything is written (check_plan_against_image).
inline constexpr std::uint64_t kSourceInputLimit = 1ull << 30;
// "1 MiB", "256 MiB"
std::string format_limit(std::uint64_t bytes);

// Reads a whole regular host file of at most `limit` bytes; throws Error naming the path.
std::string read_host_file(const std::string& path, std::uint64_t limit = kSmallInputLimit);
// Reads an open descriptor (standard input: may be a pipe) to its end, at most `limit` bytes.
std::string read_fd(int fd, const std::string& what, std::uint64_t limit);
// Writes all bytes to fd; throws Error naming `what`.
void write_all(int fd, std::string_view bytes, const std::string& what);
// pwrite all bytes at offset; throws Error naming `what`.
void pwrite_all(int fd, std::string_view bytes, std::uint64_t offset, const std::string& what);
// pread exactly size bytes at offset; throws Error naming `what` (Corrupt when the file ends first).
void pread_all(int fd, char* out, std::size_t size, std::uint64_t offset, const std::string& what);

// $TMPDIR, else /tmp: where scratch files and directories go.
std::string temp_directory();
// "/proc/self/fd/N": a path for an open descriptor, for libraries that take paths.
std::string fd_path(int fd);
// An unnamed file (O_TMPFILE) in `directory`: it never has a name and vanishes with the process,
// even on kill -9. An empty UniqueFd when that filesystem has no O_TMPFILE (vfat, NFS, ...), so the
// caller picks its fallback; Error "FAILURE: <strerror>" for any other error.
UniqueFd open_unnamed(const std::string& directory, const std::string& failure);
// An unnamed scratch file in temp_directory() for bytes that hold no device's secrets (a decompressed
// golden); where that filesystem has no O_TMPFILE, a named one unlinked at once. Errors say
// "cannot create a temp file in DIR for PURPOSE".
UniqueFd unnamed_temp_file(const std::string& purpose);
// An unnamed file for bytes that may hold a device's secrets (a stamped image decompressed), never in
// $TMPDIR: beside `path`, the file they come from, which holds them already (O_TMPFILE in its
// directory); where that directory takes none (read-only, no O_TMPFILE), a memfd: memory, swappable
// like tmpfs. Either vanishes with the process, kill -9 included.
UniqueFd unnamed_file_beside(const std::string& path);
// A memfd called `name` (as /proc/PID/fd shows it): bytes kept off every disk.
UniqueFd memory_file(const std::string& name);

// A path another process (qemu, e2fsck) can open for the same file: "/proc/self/..." names our own
// descriptors, so it becomes "/proc/<our pid>/..."; any other path is returned as it is.
std::string path_for_another_process(const std::string& path);

// Where imprint keeps what outlives a run (the golden cache, the TCG note): $XDG_CACHE_HOME/imprint,
// else $HOME/.cache/imprint; "" when neither is set (nothing is kept).
std::string default_cache_directory();

// Starts the kernel's writeback of what a writer has put in a file so far, a window at a time
// (sync_file_range(SYNC_FILE_RANGE_WRITE): asynchronous), so the disk writes while the writer makes the
// rest and the final fsync finds little left. With plenty of RAM the kernel otherwise holds gigabytes
// of dirty pages until that fsync, and producing the bytes and flushing them run one after the other.
// Errors are left to the fsync (a filesystem without sync_file_range just flushes at the end).
class EarlyWriteback {
 public:
  explicit EarlyWriteback(int fd, std::uint64_t window = 16ull << 20) : fd_(fd), window_(window) {}
  // Bytes before `end` are written (writers that go forward: offsets only grow).
  void written_up_to(std::uint64_t end);

 private:
  int fd_;
  std::uint64_t window_;
  std::uint64_t started_ = 0;  // writeback started for [0, started_)
};

// An output file created 0600 in the directory of its final path, unnamed (O_TMPFILE) where the
// filesystem allows, else under a hidden temp name (".NAME.imprint-PID-XXXXXXXX"). commit() fsyncs,
// gives it the final name (rename) and fsyncs the directory. Until then nothing exists under the
// final name; an unnamed file vanishes even on kill -9. A named one is removed by the destructor and
// on SIGINT/SIGTERM/SIGHUP (remove_on_signal); after a kill -9 it stays until the next PendingFile
// for the same name, which removes partials whose PID is dead (remove_stale_partials).
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
  void name_temp(std::string path);

  std::string named_temp_;  // the hidden name, once the file has one
  int signal_slot_ = -1;    // its remove_on_signal registration
  UniqueFd fd_;
  bool committed_ = false;
};

// Registers a path to unlink if SIGINT, SIGTERM or SIGHUP ends the process. The handler (installed
// on first use, unless the signal is ignored) then passes the signal on to the handler installed
// before it, or re-raises it with the default action. Returns a slot for forget_on_signal (-1 when
// the table is full).
int remove_on_signal(const std::string& path);
void forget_on_signal(int slot);
// ".NAME.imprint-": how PendingFile's hidden temp names for output NAME start (then "PID-XXXXXXXX").
std::string partial_prefix(const std::string& name);
// Removes DIRECTORY/.NAME.imprint-PID-XXXXXXXX files whose PID is no longer running (partials of
// killed runs); never another live process's, nor anything not matching that exact pattern.
void remove_stale_partials(const std::string& directory, const std::string& name);

// Writes bytes to path atomically (PendingFile), mode 0600 unless told otherwise.
void write_file_atomically(const std::string& path, std::string_view bytes, unsigned mode = 0600);

// Parses an octal mode string ("600", "0600", "0755", "4755"); throws Error(Invalid) naming `what`.
unsigned parse_octal_mode(std::string_view text, const std::string& what);
// "0600"
std::string format_mode(unsigned mode);

// SOURCE_DATE_EPOCH when set and valid, else the current time.
std::int64_t reproducible_now();

}  // namespace imprint
