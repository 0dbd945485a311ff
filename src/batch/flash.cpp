// imprint flash: stamp (or take) an image, write its mapped blocks to a card, read them back.
#include "imprint/flash.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <sstream>

#include "imprint/block_map.hpp"
#include "imprint/bmap.hpp"
#include "imprint/bytes.hpp"
#include "imprint/copy.hpp"
#include "imprint/device.hpp"
#include "imprint/error.hpp"
#include "imprint/fileio.hpp"
#include "imprint/image.hpp"
#include "imprint/profile.hpp"
#include "imprint/stamp.hpp"
#include "record.hpp"

namespace imprint {

namespace {

// Bytes per buffered read/write: 128 KiB, like the stamp's copy (src/image/copy.cpp): through the
// page cache, larger chunks cost several times more CPU (bench/), and the kernel merges the writes
// into large requests to the card anyway. The read-back bypasses the cache (O_DIRECT), so there
// large reads are what keeps a card busy.
constexpr std::size_t kChunk = 128 * 1024;
constexpr std::size_t kReadBackChunk = 4 * 1024 * 1024;

namespace fs = std::filesystem;

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

std::string read_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The image to write: an open descriptor, its size, its data extents (the rest are holes, which read
// as zeros), the ranges a card must hold (the image's block map, block aligned), and the bmap whose
// checksums the write pass checks, when one was given.
struct Source {
  UniqueFd fd;
  std::uint64_t size = 0;
  std::vector<Extent> data;
  std::vector<Extent> ranges;
  std::optional<Bmap> bmap;
  std::string name;
  std::string device_id;
  ManifestRecord record;  // what is known about the image (device, credentials, files)
  std::vector<std::string> warnings;
};

// The ranges to write: the image's own block map (never the file's non-hole parts alone).
void map_source(Source& source) {
  source.size = fd_size(source.fd.get(), source.name);
  source.data = data_extents(source.fd.get());
  const BlockMap map = image_block_map(fd_path(source.fd.get()), source.name);
  source.ranges = map.extents;
  for (const std::string& note : map.notes) source.warnings.push_back(source.name + ": " + note);
}

Source stamped_source(const FlashRequest& request) {
  if (request.device_id.empty()) throw Error("flash -p needs --device ID", ErrorCode::Invalid);
  const Profile profile = load_profile(request.profile_path);
  const DevicePlan device = prepare_device(profile, request.device_id, request.overrides);
  // The golden image's digest (for the record) is a read of the whole image: on the other core,
  // while this one copies and stamps.
  auto golden_sha256 = std::async(std::launch::async, [&] { return detail::sparse_file_sha256(request.golden_path); });
  Source source;
  source.name = "the image stamped for " + request.device_id;
  source.device_id = request.device_id;
  source.fd = unnamed_temp_file(source.name);
  copy_image(request.golden_path, source.fd.get());
  {
    DiskImage image = DiskImage::open(fd_path(source.fd.get()), OpenMode::ReadWrite, request.backend, request.golden_path);
    StampResult stamped;
    stamped.plan = device.plan;
    stamp_open_image(image, stamped);
    source.warnings = stamped.warnings;
  }
  for (auto& warning : renew_bootstrap_artifact(fd_path(source.fd.get()), device.plan, request.backend, "")) source.warnings.push_back(warning);
  map_source(source);
  source.record = detail::device_record(device, device_exports(device));
  source.record["profile_sha256"] = sha256_hex(read_host_file(request.profile_path));
  source.record["golden_sha256"] = golden_sha256.get();
  return source;
}

std::string default_bmap(const std::string& image) {
  std::string stem = image;
  for (const char* suffix : {".gz", ".xz", ".zst", ".bz2", ".zip"}) {
    if (stem.ends_with(suffix)) stem.resize(stem.size() - std::string(suffix).size());
  }
  for (const std::string& candidate : {image + ".bmap", (stem.ends_with(".img") ? stem.substr(0, stem.size() - 4) : stem) + ".bmap"}) {
    if (fs::exists(candidate)) return candidate;
  }
  return "";
}

std::string image_stem(const std::string& image) {
  std::string name = fs::path(image).filename().string();
  for (const char* suffix : {".gz", ".xz", ".zst", ".bz2", ".zip", ".img"}) {
    if (name.ends_with(suffix)) name.resize(name.size() - std::string(suffix).size());
  }
  return name;
}

// A bmap is trusted for its checksums, never for what it leaves out: a bmap made from the file's
// holes (bmaptool create, older imprint) misses zero blocks the filesystems need. The union is written.
void apply_bmap(Source& source, const std::string& bmap_path) {
  Bmap bmap = parse_bmap(read_host_file(bmap_path, kListInputLimit), bmap_path);
  if (bmap.image_size != source.size) {
    throw Error(bmap_path + ": describes an image of " + std::to_string(bmap.image_size) + " bytes, but " + source.name +
                    " has " + std::to_string(source.size),
                ErrorCode::Invalid);
  }
  const std::vector<Extent> listed = bmap.extents();
  const std::vector<Extent> missing = subtract(source.ranges, listed);
  if (!missing.empty()) {
    std::uint64_t bytes = 0;
    for (const Extent& extent : missing) bytes += extent.length;
    source.warnings.push_back(bmap_path + " leaves out " + std::to_string(bytes / kBmapBlockSize) +
                              " block(s) the image's partition table and filesystems need (first at byte " +
                              std::to_string(missing.front().offset) + "); writing them too");
  }
  source.ranges = block_aligned(merged([&] {
                                  std::vector<Extent> all = source.ranges;
                                  all.insert(all.end(), listed.begin(), listed.end());
                                  return all;
                                }()),
                                source.size);
  source.bmap = std::move(bmap);
}

Source image_source(const FlashRequest& request) {
  Source source;
  source.name = request.image_path;
  source.device_id = request.device_id.empty() ? image_stem(request.image_path) : request.device_id;
  if (is_compressed_image(request.image_path)) {
    source.fd = unnamed_temp_file("decompressing " + request.image_path);
    decompress_image(request.image_path, source.fd.get());
  } else {
    source.fd = open_read(request.image_path);
  }
  map_source(source);
  const std::string bmap_path = request.bmap_path.empty() ? default_bmap(request.image_path) : request.bmap_path;
  if (!bmap_path.empty()) {
    apply_bmap(source, bmap_path);
    source.record["bmap"] = bmap_path;
  }
  source.record["device_id"] = source.device_id;
  source.record["image"] = request.image_path;
  return source;
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

// What the target is decides how a range that must read as zero is made so.
enum class TargetKind {
  NewFile,       // created (and sized) by this flash: every byte already reads as zero
  ExistingFile,  // a regular file with old content: punch holes
  BlockDevice,   // a card: BLKZEROOUT, else written zeros
};

struct Target {
  UniqueFd fd;
  TargetKind kind = TargetKind::NewFile;
};

// The same file (or device), however it is named: through a symlink, a hard link or another path.
bool same_file(const struct stat& a, const struct stat& b) {
  if (S_ISBLK(a.st_mode) && S_ISBLK(b.st_mode)) return a.st_rdev == b.st_rdev;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Refuses a target that is one of the flash's own inputs (the golden, the image, its bmap, the
// profile, a file a variable names): flashing over it would destroy what is being read.
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

// Opens the target for writing after the refusals; creates a regular file when missing.
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

// A piece of the map: bytes of the image, or a run the image holds as a hole (it reads as zeros).
struct Written {
  Extent range;
  bool zeros = false;
};

// Splits the map's ranges at the image's holes, in order.
std::vector<Written> pieces(const std::vector<Extent>& ranges, const std::vector<Extent>& data) {
  std::vector<Written> result;
  const std::vector<Extent> with_data = intersect(ranges, data);
  const std::vector<Extent> holes = subtract(ranges, data);
  for (const Extent& extent : with_data) result.push_back(Written{extent, false});
  for (const Extent& extent : holes) result.push_back(Written{extent, true});
  std::sort(result.begin(), result.end(), [](const Written& a, const Written& b) { return a.range.offset < b.range.offset; });
  return result;
}

void write_zeros(int target, const Extent& extent, const std::string& target_name, std::vector<char>& buffer) {
  std::fill(buffer.begin(), buffer.end(), '\0');
  for (std::uint64_t at = extent.offset; at < extent.end();) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), extent.end() - at));
    pwrite_all(target, std::string_view(buffer.data(), want), at, target_name);
    at += want;
  }
}

// Makes a range of the target read as zeros the cheapest way its kind allows; returns the bytes
// actually sent to it (0 when nothing needed writing).
std::uint64_t zero_range(const Target& target, const Extent& extent, const std::string& target_name, std::vector<char>& buffer) {
  switch (target.kind) {
    case TargetKind::NewFile:
      return 0;
    case TargetKind::ExistingFile:
      if (::fallocate(target.fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(extent.offset),
                      static_cast<off_t>(extent.length)) == 0) {
        return 0;
      }
      break;
    case TargetKind::BlockDevice: {
      // The card zeroes the range itself (write-zeroes/discard), and the kernel drops its cached pages.
      std::uint64_t span[2] = {extent.offset, extent.length};
      if (extent.offset % 512 == 0 && extent.length % 512 == 0 && ::ioctl(target.fd.get(), BLKZEROOUT, span) == 0) {
        return extent.length;
      }
      break;
    }
  }
  write_zeros(target.fd.get(), extent, target_name, buffer);
  return extent.length;
}

// Copies one piece of the image onto the target; feeds its bytes to range_digest when given.
void copy_range(const Source& source, int target, const Extent& extent, const std::string& target_name, std::vector<char>& buffer,
                Sha256* range_digest) {
  for (std::uint64_t at = extent.offset; at < extent.end();) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), extent.end() - at));
    const ssize_t got = ::pread(source.fd.get(), buffer.data(), want, static_cast<off_t>(at));
    if (got < 0 && errno == EINTR) continue;
    if (got != static_cast<ssize_t>(want)) throw_errno("cannot read " + source.name);
    const std::string_view chunk(buffer.data(), want);
    if (range_digest != nullptr) range_digest->update(chunk);
    pwrite_all(target, chunk, at, target_name);
    at += want;
  }
}

