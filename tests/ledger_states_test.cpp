// Every transition of a pool entry and every refusal, the same tests on both backends (a SQLite
// file, and a real PostgreSQL 15 server started for the suite).
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "imprint/core/error.hpp"
#include "ledger_support.hpp"

namespace imprint::test {
namespace {

class LedgerStates : public testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    location = fresh_location(GetParam(), dir);
    ledger = open_ledger(location, true);
  }
  ManifestRecord record_for(const std::string& id) {
    return {{"device_id", id}, {"credentials", {{"preauth", {{"identity_data", "{\"DeviceId\":\"" + id + "\"}"}, {"pubkey", "PEM"}}},
                                                {"enrollment", {{"registrationId", id}}}}},
            {"flash", {{"verified", true}, {"sha256", "ab"}}}};
  }
  CardIdentity card(const std::string& cid) { return {cid, "", "pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0", "/dev/sdx", 1u << 30}; }

  TempDir dir;
  std::string location;
  std::unique_ptr<Ledger> ledger;
};

TEST_P(LedgerStates, ImportKeepsCsvOrderAndSkipsIdenticalRows) {
  EXPECT_EQ(ledger->import_pool(pool_rows(3)), 3u);
  EXPECT_EQ(ledger->import_pool(pool_rows(5)), 2u);  // rows 1-3 again, identical: skipped
  const auto entries = ledger->entries();
  ASSERT_EQ(entries.size(), 5u);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].device_id, pool_rows(5)[i].at("device_id"));
    EXPECT_EQ(entries[i].position, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(entries[i].state, PoolState::Free);
    EXPECT_EQ(entries[i].variables, pool_rows(5)[i]);
    EXPECT_FALSE(entries[i].card);
  }
  const PoolCounts counts = ledger->counts();
  EXPECT_EQ(counts.free, 5u);
  EXPECT_EQ(counts.allocated + counts.flashed + counts.failed + counts.quarantined, 0u);
}

TEST_P(LedgerStates, ImportRefusesARowThatChangesAnEntry) {
  ledger->import_pool(pool_rows(3));
  auto rows = pool_rows(4);
  rows[1]["serial"] = "changed";
  const Error error = expect_error([&] { ledger->import_pool(rows); }, ErrorCode::Invalid);
  EXPECT_NE(std::string(error.what()).find("dev-002"), std::string::npos) << error.what();
  EXPECT_EQ(ledger->entries().size(), 3u);  // the whole import rolled back: dev-004 not added
  expect_error([&] { ledger->import_pool({{{"serial", "x"}}}); }, ErrorCode::Invalid);
}

TEST_P(LedgerStates, AllocateTakesTheLowestFreeEntryUntilThePoolIsExhausted) {
  ledger->import_pool(pool_rows(3));
  for (int i = 1; i <= 3; ++i) {
    const auto entry = ledger->allocate("station-a", "slot" + std::to_string(i), card("cid" + std::to_string(i)));
    ASSERT_TRUE(entry);
    EXPECT_EQ(entry->device_id, pool_rows(3)[i - 1].at("device_id"));
    EXPECT_EQ(entry->state, PoolState::Allocated);
    EXPECT_EQ(entry->station, "station-a");
    EXPECT_EQ(entry->slot, "slot" + std::to_string(i));
    ASSERT_TRUE(entry->card);
    EXPECT_EQ(entry->card->cid, "cid" + std::to_string(i));
    EXPECT_EQ(entry->card->size, 1u << 30);
    EXPECT_EQ(entry->variables.at("serial"), "SN100" + std::to_string(i));
    EXPECT_EQ(entry->updated_at.size(), 20u) << entry->updated_at;  // 2026-01-31T12:00:00Z
  }
  EXPECT_FALSE(ledger->allocate("station-a", "slot4", card("cid4")));  // pool exhausted
  EXPECT_EQ(ledger->counts().allocated, 3u);
  EXPECT_EQ(ledger->allocated_to("station-a").size(), 3u);
  EXPECT_TRUE(ledger->allocated_to("station-b").empty());
}

