// The native ext4 backend against real filesystems made by mkfs.ext4, checked with debugfs and
// e2fsck -fn (independent of libext2fs as we call it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <regex>

#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/fs/ext4.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::debugfs;
using test::run;
using test::TempDir;
using test::expect_error;

// mkfs.ext4 -q -F [-b 4096] EXTRA [-d CONTENT] IMAGE SIZE; returns the image path.
std::string make_ext4(const TempDir& dir, const std::string& size, std::vector<std::string> extra = {},
                      const std::string& content = "") {
  const std::string image = dir / "fs.img";
  std::vector<std::string> argv{"mkfs.ext4", "-q", "-F"};
  if (std::find(extra.begin(), extra.end(), "-b") == extra.end()) argv.insert(argv.end(), {"-b", "4096"});
  argv.insert(argv.end(), extra.begin(), extra.end());
  if (!content.empty()) argv.insert(argv.end(), {"-d", content});
  argv.insert(argv.end(), {image, size});
  const test::CommandResult made = run(argv);
  if (made.status != 0) throw std::runtime_error("mkfs.ext4 failed (is e2fsprogs installed?): " + made.err);
  return image;
}

std::unique_ptr<Filesystem> open_image(const std::string& image, bool writable) {
  return open_ext4(Ext4OpenOptions{image, 0, 0, writable, "test fs"});
}

void expect_fsck_clean(const std::string& device) {
  const test::CommandResult result = run({"e2fsck", "-fn", device});
  EXPECT_EQ(result.status, 0) << "e2fsck -fn " << device << ":\n" << result.out << result.err;
}

std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937_64 generator(seed);
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; i += 8) {
    const std::uint64_t value = generator();
    std::memcpy(bytes.data() + i, &value, std::min<std::size_t>(8, size - i));
  }
  return bytes;
}

void put(Filesystem& fs, const std::string& path, const std::string& bytes, Attributes attributes = {}) {
  MemorySource source(bytes);
  fs.write(path, source, attributes);
}

struct DebugfsStat {
  std::string type;
  unsigned mode = 0;
  std::uint32_t uid = 0, gid = 0;
  std::uint64_t size = 0, blockcount = 0;
  unsigned links = 0;
  std::string fast_link;
};

DebugfsStat debugfs_stat(const std::string& device, const std::string& path) {
  const std::string out = debugfs(device, "stat \"" + path + "\"");
  std::smatch match;
  DebugfsStat stat;
  if (!std::regex_search(out, match, std::regex(R"(Type: (\w+)\s+Mode:\s+(\d+))"))) {
    throw std::runtime_error("debugfs stat " + path + " says: " + out);
  }
  stat.type = match[1];
  stat.mode = static_cast<unsigned>(std::stoul(match[2], nullptr, 8));
  if (std::regex_search(out, match, std::regex(R"(User:\s+(\d+)\s+Group:\s+(\d+).*Size: (\d+))"))) {
    stat.uid = static_cast<std::uint32_t>(std::stoul(match[1]));
    stat.gid = static_cast<std::uint32_t>(std::stoul(match[2]));
    stat.size = std::stoull(match[3]);
  }
  if (std::regex_search(out, match, std::regex(R"(Links: (\d+)\s+Blockcount: (\d+))"))) {
    stat.links = static_cast<unsigned>(std::stoul(match[1]));
    stat.blockcount = std::stoull(match[2]);
  }
  if (std::regex_search(out, match, std::regex("Fast link dest: \"([^\"]*)\""))) stat.fast_link = match[1];
  return stat;
}

std::string debugfs_cat_sha256(const std::string& device, const std::string& path) {
  return sha256_hex(debugfs(device, "cat \"" + path + "\""));
}

// Every writing test runs on three filesystems: 1.47 defaults (metadata_csum, 64bit, 4 KiB
// blocks), metadata_csum off, and 1 KiB blocks.
class Ext4Write : public ::testing::TestWithParam<std::vector<std::string>> {
 protected:
  std::string make(const std::string& size, const std::string& content = "") {
    return make_ext4(dir_, size, GetParam(), content);
  }
  TempDir dir_;
};

std::vector<std::vector<std::string>> layouts() {
  return {{}, {"-O", "^metadata_csum"}, {"-b", "1024"}};
}
std::string layout_name(const ::testing::TestParamInfo<std::vector<std::string>>& layout) {
  const char* names[] = {"defaults", "no_metadata_csum", "block1k"};
  return names[layout.index];
}
INSTANTIATE_TEST_SUITE_P(Layouts, Ext4Write, ::testing::ValuesIn(layouts()), layout_name);

