// The station module's own pieces: sysfs and udev look-ups, the disk watcher.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

namespace imprint {

// /sys/block/... of a block device node (resolved); Error when it is not a block device.
std::string sysfs_block_dir(const std::string& devnode);
// The size of the medium in a block device; 0 when there is none (a reader without a card).
std::uint64_t block_size_of(const std::string& devnode);
// A loop device's backing file ("" for anything else).
std::string loop_backing_file(const std::string& sysfs_dir);
// udev's ID_SERIAL and ID_PATH of a device, where udevd keeps its database.
using UdevProperties = std::map<std::string, std::string>;
UdevProperties udev_properties(const std::string& sysfs_dir);

// --watch: whole disks that get a medium after the start. It listens (libudev monitor: udevd's
// events where udevd runs, else the kernel's) before it looks at the disks already there, so no
// card falls between the two; every disk holding a medium at the start is "seen" and never
// reported until its medium goes (size 0 or removed). A disk is reported once per medium.
class DiskWatcher {
 public:
  explicit DiskWatcher(std::string match);
  ~DiskWatcher();
  DiskWatcher(const DiskWatcher&) = delete;
  DiskWatcher& operator=(const DiskWatcher&) = delete;

  // The next disk with a new medium (its device node), or nullopt after `timeout`.
  std::optional<std::string> next(std::chrono::milliseconds timeout);

 private:
  struct Monitor;
  bool matches(const std::string& devnode) const;
  std::optional<std::string> consider(const std::string& devnode, bool removed);
  std::optional<std::string> sweep();

  std::string match_;
  std::unique_ptr<Monitor> monitor_;
  std::set<std::string> seen_;  // disks whose current medium is known
  std::chrono::steady_clock::time_point last_sweep_;
};

// A host-wide lock on a station's name: two stations with one name would reconcile (quarantine)
// each other's cards in flight. Error(Invalid) when another process holds it.
class StationNameLock {
 public:
  explicit StationNameLock(const std::string& name);
  ~StationNameLock();
  StationNameLock(const StationNameLock&) = delete;
  StationNameLock& operator=(const StationNameLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace imprint
