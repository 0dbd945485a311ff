// A Filesystem held in memory: files, directories and symlinks with modes, owners and times, under
// the same contract as the ext4 and libguestfs backends (filesystem.hpp): a symlink is never walked
// through at any component (Error(Symlink) naming the link and its target, as ext4 words it), the
// same ErrorCode for every refusal, sorted listings, zero blocks as holes, and Error(NoSpace) with
// nothing changed when a write does not fit its capacity. What unit tests of the apply layer stand
// their images on (image/memory_image.hpp), and what a dry run could write into.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "imprint/fs/filesystem.hpp"

namespace imprint {

struct MemoryFilesystemOptions {
  std::string name = "memory";             // starts every message, like a partition's name
  std::string type = "ext4";               // what type() says
  std::uint64_t capacity = 64 << 20;       // bytes of blocks: data, directories, long symlinks
  std::uint64_t block_size = 4096;
  bool writable = true;
};

class MemoryFilesystem final : public Filesystem {
 public:
  explicit MemoryFilesystem(MemoryFilesystemOptions options = {});
  ~MemoryFilesystem() override;
  MemoryFilesystem(const MemoryFilesystem&) = delete;
  MemoryFilesystem& operator=(const MemoryFilesystem&) = delete;

  std::string type() const override { return options_.type; }
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
  // Nothing to write out; counted, so a test can tell whether the caller flushed.
  void flush() override { ++flushes_; }

  unsigned flushes() const noexcept { return flushes_; }
  // Opens it read-only (every change is then refused, as on a read-only image) or writable again.
  void set_writable(bool writable) noexcept { options_.writable = writable; }

 private:
  struct Node;
  // Where a path's last component lives: its directory (null when missing and allowed), its name
  // (empty for "/") and the entry, when it exists.
  struct Location {
    Node* parent = nullptr;
    std::string leaf;
    Node* entry = nullptr;
  };

  std::string at(const std::string& path) const { return options_.name + ": " + path; }
  void require_writable(const std::string& path) const;
  Node* walk(const std::vector<std::string>& components, std::size_t count, bool missing_ok) const;
  Location locate(const std::string& path, bool missing_ok) const;
  Node& existing(const std::string& path) const;
  // Takes blocks for something new that replaces `replaced` (null: nothing); Error(NoSpace) when
  // they do not fit, before anything changed.
  void reserve(std::uint64_t blocks, const Node* replaced, const std::string& path);
  std::unique_ptr<Node> make_node(FileType type, unsigned mode, const Attributes& attributes) const;
  FileStat stat_of(const Node& node) const;

  MemoryFilesystemOptions options_;
  // What an unset mtime becomes, taken once as the ext4 backend takes its "now" when it opens.
  std::int64_t now_ = 0;
  std::unique_ptr<Node> root_;
  std::uint64_t used_blocks_ = 0;
  unsigned flushes_ = 0;
};

}  // namespace imprint
