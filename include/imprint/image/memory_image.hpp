// An image made of in-memory filesystems (fs/memory_filesystem.hpp) behind the ImageView the apply
// layer takes: apply_plan, verify_plan, the edit commands and the checks against an image run on it
// exactly as on a DiskImage, with nothing on disk. Partitions are numbered in the order they are
// added (p1, p2, ...); each is named in messages as DiskImage names it ("primary (p2)").
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "imprint/fs/memory_filesystem.hpp"
#include "imprint/image/image.hpp"

namespace imprint {

class MemoryImage final : public ImageView {
 public:
  explicit MemoryImage(std::string name = "memory.img", TableType table = TableType::Dos);

  // Adds the next partition with this role and a filesystem of options.type (its name becomes the
  // partition's name); returns the filesystem, to fill it or to read it back.
  MemoryFilesystem& add_partition(Role role, MemoryFilesystemOptions options = {});
  // Adds the next partition without a filesystem (swap: fs_type "swap"; an extended container).
  const Partition& add_empty_partition(Role role, const std::string& fs_type, bool extended = false);

  // The filesystem of the partition with this role (Error(NotFound) when there is none).
  MemoryFilesystem& memory_filesystem(Role role);

  const std::string& path() const noexcept override { return name_; }
  const Layout& layout() const noexcept override { return layout_; }
  // The partition's in-memory filesystem; a partition without one is refused as DiskImage refuses
  // it (Error(Invalid) for an extended container, Error(Unsupported) otherwise).
  Filesystem& filesystem(const Partition& partition) override;

 private:
  Partition& next_partition(Role role, const std::string& fs_type, std::uint64_t size);

  std::string name_;
  Layout layout_;
  std::vector<std::pair<int, std::unique_ptr<MemoryFilesystem>>> filesystems_;
};

}  // namespace imprint
