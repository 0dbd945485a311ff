// probe_layout on images built here with sfdisk + mkfs, checked against sfdisk --json and blkid.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "imprint/core/error.hpp"
#include "imprint/image/image.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::CommandResult;
using test::TempDir;

constexpr std::uint64_t MiB = 1024 * 1024;

void must(const CommandResult& result, const std::string& what) {
  ASSERT_EQ(result.status, 0) << what << " failed: " << result.err;
}

struct FsSpec {
  int number;
  std::string type;  // ext4, vfat, swap
  std::string label;
};

// An image of size_mib MiB partitioned by an sfdisk script, with filesystems made in place.
std::string build_image(const TempDir& dir, const std::string& name, std::uint64_t size_mib, const std::string& script,
                        const std::vector<FsSpec>& filesystems) {
  const std::string image = dir / name;
  EXPECT_EQ(test::run({"truncate", "-s", std::to_string(size_mib) + "M", image}).status, 0);
  const CommandResult partitioned = test::run({"sfdisk", "-q", image}, script);
  EXPECT_EQ(partitioned.status, 0) << "sfdisk: " << partitioned.err;
  for (const FsSpec& fs : filesystems) {
    const test::Span span = test::partition_span(image, fs.number);
    const std::string kib = std::to_string(span.size / 1024);
    CommandResult made;
    if (fs.type == "ext4") {
      std::vector<std::string> argv{"mkfs.ext4", "-q", "-F", "-E", "offset=" + std::to_string(span.offset), image, kib + "k"};
      if (!fs.label.empty()) argv.insert(argv.begin() + 1, {"-L", fs.label});
      made = test::run(argv);
    } else if (fs.type == "vfat") {
      std::vector<std::string> argv{"mkfs.vfat", "--offset", std::to_string(span.offset / 512), image, kib};
      if (!fs.label.empty()) argv.insert(argv.begin() + 1, {"-n", fs.label});
      made = test::run(argv);
    } else {  // swap: mkswap has no offset option, so make it aside and place it
      const std::string part = dir / ("swap" + std::to_string(fs.number));
      made = test::run({"sh", "-c",
                        "truncate -s " + std::to_string(span.size) + " '" + part + "' && mkswap -q -L '" + fs.label +
                            "' '" + part + "' && dd if='" + part + "' of='" + image +
                            "' bs=1M conv=notrunc,sparse status=none oflag=seek_bytes seek=" + std::to_string(span.offset)});
    }
    EXPECT_EQ(made.status, 0) << "making " << fs.type << " on partition " << fs.number << ": " << made.err;
  }
  return image;
}

const std::string kMbrScript = "label: dos\nlabel-id: 0x1badcafe\n8M,8M,c\n16M,24M,83\n40M,24M,83\n64M,,83\n";
const std::string kGptScript =
    "label: gpt\n8M,8M,U\n16M,24M,L\n40M,24M,L\n64M,,L\n";
// mender-convert 1.x: p4 extended holding p5 data and p6 swap.
const std::string kExtendedScript = "label: dos\n8M,8M,c\n16M,24M,83\n40M,24M,83\n64M,,5\n72M,24M,83\n104M,,82\n";

const std::vector<FsSpec> kMenderFilesystems{{1, "vfat", ""}, {2, "ext4", ""}, {3, "ext4", ""}, {4, "ext4", ""}};

