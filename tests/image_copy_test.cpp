// copy_sparse, data_extents, is_compressed_image, decompress_image and copy_image against files
// made with truncate/dd and the gzip, xz, zstd, bzip2 and zip command-line tools.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "imprint/image/copy.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::TempDir;

constexpr std::uint64_t MiB = 1024 * 1024;

void sh(const std::string& command) { test::shell(command); }

// 24 MiB, mostly hole: random 1 MiB at 2 MiB and at 14 MiB, and 1 MiB of *written* zeros at
// 6 MiB (allocated in the source, must become a hole in copies). Ends in a hole.
std::string make_sparse_file(const TempDir& dir, const std::string& name = "source.img") {
  const std::string path = dir / name;
  sh("truncate -s 24M '" + path + "'");
  sh("dd if=/dev/urandom of='" + path + "' bs=1M count=1 seek=2 conv=notrunc status=none");
  sh("dd if=/dev/urandom of='" + path + "' bs=1M count=1 seek=14 conv=notrunc status=none");
  sh("dd if=/dev/zero of='" + path + "' bs=1M count=1 seek=6 conv=notrunc status=none");
  // A non-zero byte in the middle of an otherwise zero 4 KiB block must be kept.
  sh("printf 'x' | dd of='" + path + "' bs=1 seek=" + std::to_string(9 * MiB + 5000) + " conv=notrunc status=none");
  return path;
}

UniqueFd create_output(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) throw std::runtime_error("cannot create " + path);
  return fd;
}

std::uint64_t size_of(const std::string& path) { return std::stoull(test::shell("stat -c %s '" + path + "'")); }

std::uint64_t extent_bytes(const std::vector<Extent>& extents) {
  std::uint64_t total = 0;
  for (const Extent& extent : extents) total += extent.length;
  return total;
}

// The copy holds the same bytes, the same size, and only about the bytes that are not zero.
void expect_sparse_equal(const std::string& original, const std::string& copy, const std::vector<Extent>& extents) {
  EXPECT_EQ(size_of(copy), size_of(original));
  EXPECT_EQ(test::file_sha256(copy), test::file_sha256(original));
  // 2 MiB random + one 4 KiB block holding the 'x'; allow filesystem metadata slack.
  EXPECT_LE(test::allocated_bytes(copy), 2 * MiB + 256 * 1024) << copy << " is not sparse";
  EXPECT_GE(test::allocated_bytes(copy), 2 * MiB);
  EXPECT_GE(extent_bytes(extents), 2 * MiB + 4096);
  EXPECT_LE(extent_bytes(extents), 2 * MiB + 256 * 1024);
  for (const Extent& extent : extents) {  // nothing of the written zeros at 6 MiB survives
    EXPECT_FALSE(extent.offset < 7 * MiB && extent.offset + extent.length > 6 * MiB)
        << "extent " << extent.offset << "+" << extent.length << " covers the zero megabyte";
  }
}

TEST(ImageCopy, CopySparseKeepsBytesAndHoles) {
  TempDir dir;
  const std::string source = make_sparse_file(dir);
  ASSERT_GE(test::allocated_bytes(source), 3 * MiB);  // the written zeros are allocated here
  const std::string target = dir / "copy.img";
  UniqueFd in = open_read(source);
  UniqueFd out = create_output(target);
  const std::vector<Extent> extents = copy_sparse(in.get(), out.get(), source);
  out.reset();
  expect_sparse_equal(source, target, extents);
}

TEST(ImageCopy, DataExtentsFollowSeekData) {
  TempDir dir;
  const std::string path = dir / "extents.img";
  sh("truncate -s 16M '" + path + "'");
  sh("dd if=/dev/urandom of='" + path + "' bs=1M count=2 seek=4 conv=notrunc status=none");
  UniqueFd fd = open_read(path);
  const std::vector<Extent> extents = data_extents(fd.get());
  ASSERT_EQ(extents.size(), 1u);
  EXPECT_EQ(extents[0].offset, 4 * MiB);
  EXPECT_EQ(extents[0].length, 2 * MiB);
}

TEST(ImageCopy, EmptyAndAllHoleFiles) {
  TempDir dir;
  const std::string hole = dir / "hole.img";
  sh("truncate -s 8M '" + hole + "'");
  UniqueFd in = open_read(hole);
  UniqueFd out = create_output(dir / "hole-copy.img");
  EXPECT_TRUE(copy_sparse(in.get(), out.get(), hole).empty());
  EXPECT_EQ(size_of(dir / "hole-copy.img"), 8 * MiB);
  EXPECT_EQ(test::allocated_bytes(dir / "hole-copy.img"), 0u);
}

