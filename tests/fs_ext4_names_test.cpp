// Names as the filesystem compares them: casefold (+F) directories ignore case, encrypted (+E)
// directories are refused; and a listing survives one broken symlink.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <sstream>

#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/fs/ext4.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::debugfs;
using test::debugfs_write;
using test::run;
using test::TempDir;

// An 8 MiB ext4 (extra mkfs options) of the tree under dir/tree.
std::string make_fs(const TempDir& dir, const std::vector<std::string>& extra = {}) {
  const std::string image = dir / "fs.img";
  std::vector<std::string> argv{"mkfs.ext4", "-q", "-F", "-b", "4096"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.insert(argv.end(), {"-d", dir / "tree", image, "8M"});
  const test::CommandResult made = run(argv);
  if (made.status != 0) throw std::runtime_error("mkfs.ext4 failed: " + made.err);
  return image;
}

std::unique_ptr<Filesystem> open_fs(const std::string& image, bool writable) {
  return open_ext4(Ext4OpenOptions{image, 0, 0, writable, "rootfs (p2)"});
}

void put(Filesystem& fs, const std::string& path, const std::string& bytes) {
  MemorySource source(bytes);
  fs.write(path, source, Attributes{});
}

// Names in a directory as debugfs lists them (ls -p: /inode/mode/uid/gid/name/size/).
std::vector<std::string> names(const std::string& image, const std::string& directory) {
  std::vector<std::string> found;
  std::istringstream lines(debugfs(image, "ls -p " + directory));
  for (std::string line; std::getline(lines, line);) {
    std::smatch match;
    if (std::regex_match(line, match, std::regex("/[0-9]+/[0-9]+/[0-9]+/[0-9]+/([^/]*)/.*"))) {
      if (match[1] != "." && match[1] != "..") found.push_back(match[1]);
    }
  }
  return found;
}

TEST(Ext4Names, CasefoldDirectoryMatchesNamesCaseInsensitively) {
  TempDir dir;
  std::filesystem::create_directories(dir / "tree/identity");
  test::write_file(dir / "tree/identity/MENDER-DEVICE-IDENTITY", "#!/bin/sh\necho mac=00\n");
  const std::string image = make_fs(dir, {"-O", "casefold"});
  // chattr +F needs a mounted filesystem; e2fsprogs' tests set the flag offline (extents | casefold).
  debugfs_write(image, "set_inode_field /identity flags 0x40080000");
  ASSERT_NE(debugfs(image, "stat /identity").find("Flags: 0x40080000"), std::string::npos);
  const std::string script = "#!/bin/sh\necho DeviceId=dev-0001\n";
  {
    auto fs = open_fs(image, true);
    ASSERT_TRUE(fs->stat("/identity/mender-device-identity"));
    put(*fs, "/identity/mender-device-identity", script);
    fs->flush();
  }
  EXPECT_EQ(names(image, "/identity"), std::vector<std::string>{"MENDER-DEVICE-IDENTITY"});  // one name, replaced
  EXPECT_EQ(debugfs(image, "cat /identity/MENDER-DEVICE-IDENTITY"), script);
  const test::CommandResult fsck = run({"e2fsck", "-fn", image});
  EXPECT_EQ(fsck.status, 0) << fsck.out;
  // Outside the casefold directory names stay case-sensitive.
  auto fs = open_fs(image, false);
  EXPECT_FALSE(fs->stat("/IDENTITY"));
}

TEST(Ext4Names, EncryptedDirectoryIsRefused) {
  TempDir dir;
  std::filesystem::create_directories(dir / "tree/secret");
  test::write_file(dir / "tree/secret/x", "x");
  const std::string image = make_fs(dir);
  debugfs_write(image, "set_inode_field /secret flags 0x80800");  // extents | encrypt
  const std::string before = test::file_sha256(image);
  {
    auto fs = open_fs(image, true);
    const Error error = test::expect_error([&] { put(*fs, "/secret/new", "y"); }, ErrorCode::Unsupported);
    EXPECT_NE(std::string(error.what()).find("rootfs (p2): /secret/new: the directory is encrypted"), std::string::npos)
        << error.what();
  }
  EXPECT_EQ(test::file_sha256(image), before);
}

TEST(Ext4Names, OneBrokenSymlinkDoesNotSpoilAListing) {
  TempDir dir;
  std::filesystem::create_directories(dir / "tree/d");
  test::write_file(dir / "tree/d/a", "a");
  std::filesystem::create_symlink(std::string(100, 't'), dir / "tree/d/link");  // a slow symlink (own block)
  const std::string image = make_fs(dir);
  debugfs_write(image, "set_inode_field /d/link size 9000");  // longer than a block: unreadable target
  auto fs = open_fs(image, false);
  const std::vector<DirEntry> entries = fs->list("/d");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].name, "a");
  EXPECT_EQ(entries[1].name, "link");
  EXPECT_EQ(entries[1].stat.type, FileType::Symlink);
  // Asking for the link itself still says what is wrong.
  test::expect_error([&] { fs->stat("/d/link"); }, ErrorCode::Corrupt);
}

}  // namespace
}  // namespace imprint
