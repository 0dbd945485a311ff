// imprint flash: stamp (or take) an image (flash_source.cpp), refuse or open the target
// (flash_target.cpp), write its mapped blocks and read them back (flash_write.cpp), record it.
#include "imprint/batch/flash.hpp"

#include <unistd.h>

#include <chrono>
#include <future>

#include "flash_internal.hpp"
#include "imprint/image/bmap.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/progress.hpp"
#include "imprint/batch/manifest.hpp"
#include "record.hpp"

namespace imprint {

using flash_detail::Source;
using flash_detail::Target;
using flash_detail::WritePass;

FlashResult flash(const FlashRequest& request) {
  const auto started = std::chrono::system_clock::now();
  if (request.target.empty()) throw Error("flash needs --target DEVICE|FILE", ErrorCode::Usage);
  flash_detail::refuse_input_targets(request);
  flash_detail::Meter meter(request.progress);
  meter.start(FlashPhase::Stamping, 0);
  Source source = request.profile_path.empty() ? flash_detail::image_source(request) : flash_detail::stamped_source(request);
  Target target = flash_detail::open_target(request, source);
  verbose_note(request.target + ": opened for writing (" +
               (target.kind == flash_detail::TargetKind::BlockDevice ? "block device"
                : target.kind == flash_detail::TargetKind::NewFile   ? "new file"
                                                                     : "existing file") +
               "); " + std::to_string(source.ranges.size()) + " range(s) of " + source.name + " to write");

  FlashResult result;
  result.device_id = source.device_id;
  result.target = request.target;
  result.image_size = source.size;
  result.warnings = source.warnings;
  // The digest of the whole image (holes as zeros) for the record: on the other core, while this one
  // writes; both read the source from the page cache.
  auto image_sha256 = std::async(request.record_wanted() ? std::launch::async : std::launch::deferred, [&] {
    return request.record_wanted() ? flash_detail::source_sha256(source) : std::string();
  });
  result.mapped_bytes = 0;
  for (const Extent& range : source.ranges) result.mapped_bytes += range.length;
  meter.start(FlashPhase::Writing, result.mapped_bytes);
  WritePass pass = flash_detail::write_map(source, target, request.target, meter);
  result.image_sha256 = image_sha256.get();
  result.zero_bytes = pass.zero_bytes;
  if (request.zero_unmapped) flash_detail::zero_unmapped(source, target, request.target, pass);
  result.bytes_written = pass.bytes_written;
  if (::fsync(target.fd.get()) != 0) throw_errno("cannot sync " + request.target);
  verbose_note(request.target + ": wrote " + std::to_string(pass.bytes_written) + " bytes, synced; reading it back");
  flash_detail::corrupt_for_test(request.target);
  result.ranges = source.ranges.size();
  std::uint64_t to_read = 0;
  for (const FlashPiece& range : pass.written) to_read += range.range.length;
  meter.start(FlashPhase::Verifying, to_read);
  result.failure = flash_detail::read_back(request.target, target.fd.get(), source, pass.written, meter);
  result.verified = result.failure.empty();

  ManifestRecord record;
  record["device_id"] = result.device_id;
  record["target"] = request.target;
  record["verified"] = result.verified;
  record["image_sha256"] = result.image_sha256.empty() ? nlohmann::json() : nlohmann::json(result.image_sha256);
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
