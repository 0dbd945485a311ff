// imprint batch: prepare every row, build the shared base once, stamp devices in parallel,
// resume what is already done, record everything in the manifest.
#include "imprint/batch/batch.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <charconv>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "imprint/batch/flash.hpp"
#include "imprint/batch/pool.hpp"
#include "imprint/batch/shared_ops.hpp"
#include "imprint/image/block_map.hpp"
#include "imprint/image/bmap.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/image/copy.hpp"
#include "imprint/image/frames.hpp"
#include "imprint/image/golden_cache.hpp"
#include "imprint/profile/csv.hpp"
#include "imprint/stamp/device.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/core/overwrite.hpp"
#include "imprint/core/lifetime.hpp"
#include "imprint/image/image.hpp"
#include "imprint/image/overlay.hpp"
#include "imprint/core/progress.hpp"
#include "imprint/profile/profile.hpp"
#include "imprint/stamp/stamp.hpp"
#include "flash_internal.hpp"
#include "record.hpp"

namespace imprint {

namespace {

// One CSV row, prepared.
struct Prepared {
  std::size_t index = 0;  // row index in the CSV (for sharding)
  int line = 0;
  DevicePlan device;
  std::string name;        // output file name without the compression suffix
  std::optional<DeviceExports> exports;
  Plan own;                // the ops not applied to the shared base
};

std::string output_name(const BatchRequest& request, const DevicePlan& device) {
  const std::string name = expand_template(request.name_template, device.variables, "--name");
  if (name.empty() || name.find('/') != std::string::npos || name.front() == '.') {
    throw Error("--name gives '" + name + "', which cannot name a file in the output directory", ErrorCode::Invalid);
  }
  return name;
}

std::string bmap_name(const std::string& name) {
  return (name.ends_with(".img") ? name.substr(0, name.size() - 4) : name) + ".bmap";
}


// Built once, by the first device that needs it (a batch whose devices are all done already never
// builds it), then shared read-only by every worker.
template <typename T>
class Lazy {
 public:
  explicit Lazy(std::function<T()> build) : build_(std::move(build)) {}
  const T& get() {
    std::lock_guard lock(mutex_);
    if (!value_) value_ = build_();
    return *value_;
  }

 private:
  std::function<T()> build_;
  std::mutex mutex_;
  std::optional<T> value_;
};

// Reads `length` bytes of an image into digest, through `read`, a MiB at a time.
void hash_through(const ImageReader& read, std::uint64_t offset, std::uint64_t length, Sha256& digest) {
  std::vector<char> buffer(std::min<std::uint64_t>(length, 1 << 20));
  for (std::uint64_t at = offset; at < offset + length;) {
    const auto part = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), offset + length - at));
    read(at, part, buffer.data());
    digest.update(std::string_view(buffer.data(), part));
    at += part;
  }
}

// Block map extents cut at every multiple of `piece` bytes: a device's bmap then differs from the
// base's only in the pieces its overlay touches.
std::vector<Extent> cut(const std::vector<Extent>& extents, std::uint64_t piece) {
  std::vector<Extent> pieces;
  for (const Extent& extent : extents) {
    for (std::uint64_t at = extent.offset; at < extent.end();) {
      const std::uint64_t end = std::min(extent.end(), (at / piece + 1) * piece);
      pieces.push_back({at, end - at});
      at = end;
    }
  }
  return pieces;
}

// The shared base's block map, cut into pieces of a frame with a sha256 each, built once by the
// first device of a compressed --bmap batch: a device's bmap reuses the checksum of every piece its
// overlay leaves alone and hashes only the others (never the whole image).
struct BaseMap {
  struct Piece {
    std::uint64_t length = 0;
    std::string sha256;
  };
  std::uint64_t size = 0;
  std::vector<Extent> extents;              // the base's block map, merged
  std::map<std::uint64_t, Piece> pieces;  // by offset
};

// `extents`: the base's block map (any order); `read`: its bytes.
BaseMap base_map(std::uint64_t size, const std::vector<Extent>& extents, const ImageReader& read) {
  BaseMap map;
  map.size = size;
  map.extents = block_aligned(merged(extents), size);
  for (const Extent& piece : cut(map.extents, kDefaultFrameSize)) {
    Sha256 digest;
    hash_through(read, piece.offset, piece.length, digest);
    map.pieces[piece.offset] = BaseMap::Piece{piece.length, digest.hex_digest()};
  }
  return map;
}

// The bmap of base + overlay: the base's block map and every block the overlay wrote (blocks its
// writes allocated are not in the base's map; blocks they freed stay: free space), as flash -p maps
// golden + overlay; a piece's checksum is the base's unless the overlay wrote into it.
Bmap overlay_bmap(const BaseMap& base, const std::vector<Extent>& written, const ImageReader& read) {
  std::vector<Extent> map = base.extents;
  map.insert(map.end(), written.begin(), written.end());
  Bmap bmap;
  bmap.image_size = base.size;
  for (const Extent& piece : cut(block_aligned(map, base.size), kDefaultFrameSize)) {
    const auto found = base.pieces.find(piece.offset);
    std::string sha256;
    if (found != base.pieces.end() && found->second.length == piece.length && intersect(written, {piece}).empty()) {
      sha256 = found->second.sha256;
    } else {
      Sha256 digest;
      hash_through(read, piece.offset, piece.length, digest);
      sha256 = digest.hex_digest();
    }
    bmap.ranges.push_back(BmapRange{piece.offset / kBmapBlockSize, (piece.end() + kBmapBlockSize - 1) / kBmapBlockSize - 1, sha256});
  }
  return bmap;
}