using AlignedBuffer = std::unique_ptr<char, decltype(&std::free)>;

AlignedBuffer aligned_buffer(std::size_t size, const std::string& purpose) {
  void* memory = nullptr;
  if (::posix_memalign(&memory, 4096, size) != 0) throw Error("out of memory for " + purpose);
  return AlignedBuffer(static_cast<char*>(memory), &std::free);
}

// Compares `length` bytes read back from the card at `offset` with the source (from its page cache,
// where the write pass just left it) or with zeros, a cache-sized slice of the source at a time.
bool matches_source(const Source& source, bool zeros, std::uint64_t offset, const char* card, std::size_t length,
                    std::vector<char>& expected) {
  for (std::size_t done = 0; done < length;) {
    const std::size_t part = std::min(expected.size(), length - done);
    const auto at = static_cast<off_t>(offset + done);
    if (zeros) {
      std::fill(expected.begin(), expected.begin() + static_cast<std::ptrdiff_t>(part), '\0');
    } else if (::pread(source.fd.get(), expected.data(), part, at) != static_cast<ssize_t>(part)) {
      throw_errno("cannot read " + source.name);
    }
    if (std::memcmp(card + done, expected.data(), part) != 0) return false;
    done += part;
  }
  return true;
}

// Test hook: a card that changes a byte between the write and the read-back (IMPRINT_TEST_CORRUPT_AT
// = byte offset): the byte there is flipped on the target itself, past every cache.
void corrupt_for_test(const std::string& target) {
  const char* at = std::getenv("IMPRINT_TEST_CORRUPT_AT");
  if (at == nullptr || *at == '\0') return;
  const auto offset = static_cast<off_t>(std::stoull(at));
  UniqueFd fd(::open(target.c_str(), O_RDWR | O_CLOEXEC));
  char byte = 0;
  if (!fd || ::pread(fd.get(), &byte, 1, offset) != 1) throw_errno("test hook: cannot read " + target);
  byte = static_cast<char>(byte ^ 0x5a);
  if (::pwrite(fd.get(), &byte, 1, offset) != 1 || ::fsync(fd.get()) != 0) throw_errno("test hook: cannot write " + target);
}

