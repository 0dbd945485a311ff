// The native ext2/3/4 backend on libext2fs. The filesystem is opened in place inside the image at
// the partition's byte offset (unix io manager, io option "offset=N"). New files follow e2fsprogs'
// misc/create_inode.c; removal follows fuse2fs (unlink, drop a link, free blocks and inode at 0).
// Every change goes through the library, which keeps bitmaps, counters and checksums consistent.
// A writable filesystem is checked before the library trusts it (ext4_scan.cpp) and written through
// an in-memory overlay (ext4_overlay.cpp) that reaches the image only when flush() succeeds.
#include "imprint/fs/ext4.hpp"

#include <ext2fs/ext2fs.h>
extern "C" {  // com_err.h has no C++ linkage guard
#include <et/com_err.h>
}
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <utility>
#include <vector>

#include "imprint/core/error.hpp"
#include "imprint/fs/symlink_error.hpp"
#include "imprint/core/fileio.hpp"
#include "ext4_overlay.hpp"
#include "ext4_scan.hpp"

namespace imprint {

namespace {

constexpr std::size_t kChunkBytes = 1 << 20;  // streaming unit for reads and writes

std::atomic<bool> default_allow_dirty{false};

// Clean scans shared by copies of one golden (Ext4OpenOptions::scan_key). The entry's mutex is held
// through a scan, so devices stamped in parallel wait for the first verdict instead of all scanning.
struct SharedScan {
  std::mutex mutex;
  bool clean = false;
};

std::shared_ptr<SharedScan> shared_scan(const std::string& key) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<SharedScan>> scans;
  const std::lock_guard<std::mutex> lock(mutex);
  std::shared_ptr<SharedScan>& entry = scans[key];
  if (!entry) entry = std::make_shared<SharedScan>();
  return entry;
}

std::atomic<unsigned> scans_run{0}, scans_reused{0};
std::atomic<std::int64_t> scan_nanoseconds{0};

std::string library_message(errcode_t code) { return error_message(code); }

// The ErrorCode a libext2fs error code stands for.
ErrorCode code_for(errcode_t code) {
  switch (code) {
    case EXT2_ET_BLOCK_ALLOC_FAIL:
    case EXT2_ET_INODE_ALLOC_FAIL:
    case EXT2_ET_DIR_NO_SPACE:
    case EXT2_ET_DIR_NO_SPACE_FOR_CSUM:
    case EXT2_ET_TOOSMALL:
    case EXT2_ET_EA_NO_SPACE:
    case ENOSPC:
      return ErrorCode::NoSpace;
    case EXT2_ET_FILE_NOT_FOUND:
    case ENOENT:
      return ErrorCode::NotFound;
    case EXT2_ET_FILE_EXISTS:
    case EXT2_ET_DIR_EXISTS:
      return ErrorCode::Exists;
    case EXT2_ET_NO_DIRECTORY:
      return ErrorCode::NotDirectory;
    case EXT2_ET_FILE_TOO_BIG:
      return ErrorCode::NoSpace;
    case EXT2_ET_INVALID_ARGUMENT:
      return ErrorCode::Invalid;
    case EXT2_ET_BAD_MAGIC:
    case EXT2_ET_SB_CSUM_INVALID:
    case EXT2_ET_BAD_DESC_SIZE:
    case EXT2_ET_GDESC_READ:
    case EXT2_ET_UNKNOWN_CSUM:
    case EXT2_ET_EXT_ATTR_CSUM_INVALID:
    case EXT2_ET_GDESC_BAD_BLOCK_MAP:
    case EXT2_ET_GDESC_BAD_INODE_MAP:
    case EXT2_ET_GDESC_BAD_INODE_TABLE:
    case EXT2_ET_CORRUPT_SUPERBLOCK:
    case EXT2_ET_SHORT_READ:
    case EXT2_ET_INODE_CSUM_INVALID:
    case EXT2_ET_DIR_CSUM_INVALID:
    case EXT2_ET_EXTENT_CSUM_INVALID:
    case EXT2_ET_BLOCK_BITMAP_CSUM_INVALID:
    case EXT2_ET_INODE_BITMAP_CSUM_INVALID:
    case EXT2_ET_DIR_CORRUPTED:
    case EXT2_ET_EXTENT_HEADER_BAD:
      return ErrorCode::Corrupt;
    case EXT2_ET_UNSUPP_FEATURE:
    case EXT2_ET_RO_UNSUPP_FEATURE:
      return ErrorCode::Unsupported;
    default:
      return ErrorCode::Generic;
  }
}

std::string hex(std::uint32_t value) {
  std::ostringstream out;
  out << "0x" << std::hex << value;
  return out.str();
}

// ext4 stores seconds as a signed 32-bit field plus two "epoch" bits in the large inode's *_extra.
std::uint32_t time_low(std::int64_t seconds) { return static_cast<std::uint32_t>(seconds); }
std::uint32_t time_epoch(std::int64_t seconds) {
  const std::int64_t low = static_cast<std::int32_t>(static_cast<std::uint32_t>(seconds));
  return static_cast<std::uint32_t>((seconds - low) >> 32) & EXT4_EPOCH_MASK;
}

FileType file_type(std::uint16_t mode) {
  if (LINUX_S_ISREG(mode)) return FileType::Regular;
  if (LINUX_S_ISDIR(mode)) return FileType::Directory;
  if (LINUX_S_ISLNK(mode)) return FileType::Symlink;
  return FileType::Other;
}

struct FsCloser {
  void operator()(ext2_filsys fs) const noexcept {
    if (fs != nullptr) ext2fs_close_free(&fs);
  }
};
using FsHandle = std::unique_ptr<struct struct_ext2_filsys, FsCloser>;

class Ext4Filesystem final : public Filesystem {
 public:
  Ext4Filesystem(FsHandle fs, std::string name, bool writable, std::unique_ptr<ext4::Scanner> scanner, bool allow_dirty,
                 std::string scan_key)
      : fs_(std::move(fs)), name_(std::move(name)), writable_(writable), scanner_(std::move(scanner)),
        allow_dirty_(allow_dirty), scan_key_(std::move(scan_key)) {}

