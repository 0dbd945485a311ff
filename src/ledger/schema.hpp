// The ledger's schema: the one copy both backends run. Every statement is in the SQL that SQLite
// (3.35+) and PostgreSQL (9.5+) both accept: TEXT and BIGINT columns, CHECK constraints,
// IF NOT EXISTS, ON CONFLICT DO NOTHING. JSON (variables, card, record) is stored as TEXT so that
// neither dialect's JSON type is needed; timestamps are written by the ledger (UTC, ISO 8601).
#pragma once

#include <array>

namespace imprint::detail {

inline constexpr const char* kSchemaVersion = "1";

inline constexpr std::array<const char*, 5> kSchema{
    "CREATE TABLE IF NOT EXISTS imprint_ledger (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)",
    // One row per pool entry. station/slot/card say where an allocated id went and stay with it
    // when it is flashed, failed or quarantined; a free row has none.
    "CREATE TABLE IF NOT EXISTS imprint_pool ("
    " position BIGINT NOT NULL PRIMARY KEY,"
    " device_id TEXT NOT NULL UNIQUE,"
    " variables TEXT NOT NULL,"
    " state TEXT NOT NULL DEFAULT 'free'"
    "  CHECK (state IN ('free', 'allocated', 'flashed', 'failed', 'quarantined')),"
    " station TEXT NOT NULL DEFAULT '',"
    " slot TEXT NOT NULL DEFAULT '',"
    " card TEXT NOT NULL DEFAULT '',"
    " record TEXT NOT NULL DEFAULT '',"
    " reason TEXT NOT NULL DEFAULT '',"
    " updated_at TEXT NOT NULL,"
    " CHECK ((state = 'free') = (station = '')),"
    " CHECK ((state = 'flashed') = (record <> '')))",
    "CREATE INDEX IF NOT EXISTS imprint_pool_state ON imprint_pool (state, position)",
    // Every state a row entered, written in the transaction that changed it: which cards held an
    // id, also after a failed one was reissued (that card may still hold the key).
    "CREATE TABLE IF NOT EXISTS imprint_history ("
    " device_id TEXT NOT NULL,"
    " seq BIGINT NOT NULL,"
    " state TEXT NOT NULL,"
    " station TEXT NOT NULL,"
    " slot TEXT NOT NULL,"
    " card TEXT NOT NULL,"
    " reason TEXT NOT NULL,"
    " at TEXT NOT NULL,"
    " PRIMARY KEY (device_id, seq))",
    "INSERT INTO imprint_ledger (key, value) VALUES ('schema', '1') ON CONFLICT (key) DO NOTHING",
};

}  // namespace imprint::detail
