// imprint ledger init|status|export|reissue-failed, end to end through the executable, on a SQLite
// file (states set with the sqlite3 tool, an independent writer) and on a real PostgreSQL 15 server.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "support.hpp"
#include "support/postgres.hpp"

using namespace imprint::test;
using nlohmann::json;

namespace {

const char* kDevices = "device_id,serial\ndev-001,SN1\ndev-002,SN2\ndev-003,\"S,N3\"\n";

// Runs SQL on a SQLite ledger with the sqlite3 tool.
void sqlite(const std::string& ledger, const std::string& sql) {
  const CommandResult result = run({"sqlite3", ledger, sql});
  ASSERT_EQ(result.status, 0) << "sqlite3 (scripts/setup.sh installs it): " << result.err;
}

class CliLedger : public testing::Test {
 protected:
  void SetUp() override {
    write_file(dir / "devices.csv", kDevices);
    const CommandResult init = run_imprint({"ledger", "init", ledger, "--devices", dir / "devices.csv"});
    ASSERT_EQ(init.status, 0) << init.err;
    EXPECT_EQ(init.out, "ledger " + ledger + ": 3 devices added, 3 in the pool\n");
  }
  TempDir dir;
  std::string ledger = dir / "line.db";
};

TEST_F(CliLedger, InitIsIdempotentAndAddsNewRows) {
  CommandResult again = run_imprint({"ledger", "init", ledger, "--devices", dir / "devices.csv"});
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(again.out, "ledger " + ledger + ": 0 devices added, 3 in the pool\n");
  write_file(dir / "more.csv", std::string(kDevices) + "dev-004,SN4\n");
  again = run_imprint({"ledger", "init", ledger, "--devices", dir / "more.csv"});
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(again.out, "ledger " + ledger + ": 1 devices added, 4 in the pool\n");
  // The CSV's quoted comma arrived intact.
  EXPECT_EQ(run({"sqlite3", ledger, "SELECT variables FROM imprint_pool WHERE device_id = 'dev-003'"}).out,
            "{\"device_id\":\"dev-003\",\"serial\":\"S,N3\"}\n");
}

TEST_F(CliLedger, InitRefusesARowThatChangesAPoolEntry) {
  write_file(dir / "changed.csv", "device_id,serial\ndev-002,OTHER\ndev-009,SN9\n");
  const CommandResult result = run_imprint({"ledger", "init", ledger, "--devices", dir / "changed.csv"});
  EXPECT_EQ(result.status, 1);
  EXPECT_EQ(result.err, "imprint: ledger " + ledger + ": device dev-002 is already in the pool with other values\n");
  EXPECT_EQ(run({"sqlite3", ledger, "SELECT COUNT(*) FROM imprint_pool"}).out, "3\n");  // dev-009 not added either
}

TEST_F(CliLedger, ABadCsvLeavesNoLedgerBehind) {
  write_file(dir / "bad.csv", "serial\nSN1\n");
  const CommandResult result = run_imprint({"ledger", "init", dir / "new.db", "--devices", dir / "bad.csv"});
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.err.find(dir / "bad.csv"), std::string::npos) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "new.db"));
}

