// Framed compression (frames.hpp): a sparse base compressed as 1 MiB frames, a device copy with a
// change that straddles a frame boundary and one in a hole; checked with zstd/gzip/xz -t and -dc,
// and with imprint's own decompression (libarchive).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "imprint/core/fileio.hpp"
#include "imprint/image/copy.hpp"
#include "imprint/image/frames.hpp"
#include "imprint/image/overlay.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::TempDir;

constexpr std::uint64_t MiB = 1024 * 1024;

void sh(const std::string& command) { test::shell(command); }

UniqueFd open_file(const std::string& path, int flags = O_RDONLY) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, 0600));
  if (!fd) throw std::runtime_error("cannot open " + path);
  return fd;
}

// 24 MiB, mostly hole: random data from 1.5 to 4.5 MiB and at 10 MiB, text at 16 MiB.
std::string make_base(const TempDir& dir) {
  const std::string path = dir / "base.img";
  sh("truncate -s 24M '" + path + "'");
  sh("dd if=/dev/urandom of='" + path + "' bs=512K count=6 seek=3 conv=notrunc status=none");
  sh("dd if=/dev/urandom of='" + path + "' bs=1M count=1 seek=10 conv=notrunc status=none");
  sh("yes imprint | head -c 1000000 | dd of='" + path + "' bs=1M seek=16 conv=notrunc status=none");
  return path;
}

// The device: the base with 20 bytes across the 3 MiB frame boundary and 5 bytes in the hole at
// 20 MiB changed.
std::string make_device(const TempDir& dir, const std::string& base) {
  const std::string path = dir / "device.img";
  sh("cp --sparse=always '" + base + "' '" + path + "'");
  sh("printf 'ABCDEFGHIJKLMNOPQRST' | dd of='" + path + "' bs=1 seek=" + std::to_string(3 * MiB - 10) + " conv=notrunc status=none");
  sh("printf 'hello' | dd of='" + path + "' bs=1 seek=" + std::to_string(20 * MiB + 7) + " conv=notrunc status=none");
  return path;
}

struct Format {
  Compression compression;
  std::string tool;
};

class Frames : public ::testing::TestWithParam<Format> {};

TEST_P(Frames, ReusesUntouchedFramesAndRecompressesTheOthers) {
  TempDir dir;
  const std::string base_path = make_base(dir);
  const std::string device_path = make_device(dir, base_path);
  const UniqueFd base_fd = open_file(base_path);
  const UniqueFd device_fd = open_file(device_path);
  const std::vector<Extent> base_extents = data_extents(base_fd.get());
  const std::vector<Extent> device_extents = data_extents(device_fd.get());

  const FramedBase base = FramedBase::build(base_fd.get(), 24 * MiB, base_extents, GetParam().compression, 2, dir.path(), "base", MiB);
  ASSERT_EQ(base.frames().size(), 24u);

  // The comparison finds exactly the two changes, at its 4 KiB granularity.
  const ChangedRanges changed =
      changed_ranges_by_comparison(base_fd.get(), base_extents, device_fd.get(), device_extents, 24 * MiB, 4096);
  ASSERT_EQ(changed.ranges.size(), 2u);
  EXPECT_EQ(changed.ranges[0], (Extent{3 * MiB - 4096, 8192}));
  EXPECT_EQ(changed.ranges[1], (Extent{20 * MiB, 4096}));

  // Untouched: every frame reused, the output is the base's compressed file byte for byte.
  const std::string same = dir / "same.out";
  {
    UniqueFd out = open_file(same, O_RDWR | O_CREAT | O_TRUNC);
    const FrameStats stats = write_framed(base, base_fd.get(), base_extents, ChangedRanges{}, out.get(), same);
    EXPECT_EQ(stats.reused, 24u);
    EXPECT_EQ(stats.recompressed, 0u);
  }
  // The device: frames 2 and 3 (the straddling change) and 20 recompressed, 21 reused.
  const std::string framed = dir / "device.out";
  {
    UniqueFd out = open_file(framed, O_RDWR | O_CREAT | O_TRUNC);
    const FrameStats stats = write_framed(base, device_fd.get(), device_extents, changed, out.get(), framed);
    EXPECT_EQ(stats.reused, 21u);
    EXPECT_EQ(stats.recompressed, 3u);
  }
  const std::string& tool = GetParam().tool;
  for (const auto& [file, original] : {std::pair{same, base_path}, std::pair{framed, device_path}}) {
    sh(tool + " -t '" + file + "'");  // throws (fails the test) when the tool rejects it or is missing
    EXPECT_EQ(test::shell(tool + " -dc '" + file + "' | sha256sum | cut -d' ' -f1"), test::file_sha256(original) + "\n") << file;
    // imprint's own decompression (libarchive) reads the concatenated frames too.
    UniqueFd back = open_file(file + ".img", O_RDWR | O_CREAT | O_TRUNC);
    decompress_image(file, back.get());
    EXPECT_EQ(test::file_sha256(file + ".img"), test::file_sha256(original)) << file;
  }
  // Every frame but the three is the base's, byte for byte: the output differs only in their bytes.
  const std::uint64_t base_bytes = base.frames().back().offset + base.frames().back().length;
  EXPECT_EQ(std::filesystem::file_size(same), base_bytes);
}

