// The image's block map (see block_map.hpp): partition table areas from libblkid's layout and
// libfdisk's GPT geometry, in-use blocks of ext filesystems from libext2fs, the rest whole.
#include "imprint/image/block_map.hpp"

#include <libfdisk/libfdisk.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>

#include "imprint/image/copy.hpp"
#include "imprint/core/error.hpp"
#include "imprint/fs/ext4_blocks.hpp"
#include "imprint/core/fileio.hpp"
#include "layout_internal.hpp"

namespace imprint {

namespace {

constexpr std::uint64_t kSector = 512;

struct FdiskContext {
  void operator()(fdisk_context* context) const { fdisk_unref_context(context); }
};
struct FdiskItem {
  void operator()(fdisk_labelitem* item) const { fdisk_unref_labelitem(item); }
};

// A GPT item (an LBA or a count) through libfdisk, which reads the header the way partitioners do.
std::uint64_t gpt_item(fdisk_context* context, int id) {
  std::unique_ptr<fdisk_labelitem, FdiskItem> item(fdisk_new_labelitem());
  std::uint64_t value = 0;
  if (!item || fdisk_get_disklabel_item(context, id, item.get()) != 0 || fdisk_labelitem_get_data_u64(item.get(), &value) != 0) {
    throw Error("libfdisk cannot read GPT item " + std::to_string(id), ErrorCode::Corrupt);
  }
  return value;
}

// The protective MBR, primary header and entries; the backup entries and header (at the image's end).
std::vector<Extent> gpt_areas(const std::string& io_path) {
  std::unique_ptr<fdisk_context, FdiskContext> context(fdisk_new_context());
  if (!context || fdisk_assign_device(context.get(), io_path.c_str(), 1) != 0 ||
      !fdisk_is_labeltype(context.get(), FDISK_DISKLABEL_GPT)) {
    throw Error("libfdisk cannot read the GPT", ErrorCode::Corrupt);
  }
  const std::uint64_t sector = fdisk_get_sector_size(context.get());
  const std::uint64_t entries_end = (gpt_item(context.get(), GPT_LABELITEM_ENTRIESLASTLBA) + 1) * sector;
  const std::uint64_t backup_begin = (gpt_item(context.get(), GPT_LABELITEM_LASTLBA) + 1) * sector;
  const std::uint64_t backup_end = (gpt_item(context.get(), GPT_LABELITEM_ALTLBA) + 1) * sector;
  fdisk_deassign_device(context.get(), 1);
  return {Extent{0, entries_end}, Extent{backup_begin, backup_end > backup_begin ? backup_end - backup_begin : 0}};
}

std::vector<Extent> spans(const Layout& layout, bool extended) {
  std::vector<Extent> result;
  for (const Partition& partition : layout.partitions) {
    if (partition.extended == extended) result.push_back(Extent{partition.offset, partition.size});
  }
  return result;
}

// Where the partition table lives. An extended container's EBR chain sits in the gaps between its
// logical partitions, wherever the partitioner put it: all of those gaps are kept.
std::vector<Extent> table_areas(const std::string& io_path, const Layout& layout, BlockMap& map) {
  std::vector<Extent> areas{Extent{0, kSector}};
  if (layout.table == TableType::Gpt) {
    try {
      const auto gpt = gpt_areas(io_path);
      areas.insert(areas.end(), gpt.begin(), gpt.end());
    } catch (const Error& error) {
      // In doubt: everything before the first and after the last partition.
      map.notes.push_back(std::string("GPT areas unknown (") + error.what() + "): the space around the partitions is mapped whole");
      std::uint64_t first = layout.image_size, last = 0;
      for (const Partition& partition : layout.partitions) {
        first = std::min(first, partition.offset);
        last = std::max(last, partition.offset + partition.size);
      }
      areas.push_back(Extent{0, first});
      if (last < layout.image_size) areas.push_back(Extent{last, layout.image_size - last});
    }
  }
  const auto containers = subtract(spans(layout, true), spans(layout, false));
  areas.insert(areas.end(), containers.begin(), containers.end());
  return areas;
}

std::vector<Extent> partition_areas(const std::string& io_path, const Layout& layout, BlockMap& map) {
  std::vector<Extent> areas;
  for (const Partition& partition : layout.partitions) {
    if (partition.extended) continue;
    const Extent whole{partition.offset, partition.size};
    if (!is_ext_type(partition.fs_type)) {
      areas.push_back(whole);
      continue;
    }
    try {
      const auto used = ext4_used_extents(Ext4OpenOptions{io_path, partition.offset, partition.size, false, partition_name(partition)});
      areas.insert(areas.end(), used.begin(), used.end());
    } catch (const Error& error) {
      map.notes.push_back(std::string(error.what()) + ": mapped whole");
      areas.push_back(whole);
    }
  }
  return areas;
}

}  // namespace

std::uint64_t BlockMap::mapped_bytes() const {
  std::uint64_t total = 0;
  for (const Extent& extent : extents) total += extent.length;
  return total;
}

std::vector<Extent> block_aligned(const std::vector<Extent>& extents, std::uint64_t image_size) {
  std::vector<Extent> rounded;
  for (const Extent& extent : extents) {
    if (extent.length == 0) continue;
    const std::uint64_t begin = extent.offset / kMapBlockSize * kMapBlockSize;
    const std::uint64_t end = std::min((extent.end() + kMapBlockSize - 1) / kMapBlockSize * kMapBlockSize, image_size);
    if (end > begin) rounded.push_back(Extent{begin, end - begin});
  }
  return merged(std::move(rounded));
}

BlockMap image_block_map(const std::string& io_path, const std::string& name) {
  UniqueFd fd = open_read(io_path);
  BlockMap map;
  const Layout layout = detail::probe_layout_fd(fd.get(), name);
  map.image_size = layout.image_size;
  std::vector<Extent> areas = table_areas(io_path, layout, map);
  const auto inside = partition_areas(io_path, layout, map);
  areas.insert(areas.end(), inside.begin(), inside.end());
  // And every byte the image file holds as data, wherever it is (a boot loader outside the
  // partitions, stale bytes in free blocks): a card flashed onto zeros is the image byte for byte.
  const auto data = data_extents(fd.get());
  areas.insert(areas.end(), data.begin(), data.end());
  map.extents = block_aligned(areas, map.image_size);
  return map;
}

}  // namespace imprint
