// The Filesystem interface on libguestfs. Every path is checked component by component with lstat
// before acting (the daemon's calls would follow symlinks); new files and symlinks are built under a
// temp name in their directory and renamed over the target, so a failure (ENOSPC) leaves the old
// file or nothing. File bytes travel in chunks (pread/pwrite), never whole, never via a host file.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "imprint/core/error.hpp"
#include "imprint/fs/symlink_error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/guestfs/guestfs.hpp"
#include "imprint/core/pathspec.hpp"
#include "api.hpp"

namespace imprint {

namespace {

using Statns = struct guestfs_statns;

constexpr std::size_t kChunkBytes = 1 << 20;  // well under the 4 MiB protocol message limit
constexpr std::size_t kHoleBlock = 4096;      // zero runs of this size are left as holes

struct FreeStrings {
  void operator()(char** list) const noexcept {
    if (list == nullptr) return;
    for (char** item = list; *item != nullptr; ++item) std::free(*item);
    std::free(list);
  }
};
using StringList = std::unique_ptr<char*, FreeStrings>;

// In the appliance EPERM and EOPNOTSUPP mean the filesystem cannot do it (vfat: chown, symlinks).
ErrorCode code_for_errno(int error_number) {
  if (error_number == EPERM || error_number == EOPNOTSUPP) return ErrorCode::Unsupported;
  return error_code_for_errno(error_number);
}

FileType file_type(std::int64_t mode) {
  if (S_ISREG(mode)) return FileType::Regular;
  if (S_ISDIR(mode)) return FileType::Directory;
  if (S_ISLNK(mode)) return FileType::Symlink;
  return FileType::Other;
}

// Everything of a stat but a symlink's target (which takes another call to the appliance).
FileStat to_file_stat(const Statns& raw) {
  FileStat stat;
  stat.type = file_type(raw.st_mode);
  stat.mode = static_cast<unsigned>(raw.st_mode & 07777);
  stat.uid = static_cast<std::uint32_t>(raw.st_uid);
  stat.gid = static_cast<std::uint32_t>(raw.st_gid);
  stat.size = static_cast<std::uint64_t>(raw.st_size);
  stat.mtime = raw.st_mtime_sec;
  stat.links = static_cast<std::uint32_t>(raw.st_nlink);
  return stat;
}

class GuestfsFilesystem final : public Filesystem {
 public:
  explicit GuestfsFilesystem(GuestfsOpenOptions options) : options_(std::move(options)) {}

  std::string type() const override { return options_.fs_type; }
  FsUsage usage() override;
  std::optional<FileStat> stat(const std::string& path) override;
  std::vector<DirEntry> list(const std::string& directory) override;
  void read(const std::string& path, const ByteSink& sink) override;
  void write(const std::string& path, ByteSource& content, const Attributes& attributes) override;
  void mkdir(const std::string& path, const Attributes& attributes) override;
  void symlink(const std::string& path, const std::string& target, const Attributes& attributes) override;
  void chmod(const std::string& path, unsigned mode) override;
  void chown(const std::string& path, std::uint32_t uid, std::uint32_t gid) override;
  void set_mtime(const std::string& path, std::int64_t mtime) override;
  void remove(const std::string& path, bool recursive) override;
  void flush() override;

 private:
  // Where a path's last component lives; stat of the entry when it exists.
  struct Location {
    std::string leaf;  // empty for "/"
    std::optional<Statns> entry;
  };

  std::string at(const std::string& path) const { return options_.name + ": " + path; }
  guestfs_h* g() { return options_.session->handle(); }
  // The path inside the appliance (mounting the partition first).
  std::string guest(const std::string& path, bool for_writing = false);
  [[noreturn]] void fail(const std::string& path, const std::string& what);
  void check(int result, const std::string& path, const std::string& what) {
    if (result == -1) fail(path, what);
  }
  void require_writable(const std::string& path);
  void require_representable(const std::string& path, unsigned mode, std::uint32_t uid, std::uint32_t gid, bool directory);

  std::optional<Statns> lstat(const std::string& path);
  std::string readlink(const std::string& path);
  void walk(const std::vector<std::string>& components, std::size_t count, bool missing_ok, bool& missing);
  std::optional<Location> locate(const std::string& path, bool missing_ok);
  Statns existing(const std::string& path);
  std::string temp_name(const std::string& path);
  void set_attributes(const std::string& path, const Attributes& attributes, bool set_mode, bool directory);
  void fill(const std::string& temp, ByteSource& content, const std::string& path);
  void discard(const std::string& temp) noexcept;

