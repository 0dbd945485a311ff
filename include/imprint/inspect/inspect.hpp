// inspect: what an image holds, for people (text) and machines (JSON).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "imprint/image/image.hpp"

namespace imprint {

struct PartitionReport {
  Partition partition;
  std::optional<FsUsage> usage;  // for filesystems imprint can open
  std::string note;              // why usage is missing, if it is
};

struct InspectReport {
  std::string image;
  Layout layout;
  std::vector<PartitionReport> partitions;
  std::vector<std::string> boot_mounts;
  std::string data_mount;
  std::string device_type;    // from data:/mender/device_type
  std::string artifact_name;  // from primary:/etc/mender/artifact_info
  bool has_bootstrap_artifact = false;  // data:/mender/bootstrap.mender
};

InspectReport inspect_image(DiskImage& image);
std::string format_inspect(const InspectReport& report);
std::string inspect_json(const InspectReport& report);

}  // namespace imprint
