// The Filesystem contract (filesystem.hpp), run against the native ext4 backend (on a filesystem
// mkfs.ext4 made) and the in-memory one: same results, same ErrorCode and the same message for
// every refusal, above all never a walk through a symlink. The ext4 backend's own tests
// (fs_ext4_test.cpp) check what it writes with debugfs and e2fsck; these check that MemoryFilesystem
// can stand in for it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <memory>

#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/fs/ext4.hpp"
#include "imprint/fs/memory_filesystem.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::expect_error;
using test::TempDir;

constexpr const char* kName = "test fs";  // what both backends start their messages with

struct Backend {
  const char* name;
  // A fresh, empty filesystem of `megabytes` MiB, writable or read-only.
  std::function<std::unique_ptr<Filesystem>(const TempDir& dir, int megabytes, bool writable)> make;
};

std::unique_ptr<Filesystem> make_ext4(const TempDir& dir, int megabytes, bool writable) {
  const std::string image = dir / ("fs-" + std::to_string(megabytes) + ".img");
  const test::CommandResult made = test::run({"mkfs.ext4", "-q", "-F", "-b", "4096", image, std::to_string(megabytes) + "M"});
  if (made.status != 0) throw std::runtime_error("mkfs.ext4 failed (is e2fsprogs installed?): " + made.err);
  auto fs = open_ext4(Ext4OpenOptions{image, 0, 0, writable, kName});
  if (writable) fs->remove("/lost+found", false);  // both start empty
  return fs;
}

std::unique_ptr<Filesystem> make_memory(const TempDir&, int megabytes, bool writable) {
  MemoryFilesystemOptions options;
  options.name = kName;
  options.capacity = static_cast<std::uint64_t>(megabytes) << 20;
  options.writable = writable;
  return std::make_unique<MemoryFilesystem>(options);
}

