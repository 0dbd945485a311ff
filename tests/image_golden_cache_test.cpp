// GoldenCache (golden_cache.hpp): a golden's sha256 and compressed frames kept between runs, checked
// with independent tools (sha256sum, zstd -t / -dc, cmp); a rewritten golden, a damaged entry and a
// full cache; and FramedBase::patched (the shared base's frames: the golden's with the shared
// overlay's frames recompressed) read back by zstd.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "imprint/core/fileio.hpp"
#include "imprint/image/golden_cache.hpp"
#include "imprint/image/overlay.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::TempDir;

constexpr std::uint64_t MiB = 1024 * 1024;

void sh(const std::string& command) { test::shell(command); }

// 12 MiB, mostly hole: random data at 1 MiB and 9 MiB (three 4 MiB frames, one of them without data).
std::string make_golden(const TempDir& dir, const std::string& name = "golden.img") {
  const std::string path = dir / name;
  sh("truncate -s 12M '" + path + "'");
  sh("dd if=/dev/urandom of='" + path + "' bs=1M count=2 seek=1 conv=notrunc status=none");
  sh("dd if=/dev/urandom of='" + path + "' bs=1M count=1 seek=9 conv=notrunc status=none");
  return path;
}

std::string sha256sum(const std::string& path) { return test::shell("sha256sum < '" + path + "' | cut -c1-64 | tr -d '\\n'"); }

// The frames as one file (their files' bytes in frame order), as a batch's output would hold them.
std::string concatenated(const FramedBase& frames, const TempDir& dir) {
  const std::string path = dir / "frames.zst";
  UniqueFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  for (const FrameSpan& span : frames.frames()) {
    std::string bytes(span.length, '\0');
    pread_all(frames.file_fd(span.file), bytes.data(), bytes.size(), span.offset, "a frame");
    write_all(out.get(), bytes, path);
  }
  return path;
}

TEST(GoldenCache, KeepsTheDigestAndTheFramesUntilTheGoldenChanges) {
  TempDir dir;
  const std::string golden = make_golden(dir);
  const std::string cache_dir = dir / "cache";
  {
    GoldenCache cache(cache_dir, golden);
    EXPECT_EQ(cache.digest(), sha256sum(golden));
    UniqueFd fd = open_read(golden);
    GoldenCache::Frames built = cache.frames(fd.get(), Compression::Zstd, 2, dir.path());
    EXPECT_FALSE(built.from_cache);
    ASSERT_EQ(built.frames.frames().size(), 3u);
  }
  // A second run: both from the cache, the frames a valid .zst of exactly the golden's bytes.
  GoldenCache again(cache_dir, golden);
  const std::string digest_file = test::shell("ls '" + cache_dir + "/golden/'");
  sh("echo 0000000000000000000000000000000000000000000000000000000000000000 | tr -d '\\n' > '" + cache_dir + "/golden/" +
     digest_file.substr(0, digest_file.find('\n')) + "'");
  EXPECT_EQ(again.digest(), std::string(64, '0'));  // read back, not recomputed
  UniqueFd fd = open_read(golden);
  GoldenCache::Frames cached = again.frames(fd.get(), Compression::Zstd, 2, dir.path());
  EXPECT_TRUE(cached.from_cache);
  const std::string file = concatenated(cached.frames, dir);
  sh("zstd -t -q '" + file + "'");
  EXPECT_EQ(test::run({"sh", "-c", "zstd -dc -q '" + file + "' | cmp - '" + golden + "'"}).status, 0);

  // The golden rewritten (same bytes, new change time): another key, nothing reused.
  sh("touch '" + golden + "'");
  GoldenCache changed(cache_dir, golden);
  EXPECT_EQ(changed.digest(), sha256sum(golden));
  EXPECT_FALSE(changed.frames(fd.get(), Compression::Zstd, 2, dir.path()).from_cache);
}

