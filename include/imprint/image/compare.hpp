// An image (a file, or the card it was flashed to) compared with what it should be: a golden plus an
// overlay of the writes a stamp makes (image/overlay.hpp). Outside the overlay's written runs every
// byte must equal the golden's; inside them a byte-equal run needs no further look, and a differing
// one is for the caller to judge (a PFX's random salt, a timestamp: verify_plan compares by meaning).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "imprint/core/extent.hpp"
#include "imprint/image/image.hpp"

namespace imprint {

class ImageOverlay;

// Bytes that differ, counted, with the places they were found.
struct ByteDifferences {
  std::uint64_t bytes = 0;            // differing bytes
  std::uint64_t ranges = 0;           // maximal runs of consecutive differing bytes
  std::uint64_t first = 0;            // offset of the first differing byte (when bytes > 0)
  std::vector<std::string> regions;   // region_of() of each range, each named once, in order
};

struct OverlayComparison {
  ByteDifferences outside;             // outside the written runs: must be none
  std::vector<Extent> written;         // the overlay's written runs (inside the compared span)
  std::vector<Extent> written_differ;  // those of them whose bytes differ from golden + overlay
  std::uint64_t compared = 0;          // bytes compared: the golden's size, or the image's when shorter
};

// Reads golden (golden_size bytes; holes read as zeros) and image side by side in 1 MiB preads,
// memory flat, up to min(golden_size, image_size): the image's bytes past the golden's are not
// looked at (a card holds the image and whatever followed it). `layout` (the golden's) names the
// regions; image_name is what read errors name.
OverlayComparison compare_with_overlay(int golden_fd, std::uint64_t golden_size, const ImageOverlay& overlay, int image_fd,
                                       std::uint64_t image_size, const Layout& layout, const std::string& image_name);

// Where an image offset falls: "data (p4)" (partition_name), "partition table" (the MBR sector, the
// GPT's headers and entries at either end, an extended container's boot records) or "outside the
// partitions" (a bootloader gap, the space after the last partition).
std::string region_of(const Layout& layout, std::uint64_t offset);

}  // namespace imprint