  std::string type() const override;
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
  // Where a path's last component lives: its parent directory and name (empty name for "/").
  struct Location {
    ext2_ino_t parent = EXT2_ROOT_INO;
    std::string leaf;
    std::optional<ext2_ino_t> ino;  // the entry, when it exists
  };

  ext2_filsys fs() const { return fs_.get(); }
  std::string at(const std::string& path) const { return name_ + ": " + path; }
  [[noreturn]] void fail(const std::string& path, const std::string& what, errcode_t code) const;
  void check(errcode_t code, const std::string& path, const std::string& what) const {
    if (code != 0) fail(path, what, code);
  }
  // Every changing operation passes here first: it scans the filesystem before its first change
  // and marks it as modified.
  void require_writable(const std::string& path);
  void scan_once();
  void run_scan();

  ext2_inode_large read_inode(ext2_ino_t ino, const std::string& path) const;
  void write_inode(ext2_ino_t ino, ext2_inode_large& inode, const std::string& path);
  // The entry `name` names in directory, compared as the filesystem compares names (casefold
  // directories ignore case); stored gets the entry's own spelling.
  std::optional<ext2_ino_t> lookup(ext2_ino_t directory, const std::string& name, const std::string& path,
                                   std::string* stored = nullptr) const;
  std::optional<ext2_ino_t> lookup_casefold(ext2_ino_t directory, const std::string& name, const std::string& path,
                                            std::string* stored) const;
  std::string link_target(ext2_ino_t ino, ext2_inode_large& inode, const std::string& path) const;
  // best_effort: a symlink whose target cannot be read still gets a stat (empty link_target).
  FileStat stat_of(ext2_ino_t ino, const std::string& path, bool best_effort = false) const;
  // Walks components [0, count) from the root; each must be a directory (never a symlink).
  // Returns nullopt when one is missing and missing_ok, else throws.
  std::optional<ext2_ino_t> walk(const std::vector<std::string>& components, std::size_t count, bool missing_ok) const;
  Location locate(const std::string& path, bool missing_ok) const;
  ext2_ino_t existing(const std::string& path) const;

  void set_attributes(ext2_ino_t ino, const Attributes& attributes, bool set_mode, const std::string& path);
  ext2_ino_t new_file_inode(ext2_ino_t parent, unsigned mode, const std::string& path);
  void fill(ext2_ino_t ino, ByteSource& content, const std::string& path);
  void link(ext2_ino_t parent, const std::string& leaf, ext2_ino_t ino, int file_type, const std::string& path);
  void swap_entry(ext2_ino_t parent, const std::string& leaf, ext2_ino_t old_ino, ext2_ino_t new_ino,
                  const std::string& path);
  errcode_t release_blocks(ext2_ino_t ino, ext2_inode_large& inode) noexcept;
  void discard(ext2_ino_t ino) noexcept;
  void drop_link(ext2_ino_t ino, const std::string& path);
  std::vector<std::pair<std::string, ext2_ino_t>> entries(ext2_ino_t directory, const std::string& path) const;
  void remove_entry(ext2_ino_t parent, const std::string& leaf, ext2_ino_t ino, bool recursive, const std::string& path);