nlohmann::json sfdisk_table(const std::string& image) {
  const CommandResult result = test::run({"sfdisk", "--json", image});
  EXPECT_EQ(result.status, 0) << result.err;
  return nlohmann::json::parse(result.out).at("partitiontable");
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

const Partition& number(const Layout& layout, int n) {
  for (const Partition& partition : layout.partitions) {
    if (partition.number == n) return partition;
  }
  throw std::runtime_error("no partition " + std::to_string(n));
}

// Offsets and sizes against sfdisk --json, fs type / label / UUID against blkid.
void expect_matches_tools(const std::string& image, const Layout& layout) {
  const nlohmann::json table = sfdisk_table(image);
  ASSERT_EQ(layout.partitions.size(), table.at("partitions").size());
  for (const Partition& partition : layout.partitions) {
    SCOPED_TRACE("partition " + std::to_string(partition.number));
    const test::Span span = test::partition_span(image, partition.number);
    EXPECT_EQ(partition.offset, span.offset);
    EXPECT_EQ(partition.size, span.size);
    if (partition.extended) continue;
    const auto values = test::blkid_values(image, partition.number);
    EXPECT_EQ(partition.fs_type, values.count("TYPE") ? values.at("TYPE") : "");
    EXPECT_EQ(partition.label, values.count("LABEL") ? values.at("LABEL") : "");
    EXPECT_EQ(partition.uuid, values.count("UUID") ? values.at("UUID") : "");
  }
}

std::vector<Role> roles(const Layout& layout) {
  std::vector<Role> result;
  for (const Partition& partition : layout.partitions) result.push_back(partition.role);
  return result;
}

TEST(ImageLayout, MbrFourPartitionsGetRolesInOrder) {
  TempDir dir;
  const std::string image = build_image(dir, "mbr.img", 96, kMbrScript, kMenderFilesystems);
  const Layout layout = probe_layout(image);
  EXPECT_EQ(layout.table, TableType::Dos);
  EXPECT_EQ(to_string(layout.table), "dos");
  EXPECT_EQ(layout.image_size, 96 * MiB);
  EXPECT_EQ("0x" + layout.disk_id, sfdisk_table(image).at("id").get<std::string>());
  EXPECT_EQ(layout.disk_id, "1badcafe");
  EXPECT_EQ(roles(layout), (std::vector<Role>{Role::Boot, Role::Primary, Role::Secondary, Role::Data}));
  EXPECT_EQ(number(layout, 1).fs_type, "vfat");
  EXPECT_EQ(number(layout, 4).fs_type, "ext4");
  EXPECT_EQ(number(layout, 1).part_type, "0xc");
  EXPECT_EQ(number(layout, 2).part_type, "0x83");
  EXPECT_EQ(number(layout, 3).part_uuid, "1badcafe-03");
  EXPECT_EQ(number(layout, 4).offset, 64 * MiB);
  EXPECT_EQ(number(layout, 4).size, 32 * MiB);
  expect_matches_tools(image, layout);
}

TEST(ImageLayout, GptFourPartitions) {
  TempDir dir;
  const std::string image = build_image(dir, "gpt.img", 96, kGptScript, kMenderFilesystems);
  const Layout layout = probe_layout(image);
  EXPECT_EQ(layout.table, TableType::Gpt);
  const nlohmann::json table = sfdisk_table(image);
  EXPECT_EQ(lower(layout.disk_id), lower(table.at("id").get<std::string>()));
  EXPECT_EQ(roles(layout), (std::vector<Role>{Role::Boot, Role::Primary, Role::Secondary, Role::Data}));
  for (std::size_t i = 0; i < layout.partitions.size(); ++i) {
    const auto& entry = table.at("partitions").at(i);
    EXPECT_EQ(lower(layout.partitions[i].part_type), lower(entry.at("type").get<std::string>()));
    EXPECT_EQ(lower(layout.partitions[i].part_uuid), lower(entry.at("uuid").get<std::string>()));
  }
  EXPECT_EQ(layout.partitions[0].part_type, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");  // EFI system
  expect_matches_tools(image, layout);
}

TEST(ImageLayout, MbrExtendedWithLabelsAndSwap) {
  TempDir dir;
  const std::string image = build_image(
      dir, "v1.img", 128, kExtendedScript,
      {{1, "vfat", "boot"}, {2, "ext4", "primary"}, {3, "ext4", "secondary"}, {5, "ext4", "data"}, {6, "swap", "swap"}});
  const Layout layout = probe_layout(image);
  EXPECT_EQ(layout.table, TableType::Dos);
  ASSERT_EQ(layout.partitions.size(), 6u);
  EXPECT_EQ(roles(layout),
            (std::vector<Role>{Role::Boot, Role::Primary, Role::Secondary, Role::Extended, Role::Data, Role::Swap}));
  EXPECT_TRUE(number(layout, 4).extended);
  EXPECT_EQ(number(layout, 4).part_type, "0x5");
  EXPECT_EQ(number(layout, 5).label, "data");
  EXPECT_EQ(number(layout, 6).fs_type, "swap");
  EXPECT_EQ(number(layout, 6).label, "swap");
  expect_matches_tools(image, layout);
}

TEST(ImageLayout, LabelsWinOverOrder) {
  // Labels in an unusual order: the roles follow the labels, not the partition numbers.
  TempDir dir;
  const std::string image =
      build_image(dir, "swapped.img", 96, kMbrScript,
                  {{1, "vfat", "boot"}, {2, "ext4", "secondary"}, {3, "ext4", "primary"}, {4, "ext4", "data"}});
  const Layout layout = probe_layout(image);
  EXPECT_EQ(roles(layout), (std::vector<Role>{Role::Boot, Role::Secondary, Role::Primary, Role::Data}));
}

TEST(ImageLayout, ExtendedWithoutLabelsSkipsContainerAndSwap) {
  TempDir dir;
  const std::string image =
      build_image(dir, "ext.img", 128, kExtendedScript,
                  {{1, "vfat", ""}, {2, "ext4", ""}, {3, "ext4", ""}, {5, "ext4", ""}, {6, "swap", ""}});
  const Layout layout = probe_layout(image);
  EXPECT_EQ(roles(layout),
            (std::vector<Role>{Role::Boot, Role::Primary, Role::Secondary, Role::Extended, Role::Data, Role::Swap}));
  EXPECT_EQ(number(layout, 5).offset, 72 * MiB);
  expect_matches_tools(image, layout);
}

void expect_error(const std::string& image, ErrorCode code, const std::string& message) {
  try {
    probe_layout(image);
    ADD_FAILURE() << "probe_layout(" << image << ") did not throw";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), code) << error.what();
    EXPECT_EQ(std::string(error.what()), message);
  }
}