// Reads the target back past the page cache and compares it byte for byte with the image: every
// range of the map, zero runs included (cheaper than hashing, and exact). Returns the first range
// that differs, or "".
std::string read_back(const std::string& target, int write_fd, const Source& source, const std::vector<Written>& written) {
  UniqueFd fd(::open(target.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
  if (!fd) {  // no O_DIRECT here (tmpfs): drop the cached pages instead
    ::posix_fadvise(write_fd, 0, 0, POSIX_FADV_DONTNEED);
    fd = open_read(target);
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
  }
  AlignedBuffer card = aligned_buffer(kReadBackChunk, "the read-back of " + target);
  std::vector<char> expected(kChunk);
  const char* hook = std::getenv("IMPRINT_TEST_CORRUPT_READBACK");
  bool corrupt = hook != nullptr && std::string(hook) == "1";  // test hook: a card that returns a flipped bit
  for (const Written& range : written) {
    const Extent& extent = range.range;
    for (std::uint64_t at = extent.offset; at < extent.end();) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kReadBackChunk, extent.end() - at));
      const std::size_t aligned = (want + 4095) / 4096 * 4096;  // O_DIRECT reads whole blocks
      const ssize_t got = ::pread(fd.get(), card.get(), aligned, static_cast<off_t>(at));
      if (got < 0 && errno == EINTR) continue;
      if (got < static_cast<ssize_t>(want)) throw_errno("cannot read back " + target);
      if (corrupt) card.get()[0] ^= 0x01;
      corrupt = false;
      if (!matches_source(source, range.zeros, at, card.get(), want, expected)) {
        return "bytes " + std::to_string(extent.offset) + "-" + std::to_string(extent.end() - 1) + " (" +
               (range.zeros ? "must read as zeros" : "image data") + ") read back differently from the image";
      }
      at += want;
    }
  }
  return "";
}