TEST_P(Ext4Write, WritesFilesThatDebugfsReadsBack) {
  const std::string image = make("64M");
  const std::string big = random_bytes(3 << 20, 1);
  {
    auto fs = open_image(image, true);
    EXPECT_EQ(fs->type(), "ext4");
    put(*fs, "/big", big, Attributes{04755, 70000, 70001, 1700000000});
    put(*fs, "/empty", "", Attributes{0600, 1000, 1000, std::nullopt});
    fs->flush();
    // Our own view, before closing.
    EXPECT_EQ(sha256_hex(read_all(*fs, "/big")), sha256_hex(big));
    const FileStat stat = fs->stat("/big").value();
    EXPECT_EQ(stat.type, FileType::Regular);
    EXPECT_EQ(stat.mode, 04755u);
    EXPECT_EQ(stat.uid, 70000u);
    EXPECT_EQ(stat.gid, 70001u);
    EXPECT_EQ(stat.size, big.size());
    EXPECT_EQ(stat.mtime, 1700000000);
    EXPECT_EQ(stat.links, 1u);
  }
  EXPECT_EQ(debugfs_cat_sha256(image, "/big"), sha256_hex(big));
  EXPECT_EQ(debugfs(image, "cat /empty"), "");
  const DebugfsStat big_stat = debugfs_stat(image, "/big");
  EXPECT_EQ(big_stat.type, "regular");
  EXPECT_EQ(big_stat.mode, 04755u);
  EXPECT_EQ(big_stat.uid, 70000u);
  EXPECT_EQ(big_stat.gid, 70001u);
  EXPECT_EQ(big_stat.size, big.size());
  const DebugfsStat empty_stat = debugfs_stat(image, "/empty");
  EXPECT_EQ(empty_stat.mode, 0600u);
  EXPECT_EQ(empty_stat.uid, 1000u);
  EXPECT_EQ(empty_stat.size, 0u);
  EXPECT_EQ(empty_stat.blockcount, 0u);
  expect_fsck_clean(image);
}

TEST_P(Ext4Write, ReplacesAFileAndKeepsOtherHardLinks) {
  std::filesystem::create_directories(dir_ / "content/etc");
  test::write_file(dir_ / "content/etc/hostname", random_bytes(200000, 2));
  std::filesystem::create_hard_link(dir_ / "content/etc/hostname", dir_ / "content/etc/hostname.link");
  const std::string image = make("32M", dir_ / "content");
  const std::string replacement = random_bytes(5000, 3);
  std::uint64_t free_before = 0, free_after = 0;
  {
    auto fs = open_image(image, true);
    EXPECT_EQ(fs->stat("/etc/hostname")->links, 2u);
    free_before = fs->usage().free_bytes;
    put(*fs, "/etc/hostname", replacement, Attributes{0640, 0, 0, 1});
    EXPECT_EQ(read_all(*fs, "/etc/hostname"), replacement);
    EXPECT_EQ(fs->stat("/etc/hostname")->links, 1u);
    EXPECT_EQ(fs->stat("/etc/hostname.link")->links, 1u);
    // Replacing the last link frees the old blocks.
    put(*fs, "/etc/hostname.link", replacement);
    free_after = fs->usage().free_bytes;
    fs->flush();
  }
  EXPECT_EQ(debugfs_cat_sha256(image, "/etc/hostname"), sha256_hex(replacement));
  EXPECT_EQ(debugfs_stat(image, "/etc/hostname").mode, 0640u);
  EXPECT_EQ(debugfs_cat_sha256(image, "/etc/hostname.link"), sha256_hex(replacement));
  EXPECT_GT(free_after, free_before);  // 200 kB freed, 2 x 5 kB used
  expect_fsck_clean(image);
}