TEST(ImageLayout, RefusesTruncatedMbrImage) {
  TempDir dir;
  const std::string image =
      build_image(dir, "disk.img", 144, "label: dos\n8M,8M,c\n16M,32M,83\n48M,32M,83\n80M,64M,83\n", {});
  ASSERT_EQ(test::run({"truncate", "-s", "96M", image}).status, 0);
  expect_error(image, ErrorCode::Corrupt,
               image + ": partition 4 ends at 150994944 bytes but the image is 100663296 bytes (truncated image?)");
}

TEST(ImageLayout, RefusesTruncatedGptImage) {
  // libblkid (and sfdisk) reject a GPT whose header describes a disk larger than the file, so the
  // entries cannot be read: the message names the table.
  TempDir dir;
  const std::string image =
      build_image(dir, "disk.img", 144, "label: gpt\n8M,8M,U\n16M,32M,L\n48M,32M,L\n80M,63M,L\n", {});
  ASSERT_EQ(test::run({"truncate", "-s", "96M", image}).status, 0);
  expect_error(image, ErrorCode::Corrupt,
               image + ": found a protective MBR but no GPT that fits in the 100663296-byte image (truncated image?)");
}

TEST(ImageLayout, RefusesFileWithoutPartitionTable) {
  TempDir dir;
  const std::string image = dir / "bare.img";
  must(test::run({"truncate", "-s", "16M", image}), "truncate");
  must(test::run({"mkfs.ext4", "-q", "-F", image}), "mkfs.ext4");
  expect_error(image, ErrorCode::Corrupt, image + ": no partition table found");
}

TEST(ImageLayout, RefusesMissingAndUnreadableFiles) {
  TempDir dir;
  try {
    probe_layout(dir / "missing.img");
    ADD_FAILURE() << "no error for a missing file";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(dir / "missing.img"), std::string::npos) << error.what();
    EXPECT_EQ(error.code(), ErrorCode::NotFound) << error.what();
  }
  try {
    probe_layout(dir.path());
    ADD_FAILURE() << "no error for a directory";
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), dir.path() + " is a directory, not a disk image");
  }
}

TEST(ImageLayout, RoleNames) {
  EXPECT_EQ(to_string(Role::Primary), "primary");
  EXPECT_EQ(to_string(Role::Secondary), "secondary");
  EXPECT_EQ(to_string(Role::Boot), "boot");
  EXPECT_EQ(to_string(Role::Data), "data");
  EXPECT_EQ(to_string(Role::None), "none");
  EXPECT_EQ(to_string(TableType::Gpt), "gpt");
}

}  // namespace
}  // namespace imprint
