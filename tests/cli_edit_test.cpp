// The developer commands (put, cat, ls, rm, mkdir) end to end on the fixture images, checked with
// debugfs, mender-artifact, e2fsck and byte comparisons of the partitions left untouched.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <regex>

#include "support.hpp"

using namespace imprint::test;

namespace {

std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 generator(seed);
  std::string bytes(size, '\0');
  for (char& byte : bytes) byte = static_cast<char>(generator() & 0xff);
  return bytes;
}

struct DebugfsStat {
  std::string mode;  // "0600"
  std::string user, group;
  std::uint64_t size = 0;
};

DebugfsStat debugfs_stat(const std::string& image, int partition, const std::string& path) {
  const std::string out = debugfs(image, partition, "stat " + path);
  std::smatch match;
  DebugfsStat stat;
  if (std::regex_search(out, match, std::regex("Mode:\\s+(\\d+)"))) stat.mode = match[1];
  if (std::regex_search(out, match, std::regex("User:\\s+(\\d+)\\s+Group:\\s+(\\d+)"))) {
    stat.user = match[1];
    stat.group = match[2];
  }
  if (std::regex_search(out, match, std::regex("Size:\\s+(\\d+)"))) stat.size = std::stoull(match[1]);
  return stat;
}

std::string debugfs_sha256(const std::string& image, int partition, const std::string& path) {
  return shell("debugfs -R 'cat " + path + "' '" + ext_device(image, partition) + "' 2>/dev/null | sha256sum | cut -c1-64").substr(0, 64);
}

std::string sha_of(const std::string& bytes) {
  TempDir dir;
  write_file(dir / "f", bytes);
  return file_sha256(dir / "f");
}

std::vector<int> ext_partitions(const std::string& fixture_name) {
  return fixture_name == "v1.img" ? std::vector<int>{2, 3, 5} : std::vector<int>{2, 3, 4};
}

struct PutCase {
  std::string target;          // IMAGE:<target>
  std::vector<int> partitions;  // where it must land (mbr numbering; v1 maps data to 5)
  std::string path;             // partition path
};

class PutOnFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(PutOnFixture, LandsWhereTheDeviceSeesItAndNowhereElse) {
  const std::string name = GetParam();
  const int data = name == "v1.img" ? 5 : 4;
  TempDir dir;
  const std::string image = copy_fixture(name, dir);
  const std::string big = random_bytes(3 << 20, 1), empty;
  write_file(dir / "big", big);
  write_file(dir / "empty", empty);
  const std::vector<PutCase> cases{{"/data/mender/x", {data}, "/mender/x"},
                                   {"/usr/bin/y", {2, 3}, "/usr/bin/y"},
                                   {"primary:/etc/z", {2}, "/etc/z"}};
  for (const PutCase& put : cases) {
    for (const auto& [host, bytes] : {std::pair{dir / "big", big}, std::pair{dir / "empty", empty}}) {
      std::map<int, std::string> before;
      for (int number : {1, 2, 3, data}) before[number] = partition_sha256(image, number);

      CommandResult result = run_imprint({"put", "-m", "640", "--owner", "1000:1000", host, image + ":" + put.target});
      ASSERT_EQ(result.status, 0) << put.target << ": " << result.err;

      for (int number : {1, 2, 3, data}) {
        const bool target = std::find(put.partitions.begin(), put.partitions.end(), number) != put.partitions.end();
        if (target) {
          const DebugfsStat stat = debugfs_stat(image, number, put.path);
          EXPECT_EQ(stat.mode, "0640") << put.target << " p" << number;
          EXPECT_EQ(stat.user, "1000");
          EXPECT_EQ(stat.group, "1000");
          EXPECT_EQ(stat.size, bytes.size());
          EXPECT_EQ(debugfs_sha256(image, number, put.path), sha_of(bytes)) << put.target << " p" << number;
        } else {
          EXPECT_EQ(partition_sha256(image, number), before[number]) << put.target << " changed p" << number;
        }
      }
      CommandResult cat = run_imprint({"cat", image + ":" + put.target});
      ASSERT_EQ(cat.status, 0) << cat.err;
      EXPECT_EQ(sha_of(cat.out), sha_of(bytes));
    }
  }
  for (int number : ext_partitions(name)) {
    CommandResult fsck = e2fsck(image, number);
    EXPECT_EQ(fsck.status, 0) << name << " p" << number << ":\n" << fsck.out << fsck.err;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PutOnFixture, ::testing::Values("mbr.img", "gpt.img", "v1.img", "mbr-1k.img"),
                         [](const auto& param_info) {
                           std::string label = param_info.param;
                           for (char& c : label) if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return label;
                         });

TEST(Put, MenderArtifactReadsWhatImprintWrote) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  const std::string bytes = random_bytes(300000, 2);
  write_file(dir / "key", bytes);
  for (const std::string target : {"/data/mender/mender-agent.pem", "/usr/bin/tool"}) {
    ASSERT_EQ(run_imprint({"put", "-m", "0600", dir / "key", image + ":" + target}).status, 0);
    EXPECT_EQ(sha_of(mender_artifact_read(image, target, dir.path())), sha_of(bytes)) << target;
  }
}

