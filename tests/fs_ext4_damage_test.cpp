// Damaged filesystems (made the way e2fsprogs makes its test images: debugfs -w set_bg, freeb,
// freei, set_super_value, set_inode_field) are refused before a byte changes; with allow_dirty they
// are written only where the scan proves it safe (e2fsck -fn no worse, no other file touched).
// Also: a failed write leaves the image byte-identical (the in-memory overlay).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/fs/ext4.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::debugfs;
using test::run;
using test::TempDir;

// mkfs.ext4 (8 MiB, 4 KiB blocks, one group) of a tree: /etc/hostname and /mender/big (200 KiB of
// random bytes, several extents' worth of blocks); extra options go to mkfs.
std::string make_fs(const TempDir& dir, const std::vector<std::string>& extra = {}) {
  std::filesystem::create_directories(dir / "tree/etc");
  std::filesystem::create_directories(dir / "tree/mender");
  test::write_file(dir / "tree/etc/hostname", "device\n");
  test::shell("head -c 204800 /dev/urandom > '" + dir / "tree/mender/big" + "'");
  const std::string image = dir / "fs.img";
  std::vector<std::string> argv{"mkfs.ext4", "-q", "-F", "-b", "4096"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.insert(argv.end(), {"-d", dir / "tree", image, "8M"});
  const test::CommandResult made = run(argv);
  if (made.status != 0) throw std::runtime_error("mkfs.ext4 failed: " + made.err);
  return image;
}

// debugfs -w exits 0 even when a command fails: check what it printed. set_bg leaves the group
// descriptor's checksum stale; e2fsprogs' own test images recompute it ("set_bg N checksum calc"),
// so the damage is what the test names, not a checksum.
void corrupt(const std::string& image, const std::string& command) {
  const test::CommandResult result = run({"debugfs", "-w", "-n", "-R", command, image});
  if (result.status != 0 || result.err.find("while") != std::string::npos ||
      result.err.find("sage") != std::string::npos || result.err.find("nvalid") != std::string::npos) {
    throw std::runtime_error("debugfs -w -R '" + command + "': " + result.err);
  }
  if (command.rfind("set_bg ", 0) == 0 && command.find(" checksum ") == std::string::npos) {
    corrupt(image, "set_bg " + command.substr(7, command.find(' ', 7) - 7) + " checksum calc");
  }
}

std::string group0(const std::string& image, const std::string& field) {
  const std::string out = run({"dumpe2fs", image}).out;
  const std::smatch match = [&] {
    std::smatch found;
    std::regex_search(out, found, std::regex(field + " at ([0-9]+)"));
    return found;
  }();
  if (match.empty()) throw std::runtime_error("dumpe2fs shows no " + field);
  return match[1];
}

// e2fsck -fn's complaints, numbers blanked (a recount changes them, not the kind of problem).
std::set<std::string> fsck_problems(const std::string& image) {
  const test::CommandResult result = run({"e2fsck", "-fn", image});
  std::set<std::string> problems;
  std::istringstream lines(result.out + result.err);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line.rfind("Pass ", 0) == 0 || line.rfind("e2fsck ", 0) == 0 || line.find("files (") != std::string::npos ||
        line.rfind("Fix? no", 0) == 0 || line.rfind("Ignore error? no", 0) == 0 || line.find("WARNING") != std::string::npos) {
      continue;
    }
    problems.insert(std::regex_replace(line, std::regex("[0-9]+"), "N"));
  }
  return problems;
}

void expect_no_worse(const std::set<std::string>& before, const std::set<std::string>& after) {
  for (const std::string& line : after) {
    EXPECT_TRUE(before.count(line) != 0) << "new e2fsck problem after the write: " << line;
  }
}

std::unique_ptr<Filesystem> open_fs(const std::string& image, bool writable, bool allow_dirty = false) {
  Ext4OpenOptions options{image, 0, 0, writable, "data partition (p4)"};
  options.allow_dirty = allow_dirty;
  return open_ext4(options);
}

void put(Filesystem& fs, const std::string& path, const std::string& bytes) {
  MemorySource source(bytes);
  fs.write(path, source, Attributes{});
}

// Opening and writing is refused with one line naming the partition and the problem; the image is
// byte-identical afterwards; reading still works.
void expect_refused(const std::string& image, const std::string& problem, bool even_with_allow_dirty = false) {
  const std::string before = test::file_sha256(image);
  for (const bool allow : {false, true}) {
    if (allow && !even_with_allow_dirty) continue;
    const Error error = test::expect_error(
        [&] {
          auto fs = open_fs(image, true, allow);
          put(*fs, "/mender/new", std::string(100000, 'n'));
          fs->flush();
        },
        ErrorCode::Corrupt);
    const std::string message = error.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(message.rfind("data partition (p4): the filesystem is damaged: ", 0), 0u) << message;
    EXPECT_NE(message.find(problem), std::string::npos) << message;
    EXPECT_NE(message.find("e2fsck -f"), std::string::npos) << message;
    EXPECT_EQ(test::file_sha256(image), before);
  }
  EXPECT_EQ(read_all(*open_fs(image, false), "/etc/hostname"), "device\n");
}

