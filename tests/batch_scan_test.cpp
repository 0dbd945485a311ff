// A batch scans its golden once (issue 12, defect 13, keeping issue 13's stamp goal): the ext
// filesystems of the shared base are scanned before their first write, and every device copy
// reuses that verdict; a different golden, or the same one rewritten, is scanned again.
#include <gtest/gtest.h>

#include <filesystem>

#include "imprint/batch/batch.hpp"
#include "imprint/fs/ext4.hpp"
#include "support.hpp"

using namespace imprint;
using namespace imprint::test;

namespace {

// A file common to every device on both root filesystems (written into the base: p2 and p3 scanned
// there) and one of each device's own on the data partition (p4: scanned by the first device only).
BatchRequest three_devices(const TempDir& dir, const std::string& golden, const std::string& out) {
  write_file(dir / "profile.yaml",
             "version: 1\nfiles:\n  - path: /etc/fleet\n    content: \"fleet\"\n    mode: \"0644\"\n"
             "  - path: /data/mender/device-id\n    content: \"{{device_id}}\"\n    mode: \"0644\"\n");
  write_file(dir / "devices.csv", "device_id\nd1\nd2\nd3\n");
  BatchRequest request;
  request.profile_path = dir / "profile.yaml";
  request.golden_path = golden;
  request.devices_csv = dir / "devices.csv";
  request.output_directory = dir / out;
  request.jobs = 2;  // two devices reach p4 at once: the second waits for the first one's verdict
  request.backend = Backend::Native;
  return request;
}

Ext4ScanStats since(const Ext4ScanStats& before) {
  const Ext4ScanStats now = ext4_scan_stats();
  return Ext4ScanStats{now.run - before.run, now.reused - before.reused, now.seconds - before.seconds};
}

}  // namespace

TEST(BatchScan, ABatchScansItsGoldenOnceAndADifferentGoldenAgain) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  Ext4ScanStats before = ext4_scan_stats();
  BatchResult result = run_batch(three_devices(dir, golden, "out1"), {});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(since(before).run, 3u) << "p2, p3 in the base and p4 once";
  EXPECT_EQ(since(before).reused, 2u) << "p4 of the second and third device";
  for (const char* device : {"d1", "d2", "d3"}) {
    EXPECT_EQ(e2fsck(dir / ("out1/" + std::string(device) + ".img"), 4).status, 0) << device;
  }

  // The same golden, unchanged: nothing is scanned again.
  before = ext4_scan_stats();
  ASSERT_TRUE(run_batch(three_devices(dir, golden, "out2"), {}).ok());
  EXPECT_EQ(since(before).run, 0u);
  EXPECT_EQ(since(before).reused, 5u) << "p2, p3 of the base, p4 of three devices";

  // Another file with the same bytes is another golden: scanned again.
  const std::string other = dir / "other.img";
  std::filesystem::copy_file(golden, other);
  before = ext4_scan_stats();
  ASSERT_TRUE(run_batch(three_devices(dir, other, "out3"), {}).ok());
  EXPECT_EQ(since(before).run, 3u);
}

// The golden damaged in place after a clean batch (its inode bitmap hands out /lost+found's inode):
// the next batch does not trust the earlier verdict; it is refused, nothing written.
TEST(BatchScan, AGoldenRewrittenAfterACleanScanIsScannedAgainAndRefused) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  ASSERT_TRUE(run_batch(three_devices(dir, golden, "out1"), {}).ok());
  const CommandResult damaged = run({"debugfs", "-w", "-R", "freei <11>", ext_device(golden, 4)});
  ASSERT_EQ(damaged.err.find("while"), std::string::npos) << damaged.err;
  const Ext4ScanStats before = ext4_scan_stats();
  const BatchResult result = run_batch(three_devices(dir, golden, "out2"), {});
  EXPECT_FALSE(result.ok());
  ASSERT_FALSE(result.outcomes.empty());
  EXPECT_EQ(result.outcomes.front().status, DeviceStatus::Failed);
  EXPECT_NE(result.outcomes.front().message.find("data (p4): the filesystem is damaged: inode 11 is in use but marked free"),
            std::string::npos)
      << result.outcomes.front().message;
  EXPECT_GE(since(before).run, 3u) << "p2 and p3 again, and p4";
  EXPECT_FALSE(std::filesystem::exists(dir / "out2/d1.img"));
}
