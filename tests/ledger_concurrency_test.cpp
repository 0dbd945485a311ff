// Many processes, one pool: each child opens its own connection and allocates until the pool is
// exhausted. Every id must go to exactly one child, none may be lost, and a process killed with
// SIGKILL in the middle of a transaction must leave the ledger consistent. Same tests on SQLite and
// on a real PostgreSQL 15 server.
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <pqxx/pqxx>
#include <set>
#include <sstream>

#include "imprint/core/error.hpp"
#include "ledger_support.hpp"

namespace imprint::test {
namespace {

constexpr int kPool = 40;
constexpr int kChildren = 8;

struct Pipe {
  int read = -1, write = -1;
  Pipe() {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    read = fds[0];
    write = fds[1];
  }
  ~Pipe() {
    if (read >= 0) ::close(read);
    if (write >= 0) ::close(write);
  }
  void close_write() { ::close(write), write = -1; }
  void close_read() { ::close(read), read = -1; }
};

void write_line(int fd, const std::string& line) {
  const std::string bytes = line + "\n";
  if (::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) ::_exit(3);
}

// Reads lines until end of file (every writer closed) or until `lines` lines arrived.
std::vector<std::string> read_lines(int fd, std::size_t lines = SIZE_MAX) {
  std::vector<std::string> result;
  std::string pending;
  char buffer[4096];
  while (result.size() < lines) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    pending.append(buffer, static_cast<std::size_t>(n));
    for (std::size_t end; (end = pending.find('\n')) != std::string::npos;) {
      result.push_back(pending.substr(0, end));
      pending.erase(0, end + 1);
    }
  }
  return result;
}

// Forks a child running body (which must not return to gtest): exit 0 when body returns, 1 when it
// throws (the message on stderr).
template <typename Body>
pid_t fork_child(Body&& body) {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid > 0) return pid;
  try {
    body();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "child %d: %s\n", ::getpid(), error.what());
    ::_exit(1);
  }
  ::_exit(0);
}

int wait_exit(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class LedgerConcurrency : public testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    location = fresh_location(GetParam(), dir);
    open_ledger(location, true)->import_pool(pool_rows(kPool));  // closed again before any fork
  }
  TempDir dir;
  std::string location;
};

TEST_P(LedgerConcurrency, ManyProcessesAllocateEveryIdExactlyOnce) {
  Pipe start, report;
  std::vector<pid_t> children;
  for (int child = 0; child < kChildren; ++child) {
    children.push_back(fork_child([&, child] {
      start.close_write();
      report.close_read();
      const std::string station = "station-" + std::to_string(child);
      auto ledger = open_ledger(location);  // its own connection
      char go;
      if (::read(start.read, &go, 1) != 0) ::_exit(4);  // the barrier: all start together
      while (const auto entry = ledger->allocate(station, "slot", {"cid-" + station, "", "", "", 0})) {
        write_line(report.write, station + " " + entry->device_id);
        // Half the ids are recorded right away: transitions interleave with allocations.
        if (entry->position % 2 == 0) ledger->mark_flashed(entry->device_id, {{"device_id", entry->device_id}});
        // A station writes a card between two allocations. Without a pause, SQLite's busy handler
        // (which sleeps, then retries) lets one process take the write lock again and again.
        ::usleep(2000);
      }
      write_line(report.write, station + " exhausted");
    }));
  }
  start.close_write();  // releases the barrier
  report.close_write();
  const auto lines = read_lines(report.read);
  for (const pid_t pid : children) EXPECT_EQ(wait_exit(pid), 0);

  std::map<std::string, std::string> holder;  // device id -> station
  int exhausted = 0;
  for (const std::string& line : lines) {
    const std::string station = line.substr(0, line.find(' ')), what = line.substr(line.find(' ') + 1);
    if (what == "exhausted") {
      ++exhausted;
      continue;
    }
    EXPECT_TRUE(holder.emplace(what, station).second) << what << " allocated twice: " << holder[what] << " and " << station;
  }
  EXPECT_EQ(exhausted, kChildren);  // every child saw "pool exhausted"
  EXPECT_EQ(holder.size(), static_cast<std::size_t>(kPool));
  std::set<std::string> stations;
  for (const auto& [id, station] : holder) stations.insert(station);
  EXPECT_GT(stations.size(), 1u) << "one child took the whole pool: no contention was tested";

  auto ledger = open_ledger(location);
  for (const PoolEntry& entry : ledger->entries()) {
    EXPECT_EQ(entry.station, holder[entry.device_id]) << entry.device_id;
    EXPECT_EQ(entry.state, entry.position % 2 == 0 ? PoolState::Flashed : PoolState::Allocated) << entry.device_id;
  }
  const PoolCounts counts = ledger->counts();
  EXPECT_EQ(counts.free, 0u);
  EXPECT_EQ(counts.flashed + counts.allocated, static_cast<std::size_t>(kPool));
  EXPECT_FALSE(ledger->allocate("late", "slot", {}));
}