TEST_P(LedgerStates, AnEmptyPoolIsExhausted) { EXPECT_FALSE(ledger->allocate("s", "1", {})); }

TEST_P(LedgerStates, FlashedKeepsTheRecordAndTheCard) {
  ledger->import_pool(pool_rows(2));
  const auto entry = ledger->allocate("station-a", "1", card("c1"));
  ASSERT_TRUE(entry);
  ledger->mark_flashed(entry->device_id, record_for(entry->device_id));
  const PoolEntry flashed = ledger->entries().at(0);
  EXPECT_EQ(flashed.state, PoolState::Flashed);
  ASSERT_TRUE(flashed.record);
  EXPECT_EQ(*flashed.record, record_for(entry->device_id));
  ASSERT_TRUE(flashed.card);
  EXPECT_EQ(flashed.card->cid, "c1");
  EXPECT_EQ(flashed.station, "station-a");
  EXPECT_TRUE(ledger->allocated_to("station-a").empty());
  EXPECT_EQ(ledger->counts().flashed, 1u);
  // A flashed entry is final: no second record, no failure, no quarantine.
  expect_error([&] { ledger->mark_flashed(entry->device_id, record_for(entry->device_id)); }, ErrorCode::Invalid);
  expect_error([&] { ledger->mark_failed(entry->device_id, "x"); }, ErrorCode::Invalid);
  expect_error([&] { ledger->quarantine(entry->device_id, "x"); }, ErrorCode::Invalid);
  EXPECT_EQ(ledger->reissue_failed(), 0u);
  EXPECT_EQ(ledger->entries().at(0).state, PoolState::Flashed);
}

TEST_P(LedgerStates, OnlyAnAllocatedEntryChangesState) {
  ledger->import_pool(pool_rows(2));
  const Error free_error = expect_error([&] { ledger->mark_flashed("dev-001", record_for("dev-001")); }, ErrorCode::Invalid);
  EXPECT_NE(std::string(free_error.what()).find("dev-001 is free"), std::string::npos) << free_error.what();
  expect_error([&] { ledger->mark_failed("dev-001", "x"); }, ErrorCode::Invalid);
  expect_error([&] { ledger->quarantine("dev-001", "x"); }, ErrorCode::Invalid);
  const Error unknown = expect_error([&] { ledger->mark_failed("dev-999", "x"); }, ErrorCode::NotFound);
  EXPECT_NE(std::string(unknown.what()).find("dev-999"), std::string::npos) << unknown.what();
  EXPECT_EQ(ledger->counts().free, 2u);
}

TEST_P(LedgerStates, AFlashRecordMustBeTheDevicesOwn) {
  ledger->import_pool(pool_rows(2));
  const auto entry = ledger->allocate("s", "1", {});
  ASSERT_TRUE(entry);
  expect_error([&] { ledger->mark_flashed(entry->device_id, record_for("dev-002")); }, ErrorCode::Invalid);
  expect_error([&] { ledger->mark_flashed(entry->device_id, ManifestRecord::array()); }, ErrorCode::Invalid);
  EXPECT_EQ(ledger->entries().at(0).state, PoolState::Allocated);
}

