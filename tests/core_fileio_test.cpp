// core/fileio: where scratch files that may hold a device's secrets go.
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "imprint/core/fileio.hpp"
#include "support.hpp"

namespace imprint {
namespace {

std::string target_of(const UniqueFd& fd) { return std::filesystem::read_symlink(fd_path(fd.get())).string(); }

// Beside the file the bytes come from, unnamed; where that directory takes no unnamed file (here
// /proc, which has no O_TMPFILE), in memory: never in TMPDIR.
TEST(CoreFileio, AFileBesideItsSourceElseInMemory) {
  test::TempDir dir;
  const UniqueFd beside = unnamed_file_beside(dir / "device.img.zst");
  ASSERT_TRUE(beside);
  EXPECT_EQ(target_of(beside).rfind(std::filesystem::canonical(dir.path()).string() + "/#", 0), 0u) << target_of(beside);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));

  const UniqueFd memory = unnamed_file_beside("/proc/version");
  ASSERT_TRUE(memory);
  EXPECT_EQ(target_of(memory).rfind("/memfd:imprint-decompressed", 0), 0u) << target_of(memory);
  const std::string bytes = "a stamped image's bytes";
  ASSERT_EQ(::pwrite(memory.get(), bytes.data(), bytes.size(), 1 << 20), static_cast<ssize_t>(bytes.size()));
  std::string back(bytes.size(), '\0');
  ASSERT_EQ(::pread(memory.get(), back.data(), back.size(), 1 << 20), static_cast<ssize_t>(back.size()));
  EXPECT_EQ(back, bytes);
}

}  // namespace
}  // namespace imprint
