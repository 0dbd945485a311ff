// Whole batches on several workers (the pool itself is tested in batch_pool_test.cpp). Run under
// ThreadSanitizer by scripts/sanitize.sh --tsan.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "imprint/batch/batch.hpp"
#include "imprint/image/image.hpp"
#include "imprint/stamp/device.hpp"
#include "imprint/stamp/stamp.hpp"
#include "support.hpp"

namespace imprint {
namespace {

// A real batch on two workers: four devices stamped from the fixture image at once, each output
// its own device's image (verified against its plan), every record in the manifest.
TEST(BatchThreads, FourDevicesOnTwoWorkersEachGetTheirOwnImage) {
  test::TempDir dir;
  test::write_file(dir / "profile.yaml",
                   "version: 1\nfiles:\n  - path: /data/mender/device-id\n    content: \"{{device_id}}\"\n    mode: \"0644\"\n"
                   "  - path: /etc/fleet\n    content: \"shared\"\n    mode: \"0644\"\n");
  test::write_file(dir / "devices.csv", "device_id\nd1\nd2\nd3\nd4\n");
  BatchRequest request;
  request.profile_path = dir / "profile.yaml";
  request.golden_path = test::fixture("mbr.img");
  request.devices_csv = dir / "devices.csv";
  request.output_directory = dir / "out";
  request.jobs = 2;
  request.backend = Backend::Native;
  std::size_t calls = 0;
  const BatchResult result = run_batch(request, [&](const DeviceOutcome&, std::size_t done, std::size_t total) {
    EXPECT_EQ(done, ++calls);  // serialized: done counts up by one
    EXPECT_EQ(total, 4u);
  });
  ASSERT_TRUE(result.ok()) << (result.outcomes.empty() ? "" : result.outcomes.front().message);
  EXPECT_EQ(result.count(DeviceStatus::Stamped), 4u);
  for (const std::string& id : std::vector<std::string>{"d1", "d2", "d3", "d4"}) {
    DiskImage image = DiskImage::open(dir / ("out/" + id + ".img"), OpenMode::ReadOnly, Backend::Native);
    EXPECT_EQ(read_all(image.filesystem(image.partition(Role::Data)), "/mender/device-id"), id);
    EXPECT_EQ(read_all(image.filesystem(image.partition(Role::Secondary)), "/etc/fleet"), "shared");
  }
  EXPECT_EQ(read_manifest(result.manifest_path, CutOff::Drop).size(), 4u);
}

}  // namespace
}  // namespace imprint