TEST_P(LedgerStates, FailedStaysFailedUntilReissued) {
  ledger->import_pool(pool_rows(2));
  ASSERT_TRUE(ledger->allocate("s", "1", card("c1")));
  ledger->mark_failed("dev-001", "read-back mismatch at 4096");
  PoolEntry failed = ledger->entries().at(0);
  EXPECT_EQ(failed.state, PoolState::Failed);
  EXPECT_EQ(failed.reason, "read-back mismatch at 4096");
  ASSERT_TRUE(failed.card);
  EXPECT_EQ(failed.card->cid, "c1");
  // Not handed out again: the next allocation skips it.
  const auto next = ledger->allocate("s", "1", card("c2"));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->device_id, "dev-002");
  EXPECT_FALSE(ledger->allocate("s", "1", card("c3")));
  expect_error([&] { ledger->mark_flashed("dev-001", record_for("dev-001")); }, ErrorCode::Invalid);
  // The operator reissues it: free again, lowest position first.
  EXPECT_EQ(ledger->reissue_failed(), 1u);
  const PoolEntry reissued = ledger->entries().at(0);
  EXPECT_EQ(reissued.state, PoolState::Free);
  EXPECT_TRUE(reissued.station.empty());
  EXPECT_FALSE(reissued.card);
  const auto again = ledger->allocate("s", "2", card("c4"));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->device_id, "dev-001");
}

TEST_P(LedgerStates, HistoryKeepsEveryCardAnIdWentTo) {
  ledger->import_pool(pool_rows(2));
  EXPECT_TRUE(ledger->history("dev-001").empty());
  ASSERT_TRUE(ledger->allocate("a", "1", card("c1")));
  ledger->mark_failed("dev-001", "write error");
  ledger->reissue_failed();
  ASSERT_TRUE(ledger->allocate("b", "2", card("c2")));
  ledger->mark_flashed("dev-001", record_for("dev-001"));
  ASSERT_TRUE(ledger->allocate("a", "1", card("c3")));
  ledger->quarantine("dev-002", "card gone");
  const auto history = ledger->history("dev-001");
  ASSERT_EQ(history.size(), 5u);
  const std::vector<PoolState> states{PoolState::Allocated, PoolState::Failed, PoolState::Free, PoolState::Allocated, PoolState::Flashed};
  const std::vector<std::string> cards{"c1", "c1", "", "c2", "c2"};
  for (std::size_t i = 0; i < history.size(); ++i) {
    EXPECT_EQ(history[i].state, states[i]) << i;
    EXPECT_EQ(history[i].card ? history[i].card->cid : "", cards[i]) << i;
    EXPECT_EQ(history[i].device_id, "dev-001");
    EXPECT_FALSE(history[i].record);
  }
  EXPECT_EQ(history[1].reason, "write error");
  EXPECT_EQ(history[1].station, "a");
  EXPECT_EQ(history[2].reason, "reissued by the operator");
  EXPECT_EQ(history[3].station, "b");
  EXPECT_EQ(ledger->history("dev-002").back().state, PoolState::Quarantined);
  expect_error([&] { ledger->history("dev-999"); }, ErrorCode::NotFound);
}

TEST_P(LedgerStates, QuarantinedIsNeverReissued) {
  ledger->import_pool(pool_rows(1));
  ASSERT_TRUE(ledger->allocate("s", "1", card("c1")));
  ledger->quarantine("dev-001", "card gone after a crash");
  EXPECT_EQ(ledger->entries().at(0).state, PoolState::Quarantined);
  EXPECT_EQ(ledger->entries().at(0).reason, "card gone after a crash");
  EXPECT_EQ(ledger->reissue_failed(), 0u);
  EXPECT_FALSE(ledger->allocate("s", "1", {}));
  expect_error([&] { ledger->mark_flashed("dev-001", record_for("dev-001")); }, ErrorCode::Invalid);
  expect_error([&] { ledger->mark_failed("dev-001", "x"); }, ErrorCode::Invalid);
  EXPECT_EQ(ledger->counts().quarantined, 1u);
}

TEST_P(LedgerStates, AllocatedToNamesOnlyThatStationsOpenEntries) {
  ledger->import_pool(pool_rows(4));
  ASSERT_TRUE(ledger->allocate("a", "1", {}));
  ASSERT_TRUE(ledger->allocate("b", "1", {}));
  ASSERT_TRUE(ledger->allocate("a", "2", {}));
  ASSERT_TRUE(ledger->allocate("a", "3", {}));
  ledger->mark_failed("dev-003", "x");
  ledger->mark_flashed("dev-004", record_for("dev-004"));
  const auto open = ledger->allocated_to("a");
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].device_id, "dev-001");
  EXPECT_EQ(ledger->allocated_to("b").at(0).device_id, "dev-002");
  expect_error([&] { ledger->allocate("", "1", {}); }, ErrorCode::Invalid);
}

