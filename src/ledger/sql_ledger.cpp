// Ledger over a SqlSession: every state change is one transaction whose WHERE clause names the
// state it leaves, so a row can move only along free -> allocated -> flashed | failed |
// quarantined (and failed -> free when the operator reissues).
#include <ctime>
#include <mutex>

#include <nlohmann/json.hpp>

#include "imprint/core/error.hpp"
#include "schema.hpp"
#include "sql.hpp"

namespace imprint::detail {

namespace {

constexpr const char* kColumns = "device_id, position, variables, state, station, slot, card, record, reason, updated_at";

std::string now_utc() {
  const std::time_t seconds = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

PoolState parse_state(const std::string& text, const std::string& location) {
  for (const PoolState state : {PoolState::Free, PoolState::Allocated, PoolState::Flashed, PoolState::Failed, PoolState::Quarantined}) {
    if (to_string(state) == text) return state;
  }
  throw Error("ledger " + location + ": unknown state '" + text + "'", ErrorCode::Corrupt);
}

std::string card_text(const CardIdentity& card) {
  const nlohmann::ordered_json json{{"cid", card.cid}, {"serial", card.serial}, {"path", card.path}, {"devnode", card.devnode}, {"size", card.size}};
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

CardIdentity parse_card(const nlohmann::json& json) {
  return {json.value("cid", ""), json.value("serial", ""), json.value("path", ""), json.value("devnode", ""), json.value("size", std::uint64_t{0})};
}

// CSV values are arbitrary bytes; JSON wants UTF-8. Refuse rather than store a replacement.
std::string variables_text(const Variables& variables, const std::string& device_id) {
  try {
    return nlohmann::json(variables).dump();
  } catch (const nlohmann::json::exception&) {
    throw Error("device " + device_id + ": a value is not valid UTF-8; the ledger stores values as JSON", ErrorCode::Invalid);
  }
}

class SqlLedger final : public Ledger {
 public:
  SqlLedger(std::unique_ptr<SqlSession> session, bool init) : db_(std::move(session)) {
    if (init) create_schema();
    check_schema();
  }

  std::size_t import_pool(const std::vector<Variables>& rows) override {
    std::size_t added = 0;
    write([&] {
      if (const std::string lock = db_->lock_pool(); !lock.empty()) db_->query(lock);
      std::int64_t next = std::stoll(db_->query("SELECT COALESCE(MAX(position), 0) FROM imprint_pool").at(0).at(0)) + 1;
      for (const Variables& row : rows) {
        const auto id = row.find("device_id");
        if (id == row.end() || id->second.empty()) throw Error("ledger " + location() + ": a pool row has no device_id", ErrorCode::Invalid);
        const std::string values = variables_text(row, id->second);
        const auto existing = db_->query("SELECT variables FROM imprint_pool WHERE device_id = $1", {id->second});
        if (!existing.empty()) {
          if (existing[0][0] != values) {
            throw Error("ledger " + location() + ": device " + id->second + " is already in the pool with other values", ErrorCode::Invalid);
          }
          continue;
        }
        db_->query("INSERT INTO imprint_pool (position, device_id, variables, updated_at) VALUES ($1, $2, $3, $4)",
                   {std::to_string(next++), id->second, values, now_utc()});
        ++added;
      }
    });
    return added;
  }

  std::optional<PoolEntry> allocate(const std::string& station, const std::string& slot, const CardIdentity& card) override {
    if (station.empty()) throw Error("ledger " + location() + ": allocation without a station name", ErrorCode::Invalid);
    std::optional<PoolEntry> entry;
    write([&] {
      const auto next = db_->query("SELECT device_id FROM imprint_pool WHERE state = 'free' ORDER BY position LIMIT 1" + db_->skip_locked());
      if (next.empty()) return;
      const auto rows = db_->query(std::string("UPDATE imprint_pool SET state = 'allocated', station = $1, slot = $2, card = $3, reason = '', "
                                               "updated_at = $4 WHERE device_id = $5 AND state = 'free' RETURNING ") + kColumns,
                                   {station, slot, card_text(card), now_utc(), next[0][0]});
      if (rows.size() != 1) throw Error("ledger " + location() + ": device " + next[0][0] + " changed while being allocated");
      entry = parse_entry(rows[0]);
      remember(entry->device_id);
    });
    return entry;
  }

  void mark_flashed(const std::string& device_id, const ManifestRecord& record) override {
    if (!record.is_object() || record.value("device_id", ManifestRecord()) != device_id) {
      throw Error("ledger " + location() + ": the flash record for " + device_id + " is not that device's", ErrorCode::Invalid);
    }
    leave_allocated(device_id, PoolState::Flashed, record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "");
  }
  void mark_failed(const std::string& device_id, const std::string& reason) override {
    leave_allocated(device_id, PoolState::Failed, "", reason);
  }
  void quarantine(const std::string& device_id, const std::string& reason) override {
    leave_allocated(device_id, PoolState::Quarantined, "", reason);
  }

  std::size_t reissue_failed() override {
    std::size_t count = 0;
    write([&] {
      const auto reissued = db_->query("UPDATE imprint_pool SET state = 'free', station = '', slot = '', card = '', "
                                       "reason = 'reissued by the operator', updated_at = $1 WHERE state = 'failed' RETURNING device_id",
                                       {now_utc()});
      for (const SqlRow& row : reissued) remember(row.at(0));
      count = reissued.size();
    });
    return count;
  }

  std::vector<PoolEntry> allocated_to(const std::string& station) override {
    return select(" WHERE state = 'allocated' AND station = $1", {station});
  }

  std::vector<PoolEntry> history(const std::string& device_id) override {
    std::vector<PoolEntry> result;
    read([&] {
      const auto pool = db_->query("SELECT position, variables FROM imprint_pool WHERE device_id = $1", {device_id});
      if (pool.empty()) throw Error("ledger " + location() + ": no device " + device_id + " in the pool", ErrorCode::NotFound);
      for (const SqlRow& row : db_->query("SELECT state, station, slot, card, reason, at FROM imprint_history WHERE device_id = $1 ORDER BY seq",
                                          {device_id})) {
        result.push_back(parse_entry({device_id, pool[0][0], pool[0][1], row.at(0), row.at(1), row.at(2), row.at(3), "", row.at(4), row.at(5)}));
      }
    });
    return result;
  }

  PoolCounts counts() override {
    PoolCounts counts;
    read([&] {
      for (const SqlRow& row : db_->query("SELECT state, COUNT(*) FROM imprint_pool GROUP BY state")) {
        const std::size_t n = std::stoull(row.at(1));
        switch (parse_state(row.at(0), location())) {
          case PoolState::Free: counts.free = n; break;
          case PoolState::Allocated: counts.allocated = n; break;
          case PoolState::Flashed: counts.flashed = n; break;
          case PoolState::Failed: counts.failed = n; break;
          case PoolState::Quarantined: counts.quarantined = n; break;
        }
      }
    });
    return counts;
  }

  std::vector<PoolEntry> entries() override { return select("", {}); }

  std::string location() const override { return db_->location(); }

 private:
  // One Ledger may serve several slots (threads): one statement sequence at a time on its session.
  template <typename Body>
  void write(Body&& body) {
    const std::lock_guard lock(mutex_);
    db_->transaction(true, body);
  }
  template <typename Body>
  void read(Body&& body) {
    const std::lock_guard lock(mutex_);
    db_->transaction(false, body);
  }

  void create_schema() {
    write([&] {
      if (const std::string lock = db_->lock_pool(); !lock.empty()) db_->query(lock);
      for (const char* statement : kSchema) db_->query(statement);
    });
  }

  void check_schema() {
    std::string version;
    try {
      read([&] { version = db_->query("SELECT value FROM imprint_ledger WHERE key = 'schema'").at(0).at(0); });
    } catch (const std::exception&) {
      throw Error("ledger " + location() + " is not an imprint ledger (create one with `imprint ledger init`)", ErrorCode::Invalid);
    }
    if (version != kSchemaVersion) {
      throw Error("ledger " + location() + " has schema version " + version + ", this imprint reads version " + kSchemaVersion,
                  ErrorCode::Unsupported);
    }
  }

  void leave_allocated(const std::string& device_id, PoolState to, const std::string& record, const std::string& reason) {
    write([&] {
      const auto rows = db_->query("SELECT state FROM imprint_pool WHERE device_id = $1" + db_->lock_row(), {device_id});
      if (rows.empty()) throw Error("ledger " + location() + ": no device " + device_id + " in the pool", ErrorCode::NotFound);
      if (rows[0][0] != "allocated") {
        throw Error("ledger " + location() + ": device " + device_id + " is " + rows[0][0] + ", not allocated; it cannot become " + to_string(to),
                    ErrorCode::Invalid);
      }
      db_->query("UPDATE imprint_pool SET state = $1, record = $2, reason = $3, updated_at = $4 WHERE device_id = $5 AND state = 'allocated'",
                 {to_string(to), record, reason, now_utc(), device_id});
      remember(device_id);
    });
  }

  // Appends the row's current state to its history (inside the caller's transaction, which holds
  // the row: the sequence number cannot race).
  void remember(const std::string& device_id) {
    db_->query("INSERT INTO imprint_history (device_id, seq, state, station, slot, card, reason, at) "
               "SELECT device_id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM imprint_history WHERE device_id = $1), "
               "state, station, slot, card, reason, updated_at FROM imprint_pool WHERE device_id = $1",
               {device_id});
  }

  std::vector<PoolEntry> select(const std::string& where, const std::vector<std::string>& parameters) {
    std::vector<PoolEntry> result;
    read([&] {
      for (const SqlRow& row : db_->query(std::string("SELECT ") + kColumns + " FROM imprint_pool" + where + " ORDER BY position", parameters)) {
        result.push_back(parse_entry(row));
      }
    });
    return result;
  }

  PoolEntry parse_entry(const SqlRow& row) const {
    PoolEntry entry;
    try {
      entry.device_id = row.at(0);
      entry.position = std::stoll(row.at(1));
      entry.variables = nlohmann::json::parse(row.at(2)).get<Variables>();
      entry.state = parse_state(row.at(3), location());
      entry.station = row.at(4);
      entry.slot = row.at(5);
      if (!row.at(6).empty()) entry.card = parse_card(nlohmann::json::parse(row.at(6)));
      if (!row.at(7).empty()) entry.record = ManifestRecord::parse(row.at(7));
      entry.reason = row.at(8);
      entry.updated_at = row.at(9);
    } catch (const nlohmann::json::exception& error) {
      throw Error("ledger " + location() + ": device " + entry.device_id + ": damaged row: " + error.what(), ErrorCode::Corrupt);
    }
    return entry;
  }

  std::unique_ptr<SqlSession> db_;
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<Ledger> make_sql_ledger(std::unique_ptr<SqlSession> session, bool init) {
  return std::make_unique<SqlLedger>(std::move(session), init);
}

}  // namespace imprint::detail
