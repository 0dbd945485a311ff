// The worker pool of a batch: an atomic next-task counter, a stop flag, one lock for finishing.
#include "imprint/batch/pool.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace imprint {

unsigned pool_jobs(unsigned jobs) { return jobs != 0 ? jobs : std::max(1u, std::thread::hardware_concurrency()); }

bool run_pool(std::size_t count, unsigned jobs, const std::function<void(std::size_t)>& run,
              const std::function<bool(std::size_t)>& finish) {
  std::atomic<std::size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;
  const auto worker = [&] {
    for (;;) {
      const std::size_t task = next++;
      if (task >= count || stop) return;
      run(task);
      const std::lock_guard lock(mutex);
      if (!finish(task)) stop = true;
    }
  };
  std::exception_ptr escaped;
  const auto guarded = [&] {
    try {
      worker();
    } catch (...) {
      const std::lock_guard lock(mutex);
      if (!escaped) escaped = std::current_exception();
      stop = true;
    }
  };
  std::vector<std::thread> threads;
  const unsigned threads_wanted = std::min<unsigned>(pool_jobs(jobs), static_cast<unsigned>(std::max<std::size_t>(1, count)));
  for (unsigned i = 0; i < threads_wanted; ++i) threads.emplace_back(guarded);
  for (auto& thread : threads) thread.join();
  if (escaped) std::rethrow_exception(escaped);
  return !stop;
}

}  // namespace imprint
