// imprint ledger init|status|export|reissue-failed: the factory line's pool of device identities
// (the ledger module does the work). Each command's options live in one struct, owned by its
// callback.
#include <sys/stat.h>

#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "imprint/profile/csv.hpp"
#include "imprint/core/error.hpp"
#include "imprint/ledger/ledger.hpp"

namespace imprint::cli {

namespace {

constexpr const char* kLedgerHelp = "Ledger: a SQLite file, or postgresql://[USER[:PASSWORD]@][HOST][:PORT]/DATABASE[?...]";

std::string dump(const nlohmann::ordered_json& json) { return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

bool is_url(const std::string& location) { return location.find("://") != std::string::npos; }

// Registers a subcommand whose options struct lives as long as the app (its callback owns it).
template <typename Options>
void add_command(CLI::App* ledger, const char* name, const char* description) {
  auto options = std::make_shared<Options>();
  auto* command = ledger->add_subcommand(name, description);
  command->add_option("LEDGER", options->location, kLedgerHelp)->required();
  options->add_to(command);
  command->callback([options] { options->run(); });
}

struct InitOptions {
  std::string location, devices;
  void add_to(CLI::App* command) {
    command->add_option("--devices", devices, "Add the rows of this devices CSV (device_id, then template variables) to the pool");
  }
  void run() const {
    // The CSV first: a bad one leaves no ledger behind.
    std::vector<Variables> rows;
    if (!devices.empty()) {
      for (const DeviceRow& row : read_devices_csv(devices)) {
        Variables values = row.columns;
        values["device_id"] = row.device_id;
        rows.push_back(std::move(values));
      }
    }
    struct stat info {};
    const bool created = !is_url(location) && ::stat(location.c_str(), &info) != 0;
    std::size_t added = 0, total = 0;
    try {
      auto ledger = open_ledger(location, true);
      added = ledger->import_pool(rows);
      total = ledger->entries().size();
    } catch (...) {
      if (created) {
        for (const char* suffix : {"", "-wal", "-shm"}) std::remove((location + suffix).c_str());
      }
      throw;
    }
    write_stdout("ledger " + redact_location(location) + ": " + std::to_string(added) + " devices added, " + std::to_string(total) +
                 " in the pool\n");
  }
};

std::string describe_card(const CardIdentity& card) {
  std::string text = !card.cid.empty() ? "cid " + card.cid : !card.serial.empty() ? "serial " + card.serial : "path " + card.path;
  if (!card.devnode.empty()) text += " on " + card.devnode;
  if (card.size != 0) text += " (" + std::to_string(card.size) + " bytes)";
  return text;
}

struct StatusOptions {
  std::string location;
  bool json = false;
  void add_to(CLI::App* command) { command->add_flag("--json", json, "One JSON object on stdout"); }
  void run() const {
    auto ledger = open_ledger(location);
    const PoolCounts counts = ledger->counts();
    // Where the open cases are: allocated (in flight or to reconcile), failed, quarantined.
    std::vector<PoolEntry> open;
    for (PoolEntry& entry : ledger->entries()) {
      if (entry.state != PoolState::Free && entry.state != PoolState::Flashed) open.push_back(std::move(entry));
    }
    const std::size_t total = counts.free + counts.allocated + counts.flashed + counts.failed + counts.quarantined;
    if (json) {
      nlohmann::ordered_json out{{"ledger", ledger->location()},
                                 {"total", total},
                                 {"counts",
                                  {{"free", counts.free}, {"allocated", counts.allocated}, {"flashed", counts.flashed},
                                   {"failed", counts.failed}, {"quarantined", counts.quarantined}}},
                                 {"entries", nlohmann::ordered_json::array()}};
      for (const PoolEntry& entry : open) out["entries"].push_back(entry_json(entry));
      write_stdout(dump(out) + "\n");
      return;
    }
    std::string text = "ledger " + ledger->location() + ": " + std::to_string(total) + " devices: " + std::to_string(counts.free) + " free, " +
                       std::to_string(counts.allocated) + " allocated, " + std::to_string(counts.flashed) + " flashed, " +
                       std::to_string(counts.failed) + " failed, " + std::to_string(counts.quarantined) + " quarantined\n";
    for (const PoolEntry& entry : open) {
      text += to_string(entry.state) + " " + entry.device_id + " station " + entry.station + " slot " + entry.slot;
      if (entry.card) text += " card " + describe_card(*entry.card);
      if (!entry.reason.empty()) text += ": " + entry.reason;
      text += " (" + entry.updated_at + ")\n";
    }
    write_stdout(text);
  }
};

struct ExportOptions {
  std::string location, directory;
  bool force = false;
  void add_to(CLI::App* command) {
    command->add_option("-O,--output-dir", directory, "Write manifest.jsonl (and its CSV view), <id>.preauth.json, <id>.enrollment.json here")
        ->required();
    command->add_flag("--force", force, "Replace the files of an earlier export");
  }
  void run() const {
    auto ledger = open_ledger(location);
    const std::size_t count = export_flashed(*ledger, directory, force);
    write_stdout("ledger " + ledger->location() + ": " + std::to_string(count) + " flashed devices exported to " + directory + "\n");
  }
};

struct ReissueOptions {
  std::string location;
  void add_to(CLI::App*) {}
  void run() const {
    auto ledger = open_ledger(location);
    const std::size_t count = ledger->reissue_failed();
    write_stdout("ledger " + ledger->location() + ": " + std::to_string(count) + " failed devices are free again\n");
  }
};

}  // namespace

void add_ledger_commands(CLI::App& app) {
  auto* ledger = app.add_subcommand("ledger", "The factory line's pool of device identities (SQLite file or PostgreSQL)");
  ledger->require_subcommand(1);
  add_command<InitOptions>(ledger, "init", "Create the ledger (idempotent) and add a devices CSV to its pool");
  add_command<StatusOptions>(ledger, "status", "Counts per state, and the allocated, failed and quarantined devices");
  add_command<ExportOptions>(ledger, "export", "The manifest records, preauthorization bodies and DPS enrollments of the flashed devices");
  add_command<ReissueOptions>(ledger, "reissue-failed",
                              "Make failed devices free again (only when their cards were wiped or destroyed: a failed card may hold the key)");
}

}  // namespace imprint::cli