  FsHandle fs_;
  std::string name_;
  bool writable_;
  bool modified_ = false;  // untouched filesystems are not flushed: their bytes stay identical
  std::unique_ptr<ext4::Scanner> scanner_;  // until the first change (writable only)
  bool allow_dirty_ = false;
  std::string scan_key_;  // a clean scan under this key is shared (Ext4OpenOptions::scan_key)
  bool dirty_allowed_ = false;  // the scan found damage and --allow-dirty fenced it off
  std::string refusal_;   // the scan's verdict, repeated for every later change
};

// One line: the partition, the first problem and what to do about it.
std::string damaged(const std::string& name, const std::string& problem, bool complete, bool allow_dirty) {
  std::string message = name + ": the filesystem is damaged: " + problem + "; run e2fsck -f on a copy";
  if (!complete && allow_dirty) message += " (--allow-dirty cannot help: the scan cannot tell which blocks are in use)";
  if (complete && !allow_dirty) message += ", or pass --allow-dirty to write only where the scan proves it safe";
  return message;
}

void Ext4Filesystem::fail(const std::string& path, const std::string& what, errcode_t code) const {
  const ErrorCode error_code = code_for(code);
  if (code == ENOSPC || code == EFBIG || code == EDQUOT) {
    // A plain errno: writing the host image file failed (its disk is full, or a file size limit),
    // which is not the filesystem inside the image running out of blocks.
    throw Error(at(path) + ": " + what + ": cannot write the image file: " + library_message(code), ErrorCode::NoSpace);
  }
  if (error_code == ErrorCode::NoSpace) {
    throw Error(at(path) + ": " + what + ": no space left in the filesystem (" + library_message(code) + ")", error_code);
  }
  throw Error(at(path) + ": " + what + ": " + library_message(code), error_code);
}

void Ext4Filesystem::require_writable(const std::string& path) {
  if (!writable_) throw Error(at(path) + ": the filesystem was opened read-only");
  scan_once();
  modified_ = true;
}

// Bitmaps against what the inodes really use, before anything is allocated. --allow-dirty goes on
// only when the scan saw every block in use; those are then fenced off from the allocator.
// A copy of a golden whose scan was clean is not scanned again; only a clean verdict is shared (a
// damaged one refuses the write anyway, and --allow-dirty needs this filesystem's own scan to fence).
void Ext4Filesystem::scan_once() {
  if (!refusal_.empty()) throw Error(refusal_, ErrorCode::Corrupt);
  if (!scanner_) return;
  if (scan_key_.empty()) return run_scan();
  const std::shared_ptr<SharedScan> shared = shared_scan(scan_key_);
  const std::lock_guard<std::mutex> lock(shared->mutex);
  if (shared->clean) {
    ++scans_reused;
    scanner_.reset();
    return;
  }
  run_scan();  // throws when damaged
  shared->clean = !dirty_allowed_;
}

void Ext4Filesystem::run_scan() {
  const auto start = std::chrono::steady_clock::now();
  const std::string problem = scanner_->scan();
  ++scans_run;
  scan_nanoseconds += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
  if (!problem.empty()) {
    if (!allow_dirty_ || !scanner_->complete()) {
      refusal_ = damaged(name_, problem, scanner_->complete(), allow_dirty_);
      throw Error(refusal_, ErrorCode::Corrupt);
    }
    scanner_->protect();
    dirty_allowed_ = true;
  }
  scanner_.reset();
}

std::string Ext4Filesystem::type() const {
  ext2_super_block* super = fs()->super;
  if (ext2fs_has_feature_extents(super) || ext2fs_has_feature_64bit(super) || ext2fs_has_feature_flex_bg(super) ||
      ext2fs_has_feature_huge_file(super) || ext2fs_has_feature_gdt_csum(super) ||
      ext2fs_has_feature_metadata_csum(super) || ext2fs_has_feature_dir_nlink(super) ||
      ext2fs_has_feature_extra_isize(super)) {
    return "ext4";
  }
  return ext2fs_has_feature_journal(super) ? "ext3" : "ext2";
}

FsUsage Ext4Filesystem::usage() {
  FsUsage usage;
  usage.block_size = fs()->blocksize;
  usage.total_bytes = ext2fs_blocks_count(fs()->super) * fs()->blocksize;
  usage.free_bytes = ext2fs_free_blocks_count(fs()->super) * fs()->blocksize;
  return usage;
}

ext2_inode_large Ext4Filesystem::read_inode(ext2_ino_t ino, const std::string& path) const {
  ext2_inode_large inode{};
  check(ext2fs_read_inode_full(fs(), ino, reinterpret_cast<ext2_inode*>(&inode), sizeof inode), path,
        "cannot read inode " + std::to_string(ino));
  return inode;
}

void Ext4Filesystem::write_inode(ext2_ino_t ino, ext2_inode_large& inode, const std::string& path) {
  check(ext2fs_write_inode_full(fs(), ino, reinterpret_cast<ext2_inode*>(&inode), sizeof inode), path,
        "cannot write inode " + std::to_string(ino));
}

std::optional<ext2_ino_t> Ext4Filesystem::lookup(ext2_ino_t directory, const std::string& name, const std::string& path,
                                                 std::string* stored) const {
  const std::uint32_t flags = read_inode(directory, path).i_flags;
  if ((flags & EXT4_ENCRYPT_FL) != 0) {
    // Names there are ciphertext: a plaintext name would never match, and one written would be garbage.
    throw Error(at(path) + ": the directory is encrypted (ext4 +E); imprint cannot read or write names in it",
                ErrorCode::Unsupported);
  }
  if ((flags & EXT4_CASEFOLD_FL) != 0) return lookup_casefold(directory, name, path, stored);
  ext2_ino_t ino = 0;
  const errcode_t code = ext2fs_lookup(fs(), directory, name.c_str(), static_cast<int>(name.size()), nullptr, &ino);
  if (code == EXT2_ET_FILE_NOT_FOUND) return std::nullopt;
  check(code, path, "cannot look up");
  return ino;
}

// ext2fs_lookup compares bytes; a casefold (+F) directory holds one name per case-folded spelling
// (e2fsck: "non-unique filename"), so MENDER-DEVICE-IDENTITY is mender-device-identity there.
std::optional<ext2_ino_t> Ext4Filesystem::lookup_casefold(ext2_ino_t directory, const std::string& name,
                                                          const std::string& path, std::string* stored) const {
  if (fs()->encoding == nullptr) {
    throw Error(at(path) + ": casefold directory on a filesystem without a known name encoding", ErrorCode::Unsupported);
  }
  struct Search {
    const ext2fs_nls_table* encoding;
    const std::string& name;
    std::optional<ext2_ino_t> found;
    std::string spelling;
  } search{fs()->encoding, name, std::nullopt, {}};
  auto compare = [](ext2_ino_t, int, ext2_dir_entry* entry, int, int, char*, void* data) -> int {
    auto& state = *static_cast<Search*>(data);
    const std::string_view entry_name(entry->name, static_cast<std::size_t>(ext2fs_dirent_name_len(entry)));
    if (entry->inode == 0) return 0;
    if (entry_name != state.name &&
        ext2fs_casefold_cmp(state.encoding, reinterpret_cast<const unsigned char*>(entry_name.data()), entry_name.size(),
                            reinterpret_cast<const unsigned char*>(state.name.data()), state.name.size()) != 0) {
      return 0;
    }
    state.found = entry->inode;
    state.spelling = entry_name;
    return DIRENT_ABORT;
  };
  check(ext2fs_dir_iterate2(fs(), directory, 0, nullptr, compare, &search), path, "cannot look up");
  if (search.found && stored != nullptr) *stored = search.spelling;
  return search.found;
}

std::string Ext4Filesystem::link_target(ext2_ino_t ino, ext2_inode_large& inode, const std::string& path) const {
  const std::uint64_t size = EXT2_I_SIZE(&inode);
  if (size > fs()->blocksize) throw Error(at(path) + ": symlink target longer than a block", ErrorCode::Corrupt);
  // Fast symlinks keep the target in i_block; slow and inline-data ones read like a file.
  if (ext2fs_is_fast_symlink(reinterpret_cast<ext2_inode*>(&inode))) {
    const char* text = reinterpret_cast<const char*>(inode.i_block);
    return std::string(text, strnlen(text, std::min<std::size_t>(size, sizeof inode.i_block)));
  }
  ext2_file_t file = nullptr;
  check(ext2fs_file_open(fs(), ino, 0, &file), path, "cannot open symlink");
  std::string target(size, '\0');
  unsigned got = 0;
  const errcode_t code = ext2fs_file_read(file, target.data(), static_cast<unsigned>(size), &got);
  ext2fs_file_close(file);
  check(code, path, "cannot read symlink");
  target.resize(got);
  return target;
}

FileStat Ext4Filesystem::stat_of(ext2_ino_t ino, const std::string& path, bool best_effort) const {
  ext2_inode_large inode = read_inode(ino, path);
  FileStat stat;
  stat.type = file_type(inode.i_mode);
  stat.mode = inode.i_mode & 07777;
  stat.uid = inode_uid(inode);
  stat.gid = inode_gid(inode);
  stat.size = EXT2_I_SIZE(&inode);
  stat.mtime = static_cast<std::int32_t>(inode.i_mtime);
  if (inode.i_extra_isize >= offsetof(ext2_inode_large, i_mtime_extra) + sizeof inode.i_mtime_extra - EXT2_GOOD_OLD_INODE_SIZE) {
    stat.mtime += static_cast<std::int64_t>(inode.i_mtime_extra & EXT4_EPOCH_MASK) << 32;
  }
  stat.links = inode.i_links_count;
  if (stat.type == FileType::Symlink) {
    try {
      stat.link_target = link_target(ino, inode, path);
    } catch (const Error&) {
      if (!best_effort) throw;
    }
  }
  return stat;
}

std::optional<ext2_ino_t> Ext4Filesystem::walk(const std::vector<std::string>& components, std::size_t count,
                                               bool missing_ok) const {
  ext2_ino_t current = EXT2_ROOT_INO;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string prefix = join_path(components, i + 1);
    const std::optional<ext2_ino_t> next = lookup(current, components[i], prefix);
    if (!next) {
      if (missing_ok) return std::nullopt;
      throw Error(at(prefix) + ": no such directory", ErrorCode::NotFound);
    }
    ext2_inode_large inode = read_inode(*next, prefix);
    if (LINUX_S_ISLNK(inode.i_mode)) {
      // Never followed: the link may point into another partition on the running device.
      throw_symlink(at(prefix), link_target(*next, inode, prefix));
    }
    if (!LINUX_S_ISDIR(inode.i_mode)) throw Error(at(prefix) + " is not a directory", ErrorCode::NotDirectory);
    current = *next;
  }
  return current;
}

