// ImageOverlay: the written pages over a read-only golden, in memory and past the limit in a spill.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "imprint/image/overlay.hpp"
#include "support.hpp"

namespace imprint {
namespace {

// The targets of this process's open descriptors, as /proc/self/fd shows them.
std::vector<std::string> open_file_targets() {
  std::vector<std::string> targets;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ignored;
    targets.push_back(std::filesystem::read_symlink(entry.path(), ignored).string());
  }
  return targets;
}

std::string page_of(char fill) { return std::string(ImageOverlay::kPage, fill); }

// Past its memory limit the overlay keeps pages elsewhere; those pages are the plan's writes (keys
// among them), so "elsewhere" must never be a file on the host's disk, not even an unnamed one in
// $TMPDIR. Reads see the golden with every layer's pages on top, spilled ones and rewritten ones too.
TEST(ImageOverlay, SpilledPagesStayInMemoryAndReadBackOverTheGolden) {
  test::TempDir dir;
  const std::string golden_path = dir / "golden.img";
  test::write_file(golden_path, std::string(8 * ImageOverlay::kPage, 'g'));
  const int golden = ::open(golden_path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(golden, 0);

  ImageOverlay overlay(ImageOverlay::kPage);  // one page in the heap, the rest spills
  const auto before = open_file_targets();
  overlay.write(1 * ImageOverlay::kPage, page_of('a'));
  overlay.write(3 * ImageOverlay::kPage, page_of('b') + page_of('c'));  // pages 3 and 4: spilled
  overlay.write(4 * ImageOverlay::kPage, page_of('d'));                   // a spilled page rewritten
  EXPECT_EQ(overlay.spilled_bytes(), 2 * ImageOverlay::kPage);

  bool memfd = false;
  for (const std::string& target : open_file_targets()) {
    if (std::find(before.begin(), before.end(), target) != before.end()) continue;
    EXPECT_TRUE(target.starts_with("/memfd:")) << "the overlay's spill is a host file: " << target;
    memfd = memfd || target.starts_with("/memfd:imprint-overlay-spill");
  }
  EXPECT_TRUE(memfd) << "no spill was opened, though two pages are past the memory limit";

  std::string image(8 * ImageOverlay::kPage, '\0');
  overlay.read(golden, 0, image.size(), image.data());
  EXPECT_EQ(image, page_of('g') + page_of('a') + page_of('g') + page_of('b') + page_of('d') + page_of('g') +
                       page_of('g') + page_of('g'));
  // A read that starts and ends inside pages sees the same bytes.
  std::string middle(ImageOverlay::kPage, '\0');
  overlay.read(golden, 4 * ImageOverlay::kPage - 10, middle.size(), middle.data());
  EXPECT_EQ(middle, std::string(10, 'b') + std::string(ImageOverlay::kPage - 10, 'd'));
  EXPECT_EQ(overlay.extents().size(), 2u);  // [1] and [3, 5)
  ::close(golden);
}

}  // namespace
}  // namespace imprint