TEST(Put, ModeIsOctalEvenWithoutLeadingZero) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  write_file(dir / "f", "x");
  ASSERT_EQ(run_imprint({"put", "-m", "600", dir / "f", image + ":/data/mender/f"}).status, 0);
  EXPECT_EQ(debugfs_stat(image, 4, "/mender/f").mode, "0600");
  CommandResult bad = run_imprint({"put", "-m", "0968", dir / "f", image + ":/data/mender/g"});
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("0968"), std::string::npos) << bad.err;
}

TEST(Put, OwnerNamesComeFromTheImage) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  write_file(dir / "f", "x");
  CommandResult result = run_imprint({"put", "--owner", "debian:debian", dir / "f", image + ":/etc/owned"});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(debugfs_stat(image, 2, "/etc/owned").user, "1000");
  CommandResult unknown = run_imprint({"put", "--owner", "nobody-here:root", dir / "f", image + ":/etc/owned2"});
  EXPECT_NE(unknown.status, 0);
  EXPECT_NE(unknown.err.find("nobody-here"), std::string::npos) << unknown.err;
}

TEST(Put, ReadsStandardInput) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  ASSERT_EQ(run_imprint({"put", "-", image + ":/data/mender/stdin"}, "from stdin\n").status, 0);
  EXPECT_EQ(run_imprint({"cat", image + ":data:/mender/stdin"}).out, "from stdin\n");
}

TEST(Put, ReplacesAnExistingFile) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  write_file(dir / "conf", "new config\n");
  ASSERT_EQ(run_imprint({"put", "-m", "0600", dir / "conf", image + ":/data/mender/mender.conf"}).status, 0);
  EXPECT_EQ(debugfs(image, 4, "cat /mender/mender.conf"), "new config\n");
  EXPECT_EQ(e2fsck(image, 4).status, 0);
}

TEST(Mkdir, CreatesParentsAndLs) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  ASSERT_EQ(run_imprint({"mkdir", "-p", image + ":/opt/a/b/c"}).status, 0);
  EXPECT_NE(debugfs(image, 2, "stat /opt/a/b/c").find("Type: directory"), std::string::npos);
  EXPECT_NE(debugfs(image, 3, "stat /opt/a/b/c").find("Type: directory"), std::string::npos);
  EXPECT_EQ(run_imprint({"mkdir", "-p", image + ":/opt/a/b/c"}).status, 0) << "mkdir -p of an existing directory";
  CommandResult exists = run_imprint({"mkdir", image + ":/opt/a"});
  EXPECT_NE(exists.status, 0);
  CommandResult ls = run_imprint({"ls", image + ":primary:/opt/a"});
  EXPECT_EQ(ls.out, "b\n");
  for (int number : {2, 3}) EXPECT_EQ(e2fsck(image, number).status, 0);
}

TEST(Rm, RemovesFilesAndTreesCleanly) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  ASSERT_EQ(run_imprint({"rm", image + ":/data/mender/device_type"}).status, 0);
  EXPECT_FALSE(debugfs_exists(image, 4, "/mender/device_type"));
  CommandResult not_empty = run_imprint({"rm", image + ":/usr/share/mender"});
  EXPECT_NE(not_empty.status, 0);
  ASSERT_EQ(run_imprint({"rm", "-r", image + ":/usr/share/mender"}).status, 0);
  EXPECT_FALSE(debugfs_exists(image, 2, "/usr/share/mender"));
  EXPECT_FALSE(debugfs_exists(image, 3, "/usr/share/mender"));
  CommandResult missing = run_imprint({"rm", image + ":/no/such/file"});
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("/no/such/file"), std::string::npos) << missing.err;
  for (int number : {2, 3, 4}) EXPECT_EQ(e2fsck(image, number).status, 0) << "p" << number;
}

