// flash's source: the image to write, stamped on the fly or read from a file, and its block map.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <future>

#include "flash_internal.hpp"
#include "imprint/image/block_map.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/image/copy.hpp"
#include "imprint/stamp/device.hpp"
#include "imprint/core/error.hpp"
#include "imprint/image/bmap.hpp"
#include "imprint/image/image.hpp"
#include "imprint/image/overlay.hpp"
#include "imprint/profile/profile.hpp"
#include "imprint/stamp/stamp.hpp"
#include "record.hpp"

namespace imprint::flash_detail {

namespace {

namespace fs = std::filesystem;

// The golden + overlay: the golden's block map and data, and every block the overlay wrote (the
// blocks the plan allocated are not in the golden's map; the blocks it freed stay: free space).
void map_overlay_source(Source& source) {
  source.size = fd_size(source.fd.get(), source.name);
  const std::vector<Extent> written = source.overlay->extents();
  std::vector<Extent> blocks;
  for (const Extent& extent : written) {
    const std::uint64_t begin = extent.offset / kBmapBlockSize * kBmapBlockSize;
    const std::uint64_t end = std::min(source.size, (extent.end() + kBmapBlockSize - 1) / kBmapBlockSize * kBmapBlockSize);
    blocks.push_back(Extent{begin, end - begin});
  }
  source.data = data_extents(source.fd.get());
  source.data.insert(source.data.end(), written.begin(), written.end());
  source.data = merged(std::move(source.data));
  const BlockMap map = image_block_map(fd_path(source.fd.get()), source.name);
  source.ranges = map.extents;
  source.ranges.insert(source.ranges.end(), blocks.begin(), blocks.end());
  source.ranges = merged(std::move(source.ranges));
  for (const std::string& note : map.notes) source.warnings.push_back(source.name + ": " + note);
}

// The ranges to write: the image's own block map (never the file's non-hole parts alone).
void map_source(Source& source) {
  source.size = fd_size(source.fd.get(), source.name);
  source.data = data_extents(source.fd.get());
  const BlockMap map = image_block_map(fd_path(source.fd.get()), source.name);
  source.ranges = map.extents;
  for (const std::string& note : map.notes) source.warnings.push_back(source.name + ": " + note);
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
  BmapRanges joined = ranges_with_bmap(source.ranges, bmap.extents(), source.size);
  const std::vector<Extent>& missing = joined.missing;
  if (!missing.empty()) {
    std::uint64_t bytes = 0;
    for (const Extent& extent : missing) bytes += extent.length;
    source.warnings.push_back(bmap_path + " leaves out " + std::to_string(bytes / kBmapBlockSize) +
                              " block(s) the image's partition table and filesystems need (first at byte " +
                              std::to_string(missing.front().offset) + "); writing them too");
  }
  source.ranges = std::move(joined.ranges);
  source.bmap = std::move(bmap);
}

// Where flash -p's qcow2 overlay goes (a plan writing a partition only libguestfs opens). It holds
// the device's key, so memory-backed and private to the user: $XDG_RUNTIME_DIR (a 0700 tmpfs), else
// /dev/shm, as an unnamed file (PendingFile, never committed) that vanishes however imprint ends.
// Nothing of the device reaches the host's disk, as with the ext overlay; a card has no directory
// to put it beside, and the golden's may be read-only or shared. It holds the touched clusters only.
std::string flash_qcow2_beside() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  const bool usable = runtime != nullptr && *runtime == '/' && ::access(runtime, W_OK | X_OK) == 0;
  return std::string(usable ? runtime : "/dev/shm") + "/imprint-flash-overlay";
}

}  // namespace