TEST_P(Ext4Write, MakesDirectoriesAndSymlinks) {
  const std::string image = make("32M");
  const std::string long_target = "/" + std::string(300, 'x') + "/target";  // a slow (block) symlink
  {
    auto fs = open_image(image, true);
    make_directories(*fs, "/a/b/c", Attributes{0750, 5, 6, 1600000000});
    make_directories(*fs, "/a/b/c", Attributes{0700, 0, 0, std::nullopt});  // exists: left as it is
    make_directories(*fs, "/a/b/d", Attributes{0755, 0, 0, std::nullopt});
    fs->symlink("/a/fast", "/data/mender", Attributes{0644, 7, 8, std::nullopt});
    fs->symlink("/a/slow", long_target, Attributes{});
    fs->symlink("/a/replaced", "/old", Attributes{});
    fs->symlink("/a/replaced", "/new", Attributes{});
    put(*fs, "/a/file", "x");
    expect_error([&] { fs->symlink("/a/file", "/t", Attributes{}); }, ErrorCode::Exists);
    expect_error([&] { fs->symlink("/a/b", "/t", Attributes{}); }, ErrorCode::Exists);
    expect_error([&] { fs->mkdir("/a/b", Attributes{}); }, ErrorCode::Exists);
    expect_error([&] { make_directories(*fs, "/a/file/x", Attributes{}); }, ErrorCode::NotDirectory);
    expect_error([&] { make_directories(*fs, "/a/fast/x", Attributes{}); }, ErrorCode::Symlink);
    expect_error([&] { put(*fs, "/a/fast", "x"); }, ErrorCode::Symlink);
    expect_error([&] { put(*fs, "/a/b", "x"); }, ErrorCode::IsDirectory);

    const FileStat c = fs->stat("/a/b/c").value();
    EXPECT_EQ(c.type, FileType::Directory);
    EXPECT_EQ(c.mode, 0750u);
    EXPECT_EQ(c.mtime, 1600000000);
    EXPECT_EQ(fs->stat("/a/slow")->link_target, long_target);
    EXPECT_EQ(fs->stat("/a/replaced")->link_target, "/new");
    std::vector<std::string> names;
    for (const DirEntry& entry : fs->list("/a")) names.push_back(entry.name);
    EXPECT_EQ(names, (std::vector<std::string>{"b", "fast", "file", "replaced", "slow"}));
    EXPECT_EQ(fs->stat("/a")->links, 3u);  // ".", "a" in "/", ".." of b
    fs->flush();
  }
  const DebugfsStat c = debugfs_stat(image, "/a/b/c");
  EXPECT_EQ(c.type, "directory");
  EXPECT_EQ(c.mode, 0750u);
  EXPECT_EQ(c.uid, 5u);
  EXPECT_EQ(c.gid, 6u);
  const DebugfsStat fast = debugfs_stat(image, "/a/fast");
  EXPECT_EQ(fast.type, "symlink");
  EXPECT_EQ(fast.fast_link, "/data/mender");
  EXPECT_EQ(fast.uid, 7u);
  EXPECT_EQ(debugfs_stat(image, "/a/replaced").fast_link, "/new");
  EXPECT_EQ(debugfs_stat(image, "/a/slow").type, "symlink");
  EXPECT_EQ(debugfs(image, "cat /a/slow"), long_target);  // the block holding the target
  expect_fsck_clean(image);
}

TEST_P(Ext4Write, RemovesFilesAndTrees) {
  const std::string image = make("32M");
  {
    auto fs = open_image(image, true);
    const std::uint64_t free_before = fs->usage().free_bytes;
    make_directories(*fs, "/tree/x/y", Attributes{});
    put(*fs, "/tree/x/y/big", random_bytes(1 << 20, 4));
    put(*fs, "/tree/x/file", "content");
    fs->symlink("/tree/x/link", "/tree/x/y/big", Attributes{});
    fs->symlink("/tree/slow", "/" + std::string(200, 's'), Attributes{});
    put(*fs, "/single", random_bytes(100000, 5));
    fs->mkdir("/emptydir", Attributes{});

    fs->remove("/single", false);
    EXPECT_FALSE(fs->stat("/single"));
    fs->remove("/emptydir", false);
    EXPECT_FALSE(fs->stat("/emptydir"));
    expect_error([&] { fs->remove("/tree", false); }, ErrorCode::NotEmpty);
    expect_error([&] { fs->remove("/missing", false); }, ErrorCode::NotFound);
    expect_error([&] { fs->remove("/", true); }, ErrorCode::Invalid);
    fs->remove("/tree/x/link", false);  // the link, not its target
    EXPECT_TRUE(fs->stat("/tree/x/y/big"));
    fs->remove("/tree", true);
    EXPECT_FALSE(fs->stat("/tree"));
    EXPECT_EQ(fs->usage().free_bytes, free_before);  // every block came back
    fs->flush();
  }
  const std::string listing = debugfs(image, "ls -p /");
  EXPECT_EQ(listing.find("/tree/"), std::string::npos) << listing;
  EXPECT_EQ(listing.find("/single/"), std::string::npos) << listing;
  EXPECT_NE(listing.find("/lost+found/"), std::string::npos) << listing;
  EXPECT_EQ(debugfs_stat(image, "/").links, 3u);  // ".", "..", lost+found's ".."
  expect_fsck_clean(image);
}

