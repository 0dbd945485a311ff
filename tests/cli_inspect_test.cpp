// imprint inspect on every fixture, checked against sfdisk --json and blkid (independent readers).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support.hpp"

using namespace imprint::test;
using nlohmann::json;

namespace {

struct Expected {
  std::string fixture;
  std::string table;
  std::map<int, std::string> roles;
};

class InspectFixture : public ::testing::TestWithParam<Expected> {};

TEST_P(InspectFixture, MatchesSfdiskAndBlkid) {
  const Expected& expected = GetParam();
  const std::string image = fixture(expected.fixture);
  CommandResult result = run_imprint({"inspect", "--json", image});
  ASSERT_EQ(result.status, 0) << result.err;
  const json report = json::parse(result.out);
  EXPECT_EQ(report.at("table"), expected.table);

  const json table = json::parse(run({"sfdisk", "--json", image}).out).at("partitiontable");
  ASSERT_EQ(report.at("partitions").size(), table.at("partitions").size());
  for (const json& partition : report.at("partitions")) {
    const int number = partition.at("number");
    const Span span = partition_span(image, number);
    EXPECT_EQ(partition.at("offset").get<std::uint64_t>(), span.offset) << "p" << number;
    EXPECT_EQ(partition.at("size").get<std::uint64_t>(), span.size) << "p" << number;
    const auto role = expected.roles.find(number);
    EXPECT_EQ(partition.at("role"), role == expected.roles.end() ? "none" : role->second) << "p" << number;
    if (!partition.at("extended").get<bool>()) {
      EXPECT_EQ(partition.at("fs_type"), blkid_values(image, span)["TYPE"]) << "p" << number;
      EXPECT_EQ(partition.at("label"), blkid_values(image, span)["LABEL"]) << "p" << number;
      EXPECT_EQ(partition.at("uuid"), blkid_values(image, span)["UUID"]) << "p" << number;
    }
  }
  EXPECT_EQ(report.at("device_type"), "beaglebone");
  EXPECT_EQ(report.at("artifact_name"), "golden-1.0");
}

const std::map<int, std::string> kMenderRoles{{1, "boot"}, {2, "primary"}, {3, "secondary"}, {4, "data"}};

INSTANTIATE_TEST_SUITE_P(
    Fixtures, InspectFixture,
    ::testing::Values(Expected{"mbr.img", "dos", kMenderRoles}, Expected{"gpt.img", "gpt", kMenderRoles},
                      Expected{"mbr-1k.img", "dos", kMenderRoles}, Expected{"big.img", "dos", kMenderRoles},
                      Expected{"v1.img", "dos", {{1, "boot"}, {2, "primary"}, {3, "secondary"}, {4, "extended"}, {5, "data"}, {6, "swap"}}}),
    [](const auto& param_info) {
      std::string name = param_info.param.fixture;
      for (char& c : name) if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return name;
    });

TEST(Inspect, ReadsCompressedImagesLikeTheRawOne) {
  const json raw = json::parse(run_imprint({"inspect", "--json", fixture("mbr.img")}).out);
  for (const std::string name : {"mbr.img.gz", "mbr.img.xz", "mbr.img.zst", "mbr.img.zip"}) {
    CommandResult result = run_imprint({"inspect", "--json", fixture(name)});
    ASSERT_EQ(result.status, 0) << name << ": " << result.err;
    json report = json::parse(result.out);
    EXPECT_EQ(report.at("partitions"), raw.at("partitions")) << name;
    EXPECT_EQ(report.at("device_type"), "beaglebone") << name;
  }
}

TEST(Inspect, GptBootMountComesFromFstab) {
  const json report = json::parse(run_imprint({"inspect", "--json", fixture("gpt.img")}).out);
  EXPECT_EQ(report.at("boot_mounts"), json::array({"/boot/efi"}));
  const json mbr = json::parse(run_imprint({"inspect", "--json", fixture("mbr.img")}).out);
  EXPECT_EQ(mbr.at("boot_mounts"), json::array({"/uboot"}));
}

TEST(Inspect, HumanOutputNamesRoles) {
  CommandResult result = run_imprint({"inspect", fixture("mbr.img")});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_NE(result.out.find("dos partition table"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("primary"), std::string::npos);
  EXPECT_NE(result.out.find("device_type: beaglebone"), std::string::npos);
}

}  // namespace
