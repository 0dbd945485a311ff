// station: the factory line's card writer. Each slot (a card reader: a --target, or with --watch a
// removable disk that appears after the start) takes one card at a time through
//   allocate the next id in the ledger (committed before a byte is written) -> stamp on the fly ->
//   write -> read back -> record (flashed with the flash record and the card's identity) -> free
// with one writer thread per card (flash(), stamp mode, on a golden decompressed once and shared).
//
// Reconciliation at start: an id this station left "allocated" (a crash, kill -9) was bound to one
// card. When that card is in a slot now (known by an identity that is the card's own: its SD CID,
// or a loop device's backing file) the same id is stamped and written onto it again, verified and
// recorded; the slot has done its card. Otherwise the id is quarantined: the card may hold its key,
// and a card known only by its reader (USB ID_SERIAL / ID_PATH) may have been swapped.
//
// Stopping (stop(), the CLI's Ctrl-C / SIGTERM): no new card is started, the cards in flight are
// finished and recorded; abandon() (a second signal or the stop timeout) marks the ones still in
// flight failed, so the ledger holds no "allocated" entry of this run.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "imprint/image/image.hpp"
#include "imprint/ledger/ledger.hpp"
#include "imprint/batch/manifest.hpp"
#include "imprint/station/status.hpp"
#include "imprint/profile/template.hpp"

namespace imprint {

struct StationOptions {
  std::string profile_path;
  std::string golden_path;  // raw or compressed (decompressed once into an unnamed temp file)
  std::string devices_csv;  // its rows are added to the ledger's pool (rows already there are kept)
  std::string ledger;       // a SQLite file, or postgresql://...
  std::vector<std::string> targets;  // slots named at start; each takes one card
  bool watch = false;                // also: removable disks appearing after the start become slots
  std::string watch_match;           // --watch: only devices whose node, ID_SERIAL, ID_PATH or loop
                                     // backing file matches this glob (empty: every eligible disk)
  std::size_t jobs = 0;              // cards written at once; 0 = one per slot
  std::string station;               // the station's name in the ledger (default: the host name)
  bool reissue_failed = false;       // failed ids go back to the pool first
  bool allow_nonremovable = false;   // test/lab: non-removable disks (loop devices) are eligible
  Variables overrides;               // --set: under every row's own columns
  Backend backend = Backend::Auto;
};

enum class CardOutcome { Flashed, Failed, PoolExhausted, Refused, Skipped };
std::string to_string(CardOutcome outcome);

struct CardResult {
  std::string slot;
  std::string target;
  std::string device_id;  // empty when no id was allocated
  CardOutcome outcome = CardOutcome::Skipped;
  bool reconciled = false;  // an id left allocated by a crash, written again onto its own card
  std::string message;      // the one line saying what happened
  ManifestRecord record;    // the flash record (with "card", "station", "slot") of a flashed card
  std::vector<std::string> warnings;
};

struct StationHooks {
  std::function<void()> changed;                      // the status changed (a view redraws)
  std::function<void(const CardResult&)> card_done;  // a card is finished (labels, log lines)
  std::function<void(const std::string&)> note;      // reconciliation and other one-line notes
};

struct StationReport {
  std::vector<CardResult> cards;
  std::vector<std::string> notes;
  PoolCounts pool;
  bool ok() const;  // every card flashed
};

// The station's name when --station is not given: the host name.
std::string default_station_name();

// The identity of the card in a block device (CID, else udev ID_SERIAL / ID_PATH, else a loop
// device's backing file as its serial "loop:PATH"; devnode, size).
CardIdentity card_identity(const std::string& devnode);
// Is this identity the card's own (CID or a loop device's backing file), rather than its reader's?
bool identifies_the_card(const CardIdentity& card);
bool same_card(const CardIdentity& a, const CardIdentity& b);
nlohmann::ordered_json to_json(const CardIdentity& card);

class Station {
 public:
  Station(StationOptions options, StationHooks hooks = {});
  ~Station();
  Station(const Station&) = delete;
  Station& operator=(const Station&) = delete;

  // Opens the ledger, fills the pool, reconciles, then works the slots: without watch until every
  // named target had its card, with watch until stop(). Throws Error for bad input before any card.
  StationReport run();

  void stop();     // no new card; the cards in flight finish
  void abandon();  // the cards still in flight are marked failed in the ledger now
  bool stopping() const;
  StationStatus snapshot() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace imprint