TEST_P(Ext4Write, GrowsADirectoryTo2000Files) {
  const std::string image = make("64M");
  {
    auto fs = open_image(image, true);
    fs->mkdir("/many", Attributes{});
    for (int i = 0; i < 2000; ++i) put(*fs, "/many/file-with-a-longish-name-" + std::to_string(i), std::to_string(i));
    EXPECT_EQ(fs->list("/many").size(), 2000u);
    EXPECT_EQ(read_all(*fs, "/many/file-with-a-longish-name-1234"), "1234");
    fs->flush();
  }
  const std::string listing = debugfs(image, "ls -p /many");
  std::size_t files = 0;
  for (std::size_t at = listing.find("/file-with-a-longish-name-"); at != std::string::npos;
       at = listing.find("/file-with-a-longish-name-", at + 1)) {
    ++files;
  }
  EXPECT_EQ(files, 2000u);
  EXPECT_GT(debugfs_stat(image, "/many").size, 4096u);  // the directory grew beyond one block
  EXPECT_EQ(debugfs(image, "cat /many/file-with-a-longish-name-1999"), "1999");
  expect_fsck_clean(image);
}

TEST_P(Ext4Write, FillingTheFilesystemFailsCleanly) {
  const std::string image = make("8M");
  int written = 0;
  {
    auto fs = open_image(image, true);
    put(*fs, "/keep", "old content");
    const Error full = expect_error(
        [&] {
          for (; written < 100; ++written) put(*fs, "/fill-" + std::to_string(written), random_bytes(512 << 10, 6));
        },
        ErrorCode::NoSpace);
    EXPECT_NE(std::string(full.what()).find("test fs: /fill-"), std::string::npos) << full.what();
    EXPECT_GT(written, 3);
    EXPECT_FALSE(fs->stat("/fill-" + std::to_string(written)));  // no partial file
    // Replacing a file with something too big keeps the old one.
    expect_error([&] { put(*fs, "/keep", random_bytes(4 << 20, 7)); }, ErrorCode::NoSpace);
    EXPECT_EQ(read_all(*fs, "/keep"), "old content");
    // Empty files need only a directory entry: once the root directory's blocks are full, growing
    // it fails too, and the unlinked inode is given back.
    const std::string one_block = random_bytes(fs->usage().block_size, 9);
    expect_error(
        [&] {
          for (int i = 0; i < 100000; ++i) put(*fs, "/small-" + std::to_string(i), one_block);
        },
        ErrorCode::NoSpace);
    EXPECT_EQ(fs->usage().free_bytes, 0u);
    int empty = 0;
    const Error directory_full = expect_error(
        [&] {
          for (; empty < 5000; ++empty) put(*fs, "/empty-file-" + std::to_string(empty), "");
        },
        ErrorCode::NoSpace);
    EXPECT_GT(empty, 10);
    EXPECT_NE(std::string(directory_full.what()).find("cannot add the directory entry"), std::string::npos)
        << directory_full.what();
    EXPECT_FALSE(fs->stat("/empty-file-" + std::to_string(empty)));
    fs->flush();
  }
  const std::string listing = debugfs(image, "ls -p /");
  EXPECT_EQ(listing.find("/fill-" + std::to_string(written) + "/"), std::string::npos) << listing;
  EXPECT_EQ(debugfs(image, "cat /keep"), "old content");
  expect_fsck_clean(image);
}

TEST_P(Ext4Write, RunningOutOfInodesFailsCleanly) {
  const std::string image = make_ext4(dir_, "8M", [] {
    std::vector<std::string> args = GetParam();
    args.insert(args.end(), {"-N", "64"});
    return args;
  }());
  {
    auto fs = open_image(image, true);
    expect_error(
        [&] {
          for (int i = 0; i < 1000; ++i) put(*fs, "/n" + std::to_string(i), "x");
        },
        ErrorCode::NoSpace);
    expect_error([&] { fs->mkdir("/dir", Attributes{}); }, ErrorCode::NoSpace);
    expect_error([&] { fs->symlink("/link", "/target", Attributes{}); }, ErrorCode::NoSpace);
    fs->flush();
  }
  expect_fsck_clean(image);
}