// A transaction that allocated dev-001 and never committed: the child holds it open (the write lock
// on SQLite, the row lock on PostgreSQL) and reports, then is killed.
void hold_uncommitted_allocation(Backend backend, const std::string& location, int report) {
  const std::string update = "UPDATE imprint_pool SET state = 'allocated', station = 'killed', slot = '1' WHERE device_id = 'dev-001'";
  if (backend == Backend::Sqlite) {
    sqlite3* db = nullptr;
    if (sqlite3_open(location.c_str(), &db) != SQLITE_OK) throw std::runtime_error("sqlite3_open failed");
    sqlite3_busy_timeout(db, 10000);
    for (const std::string& sql : {std::string("BEGIN IMMEDIATE"), update}) {
      if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) throw std::runtime_error(sqlite3_errmsg(db));
    }
    write_line(report, "holding");
    ::pause();
  }
  pqxx::connection connection(location);
  pqxx::work work(connection);
  work.exec("SELECT device_id FROM imprint_pool WHERE state = 'free' ORDER BY position LIMIT 1 FOR UPDATE SKIP LOCKED");
  work.exec(update);
  write_line(report, "holding");
  ::pause();
}

TEST_P(LedgerConcurrency, AProcessKilledMidTransactionLeavesNoTrace) {
  Pipe report;
  const pid_t child = fork_child([&] {
    report.close_read();
    hold_uncommitted_allocation(GetParam(), location, report.write);
  });
  report.close_write();
  ASSERT_EQ(read_lines(report.read, 1), std::vector<std::string>{"holding"});
  ::kill(child, SIGKILL);
  EXPECT_EQ(wait_exit(child), 128 + SIGKILL);
  if (GetParam() == Backend::Postgres) {
    // The server notices the closed socket and rolls back; wait (bounded) until the row lock is gone.
    pqxx::connection connection(location);
    pqxx::work work(connection);
    work.exec("SET LOCAL lock_timeout = '10s'");
    work.exec("SELECT device_id FROM imprint_pool WHERE device_id = 'dev-001' FOR UPDATE");
  }

  const auto started = std::chrono::steady_clock::now();
  auto ledger = open_ledger(location);
  EXPECT_EQ(ledger->counts().free, static_cast<std::size_t>(kPool));  // the allocation never happened
  const auto entry = ledger->allocate("next", "1", {});
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->device_id, "dev-001");  // the killed transaction's row is free and unlocked
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10)) << "the dead writer's lock was held";
  EXPECT_TRUE(ledger->allocated_to("killed").empty());
}

TEST_P(LedgerConcurrency, AStationKilledWhileAllocatingLosesNoIdAndDuplicatesNone) {
  // A pool the child cannot finish before the kill lands.
  constexpr int kBigPool = kPool + 400;
  open_ledger(location)->import_pool(pool_rows(kBigPool - kPool, kPool + 1));
  Pipe report;
  // The child allocates and records as fast as it can and reports each allocation after commit.
  const pid_t child = fork_child([&] {
    report.close_read();
    auto ledger = open_ledger(location);
    while (const auto entry = ledger->allocate("victim", "1", {})) {
      write_line(report.write, entry->device_id);
      ledger->mark_flashed(entry->device_id, {{"device_id", entry->device_id}});
    }
  });
  report.close_write();
  const auto before_kill = read_lines(report.read, 10);
  ASSERT_EQ(before_kill.size(), 10u);
  ::kill(child, SIGKILL);
  EXPECT_EQ(wait_exit(child), 128 + SIGKILL);
  const auto reported = read_lines(report.read);  // what it committed before dying

  auto ledger = open_ledger(location);
  std::set<std::string> victim;
  for (const PoolEntry& entry : ledger->entries()) {
    if (entry.station == "victim") victim.insert(entry.device_id);
  }
  // Every allocation it reported is in the ledger; at most one more (committed, not yet reported).
  for (const auto& list : {before_kill, reported}) {
    for (const std::string& id : list) EXPECT_TRUE(victim.count(id)) << id;
  }
  EXPECT_LE(victim.size(), before_kill.size() + reported.size() + 1);
  EXPECT_LE(ledger->allocated_to("victim").size(), 1u);  // the one in flight, for reconciliation
  // A new station takes the rest: no id the victim held comes back.
  std::size_t taken = 0;
  while (const auto entry = ledger->allocate("survivor", "1", {})) {
    EXPECT_FALSE(victim.count(entry->device_id)) << entry->device_id;
    ++taken;
  }
  EXPECT_EQ(taken + victim.size(), static_cast<std::size_t>(kBigPool));
  const PoolCounts counts = ledger->counts();
  EXPECT_EQ(counts.free, 0u);
  EXPECT_EQ(counts.allocated + counts.flashed, static_cast<std::size_t>(kBigPool));
}

INSTANTIATE_TEST_SUITE_P(Backends, LedgerConcurrency, testing::Values(Backend::Sqlite, Backend::Postgres), backend_name);

}  // namespace
}  // namespace imprint::test
