// The ledger over SQL (private to the ledger module): one implementation of Ledger, written once
// against a small session interface that each backend (SQLite, PostgreSQL) implements. The
// backends differ only in how a transaction starts and in the row-locking clauses they add.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "imprint/ledger/ledger.hpp"

namespace imprint::detail {

using SqlRow = std::vector<std::string>;  // every column as text; NULL as ""

// One connection to one ledger. Statements use $1, $2, ... for their parameters (text).
class SqlSession {
 public:
  virtual ~SqlSession() = default;
  // Runs body in one transaction and commits it; rolls back and rethrows when body throws.
  // write: the transaction changes state (SQLite takes the write lock up front: BEGIN IMMEDIATE).
  virtual void transaction(bool write, const std::function<void()>& body) = 0;
  virtual std::vector<SqlRow> query(const std::string& sql, const std::vector<std::string>& parameters = {}) = 0;
  // Appended to the SELECT that picks the next free row: PostgreSQL's " FOR UPDATE SKIP LOCKED",
  // so that concurrent stations take different rows without waiting; SQLite's write lock already
  // serializes.
  virtual std::string skip_locked() const = 0;
  // Appended to a SELECT of a row about to change: " FOR UPDATE" on PostgreSQL.
  virtual std::string lock_row() const = 0;
  // Run first in a transaction that adds rows or creates the schema (concurrent imports and inits
  // must not race on positions or on CREATE TABLE); empty when the write lock already does it.
  virtual std::string lock_pool() const = 0;
  virtual std::string location() const = 0;  // redacted
};

std::unique_ptr<SqlSession> open_sqlite(const std::string& path, bool init);
// Loads the PostgreSQL backend (imprint-postgres.so, next to the executable) on first use.
std::unique_ptr<SqlSession> open_postgres(const std::string& url, bool init);
std::unique_ptr<Ledger> make_sql_ledger(std::unique_ptr<SqlSession> session, bool init);

}  // namespace imprint::detail

// The PostgreSQL backend module's entry point (src/ledger/postgres/postgres.cpp): a new session on
// url, whose messages name it as `location` (redacted), or an Error. Both sides are built from this
// declaration, so the pointer open_postgres looks up has this type.
extern "C" imprint::detail::SqlSession* imprint_open_postgres(const std::string& url, const std::string& location,
                                                              bool init);