TEST(GoldenCache, ADamagedEntryIsBuiltAgainAndAFullCacheDropsTheLeastRecentlyUsed) {
  TempDir dir;
  const std::string cache_dir = dir / "cache";
  const std::string golden = make_golden(dir);
  UniqueFd fd = open_read(golden);
  GoldenCache(cache_dir, golden).frames(fd.get(), Compression::Zstd, 1, dir.path());
  // The frames file one byte short of what its index says: not used, built again.
  const std::string frames_file = test::shell("ls '" + cache_dir + "/frames/'*.frames | tr -d '\\n'");
  sh("truncate -s -1 '" + frames_file + "'");
  GoldenCache::Frames rebuilt = GoldenCache(cache_dir, golden).frames(fd.get(), Compression::Zstd, 1, dir.path());
  EXPECT_FALSE(rebuilt.from_cache);
  EXPECT_EQ(test::run({"sh", "-c", "zstd -dc -q '" + concatenated(rebuilt.frames, dir) + "' | cmp - '" + golden + "'"}).status, 0);
  EXPECT_TRUE(GoldenCache(cache_dir, golden).frames(fd.get(), Compression::Zstd, 1, dir.path()).from_cache);

  // kKeptFrames more goldens: the first (least recently used) entry goes, the others stay.
  for (std::size_t i = 0; i < GoldenCache::kKeptFrames; ++i) {
    const std::string other = make_golden(dir, "other" + std::to_string(i) + ".img");
    sh("sleep 0.02");  // distinct modification times
    UniqueFd other_fd = open_read(other);
    GoldenCache(cache_dir, other).frames(other_fd.get(), Compression::Zstd, 1, dir.path());
  }
  EXPECT_EQ(test::shell("ls '" + cache_dir + "/frames/' | grep -c '\\.json$' | tr -d '\\n'"), std::to_string(GoldenCache::kKeptFrames));
  EXPECT_EQ(test::shell("ls '" + cache_dir + "/frames/' | grep -c '\\.frames$' | tr -d '\\n'"), std::to_string(GoldenCache::kKeptFrames));
  EXPECT_FALSE(GoldenCache(cache_dir, golden).frames(fd.get(), Compression::Zstd, 1, dir.path()).from_cache);
}

TEST(GoldenCache, WithoutADirectoryNothingIsKept) {
  TempDir dir;
  const std::string golden = make_golden(dir);
  UniqueFd fd = open_read(golden);
  GoldenCache cache("", golden);
  EXPECT_EQ(cache.digest(), sha256sum(golden));
  EXPECT_FALSE(cache.frames(fd.get(), Compression::Zstd, 1, dir.path()).from_cache);
  EXPECT_FALSE(GoldenCache("", golden).frames(fd.get(), Compression::Zstd, 1, dir.path()).from_cache);
  EXPECT_EQ(test::shell("ls -A '" + dir.path() + "' | tr '\\n' ' '"), "golden.img ");
}

// The shared base's frames: the golden's, with the frames a shared overlay wrote into recompressed
// into a file of their own; the untouched frames stay in the golden's (the cache's) file.
TEST(GoldenCache, PatchedFramesAreTheGoldenUnderTheOverlay) {
  TempDir dir;
  const std::string golden = make_golden(dir);
  UniqueFd fd = open_read(golden);
  const FramedBase frames = GoldenCache(dir / "cache", golden).frames(fd.get(), Compression::Zstd, 2, dir.path()).frames;
  ImageOverlay shared;
  shared.write(5 * MiB, std::string(ImageOverlay::kPage, 'S'));  // in the middle frame, a hole in the golden
  const ImageReader read = [&](std::uint64_t offset, std::size_t size, char* out) { shared.read(fd.get(), offset, size, out); };
  const FramedBase patched = FramedBase::patched(frames, read, ChangedRanges{shared.extents()}, 2, dir.path(), "the test's base");
  ASSERT_EQ(patched.frames().size(), 3u);
  EXPECT_EQ(patched.frames()[0].file, 0u);
  EXPECT_EQ(patched.frames()[1].file, 1u);
  EXPECT_EQ(patched.frames()[2].file, 0u);
  const std::string expected = dir / "expected.img";
  sh("cp --sparse=always '" + golden + "' '" + expected + "'");
  sh("head -c 512 /dev/zero | tr '\\0' S | dd of='" + expected + "' bs=1M seek=5 conv=notrunc status=none");
  const std::string file = concatenated(patched, dir);
  sh("zstd -t -q '" + file + "'");
  EXPECT_EQ(test::run({"sh", "-c", "zstd -dc -q '" + file + "' | cmp - '" + expected + "'"}).status, 0);
}

}  // namespace
}  // namespace imprint