class FsContract : public ::testing::TestWithParam<Backend> {
 protected:
  std::unique_ptr<Filesystem> make(int megabytes = 32, bool writable = true) { return GetParam().make(dir_, megabytes, writable); }
  TempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(Backends, FsContract, ::testing::Values(Backend{"ext4", make_ext4}, Backend{"memory", make_memory}),
                         [](const ::testing::TestParamInfo<Backend>& backend) { return std::string(backend.param.name); });

void put(Filesystem& fs, const std::string& path, const std::string& bytes, Attributes attributes = {}) {
  MemorySource source(bytes);
  fs.write(path, source, attributes);
}

std::vector<std::string> names(Filesystem& fs, const std::string& directory) {
  std::vector<std::string> result;
  for (const DirEntry& entry : fs.list(directory)) result.push_back(entry.name);
  return result;
}

// The refusal's code and its whole message.
template <typename Action>
void expect_refusal(Action&& action, ErrorCode code, const std::string& message) {
  EXPECT_EQ(std::string(expect_error(std::forward<Action>(action), code).what()), message);
}

TEST_P(FsContract, WritesFilesWithTheirAttributesAndReadsThemBack) {
  ::setenv("SOURCE_DATE_EPOCH", "1500000000", 1);  // ext4 takes its "now" at open
  auto fs = make();
  ::unsetenv("SOURCE_DATE_EPOCH");
  std::string big(3 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>('a' + i % 26);
  put(*fs, "/big", big, Attributes{04755, 70000, 70001, 1700000000});
  put(*fs, "/empty", "", Attributes{0600, 1000, 1000, std::nullopt});
  EXPECT_EQ(sha256_hex(read_all(*fs, "/big")), sha256_hex(big));
  EXPECT_EQ(read_all(*fs, "/empty"), "");
  const FileStat stat = fs->stat("/big").value();
  EXPECT_EQ(stat.type, FileType::Regular);
  EXPECT_EQ(stat.mode, 04755u);
  EXPECT_EQ(stat.uid, 70000u);
  EXPECT_EQ(stat.gid, 70001u);
  EXPECT_EQ(stat.size, big.size());
  EXPECT_EQ(stat.mtime, 1700000000);
  EXPECT_EQ(stat.links, 1u);
  // Unset mtime: the reproducible now (SOURCE_DATE_EPOCH when the filesystem was opened).
  EXPECT_EQ(fs->stat("/empty")->mtime, 1500000000);
  // Replacing keeps nothing of the old file.
  put(*fs, "/big", "small", Attributes{0640, 1, 2, 5});
  const FileStat replaced = fs->stat("/big").value();
  EXPECT_EQ(read_all(*fs, "/big"), "small");
  EXPECT_EQ(replaced.mode, 0640u);
  EXPECT_EQ(replaced.uid, 1u);
  EXPECT_EQ(replaced.mtime, 5);
  EXPECT_EQ(names(*fs, "/"), (std::vector<std::string>{"big", "empty"}));
}

TEST_P(FsContract, MakesDirectoriesAndSymlinksAndRefusesWhatExists) {
  auto fs = make();
  make_directories(*fs, "/a/b/c", Attributes{0750, 5, 6, 1600000000});
  make_directories(*fs, "/a/b/c", Attributes{0700, 0, 0, std::nullopt});  // exists: left as it is
  make_directories(*fs, "/a/b/d", Attributes{0755, 0, 0, std::nullopt});
  fs->symlink("/a/fast", "/data/mender", Attributes{0644, 7, 8, 1600000001});
  fs->symlink("/a/slow", "/" + std::string(300, 'x'), Attributes{});
  fs->symlink("/a/replaced", "/old", Attributes{});
  fs->symlink("/a/replaced", "/new", Attributes{});
  put(*fs, "/a/file", "x");

  const FileStat c = fs->stat("/a/b/c").value();
  EXPECT_EQ(c.type, FileType::Directory);
  EXPECT_EQ(c.mode, 0750u);
  EXPECT_EQ(c.uid, 5u);
  EXPECT_EQ(c.mtime, 1600000000);
  const FileStat fast = fs->stat("/a/fast").value();
  EXPECT_EQ(fast.type, FileType::Symlink);
  EXPECT_EQ(fast.link_target, "/data/mender");
  EXPECT_EQ(fast.mode, 0777u);  // a link's own mode, whatever was asked
  EXPECT_EQ(fast.uid, 7u);
  EXPECT_EQ(fast.gid, 8u);
  EXPECT_EQ(fast.mtime, 1600000001);
  EXPECT_EQ(fs->stat("/a/slow")->link_target, "/" + std::string(300, 'x'));
  EXPECT_EQ(fs->stat("/a/replaced")->link_target, "/new");
  EXPECT_EQ(names(*fs, "/a"), (std::vector<std::string>{"b", "fast", "file", "replaced", "slow"}));
  EXPECT_EQ(fs->stat("/a")->links, 3u);    // its entry, ".", and b's ".."
  EXPECT_EQ(fs->stat("/a/b")->links, 4u);  // c and d
  const std::vector<DirEntry> listed = fs->list("/a");
  EXPECT_EQ(listed[1].stat.link_target, "/data/mender");
  EXPECT_EQ(listed[2].stat.size, 1u);

  expect_refusal([&] { fs->symlink("/a/file", "/t", Attributes{}); }, ErrorCode::Exists, "test fs: /a/file exists and is not a symlink");
  expect_refusal([&] { fs->symlink("/a/b", "/t", Attributes{}); }, ErrorCode::Exists, "test fs: /a/b exists and is not a symlink");
  expect_refusal([&] { fs->symlink("/", "/t", Attributes{}); }, ErrorCode::Exists, "test fs: / is a directory");
  expect_refusal([&] { fs->symlink("/a/x", "", Attributes{}); }, ErrorCode::Invalid, "test fs: /a/x: invalid symlink target");
  expect_refusal([&] { fs->symlink("/a/x", std::string(4096, 'y'), Attributes{}); }, ErrorCode::Invalid,
                 "test fs: /a/x: symlink target too long");
  expect_refusal([&] { fs->mkdir("/a/b", Attributes{}); }, ErrorCode::Exists, "test fs: /a/b already exists");
  expect_refusal([&] { fs->mkdir("/", Attributes{}); }, ErrorCode::Exists, "test fs: / already exists");
  expect_refusal([&] { make_directories(*fs, "/a/file/x", Attributes{}); }, ErrorCode::NotDirectory, "test fs: /a/file is not a directory");
  expect_refusal([&] { put(*fs, "/a/b", "x"); }, ErrorCode::IsDirectory, "test fs: /a/b is a directory");
  expect_refusal([&] { put(*fs, "/", "x"); }, ErrorCode::IsDirectory, "test fs: / is a directory");
  expect_refusal([&] { read_all(*fs, "/a"); }, ErrorCode::IsDirectory, "test fs: /a is a directory");
  expect_refusal([&] { fs->list("/a/file"); }, ErrorCode::NotDirectory, "test fs: /a/file is not a directory");
  expect_refusal([&] { fs->stat("/a/file/x"); }, ErrorCode::NotDirectory, "test fs: /a/file is not a directory");
}

// The heart of the contract: a link is what it is, never a way to somewhere else (on the device
// it may point into another partition).
TEST_P(FsContract, NeverWalksThroughASymlink) {
  auto fs = make();
  make_directories(*fs, "/var/lib", Attributes{});
  make_directories(*fs, "/data/mender", Attributes{});
  put(*fs, "/data/mender/key", "secret");
  fs->symlink("/var/lib/mender", "/data/mender", Attributes{});
  fs->symlink("/var/lib/relative", "../../data", Attributes{});
  const std::string through = "test fs: /var/lib/mender is a symlink to /data/mender";
  MemorySource source("x");
  expect_refusal([&] { fs->stat("/var/lib/mender/key"); }, ErrorCode::Symlink, through);
  expect_refusal([&] { fs->stat("/var/lib/mender/missing/deeper"); }, ErrorCode::Symlink, through);
  expect_refusal([&] { fs->list("/var/lib/mender"); }, ErrorCode::Symlink, through);
  expect_refusal([&] { read_all(*fs, "/var/lib/mender/key"); }, ErrorCode::Symlink, through);
  expect_refusal([&] { fs->write("/var/lib/mender/key", source, {}); }, ErrorCode::Symlink, through);
  expect_refusal([&] { fs->mkdir("/var/lib/mender/sub", {}); }, ErrorCode::Symlink, through);
  expect_refusal([&] { make_directories(*fs, "/var/lib/mender/sub", {}); }, ErrorCode::Symlink, through);
  expect_refusal([&] { fs->symlink("/var/lib/mender/link", "/x", {}); }, ErrorCode::Symlink, through);
  expect_refusal([&] { fs->chmod("/var/lib/mender/key", 0600); }, ErrorCode::Symlink, through);
  expect_refusal([&] { fs->chown("/var/lib/mender/key", 1, 1); }, ErrorCode::Symlink, through);
  expect_refusal([&] { fs->set_mtime("/var/lib/mender/key", 1); }, ErrorCode::Symlink, through);
  expect_refusal([&] { fs->remove("/var/lib/mender/key", false); }, ErrorCode::Symlink, through);
  expect_refusal([&] { fs->list("/var/lib/relative/mender"); }, ErrorCode::Symlink, "test fs: /var/lib/relative is a symlink to ../../data");
  // The link itself: stat shows it, a file is not written over it, reading it is refused.
  expect_refusal([&] { fs->write("/var/lib/mender", source, {}); }, ErrorCode::Symlink,
                 "test fs: /var/lib/mender is a symlink to /data/mender; not replacing it");
  expect_refusal([&] { read_all(*fs, "/var/lib/mender"); }, ErrorCode::Symlink, through);
  EXPECT_EQ(fs->stat("/var/lib/mender")->type, FileType::Symlink);
  // chown and set_mtime change the link's own inode; remove takes the link, never its target.
  fs->chown("/var/lib/mender", 10, 20);
  fs->set_mtime("/var/lib/mender", 1234);
  EXPECT_EQ(fs->stat("/var/lib/mender")->uid, 10u);
  EXPECT_EQ(fs->stat("/var/lib/mender")->mtime, 1234);
  EXPECT_EQ(fs->stat("/data/mender")->uid, 0u);
  fs->remove("/var/lib/mender", false);
  EXPECT_FALSE(fs->stat("/var/lib/mender"));
  EXPECT_EQ(read_all(*fs, "/data/mender/key"), "secret");
}

TEST_P(FsContract, MissingPathsAreNulloptForStatAndNotFoundForTheRest) {
  auto fs = make();
  put(*fs, "/file", "x");
  MemorySource source("x");
  EXPECT_FALSE(fs->stat("/missing"));
  EXPECT_FALSE(fs->stat("/missing/deeper"));
  EXPECT_EQ(fs->stat("/")->type, FileType::Directory);
  expect_refusal([&] { read_all(*fs, "/missing"); }, ErrorCode::NotFound, "test fs: /missing: no such file or directory");
  expect_refusal([&] { read_all(*fs, "/missing/deeper"); }, ErrorCode::NotFound, "test fs: /missing: no such directory");
  expect_refusal([&] { fs->list("/missing"); }, ErrorCode::NotFound, "test fs: /missing: no such directory");
  expect_refusal([&] { fs->write("/missing/file", source, {}); }, ErrorCode::NotFound, "test fs: /missing: no such directory");
  expect_refusal([&] { fs->mkdir("/missing/dir", {}); }, ErrorCode::NotFound, "test fs: /missing: no such directory");
  expect_refusal([&] { fs->remove("/missing", false); }, ErrorCode::NotFound, "test fs: /missing: no such file or directory");
  expect_refusal([&] { fs->chmod("/missing", 0600); }, ErrorCode::NotFound, "test fs: /missing: no such file or directory");
  expect_refusal([&] { fs->chown("/missing", 1, 1); }, ErrorCode::NotFound, "test fs: /missing: no such file or directory");
  expect_refusal([&] { fs->set_mtime("/missing", 1); }, ErrorCode::NotFound, "test fs: /missing: no such file or directory");
}

TEST_P(FsContract, RefusesPathsThatAreNotNormalized) {
  auto fs = make();
  expect_refusal([&] { fs->stat("relative"); }, ErrorCode::Invalid, "test fs: not an absolute path: relative");
  expect_refusal([&] { fs->stat("/a//b"); }, ErrorCode::Invalid, "test fs: not a normalized path (empty component): /a//b");
  expect_refusal([&] { fs->stat("/a/"); }, ErrorCode::Invalid, "test fs: not a normalized path (empty component): /a/");
  expect_refusal([&] { fs->list("/a/./b"); }, ErrorCode::Invalid, "test fs: not a normalized path (\".\" or \"..\"): /a/./b");
  expect_refusal([&] { fs->mkdir("/a/..", {}); }, ErrorCode::Invalid, "test fs: not a normalized path (\".\" or \"..\"): /a/..");
  const std::string long_name = "/" + std::string(256, 'n');
  expect_refusal([&] { put(*fs, long_name, "x"); }, ErrorCode::Invalid, "test fs: name too long: " + long_name);
  put(*fs, "/" + std::string(255, 'n'), "x");  // NAME_MAX itself is fine
  EXPECT_TRUE(fs->stat("/" + std::string(255, 'n')));
}

TEST_P(FsContract, RemovesFilesAndTreesAndGivesTheirSpaceBack) {
  auto fs = make();
  const std::uint64_t free_before = fs->usage().free_bytes;
  make_directories(*fs, "/tree/x/y", Attributes{});
  put(*fs, "/tree/x/y/big", std::string(1 << 20, 'b'));
  put(*fs, "/tree/x/file", "content");
  fs->symlink("/tree/x/link", "/tree/x/y/big", Attributes{});
  fs->symlink("/tree/slow", "/" + std::string(200, 's'), Attributes{});
  put(*fs, "/single", std::string(100000, 's'));
  fs->mkdir("/emptydir", Attributes{});
  EXPECT_LT(fs->usage().free_bytes, free_before - (1 << 20));

  fs->remove("/single", false);
  EXPECT_FALSE(fs->stat("/single"));
  fs->remove("/emptydir", false);
  expect_refusal([&] { fs->remove("/tree", false); }, ErrorCode::NotEmpty, "test fs: /tree: directory not empty");
  expect_refusal([&] { fs->remove("/", true); }, ErrorCode::Invalid, "test fs: /: refusing to remove the root directory");
  fs->remove("/tree/x/link", false);  // the link, not its target
  EXPECT_TRUE(fs->stat("/tree/x/y/big"));
  fs->remove("/tree", true);
  EXPECT_FALSE(fs->stat("/tree"));
  EXPECT_TRUE(names(*fs, "/").empty());
  EXPECT_EQ(fs->usage().free_bytes, free_before);  // every block came back
  EXPECT_EQ(fs->stat("/")->links, 2u);
}

TEST_P(FsContract, ZeroBlocksBecomeHoles) {
  auto fs = make();
  std::string content(3 << 20, '\0');
  content[1 << 20] = 'x';
  const std::uint64_t free_before = fs->usage().free_bytes;
  put(*fs, "/sparse", content);
  put(*fs, "/zeros", std::string(3 << 20, '\0'));
  EXPECT_LE(free_before - fs->usage().free_bytes, 4u * 4096);
  EXPECT_EQ(read_all(*fs, "/sparse"), content);
  EXPECT_EQ(fs->stat("/zeros")->size, 3u << 20);
  EXPECT_EQ(read_all(*fs, "/zeros"), std::string(3 << 20, '\0'));
}

TEST_P(FsContract, AFullFilesystemRefusesTheWriteAndKeepsWhatWasThere) {
  auto fs = make(8);
  put(*fs, "/keep", "old content");
  const std::string chunk(512 << 10, 'f');
  int written = 0;
  const Error full = expect_error(
      [&] {
        for (; written < 100; ++written) put(*fs, "/fill-" + std::to_string(written), chunk);
      },
      ErrorCode::NoSpace);
  EXPECT_NE(std::string(full.what()).find("test fs: /fill-" + std::to_string(written) + ": "), std::string::npos) << full.what();
  EXPECT_NE(std::string(full.what()).find("no space left in the filesystem"), std::string::npos) << full.what();
  EXPECT_GT(written, 3);
  EXPECT_FALSE(fs->stat("/fill-" + std::to_string(written)));  // no partial file
  const std::uint64_t free_when_full = fs->usage().free_bytes;
  expect_error([&] { put(*fs, "/keep", std::string(4 << 20, 'k')); }, ErrorCode::NoSpace);
  EXPECT_EQ(read_all(*fs, "/keep"), "old content");
  EXPECT_EQ(fs->usage().free_bytes, free_when_full);  // nothing leaked
  fs->remove("/fill-0", false);
  put(*fs, "/fits-again", chunk);
}

TEST_P(FsContract, ChangesModesOwnersAndTimes) {
  auto fs = make();
  put(*fs, "/f", "x", Attributes{0644, 1, 2, 100});
  fs->mkdir("/d", Attributes{0700, 0, 0, 100});
  fs->chmod("/f", 02711);
  fs->chown("/f", 123456, 654321);
  fs->set_mtime("/f", 4102444800);  // 2100-01-01
  fs->chmod("/d", 01777);
  const FileStat stat = fs->stat("/f").value();
  EXPECT_EQ(stat.mode, 02711u);
  EXPECT_EQ(stat.uid, 123456u);
  EXPECT_EQ(stat.gid, 654321u);
  EXPECT_EQ(stat.mtime, 4102444800);
  EXPECT_EQ(fs->stat("/d")->mode, 01777u);
  EXPECT_EQ(read_all(*fs, "/f"), "x");  // content untouched
}

TEST_P(FsContract, AReadOnlyFilesystemRefusesEveryChange) {
  auto fs = make(32, false);
  MemorySource source("x");
  const auto read_only = [](const std::string& path) { return "test fs: " + path + ": the filesystem was opened read-only"; };
  expect_refusal([&] { fs->write("/x", source, {}); }, ErrorCode::Generic, read_only("/x"));
  expect_refusal([&] { fs->mkdir("/d", {}); }, ErrorCode::Generic, read_only("/d"));
  expect_refusal([&] { fs->symlink("/l", "/t", {}); }, ErrorCode::Generic, read_only("/l"));
  expect_refusal([&] { fs->chmod("/", 0700); }, ErrorCode::Generic, read_only("/"));
  expect_refusal([&] { fs->chown("/", 1, 1); }, ErrorCode::Generic, read_only("/"));
  expect_refusal([&] { fs->set_mtime("/", 1); }, ErrorCode::Generic, read_only("/"));
  expect_refusal([&] { fs->remove("/x", false); }, ErrorCode::Generic, read_only("/x"));
  EXPECT_EQ(fs->stat("/")->type, FileType::Directory);  // reading works
}

// MemoryFilesystem's own: what the disk backends get from their image.
TEST(MemoryFilesystem, ReportsItsTypeCapacityAndFlushes) {
  MemoryFilesystemOptions options;
  options.type = "vfat";
  options.capacity = 1 << 20;
  options.block_size = 1024;
  MemoryFilesystem fs(options);
  EXPECT_EQ(fs.type(), "vfat");
  EXPECT_EQ(fs.usage().block_size, 1024u);
  EXPECT_EQ(fs.usage().total_bytes, 1u << 20);
  EXPECT_EQ(fs.usage().free_bytes, (1u << 20) - 1024);  // the root directory's block
  EXPECT_EQ(fs.flushes(), 0u);
  fs.flush();
  EXPECT_EQ(fs.flushes(), 1u);
  fs.set_writable(false);
  expect_error([&] { fs.mkdir("/d", {}); }, ErrorCode::Generic);
  fs.set_writable(true);
  fs.mkdir("/d", {});
  EXPECT_TRUE(fs.stat("/d"));
}

}  // namespace
}  // namespace imprint
