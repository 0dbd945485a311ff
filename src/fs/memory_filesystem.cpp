// MemoryFilesystem: a tree of nodes walked the way the ext4 backend walks inodes (ext4.cpp walk,
// locate, existing), so that both refuse the same paths with the same ErrorCode.
#include "imprint/fs/memory_filesystem.hpp"

#include <algorithm>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/fs/symlink_error.hpp"

namespace imprint {

namespace {

constexpr std::size_t kChunkBytes = 1 << 20;  // streaming unit, as the ext4 backend's
constexpr std::size_t kFastSymlinkBytes = 60;  // ext4 keeps shorter targets in the inode (no block)

}  // namespace

struct MemoryFilesystem::Node {
  FileType type = FileType::Regular;
  unsigned mode = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int64_t mtime = 0;
  std::string bytes;  // a file's content, a symlink's target
  std::map<std::string, std::unique_ptr<Node>> children;  // a directory's entries, sorted by name
  std::uint64_t blocks = 0;  // its own blocks, not its children's

  std::uint64_t tree_blocks() const {
    std::uint64_t total = blocks;
    for (const auto& [name, child] : children) total += child->tree_blocks();
    return total;
  }
};

namespace {

// Blocks holding anything but zeros: the rest are holes, as both disk backends leave them.
std::uint64_t data_blocks(const std::string& bytes, std::uint64_t block_size) {
  std::uint64_t blocks = 0;
  for (std::size_t offset = 0; offset < bytes.size(); offset += block_size) {
    const std::size_t end = std::min<std::size_t>(bytes.size(), offset + block_size);
    if (std::any_of(bytes.begin() + static_cast<std::ptrdiff_t>(offset), bytes.begin() + static_cast<std::ptrdiff_t>(end),
                    [](char c) { return c != '\0'; })) {
      ++blocks;
    }
  }
  return blocks;
}

}  // namespace

MemoryFilesystem::MemoryFilesystem(MemoryFilesystemOptions options)
    : options_(std::move(options)), now_(reproducible_now()) {
  if (options_.block_size == 0) throw Error(options_.name + ": a block size of 0", ErrorCode::Invalid);
  root_ = make_node(FileType::Directory, 0755, Attributes{0755, 0, 0, std::nullopt});
  root_->blocks = 1;
  used_blocks_ = 1;
}

MemoryFilesystem::~MemoryFilesystem() = default;

std::unique_ptr<MemoryFilesystem::Node> MemoryFilesystem::make_node(FileType type, unsigned mode,
                                                                    const Attributes& attributes) const {
  auto node = std::make_unique<Node>();
  node->type = type;
  node->mode = mode & 07777;
  node->uid = attributes.uid;
  node->gid = attributes.gid;
  node->mtime = attributes.mtime.value_or(now_);
  return node;
}

FileStat MemoryFilesystem::stat_of(const Node& node) const {
  FileStat stat;
  stat.type = node.type;
  stat.mode = node.mode;
  stat.uid = node.uid;
  stat.gid = node.gid;
  stat.mtime = node.mtime;
  stat.size = node.type == FileType::Directory ? node.blocks * options_.block_size : node.bytes.size();
  stat.links = 1;
  if (node.type == FileType::Directory) {
    // Its entry, its ".", and the ".." of each subdirectory.
    stat.links = 2 + static_cast<std::uint32_t>(std::count_if(node.children.begin(), node.children.end(), [](const auto& child) {
                   return child.second->type == FileType::Directory;
                 }));
  }
  if (node.type == FileType::Symlink) stat.link_target = node.bytes;
  return stat;
}

void MemoryFilesystem::require_writable(const std::string& path) const {
  if (!options_.writable) throw Error(at(path) + ": the filesystem was opened read-only");
}

MemoryFilesystem::Node* MemoryFilesystem::walk(const std::vector<std::string>& components, std::size_t count,
                                               bool missing_ok) const {
  Node* current = root_.get();
  for (std::size_t i = 0; i < count; ++i) {
    const std::string prefix = join_path(components, i + 1);
    const auto next = current->children.find(components[i]);
    if (next == current->children.end()) {
      if (missing_ok) return nullptr;
      throw Error(at(prefix) + ": no such directory", ErrorCode::NotFound);
    }
    const Node& node = *next->second;
    // Never followed: on the device the link may point into another partition.
    if (node.type == FileType::Symlink) throw_symlink(at(prefix), node.bytes);
    if (node.type != FileType::Directory) throw Error(at(prefix) + " is not a directory", ErrorCode::NotDirectory);
    current = next->second.get();
  }
  return current;
}

MemoryFilesystem::Location MemoryFilesystem::locate(const std::string& path, bool missing_ok) const {
  const std::vector<std::string> components = split_path(options_.name, path);
  Location location;
  if (components.empty()) {
    location.entry = root_.get();
    return location;
  }
  location.parent = walk(components, components.size() - 1, missing_ok);
  if (location.parent == nullptr) return location;
  location.leaf = components.back();
  const auto found = location.parent->children.find(location.leaf);
  if (found != location.parent->children.end()) location.entry = found->second.get();
  return location;
}

MemoryFilesystem::Node& MemoryFilesystem::existing(const std::string& path) const {
  const Location location = locate(path, false);
  if (location.entry == nullptr) throw Error(at(path) + ": no such file or directory", ErrorCode::NotFound);
  return *location.entry;
}

void MemoryFilesystem::reserve(std::uint64_t blocks, const Node* replaced, const std::string& path) {
  const std::uint64_t total = options_.capacity / options_.block_size;
  const std::uint64_t freed = replaced != nullptr ? replaced->tree_blocks() : 0;
  const std::uint64_t after = used_blocks_ - freed + blocks;
  if (after > total) {
    throw Error(at(path) + ": cannot write: no space left in the filesystem (" + std::to_string(blocks) + " blocks needed, " +
                    std::to_string(total - (used_blocks_ - freed)) + " free)",
                ErrorCode::NoSpace);
  }
  used_blocks_ = after;
}

FsUsage MemoryFilesystem::usage() {
  FsUsage usage;
  usage.block_size = options_.block_size;
  const std::uint64_t total = options_.capacity / options_.block_size;
  usage.total_bytes = total * options_.block_size;
  usage.free_bytes = (total - std::min(total, used_blocks_)) * options_.block_size;
  return usage;
}

std::optional<FileStat> MemoryFilesystem::stat(const std::string& path) {
  const Location location = locate(path, true);
  if (location.entry == nullptr) return std::nullopt;
  return stat_of(*location.entry);
}

std::vector<DirEntry> MemoryFilesystem::list(const std::string& directory) {
  const std::vector<std::string> components = split_path(options_.name, directory);
  const Node& node = *walk(components, components.size(), false);
  std::vector<DirEntry> entries;
  for (const auto& [name, child] : node.children) entries.push_back(DirEntry{name, stat_of(*child)});
  return entries;
}

void MemoryFilesystem::read(const std::string& path, const ByteSink& sink) {
  const Node& node = existing(path);
  if (node.type == FileType::Directory) throw Error(at(path) + " is a directory", ErrorCode::IsDirectory);
  if (node.type == FileType::Symlink) throw_symlink(at(path), node.bytes);
  if (node.type != FileType::Regular) throw Error(at(path) + " is not a regular file", ErrorCode::Invalid);
  for (std::size_t offset = 0; offset < node.bytes.size(); offset += kChunkBytes) {
    sink(std::string_view(node.bytes).substr(offset, kChunkBytes));
  }
}

void MemoryFilesystem::write(const std::string& path, ByteSource& content, const Attributes& attributes) {
  require_writable(path);
  const Location location = locate(path, false);
  if (location.leaf.empty()) throw Error(at(path) + " is a directory", ErrorCode::IsDirectory);
  if (const Node* old = location.entry) {
    if (old->type == FileType::Directory) throw Error(at(path) + " is a directory", ErrorCode::IsDirectory);
    if (old->type == FileType::Symlink) {
      throw_symlink(at(path), old->bytes, "; not replacing it");
    }
    if (old->type != FileType::Regular) throw Error(at(path) + " exists and is not a regular file", ErrorCode::Exists);
  }
  // The new file is complete before it replaces the old one: a failure leaves the old file.
  auto node = make_node(FileType::Regular, attributes.mode, attributes);
  std::string buffer(kChunkBytes, '\0');
  for (std::size_t got = content.read(buffer); got != 0; got = content.read(buffer)) node->bytes.append(buffer, 0, got);
  node->blocks = data_blocks(node->bytes, options_.block_size);
  reserve(node->blocks, location.entry, path);
  location.parent->children[location.leaf] = std::move(node);
}

void MemoryFilesystem::mkdir(const std::string& path, const Attributes& attributes) {
  require_writable(path);
  const Location location = locate(path, false);
  if (location.entry != nullptr) throw Error(at(path) + " already exists", ErrorCode::Exists);
  auto node = make_node(FileType::Directory, attributes.mode, attributes);
  node->blocks = 1;
  reserve(node->blocks, nullptr, path);
  location.parent->children[location.leaf] = std::move(node);
}

void MemoryFilesystem::symlink(const std::string& path, const std::string& target, const Attributes& attributes) {
  require_writable(path);
  if (target.empty() || target.find('\0') != std::string::npos) {
    throw Error(at(path) + ": invalid symlink target", ErrorCode::Invalid);
  }
  if (target.size() >= options_.block_size) throw Error(at(path) + ": symlink target too long", ErrorCode::Invalid);
  const Location location = locate(path, false);
  if (location.leaf.empty()) throw Error(at(path) + " is a directory", ErrorCode::Exists);
  if (location.entry != nullptr && location.entry->type != FileType::Symlink) {
    throw Error(at(path) + " exists and is not a symlink", ErrorCode::Exists);
  }
  auto node = make_node(FileType::Symlink, 0777, attributes);  // a link's own mode is always 0777
  node->bytes = target;
  node->blocks = target.size() < kFastSymlinkBytes ? 0 : 1;
  reserve(node->blocks, location.entry, path);
  location.parent->children[location.leaf] = std::move(node);
}

// On a symlink these change the link itself, never its target, as the ext4 backend does.
void MemoryFilesystem::chmod(const std::string& path, unsigned mode) {
  require_writable(path);
  existing(path).mode = mode & 07777;
}

void MemoryFilesystem::chown(const std::string& path, std::uint32_t uid, std::uint32_t gid) {
  require_writable(path);
  Node& node = existing(path);
  node.uid = uid;
  node.gid = gid;
}

void MemoryFilesystem::set_mtime(const std::string& path, std::int64_t mtime) {
  require_writable(path);
  existing(path).mtime = mtime;
}

void MemoryFilesystem::remove(const std::string& path, bool recursive) {
  require_writable(path);
  const Location location = locate(path, false);
  if (location.leaf.empty()) throw Error(at(path) + ": refusing to remove the root directory", ErrorCode::Invalid);
  if (location.entry == nullptr) throw Error(at(path) + ": no such file or directory", ErrorCode::NotFound);
  if (!location.entry->children.empty() && !recursive) throw Error(at(path) + ": directory not empty", ErrorCode::NotEmpty);
  used_blocks_ -= location.entry->tree_blocks();
  location.parent->children.erase(location.leaf);
}

}  // namespace imprint