Ext4Filesystem::Location Ext4Filesystem::locate(const std::string& path, bool missing_ok) const {
  const std::vector<std::string> components = split_path(name_, path);
  Location location;
  if (components.empty()) {
    location.ino = EXT2_ROOT_INO;
    return location;
  }
  const std::optional<ext2_ino_t> parent = walk(components, components.size() - 1, missing_ok);
  if (!parent) return location;
  location.parent = *parent;
  location.leaf = components.back();
  location.ino = lookup(*parent, location.leaf, path, &location.leaf);  // an existing entry keeps its spelling
  return location;
}

ext2_ino_t Ext4Filesystem::existing(const std::string& path) const {
  const Location location = locate(path, false);
  if (!location.ino) throw Error(at(path) + ": no such file or directory", ErrorCode::NotFound);
  return *location.ino;
}

std::optional<FileStat> Ext4Filesystem::stat(const std::string& path) {
  const Location location = locate(path, true);
  if (!location.ino) return std::nullopt;
  return stat_of(*location.ino, path);
}

std::vector<std::pair<std::string, ext2_ino_t>> Ext4Filesystem::entries(ext2_ino_t directory,
                                                                        const std::string& path) const {
  std::vector<std::pair<std::string, ext2_ino_t>> found;
  auto collect = [](ext2_ino_t, int, ext2_dir_entry* entry, int, int, char*, void* data) -> int {
    auto& list = *static_cast<std::vector<std::pair<std::string, ext2_ino_t>>*>(data);
    std::string name(entry->name, static_cast<std::size_t>(ext2fs_dirent_name_len(entry)));
    if (entry->inode != 0 && name != "." && name != "..") list.emplace_back(std::move(name), entry->inode);
    return 0;
  };
  check(ext2fs_dir_iterate2(fs(), directory, 0, nullptr, collect, &found), path, "cannot read directory");
  std::sort(found.begin(), found.end());
  return found;
}

std::vector<DirEntry> Ext4Filesystem::list(const std::string& directory) {
  const std::vector<std::string> components = split_path(name_, directory);
  const ext2_ino_t ino = *walk(components, components.size(), false);
  std::vector<DirEntry> result;
  for (const auto& [name, child] : entries(ino, directory)) {
    const std::string child_path = directory == "/" ? "/" + name : directory + "/" + name;
    result.push_back(DirEntry{name, stat_of(child, child_path, true)});  // one broken link spoils no listing
  }
  return result;
}

void Ext4Filesystem::read(const std::string& path, const ByteSink& sink) {
  const ext2_ino_t ino = existing(path);
  ext2_inode_large inode = read_inode(ino, path);
  if (LINUX_S_ISDIR(inode.i_mode)) throw Error(at(path) + " is a directory", ErrorCode::IsDirectory);
  if (LINUX_S_ISLNK(inode.i_mode)) {
    throw_symlink(at(path), link_target(ino, inode, path));
  }
  if (!LINUX_S_ISREG(inode.i_mode)) throw Error(at(path) + " is not a regular file", ErrorCode::Invalid);

  ext2_file_t file = nullptr;
  check(ext2fs_file_open(fs(), ino, 0, &file), path, "cannot open");
  struct Closer {
    ext2_file_t file;
    ~Closer() { ext2fs_file_close(file); }
  } closer{file};
  std::vector<char> buffer(kChunkBytes);
  while (true) {
    unsigned got = 0;
    check(ext2fs_file_read(file, buffer.data(), static_cast<unsigned>(buffer.size()), &got), path, "cannot read");
    if (got == 0) break;
    sink(std::string_view(buffer.data(), got));
  }
}

