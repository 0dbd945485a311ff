// The batch's worker pool (batch/pool.hpp) on its own, and a whole batch on two threads. Run under
// ThreadSanitizer by scripts/sanitize.sh --tsan: the finish step touches shared state without a lock
// of its own, the tasks run at once, and a race there is a report.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "imprint/batch/batch.hpp"
#include "imprint/batch/pool.hpp"
#include "imprint/stamp/device.hpp"
#include "imprint/image/image.hpp"
#include "imprint/stamp/stamp.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using namespace std::chrono_literals;

TEST(BatchPool, EveryTaskRunsOnceWithTasksInParallelAndFinishesOneAtATime) {
  constexpr std::size_t kTasks = 64;
  std::vector<int> ran(kTasks, 0);  // each task writes only its own slot
  std::vector<std::thread::id> thread_of(kTasks);
  std::atomic<int> running{0};
  std::atomic<int> most_at_once{0};
  std::vector<std::size_t> finished;  // only finish touches it: the pool's lock guards it
  const bool completed = run_pool(
      kTasks, 4,
      [&](std::size_t task) {
        const int now = ++running;
        for (int seen = most_at_once; now > seen && !most_at_once.compare_exchange_weak(seen, now);) {
        }
        ++ran[task];
        thread_of[task] = std::this_thread::get_id();
        std::this_thread::sleep_for(2ms);
        --running;
      },
      [&](std::size_t task) {
        finished.push_back(task);
        EXPECT_EQ(ran[task], 1);  // the same worker, right after the task
        return true;
      });
  EXPECT_TRUE(completed);
  EXPECT_EQ(ran, std::vector<int>(kTasks, 1));
  EXPECT_EQ(finished.size(), kTasks);
  EXPECT_EQ(std::set<std::size_t>(finished.begin(), finished.end()).size(), kTasks);
  EXPECT_GE(most_at_once.load(), 2);
  EXPECT_LE(most_at_once.load(), 4);
  EXPECT_GE(std::set<std::thread::id>(thread_of.begin(), thread_of.end()).size(), 2u);
}

TEST(BatchPool, FinishReturningFalseStopsTasksThatHaveNotStarted) {
  std::vector<std::size_t> started;
  std::mutex mutex;
  const bool completed = run_pool(
      20, 1,
      [&](std::size_t task) {
        const std::lock_guard lock(mutex);
        started.push_back(task);
      },
      [&](std::size_t task) { return task != 3; });
  EXPECT_FALSE(completed);
  EXPECT_EQ(started, (std::vector<std::size_t>{0, 1, 2, 3}));  // one worker: in order, none after 3
  // The last task stopping the pool still says so.
  EXPECT_FALSE(run_pool(2, 1, [](std::size_t) {}, [](std::size_t task) { return task != 1; }));
  EXPECT_TRUE(run_pool(0, 3, [](std::size_t) { FAIL(); }, [](std::size_t) { return true; }));
}

TEST(BatchPool, AnExceptionStopsThePoolAndReachesTheCallerAfterEveryWorkerIsDone) {
  std::atomic<int> running{0};
  std::atomic<int> started{0};
  try {
    run_pool(
        50, 3,
        [&](std::size_t task) {
          ++started;
          ++running;
          std::this_thread::sleep_for(1ms);
          --running;
          if (task == 5) throw std::runtime_error("task 5 failed");
        },
        [](std::size_t) { return true; });
    FAIL() << "the exception was lost";
  } catch (const std::runtime_error& error) {
    EXPECT_STREQ(error.what(), "task 5 failed");
  }
  EXPECT_EQ(running.load(), 0);  // no worker still inside a task when the caller sees the error
  EXPECT_LT(started.load(), 50);
  // From finish, too.
  EXPECT_THROW(run_pool(
                   10, 2, [](std::size_t) {}, [](std::size_t task) -> bool { throw std::logic_error(std::to_string(task)); }),
               std::logic_error);
}

TEST(BatchPool, ZeroJobsMeansOnePerCoreButNeverMoreThreadsThanTasks) {
  EXPECT_EQ(pool_jobs(3), 3u);
  EXPECT_EQ(pool_jobs(0), std::max(1u, std::thread::hardware_concurrency()));
  std::set<std::thread::id> threads;
  run_pool(1, 8, [&](std::size_t) { threads.insert(std::this_thread::get_id()); }, [](std::size_t) { return true; });
  EXPECT_EQ(threads.size(), 1u);
}

// A real batch on two workers: four devices stamped from the fixture image at once, each output
// its own device's image (verified against its plan), every record in the manifest.
TEST(BatchPool, FourDevicesOnTwoWorkersEachGetTheirOwnImage) {
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