// With allow_dirty the write happens, e2fsck finds nothing new, /mender/big is untouched.
void expect_written_safely(const std::string& image) {
  const std::set<std::string> before = fsck_problems(image);
  const std::string big = sha256_hex(debugfs(image, "cat /mender/big"));
  const std::string payload(300000, 'p');
  {
    auto fs = open_fs(image, true, true);
    put(*fs, "/mender/new", payload);
    fs->flush();
  }
  EXPECT_EQ(sha256_hex(debugfs(image, "cat /mender/new")), sha256_hex(payload));
  EXPECT_EQ(sha256_hex(debugfs(image, "cat /mender/big")), big);
  expect_no_worse(before, fsck_problems(image));
}

TEST(Ext4Damage, HealthyFilesystemsPassTheScan) {
  for (const std::vector<std::string>& options :
       {std::vector<std::string>{}, {"-t", "ext2"}, {"-t", "ext3"}, {"-O", "^metadata_csum,^uninit_bg"}, {"-O", "^metadata_csum,^64bit"}, {"-O", "^extent,^64bit"},
        {"-b", "1024", "-g", "1024"}}) {
    TempDir dir;
    const std::string image = make_fs(dir, options);
    {
      auto fs = open_fs(image, true);
      put(*fs, "/mender/new", std::string(300000, 'x'));
      fs->flush();
    }
    const test::CommandResult fsck = run({"e2fsck", "-fn", image});
    EXPECT_EQ(fsck.status, 0) << fsck.out;
  }
}

TEST(Ext4Damage, BlockBitmapPastTheEnd) {
  TempDir dir;
  const std::string image = make_fs(dir);
  corrupt(image, "set_bg 0 block_bitmap 99999");
  expect_refused(image, "group 0's block bitmap (block 99999) lies outside the filesystem", true);
}

TEST(Ext4Damage, BlockBitmapAtBlockZero) {
  TempDir dir;
  const std::string image = make_fs(dir);
  corrupt(image, "set_bg 0 block_bitmap 0");
  expect_refused(image, "group 0's block bitmap (block 0) overlaps other metadata", true);
}

TEST(Ext4Damage, BlockAndInodeBitmapShareABlock) {
  TempDir dir;
  const std::string image = make_fs(dir);
  corrupt(image, "set_bg 0 inode_bitmap " + group0(image, "Block bitmap"));
  expect_refused(image, "group 0's inode bitmap (block " + group0(image, "Block bitmap") + ") overlaps other metadata", true);
}

TEST(Ext4Damage, InodeBitmapWouldHandOutLostAndFound) {
  TempDir dir;
  const std::string image = make_fs(dir);
  corrupt(image, "freei <11>");
  expect_refused(image, "inode 11 is in use but marked free in the inode bitmap");
  expect_written_safely(image);
  EXPECT_NE(debugfs(image, "stat /lost+found").find("Type: directory"), std::string::npos);
  EXPECT_EQ(debugfs(image, "ls -l /mender").find(" 11 "), std::string::npos);
}

TEST(Ext4Damage, StaleBlockBitmapWouldGiveAwayAnotherFilesBlocks) {
  TempDir dir;
  const std::string image = make_fs(dir);
  std::istringstream blocks(debugfs(image, "blocks /mender/big"));
  std::string first;
  blocks >> first;
  corrupt(image, "freeb " + first + " 50");
  expect_refused(image, "uses block " + first + ", which the block bitmap marks free");
  expect_written_safely(image);
  EXPECT_EQ(run({"e2fsck", "-fn", image}).out.find("ultiply-claimed"), std::string::npos);
}

TEST(Ext4Damage, GroupFreeBlocksCountZero) {
  TempDir dir;
  const std::string image = make_fs(dir);
  corrupt(image, "set_bg 0 free_blocks_count 0");
  expect_refused(image, "group 0's free blocks count (0) disagrees with its block bitmap");
  expect_written_safely(image);
  const std::string out = run({"dumpe2fs", image}).out;
  std::smatch free;
  ASSERT_TRUE(std::regex_search(out, free, std::regex("\n  ([0-9]+) free blocks,")));
  EXPECT_LT(std::stoul(free[1]), 2048u);  // not wrapped around below zero
}

TEST(Ext4Damage, ItableUnusedWithoutUninitBg) {
  TempDir dir;
  const std::string image = make_fs(dir, {"-O", "^metadata_csum,^uninit_bg"});
  corrupt(image, "set_bg 0 itable_unused 2033");
  expect_refused(image, "group 0 is marked uninitialized (bg_itable_unused 2033) on a filesystem without uninit_bg");
  expect_written_safely(image);
}