TEST_P(LedgerStates, StateSurvivesReopeningAndInitIsIdempotent) {
  ledger->import_pool(pool_rows(3));
  ASSERT_TRUE(ledger->allocate("s", "1", card("c1")));
  ledger.reset();
  auto reopened = open_ledger(location);
  EXPECT_EQ(reopened->counts().allocated, 1u);
  EXPECT_EQ(reopened->counts().free, 2u);
  auto again = open_ledger(location, true);  // init on an existing ledger changes nothing
  EXPECT_EQ(again->entries().size(), 3u);
  EXPECT_EQ(again->allocated_to("s").at(0).card->cid, "c1");
}

TEST_P(LedgerStates, ExportWritesTheRecordsOfFlashedDevices) {
  ledger->import_pool(pool_rows(3));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ledger->allocate("s", "1", {}));
  ledger->mark_flashed("dev-002", record_for("dev-002"));
  ledger->mark_failed("dev-001", "x");
  EXPECT_EQ(export_flashed(*ledger, dir / "out"), 1u);
  const auto records = read_manifest(dir / "out/manifest.jsonl");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0], record_for("dev-002"));
  EXPECT_EQ(ManifestRecord::parse(read_file(dir / "out/dev-002.preauth.json")), record_for("dev-002")["credentials"]["preauth"]);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "out/dev-002.enrollment.json"))["registrationId"], "dev-002");
  EXPECT_FALSE(std::filesystem::exists(dir / "out/dev-001.preauth.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "out/manifest.csv"));
}

TEST_P(LedgerStates, EntryJsonShowsWhereAnIdWent) {
  ledger->import_pool(pool_rows(2));
  ASSERT_TRUE(ledger->allocate("station-a", "slot2", card("c9")));
  const auto json = entry_json(ledger->entries().at(0));
  EXPECT_EQ(json["state"], "allocated");
  EXPECT_EQ(json["station"], "station-a");
  EXPECT_EQ(json["slot"], "slot2");
  EXPECT_EQ(json["card"]["cid"], "c9");
  EXPECT_FALSE(entry_json(ledger->entries().at(1)).contains("card"));
}

INSTANTIATE_TEST_SUITE_P(Backends, LedgerStates, testing::Values(Backend::Sqlite, Backend::Postgres), backend_name);

// Opening: the refusals name the path or URL, never a password.
TEST(LedgerOpen, AMissingSqliteLedgerIsNotFoundNamingThePath) {
  TempDir dir;
  const Error error = expect_error([&] { open_ledger(dir / "none.db"); }, ErrorCode::NotFound);
  EXPECT_NE(std::string(error.what()).find(dir / "none.db"), std::string::npos) << error.what();
  EXPECT_FALSE(std::filesystem::exists(dir / "none.db"));
}

TEST(LedgerOpen, AFileThatIsNoLedgerIsRefused) {
  TempDir dir;
  write_file(dir / "notes.txt", std::string(4096, 'x'));
  const Error error = expect_error([&] { open_ledger(dir / "notes.txt"); }, ErrorCode::Corrupt);
  EXPECT_NE(std::string(error.what()).find(dir / "notes.txt"), std::string::npos) << error.what();
  // A SQLite database without the ledger's tables.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "other.db").c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, "CREATE TABLE t (x)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  const Error other = expect_error([&] { open_ledger(dir / "other.db"); }, ErrorCode::Invalid);
  EXPECT_NE(std::string(other.what()).find("not an imprint ledger"), std::string::npos) << other.what();
  expect_error([&] { open_ledger(dir.path(), true); }, ErrorCode::IsDirectory);
  expect_error([&] { open_ledger(dir / "no/such/dir/l.db", true); }, ErrorCode::Invalid);
}

TEST(LedgerOpen, SqliteLedgerIsInWalMode) {
  TempDir dir;
  open_ledger(dir / "l.db", true)->import_pool(pool_rows(1));
  EXPECT_EQ(shell("sqlite3 " + dir / "l.db" + " 'PRAGMA journal_mode'"), "wal\n");
}

TEST(LedgerOpen, AnUnreachablePostgresUrlIsNamedWithoutItsPassword) {
  TempDir dir;
  const std::string url = "postgresql://op:s3cret@/factory?host=" + dir.path() + "&connect_timeout=2";
  const Error error = expect_error([&] { open_ledger(url); }, ErrorCode::NotFound);
  const std::string message = error.what();
  EXPECT_NE(message.find("postgresql://op:***@/factory?host=" + dir.path()), std::string::npos) << message;
  EXPECT_EQ(message.find("s3cret"), std::string::npos) << message;
}

TEST(LedgerOpen, AMissingPostgresLedgerIsRefusedUntilInit) {
  const std::string url = shared_postgres().create_database();
  const Error error = expect_error([&] { open_ledger(url); }, ErrorCode::Invalid);
  EXPECT_NE(std::string(error.what()).find("not an imprint ledger"), std::string::npos) << error.what();
  EXPECT_EQ(open_ledger(url, true)->counts().free, 0u);
}

TEST(LedgerOpen, RedactLocationHidesPasswords) {
  EXPECT_EQ(redact_location("postgresql://op:pw@db.local:5432/line"), "postgresql://op:***@db.local:5432/line");
  EXPECT_EQ(redact_location("postgres://op@db/line?password=pw&sslmode=require"), "postgres://op@db/line?password=***&sslmode=require");
  EXPECT_EQ(redact_location("postgresql://db/line"), "postgresql://db/line");
  EXPECT_EQ(redact_location("/var/lib/ledger:x@y.db"), "/var/lib/ledger:x@y.db");
}

}  // namespace
}  // namespace imprint::test

