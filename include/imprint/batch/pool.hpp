// The batch's worker pool: tasks 0..count-1 on a few threads, each task once, started in index
// order. Kept apart from the batch so its concurrency is tested on its own (and under TSan:
// scripts/sanitize.sh --tsan).
#pragma once

#include <cstddef>
#include <functional>

namespace imprint {

// Runs every task on up to `jobs` threads (0: one per core; never more threads than tasks).
// run(i) runs on a worker, in parallel with other tasks; finish(i) runs on the same worker right
// after it, under the pool's lock (one finish at a time: it may update shared state), and returns
// false to stop the pool: tasks not started by then never start. An exception from run or finish
// stops the pool too; the first one is rethrown once every worker has finished its task (an
// exception escaping a std::thread would be std::terminate). Returns false when the pool was stopped.
bool run_pool(std::size_t count, unsigned jobs, const std::function<void(std::size_t)>& run,
              const std::function<bool(std::size_t)>& finish);

// jobs, or the number of cores when jobs is 0 (at least 1).
unsigned pool_jobs(unsigned jobs);

}  // namespace imprint