// The unmapped gaps of [0, size) between the ranges.
std::vector<Extent> gaps(const std::vector<Extent>& ranges, std::uint64_t size) {
  return subtract({Extent{0, size}}, ranges);
}

// Checks a bmap's range checksums against the image when its ranges are not the ones written (a
// bmap made by another tool): one more read of those ranges, from the page cache.
void check_bmap_checksums(const Source& source, std::vector<char>& buffer) {
  for (const BmapRange& range : source.bmap->ranges) {
    const std::uint64_t begin = range.first * kBmapBlockSize;
    const std::uint64_t end = std::min((range.last + 1) * kBmapBlockSize, source.size);
    Sha256 digest;
    for (std::uint64_t at = begin; at < end;) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - at));
      if (::pread(source.fd.get(), buffer.data(), want, static_cast<off_t>(at)) != static_cast<ssize_t>(want)) {
        throw_errno("cannot read " + source.name);
      }
      digest.update(std::string_view(buffer.data(), want));
      at += want;
    }
    if (digest.hex_digest() != range.sha256) {
      throw Error(source.name + ": blocks " + std::to_string(range.first) + "-" + std::to_string(range.last) +
                      " do not match the checksum in its bmap",
                  ErrorCode::Corrupt);
    }
  }
}

}  // namespace

void check_block_target(const std::string& device, std::uint64_t image_size, bool force) {
  struct stat info {};
  if (::stat(device.c_str(), &info) != 0) throw_errno("cannot stat " + device);
  if (!S_ISBLK(info.st_mode)) refuse(device, "it is not a block device");
  const DiskNodes nodes = disk_nodes(info.st_rdev);
  check_mounts(device, nodes);
  check_holders(device, nodes);
  UniqueFd fd = open_read(device);
  const std::uint64_t size = fd_size(fd.get(), device);
  if (size < image_size) {
    refuse(device, "it holds " + std::to_string(size) + " bytes, the image " + std::to_string(image_size));
  }
  if (!force && read_line(nodes.disk / "removable") != "1") {
    refuse(device, nodes.disk.filename().string() + " is not a removable disk (--force writes it anyway)");
  }
}