TEST(Ext4Damage, ErrorStateAndBlocksPastTheEnd) {
  TempDir dir;
  const std::string image = make_fs(dir);
  corrupt(image, "set_super_value state 3");
  expect_refused(image, "the superblock says the filesystem has errors");

  TempDir ext2dir;
  const std::string ext2 = make_fs(ext2dir, {"-t", "ext2"});
  corrupt(ext2, "set_inode_field /mender/big block[0] 99999");
  expect_refused(ext2, "refers to block 99999, outside the filesystem");
}

// The rest of the cheap checks on open: an inode table over the block bitmap; the journal's blocks
// marked free (libext2fs would hand them out, and the next mount's replay would write over them).
TEST(Ext4Damage, InodeTableOverABitmapAndJournalBlocksMarkedFree) {
  TempDir dir;
  const std::string image = make_fs(dir);
  const std::string bitmap = group0(image, "Block bitmap");
  corrupt(image, "set_bg 0 inode_table " + bitmap);
  const std::string before = test::file_sha256(image);
  for (const bool allow : {false, true}) {  // (expect_refused would also read a file: no inode reads right here)
    const Error error = test::expect_error([&] { open_fs(image, true, allow); }, ErrorCode::Corrupt);
    EXPECT_NE(std::string(error.what()).find("data partition (p4): the filesystem is damaged: group 0's inode table (block " +
                                             bitmap + ") overlaps other metadata"),
              std::string::npos)
        << error.what();
  }
  EXPECT_EQ(test::file_sha256(image), before);

  TempDir journal_dir;
  const std::string journaled = make_fs(journal_dir);
  std::istringstream blocks(debugfs(journaled, "blocks <8>"));
  std::string first;
  blocks >> first;
  ASSERT_FALSE(first.empty()) << "the filesystem has no journal";
  corrupt(journaled, "freeb " + first + " 16");
  expect_refused(journaled, "block " + first + " (filesystem metadata or the journal) is marked free in the block bitmap");
  const std::string journal = sha256_hex(debugfs(journaled, "cat <8>"));
  expect_written_safely(journaled);
  EXPECT_EQ(sha256_hex(debugfs(journaled, "cat <8>")), journal) << "the write landed on the journal";
}

// A failed write leaves the image byte-identical: nothing reaches it before flush().
TEST(Ext4Atomic, FailedWritesLeaveTheImageByteIdentical) {
  TempDir dir;
  const std::string image = make_fs(dir);
  const std::string before = test::file_sha256(image);
  auto fail_put = [&](const std::string& path, const std::string& bytes, ErrorCode code) {
    {
      auto fs = open_fs(image, true);
      test::expect_error([&] { put(*fs, path, bytes); }, code);
    }
    EXPECT_EQ(test::file_sha256(image), before) << path;
  };
  fail_put("/mender/huge", std::string(20 << 20, 'h'), ErrorCode::NoSpace);  // no space for the payload

  // No free inode: 16 inodes, all in use.
  TempDir full;
  std::filesystem::create_directories(full / "tree");
  for (int i = 0; i < 5; ++i) test::write_file(full / ("tree/f" + std::to_string(i)), "x");
  const std::string few = full / "few.img";
  ASSERT_EQ(run({"mkfs.ext4", "-q", "-F", "-b", "4096", "-N", "16", "-d", full / "tree", few, "8M"}).status, 0);
  const std::string few_before = test::file_sha256(few);
  {
    auto fs = open_fs(few, true);
    test::expect_error([&] { put(*fs, "/new", "y"); }, ErrorCode::NoSpace);
  }
  EXPECT_EQ(test::file_sha256(few), few_before);
}

// A directory whose htree root is damaged (lookups pass, adding an entry fails): the payload was
// already allocated and written when the link failed.
TEST(Ext4Atomic, DirectoryThatCannotTakeTheEntry) {
  TempDir dir;
  std::filesystem::create_directories(dir / "tree/many");
  for (int i = 0; i < 300; ++i) test::write_file(dir / ("tree/many/entry-with-a-long-name-" + std::to_string(i)), "x");
  const std::string image = dir / "fs.img";
  ASSERT_EQ(run({"mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "^metadata_csum", "-d", dir / "tree", image, "8M"}).status, 0);
  run({"e2fsck", "-fyD", image});  // indexes the directory (mkfs -d leaves it linear)
  ASSERT_NE(debugfs(image, "stat /many").find("Flags: 0x81000"), std::string::npos) << "expected an htree directory";
  corrupt(image, "zap_block -f /many -o 30 -l 1 -p 9 0");  // dx_root_info.indirect_levels = 9
  const std::string before = test::file_sha256(image);
  {
    auto fs = open_fs(image, true);
    ASSERT_TRUE(fs->stat("/many/entry-with-a-long-name-7"));
    test::expect_error([&] { put(*fs, "/many/new", std::string(10240, 'd')); }, ErrorCode::Corrupt);
  }
  EXPECT_EQ(test::file_sha256(image), before);
}

}  // namespace
}  // namespace imprint