// Ownership, permission bits and every timestamp (incl. creation time and the epoch bits that
// carry dates past 2038) from attributes; times default to the filesystem's reproducible "now".
void Ext4Filesystem::set_attributes(ext2_ino_t ino, const Attributes& attributes, bool set_mode,
                                    const std::string& path) {
  ext2_inode_large inode = read_inode(ino, path);
  if (set_mode) inode.i_mode = static_cast<std::uint16_t>((inode.i_mode & LINUX_S_IFMT) | (attributes.mode & 07777));
  inode.i_uid = static_cast<std::uint16_t>(attributes.uid & 0xffff);
  ext2fs_set_i_uid_high(inode, static_cast<std::uint16_t>(attributes.uid >> 16));
  inode.i_gid = static_cast<std::uint16_t>(attributes.gid & 0xffff);
  ext2fs_set_i_gid_high(inode, static_cast<std::uint16_t>(attributes.gid >> 16));
  const std::int64_t when = attributes.mtime.value_or(static_cast<std::int64_t>(fs()->now));
  inode.i_atime = inode.i_mtime = inode.i_ctime = time_low(when);
  const std::size_t extra = inode.i_extra_isize + std::size_t{EXT2_GOOD_OLD_INODE_SIZE};
  if (extra >= offsetof(ext2_inode_large, i_atime_extra) + sizeof(std::uint32_t)) {
    inode.i_ctime_extra = inode.i_mtime_extra = inode.i_atime_extra = time_epoch(when);
  }
  if (extra >= offsetof(ext2_inode_large, i_crtime_extra) + sizeof(std::uint32_t)) {
    inode.i_crtime = time_low(when);
    inode.i_crtime_extra = time_epoch(when);
  }
  write_inode(ino, inode, path);
}

// Allocates and initialises an empty regular-file inode that no directory entry points to yet
// (create_inode.c: new_inode, inode_alloc_stats2, extents header, write_new_inode).
ext2_ino_t Ext4Filesystem::new_file_inode(ext2_ino_t parent, unsigned mode, const std::string& path) {
  ext2_ino_t ino = 0;
  check(ext2fs_new_inode(fs(), parent, LINUX_S_IFREG | 0644, nullptr, &ino), path, "cannot allocate an inode");
  ext2fs_inode_alloc_stats2(fs(), ino, +1, 0);
  ext2_inode inode{};
  inode.i_mode = static_cast<std::uint16_t>(LINUX_S_IFREG | (mode & 07777));
  inode.i_links_count = 1;
  errcode_t code = 0;
  if (ext2fs_has_feature_extents(fs()->super)) {
    ext2_extent_handle_t handle = nullptr;
    code = ext2fs_extent_open2(fs(), ino, &inode, &handle);  // writes an empty extent header
    if (code == 0) ext2fs_extent_free(handle);
  }
  if (code == 0) code = ext2fs_write_new_inode(fs(), ino, &inode);
  if (code != 0) {
    ext2fs_inode_alloc_stats2(fs(), ino, -1, 0);
    fail(path, "cannot create inode", code);
  }
  return ino;
}

// Streams content into the inode chunk by chunk; blocks of zeros are skipped and stay holes.
void Ext4Filesystem::fill(ext2_ino_t ino, ByteSource& content, const std::string& path) {
  ext2_file_t file = nullptr;
  check(ext2fs_file_open(fs(), ino, EXT2_FILE_WRITE, &file), path, "cannot open new file");
  const std::size_t block = fs()->blocksize;
  std::vector<char> buffer(std::max(kChunkBytes / block, std::size_t{1}) * block);
  const std::vector<char> zeros(block, 0);
  std::uint64_t total = 0;
  errcode_t code = 0;
  try {
    bool at_end = false;
    while (code == 0 && !at_end) {
      std::size_t filled = 0;  // fill the whole chunk so holes stay block-aligned
      while (filled < buffer.size()) {
        const std::size_t got = content.read(std::span(buffer.data() + filled, buffer.size() - filled));
        if (got == 0) {
          at_end = true;
          break;
        }
        filled += got;
      }
      for (std::size_t offset = 0; code == 0 && offset < filled; offset += block) {
        const std::size_t length = std::min(block, filled - offset);
        if (std::memcmp(buffer.data() + offset, zeros.data(), length) == 0) continue;
        code = ext2fs_file_llseek(file, total + offset, EXT2_SEEK_SET, nullptr);
        for (std::size_t done = 0; code == 0 && done < length;) {
          unsigned written = 0;
          code = ext2fs_file_write(file, buffer.data() + offset + done, static_cast<unsigned>(length - done), &written);
          if (code == 0 && written == 0) code = EXT2_ET_SHORT_WRITE;
          done += written;
        }
      }
      total += filled;
    }
    if (code == 0) code = ext2fs_file_set_size2(file, total);  // covers trailing holes
  } catch (...) {
    ext2fs_file_close(file);
    throw;
  }
  const errcode_t closed = ext2fs_file_close(file);  // flushes the last dirty block
  check(code != 0 ? code : closed, path, "cannot write");
}

// create_inode.c add_link: a full directory block makes ext2fs_link fail; grow it and retry.
void Ext4Filesystem::link(ext2_ino_t parent, const std::string& leaf, ext2_ino_t ino, int type,
                          const std::string& path) {
  errcode_t code = ext2fs_link(fs(), parent, leaf.c_str(), ino, type);
  if (code == EXT2_ET_DIR_NO_SPACE) {
    code = ext2fs_expand_dir(fs(), parent);
    if (code == 0) code = ext2fs_link(fs(), parent, leaf.c_str(), ino, type);
  }
  check(code, path, "cannot add the directory entry");
}

// Points the existing entry `leaf` at new_ino in place: the name never disappears and no
// directory space is needed.
void Ext4Filesystem::swap_entry(ext2_ino_t parent, const std::string& leaf, ext2_ino_t old_ino, ext2_ino_t new_ino,
                                const std::string& path) {
  struct Swap {
    const std::string& leaf;
    ext2_ino_t old_ino, new_ino;
    bool done = false;
  } swap{leaf, old_ino, new_ino};
  auto replace = [](ext2_ino_t, int, ext2_dir_entry* entry, int, int, char*, void* data) -> int {
    auto& state = *static_cast<Swap*>(data);
    const auto length = static_cast<std::size_t>(ext2fs_dirent_name_len(entry));
    if (entry->inode != state.old_ino || std::string_view(entry->name, length) != state.leaf) return 0;
    entry->inode = state.new_ino;
    state.done = true;
    return DIRENT_CHANGED | DIRENT_ABORT;
  };
  check(ext2fs_dir_iterate2(fs(), parent, 0, nullptr, replace, &swap), path, "cannot update the directory entry");
  if (!swap.done) throw Error(at(path) + ": directory entry vanished while replacing it", ErrorCode::Corrupt);
}