// Everything the workers share, read-only once the batch starts.
struct Context {
  const BatchRequest& request;
  std::string out_dir;
  std::string profile_sha256;
  std::string golden_sha256;
  int base_fd = -1;
  std::map<std::string, ManifestRecord> previous;  // last manifest, by device_id
  std::string scan_key;  // the golden's: every device copy shares its damage scan
  std::set<std::string> claimed;  // names (in out_dir) this batch writes: never removed as superseded
  // The shared base: a file (base_fd: the golden's copy with the shared operations applied), or, for
  // a compressed batch whose operations all go to overlays, the golden itself (golden_fd, never
  // written) under `shared`, the overlay holding the shared operations' writes.
  int golden_fd = -1;
  std::shared_ptr<const ImageOverlay> shared;
  Lazy<FramedBase>* framed_base = nullptr;
  Lazy<BaseMap>* base_map = nullptr;
};

bool base_is_overlay(const Context& context) { return context.shared != nullptr; }

std::string output_path(const Context& context, const Prepared& prepared) {
  return context.out_dir + "/" + prepared.name + compression_suffix(context.request.compression);
}

std::optional<std::string> bmap_path(const Context& context, const Prepared& prepared) {
  if (!context.request.bmap) return std::nullopt;
  return context.out_dir + "/" + bmap_name(prepared.name);
}

// Manifest paths are relative to the output directory: a manifest stays true when the directory
// moves (CI artifacts), and shards writing to different directories merge into one manifest.
std::string relative(const Context& context, const std::string& path) { return path.substr(context.out_dir.size() + 1); }

// Has this device been stamped from these inputs already, and is its image intact and right?
// Why a device the manifest already records must be stamped again; "" when its output is done
// (output and record present, inputs unchanged, the output's sha256 that of the record and the image
// verifying against the plan). nullopt when the manifest has no record of it (a new device).
std::optional<std::string> redo_reason(const Context& context, const Prepared& prepared) {
  const auto found = context.previous.find(prepared.device.plan.device_id);
  if (found == context.previous.end()) return std::nullopt;
  const ManifestRecord& record = found->second;
  const std::string output = output_path(context, prepared);
  const auto bmap = bmap_path(context, prepared);
  const auto text = [&](const char* key) { return record.contains(key) && record[key].is_string() ? record[key].get<std::string>() : ""; };
  if (text("output") != relative(context, output)) return "its output name changed (was " + text("output") + ")";
  if (text("profile_sha256") != context.profile_sha256) return "the profile changed";
  if (text("golden_sha256") != context.golden_sha256) return "the golden image changed";
  if (!std::filesystem::exists(output)) return output + " is missing";
  if (bmap && (text("bmap") != relative(context, *bmap) || !std::filesystem::exists(*bmap) ||
               sha256_file_hex(*bmap) != text("bmap_sha256"))) {
    return "its bmap is missing or differs from the record";
  }
  if (!bmap && record.contains("bmap") && !record["bmap"].is_null())
    return "it was recorded with a bmap, now none is asked for";
  if (sparse_file_sha256(output) != text("output_sha256"))
    return output + " changed since it was stamped (sha256 differs from the manifest)";
  try {
    DiskImage image = DiskImage::open(output, OpenMode::ReadOnly, context.request.backend);
    const std::vector<std::string> differences = verify_plan(image, prepared.device);
    return differences.empty() ? "" : output + " does not match the plan: " + differences.front();
  } catch (const Error& error) {
    return output + " cannot be read back: " + error.what();
  }
}

// What a device's output came to, for its record.
struct Written {
  std::string output_sha256;
  std::uint64_t output_size = 0;
  std::optional<std::string> image_sha256;  // none for a compressed output (compressed_output)
  std::uint64_t image_size = 0;
  std::optional<Bmap> bmap;  // with --bmap
};

// The device's record (its bmap written first, named in it), fields in the same order on every path.
ManifestRecord device_record(const Context& context, const Prepared& prepared, const Written& written) {
  ManifestRecord record;
  record["device_id"] = prepared.device.plan.device_id;
  record["output"] = relative(context, output_path(context, prepared));
  record["output_sha256"] = written.output_sha256;
  record["output_size"] = written.output_size;
  record["image_sha256"] = written.image_sha256 ? ManifestRecord(*written.image_sha256) : ManifestRecord(nullptr);
  record["image_size"] = written.image_size;
  const std::string suffix = compression_suffix(context.request.compression);
  record["compression"] = suffix.empty() ? "none" : suffix.substr(1);
  if (const auto path = bmap_path(context, prepared); path && written.bmap) {
    const std::string text = format_bmap(*written.bmap);
    write_file_atomically(*path, text, 0644);
    record["bmap"] = relative(context, *path);
    record["bmap_sha256"] = sha256_hex(text);
  } else {
    record["bmap"] = nullptr;
  }
  record["profile_sha256"] = context.profile_sha256;
  record["golden_sha256"] = context.golden_sha256;
  const ManifestRecord device = detail::device_record(prepared.device, prepared.exports);
  record["credentials"] = device["credentials"];
  record["files"] = device["files"];
  record["imprint_version"] = IMPRINT_VERSION;
  return record;
}

