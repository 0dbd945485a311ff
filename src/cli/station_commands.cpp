// imprint station: the factory line's card writer (the station module does the work). Without a
// view on a TTY, every card's result is one line on stdout and notes and failures go to stderr.
#include <chrono>
#include <memory>

#include "common.hpp"
#include "imprint/error.hpp"
#include "imprint/station/signals.hpp"
#include "imprint/station/station.hpp"

namespace imprint::cli {

namespace {

// After Ctrl-C, how long the cards in flight get to finish before they are marked failed.
constexpr std::chrono::seconds kDefaultStopTimeout{120};

// The options of one `imprint station` command line, bound to CLI11 and kept alive by its callback.
struct StationCommand {
  StationOptions options;
  VariableOptions variables;
  BackendOption backend;
  long stop_timeout = kDefaultStopTimeout.count();

  void add_to(CLI::App* command) {
    command->add_option("-p,--profile", options.profile_path, "Profile (YAML)")->required();
    command->add_option("-i,--input", options.golden_path, "Golden image (raw or compressed; decompressed once; never modified)")->required();
    command->add_option("--devices", options.devices_csv, "Devices CSV: its rows join the ledger's pool (rows already there are kept)")->required();
    command->add_option("--ledger", options.ledger, "Ledger: a SQLite file or postgresql://... (imprint ledger init creates it)")->required();
    command->add_option("--target", options.targets, "A slot: a card reader's whole-disk device, written once (repeatable)");
    command->add_flag("--watch", options.watch, "Also make a slot of every removable disk that gets a card after the start");
    command->add_option("--watch-match", options.watch_match,
                        "With --watch: only disks whose node, ID_SERIAL, ID_PATH or loop backing file matches this glob");
    command->add_option("-j,--jobs", options.jobs, "Cards written at once (default: one per slot)");
    command->add_option("--station", options.station, "This station's name in the ledger (default: the host name; unique per station)");
    command->add_flag("--reissue-failed", options.reissue_failed, "Put failed ids back in the pool first (their cards must be destroyed)");
    command->add_flag("--allow-nonremovable", options.allow_nonremovable,
                      "Test/lab: write non-removable disks too (loop devices standing in for cards)");
    command->add_option("--stop-timeout", stop_timeout, "Seconds the cards in flight get after Ctrl-C before they are marked failed");
    variables.add_to(command);
    backend.add_to(command);
  }

  void run() {
    options.backend = backend.get();
    options.overrides = variables.collect();
    StationHooks hooks;
    hooks.note = [](const std::string& line) { print_error(line); };
    hooks.card_done = [](const CardResult& card) {
      for (const std::string& warning : card.warnings) warn(card.target + ": " + warning);
      if (card.outcome == CardOutcome::Flashed) write_stdout(card.message + "\n");
      else print_error(card.message);
      std::fflush(stdout);
    };
    Station station(options, hooks);
    StationReport report;
    int signal_number = 0;
    {
      StationSignals signals(station, std::chrono::seconds(stop_timeout));
      report = station.run();
      signal_number = signals.received();
    }
    std::size_t flashed = 0;
    for (const CardResult& card : report.cards) flashed += card.outcome == CardOutcome::Flashed ? 1 : 0;
    const std::string summary = std::to_string(flashed) + " of " + std::to_string(report.cards.size()) + " card(s) flashed; pool: " +
                                std::to_string(report.pool.free) + " free, " + std::to_string(report.pool.flashed) + " flashed, " +
                                std::to_string(report.pool.failed) + " failed, " + std::to_string(report.pool.quarantined) + " quarantined";
    // With --watch a signal is how the station ends; without, it cut the run short.
    if (signal_number != 0 && !options.watch) throw Error("station stopped by signal " + std::to_string(signal_number) + ": " + summary);
    if (!report.ok()) throw Error("station: " + summary);
    write_stdout("station: " + summary + "\n");
  }
};

}  // namespace

void add_station_commands(CLI::App& app) {
  auto* command = app.add_subcommand("station", "Factory line: write a different device onto every card, each id exactly once");
  auto station = std::make_shared<StationCommand>();
  station->add_to(command);
  command->callback([station] { station->run(); });
}

}  // namespace imprint::cli
