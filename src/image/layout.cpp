// Partition table and filesystem probing with libblkid, and the mender-convert role assignment.
#include <blkid/blkid.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <memory>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/image/image.hpp"
#include "layout_internal.hpp"

namespace imprint {

std::string to_string(TableType type) {
  switch (type) {
    case TableType::Dos: return "dos";
    case TableType::Gpt: return "gpt";
    case TableType::None: break;
  }
  return "none";
}

std::string to_string(Role role) {
  switch (role) {
    case Role::Boot: return "boot";
    case Role::Primary: return "primary";
    case Role::Secondary: return "secondary";
    case Role::Data: return "data";
    case Role::Swap: return "swap";
    case Role::Extended: return "extended";
    case Role::None: break;
  }
  return "none";
}

namespace {

constexpr std::uint64_t kSector = 512;  // libblkid reports partition start and size in 512-byte sectors

struct ProbeDeleter {
  void operator()(blkid_probe probe) const { blkid_free_probe(probe); }
};
using Probe = std::unique_ptr<std::remove_pointer_t<blkid_probe>, ProbeDeleter>;

Probe new_probe(int fd, std::uint64_t offset, blkid_loff_t size, const std::string& name) {
  Probe probe(blkid_new_probe());
  if (!probe) throw Error("cannot create a libblkid probe for " + name);
  if (blkid_probe_set_device(probe.get(), fd, static_cast<blkid_loff_t>(offset), size) != 0) {
    throw Error("libblkid cannot read " + name, ErrorCode::Corrupt);
  }
  return probe;
}

std::string lookup(blkid_probe probe, const char* key) {
  const char* value = nullptr;
  if (blkid_probe_lookup_value(probe, key, &value, nullptr) != 0 || value == nullptr) return {};
  return value;
}

std::string safe(const char* text) { return text == nullptr ? std::string() : std::string(text); }

// Probes only the partition table chain of the whole image (a filesystem signature at offset 0
// must not be mistaken for the disk).
Probe probe_table(int fd, const std::string& name) {
  Probe probe = new_probe(fd, 0, 0, name);
  blkid_probe_enable_superblocks(probe.get(), 0);
  blkid_probe_enable_partitions(probe.get(), 1);
  blkid_probe_set_partitions_flags(probe.get(), BLKID_PARTS_ENTRY_DETAILS);
  if (blkid_do_safeprobe(probe.get()) < 0) throw Error(name + ": cannot probe the partition table", ErrorCode::Corrupt);
  return probe;
}

void probe_filesystem(int fd, Partition& partition, const std::string& name) {
  Probe probe = new_probe(fd, partition.offset, static_cast<blkid_loff_t>(partition.size), name);
  blkid_probe_enable_partitions(probe.get(), 0);
  blkid_probe_enable_superblocks(probe.get(), 1);
  blkid_probe_set_superblocks_flags(probe.get(), BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID);
  // 1 = nothing found, -2 = ambiguous signatures: both leave the type empty, as blkid(8) does.
  if (blkid_do_safeprobe(probe.get()) != 0) return;
  partition.fs_type = lookup(probe.get(), "TYPE");
  partition.label = lookup(probe.get(), "LABEL");
  partition.uuid = lookup(probe.get(), "UUID");
}

Partition read_entry(blkid_partition entry, TableType table) {
  Partition partition;
  partition.number = blkid_partition_get_partno(entry);
  partition.offset = static_cast<std::uint64_t>(blkid_partition_get_start(entry)) * kSector;
  partition.size = static_cast<std::uint64_t>(blkid_partition_get_size(entry)) * kSector;
  partition.part_uuid = safe(blkid_partition_get_uuid(entry));
  partition.part_label = safe(blkid_partition_get_name(entry));
  partition.extended = blkid_partition_is_extended(entry) != 0;
  if (table == TableType::Gpt) {
    partition.part_type = safe(blkid_partition_get_type_string(entry));
  } else {
    std::array<char, 16> text{};
    std::snprintf(text.data(), text.size(), "0x%x", static_cast<unsigned>(blkid_partition_get_type(entry)));
    partition.part_type = text.data();
  }
  return partition;
}

TableType table_type(const std::string& type, const std::string& name) {
  if (type == "dos") return TableType::Dos;
  if (type == "gpt") return TableType::Gpt;
  throw Error(name + ": unsupported partition table type " + type, ErrorCode::Unsupported);
}

void check_inside(const Layout& layout, const std::string& name) {
  for (const Partition& partition : layout.partitions) {
    const std::uint64_t end = partition.offset + partition.size;
    if (end > layout.image_size) {
      throw Error(name + ": partition " + std::to_string(partition.number) + " ends at " + std::to_string(end) +
                      " bytes but the image is " + std::to_string(layout.image_size) + " bytes (truncated image?)",
                  ErrorCode::Corrupt);
    }
    // The MBR (also GPT's protective one) is sector 0; libblkid drops GPT entries outside the
    // header's usable range itself, so only this sector needs a check.
    if (partition.offset < kSector && partition.size > 0) {
      throw Error(name + ": partition " + std::to_string(partition.number) +
                      " starts at sector 0, over the partition table itself",
                  ErrorCode::Corrupt);
    }
  }
}

std::string sectors(const Partition& partition) {
  return "sectors " + std::to_string(partition.offset / kSector) + "-" +
         std::to_string((partition.offset + partition.size) / kSector - 1);
}

bool contains(const Partition& outer, const Partition& inner) {
  return inner.offset >= outer.offset && inner.offset + inner.size <= outer.offset + outer.size;
}

// Two partitions sharing sectors would be written through each other (the filesystem of one
// over the other's): refused, except a logical partition inside its extended container.
void check_overlaps(const Layout& layout, const std::string& name) {
  const auto& parts = layout.partitions;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    for (std::size_t j = i + 1; j < parts.size(); ++j) {
      const Partition& a = parts[i];
      const Partition& b = parts[j];
      if (a.size == 0 || b.size == 0) continue;
      if (a.offset >= b.offset + b.size || b.offset >= a.offset + a.size) continue;
      if ((a.extended && !b.extended && contains(a, b)) || (b.extended && !a.extended && contains(b, a))) continue;
      throw Error(name + ": partitions " + std::to_string(a.number) + " and " + std::to_string(b.number) + " overlap (p" +
                      std::to_string(a.number) + ": " + sectors(a) + ", p" + std::to_string(b.number) + ": " + sectors(b) + ")",
                  ErrorCode::Corrupt);
    }
  }
}

bool has_mender_labels(const Layout& layout) {
  return std::any_of(layout.partitions.begin(), layout.partitions.end(), [](const Partition& p) {
    return p.label == "boot" || p.label == "primary" || p.label == "secondary" || p.label == "data";
  });
}

void assign_roles(Layout& layout) {
  for (Partition& partition : layout.partitions) {
    if (partition.extended) partition.role = Role::Extended;
    else if (partition.fs_type == "swap") partition.role = Role::Swap;
  }
  if (has_mender_labels(layout)) {  // mender-convert 1.x labels its filesystems
    for (Partition& partition : layout.partitions) {
      if (partition.role != Role::None) continue;
      if (partition.label == "boot") partition.role = Role::Boot;
      else if (partition.label == "primary") partition.role = Role::Primary;
      else if (partition.label == "secondary") partition.role = Role::Secondary;
      else if (partition.label == "data") partition.role = Role::Data;
    }
    return;
  }
  constexpr std::array<Role, 4> kOrder{Role::Boot, Role::Primary, Role::Secondary, Role::Data};
  std::size_t next = 0;
  for (Partition& partition : layout.partitions) {
    if (partition.role != Role::None || next == kOrder.size()) continue;
    partition.role = kOrder[next++];
  }
}

}  // namespace

