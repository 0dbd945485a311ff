// What the ledger tests share: a fresh, empty ledger location per test on each backend (a SQLite
// file in a temp directory, or a fresh database on a PostgreSQL 15 server started for the suite),
// and a small devices pool.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "imprint/ledger/ledger.hpp"
#include "support.hpp"
#include "support/postgres.hpp"

namespace imprint::test {

enum class Backend { Sqlite, Postgres };

inline std::string backend_name(const testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::Sqlite ? "SQLite" : "PostgreSQL";
}

// One server for all the PostgreSQL cases of a test binary, stopped at exit (destructor).
inline PostgresServer& shared_postgres() {
  static PostgresServer server;
  return server;
}

// A fresh ledger location for this test: path or URL (not yet initialized).
inline std::string fresh_location(Backend backend, const TempDir& dir) {
  return backend == Backend::Sqlite ? dir / "ledger.db" : shared_postgres().create_database();
}

inline std::vector<Variables> pool_rows(int count, int first = 1) {
  std::vector<Variables> rows;
  for (int i = first; i < first + count; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "dev-%03d", i);
    rows.push_back({{"device_id", id}, {"serial", "SN" + std::to_string(1000 + i)}});
  }
  return rows;
}

}  // namespace imprint::test