// Frees every data and extent-tree block of an inode that is going away (debugfs kill_file).
// Not ext2fs_punch: in 1.47.0 it refuses an extent ending on the filesystem's last block.
errcode_t Ext4Filesystem::release_blocks(ext2_ino_t ino, ext2_inode_large& inode) noexcept {
  if (!ext2fs_inode_has_valid_blocks2(fs(), reinterpret_cast<ext2_inode*>(&inode))) return 0;
  blk64_t last_cluster = 0;  // cluster 0 holds the superblock, never file data
  auto release = [](ext2_filsys filesystem, blk64_t* block, e2_blkcnt_t, blk64_t, int, void* data) -> int {
    auto& last = *static_cast<blk64_t*>(data);
    const blk64_t cluster = EXT2FS_B2C(filesystem, *block);
    if (cluster == last) return 0;  // bigalloc: one cluster, several blocks
    last = cluster;
    ext2fs_block_alloc_stats2(filesystem, *block, -1);
    return 0;
  };
  const errcode_t code = ext2fs_block_iterate3(fs(), ino, BLOCK_FLAG_READ_ONLY, nullptr, release, &last_cluster);
  if (code == 0) ext2fs_iblk_set(fs(), reinterpret_cast<ext2_inode*>(&inode), 0);
  return code;
}

// Frees an inode no directory entry points to (a half-written file on an error path). e2fsck
// treats an inode with no links and a deletion time as free.
void Ext4Filesystem::discard(ext2_ino_t ino) noexcept {
  ext2_inode_large inode{};
  auto* small = reinterpret_cast<ext2_inode*>(&inode);
  if (ext2fs_read_inode_full(fs(), ino, small, sizeof inode) != 0) return;
  release_blocks(ino, inode);
  inode.i_links_count = 0;
  inode.i_dtime = time_low(static_cast<std::int64_t>(fs()->now));
  ext2fs_write_inode_full(fs(), ino, small, sizeof inode);
  ext2fs_inode_alloc_stats2(fs(), ino, -1, LINUX_S_ISDIR(inode.i_mode));
}

// Drops one link (fuse2fs remove_inode); at zero frees xattr block, data blocks and the inode.
void Ext4Filesystem::drop_link(ext2_ino_t ino, const std::string& path) {
  ext2_inode_large inode = read_inode(ino, path);
  if (inode.i_links_count == 0) return;
  --inode.i_links_count;
  inode.i_ctime = time_low(static_cast<std::int64_t>(fs()->now));
  if (inode.i_links_count == 0) {
    inode.i_dtime = time_low(static_cast<std::int64_t>(fs()->now));
    check(ext2fs_free_ext_attr(fs(), ino, &inode), path, "cannot free extended attributes");
    check(release_blocks(ino, inode), path, "cannot free blocks");
    ext2fs_inode_alloc_stats2(fs(), ino, -1, LINUX_S_ISDIR(inode.i_mode));
  }
  write_inode(ino, inode, path);
}

void Ext4Filesystem::write(const std::string& path, ByteSource& content, const Attributes& attributes) {
  require_writable(path);
  const Location location = locate(path, false);
  if (location.leaf.empty()) throw Error(at(path) + " is a directory", ErrorCode::IsDirectory);
  if (location.ino) {
    ext2_inode_large old = read_inode(*location.ino, path);
    if (LINUX_S_ISDIR(old.i_mode)) throw Error(at(path) + " is a directory", ErrorCode::IsDirectory);
    if (LINUX_S_ISLNK(old.i_mode)) {
      throw_symlink(at(path), link_target(*location.ino, old, path), "; not replacing it");
    }
    if (!LINUX_S_ISREG(old.i_mode)) throw Error(at(path) + " exists and is not a regular file", ErrorCode::Exists);
  }

  // Build the new file completely before any directory entry points to it, so a failure (ENOSPC)
  // leaves the old file, or no file, and no allocated blocks.
  const ext2_ino_t ino = new_file_inode(location.parent, attributes.mode, path);
  try {
    fill(ino, content, path);
    set_attributes(ino, attributes, true, path);
    if (location.ino) {
      swap_entry(location.parent, location.leaf, *location.ino, ino, path);
    } else {
      link(location.parent, location.leaf, ino, EXT2_FT_REG_FILE, path);
    }
  } catch (...) {
    discard(ino);
    throw;
  }
  if (location.ino) drop_link(*location.ino, path);
}

void Ext4Filesystem::mkdir(const std::string& path, const Attributes& attributes) {
  require_writable(path);
  const Location location = locate(path, false);
  if (location.ino) throw Error(at(path) + " already exists", ErrorCode::Exists);
  errcode_t code = ext2fs_mkdir(fs(), location.parent, 0, location.leaf.c_str());
  if (code == EXT2_ET_DIR_NO_SPACE) {
    code = ext2fs_expand_dir(fs(), location.parent);
    if (code == 0) code = ext2fs_mkdir(fs(), location.parent, 0, location.leaf.c_str());
  }
  check(code, path, "cannot create directory");
  const std::optional<ext2_ino_t> ino = lookup(location.parent, location.leaf, path);
  if (!ino) throw Error(at(path) + ": directory missing right after creating it", ErrorCode::Corrupt);
  set_attributes(*ino, attributes, true, path);
}

