// verify --golden (see verify_against_golden in stamp.hpp): an image compared with golden + the
// overlay stamp would write, byte for byte outside the plan's writes, by meaning inside them.
#include <unistd.h>

#include <memory>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/core/progress.hpp"
#include "imprint/image/compare.hpp"
#include "imprint/image/copy.hpp"
#include "imprint/image/overlay.hpp"
#include "imprint/stamp/stamp.hpp"

namespace imprint {

namespace {

// An image's raw bytes: the file or card itself, or a compressed image decompressed once into an
// unnamed file (gone with the process): the golden's in $TMPDIR, the verified image's beside it.
struct RawImage {
  UniqueFd fd;
  std::string io_path;  // what libraries open: the path itself, or /proc/self/fd/N of the decompressed copy
  std::uint64_t size = 0;
};

RawImage raw_image(const std::string& path, InputKind kind, std::string_view noun, bool golden) {
  RawImage raw;
  raw.fd = open_read(path, kind, noun);  // first: a missing or unfit input is named as such
  raw.io_path = path;
  if (is_compressed_image(path)) {
    // The image verified may be a stamped one, with a device's key: never in $TMPDIR.
    raw.fd = golden ? decompressed_golden(path) : decompressed_beside(path);
    raw.io_path = fd_path(raw.fd.get());
    verbose_note(path + " is compressed: decompressed once into an unnamed " + (golden ? "temp file" : "file beside it") +
                 " to compare with");
  }
  const off_t end = ::lseek(raw.fd.get(), 0, SEEK_END);  // a block device has no st_size
  if (end < 0) throw_errno("cannot get the size of " + path);
  raw.size = static_cast<std::uint64_t>(end);
  return raw;
}

// The golden opened read-only with the device's plan applied into an overlay, as stamp does.
std::shared_ptr<ImageOverlay> expected_overlay(const RawImage& golden, const std::string& golden_path, const DevicePlan& device,
                                               Backend backend, Layout& layout) {
  auto overlay = std::make_shared<ImageOverlay>();
  DiskImage expected = DiskImage::open_overlay(golden.io_path, overlay, backend, golden_path);
  if (auto why = overlay_obstacle(expected, device.plan)) {
    throw Error(golden_path + ": --golden cannot build the expected image as golden + overlay: " + *why +
                    " (verify without --golden checks the plan's files)",
                ErrorCode::Unsupported);
  }
  StampResult planned;
  planned.plan = device.plan;
  stamp_open_image(expected, planned);  // the plan's checks, then its writes, flushed into the overlay
  layout = expected.layout();
  return overlay;
}

std::string plural(std::uint64_t count, const std::string& noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

std::string outside_line(const ByteDifferences& outside, const std::string& image_path, const std::string& golden_path) {
  std::string line = image_path + ": " + plural(outside.bytes, "byte") + " in " + plural(outside.ranges, "range") + " differ" +
                     (outside.bytes == 1 ? "s" : "") + " from " + golden_path +
                     " outside what the plan writes (a change stamp never makes: tampering, a bad card or the wrong golden); "
                     "the first at byte " + std::to_string(outside.first) + " in " + outside.regions.front();
  if (outside.regions.size() > 1) {
    line += "; ranges in ";
    for (std::size_t i = 0; i < outside.regions.size(); ++i) line += (i ? ", " : "") + outside.regions[i];
  }
  return line;
}

std::uint64_t total_length(const std::vector<Extent>& extents) {
  std::uint64_t total = 0;
  for (const Extent& extent : extents) total += extent.length;
  return total;
}

}  // namespace

std::vector<std::string> verify_against_golden(const std::string& golden_path, const std::string& image_path, const DevicePlan& device,
                                               Backend backend) {
  const RawImage golden = raw_image(golden_path, InputKind::File, "a golden image", /*golden=*/true);
  Layout layout;
  const std::shared_ptr<ImageOverlay> overlay = expected_overlay(golden, golden_path, device, backend, layout);
  const RawImage image = raw_image(image_path, InputKind::FileOrBlockDevice, "a disk image", /*golden=*/false);
  const OverlayComparison comparison =
      compare_with_overlay(golden.fd.get(), golden.size, *overlay, image.fd.get(), image.size, layout, image_path);

  std::vector<std::string> differences;
  if (image.size < golden.size) {
    differences.push_back(image_path + " is " + std::to_string(image.size) + " bytes, shorter than " + golden_path + " (" +
                          std::to_string(golden.size) + " bytes): its end is missing");
  } else if (image.size > golden.size) {
    verbose_note(image_path + ": the " + std::to_string(image.size - golden.size) + " bytes past the golden's " +
                 std::to_string(golden.size) + " are not compared (what the card held after the image)");
  }
  if (comparison.outside.bytes > 0) differences.push_back(outside_line(comparison.outside, image_path, golden_path));

  const std::string runs = plural(comparison.written.size(), "run") + " the plan writes (" +
                           std::to_string(total_length(comparison.written)) + " bytes)";
  if (comparison.written_differ.empty()) {
    verbose_note(image_path + ": the " + runs + " equal golden + overlay byte for byte; no meaning check needed");
    return differences;
  }
  std::string where;
  for (const Extent& run : comparison.written_differ) {
    const std::string region = region_of(layout, run.offset);
    if (where.find(region) == std::string::npos) where += (where.empty() ? "" : ", ") + region;
  }
  verbose_note(image_path + ": " + std::to_string(comparison.written_differ.size()) + " of the " + runs +
               " differ from golden + overlay (in " + where + "): the plan's files compared by meaning instead");
  try {
    DiskImage disk = DiskImage::open(image.io_path, OpenMode::ReadOnly, backend, image_path);
    std::vector<std::string> meaning = verify_plan(disk, device);
    differences.insert(differences.end(), meaning.begin(), meaning.end());
  } catch (const Error& error) {
    // An image already shown to differ (a bad card, the wrong golden) may not open: keep what was
    // found, and say why the files could not be judged.
    if (differences.empty()) throw;
    differences.push_back(std::string("the plan's files cannot be read: ") + error.what());
  }
  return differences;
}

}  // namespace imprint
