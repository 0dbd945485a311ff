// The Filesystem interface: what imprint does to one partition. Backends (ext4 native on libext2fs,
// libguestfs) implement it; they never see profiles, devices or images beyond their partition.
//
// Paths are absolute, normalized partition paths ("/mender/mender-agent.pem"): no "." or ".."
// components, no trailing or doubled slashes (see pathmap.hpp normalize_path). A symbolic link
// inside the filesystem is never followed at any component: stat/remove act on the link itself,
// and any operation that would pass *through* a link throws Error(ErrorCode::Symlink) naming the
// link and its target.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "imprint/core/bytes.hpp"

namespace imprint {

enum class FileType { Regular, Directory, Symlink, Other };

struct FileStat {
  FileType type = FileType::Other;
  unsigned mode = 0;  // permission bits incl. setuid/setgid/sticky (07777), without the type bits
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint64_t size = 0;
  std::int64_t mtime = 0;
  std::uint32_t links = 0;
  std::string link_target;  // for symlinks
};

struct DirEntry {
  std::string name;
  FileStat stat;
};

// Ownership, permissions and time for something new. mtime unset = reproducible_now().
struct Attributes {
  unsigned mode = 0644;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::optional<std::int64_t> mtime;
};

struct FsUsage {
  std::uint64_t block_size = 0;
  std::uint64_t total_bytes = 0;
  std::uint64_t free_bytes = 0;
};

class Filesystem {
 public:
  virtual ~Filesystem() = default;

  // "ext4", "ext3", "vfat", ...
  virtual std::string type() const = 0;
  virtual FsUsage usage() = 0;

  // lstat; std::nullopt when the final component does not exist (a missing parent is nullopt too).
  virtual std::optional<FileStat> stat(const std::string& path) = 0;
  // Entries of a directory, sorted by name, without "." and "..".
  virtual std::vector<DirEntry> list(const std::string& directory) = 0;
  // Streams a regular file's bytes to sink.
  virtual void read(const std::string& path, const ByteSink& sink) = 0;

  // Creates or replaces a regular file. The parent directory must exist. Replacing keeps nothing of
  // the old file (new attributes). Runs of zero blocks become holes. On ENOSPC throws
  // Error(NoSpace) and leaves neither a partial file nor leaked blocks (fsck-clean).
  virtual void write(const std::string& path, ByteSource& content, const Attributes& attributes) = 0;
  // Creates one directory (parent must exist); Error(Exists) when the path exists.
  virtual void mkdir(const std::string& path, const Attributes& attributes) = 0;
  // Creates a symbolic link at path pointing to target (replaces an existing symlink, never a file
  // or directory: Error(Exists)).
  virtual void symlink(const std::string& path, const std::string& target, const Attributes& attributes) = 0;
  virtual void chmod(const std::string& path, unsigned mode) = 0;
  virtual void chown(const std::string& path, std::uint32_t uid, std::uint32_t gid) = 0;
  virtual void set_mtime(const std::string& path, std::int64_t mtime) = 0;
  // Removes a file, a symlink, or a directory (recursive=true for a non-empty one: else NotEmpty).
  virtual void remove(const std::string& path, bool recursive) = 0;

  // Writes all changes out (metadata, bitmaps, superblock). Called once before the image is
  // committed. The destructor of an unflushed writable filesystem is only used on error paths: the
  // native backend then drops every change (the image stays byte-identical); libguestfs may already
  // have written some, so callers delete the whole output.
  virtual void flush() = 0;
};

// mkdir -p: creates every missing directory on the way with attributes; existing directories are
// left as they are; a non-directory on the way is Error(NotDirectory).
void make_directories(Filesystem& filesystem, const std::string& path, const Attributes& attributes);
// Reads a whole (small) file into memory.
std::string read_all(Filesystem& filesystem, const std::string& path);

// For backends: a normalized absolute path's components ("/" has none). Anything else is a bug
// upstream, refused rather than guessed: Error(Invalid) starting with `name` for a relative path,
// an empty, "." or ".." component, or a component longer than 255 bytes (NAME_MAX).
std::vector<std::string> split_path(const std::string& name, const std::string& path);
// "/" + the first count components joined by "/" ("/" for none): the prefix a walk has reached.
std::string join_path(const std::vector<std::string>& components, std::size_t count);

// Filesystems without owners and permission bits (vfat, msdos, exfat): every file reads back
// 0644, every directory 0755, all owned by 0:0, and none holds a symbolic link.
bool keeps_permissions(const std::string& fs_type);
// Why fs_type cannot store this mode and owner ("vfat keeps no owners or permissions: cannot store
// mode 0600 owner 0:0 (only 0644 0:0)"), or "" when it can. Known from the blkid type alone, so
// callers check before a backend (the libguestfs appliance) is started.
std::string unrepresentable_attributes(const std::string& fs_type, unsigned mode, std::uint32_t uid, std::uint32_t gid,
                                       bool directory);

}  // namespace imprint