TEST_P(Ext4Write, ZeroBlocksBecomeHoles) {
  const std::string image = make("32M");
  std::string content(3 << 20, '\0');
  content[1 << 20] = 'x';  // one data block in the middle; the rest (and the tail) are holes
  std::uint64_t used = 0;
  {
    auto fs = open_image(image, true);
    const std::uint64_t free_before = fs->usage().free_bytes;
    put(*fs, "/sparse", content);
    put(*fs, "/zeros", std::string(3 << 20, '\0'));
    used = free_before - fs->usage().free_bytes;
    EXPECT_EQ(read_all(*fs, "/sparse"), content);
    fs->flush();
  }
  EXPECT_LE(used, 4u * 4096);
  EXPECT_EQ(debugfs_stat(image, "/zeros").blockcount, 0u);
  EXPECT_EQ(debugfs_stat(image, "/zeros").size, 3u << 20);
  EXPECT_LE(debugfs_stat(image, "/sparse").blockcount, 8u);  // one 4 KiB block = 8 sectors
  EXPECT_EQ(debugfs_cat_sha256(image, "/sparse"), sha256_hex(content));
  EXPECT_EQ(debugfs_cat_sha256(image, "/zeros"), sha256_hex(std::string(3 << 20, '\0')));
  expect_fsck_clean(image);
}

TEST_P(Ext4Write, KeepsTimestampsAndModes) {
  const std::string image = make("32M");
  {
    auto fs = open_image(image, true);
    put(*fs, "/f", "x", Attributes{0644, 1, 2, 100});
    fs->chmod("/f", 02711);
    fs->chown("/f", 123456, 654321);
    fs->set_mtime("/f", 4102444800);  // 2100-01-01: needs the epoch bits of large inodes
    const FileStat stat = fs->stat("/f").value();
    EXPECT_EQ(stat.mode, 02711u);
    EXPECT_EQ(stat.uid, 123456u);
    EXPECT_EQ(stat.gid, 654321u);
    EXPECT_EQ(stat.mtime, 4102444800);
    fs->flush();
  }
  const DebugfsStat stat = debugfs_stat(image, "/f");
  EXPECT_EQ(stat.mode, 02711u);
  EXPECT_EQ(stat.uid, 123456u);
  EXPECT_EQ(stat.gid, 654321u);
  EXPECT_NE(debugfs(image, "stat /f").find("2100"), std::string::npos);
  expect_fsck_clean(image);
}

TEST(Ext4Read, ReadsWhatMkfsWrote) {
  TempDir dir;
  std::filesystem::create_directories(dir / "content/etc/mender");
  std::filesystem::create_directories(dir / "content/var/lib");
  const std::string big = random_bytes((2 << 20) + 123, 8);
  test::write_file(dir / "content/etc/mender/big", big);
  test::write_file(dir / "content/etc/fstab", "/dev/mmcblk0p4 /data ext4 defaults 0 0\n");
  std::filesystem::permissions(dir / "content/etc/fstab", std::filesystem::perms(0600));
  std::filesystem::create_symlink("/data/mender", dir / "content/var/lib/mender");
  const std::string image = make_ext4(dir, "32M", {}, dir / "content");
  const std::string before = test::file_sha256(image);

  auto fs = open_image(image, false);
  EXPECT_EQ(sha256_hex(read_all(*fs, "/etc/mender/big")), sha256_hex(big));
  EXPECT_EQ(read_all(*fs, "/etc/fstab"), "/dev/mmcblk0p4 /data ext4 defaults 0 0\n");
  EXPECT_EQ(fs->stat("/etc/fstab")->mode, 0600u);
  EXPECT_EQ(fs->stat("/var/lib/mender")->type, FileType::Symlink);
  EXPECT_EQ(fs->stat("/var/lib/mender")->link_target, "/data/mender");
  EXPECT_FALSE(fs->stat("/etc/missing"));
  EXPECT_FALSE(fs->stat("/missing/too"));
  EXPECT_EQ(fs->stat("/")->type, FileType::Directory);
  std::vector<std::string> names;
  for (const DirEntry& entry : fs->list("/")) names.push_back(entry.name);
  EXPECT_EQ(names, (std::vector<std::string>{"etc", "lost+found", "var"}));
  expect_error([&] { read_all(*fs, "/etc"); }, ErrorCode::IsDirectory);
  expect_error([&] { read_all(*fs, "/etc/nothing"); }, ErrorCode::NotFound);
  expect_error([&] { put(*fs, "/x", "x"); }, ErrorCode::Generic);  // opened read-only
  const FsUsage usage = fs->usage();
  EXPECT_EQ(usage.total_bytes, 32u << 20);
  EXPECT_LT(usage.free_bytes, usage.total_bytes);
  fs.reset();
  EXPECT_EQ(test::file_sha256(image), before);  // a read-only session writes nothing
}

}  // namespace
}  // namespace imprint