INSTANTIATE_TEST_SUITE_P(Formats, Frames,
                         ::testing::Values(Format{Compression::Zstd, "zstd"}, Format{Compression::Gzip, "gzip"},
                                           Format{Compression::Xz, "xz"}),
                         [](const auto& parameter) { return parameter.param.tool; });

TEST(FramesWriter, FramesWithoutDataShareOneCompressedZeroFrame) {
  TempDir dir;
  const std::string path = dir / "holes.img";
  sh("truncate -s 5M '" + path + "'");  // 2 MiB frames: two full ones and a 1 MiB tail, no data
  const UniqueFd fd = open_file(path);
  const FramedBase base = FramedBase::build(fd.get(), 5 * MiB, {}, Compression::Zstd, 1, dir.path(), "holes", 2 * MiB);
  ASSERT_EQ(base.frames().size(), 3u);
  EXPECT_EQ(base.frames()[0].length, base.frames()[1].length);
  EXPECT_LT(base.frames()[0].length, 1024u);  // zeros compress to almost nothing
  const std::string out_path = dir / "holes.zst";
  UniqueFd out = open_file(out_path, O_RDWR | O_CREAT | O_TRUNC);
  write_framed(base, fd.get(), {}, ChangedRanges{}, out.get(), out_path);
  EXPECT_EQ(test::shell("zstd -dc '" + out_path + "' | sha256sum | cut -d' ' -f1"), test::file_sha256(path) + "\n");
}

// A batch's path: the device is the base + an overlay (no device file); the overlay's extents are
// the changed ranges and the touched frames are read through it. The output is the same bytes as
// from the device's file (the format does not matter here: zstd), and the digest hashed while writing is the output's sha256.
TEST(FramesThroughOverlay, ReadTouchedFramesAndHashWhatIsWritten) {
  TempDir dir;
  const std::string base_path = make_base(dir);
  const std::string device_path = make_device(dir, base_path);
  const UniqueFd base_fd = open_file(base_path);
  const UniqueFd device_fd = open_file(device_path);
  const FramedBase base =
      FramedBase::build(base_fd.get(), 24 * MiB, data_extents(base_fd.get()), Compression::Zstd, 2, dir.path(), "base", MiB);

  // The device's two changes, as a filesystem commits them: whole 512-byte pages of the device.
  ImageOverlay overlay(4096);  // a small memory limit: part of it spills, as a large plan's would
  for (const std::uint64_t page : {3 * MiB - 512, 20 * MiB}) {
    std::string bytes(ImageOverlay::kPage, '\0');
    ASSERT_EQ(::pread(device_fd.get(), bytes.data(), bytes.size(), static_cast<off_t>(page)), static_cast<ssize_t>(bytes.size()));
    overlay.write(page, bytes);
  }
  std::string bytes(ImageOverlay::kPage, '\0');
  ASSERT_EQ(::pread(device_fd.get(), bytes.data(), bytes.size(), static_cast<off_t>(3 * MiB)), static_cast<ssize_t>(bytes.size()));
  overlay.write(3 * MiB, bytes);
  const ImageReader read = [&](std::uint64_t offset, std::size_t size, char* out) { overlay.read(base_fd.get(), offset, size, out); };

  const std::string through = dir / "overlay.out";
  Sha256 digest;
  {
    UniqueFd out = open_file(through, O_RDWR | O_CREAT | O_TRUNC);
    const FrameStats stats = write_framed(base, read, ChangedRanges{overlay.extents()}, out.get(), through, &digest);
    EXPECT_EQ(stats.reused, 21u);
    EXPECT_EQ(stats.recompressed, 3u);
  }
  EXPECT_EQ(digest.hex_digest(), test::file_sha256(through));
  const std::string from_file = dir / "file.out";
  {
    UniqueFd out = open_file(from_file, O_RDWR | O_CREAT | O_TRUNC);
    write_framed(base, device_fd.get(), data_extents(device_fd.get()), ChangedRanges{overlay.extents()}, out.get(), from_file);
  }
  EXPECT_EQ(test::file_sha256(through), test::file_sha256(from_file));
  sh("zstd -t '" + through + "'");
  EXPECT_EQ(test::shell("zstd -dc '" + through + "' | sha256sum | cut -d' ' -f1"), test::file_sha256(device_path) + "\n");
}

}  // namespace
}  // namespace imprint