Source stamped_source(const FlashRequest& request) {
  if (request.device_id.empty()) throw Error("flash -p needs --device ID", ErrorCode::Usage);
  const Profile profile = load_profile(request.profile_path);
  require_generated_credentials_kept(profile, request.device_id, !request.manifest_path.empty() || request.record_kept, "--manifest FILE");
  const DevicePlan device = prepare_device(profile, request.device_id, request.overrides);
  // The golden image's digest (for the record) is a read of the whole image: on the other core,
  // while this one copies and stamps.
  auto golden_sha256 = std::async(request.record_wanted() ? std::launch::async : std::launch::deferred, [&] {
    if (!request.record_wanted()) return std::string();
    return request.golden_sha256.empty() ? golden_digest(request.golden_path) : request.golden_sha256;
  });
  Source source;
  source.name = "the image stamped for " + request.device_id;
  source.device_id = request.device_id;
  StampResult stamped;
  stamped.plan = device.plan;
  // A compressed golden is decompressed first, so the device's writes go to an overlay as over a raw
  // golden, never into a stamped copy.
  UniqueFd decompressed;
  std::string golden = request.golden_path;
  if (is_compressed_image(golden)) {
    decompressed = decompressed_golden(golden);
    golden = fd_path(decompressed.get());
  }
  if (auto overlay = stamp_overlay(golden, stamped, request.backend, flash_qcow2_beside(), request.golden_path)) {
    // Nothing of the image is copied: the card gets the golden's ranges with the overlay on top.
    source.fd = open_read(golden);
    source.overlay = std::move(overlay);
    source.warnings = stamped.warnings;
    map_overlay_source(source);
  } else {
    // A bootstrap Artifact to renew: the plan goes to a copy, which holds the device's secrets, so
    // it is kept in memory (a memfd: only the image's data, its holes stay holes), never in $TMPDIR.
    source.fd = memory_file("imprint-stamped-image");
    copy_image(golden, source.fd.get());
    {
      DiskImage image = DiskImage::open(fd_path(source.fd.get()), OpenMode::ReadWrite, request.backend, request.golden_path);
      stamp_open_image(image, stamped);
      source.warnings = stamped.warnings;
    }
    for (auto& warning : renew_bootstrap_artifact(fd_path(source.fd.get()), device.plan, request.backend, "")) source.warnings.push_back(warning);
    map_source(source);
  }
  source.record = detail::device_record(device, device_exports(device));
  source.record["profile_sha256"] = sha256_hex(read_host_file(request.profile_path));
  const std::string golden_digest_hex = golden_sha256.get();
  source.record["golden_sha256"] = golden_digest_hex.empty() ? nlohmann::json() : nlohmann::json(golden_digest_hex);
  return source;
}

void read_source(const Source& source, char* out, std::size_t size, std::uint64_t offset) {
  if (offset + size > source.size) throw Error("cannot read " + source.name + ": it ends at byte " + std::to_string(source.size));
  if (source.overlay) return source.overlay->read(source.fd.get(), offset, size, out);
  pread_all(source.fd.get(), out, size, offset, source.name);
}

std::string source_sha256(const Source& source) {
  if (!source.overlay) return sparse_image_sha256(source.fd.get(), source.size, source.data, source.name);
  Sha256 digest;
  std::vector<char> buffer(1 << 20);
  std::uint64_t position = 0;
  for (const Extent& extent : source.data) {
    hash_zeros(digest, extent.offset - position);
    for (std::uint64_t at = extent.offset; at < extent.end();) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), extent.end() - at));
      read_source(source, buffer.data(), want, at);
      digest.update(std::string_view(buffer.data(), want));
      at += want;
    }
    position = extent.end();
  }
  hash_zeros(digest, source.size - position);
  return digest.hex_digest();
}

Source image_source(const FlashRequest& request) {
  Source source;
  source.name = request.image_path;
  source.device_id = request.device_id.empty() ? image_stem(request.image_path) : request.device_id;
  if (is_compressed_image(request.image_path)) {
    source.fd = decompressed_beside(request.image_path);  // a stamped image, with the device's key
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

}  // namespace imprint::flash_detail
