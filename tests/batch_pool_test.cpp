// The batch's worker pool (batch/pool.hpp) on its own: every task once, in parallel, one finish at a
// time, stops and exceptions. This file needs nothing but the pool, so it is built twice: as a
// module test, and with ThreadSanitizer as batch_pool_tsan_test (CMakeLists.txt), which every ctest
// run includes: the finish step touches shared state without a lock of its own, the tasks run at
// once, and a race there is a report that fails the test.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "imprint/batch/pool.hpp"

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

}  // namespace
}  // namespace imprint
