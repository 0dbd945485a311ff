// What identifies the card in a reader: sysfs for the SD CID and a loop device's backing file,
// libudev for the reader's ID_SERIAL / ID_PATH (present where udevd runs and keeps its database).
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <libudev.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/station/station.hpp"
#include "station_internal.hpp"

namespace imprint {

namespace fs = std::filesystem;

namespace {

std::string first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

std::string sysfs_block_dir(const std::string& devnode) {
  struct stat info {};
  if (::stat(devnode.c_str(), &info) != 0) throw_errno("cannot stat " + devnode);
  if (!S_ISBLK(info.st_mode)) throw Error(devnode + ": not a block device", ErrorCode::Invalid);
  return fs::canonical("/sys/dev/block/" + std::to_string(major(info.st_rdev)) + ":" + std::to_string(minor(info.st_rdev))).string();
}

std::uint64_t block_size_of(const std::string& devnode) {
  UniqueFd fd(::open(devnode.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  std::uint64_t size = 0;
  if (!fd || ::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) return 0;  // no medium
  return size;
}

std::string loop_backing_file(const std::string& sysfs_dir) {
  return first_line(fs::path(sysfs_dir) / "loop" / "backing_file");
}

UdevProperties udev_properties(const std::string& sysfs_dir) {
  UdevProperties properties;
  std::unique_ptr<udev, decltype(&udev_unref)> context(udev_new(), &udev_unref);
  if (!context) return properties;
  std::unique_ptr<udev_device, decltype(&udev_device_unref)> device(
      udev_device_new_from_syspath(context.get(), sysfs_dir.c_str()), &udev_device_unref);
  if (!device) return properties;
  for (const char* key : {"ID_SERIAL", "ID_PATH"}) {
    const char* value = udev_device_get_property_value(device.get(), key);
    if (value != nullptr) properties[key] = value;
  }
  return properties;
}

CardIdentity card_identity(const std::string& devnode) {
  const std::string sysfs = sysfs_block_dir(devnode);
  CardIdentity card;
  card.devnode = devnode;
  card.size = block_size_of(devnode);
  // An SD card's own serial: the CID register, where the host controller is an SD/MMC one.
  card.cid = first_line(fs::path(sysfs) / "device" / "cid");
  const UdevProperties properties = udev_properties(sysfs);
  if (auto it = properties.find("ID_SERIAL"); it != properties.end()) card.serial = it->second;
  if (auto it = properties.find("ID_PATH"); it != properties.end()) card.path = it->second;
  // A loop device (the tests' and the lab's card) is its backing file.
  if (const std::string backing = loop_backing_file(sysfs); !backing.empty()) card.serial = "loop:" + backing;
  return card;
}

bool identifies_the_card(const CardIdentity& card) { return !card.cid.empty() || card.serial.starts_with("loop:"); }

bool same_card(const CardIdentity& a, const CardIdentity& b) {
  if (!identifies_the_card(a) || !identifies_the_card(b) || a.size != b.size) return false;
  return !a.cid.empty() ? a.cid == b.cid : a.serial == b.serial;
}

nlohmann::ordered_json to_json(const CardIdentity& card) {
  nlohmann::ordered_json json;
  if (!card.cid.empty()) json["cid"] = card.cid;
  if (!card.serial.empty()) json["serial"] = card.serial;
  if (!card.path.empty()) json["path"] = card.path;
  json["devnode"] = card.devnode;
  json["size"] = card.size;
  return json;
}

}  // namespace imprint