namespace detail {

Layout probe_layout_fd(int fd, const std::string& name) {
  const Probe probe = probe_table(fd, name);
  Layout layout;
  layout.image_size = static_cast<std::uint64_t>(blkid_probe_get_size(probe.get()));
  // Read the tag before blkid_probe_get_partitions, which re-runs the chain and drops it.
  const bool protective_mbr = lookup(probe.get(), "PTTYPE") == "PMBR";
  blkid_partlist list = blkid_probe_get_partitions(probe.get());
  blkid_parttable table = list == nullptr ? nullptr : blkid_partlist_get_table(list);
  if (table == nullptr && protective_mbr) {
    // libblkid rejects a GPT header that describes a disk larger than the file, and sfdisk does
    // too: the entries cannot be read, so the message names the table instead of a partition.
    throw Error(name + ": found a protective MBR but no GPT that fits in the " + std::to_string(layout.image_size) +
                    "-byte image (truncated image?)",
                ErrorCode::Corrupt);
  }
  if (table == nullptr) throw Error(name + ": no partition table found", ErrorCode::Corrupt);
  layout.table = table_type(safe(blkid_parttable_get_type(table)), name);
  layout.disk_id = safe(blkid_parttable_get_id(table));

  const int count = blkid_partlist_numof_partitions(list);
  for (int index = 0; index < count; ++index) {
    layout.partitions.push_back(read_entry(blkid_partlist_get_partition(list, index), layout.table));
  }
  std::sort(layout.partitions.begin(), layout.partitions.end(),
            [](const Partition& a, const Partition& b) { return a.number < b.number; });
  check_inside(layout, name);
  check_overlaps(layout, name);
  for (Partition& partition : layout.partitions) {
    if (!partition.extended) probe_filesystem(fd, partition, name);
  }
  assign_roles(layout);
  return layout;
}

std::optional<std::uint64_t> table_span_fd(int fd) {
  // libblkid refuses a GPT whose header describes a disk larger than the file, and this file is
  // still growing: a GPT's extent is where its header puts the backup header (AlternateLBA at byte
  // 32 of LBA 1; only a bound, the table is checked when the image is opened).
  struct [[gnu::packed]] GptHeader {
    char signature[8];
    std::uint8_t skipped[24];
    std::uint64_t alternate_lba;  // little-endian, as the host (x86, arm)
  } header{};
  if (::pread(fd, &header, sizeof header, kSector) == static_cast<ssize_t>(sizeof header) &&
      std::memcmp(header.signature, "EFI PART", 8) == 0) {
    if (header.alternate_lba >= (std::uint64_t{1} << 48)) return std::nullopt;  // nonsense: no bound from it
    return (header.alternate_lba + 1) * kSector;
  }
  Probe probe(blkid_new_probe());
  if (!probe || blkid_probe_set_device(probe.get(), fd, 0, 0) != 0) return std::nullopt;
  blkid_probe_enable_superblocks(probe.get(), 0);
  blkid_probe_enable_partitions(probe.get(), 1);
  if (blkid_do_safeprobe(probe.get()) != 0) return std::nullopt;
  blkid_partlist list = blkid_probe_get_partitions(probe.get());
  if (list == nullptr || blkid_partlist_get_table(list) == nullptr) return std::nullopt;
  std::uint64_t end = 0;
  for (int index = 0; index < blkid_partlist_numof_partitions(list); ++index) {
    const blkid_partition entry = blkid_partlist_get_partition(list, index);
    end = std::max(end, static_cast<std::uint64_t>(blkid_partition_get_start(entry) + blkid_partition_get_size(entry)) * kSector);
  }
  return end;
}

}  // namespace detail

Layout probe_layout(const std::string& image_path) {
  UniqueFd fd = open_read(image_path, InputKind::FileOrBlockDevice, "a disk image");
  return detail::probe_layout_fd(fd.get(), image_path);
}

}  // namespace imprint
