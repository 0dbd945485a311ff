// Faults inside a running batch: whatever fails in a worker thread comes back to the caller as an
// error (an exception escaping a std::thread is std::terminate, exit 134).
#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>

#include "imprint/batch/batch.hpp"
#include "imprint/core/error.hpp"
#include "support.hpp"

using namespace imprint;
using imprint::test::TempDir;
using imprint::test::fixture;
using imprint::test::write_file;

namespace {

BatchRequest three_devices(const TempDir& dir) {
  write_file(dir / "profile.yaml", "version: 1\nfiles:\n  - path: /data/mender/device-id\n    content: \"{{device_id}}\"\n    mode: \"0644\"\n");
  write_file(dir / "devices.csv", "device_id\nd1\nd2\nd3\n");
  BatchRequest request;
  request.profile_path = dir / "profile.yaml";
  request.golden_path = fixture("mbr.img");
  request.devices_csv = dir / "devices.csv";
  request.output_directory = dir / "out";
  request.jobs = 1;  // devices in CSV order
  request.backend = Backend::Native;
  return request;
}

}  // namespace

// The manifest cannot be appended after the first device (its name became a directory): the device
// fails cleanly, its image is withdrawn (no image without a record), and the batch stops.
TEST(BatchFaults, AManifestWriteErrorFailsTheDeviceAndRemovesItsImage) {
  TempDir dir;
  const BatchRequest request = three_devices(dir);
  const std::string manifest = dir / "out/manifest.jsonl";
  std::vector<DeviceOutcome> seen;
  const BatchResult result = run_batch(request, [&](const DeviceOutcome& outcome, std::size_t, std::size_t) {
    seen.push_back(outcome);
    if (seen.size() == 1) {
      std::filesystem::remove(manifest);
      std::filesystem::create_directory(manifest);
    } else {
      std::filesystem::remove(manifest);  // let the final compaction write a manifest again
    }
  });
  ASSERT_EQ(seen.size(), 2u) << "the batch did not stop at the failed device";
  EXPECT_EQ(seen[0].status, DeviceStatus::Stamped);
  EXPECT_EQ(seen[1].status, DeviceStatus::Failed);
  EXPECT_NE(seen[1].message.find("device d2: cannot open the manifest " + manifest), std::string::npos) << seen[1].message;
  EXPECT_NE(seen[1].message.find("(its image was removed)"), std::string::npos) << seen[1].message;
  EXPECT_TRUE(result.aborted);
  EXPECT_TRUE(std::filesystem::exists(dir / "out/d1.img"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out/d2.img"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out/d3.img"));
}

// The observer (the CLI's printing: stdout may be a closed pipe) throws in a worker thread.
TEST(BatchFaults, AnExceptionInTheObserverReachesTheCallerInsteadOfTerminating) {
  TempDir dir;
  const BatchRequest request = three_devices(dir);
  int calls = 0;
  try {
    run_batch(request, [&](const DeviceOutcome&, std::size_t, std::size_t) {
      ++calls;
      throw std::runtime_error("cannot write to standard output");
    });
    FAIL() << "the observer's exception was lost";
  } catch (const std::runtime_error& error) {
    EXPECT_STREQ(error.what(), "cannot write to standard output");
  }
  EXPECT_EQ(calls, 1) << "the batch went on after the observer failed";
  EXPECT_TRUE(std::filesystem::exists(dir / "out/d1.img"));  // its record was written before the observer ran
  EXPECT_FALSE(std::filesystem::exists(dir / "out/d2.img"));
}
