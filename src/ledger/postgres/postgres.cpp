// The PostgreSQL backend, for several stations on one line: each state change is one transaction;
// the next free row is taken with SELECT ... FOR UPDATE SKIP LOCKED, so concurrent stations pick
// different rows without waiting on each other, and a station that dies mid-transaction loses its
// connection, which rolls the transaction back and releases its row lock.
//
// Built as a module of its own (imprint-postgres.so, loaded by src/ledger/postgres_module.cpp when a
// postgres:// ledger is opened): libpqxx and libpq pull ~28 shared libraries (Kerberos, LDAP,
// GnuTLS...) that every other command would load at start. It uses nothing of imprint's that is
// not in a header (Error, SqlSession): the executable exports no symbols to it.
#include <optional>

#include <pqxx/pqxx>

#include "imprint/core/error.hpp"
#include "../sql.hpp"

namespace imprint::detail {

namespace {

class PostgresSession final : public SqlSession {
 public:
  PostgresSession(const std::string& url, const std::string& location, bool init) : location_(location) {
    try {
      connection_.emplace(url);
      // CREATE ... IF NOT EXISTS and friends send NOTICEs, which libpqxx prints to stderr.
      pqxx::nontransaction quiet(*connection_);
      quiet.exec("SET client_min_messages TO warning");
    } catch (const std::exception& error) {
      // libpq's messages name host and database, never the password.
      throw Error("cannot " + std::string(init ? "create" : "open") + " ledger " + location_ + ": " + one_line(error.what()),
                  ErrorCode::NotFound);
    }
  }

  void transaction(bool, const std::function<void()>& body) override {
    try {
      pqxx::work work(*connection_);
      current_ = &work;
      body();
      current_ = nullptr;
      work.commit();
    } catch (const pqxx::failure& error) {
      current_ = nullptr;
      throw Error("ledger " + location_ + ": " + one_line(error.what()));
    } catch (...) {
      current_ = nullptr;  // pqxx::work's destructor rolled back
      throw;
    }
  }

  std::vector<SqlRow> query(const std::string& sql, const std::vector<std::string>& parameters = {}) override {
    if (current_ == nullptr) throw Error("ledger " + location_ + ": a statement outside a transaction");
    const pqxx::result result = current_->exec_params(sql, pqxx::prepare::make_dynamic_params(parameters));
    std::vector<SqlRow> rows;
    for (const auto& row : result) {
      SqlRow& out = rows.emplace_back();
      for (const auto& field : row) out.emplace_back(field.is_null() ? std::string() : std::string(field.c_str(), field.size()));
    }
    return rows;
  }

  std::string skip_locked() const override { return " FOR UPDATE SKIP LOCKED"; }
  std::string lock_row() const override { return " FOR UPDATE"; }
  // Imports and CREATE TABLE IF NOT EXISTS race between sessions: one at a time (allocations,
  // which take ROW EXCLUSIVE, are not blocked by anything weaker than SHARE).
  std::string lock_pool() const override { return "SELECT pg_advisory_xact_lock(1769367156)"; }
  std::string location() const override { return location_; }

 private:
  static std::string one_line(std::string text) {
    // libpq's messages span lines, with tabs: one line, single spaces.
    std::string line;
    for (const char c : text) {
      const bool space = c == '\n' || c == '\t' || c == ' ';
      if (space && (line.empty() || line.back() == ' ')) continue;
      line += space ? ' ' : c;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return line;
  }

  std::string location_;
  std::optional<pqxx::connection> connection_;
  pqxx::work* current_ = nullptr;
};

}  // namespace

}  // namespace imprint::detail

extern "C" imprint::detail::SqlSession* imprint_open_postgres(const std::string& url, const std::string& location, bool init) {
  return new imprint::detail::PostgresSession(url, location, init);
}