void Ext4Filesystem::symlink(const std::string& path, const std::string& target, const Attributes& attributes) {
  require_writable(path);
  if (target.empty() || target.find('\0') != std::string::npos) {
    throw Error(at(path) + ": invalid symlink target", ErrorCode::Invalid);
  }
  if (target.size() >= fs()->blocksize) throw Error(at(path) + ": symlink target too long", ErrorCode::Invalid);
  const Location location = locate(path, false);
  if (location.leaf.empty()) throw Error(at(path) + " is a directory", ErrorCode::Exists);
  if (location.ino) {
    const ext2_inode_large old = read_inode(*location.ino, path);
    if (!LINUX_S_ISLNK(old.i_mode)) throw Error(at(path) + " exists and is not a symlink", ErrorCode::Exists);
  }

  // ext2fs_symlink without a name leaves an allocated, unlinked inode that we link or swap in.
  ext2_ino_t ino = 0;
  check(ext2fs_new_inode(fs(), location.parent, LINUX_S_IFLNK | 0777, nullptr, &ino), path,
        "cannot allocate an inode");
  std::string target_copy = target;  // the library takes a non-const char*
  check(ext2fs_symlink(fs(), location.parent, ino, nullptr, target_copy.data()), path, "cannot create symlink");
  try {
    set_attributes(ino, attributes, false, path);  // a link's own mode is always 0777
    if (location.ino) {
      swap_entry(location.parent, location.leaf, *location.ino, ino, path);
    } else {
      link(location.parent, location.leaf, ino, EXT2_FT_SYMLINK, path);
    }
  } catch (...) {
    discard(ino);
    throw;
  }
  if (location.ino) drop_link(*location.ino, path);
}

void Ext4Filesystem::chmod(const std::string& path, unsigned mode) {
  require_writable(path);
  const ext2_ino_t ino = existing(path);
  ext2_inode_large inode = read_inode(ino, path);
  inode.i_mode = static_cast<std::uint16_t>((inode.i_mode & LINUX_S_IFMT) | (mode & 07777));
  inode.i_ctime = time_low(static_cast<std::int64_t>(fs()->now));
  write_inode(ino, inode, path);
}

void Ext4Filesystem::chown(const std::string& path, std::uint32_t uid, std::uint32_t gid) {
  require_writable(path);
  const ext2_ino_t ino = existing(path);
  ext2_inode_large inode = read_inode(ino, path);
  inode.i_uid = static_cast<std::uint16_t>(uid & 0xffff);
  ext2fs_set_i_uid_high(inode, static_cast<std::uint16_t>(uid >> 16));
  inode.i_gid = static_cast<std::uint16_t>(gid & 0xffff);
  ext2fs_set_i_gid_high(inode, static_cast<std::uint16_t>(gid >> 16));
  inode.i_ctime = time_low(static_cast<std::int64_t>(fs()->now));
  write_inode(ino, inode, path);
}

void Ext4Filesystem::set_mtime(const std::string& path, std::int64_t mtime) {
  require_writable(path);
  const ext2_ino_t ino = existing(path);
  ext2_inode_large inode = read_inode(ino, path);
  inode.i_mtime = time_low(mtime);
  const std::size_t extra = inode.i_extra_isize + std::size_t{EXT2_GOOD_OLD_INODE_SIZE};
  if (extra >= offsetof(ext2_inode_large, i_mtime_extra) + sizeof(std::uint32_t)) {
    inode.i_mtime_extra = time_epoch(mtime);
  }
  write_inode(ino, inode, path);
}

// Removes one directory entry and what it names; directories depth-first when recursive.
void Ext4Filesystem::remove_entry(ext2_ino_t parent, const std::string& leaf, ext2_ino_t ino, bool recursive,
                                  const std::string& path) {
  const ext2_inode_large inode = read_inode(ino, path);
  const bool directory = LINUX_S_ISDIR(inode.i_mode);
  if (directory) {
    const auto children = entries(ino, path);
    if (!children.empty() && !recursive) throw Error(at(path) + ": directory not empty", ErrorCode::NotEmpty);
    for (const auto& [name, child] : children) remove_entry(ino, name, child, true, path + "/" + name);
  }
  check(ext2fs_unlink(fs(), parent, leaf.c_str(), ino, 0), path, "cannot remove the directory entry");
  if (directory) {
    // A directory holds two links to itself (its entry and "."), and ".." links its parent.
    drop_link(ino, path);
    drop_link(ino, path);
    ext2_inode_large parent_inode = read_inode(parent, path);
    if (parent_inode.i_links_count > 2) --parent_inode.i_links_count;  // 1 = dir_nlink "many"
    write_inode(parent, parent_inode, path);
  } else {
    drop_link(ino, path);
  }
}

void Ext4Filesystem::remove(const std::string& path, bool recursive) {
  require_writable(path);
  const Location location = locate(path, false);
  if (location.leaf.empty()) throw Error(at(path) + ": refusing to remove the root directory", ErrorCode::Invalid);
  if (!location.ino) throw Error(at(path) + ": no such file or directory", ErrorCode::NotFound);
  remove_entry(location.parent, location.leaf, *location.ino, recursive, path);
}

void Ext4Filesystem::flush() {
  if (!writable_ || !modified_) return;
  errcode_t code = ext2fs_flush(fs());
  if (code == 0) code = ext4::overlay_commit(fs()->io);
  if (code != 0) throw Error(name_ + ": cannot write the filesystem metadata: " + library_message(code), code_for(code));
}

// Names the feature bits this libext2fs does not know, reading the superblock with the feature
// check forced off (read-only, only to word the refusal).
std::string unknown_features(const Ext4OpenOptions& options, const std::string& io_options) {
  ext2_filsys raw = nullptr;
  if (ext2fs_open2(options.image_path.c_str(), io_options.c_str(), EXT2_FLAG_64BITS | EXT2_FLAG_FORCE, 0, 0,
                   unix_io_manager, &raw) != 0) {
    return "";
  }
  FsHandle fs(raw);
  std::string words;
  const std::uint32_t incompat = fs->super->s_feature_incompat & ~EXT2_LIB_FEATURE_INCOMPAT_SUPP;
  const std::uint32_t ro_compat = fs->super->s_feature_ro_compat & ~EXT2_LIB_FEATURE_RO_COMPAT_SUPP;
  if (incompat != 0) words += " incompat " + hex(incompat);
  if (ro_compat != 0 && options.writable) words += " ro_compat " + hex(ro_compat);
  return words;
}