// A compressed output's record has no image_sha256: it would take a hash of the whole image
// (seconds on a large one, more than its frames cost); a consumer checks the output's own sha256,
// and decompressing it and `imprint verify` check the image. The same on both paths, so the field
// means one thing.
Written compressed_output(const std::string& output, std::string output_sha256, std::uint64_t image_size, std::optional<Bmap> bmap) {
  return Written{std::move(output_sha256), std::filesystem::file_size(output), std::nullopt, image_size, std::move(bmap)};
}

// A compressed output at the cost of its delta: the device's own ops go to an overlay on the shared
// base (opened read-only), and its frames are the base's compressed frames except those the overlay
// touches, recompressed from base + overlay. Nothing device-sized is written or read. nullopt when
// the overlay cannot take the device's ops (the caller copies the base as before).
std::optional<ManifestRecord> stamp_compressed_overlay(const Context& context, const Prepared& prepared) {
  const BatchRequest& request = context.request;
  const std::string output = output_path(context, prepared);
  // Over the golden and the shared overlay when the base is one; else over the base's file.
  const int base_fd = base_is_overlay(context) ? context.golden_fd : context.base_fd;
  auto overlay = base_is_overlay(context) ? std::make_shared<ImageOverlay>(context.shared) : std::make_shared<ImageOverlay>();
  {
    // The golden itself is opened by its name (messages then name it, not "the copy of" it).
    const std::string path = base_is_overlay(context) ? request.golden_path : fd_path(base_fd);
    DiskImage image = DiskImage::open_overlay(path, overlay, request.backend, request.golden_path);
    image.share_scans(context.scan_key);  // before overlay_takes, whose resolving opens the rootfs
    if (!overlay_takes(image, prepared.own)) return std::nullopt;
    apply_plan(image, prepared.own);
    image.flush();
    const auto differences = verify_plan(image, prepared.device);
    if (!differences.empty()) throw Error(output + ": does not match the plan after stamping: " + differences.front(), ErrorCode::CheckFailed);
  }
  const FramedBase& base = context.framed_base->get();
  const ImageReader read = [&](std::uint64_t offset, std::size_t size, char* out) { overlay->read(base_fd, offset, size, out); };
  const std::vector<Extent> written = overlay->extents();  // this device's own writes: the rest is the base's
  PendingFile compressed(output);
  Sha256 digest;
  const FrameStats stats = write_framed(base, read, ChangedRanges{written}, compressed.fd(), output, &digest);
  verbose_note(output + ": " + std::to_string(stats.recompressed) + " frame(s) recompressed from the shared base + the device's overlay (" +
               std::to_string(overlay->bytes()) + " bytes written), " + std::to_string(stats.reused) + " reused");
  std::optional<Bmap> bmap;
  if (request.bmap) bmap = overlay_bmap(context.base_map->get(), written, read);
  compressed.commit();
  return device_record(context, prepared, compressed_output(output, digest.hex_digest(), base.size(), std::move(bmap)));
}

ManifestRecord stamp_device(const Context& context, const Prepared& prepared) {
  const BatchRequest& request = context.request;
  if (request.compression != Compression::None) {
    if (auto record = stamp_compressed_overlay(context, prepared)) return *record;
    // An overlay base was chosen only when every device's operations go to overlays (run_batch).
    if (base_is_overlay(context)) throw Error(output_path(context, prepared) + ": the device's operations cannot go to an overlay");
    verbose_note(output_path(context, prepared) + ": the device's operations write a partition an overlay cannot hold; stamping a copy of the shared base");
  }
  const std::string raw_path = context.out_dir + "/" + prepared.name;
  const std::string output = output_path(context, prepared);
  PendingFile raw(raw_path);  // committed only when the output is the raw image
  copy_sparse(context.base_fd, raw.fd(), "the shared base image");
  {
    DiskImage image = DiskImage::open(raw.temp_path(), OpenMode::ReadWrite, request.backend, request.golden_path);
    image.share_scans(context.scan_key);
    apply_plan(image, prepared.own);
    image.flush();
    const auto differences = verify_plan(image, prepared.device);
    if (!differences.empty()) throw Error(raw_path + ": does not match the plan after stamping: " + differences.front(), ErrorCode::CheckFailed);
  }
  struct stat info {};
  if (::fstat(raw.fd(), &info) != 0) throw_errno("cannot stat the image for " + output);
  const auto size = static_cast<std::uint64_t>(info.st_size);
  const std::vector<Extent> extents = data_extents(raw.fd());
  if (request.compression != Compression::None) {
    // The base's compressed frames where this device's changes leave them alone, recompressed
    // frames where they do: the same bytes as compressing the whole image frame by frame.
    const FramedBase& base = context.framed_base->get();
    const ChangedRanges changed = changed_ranges_by_comparison(context.base_fd, base.extents(), raw.fd(), extents, size);
    std::optional<Bmap> bmap;
    if (request.bmap) bmap = map_image(raw.fd(), size, extents, image_block_map(raw.temp_path(), output).extents, output).bmap;
    PendingFile compressed(output);
    write_framed(base, raw.fd(), extents, changed, compressed.fd(), output);
    compressed.commit();
    return device_record(context, prepared, compressed_output(output, sha256_file_hex(output), size, std::move(bmap)));
  }
  // The bmap lists the image's block map (zero blocks the filesystems need included), not its data.
  const std::vector<Extent> map = request.bmap ? image_block_map(raw.temp_path(), output).extents : std::vector<Extent>{};
  const MappedImage mapped = map_image(raw.fd(), size, extents, map, output);
  raw.commit();
  std::optional<Bmap> bmap;
  if (request.bmap) bmap = mapped.bmap;
  return device_record(context, prepared, Written{mapped.image_sha256, size, mapped.image_sha256, size, std::move(bmap)});
}