namespace imprint::test {
namespace {

// The test server itself: a socket in its own directory, no TCP, and nothing left after it.
TEST(PostgresServerSupport, ListensOnlyOnItsSocketAndLeavesNothingBehind) {
  std::string directory;
  pid_t postmaster = 0;
  {
    PostgresServer server;
    directory = server.directory();
    // postmaster.pid: pid, data dir, start time, port, socket dir, listen address, ...
    std::vector<std::string> lines;
    std::istringstream pid_file(read_file(directory + "/data/postmaster.pid"));
    for (std::string line; std::getline(pid_file, line);) lines.push_back(line);
    ASSERT_GE(lines.size(), 6u);
    postmaster = static_cast<pid_t>(std::stol(lines[0]));
    EXPECT_EQ(lines[4], directory);
    EXPECT_EQ(lines[5], "") << "the server listens on TCP";
    EXPECT_EQ(::kill(postmaster, 0), 0);
    EXPECT_NE(::geteuid() == 0 ? run({"stat", "-c", "%U", directory + "/data"}).out : "nobody\n", "root\n");
  }
  EXPECT_FALSE(std::filesystem::exists(directory));
  // Gone, or a zombie its new parent has not reaped yet (pg_ctl daemonized it): wait a little.
  const auto alive = [&] {
    std::ifstream stat("/proc/" + std::to_string(postmaster) + "/stat");
    std::string pid, name, state;
    return stat >> pid >> name >> state && state != "Z";
  };
  for (int i = 0; i < 50 && alive(); ++i) ::usleep(100'000);
  EXPECT_FALSE(alive()) << "the postmaster outlived its PostgresServer";
}

}  // namespace
}  // namespace imprint::test