TEST(Put, KeepsASparseImageSparse) {
  TempDir dir;
  const std::string image = copy_fixture("big.img", dir);
  const std::uint64_t before = allocated_bytes(image);
  write_file(dir / "f", random_bytes(3 << 20, 3));
  ASSERT_EQ(run_imprint({"put", dir / "f", image + ":/data/mender/blob"}).status, 0);
  const std::uint64_t grown = allocated_bytes(image) - before;
  EXPECT_GE(grown, 3u << 20);
  EXPECT_LT(grown, 4u << 20) << "a 3 MiB put should allocate about 3 MiB, not the image";
  EXPECT_LT(allocated_bytes(image), 256u << 20);
}

// Refusals: one clear line naming the culprit, a non-zero exit, the image untouched.
void expect_refusal(const std::vector<std::string>& arguments, const std::string& image, const std::string& needle) {
  const std::string before = file_sha256(image);
  CommandResult result = run_imprint(arguments);
  EXPECT_NE(result.status, 0) << "expected a refusal from imprint " << arguments.at(0);
  EXPECT_NE(result.err.find(needle), std::string::npos) << "stderr: " << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << "one line: " << result.err;
  EXPECT_EQ(file_sha256(image), before) << "a refused command changed the image";
}

TEST(Refuse, WriteThroughASymlinkNamesTheLink) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  write_file(dir / "f", "x");
  expect_refusal({"put", dir / "f", image + ":/var/lib/mender/mender-agent.pem"}, image, "/var/lib/mender is a symlink to /data/mender");
  expect_refusal({"put", dir / "f", image + ":/var/lib/mender/mender-agent.pem"}, image, "write /data/mender/... instead");
}

TEST(Refuse, PathOutsideTheFilesystem) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  write_file(dir / "f", "x");
  expect_refusal({"put", dir / "f", image + ":/../etc/passwd"}, image, "outside");
}

TEST(Refuse, FullFilesystemLeavesNoPartialFile) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  write_file(dir / "huge", random_bytes(40 << 20, 4));  // the data partition is 32 MiB
  CommandResult result = run_imprint({"put", dir / "huge", image + ":/data/mender/huge"});
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.err.find("no space left"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.rfind("imprint: data (p4): /mender/huge: ", 0), 0u) << result.err;
  EXPECT_FALSE(debugfs_exists(image, 4, "/mender/huge"));
  CommandResult fsck = e2fsck(image, 4);
  EXPECT_EQ(fsck.status, 0) << fsck.out;
}

TEST(Refuse, JournalNeedsRecovery) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  shell("debugfs -w -R 'feature needs_recovery' '" + ext_device(image, 4) + "' 2>&1");
  write_file(dir / "f", "x");
  expect_refusal({"put", dir / "f", image + ":/data/mender/x"}, image, "recovery");
}

TEST(Refuse, UnknownFilesystemFeature) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  shell("debugfs -w -R 'feature FEATURE_R31' '" + ext_device(image, 4) + "' 2>&1");
  write_file(dir / "f", "x");
  expect_refusal({"put", dir / "f", image + ":/data/mender/x"}, image, "feature");
}

TEST(Refuse, TruncatedImage) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  const Span data = partition_span(image, 4);
  shell("truncate -s " + std::to_string(data.offset + data.size / 2) + " '" + image + "'");
  expect_refusal({"inspect", image}, image, "partition 4");
  write_file(dir / "f", "x");
  expect_refusal({"put", dir / "f", image + ":/etc/x"}, image, "truncated");
}

TEST(Refuse, TableEntriesPastTheEndOfTheFile) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  shell("truncate -s " + std::to_string(partition_span(image, 2).offset) + " '" + image + "'");
  expect_refusal({"ls", image + ":/data"}, image, "partition 2 ends at");
}

TEST(Refuse, WritingACompressedImage) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img.gz", dir);
  write_file(dir / "f", "x");
  expect_refusal({"put", dir / "f", image + ":/data/mender/x"}, image, "raw image");
}

TEST(Refuse, MissingImageAndPath) {
  CommandResult missing = run_imprint({"cat", "/nonexistent.img:/etc/x"});
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("/nonexistent.img"), std::string::npos) << missing.err;
  CommandResult no_file = run_imprint({"cat", fixture("mbr.img") + ":/etc/nope"});
  EXPECT_NE(no_file.status, 0);
  EXPECT_NE(no_file.err.find("/etc/nope"), std::string::npos) << no_file.err;
}

TEST(Refuse, BootPartitionWithTheNativeBackendOnly) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  write_file(dir / "f", "x");
  expect_refusal({"put", "--backend", "native", dir / "f", image + ":/uboot/uEnv.txt"}, image, "needs the libguestfs backend");
  expect_refusal({"put", "--backend", "nfs", dir / "f", image + ":/uboot/uEnv.txt"}, image, "nfs");
}

}  // namespace