// A column the profile never uses (every row has the same columns): a warning naming the closest
// known variable, an error with strict_variables.
void check_columns(const BatchRequest& request, const Profile& profile, const DeviceRow& row, BatchResult& result) {
  for (const auto& [name, value] : row.columns) {
    const std::string problem = unused_variable_problem(profile, name);
    if (problem.empty()) continue;
    const std::string message = request.devices_csv + ": column '" + name + "': " + problem;
    if (request.strict_variables) throw Error(message, ErrorCode::Invalid);
    result.warnings.push_back(message + "; ignored");
  }
}

// Prepares every row; bad ones go to result.bad_rows.
std::vector<Prepared> prepare_rows(const BatchRequest& request, const Profile& profile, const std::vector<DeviceRow>& rows,
                                   BatchResult& result) {
  if (!rows.empty()) check_columns(request, profile, rows.front(), result);
  std::vector<Prepared> prepared;
  std::map<std::string, int> names;  // output name -> line
  for (std::size_t index = 0; index < rows.size(); ++index) {
    const DeviceRow& row = rows[index];
    const std::string where = request.devices_csv + ":" + std::to_string(row.line) + ": device " + row.device_id + ": ";
    try {
      Variables variables = request.overrides;
      for (const auto& [key, value] : row.columns) variables[key] = value;
      Prepared item;
      item.index = index;
      item.line = row.line;
      item.device = prepare_device(profile, row.device_id, variables);
      item.name = output_name(request, item.device);
      if (const auto [at, inserted] = names.emplace(item.name, row.line); !inserted) {
        throw Error("output name " + item.name + " is also that of line " + std::to_string(at->second), ErrorCode::Invalid);
      }
      if (request.shard.contains(index)) item.exports = device_exports(item.device);
      prepared.push_back(std::move(item));
    } catch (const Error& error) {
      result.bad_rows.push_back(BadRow{row.line, row.device_id, where + error.what(), error.what()});
    }
  }
  return prepared;
}

// A CSV names files the way a shell in its directory would: a relative path in a cell resolves
// against the CSV's directory, wherever the batch runs from (the profile's paths resolve against the
// profile's directory, --set values against the working directory).
void resolve_cells_against_csv(Profile& profile, const std::vector<DeviceRow>& rows, const std::string& csv) {
  const std::string directory = std::filesystem::absolute(csv).parent_path().lexically_normal().string();
  for (const DeviceRow& row : rows) {
    for (const auto& [column, value] : row.columns) profile.variable_directories[column] = directory;
  }
}

// The output's compression comes from --compress, which also adds its suffix: a --name already
// ending in one would give dev.img.zst.gz, or a raw image named .zst.
void refuse_compressed_name(const BatchRequest& request) {
  for (const char* suffix : {".gz", ".xz", ".zst"}) {
    if (request.name_template.ends_with(suffix)) {
      throw Error("--name " + request.name_template + " ends in " + suffix + ": --compress " + (suffix + 1) +
                      " adds that suffix (name the raw image, e.g. '{{device_id}}.img')",
                  ErrorCode::Invalid);
    }
  }
}

// The manifest's records of the last run, by device_id (empty when there is none).
std::map<std::string, ManifestRecord> previous_records(const std::string& manifest) {
  std::map<std::string, ManifestRecord> previous;
  for (const ManifestRecord& record : compact_records(read_manifest(manifest, CutOff::Drop))) {
    previous[record["device_id"].get<std::string>()] = record;
  }
  return previous;
}

// A record's file name (in the output directory) under `key`, or "" (absent, null, or not a name).
std::string recorded_name(const ManifestRecord& record, const char* key) {
  if (!record.contains(key) || !record[key].is_string()) return "";
  const std::string name = record[key].get<std::string>();
  return name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." ? "" : name;
}

// Is the file at path already this device's image? A batch killed between naming an output and
// appending its record leaves such a file: replacing it is resuming, not overwriting.
bool is_devices_image(const std::string& path, const Prepared& item, Backend backend) {
  try {
    DiskImage image = DiskImage::open(path, OpenMode::ReadOnly, backend);
    return verify_plan(image, item.device).empty();
  } catch (const Error&) {
    return false;
  }
}

// One overwrite rule: a file at one of this shard's output names is replaced only when it is the
// device's own (the manifest lists it as the device's, or the image verifies as the device's: a
// re-run resuming its directory), or with force.
void refuse_foreign_outputs(const BatchRequest& request, const std::string& out_dir, const std::map<std::string, ManifestRecord>& previous,
                            const std::vector<Prepared>& prepared) {
  if (request.force) return;
  for (const Prepared& item : prepared) {
    if (!request.shard.contains(item.index)) continue;
    const auto found = previous.find(item.device.plan.device_id);
    const auto listed = [&](const std::string& name) {
      return found != previous.end() && (recorded_name(found->second, "output") == name || recorded_name(found->second, "bmap") == name);
    };
    const std::string image = item.name + compression_suffix(request.compression);
    const std::string hint = "and is not in the manifest as device " + item.device.plan.device_id + "'s; --force replaces it";
    struct stat info {};
    const bool image_exists = ::lstat((out_dir + "/" + image).c_str(), &info) == 0;
    const bool own_image = !image_exists || listed(image) || is_devices_image(out_dir + "/" + image, item, request.backend);
    if (!own_image) refuse_existing_output(out_dir + "/" + image, false, hint);
    // The bmap is written right after its image: it is the device's when its image is.
    if (request.bmap && !(image_exists && own_image) && !listed(bmap_name(item.name))) {
      refuse_existing_output(out_dir + "/" + bmap_name(item.name), false, hint);
    }
  }
}