  GuestfsOpenOptions options_;
  unsigned temp_counter_ = 0;
};

std::string GuestfsFilesystem::guest(const std::string& path, bool for_writing) {
  const std::string point = options_.session->mountpoint(options_.drive, options_.partition, options_.fs_type,
                                                         options_.name, for_writing);
  return path == "/" ? point : point + path;
}

void GuestfsFilesystem::fail(const std::string& path, const std::string& what) {
  guestfs_h* handle = g();
  const int error_number = libguestfs().last_errno(handle);
  const ErrorCode code = code_for_errno(error_number);
  if (code == ErrorCode::NoSpace) {
    throw Error(at(path) + ": " + what + ": no space left in the filesystem (" + std::strerror(error_number) + ")", code);
  }
  // The daemon's message names the appliance's mount point; errno says the same more plainly.
  const char* message = libguestfs().last_error(handle);
  const std::string reason = error_number != 0 ? std::strerror(error_number) : (message != nullptr ? message : "failed");
  throw Error(at(path) + ": " + what + ": " + reason, code);
}

void GuestfsFilesystem::require_writable(const std::string& path) {
  if (!options_.writable) throw Error(at(path) + ": the filesystem was opened read-only");
  guest("/", true);  // remount read-write before the first change
}

// FAT has no owners or permission bits: refuse what it cannot keep instead of dropping it.
void GuestfsFilesystem::require_representable(const std::string& path, unsigned mode, std::uint32_t uid,
                                              std::uint32_t gid, bool directory) {
  const std::string problem = unrepresentable_attributes(options_.fs_type, mode, uid, gid, directory);
  if (!problem.empty()) throw Error(at(path) + ": " + problem, ErrorCode::Unsupported);
}

std::optional<Statns> GuestfsFilesystem::lstat(const std::string& path) {
  const std::string inside = guest(path);
  Statns* raw = libguestfs().lstatns(g(), inside.c_str());
  if (raw == nullptr) {
    const int error_number = libguestfs().last_errno(g());
    if (error_number == ENOENT) return std::nullopt;
    fail(path, "cannot stat");
  }
  const Statns copy = *raw;
  libguestfs().free_statns(raw);
  return copy;
}

std::string GuestfsFilesystem::readlink(const std::string& path) {
  char* target = libguestfs().readlink(g(), guest(path).c_str());
  if (target == nullptr) fail(path, "cannot read symlink");
  std::string result(target);
  std::free(target);
  return result;
}

// Checks components [0, count): each must be a directory, never a symlink. Sets missing when one
// does not exist and missing_ok (else throws).
void GuestfsFilesystem::walk(const std::vector<std::string>& components, std::size_t count, bool missing_ok,
                             bool& missing) {
  missing = false;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string prefix = join_path(components, i + 1);
    const std::optional<Statns> found = lstat(prefix);
    if (!found) {
      if (missing_ok) {
        missing = true;
        return;
      }
      throw Error(at(prefix) + ": no such directory", ErrorCode::NotFound);
    }
    if (S_ISLNK(found->st_mode)) {
      // Never followed: the link may point into another partition on the running device.
      throw_symlink(at(prefix), readlink(prefix));
    }
    if (!S_ISDIR(found->st_mode)) throw Error(at(prefix) + " is not a directory", ErrorCode::NotDirectory);
  }
}

std::optional<GuestfsFilesystem::Location> GuestfsFilesystem::locate(const std::string& path, bool missing_ok) {
  const std::vector<std::string> components = split_path(options_.name, path);
  Location location;
  if (components.empty()) {
    location.entry = lstat("/");
    return location;
  }
  bool missing = false;
  walk(components, components.size() - 1, missing_ok, missing);
  if (missing) return std::nullopt;
  location.leaf = components.back();
  location.entry = lstat(path);
  return location;
}

Statns GuestfsFilesystem::existing(const std::string& path) {
  const std::optional<Location> location = locate(path, false);
  if (!location->entry) throw Error(at(path) + ": no such file or directory", ErrorCode::NotFound);
  return *location->entry;
}

FsUsage GuestfsFilesystem::usage() {
  struct guestfs_statvfs* raw = libguestfs().statvfs(g(), guest("/").c_str());
  if (raw == nullptr) fail("/", "cannot read the filesystem usage");
  FsUsage usage;
  usage.block_size = static_cast<std::uint64_t>(raw->bsize);
  usage.total_bytes = static_cast<std::uint64_t>(raw->blocks) * static_cast<std::uint64_t>(raw->frsize);
  usage.free_bytes = static_cast<std::uint64_t>(raw->bfree) * static_cast<std::uint64_t>(raw->frsize);
  libguestfs().free_statvfs(raw);
  return usage;
}

std::optional<FileStat> GuestfsFilesystem::stat(const std::string& path) {
  const std::optional<Location> location = locate(path, true);
  if (!location || !location->entry) return std::nullopt;
  FileStat stat = to_file_stat(*location->entry);
  if (stat.type == FileType::Symlink) stat.link_target = readlink(path);
  return stat;
}

std::vector<DirEntry> GuestfsFilesystem::list(const std::string& directory) {
  const std::vector<std::string> components = split_path(options_.name, directory);
  bool missing = false;
  walk(components, components.size(), false, missing);
  const std::string inside = guest(directory);
  StringList names(libguestfs().ls(g(), inside.c_str()));
  if (!names) fail(directory, "cannot list the directory");
  std::vector<char*> name_pointers;
  for (char** name = names.get(); *name != nullptr; ++name) name_pointers.push_back(*name);
  if (name_pointers.empty()) return {};
  name_pointers.push_back(nullptr);

  // One round trip for every entry's stat and one for the symlink targets.
  struct guestfs_statns_list* stats = libguestfs().lstatnslist(g(), inside.c_str(), name_pointers.data());
  if (stats == nullptr) fail(directory, "cannot stat the directory entries");
  StringList targets(libguestfs().readlinklist(g(), inside.c_str(), name_pointers.data()));
  if (!targets) {
    libguestfs().free_statns_list(stats);
    fail(directory, "cannot read the symlinks of the directory");
  }
  std::vector<DirEntry> entries;
  for (std::size_t i = 0; i < stats->len && name_pointers[i] != nullptr; ++i) {
    const Statns& raw = stats->val[i];
    FileStat stat = to_file_stat(raw);
    if (stat.type == FileType::Symlink) stat.link_target = targets.get()[i];
    entries.push_back(DirEntry{name_pointers[i], std::move(stat)});
  }
  libguestfs().free_statns_list(stats);
  std::sort(entries.begin(), entries.end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  return entries;
}

void GuestfsFilesystem::read(const std::string& path, const ByteSink& sink) {
  const Statns entry = existing(path);
  if (S_ISDIR(entry.st_mode)) throw Error(at(path) + " is a directory", ErrorCode::IsDirectory);
  if (S_ISLNK(entry.st_mode)) throw_symlink(at(path), readlink(path));
  if (!S_ISREG(entry.st_mode)) throw Error(at(path) + " is not a regular file", ErrorCode::Invalid);
  const std::string inside = guest(path);
  std::int64_t offset = 0;
  while (true) {
    std::size_t got = 0;
    char* bytes = libguestfs().pread(g(), inside.c_str(), static_cast<int>(kChunkBytes), offset, &got);
    if (bytes == nullptr) fail(path, "cannot read");
    std::unique_ptr<char, decltype(&std::free)> owned(bytes, &std::free);
    if (got == 0) break;
    sink(std::string_view(bytes, got));
    offset += static_cast<std::int64_t>(got);
  }
}

std::string GuestfsFilesystem::temp_name(const std::string& path) {
  const std::string directory = parent_path(path);
  while (true) {
    const std::string candidate =
        (directory == "/" ? "" : directory) + "/.imprint-" + std::to_string(++temp_counter_) + ".tmp";
    if (!lstat(candidate)) return candidate;
  }
}

void GuestfsFilesystem::discard(const std::string& temp) noexcept {
  try {
    libguestfs().rm_f(g(), guest(temp).c_str());
  } catch (...) {
    // Best effort on an error path: the error being reported matters more.
  }
}

// Owner before mode (chown clears setuid bits), then the times.
void GuestfsFilesystem::set_attributes(const std::string& path, const Attributes& attributes, bool set_mode,
                                       bool directory) {
  const std::string inside = guest(path);
  if (keeps_permissions(options_.fs_type)) {
    check(libguestfs().lchown(g(), static_cast<int>(attributes.uid), static_cast<int>(attributes.gid), inside.c_str()), path,
          "cannot set the owner");
    if (set_mode)
      check(libguestfs().chmod(g(), static_cast<int>(attributes.mode & 07777), inside.c_str()), path, "cannot set the mode");
  } else {
    require_representable(path, attributes.mode, attributes.uid, attributes.gid, directory);
  }
  const std::int64_t mtime = attributes.mtime ? *attributes.mtime : reproducible_now();
  check(libguestfs().utimens(g(), inside.c_str(), mtime, 0, mtime, 0), path, "cannot set the times");
}

// Copies content into the (empty) temp file; zero blocks are skipped and become holes.
void GuestfsFilesystem::fill(const std::string& temp, ByteSource& content, const std::string& path) {
  const std::string inside = guest(temp);
  std::vector<char> buffer(kChunkBytes);
  std::int64_t size = 0;
  while (true) {
    std::size_t filled = 0;
    while (filled < buffer.size()) {
      const std::size_t got = content.read(std::span<char>(buffer.data() + filled, buffer.size() - filled));
      if (got == 0) break;
      filled += got;
    }
    if (filled == 0) break;
    std::size_t position = 0;
    while (position < filled) {
      const std::size_t end = std::min(position + kHoleBlock, filled);
      const bool zero = std::all_of(buffer.begin() + static_cast<std::ptrdiff_t>(position),
                                    buffer.begin() + static_cast<std::ptrdiff_t>(end), [](char c) { return c == 0; });
      if (zero) {
        position = end;
        continue;
      }
      // Extend the run over following non-zero blocks: one pwrite per run.
      std::size_t run_end = end;
      while (run_end < filled) {
        const std::size_t next = std::min(run_end + kHoleBlock, filled);
        if (std::all_of(buffer.begin() + static_cast<std::ptrdiff_t>(run_end),
                        buffer.begin() + static_cast<std::ptrdiff_t>(next), [](char c) { return c == 0; })) {
          break;
        }
        run_end = next;
      }
      std::size_t written = position;
      while (written < run_end) {
        const int n = libguestfs().pwrite(g(), inside.c_str(), buffer.data() + written, run_end - written,
                                          size + static_cast<std::int64_t>(written));
        if (n <= 0) fail(path, "cannot write");
        written += static_cast<std::size_t>(n);
      }
      position = run_end;
    }
    size += static_cast<std::int64_t>(filled);
    if (filled < buffer.size()) break;
  }
  // Trailing zeros (or an all-zero file) are a hole up to the size.
  check(libguestfs().truncate_size(g(), inside.c_str(), size), path, "cannot set the file size");
}

void GuestfsFilesystem::write(const std::string& path, ByteSource& content, const Attributes& attributes) {
  require_writable(path);
  const std::optional<Location> location = locate(path, false);
  if (location->leaf.empty()) throw Error(at(path) + " is a directory", ErrorCode::IsDirectory);
  if (location->entry) {
    const std::int64_t mode = location->entry->st_mode;
    if (S_ISDIR(mode)) throw Error(at(path) + " is a directory", ErrorCode::IsDirectory);
    if (S_ISLNK(mode)) throw_symlink(at(path), readlink(path), "; not replacing it");
    if (!S_ISREG(mode)) throw Error(at(path) + " exists and is not a regular file", ErrorCode::Exists);
  }
  require_representable(path, attributes.mode, attributes.uid, attributes.gid, false);

  const std::string temp = temp_name(path);
  try {
    const std::string inside = guest(temp);
    check(libguestfs().write(g(), inside.c_str(), "", 0), path, "cannot create the file");
    // Private while the bytes go in (they may be a key).
    if (keeps_permissions(options_.fs_type))
      check(libguestfs().chmod(g(), 0600, inside.c_str()), path, "cannot set the mode");
    fill(temp, content, path);
    set_attributes(temp, attributes, true, false);
    check(libguestfs().rename(g(), inside.c_str(), guest(path).c_str()), path, "cannot move the new file in place");
  } catch (...) {
    discard(temp);
    throw;
  }
}

void GuestfsFilesystem::mkdir(const std::string& path, const Attributes& attributes) {
  require_writable(path);
  const std::optional<Location> location = locate(path, false);
  if (location->entry) throw Error(at(path) + " already exists", ErrorCode::Exists);
  require_representable(path, attributes.mode, attributes.uid, attributes.gid, true);
  check(libguestfs().mkdir_mode(g(), guest(path).c_str(), static_cast<int>(attributes.mode & 0777)), path,
        "cannot create directory");
  set_attributes(path, attributes, true, true);
}

void GuestfsFilesystem::symlink(const std::string& path, const std::string& target, const Attributes& attributes) {
  require_writable(path);
  if (target.empty() || target.find('\0') != std::string::npos) {
    throw Error(at(path) + ": invalid symlink target", ErrorCode::Invalid);
  }
  if (target.size() >= 4096) throw Error(at(path) + ": symlink target too long", ErrorCode::Invalid);
  const std::optional<Location> location = locate(path, false);
  if (location->leaf.empty()) throw Error(at(path) + " is a directory", ErrorCode::Exists);
  if (location->entry && !S_ISLNK(location->entry->st_mode)) {
    throw Error(at(path) + " exists and is not a symlink", ErrorCode::Exists);
  }
  if (!keeps_permissions(options_.fs_type)) {
    throw Error(at(path) + ": " + options_.fs_type + " cannot hold symbolic links", ErrorCode::Unsupported);
  }
  // Built beside and renamed over: `ln -sf` would follow an existing link to a directory.
  const std::string temp = temp_name(path);
  try {
    check(libguestfs().ln_s(g(), target.c_str(), guest(temp).c_str()), path, "cannot create symlink");
    set_attributes(temp, attributes, false, false);  // a link's own mode is always 0777
    check(libguestfs().rename(g(), guest(temp).c_str(), guest(path).c_str()), path, "cannot move the new symlink in place");
  } catch (...) {
    discard(temp);
    throw;
  }
}

void GuestfsFilesystem::chmod(const std::string& path, unsigned mode) {
  require_writable(path);
  const Statns entry = existing(path);
  if (S_ISLNK(entry.st_mode)) {
    // chmod(2) follows links; a link's own mode means nothing on Linux.
    throw_symlink(at(path), readlink(path), "; not changing its target's mode");
  }
  if (!keeps_permissions(options_.fs_type)) {
    require_representable(path, mode, 0, 0, S_ISDIR(entry.st_mode));
    return;
  }
  check(libguestfs().chmod(g(), static_cast<int>(mode & 07777), guest(path).c_str()), path, "cannot set the mode");
}

void GuestfsFilesystem::chown(const std::string& path, std::uint32_t uid, std::uint32_t gid) {
  require_writable(path);
  const Statns entry = existing(path);
  if (!keeps_permissions(options_.fs_type)) {
    require_representable(path, S_ISDIR(entry.st_mode) ? 0755 : 0644, uid, gid, S_ISDIR(entry.st_mode));
    return;
  }
  check(libguestfs().lchown(g(), static_cast<int>(uid), static_cast<int>(gid), guest(path).c_str()), path,
        "cannot set the owner");
}

void GuestfsFilesystem::set_mtime(const std::string& path, std::int64_t mtime) {
  require_writable(path);
  existing(path);
  check(libguestfs().utimens(g(), guest(path).c_str(), mtime, 0, mtime, 0), path, "cannot set the times");
}

void GuestfsFilesystem::remove(const std::string& path, bool recursive) {
  require_writable(path);
  const std::optional<Location> location = locate(path, false);
  if (location->leaf.empty()) throw Error(at(path) + ": refusing to remove the root directory", ErrorCode::Invalid);
  if (!location->entry) throw Error(at(path) + ": no such file or directory", ErrorCode::NotFound);
  const std::string inside = guest(path);
  if (!S_ISDIR(location->entry->st_mode)) {
    check(libguestfs().rm(g(), inside.c_str()), path, "cannot remove");
  } else if (recursive) {
    // rm -rf removes links inside the tree, never what they point to.
    check(libguestfs().rm_rf(g(), inside.c_str()), path, "cannot remove the directory");
  } else {
    if (libguestfs().rmdir(g(), inside.c_str()) == -1) {
      if (libguestfs().last_errno(g()) == ENOTEMPTY || libguestfs().last_errno(g()) == EEXIST) {
        throw Error(at(path) + ": directory not empty", ErrorCode::NotEmpty);
      }
      fail(path, "cannot remove the directory");
    }
  }
}

// The session writes everything out (sync, unmount, shutdown) when the image is flushed.
void GuestfsFilesystem::flush() {}

}  // namespace

bool guestfs_supports(const std::string& fs_type) {
  static const char* const kTypes[] = {"ext2", "ext3", "ext4", "vfat", "msdos", "xfs", "btrfs"};
  return std::find(std::begin(kTypes), std::end(kTypes), fs_type) != std::end(kTypes);
}

std::unique_ptr<Filesystem> open_guestfs(const GuestfsOpenOptions& options) {
  if (!options.session) throw Error(options.name + ": no libguestfs session", ErrorCode::Invalid);
  if (!guestfs_supports(options.fs_type)) {
    throw Error(options.fs_type + " on " + options.name + " is not supported by the libguestfs backend",
                ErrorCode::Unsupported);
  }
  return std::make_unique<GuestfsFilesystem>(options);
}

}  // namespace imprint
