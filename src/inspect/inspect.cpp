#include "imprint/inspect/inspect.hpp"

#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "imprint/core/error.hpp"

namespace imprint {

namespace {

// The value of "key=value" in a small config file ("device_type=beaglebone").
std::string config_value(const std::string& text, const std::string& key) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  }
  return "";
}

// Reads a small file of a role's filesystem, or "" when the role, filesystem or file is absent.
std::string read_optional(DiskImage& image, Role role, const std::string& path) {
  try {
    Filesystem& filesystem = image.filesystem(image.partition(role));
    const auto stat = filesystem.stat(path);
    if (!stat || stat->type != FileType::Regular) return "";
    return read_all(filesystem, path);
  } catch (const Error&) {
    return "";
  }
}

bool exists_optional(DiskImage& image, Role role, const std::string& path) {
  try {
    return image.filesystem(image.partition(role)).stat(path).has_value();
  } catch (const Error&) {
    return false;
  }
}

std::string human_size(std::uint64_t bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return buffer;
}

}  // namespace

InspectReport inspect_image(DiskImage& image) {
  InspectReport report;
  report.image = image.path();
  report.layout = image.layout();
  for (const Partition& partition : image.layout().partitions) {
    PartitionReport entry{partition, std::nullopt, ""};
    // Free space of a filesystem only libguestfs opens would cost an appliance launch (~20 s):
    // reported only when the user chose --backend guestfs.
    const bool cheap = image.backend() == Backend::Guestfs || image.backend_for(partition) == Backend::Native;
    if (!cheap) {
      entry.note = "free space: use --backend guestfs";
    } else if (!partition.extended && partition.fs_type != "swap" && !partition.fs_type.empty()) {
      try {
        entry.usage = image.filesystem(partition).usage();
      } catch (const Error& error) {
        entry.note = error.what();
      }
    }
    report.partitions.push_back(std::move(entry));
  }
  const MountMap& mounts = image.mounts();
  report.boot_mounts = mounts.boot_mounts;
  report.data_mount = mounts.data_mount;
  report.device_type = config_value(read_optional(image, Role::Data, "/mender/device_type"), "device_type");
  report.artifact_name = config_value(read_optional(image, Role::Primary, "/etc/mender/artifact_info"), "artifact_name");
  report.has_bootstrap_artifact = exists_optional(image, Role::Data, "/mender/bootstrap.mender");
  return report;
}

std::string format_inspect(const InspectReport& report) {
  std::ostringstream out;
  out << report.image << ": " << to_string(report.layout.table) << " partition table, "
      << human_size(report.layout.image_size) << "\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-4s %-10s %-6s %12s %12s %12s  %s\n", "part", "role", "fs", "start", "size", "free", "label");
  out << line;
  for (const PartitionReport& entry : report.partitions) {
    const Partition& partition = entry.partition;
    const std::string free = entry.usage ? human_size(entry.usage->free_bytes) : "-";
    std::snprintf(line, sizeof line, "p%-3d %-10s %-6s %12s %12s %12s  %s\n", partition.number,
                  to_string(partition.role).c_str(), partition.extended ? "(ext)" : partition.fs_type.c_str(),
                  human_size(partition.offset).c_str(), human_size(partition.size).c_str(), free.c_str(),
                  partition.label.c_str());
    out << line;
  }
  out << "boot mount: ";
  for (std::size_t i = 0; i < report.boot_mounts.size(); ++i) out << (i ? ", " : "") << report.boot_mounts[i];
  out << "\ndata mount: " << report.data_mount << "\n";
  out << "device_type: " << (report.device_type.empty() ? "-" : report.device_type) << "\n";
  out << "artifact_name: " << (report.artifact_name.empty() ? "-" : report.artifact_name) << "\n";
  if (report.has_bootstrap_artifact) out << "bootstrap artifact: data:/mender/bootstrap.mender\n";
  return out.str();
}

std::string inspect_json(const InspectReport& report) {
  nlohmann::ordered_json json;
  json["image"] = report.image;
  json["table"] = to_string(report.layout.table);
  json["size"] = report.layout.image_size;
  json["disk_id"] = report.layout.disk_id;
  json["partitions"] = nlohmann::ordered_json::array();
  for (const PartitionReport& entry : report.partitions) {
    const Partition& partition = entry.partition;
    nlohmann::ordered_json item;
    item["number"] = partition.number;
    item["role"] = to_string(partition.role);
    item["fs_type"] = partition.fs_type;
    item["label"] = partition.label;
    item["uuid"] = partition.uuid;
    item["part_uuid"] = partition.part_uuid;
    item["part_type"] = partition.part_type;
    item["extended"] = partition.extended;
    item["offset"] = partition.offset;
    item["size"] = partition.size;
    if (entry.usage) {
      item["fs_size"] = entry.usage->total_bytes;
      item["free"] = entry.usage->free_bytes;
      item["block_size"] = entry.usage->block_size;
    } else if (!entry.note.empty()) {
      item["note"] = entry.note;
    }
    json["partitions"].push_back(item);
  }
  json["boot_mounts"] = report.boot_mounts;
  json["data_mount"] = report.data_mount;
  json["device_type"] = report.device_type;
  json["artifact_name"] = report.artifact_name;
  json["bootstrap_artifact"] = report.has_bootstrap_artifact;
  // Labels and device_type come from the image and need not be UTF-8: U+FFFD, not a json type_error.
  return json.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace imprint
