// ledger: the factory line's pool of device identities, each handed out to at most one card.
//
// A row of the devices CSV is a pool entry. Its life: free -> allocated(station, slot, card) ->
// flashed | failed. An allocation is committed before a byte goes to the card, so a crash between
// allocation and record leaves "allocated", which the station reconciles on its next start (the
// card re-verified if it is still in its slot, else the id is quarantined: never silently reused).
// A failed id (the card may still hold its key) stays failed unless the operator reissues it.
//
// Two backends with one schema and one behaviour: SQLite (a file; WAL, BEGIN IMMEDIATE) for one
// station, PostgreSQL (postgresql://...; row locks with SKIP LOCKED) for several stations on a line.
// Every state change is one transaction, so two stations (or two slots) never get the same row.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "imprint/batch/manifest.hpp"
#include "imprint/profile/template.hpp"

namespace imprint {

enum class PoolState { Free, Allocated, Flashed, Failed, Quarantined };
std::string to_string(PoolState state);

// What identifies the physical card: the SD CID (/sys/block/mmcblkN/device/cid) where the kernel
// exposes it, else the reader's udev ID_SERIAL / ID_PATH; plus the device node and size then.
struct CardIdentity {
  std::string cid;
  std::string serial;
  std::string path;
  std::string devnode;
  std::uint64_t size = 0;
};

struct PoolEntry {
  std::string device_id;
  std::int64_t position = 0;  // the row's place in the pool: allocation takes the lowest free one
  Variables variables;        // the CSV row (device_id included)
  PoolState state = PoolState::Free;
  std::string station;
  std::string slot;
  std::optional<CardIdentity> card;
  std::optional<ManifestRecord> record;  // the flash record of a flashed card
  std::string reason;                    // why failed / quarantined
  std::string updated_at;                // UTC, ISO 8601
};

struct PoolCounts {
  std::size_t free = 0, allocated = 0, flashed = 0, failed = 0, quarantined = 0;
};

// One connection per Ledger. A Ledger may be shared by a station's slots (threads): its calls run
// one at a time. Processes (stations) each open their own.
class Ledger {
 public:
  virtual ~Ledger() = default;

  // Adds the rows of a devices CSV to the pool in order. A row already in the pool with the same
  // values is skipped; one whose values differ is Error(Invalid) naming the device id. Returns
  // how many rows were added.
  virtual std::size_t import_pool(const std::vector<Variables>& rows) = 0;

  // One transaction: the lowest free entry becomes allocated(station, slot, card). nullopt when
  // the pool has no free entry ("pool exhausted").
  virtual std::optional<PoolEntry> allocate(const std::string& station, const std::string& slot,
                                            const CardIdentity& card) = 0;

  // allocated -> flashed / failed / quarantined. Error(Invalid) when the entry is not allocated,
  // Error(NotFound) when the pool has no such device id. mark_flashed also refuses (Invalid) a
  // record whose "device_id" is not device_id. The record is what `imprint ledger export` writes
  // out: the manifest record (src/batch/record.cpp: credentials.preauth is the Mender
  // preauthorization body), plus the DPS enrollment, if any, as credentials.enrollment (an object).
  virtual void mark_flashed(const std::string& device_id, const ManifestRecord& record) = 0;
  virtual void mark_failed(const std::string& device_id, const std::string& reason) = 0;
  virtual void quarantine(const std::string& device_id, const std::string& reason) = 0;

  // failed -> free, for the operator's --reissue-failed. Returns how many.
  virtual std::size_t reissue_failed() = 0;

  // The entries a station left allocated (its crash or kill), for reconciliation at its start.
  virtual std::vector<PoolEntry> allocated_to(const std::string& station) = 0;

  // Every state an entry went through since it was imported, oldest first: each allocation,
  // flash, failure, quarantine and reissue, with the station, slot and card of the moment (a
  // reissued id keeps the card that failed with it). The record is not repeated.
  virtual std::vector<PoolEntry> history(const std::string& device_id) = 0;

  virtual PoolCounts counts() = 0;
  virtual std::vector<PoolEntry> entries() = 0;  // the whole pool, by position

  // Where the ledger is, for messages: the path, or the URL without its password.
  virtual std::string location() const = 0;
};

// "postgresql://..." or "postgres://..." opens PostgreSQL; anything else is a SQLite file path.
// init creates the schema (idempotent). Without it, a missing SQLite file is Error(NotFound) and a
// database without the ledger's tables Error(Invalid); an unreachable server is Error(NotFound).
// A ledger that cannot be opened or created is an Error naming the path or URL (its password
// replaced by "***").
std::unique_ptr<Ledger> open_ledger(const std::string& location, bool init = false);

// The URL with its password (user:PASSWORD@ or password=...) replaced by "***"; paths unchanged.
std::string redact_location(const std::string& location);

// An entry as JSON (status --json, the station's status page): device_id, position, state, and
// station, slot, card, reason, updated_at where set. Neither the variables nor the record.
nlohmann::ordered_json entry_json(const PoolEntry& entry);

// `imprint ledger export`: into directory (created when missing) manifest.jsonl (the record of
// every flashed entry, by device_id, with its CSV view) and, per flashed device,
// <id>.preauth.json and <id>.enrollment.json where its record holds them. Returns how many
// devices. Files are written atomically; any of them existing already is refused (Error(Exists),
// nothing written) unless force.
std::size_t export_flashed(Ledger& ledger, const std::string& directory, bool force = false);

}  // namespace imprint