TEST_F(CliLedger, AMissingLedgerIsNamed) {
  const CommandResult result = run_imprint({"ledger", "status", dir / "none.db"});
  EXPECT_EQ(result.status, 1);
  EXPECT_EQ(result.err, "imprint: ledger " + dir / "none.db" + " does not exist (create it with `imprint ledger init " + dir / "none.db" + "`)\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "none.db"));
}

TEST_F(CliLedger, StatusShowsCountsAndWhereOpenIdsWent) {
  sqlite(ledger,
         "UPDATE imprint_pool SET state = 'allocated', station = 'st1', slot = 'sdb', "
         "card = '{\"cid\":\"0353445352333247\",\"serial\":\"\",\"path\":\"\",\"devnode\":\"/dev/sdb\",\"size\":31914983424}', "
         "updated_at = '2026-01-31T12:00:00Z' WHERE device_id = 'dev-001';"
         "UPDATE imprint_pool SET state = 'failed', station = 'st1', slot = 'sdc', reason = 'read-back mismatch', "
         "updated_at = '2026-01-31T12:01:00Z' WHERE device_id = 'dev-002'");
  CommandResult status = run_imprint({"ledger", "status", ledger});
  ASSERT_EQ(status.status, 0) << status.err;
  EXPECT_EQ(status.out, "ledger " + ledger + ": 3 devices: 1 free, 1 allocated, 0 flashed, 1 failed, 0 quarantined\n"
                        "allocated dev-001 station st1 slot sdb card cid 0353445352333247 on /dev/sdb (31914983424 bytes) (2026-01-31T12:00:00Z)\n"
                        "failed dev-002 station st1 slot sdc: read-back mismatch (2026-01-31T12:01:00Z)\n");
  status = run_imprint({"ledger", "status", ledger, "--json"});
  ASSERT_EQ(status.status, 0) << status.err;
  const json out = json::parse(status.out);
  EXPECT_EQ(out["total"], 3);
  EXPECT_EQ(out["counts"]["free"], 1);
  EXPECT_EQ(out["counts"]["allocated"], 1);
  EXPECT_EQ(out["counts"]["failed"], 1);
  ASSERT_EQ(out["entries"].size(), 2u);
  EXPECT_EQ(out["entries"][0]["card"]["cid"], "0353445352333247");
  EXPECT_EQ(out["entries"][1]["reason"], "read-back mismatch");
}

TEST_F(CliLedger, ExportWritesManifestPreauthAndEnrollmentOfFlashedDevices) {
  const json record = {{"device_id", "dev-003"},
                       {"credentials", {{"preauth", {{"identity_data", "{\"DeviceId\":\"dev-003\"}"}, {"pubkey", "PEM"}}},
                                        {"enrollment", {{"registrationId", "dev-003"}}}}},
                       {"files", json::array()}};
  sqlite(ledger, "UPDATE imprint_pool SET state = 'flashed', station = 'st1', slot = 'sdb', record = '" + record.dump() +
                     "' WHERE device_id = 'dev-003'");
  const CommandResult result = run_imprint({"ledger", "export", ledger, "-O", dir / "out"});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(result.out, "ledger " + ledger + ": 1 flashed devices exported to " + dir / "out" + "\n");
  EXPECT_EQ(json::parse(read_file(dir / "out/manifest.jsonl")), record);
  EXPECT_EQ(json::parse(read_file(dir / "out/dev-003.preauth.json")), record["credentials"]["preauth"]);
  EXPECT_EQ(json::parse(read_file(dir / "out/dev-003.enrollment.json")), record["credentials"]["enrollment"]);
  EXPECT_TRUE(std::filesystem::exists(dir / "out/manifest.csv"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out/dev-001.preauth.json"));
}

TEST_F(CliLedger, ReissueFailedFreesOnlyFailedDevices) {
  sqlite(ledger, "UPDATE imprint_pool SET state = 'failed', station = 's', reason = 'x' WHERE device_id = 'dev-001';"
                 "UPDATE imprint_pool SET state = 'quarantined', station = 's', reason = 'y' WHERE device_id = 'dev-002'");
  const CommandResult result = run_imprint({"ledger", "reissue-failed", ledger});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(result.out, "ledger " + ledger + ": 1 failed devices are free again\n");
  EXPECT_EQ(run({"sqlite3", ledger, "SELECT device_id, state FROM imprint_pool ORDER BY position"}).out,
            "dev-001|free\ndev-002|quarantined\ndev-003|free\n");
}

TEST(CliLedgerPostgres, InitAndStatusOnARealServerNeverPrintThePassword) {
  PostgresServer server;
  const std::string url = server.create_database();  // postgresql:///test1?host=...&user=imprint
  // Trust authentication ignores the password, so a URL with one works and must never be printed.
  const std::string with_password = "postgresql://imprint:hunter2@/test1?host=" + server.directory();
  TempDir dir;
  write_file(dir / "devices.csv", kDevices);
  const CommandResult init = run_imprint({"ledger", "init", with_password, "--devices", dir / "devices.csv"});
  ASSERT_EQ(init.status, 0) << init.err;
  EXPECT_EQ(init.out, "ledger postgresql://imprint:***@/test1?host=" + server.directory() + ": 3 devices added, 3 in the pool\n");
  const CommandResult status = run_imprint({"ledger", "status", url, "--json"});
  ASSERT_EQ(status.status, 0) << status.err;
  EXPECT_EQ(json::parse(status.out)["counts"]["free"], 3);
  // A database without the ledger, and a server that is not there.
  const CommandResult missing = run_imprint({"ledger", "status", server.url("postgres")});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("is not an imprint ledger"), std::string::npos) << missing.err;
  const std::string nowhere = "postgresql://imprint:hunter2@/test1?host=" + dir.path();
  const CommandResult unreachable = run_imprint({"ledger", "status", nowhere});
  EXPECT_EQ(unreachable.status, 1);
  EXPECT_EQ(unreachable.err.rfind("imprint: cannot open ledger postgresql://imprint:***@/test1?host=" + dir.path() + ": ", 0), 0u)
      << unreachable.err;
  EXPECT_EQ(unreachable.err.find("hunter2"), std::string::npos) << unreachable.err;
  EXPECT_EQ(std::count(unreachable.err.begin(), unreachable.err.end(), '\n'), 1) << unreachable.err;
}

}  // namespace
