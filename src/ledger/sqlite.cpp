// The SQLite backend: one file, WAL (readers never block the writer, a crash leaves the last
// committed state), synchronous=FULL (a committed allocation survives power loss: the card may
// already hold the key), a busy timeout so concurrent slots and stations wait for the write lock
// instead of failing, and BEGIN IMMEDIATE for every state change (the write lock is taken before
// the free row is read, so two writers never pick the same row).
#include <sqlite3.h>
#include <sys/stat.h>

#include "imprint/core/error.hpp"
#include "sql.hpp"

namespace imprint::detail {

namespace {

constexpr int kBusyTimeoutMs = 60'000;

class SqliteSession final : public SqlSession {
 public:
  SqliteSession(const std::string& path, bool init) : path_(path) {
    struct stat info {};
    if (!init && ::stat(path.c_str(), &info) != 0) {
      throw Error("ledger " + path + " does not exist (create it with `imprint ledger init " + path + "`)", ErrorCode::NotFound);
    }
    if (::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
      throw Error("ledger " + path + " is a directory", ErrorCode::IsDirectory);
    }
    const int flags = SQLITE_OPEN_READWRITE | (init ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
    if (const int status = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr); status != SQLITE_OK) {
      const std::string why = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(status);
      sqlite3_close(db_);
      throw Error("cannot open ledger " + path + ": " + why, ErrorCode::Invalid);
    }
    try {
      sqlite3_busy_timeout(db_, kBusyTimeoutMs);
      const auto mode = query("PRAGMA journal_mode = WAL");
      if (mode.empty() || mode[0][0] != "wal") throw Error("cannot open ledger " + path + ": it refuses WAL mode");
      query("PRAGMA synchronous = FULL");
    } catch (...) {
      sqlite3_close(db_);
      throw;
    }
  }
  ~SqliteSession() override { sqlite3_close(db_); }
  SqliteSession(const SqliteSession&) = delete;
  SqliteSession& operator=(const SqliteSession&) = delete;

  void transaction(bool write, const std::function<void()>& body) override {
    query(write ? "BEGIN IMMEDIATE" : "BEGIN");
    try {
      body();
      query("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  std::vector<SqlRow> query(const std::string& sql, const std::vector<std::string>& parameters = {}) override {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &statement, nullptr) != SQLITE_OK) fail();
    std::vector<SqlRow> rows;
    try {
      for (std::size_t i = 0; i < parameters.size(); ++i) {
        // $N is a named parameter to SQLite, numbered in order of first appearance: bind by name.
        const int index = sqlite3_bind_parameter_index(statement, ("$" + std::to_string(i + 1)).c_str());
        if (index == 0) continue;
        if (sqlite3_bind_text(statement, index, parameters[i].data(), static_cast<int>(parameters[i].size()), SQLITE_TRANSIENT) != SQLITE_OK) fail();
      }
      int status;
      while ((status = sqlite3_step(statement)) == SQLITE_ROW) {
        SqlRow& row = rows.emplace_back();
        for (int column = 0; column < sqlite3_column_count(statement); ++column) {
          const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement, column));
          row.emplace_back(text ? std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(statement, column))) : std::string());
        }
      }
      if (status != SQLITE_DONE) fail();
    } catch (...) {
      sqlite3_finalize(statement);
      throw;
    }
    sqlite3_finalize(statement);
    return rows;
  }

  std::string skip_locked() const override { return ""; }
  std::string lock_row() const override { return ""; }
  std::string lock_pool() const override { return ""; }
  std::string location() const override { return path_; }

 private:
  [[noreturn]] void fail() const {
    const int code = sqlite3_errcode(db_);
    throw Error("ledger " + path_ + ": " + sqlite3_errmsg(db_),
                code == SQLITE_NOTADB || code == SQLITE_CORRUPT ? ErrorCode::Corrupt : ErrorCode::Generic);
  }

  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace

std::unique_ptr<SqlSession> open_sqlite(const std::string& path, bool init) { return std::make_unique<SqliteSession>(path, init); }

}  // namespace imprint::detail
