// --watch: the disks that get a card after the start, from a libudev monitor.
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <sys/file.h>
#include <unistd.h>

#include <libudev.h>

#include <cctype>
#include <cstring>
#include <vector>
#include <filesystem>

#include "imprint/core/error.hpp"
#include "station_internal.hpp"

namespace imprint {

namespace {

using UdevPtr = std::unique_ptr<udev, decltype(&udev_unref)>;
using MonitorPtr = std::unique_ptr<udev_monitor, decltype(&udev_monitor_unref)>;
using DevicePtr = std::unique_ptr<udev_device, decltype(&udev_device_unref)>;

// A sweep over the disks now and then catches a medium whose event came before its size was set.
constexpr std::chrono::seconds kSweepEvery{2};

}  // namespace

struct DiskWatcher::Monitor {
  UdevPtr context{udev_new(), &udev_unref};
  MonitorPtr monitor{nullptr, &udev_monitor_unref};
};

DiskWatcher::DiskWatcher(std::string match) : match_(std::move(match)), monitor_(std::make_unique<Monitor>()) {
  if (!monitor_->context) throw Error("--watch: cannot start libudev", ErrorCode::Generic);
  // udevd's events (after its rules ran: device nodes and ID_* properties are in place) where udevd
  // runs; else the kernel's own (a container, a minimal system).
  const char* source = ::access("/run/udev/control", F_OK) == 0 ? "udev" : "kernel";
  monitor_->monitor.reset(udev_monitor_new_from_netlink(monitor_->context.get(), source));
  if (!monitor_->monitor || udev_monitor_filter_add_match_subsystem_devtype(monitor_->monitor.get(), "block", "disk") < 0 ||
      udev_monitor_enable_receiving(monitor_->monitor.get()) < 0) {
    throw Error(std::string("--watch: cannot listen to ") + source + " block device events (libudev monitor; root needed?)",
                ErrorCode::Generic);
  }
  // Everything with a medium now is the station's surroundings, not a card for it.
  for (const auto& entry : std::filesystem::directory_iterator("/sys/block")) {
    const std::string devnode = "/dev/" + entry.path().filename().string();
    if (block_size_of(devnode) > 0) seen_.insert(devnode);
  }
  last_sweep_ = std::chrono::steady_clock::now();
}

DiskWatcher::~DiskWatcher() = default;

bool DiskWatcher::matches(const std::string& devnode) const {
  if (match_.empty()) return true;
  std::string sysfs;
  try {
    sysfs = sysfs_block_dir(devnode);
  } catch (const Error&) {
    return false;
  }
  std::vector<std::string> names{devnode, loop_backing_file(sysfs)};
  for (const auto& [key, value] : udev_properties(sysfs)) names.push_back(value);
  for (const std::string& name : names) {
    if (!name.empty() && ::fnmatch(match_.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

std::optional<std::string> DiskWatcher::consider(const std::string& devnode, bool removed) {
  if (removed || block_size_of(devnode) == 0) {
    seen_.erase(devnode);  // the card is out: the next one is new
    return std::nullopt;
  }
  if (!seen_.insert(devnode).second) return std::nullopt;  // the same card (or its partitions re-read)
  if (!matches(devnode)) return std::nullopt;
  return devnode;
}

std::optional<std::string> DiskWatcher::sweep() {
  last_sweep_ = std::chrono::steady_clock::now();
  for (const auto& entry : std::filesystem::directory_iterator("/sys/block")) {
    const std::string devnode = "/dev/" + entry.path().filename().string();
    if (auto found = consider(devnode, false)) return found;
  }
  return std::nullopt;
}

std::optional<std::string> DiskWatcher::next(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_sweep_ >= kSweepEvery) {
      if (auto found = sweep()) return found;
    }
    if (now >= deadline) return std::nullopt;
    pollfd descriptor{udev_monitor_get_fd(monitor_->monitor.get()), POLLIN, 0};
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(std::min(deadline - now, std::chrono::steady_clock::duration(kSweepEvery)));
    if (::poll(&descriptor, 1, static_cast<int>(wait.count())) <= 0) continue;
    DevicePtr device(udev_monitor_receive_device(monitor_->monitor.get()), &udev_device_unref);
    if (!device) continue;
    const char* node = udev_device_get_devnode(device.get());
    const char* action = udev_device_get_action(device.get());
    if (node == nullptr) continue;
    if (auto found = consider(node, action != nullptr && std::strcmp(action, "remove") == 0)) return found;
  }
}

StationNameLock::StationNameLock(const std::string& name) {
  std::string file;
  for (const char c : name) file += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ? c : '_';
  const std::string directory = ::access("/run/lock", W_OK) == 0 ? "/run/lock" : "/tmp";
  const std::string path = directory + "/imprint-station-" + file + ".lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0) throw_errno("cannot open " + path);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    fd_ = -1;
    throw Error("another station named '" + name + "' runs on this host (" + path + "); give each its own --station NAME",
                ErrorCode::Invalid);
  }
}

StationNameLock::~StationNameLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace imprint