// The manifest is appended after every device: a missing or unwritable directory must show before
// the first image is stamped, not as an image without its record.
void check_manifest_location(const std::string& manifest) {
  for (const std::string& path : {manifest, csv_view_path(manifest)}) {
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode)) {
      throw Error("manifest " + path + " exists and is not a regular file", ErrorCode::Invalid);
    }
    if (::stat(path.c_str(), &info) == 0 && ::access(path.c_str(), W_OK) != 0) throw_errno("manifest " + path + " is not writable");
  }
  std::string directory = std::filesystem::path(manifest).parent_path().string();
  if (directory.empty()) directory = ".";
  struct stat info {};
  if (::stat(directory.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    throw Error("manifest " + manifest + ": directory " + directory + " does not exist", ErrorCode::NotFound);
  }
  if (::access(directory.c_str(), W_OK | X_OK) != 0) throw_errno("manifest " + manifest + ": cannot write in " + directory);
}

// One spelling per file: absolute, symlinks of existing parents resolved, "." and ".." gone.
std::string normal_path(const std::string& path) {
  std::error_code error;
  const auto absolute = std::filesystem::absolute(path, error);
  const auto canonical = std::filesystem::weakly_canonical(absolute, error);
  return (error ? absolute.lexically_normal() : canonical).string();
}

// Names that differ can still derive the same file ("x" and "x.img" both give x.bmap with
// --name '{{device_id}}'), and a device can be named like the manifest or an input: every file the
// batch writes must belong to one thing only, and never be one of its inputs. Compared byte for
// byte, as the output directory's filesystem (case-sensitive, as Linux filesystems are) does.
void refuse_colliding_outputs(const BatchRequest& request, const std::string& out_dir, const std::string& manifest,
                              const std::vector<Prepared>& prepared) {
  std::map<std::string, std::string> writers;  // normal path -> what writes it
  const auto claim = [&](const std::string& path, const std::string& what) {
    const auto [at, inserted] = writers.emplace(normal_path(path), what);
    if (!inserted) throw Error(path + " would be written as " + at->second + " and as " + what, ErrorCode::Invalid);
  };
  claim(manifest, "the manifest");
  claim(csv_view_path(manifest), "the manifest's CSV view");
  for (const Prepared& item : prepared) {
    const std::string device =
        "device " + item.device.plan.device_id + " (" + request.devices_csv + ":" + std::to_string(item.line) + ")";
    claim(out_dir + "/" + item.name + compression_suffix(request.compression), "the image of " + device);
    if (request.bmap) claim(out_dir + "/" + bmap_name(item.name), "the bmap of " + device);
  }
  const std::pair<const char*, const std::string*> inputs[] = {
      {"the golden image", &request.golden_path}, {"the profile", &request.profile_path}, {"the device list", &request.devices_csv}};
  for (const auto& [what, path] : inputs) {
    const auto found = writers.find(normal_path(*path));
    if (found != writers.end()) throw Error(*path + " is " + what + " and would be overwritten as " + found->second, ErrorCode::Invalid);
  }
}

// The rows whose plans the image accepts (check_plan_against_image); the others go to
// result.bad_rows as "CSV:LINE: device ID: why".
std::vector<Prepared> rows_the_image_accepts(ImageView& image, const std::string& csv, std::vector<Prepared> prepared,
                                             BatchResult& result) {
  std::vector<Prepared> good;
  for (Prepared& item : prepared) {
    try {
      check_plan_against_image(image, item.device.plan);
      good.push_back(std::move(item));
    } catch (const Error& error) {
      const std::string where = csv + ":" + std::to_string(item.line) + ": device " + item.device.plan.device_id + ": ";
      result.bad_rows.push_back(BadRow{item.line, item.device.plan.device_id, where + error.what(), error.what()});
    }
  }
  return good;
}

// The batch's shared base: the golden with the operations every device shares applied, and the rows
// whose plans the golden accepts, each with the operations left to it.
struct SharedBase {
  std::vector<Prepared> good;
  Plan common;
  // A compressed batch whose operations all go to overlays: the golden, never written, and the
  // overlay holding the shared operations' writes (nothing image-sized is copied).
  UniqueFd golden;
  std::shared_ptr<ImageOverlay> overlay;
  // Otherwise a copy of the golden (unnamed, in the output directory: the devices' copies of it can
  // be reflinks) with them written into it.
  std::unique_ptr<PendingFile> file;
};

