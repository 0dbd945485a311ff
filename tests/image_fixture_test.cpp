// DiskImage on the shared fixture images (fixtures/build-all.sh): layouts against sfdisk --json and
// blkid, roles, fstab mounts, and the compressed copies read like the raw image.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "imprint/image/image.hpp"
#include "imprint/image/pathmap.hpp"
#include "support.hpp"

namespace imprint {
namespace {

struct Expected {
  std::string name;
  TableType table;
  std::vector<Role> roles;
  std::vector<std::string> boot_mounts;
  int data_partition;
};

class ImageFixture : public ::testing::TestWithParam<Expected> {};

TEST_P(ImageFixture, LayoutMatchesSfdiskAndBlkid) {
  const Expected& expected = GetParam();
  const std::string image = test::fixture(expected.name);
  DiskImage disk = DiskImage::open(image, OpenMode::ReadOnly);
  const Layout& layout = disk.layout();
  EXPECT_EQ(layout.table, expected.table);
  const auto table = nlohmann::json::parse(test::run({"sfdisk", "--json", image}).out).at("partitiontable");
  EXPECT_EQ(to_string(layout.table), table.at("label").get<std::string>());
  ASSERT_EQ(layout.partitions.size(), expected.roles.size());
  for (std::size_t i = 0; i < layout.partitions.size(); ++i) {
    const Partition& partition = layout.partitions[i];
    SCOPED_TRACE(expected.name + " p" + std::to_string(partition.number));
    EXPECT_EQ(partition.role, expected.roles[i]);
    const test::Span span = test::partition_span(image, partition.number);
    EXPECT_EQ(partition.offset, span.offset);
    EXPECT_EQ(partition.size, span.size);
    if (partition.extended) continue;
    const auto values = test::blkid_values(image, partition.number);
    EXPECT_EQ(partition.fs_type, values.count("TYPE") ? values.at("TYPE") : "");
    EXPECT_EQ(partition.uuid, values.count("UUID") ? values.at("UUID") : "");
    EXPECT_EQ(partition.label, values.count("LABEL") ? values.at("LABEL") : "");
  }
  EXPECT_EQ(disk.mounts().boot_mounts, expected.boot_mounts);
  EXPECT_EQ(disk.mounts().data_mount, "/data");
  const auto locations = resolve(parse_path_spec("/data/mender/device_type"), layout, disk.mounts());
  ASSERT_EQ(locations.size(), 1u);
  EXPECT_EQ(locations[0].partition, expected.data_partition);
  EXPECT_EQ(read_all(disk.filesystem(disk.partition_number(locations[0].partition)), locations[0].path),
            "device_type=beaglebone\n");
}

const std::vector<Role> kMender{Role::Boot, Role::Primary, Role::Secondary, Role::Data};

INSTANTIATE_TEST_SUITE_P(
    Images, ImageFixture,
    ::testing::Values(Expected{"mbr.img", TableType::Dos, kMender, {"/uboot"}, 4},
                      Expected{"gpt.img", TableType::Gpt, kMender, {"/boot/efi"}, 4},
                      Expected{"mbr-1k.img", TableType::Dos, kMender, {"/uboot"}, 4},
                      Expected{"big.img", TableType::Dos, kMender, {"/uboot"}, 4},
                      Expected{"v1.img",
                               TableType::Dos,
                               {Role::Boot, Role::Primary, Role::Secondary, Role::Extended, Role::Data, Role::Swap},
                               {"/uboot"},
                               5}),
    [](const auto& param_info) {
      std::string name = param_info.param.name;
      for (char& c : name) c = (c == '.' || c == '-') ? '_' : c;
      return name;
    });

class ImageFixtureCompressed : public ::testing::TestWithParam<std::string> {};

TEST_P(ImageFixtureCompressed, ReadsLikeTheRawImage) {
  DiskImage raw = DiskImage::open(test::fixture("mbr.img"), OpenMode::ReadOnly);
  DiskImage disk = DiskImage::open(test::fixture(GetParam()), OpenMode::ReadOnly);
  ASSERT_EQ(disk.layout().partitions.size(), raw.layout().partitions.size());
  EXPECT_EQ(disk.layout().disk_id, raw.layout().disk_id);
  for (std::size_t i = 0; i < raw.layout().partitions.size(); ++i) {
    EXPECT_EQ(disk.layout().partitions[i].offset, raw.layout().partitions[i].offset);
    EXPECT_EQ(disk.layout().partitions[i].uuid, raw.layout().partitions[i].uuid);
  }
  EXPECT_EQ(read_all(disk.filesystem(disk.partition(Role::Primary)), "/etc/fstab"),
            read_all(raw.filesystem(raw.partition(Role::Primary)), "/etc/fstab"));
  EXPECT_EQ(test::file_sha256(disk.io_path()), test::file_sha256(test::fixture("mbr.img")));
}

INSTANTIATE_TEST_SUITE_P(Copies, ImageFixtureCompressed,
                         ::testing::Values("mbr.img.gz", "mbr.img.xz", "mbr.img.zst", "mbr.img.zip"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           for (char& c : name) c = c == '.' ? '_' : c;
                           return name;
                         });

}  // namespace
}  // namespace imprint
