// Reading the rootfs /etc/fstab: which partition the device mounts where.
#include <algorithm>
#include <cctype>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "imprint/core/error.hpp"
#include "imprint/image/image.hpp"

namespace imprint {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

std::string unquote(std::string_view value) {
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
    value = value.substr(1, value.size() - 2);
  }
  return std::string(value);
}

// fstab writes spaces and tabs in fields as octal escapes ("\040").
std::string unescape(std::string_view field) {
  std::string out;
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const std::string_view digits = field.substr(i + 1, 3);
      if (std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        out.push_back(static_cast<char>(std::stoi(std::string(digits), nullptr, 8)));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

// The partition number of a kernel device name: /dev/mmcblk0p4, /dev/nvme0n1p4, /dev/loop0p4 ->
// 4 ("p" after a digit); /dev/sda4, /dev/vda4, /dev/xvda4, /dev/hda4 -> 4 (digits after a letter).
std::optional<int> kernel_partition_number(std::string_view device) {
  if (!starts_with(device, "/dev/")) return std::nullopt;
  std::size_t digits = device.size();
  while (digits > 0 && std::isdigit(static_cast<unsigned char>(device[digits - 1]))) --digits;
  if (digits == device.size() || digits < 2 || device.size() - digits > 3) return std::nullopt;
  const char before = device[digits - 1];
  const bool p_form = before == 'p' && std::isdigit(static_cast<unsigned char>(device[digits - 2]));
  // These names end in a digit already for the whole disk, so only the "p" form names a partition.
  const bool needs_p = starts_with(device, "/dev/mmcblk") || starts_with(device, "/dev/nvme") ||
                       starts_with(device, "/dev/loop") || starts_with(device, "/dev/md");
  if (needs_p ? !p_form : !std::isalpha(static_cast<unsigned char>(before))) return std::nullopt;
  return std::stoi(std::string(device.substr(digits)));
}

const Partition* find_partition(const Layout& layout, std::string_view device) {
  struct Tag {
    std::string_view prefix;
    std::string Partition::*field;
  };
  static const Tag kTags[] = {
      {"LABEL=", &Partition::label},           {"UUID=", &Partition::uuid},
      {"PARTUUID=", &Partition::part_uuid},    {"PARTLABEL=", &Partition::part_label},
      {"/dev/disk/by-label/", &Partition::label}, {"/dev/disk/by-uuid/", &Partition::uuid},
      {"/dev/disk/by-partuuid/", &Partition::part_uuid}, {"/dev/disk/by-partlabel/", &Partition::part_label},
  };
  for (const Tag& tag : kTags) {
    if (!starts_with(device, tag.prefix)) continue;
    const std::string wanted = unquote(device.substr(tag.prefix.size()));
    // Labels are case-sensitive; UUIDs are hex and may be written in either case.
    const bool is_uuid = tag.field == &Partition::uuid || tag.field == &Partition::part_uuid;
    for (const Partition& partition : layout.partitions) {
      const std::string& have = partition.*(tag.field);
      if (!have.empty() && (is_uuid ? iequals(have, wanted) : have == wanted)) return &partition;
    }
    return nullptr;
  }
  const std::optional<int> number = kernel_partition_number(device);
  if (!number) return nullptr;
  for (const Partition& partition : layout.partitions) {
    if (partition.number == *number) return &partition;
  }
  return nullptr;
}

std::string trim_mount_point(std::string mount_point) {
  while (mount_point.size() > 1 && mount_point.back() == '/') mount_point.pop_back();
  return mount_point;
}

}  // namespace

MountMap parse_fstab(const std::string& fstab, const Layout& layout) {
  MountMap mounts;
  std::optional<std::string> data_mount;
  std::istringstream lines(fstab);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    std::istringstream fields(line);
    std::string device, mount_point;
    if (!(fields >> device >> mount_point) || device.front() == '#') continue;
    mount_point = trim_mount_point(unescape(mount_point));
    if (mount_point.empty() || mount_point.front() != '/') continue;  // swap lines have "none"
    const Partition* partition = find_partition(layout, unescape(device));
    if (partition == nullptr) continue;
    // Every rootfs path would then land on that partition (vfat, the data partition), and a device
    // built that way would not boot from it either: an image to refuse, not to follow.
    if (mount_point == "/" && partition->role != Role::Primary && partition->role != Role::Secondary) {
      throw Error("/etc/fstab line " + std::to_string(number) + " mounts the " + to_string(partition->role) + " partition (p" +
                      std::to_string(partition->number) + ") at /, where only a root filesystem may be mounted",
                  ErrorCode::Corrupt);
    }
    if (partition->role == Role::Boot) mounts.boot_mounts.push_back(mount_point);
    if (partition->role == Role::Data && !data_mount) data_mount = mount_point;
  }
  if (data_mount) mounts.data_mount = *data_mount;
  return mounts;
}

}  // namespace imprint
