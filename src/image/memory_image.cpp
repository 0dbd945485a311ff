// MemoryImage: a layout made up as partitions are added, each with its own MemoryFilesystem.
#include "imprint/image/memory_image.hpp"

#include "imprint/core/error.hpp"

namespace imprint {

namespace {

constexpr std::uint64_t kFirstOffset = 1 << 20;  // where partitioning tools start the first one

}  // namespace

MemoryImage::MemoryImage(std::string name, TableType table) : name_(std::move(name)) {
  layout_.table = table;
  layout_.image_size = kFirstOffset;
}

Partition& MemoryImage::next_partition(Role role, const std::string& fs_type, std::uint64_t size) {
  Partition partition;
  partition.number = static_cast<int>(layout_.partitions.size()) + 1;
  partition.offset = layout_.image_size;
  partition.size = size;
  partition.fs_type = fs_type;
  partition.role = role;
  layout_.image_size += size;
  layout_.partitions.push_back(partition);
  return layout_.partitions.back();
}

MemoryFilesystem& MemoryImage::add_partition(Role role, MemoryFilesystemOptions options) {
  const Partition& partition = next_partition(role, options.type, options.capacity);
  options.name = partition_name(partition);
  filesystems_.emplace_back(partition.number, std::make_unique<MemoryFilesystem>(std::move(options)));
  return *filesystems_.back().second;
}

const Partition& MemoryImage::add_empty_partition(Role role, const std::string& fs_type, bool extended) {
  Partition& partition = next_partition(role, fs_type, kFirstOffset);
  partition.extended = extended;
  return partition;
}

MemoryFilesystem& MemoryImage::memory_filesystem(Role role) {
  return static_cast<MemoryFilesystem&>(filesystem(partition(role)));
}

Filesystem& MemoryImage::filesystem(const Partition& partition) {
  for (auto& [number, filesystem] : filesystems_) {
    if (number == partition.number) return *filesystem;
  }
  const std::string name = partition_name(partition);
  if (partition.extended) {
    throw Error(name_ + ": " + name + " is an extended partition container, not a filesystem", ErrorCode::Invalid);
  }
  throw Error(name_ + ": " + name + " holds no filesystem that libblkid recognizes", ErrorCode::Unsupported);
}

}  // namespace imprint