// Checks every plan against the golden's image, and splits off the operations all devices share.
void accept_and_split(DiskImage& image, const std::string& csv, std::vector<Prepared> prepared, SharedBase& base,
                      BatchResult& result) {
  base.good = rows_the_image_accepts(image, csv, std::move(prepared), result);
  std::vector<const Plan*> plans;
  for (const Prepared& item : base.good) plans.push_back(&item.device.plan);
  SharedOps split = split_shared_ops(plans);
  if (const std::size_t moved = fold_appliance_ops_into_devices(image, split)) {
    verbose_note(std::to_string(moved) + " shared operation(s) on partitions libguestfs writes go with each device's own: "
                 "every device launches an appliance anyway, so the shared base needs none");
  }
  for (std::size_t i = 0; i < base.good.size(); ++i) base.good[i].own = std::move(split.own[i]);
  base.common = Plan{"", split.common};
}

void apply_common(DiskImage& image, const SharedBase& base, BatchResult& result) {
  if (base.good.empty()) return;
  if (auto warning = bootstrap_warning(image, base.good.front().device.plan)) result.warnings.push_back(*warning);
  apply_plan(image, base.common);
  image.flush();
}

// Can the shared operations and every device's own go to overlays on the golden (native ext
// partitions: the layered overlay a device stamps through is read by libext2fs only)?
bool overlays_take_all(DiskImage& image, const SharedBase& base) {
  if (!overlay_takes(image, base.common)) return false;
  return std::all_of(base.good.begin(), base.good.end(), [&](const Prepared& item) { return overlay_takes(image, item.own); });
}

// The ext filesystems are scanned once (under scan_key) before their first write, for the base and
// every device stamped from it.
SharedBase build_base(const BatchRequest& request, const std::string& out_dir, const std::string& scan_key,
                      std::vector<Prepared> prepared, BatchResult& result) {
  SharedBase base;
  bool split = false;
  if (request.compression != Compression::None && std::filesystem::is_regular_file(request.golden_path) &&
      !is_compressed_image(request.golden_path)) {
    base.golden = open_read(request.golden_path);
    base.overlay = std::make_shared<ImageOverlay>();
    DiskImage image = DiskImage::open_overlay(request.golden_path, base.overlay, request.backend, request.golden_path);
    image.share_scans(scan_key);
    accept_and_split(image, request.devices_csv, std::move(prepared), base, result);
    split = true;
    if (overlays_take_all(image, base)) {
      apply_common(image, base, result);
      return base;
    }
    verbose_note(request.golden_path + ": some operations write a partition an overlay cannot hold; the shared base is a copy");
    base.golden.reset();
    base.overlay.reset();
  }
  base.file = std::make_unique<PendingFile>(out_dir + "/.imprint-shared-base.img");  // never committed
  copy_image(request.golden_path, base.file->fd());
  DiskImage image = DiskImage::open(base.file->temp_path(), OpenMode::ReadWrite, request.backend, request.golden_path);
  image.share_scans(scan_key);
  if (!split) accept_and_split(image, request.devices_csv, std::move(prepared), base, result);
  apply_common(image, base, result);
  return base;
}

// The shared base compressed as frames: the golden's cached frames with those the shared overlay
// touches recompressed, or (a copied base) the base's file compressed.
FramedBase framed_base(const Context& context, GoldenCache& cache) {
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  if (base_is_overlay(context)) {
    GoldenCache::Frames golden = cache.frames(context.golden_fd, context.request.compression, threads, context.out_dir);
    const ImageReader read = [&](std::uint64_t offset, std::size_t size, char* out) { context.shared->read(context.golden_fd, offset, size, out); };
    return FramedBase::patched(golden.frames, read, ChangedRanges{context.shared->extents()}, threads, context.out_dir, "the shared base image");
  }
  struct stat info {};
  if (::fstat(context.base_fd, &info) != 0) throw_errno("cannot stat the shared base image");
  return FramedBase::build(context.base_fd, static_cast<std::uint64_t>(info.st_size), data_extents(context.base_fd),
                           context.request.compression, threads, context.out_dir, "the shared base image");
}

// The shared base's block map with a checksum per piece: the golden's map and the blocks the shared
// overlay wrote, or the base file's map.
BaseMap shared_base_map(const Context& context) {
  const int fd = base_is_overlay(context) ? context.golden_fd : context.base_fd;
  const std::string name = "the shared base image";
  const ImageOverlay nothing;
  const ImageOverlay& layer = base_is_overlay(context) ? *context.shared : nothing;
  const ImageReader read = [&](std::uint64_t offset, std::size_t size, char* out) { layer.read(fd, offset, size, out); };
  std::vector<Extent> extents = image_block_map(fd_path(fd), name).extents;
  const std::vector<Extent> written = layer.extents();
  extents.insert(extents.end(), written.begin(), written.end());
  return base_map(flash_detail::fd_size(fd, name), extents, read);
}

// Appends the record of a device just stamped. An output without its record would be an image the
// manifest does not vouch for: when the record cannot be written, the output and its bmap go too
// and the device fails.
void record_or_withdraw(const Context& context, const Prepared& prepared, const std::string& manifest, DeviceOutcome& outcome) {
  try {
    append_manifest_record(manifest, outcome.record);
  } catch (const std::exception& error) {
    ::unlink(output_path(context, prepared).c_str());
    if (const auto bmap = bmap_path(context, prepared)) ::unlink(bmap->c_str());
    outcome.status = DeviceStatus::Failed;
    outcome.message = "device " + outcome.device_id + ": " + error.what() + " (its image was removed)";
  }
}