namespace {

struct WritePass {
  std::vector<Written> written;  // what the read-back compares, in order
  std::uint64_t bytes_written = 0;
  std::uint64_t zero_bytes = 0;  // of the map, the bytes that must read as zeros
};

// Writes every range of the map: image data as it is, hole runs as zeros. When the bmap lists
// exactly these ranges (imprint's own), each range is checked against its checksum with the same read.
WritePass write_map(const Source& source, const Target& target, const std::string& target_name) {
  std::vector<char> buffer(kChunk);
  const bool check_inline = source.bmap && source.bmap->extents() == source.ranges;
  if (source.bmap && !check_inline) check_bmap_checksums(source, buffer);
  WritePass pass;
  pass.written = pieces(source.ranges, source.data);
  std::size_t piece = 0;
  for (std::size_t i = 0; i < source.ranges.size(); ++i) {
    const Extent& range = source.ranges[i];
    Sha256 digest;
    for (; piece < pass.written.size() && pass.written[piece].range.offset < range.end(); ++piece) {
      const Written& part = pass.written[piece];
      if (part.zeros) {
        pass.bytes_written += zero_range(target, part.range, target_name, buffer);
        pass.zero_bytes += part.range.length;
        if (check_inline) hash_zeros(digest, part.range.length);
      } else {
        copy_range(source, target.fd.get(), part.range, target_name, buffer, check_inline ? &digest : nullptr);
        pass.bytes_written += part.range.length;
      }
    }
    if (check_inline && source.bmap->ranges[i].sha256 != digest.hex_digest()) {
      throw Error(source.name + ": blocks " + std::to_string(source.bmap->ranges[i].first) + "-" +
                      std::to_string(source.bmap->ranges[i].last) + " do not match the checksum in its bmap",
                  ErrorCode::Corrupt);
    }
  }
  return pass;
}

}  // namespace

FlashResult flash(const FlashRequest& request) {
  const auto started = std::chrono::system_clock::now();
  if (request.target.empty()) throw Error("flash needs --target DEVICE|FILE", ErrorCode::Invalid);
  refuse_input_targets(request);
  Source source = request.profile_path.empty() ? image_source(request) : stamped_source(request);
  Target target = open_target(request, source);

  FlashResult result;
  result.device_id = source.device_id;
  result.target = request.target;
  result.image_size = source.size;
  result.warnings = source.warnings;
  // The digest of the whole image (holes as zeros) for the record: on the other core, while this one
  // writes; both read the source from the page cache.
  auto image_sha256 = std::async(std::launch::async, [&] {
    return sparse_image_sha256(source.fd.get(), source.size, source.data, source.name);
  });
  WritePass pass = write_map(source, target, request.target);
  result.image_sha256 = image_sha256.get();
  result.mapped_bytes = 0;
  for (const Extent& range : source.ranges) result.mapped_bytes += range.length;
  result.zero_bytes = pass.zero_bytes;
  if (request.zero_unmapped) {
    std::vector<char> buffer(kChunk);
    for (const Extent& gap : gaps(source.ranges, source.size)) {
      pass.bytes_written += zero_range(target, gap, request.target, buffer);
      pass.written.push_back(Written{gap, true});
    }
  }
  result.bytes_written = pass.bytes_written;
  if (::fsync(target.fd.get()) != 0) throw_errno("cannot sync " + request.target);
  corrupt_for_test(request.target);
  result.ranges = source.ranges.size();
  result.failure = read_back(request.target, target.fd.get(), source, pass.written);
  result.verified = result.failure.empty();

  ManifestRecord record;
  record["device_id"] = result.device_id;
  record["target"] = request.target;
  record["verified"] = result.verified;
  record["image_sha256"] = result.image_sha256;
  record["image_size"] = result.image_size;
  record["mapped_bytes"] = result.mapped_bytes;
  record["zero_bytes"] = result.zero_bytes;
  record["bytes_written"] = result.bytes_written;
  record["zero_unmapped"] = request.zero_unmapped;
  for (const auto& [key, value] : source.record.items()) {
    if (key != "device_id") record[key] = value;
  }
  record["imprint_version"] = IMPRINT_VERSION;
  record["timing"] = detail::timing(started);
  result.record = record;
  if (!request.manifest_path.empty()) append_manifest_record(request.manifest_path, record);
  return result;
}

}  // namespace imprint