[[noreturn]] void refuse_open(const Ext4OpenOptions& options, const std::string& io_options, errcode_t code) {
  const std::string& name = options.name;
  switch (code) {
    case EXT2_ET_UNSUPP_FEATURE:
    case EXT2_ET_RO_UNSUPP_FEATURE: {
      const std::string bits = unknown_features(options, io_options);
      throw Error(name + ": the filesystem uses features this libext2fs cannot " +
                      (options.writable ? "write" : "read") + (bits.empty() ? "" : " (" + bits.substr(1) + ")") +
                      "; refusing to open it",
                  ErrorCode::Unsupported);
    }
    case EXT2_ET_SHORT_READ:
      throw Error(name + ": truncated image: the filesystem ends past the end of " + options.image_path,
                  ErrorCode::Corrupt);
    default:
      break;
  }
  const ErrorCode kind = code_for(code);
  if (kind == ErrorCode::Corrupt || code == EXT2_ET_UNEXPECTED_BLOCK_SIZE) {
    throw Error(name + ": no valid ext2/3/4 superblock at offset " + std::to_string(options.offset) + " (" +
                    library_message(code) + ")",
                ErrorCode::Corrupt);
  }
  throw Error(name + ": cannot open the ext2/3/4 filesystem in " + options.image_path + ": " + library_message(code),
              kind);
}

// The filesystem must fit inside both its partition and the image file.
void check_bounds(ext2_filsys fs, const Ext4OpenOptions& options) {
  const std::uint64_t fs_bytes = ext2fs_blocks_count(fs->super) * fs->blocksize;
  if (options.size != 0 && fs_bytes > options.size) {
    throw Error(options.name + ": the filesystem (" + std::to_string(fs_bytes) + " bytes) is larger than its partition (" +
                    std::to_string(options.size) + " bytes)",
                ErrorCode::Corrupt);
  }
  struct stat info {};
  if (::stat(options.image_path.c_str(), &info) != 0) throw_errno("cannot stat " + options.image_path);
  if (S_ISREG(info.st_mode) && options.offset + fs_bytes > static_cast<std::uint64_t>(info.st_size)) {
    throw Error(options.name + ": truncated image: the filesystem needs " + std::to_string(fs_bytes) +
                    " bytes at offset " + std::to_string(options.offset) + " but " + options.image_path + " has only " +
                    std::to_string(info.st_size) + " bytes",
                ErrorCode::Corrupt);
  }
}

}  // namespace

void set_default_allow_dirty(bool allow) { default_allow_dirty = allow; }

Ext4ScanStats ext4_scan_stats() {
  return Ext4ScanStats{scans_run.load(), scans_reused.load(), static_cast<double>(scan_nanoseconds.load()) / 1e9};
}

std::unique_ptr<Filesystem> open_ext4(const Ext4OpenOptions& options) {
  initialize_ext2_error_table();
  const std::string io_options = "offset=" + std::to_string(options.offset);
  const int flags = EXT2_FLAG_64BITS | (options.writable ? EXT2_FLAG_RW : 0);
  ext2_filsys raw = nullptr;
  const io_manager manager = !options.writable ? unix_io_manager
                             : options.commit_to ? ext4::overlay_sink_io_manager()
                                                 : ext4::overlay_io_manager();
  errcode_t code = 0;
  {
    const ext4::ScopedOverlaySource source(options.writable && options.commit_to ? options.read_from : nullptr);
    code = ext2fs_open2(options.image_path.c_str(), io_options.c_str(), flags, 0, 0, manager, &raw);
  }
  if (code != 0) refuse_open(options, io_options, code);
  FsHandle fs(raw);
  if (options.writable && options.commit_to) ext4::overlay_set_sink(fs->io, options.commit_to);

  check_bounds(fs.get(), options);
  if (ext2fs_has_feature_journal_needs_recovery(fs->super)) {
    // libext2fs does not replay journals; writing (or trusting reads) would lose the logged changes.
    throw Error(options.name + ": the filesystem needs journal recovery (not cleanly unmounted); run e2fsck on a copy first",
                ErrorCode::Unsupported);
  }
  if (options.writable && (ext2fs_has_feature_quota(fs->super) || ext2fs_has_feature_project(fs->super))) {
    // The quota files count every inode and block per owner; libext2fs allocates without updating
    // them (only e2fsprogs' internal quota library does), so e2fsck would find them wrong.
    throw Error(options.name + ": the filesystem keeps quota files (ext4 feature '" +
                    std::string(ext2fs_has_feature_quota(fs->super) ? "quota" : "project") +
                    "'), which the native backend cannot keep up to date; use --backend guestfs",
                ErrorCode::Unsupported);
  }
  // Timestamps the library sets itself (new inodes, superblock write time) become reproducible too.
  fs->now = static_cast<time_t>(reproducible_now());
  const bool allow_dirty = options.allow_dirty || default_allow_dirty;
  std::unique_ptr<ext4::Scanner> scanner;
  std::string scan_key = options.scan_key;
  if (options.writable) {
    // The cheap checks come before the bitmaps are read from where the descriptors say they are.
    scanner = std::make_unique<ext4::Scanner>(fs.get());
    const std::string problem = scanner->check_layout();
    if (!problem.empty() && (!allow_dirty || !scanner->complete())) {
      throw Error(damaged(options.name, problem, scanner->complete(), allow_dirty), ErrorCode::Corrupt);
    }
    // Damage here means these bytes are not those a shared clean scan saw: scan them on their own.
    if (!problem.empty()) scan_key.clear();
    const errcode_t loaded = ext2fs_read_bitmaps(fs.get());
    if (loaded != 0) {
      throw Error(options.name + ": cannot read the allocation bitmaps: " + library_message(loaded), code_for(loaded));
    }
  }
  return std::make_unique<Ext4Filesystem>(std::move(fs), options.name, options.writable, std::move(scanner), allow_dirty,
                                          std::move(scan_key));
}

}  // namespace imprint
