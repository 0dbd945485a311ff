// station status: what a running station shows its operator. The station (station.cpp) keeps one
// StationStatus up to date under a mutex and hands out copies (snapshots); the views render a
// snapshot and never touch the station: the TTY view (one live line per slot plus totals), the
// HTTP status page and GET /api/status (read-only; no write action over HTTP).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace imprint {

enum class SlotPhase { Idle, Allocating, Stamping, Writing, Verifying, Recording, Done, Failed };
std::string to_string(SlotPhase phase);
// Working on a card: neither idle nor showing a finished card's result.
bool is_busy(SlotPhase phase);

struct SlotStatus {
  std::string slot;       // the slot's name (the target's device node, or its udev path)
  std::string target;     // the device node being written
  std::string device_id;  // empty while idle
  SlotPhase phase = SlotPhase::Idle;
  std::uint64_t bytes_done = 0;
  std::uint64_t bytes_total = 0;
  double mib_per_s = 0;
  std::string result;  // the last result of this slot: "flashed DEV", or the failure's one line
  bool result_failed = false;  // result is a failure (the views show it in red, else green)
};

struct StationStatus {
  std::string station;  // the station's name (--station, default the host name)
  std::vector<SlotStatus> slots;
  std::size_t flashed = 0;   // this run
  std::size_t failed = 0;    // this run
  std::size_t pool_left = 0; // free entries in the ledger's pool
  // One line per finished card, newest first, a few lines: the views show them, and the plain
  // (non-TTY) log prints each new one once, counting them by `results` (by flashed + failed while
  // results stays 0).
  std::vector<std::string> last_results;
  std::size_t results = 0;  // lines ever added to last_results: increment with each one
};

// The body of GET /api/status: the fields above under their own names, phase as to_string. Device
// ids are untrusted bytes: dump it with nlohmann::json::error_handler_t::replace.
nlohmann::json to_json(const StationStatus& status);

// How far the slot's card is, 0 to 1: 1 once done, bytes_done of bytes_total while busy with a
// known total; nullopt otherwise (idle, failed, or nothing measured yet).
std::optional<double> progress(const SlotStatus& slot);

}  // namespace imprint