TEST(ImageCopy, DetectsCompressionByContent) {
  TempDir dir;
  const std::string raw = dir / "disk.img";
  sh("head -c 300000 /dev/urandom > '" + raw + "'");
  sh("cd '" + dir.path() + "' && gzip -k disk.img && xz -k -T1 disk.img && zstd -q -k disk.img && bzip2 -k disk.img && "
     "zip -q disk.zip disk.img && cp disk.img.gz renamed.img");
  EXPECT_FALSE(is_compressed_image(raw));
  for (const char* name : {"disk.img.gz", "disk.img.xz", "disk.img.zst", "disk.img.bz2", "disk.zip", "renamed.img"}) {
    EXPECT_TRUE(is_compressed_image(dir / name)) << name;
  }
  // A real partitioned image is not mistaken for an archive.
  const std::string mbr = dir / "mbr.img";
  sh("truncate -s 32M '" + mbr + "' && printf 'label: dos\\n8M,,83\\n' | sfdisk -q '" + mbr + "'");
  EXPECT_FALSE(is_compressed_image(mbr));
  try {
    is_compressed_image(dir / "missing.img");
    ADD_FAILURE() << "no error for a missing file";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(dir / "missing.img"), std::string::npos) << error.what();
  }
}

class ImageDecompress : public ::testing::TestWithParam<std::string> {};

TEST_P(ImageDecompress, EqualsOriginalAndStaysSparse) {
  TempDir dir;
  const std::string raw = make_sparse_file(dir, "disk.img");
  const std::string compressed = dir / ("disk." + GetParam());
  const std::string& kind = GetParam();
  if (kind == "img.gz") sh("gzip -k '" + raw + "'");
  if (kind == "img.xz") sh("xz -k -T1 '" + raw + "'");
  if (kind == "img.zst") sh("zstd -q -k '" + raw + "'");
  if (kind == "img.bz2") sh("bzip2 -k '" + raw + "'");
  if (kind == "zip") sh("cd '" + dir.path() + "' && printf 'notes' > README && zip -q disk.zip README disk.img");
  ASSERT_TRUE(is_compressed_image(compressed));
  const std::string output = dir / "out.img";
  UniqueFd out = create_output(output);
  const std::vector<Extent> extents = decompress_image(compressed, out.get());
  out.reset();
  expect_sparse_equal(raw, output, extents);

  // copy_image picks decompression by itself.
  const std::string second = dir / "second.img";
  UniqueFd again = create_output(second);
  copy_image(compressed, again.get());
  again.reset();
  EXPECT_EQ(test::file_sha256(second), test::file_sha256(raw));
}

INSTANTIATE_TEST_SUITE_P(Formats, ImageDecompress, ::testing::Values("img.gz", "img.xz", "img.zst", "img.bz2", "zip"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           for (char& c : name) c = c == '.' ? '_' : c;
                           return name;
                         });

TEST(ImageCopy, CopyImageOfRawFileIsSparse) {
  TempDir dir;
  const std::string raw = make_sparse_file(dir);
  const std::string output = dir / "out.img";
  UniqueFd out = create_output(output);
  const std::vector<Extent> extents = copy_image(raw, out.get());
  out.reset();
  expect_sparse_equal(raw, output, extents);
}

std::string decompress_error(const std::string& path, ErrorCode expected_code) {
  TempDir scratch;
  UniqueFd out = create_output(scratch / "out.img");
  try {
    decompress_image(path, out.get());
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), expected_code) << error.what();
    return error.what();
  }
  ADD_FAILURE() << "decompress_image(" << path << ") did not throw";
  return {};
}

TEST(ImageCopy, ZipMustHoldExactlyOneImage) {
  TempDir dir;
  sh("cd '" + dir.path() + "' && printf a > a.img && printf b > b.img && printf n > notes.txt && "
     "zip -q two.zip a.img b.img notes.txt && zip -q none.zip notes.txt");
  EXPECT_EQ(decompress_error(dir / "two.zip", ErrorCode::Invalid),
            dir / "two.zip" + ": the zip archive holds 2 .img files (a.img, b.img); expected exactly one");
  EXPECT_EQ(decompress_error(dir / "none.zip", ErrorCode::Invalid), dir / "none.zip" + ": the zip archive holds no .img file");
}

TEST(ImageCopy, TruncatedCompressedImageIsCorrupt) {
  TempDir dir;
  make_sparse_file(dir, "disk.img");
  sh("cd '" + dir.path() + "' && gzip -k disk.img && head -c 200000 disk.img.gz > cut.img.gz && "
     "xz -k -T1 disk.img && head -c 100000 disk.img.xz > cut.img.xz");
  for (const char* name : {"cut.img.gz", "cut.img.xz"}) {
    const std::string message = decompress_error(dir / name, ErrorCode::Corrupt);
    EXPECT_EQ(message.rfind(dir / name + ": cannot decompress: ", 0), 0u) << message;
  }
}

}  // namespace
}  // namespace imprint
