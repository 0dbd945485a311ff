// flash's target: the refusals (mounted, swap, device-mapper, too small, not removable, one of the
// flash's own inputs) and opening it for writing.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "flash_internal.hpp"
#include "imprint/core/error.hpp"

namespace imprint {

namespace flash_detail {

namespace {

namespace fs = std::filesystem;

std::string read_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The partitions of a whole disk in sysfs and the disk itself, as "major:minor".
struct DiskNodes {
  fs::path disk;  // /sys/block/sdX (resolved)
  std::set<std::string> devs;
};

DiskNodes disk_nodes(dev_t device) {
  const std::string dev = std::to_string(major(device)) + ":" + std::to_string(minor(device));
  fs::path node = fs::canonical("/sys/dev/block/" + dev);
  if (fs::exists(node / "partition")) node = node.parent_path();  // a partition: look at its disk
  DiskNodes nodes{node, {read_line(node / "dev")}};
  for (const auto& entry : fs::directory_iterator(node)) {
    if (fs::exists(entry.path() / "partition")) nodes.devs.insert(read_line(entry.path() / "dev"));
  }
  return nodes;
}

void refuse(const std::string& device, const std::string& why) {
  throw Error("refusing to write " + device + ": " + why, ErrorCode::Invalid);
}

void check_mounts(const std::string& device, const DiskNodes& nodes) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point;
    fields >> id >> parent >> dev >> root >> mount_point;
    if (!nodes.devs.count(dev)) continue;
    if (mount_point == "/") refuse(device, "it holds the running system (mounted at /)");
    refuse(device, "it is mounted (device " + dev + " at " + mount_point + "); unmount it first");
  }
  std::ifstream swaps("/proc/swaps");
  std::getline(swaps, line);  // header
  while (std::getline(swaps, line)) {
    const std::string path = line.substr(0, line.find_first_of(" \t"));
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0 && S_ISBLK(info.st_mode) &&
        nodes.devs.count(std::to_string(major(info.st_rdev)) + ":" + std::to_string(minor(info.st_rdev)))) {
      refuse(device, "it is used as swap (" + path + ")");
    }
  }
}

void check_holders(const std::string& device, const DiskNodes& nodes) {
  std::vector<fs::path> places{nodes.disk};
  for (const auto& entry : fs::directory_iterator(nodes.disk)) {
    if (fs::exists(entry.path() / "partition")) places.push_back(entry.path());
  }
  for (const fs::path& place : places) {
    if (fs::exists(place / "holders") && !fs::is_empty(place / "holders")) {
      refuse(device, place.filename().string() + " is in use by device-mapper, RAID or LVM (" + (place / "holders").string() + ")");
    }
  }
}

// The same file (or device), however it is named: through a symlink, a hard link or another path.
bool same_file(const struct stat& a, const struct stat& b) {
  if (S_ISBLK(a.st_mode) && S_ISBLK(b.st_mode)) return a.st_rdev == b.st_rdev;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

std::uint64_t fd_size(int fd, const std::string& name) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) throw_errno("cannot stat " + name);
  if (S_ISBLK(info.st_mode)) {
    std::uint64_t size = 0;
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0) throw_errno("cannot get the size of " + name);
    return size;
  }
  return static_cast<std::uint64_t>(info.st_size);
}

void refuse_input_targets(const FlashRequest& request) {
  struct stat target {};
  if (::stat(request.target.c_str(), &target) != 0) return;  // missing: created fresh, nothing to lose
  std::vector<std::pair<std::string, std::string>> inputs{{"the golden image", request.golden_path},
                                                          {"the image being flashed", request.image_path},
                                                          {"the bmap", request.bmap_path},
                                                          {"the profile", request.profile_path}};
  const fs::path profile_directory = request.profile_path.empty() ? fs::path() : fs::path(request.profile_path).parent_path();
  for (const auto& [name, value] : request.overrides) {
    inputs.emplace_back("the file of variable " + name, value);
    if (!profile_directory.empty()) inputs.emplace_back("the file of variable " + name, (profile_directory / value).string());
  }
  for (const auto& [what, path] : inputs) {
    struct stat input {};
    if (path.empty() || path.find('\0') != std::string::npos || ::stat(path.c_str(), &input) != 0) continue;
    if (same_file(target, input)) refuse(request.target, "it is " + what + " (" + path + ")");
  }
}

Target open_target(const FlashRequest& request, const Source& source) {
  struct stat info {};
  if (::stat(request.target.c_str(), &info) != 0) {
    if (errno != ENOENT) throw_errno("cannot stat " + request.target);
    UniqueFd fd(::open(request.target.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) throw_errno("cannot create " + request.target);
    if (::ftruncate(fd.get(), static_cast<off_t>(source.size)) != 0) throw_errno("cannot size " + request.target);
    return Target{std::move(fd), TargetKind::NewFile};
  }
  if (S_ISREG(info.st_mode)) {
    struct stat source_info {};
    if (::fstat(source.fd.get(), &source_info) == 0 && same_file(source_info, info)) refuse(request.target, "it is the image being flashed");
    if (!request.force) refuse(request.target, "it is an existing file (--force overwrites it)");
    UniqueFd fd(::open(request.target.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) throw_errno("cannot open " + request.target);
    if (static_cast<std::uint64_t>(info.st_size) < source.size && ::ftruncate(fd.get(), static_cast<off_t>(source.size)) != 0) {
      throw_errno("cannot size " + request.target);
    }
    return Target{std::move(fd), TargetKind::ExistingFile};
  }
  if (!S_ISBLK(info.st_mode)) refuse(request.target, "it is neither a block device nor a regular file");
  check_block_target(request.target, source.size, request.force);
  // O_EXCL on a block device: the kernel refuses it while anything has it mounted or claimed.
  UniqueFd fd(::open(request.target.c_str(), O_RDWR | O_EXCL | O_CLOEXEC));
  if (!fd) throw_errno("cannot open " + request.target + " exclusively");
  return Target{std::move(fd), TargetKind::BlockDevice};
}

}  // namespace flash_detail

void check_block_target(const std::string& device, std::uint64_t image_size, bool force) {
  struct stat info {};
  if (::stat(device.c_str(), &info) != 0) throw_errno("cannot stat " + device);
  if (!S_ISBLK(info.st_mode)) flash_detail::refuse(device, "it is not a block device");
  const flash_detail::DiskNodes nodes = flash_detail::disk_nodes(info.st_rdev);
  flash_detail::check_mounts(device, nodes);
  flash_detail::check_holders(device, nodes);
  UniqueFd fd = open_read(device);
  const std::uint64_t size = flash_detail::fd_size(fd.get(), device);
  if (size < image_size) {
    flash_detail::refuse(device, "it holds " + std::to_string(size) + " bytes, the image " + std::to_string(image_size));
  }
  if (!force && flash_detail::read_line(nodes.disk / "removable") != "1") {
    flash_detail::refuse(device, nodes.disk.filename().string() + " is not a removable disk (--force writes it anyway)");
  }
}

}  // namespace imprint