// A device re-stamped under another name (another --compress or --name): its previous output and
// bmap are no longer listed anywhere, so they go once the new record is written.
void remove_superseded(const Context& context, const std::string& device_id, BatchResult& result) {
  const auto found = context.previous.find(device_id);
  if (found == context.previous.end()) return;
  for (const char* key : {"output", "bmap"}) {
    const std::string name = recorded_name(found->second, key);
    if (name.empty() || context.claimed.count(name)) continue;
    const std::string path = context.out_dir + "/" + name;
    struct stat info {};
    if (::lstat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && ::unlink(path.c_str()) == 0) result.removed.push_back(path);
  }
}

void run_devices(Context& context, const std::vector<const Prepared*>& work, BatchResult& result, const BatchObserver& observer) {
  const std::string manifest = result.manifest_path;
  result.outcomes.resize(work.size());
  std::size_t done = 0, finished = 0;
  // Ctrl-C (or SIGTERM) mid-batch: what is kept, and that a re-run picks up the rest (the
  // devices in progress are unnamed files, gone with the process).
  InterruptNote note(std::string(::isatty(STDERR_FILENO) == 1 ? "\r\x1b[K" : "") + "imprint: interrupted: ",
                     " of " + std::to_string(work.size()) + " device(s) finished and recorded in " +
                         escape_control(manifest) + "; the next run of the same command stamps the other ",
                     " (the images in progress were removed)\n");
  note.set(0, work.size());
  // Each worker fills only its own device's slot; the rest happens one device at a time.
  const auto stamp = [&](std::size_t slot) {
    const Prepared& prepared = *work[slot];
    const auto started = std::chrono::system_clock::now();
    DeviceOutcome& outcome = result.outcomes[slot];
    outcome.device_id = prepared.device.plan.device_id;
    try {
      const std::optional<std::string> redo = redo_reason(context, prepared);
      if (redo && redo->empty()) {
        outcome.status = DeviceStatus::Skipped;
        outcome.record = context.previous.at(outcome.device_id);
      } else {
        if (redo) outcome.redo_reason = *redo;
        outcome.record = stamp_device(context, prepared);
        outcome.record["timing"] = detail::timing(started);
        outcome.status = DeviceStatus::Stamped;
      }
    } catch (const std::exception& error) {
      outcome.status = DeviceStatus::Failed;
      outcome.message = "device " + outcome.device_id + ": " + error.what();
    }
  };
  const auto finish = [&](std::size_t slot) {
    DeviceOutcome& outcome = result.outcomes[slot];
    if (outcome.status == DeviceStatus::Stamped) record_or_withdraw(context, *work[slot], manifest, outcome);
    if (outcome.status == DeviceStatus::Stamped) remove_superseded(context, outcome.device_id, result);
    ++done;
    if (outcome.status != DeviceStatus::Failed) {
      ++finished;
      note.set(finished, work.size() - finished);
    }
    if (observer) observer(outcome, done, work.size());
    return outcome.status != DeviceStatus::Failed || context.request.keep_going;
  };
  const bool completed = run_pool(work.size(), context.request.jobs, stamp, finish);
  // Devices never started (a failure stopped the batch) are not outcomes.
  std::erase_if(result.outcomes, [](const DeviceOutcome& outcome) { return outcome.device_id.empty(); });
  if (!completed) result.aborted = true;
}

}  // namespace

Shard parse_shard(const std::string& text) {
  const auto invalid = [&] { return Error("--shard " + text + ": expected K/N with 1 <= K <= N", ErrorCode::Invalid); };
  const auto slash = text.find('/');
  if (slash == std::string::npos) throw invalid();
  Shard shard;
  const auto parse = [&](std::string_view part, std::size_t& value) {
    const auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (error != std::errc() || end != part.data() + part.size()) throw invalid();
  };
  parse(std::string_view(text).substr(0, slash), shard.index);
  parse(std::string_view(text).substr(slash + 1), shard.count);
  if (shard.count == 0 || shard.index == 0 || shard.index > shard.count) throw invalid();
  return shard;
}

namespace {
// "2-5, 9, 11-12" for sorted line numbers.
std::string line_ranges(const std::vector<int>& lines) {
  std::string text;
  for (std::size_t i = 0; i < lines.size();) {
    std::size_t j = i;
    while (j + 1 < lines.size() && lines[j + 1] == lines[j] + 1) ++j;
    text += (text.empty() ? "" : ", ") + std::to_string(lines[i]) + (j > i ? "-" + std::to_string(lines[j]) : "");
    i = j + 1;
  }
  return text;
}
}  // namespace

std::vector<std::string> bad_row_messages(const std::vector<BadRow>& rows, const std::string& devices_csv) {
  std::vector<std::string> reasons;  // in order of first appearance
  std::map<std::string, std::vector<const BadRow*>> by_reason;
  for (const BadRow& row : rows) {
    auto& group = by_reason[row.reason];
    if (group.empty()) reasons.push_back(row.reason);
    group.push_back(&row);
  }
  std::vector<std::string> messages;
  for (const std::string& reason : reasons) {
    const auto& group = by_reason[reason];
    if (group.size() == 1) {
      messages.push_back(group.front()->message);
      continue;
    }
    std::vector<int> lines;
    for (const BadRow* row : group) lines.push_back(row->line);
    std::sort(lines.begin(), lines.end());
    messages.push_back(devices_csv + ": lines " + line_ranges(lines) + " (" + std::to_string(group.size()) + " devices): " + reason);
  }
  return messages;
}

std::string to_string(DeviceStatus status) {
  switch (status) {
    case DeviceStatus::Stamped: return "stamped";
    case DeviceStatus::Skipped: return "skipped";
    case DeviceStatus::Failed: return "failed";
  }
  return "failed";
}

std::size_t BatchResult::count(DeviceStatus status) const {
  return static_cast<std::size_t>(std::count_if(outcomes.begin(), outcomes.end(), [&](const DeviceOutcome& outcome) { return outcome.status == status; }));
}

namespace {

// Every file a good row of this shard would write (the manifest and its CSV view last).
std::vector<std::string> planned_files(const BatchRequest& request, const std::string& out_dir, const std::string& manifest,
                                       const std::vector<Prepared>& good) {
  std::vector<std::string> files;
  for (const Prepared& item : good) {
    if (!request.shard.contains(item.index)) continue;
    files.push_back(out_dir + "/" + item.name + compression_suffix(request.compression));
    if (request.bmap) files.push_back(out_dir + "/" + bmap_name(item.name));
  }
  files.push_back(manifest);
  files.push_back(csv_view_path(manifest));
  return files;
}

// batch --dry-run: each plan checked against the golden image opened read-only; nothing written.
BatchResult dry_run(const BatchRequest& request, const std::string& out_dir, std::vector<Prepared> prepared, BatchResult result) {
  DiskImage golden = DiskImage::open(request.golden_path, OpenMode::ReadOnly, request.backend);
  std::vector<Prepared> good = rows_the_image_accepts(golden, request.devices_csv, std::move(prepared), result);
  std::sort(result.bad_rows.begin(), result.bad_rows.end(), [](const BadRow& a, const BadRow& b) { return a.line < b.line; });
  result.would_write = planned_files(request, out_dir, result.manifest_path, good);
  result.total = static_cast<std::size_t>(std::count_if(good.begin(), good.end(), [&](const Prepared& item) { return request.shard.contains(item.index); }));
  result.aborted = !result.bad_rows.empty();
  return result;
}

}  // namespace

BatchResult run_batch(const BatchRequest& request, const BatchObserver& observer) {
  BatchResult result;
  refuse_compressed_name(request);
  Profile profile = load_profile(request.profile_path);
  const std::vector<DeviceRow> rows = read_devices_csv(request.devices_csv);
  resolve_cells_against_csv(profile, rows, request.devices_csv);
  std::vector<Prepared> prepared = prepare_rows(request, profile, rows, result);

  std::string out_dir = request.output_directory;
  while (out_dir.size() > 1 && out_dir.back() == '/') out_dir.pop_back();
  result.manifest_path = request.manifest_path.empty() ? out_dir + "/manifest.jsonl" : request.manifest_path;
  // A dry run makes nothing, not even the output directory: its default manifest's place is checked
  // only when the directory exists.
  const bool created = !request.dry_run && std::filesystem::create_directories(request.output_directory);
  std::map<std::string, ManifestRecord> previous;
  try {
    if (!request.dry_run || !request.manifest_path.empty() || std::filesystem::exists(out_dir)) check_manifest_location(result.manifest_path);
    refuse_colliding_outputs(request, out_dir, result.manifest_path, prepared);
    previous = previous_records(result.manifest_path);
    refuse_foreign_outputs(request, out_dir, previous, prepared);
  } catch (const Error&) {
    if (created) ::rmdir(out_dir.c_str());  // a refused batch leaves nothing behind, not even its directory
    throw;
  }
  if (request.dry_run) return dry_run(request, out_dir, std::move(prepared), std::move(result));

  const std::string scan_key = golden_scan_key(request.golden_path);  // before the copy: a golden changed since gets another
  GoldenCache cache(request.cache_directory, request.golden_path);
  SharedBase base = build_base(request, out_dir, scan_key, std::move(prepared), result);
  std::sort(result.bad_rows.begin(), result.bad_rows.end(), [](const BadRow& a, const BadRow& b) { return a.line < b.line; });

  std::vector<const Prepared*> work;
  for (const Prepared& item : base.good) {
    if (request.shard.contains(item.index)) work.push_back(&item);
  }
  result.total = work.size();
  if (!result.bad_rows.empty() && !request.keep_going) {
    result.aborted = true;
    return result;
  }

  Context context{request, out_dir, sha256_hex(read_host_file(request.profile_path)), "",
                  base.file ? base.file->fd() : -1, std::move(previous), scan_key, {}, base.golden.get(), base.overlay};
  Lazy<FramedBase> frames([&] { return framed_base(context, cache); });
  Lazy<BaseMap> map([&] { return shared_base_map(context); });
  context.framed_base = &frames;
  context.base_map = &map;
  // A new compressed batch needs the golden's frames anyway: built first, they give its sha256 on the
  // way (a re-run, whose devices may all be done, reads only what it needs).
  if (base_is_overlay(context) && context.previous.empty() && !work.empty()) frames.get();
  context.golden_sha256 = cache.digest();
  for (const std::string& path : planned_files(request, out_dir, result.manifest_path, base.good)) {
    if (path.starts_with(out_dir + "/")) context.claimed.insert(path.substr(out_dir.size() + 1));
  }

  run_devices(context, work, result, observer);

  // Compaction: every record ever written for this manifest, the newest per device.
  std::vector<ManifestRecord> records = read_manifest(result.manifest_path, CutOff::Drop);
  write_manifest(result.manifest_path, records);
  return result;
}

}  // namespace imprint
