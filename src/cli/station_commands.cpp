// imprint station: the factory line's card writer (the station module does the work). The
// operator's view goes to stderr (live lines on a terminal, else a plain log); each card's result is
// also one line on stdout when stdout is not a terminal (a script's record of the run).
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>

#include "common.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/station/http_view.hpp"
#include "imprint/station/label.hpp"
#include "imprint/station/signals.hpp"
#include "imprint/station/station.hpp"
#include "imprint/station/tty_view.hpp"

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
  std::string labels, label_cmd, http;
  bool http_bind = false;

  void add_to(CLI::App* command) {
    command->add_option("-p,--profile", options.profile_path, "Profile (YAML)")->required();
    command->add_option("-i,--input", options.golden_path, "Golden image (raw or compressed; decompressed once; never modified)")->required();
    command->add_option("--devices", options.devices_csv, "Devices CSV: its rows join the ledger's pool (rows already there are kept)")->required();
    command->add_option("--ledger", options.ledger, "Ledger: a SQLite file or postgresql://... (imprint ledger init creates it)")->required();
    command->add_option("--target", options.targets, "A slot: a card reader's whole-disk device, written once (repeatable)");
    command->add_flag("--watch", options.watch, "Also make a slot of every removable disk that gets a card after the start");
    command->add_option("--watch-match", options.watch_match,
                        "With --watch: only disks whose node, ID_SERIAL, ID_PATH or loop backing file matches this glob");
    command->add_option("-j,--jobs", options.jobs, "Cards written at once")->default_str("one per slot");
    command->add_option("--station", options.station, "This station's name in the ledger (default: the host name; unique per station)");
    command->add_flag("--reissue-failed", options.reissue_failed, "Put failed ids back in the pool first (their cards must be destroyed)");
    command->add_flag("--allow-nonremovable", options.allow_nonremovable,
                      "Test/lab: write non-removable disks too (loop devices standing in for cards)");
    command->add_option("--stop-timeout", stop_timeout, "Seconds the cards in flight get after Ctrl-C before they are marked failed");
    command->add_option("--labels", labels, "Write an SVG label (device id, QR code, thumbprint, date) per flashed card into DIR");
    command->add_option("--label-cmd", label_cmd, "Run per label, {} = the label's path (e.g. 'lp -d printer {}'; no shell)");
    command->add_option("--http", http, "Serve a read-only status page and GET /api/status on HOST:PORT (default off)");
    command->add_flag("--http-bind", http_bind, "Let --http listen on a non-loopback address (it has no access control)");
    variables.add_to(command);
    backend.add_to(command);
  }

  void run() {
    options.backend = backend.get();
    options.overrides = variables.collect(options.profile_path);
    // Every option is checked before the station starts.
    if (!label_cmd.empty() && labels.empty()) usage_error("--label-cmd needs --labels DIR");
    std::optional<LabelCommand> print_label;
    if (!label_cmd.empty()) print_label = option_value([&] { return LabelCommand(label_cmd); });
    std::optional<HttpAddress> address;
    if (!http.empty()) address = option_value([&] { return parse_http_address(http, http_bind); });

    StatusTicker* view = nullptr;  // set once the view exists; the hooks run only inside run()
    const bool results_to_stdout = ::isatty(STDOUT_FILENO) != 1;
    auto say = [&](const std::string& line) { view->print("imprint: " + escape_control(line)); };
    StationHooks hooks;
    hooks.note = say;
    hooks.card_done = [&](const CardResult& card) {
      for (const std::string& warning : card.warnings) say("warning: " + card.target + ": " + warning);
      if (card.outcome == CardOutcome::Flashed && !labels.empty()) label(card, print_label, say);
      if (results_to_stdout) {
        write_stdout(card.message + "\n");
        std::fflush(stdout);
      } else if (view->live()) {
        say(card.message);
      }
    };
    Station station(options, hooks);
    StatusTicker ticker([&] { return station.snapshot(); });
    view = &ticker;
    ticker.start();
    std::unique_ptr<StatusServer> server;
    if (address) {
      server = std::make_unique<StatusServer>(*address, [&] { return station.snapshot(); });
      server->start();
      say("status page at " + server->url());
    }
    StationReport report;
    int signal_number = 0;
    {
      StationSignals signals(station, std::chrono::seconds(stop_timeout));
      report = station.run();
      signal_number = signals.received();
    }
    if (server) server->stop();
    ticker.stop();
    summarize(report, signal_number);
  }

  // The label of a flashed card, and its print command: a failure is a warning, not a failed card.
  void label(const CardResult& card, const std::optional<LabelCommand>& print_label, const std::function<void(const std::string&)>& say) const {
    try {
      const std::string path = write_label_svg(labels, label_for_record(card.record));
      if (!print_label) return;
      if (const std::string failure = print_label->run(path); !failure.empty()) say("warning: " + failure);
    } catch (const std::exception& error) {
      say(std::string("warning: ") + card.device_id + ": no label: " + error.what());
    }
  }

  void summarize(const StationReport& report, int signal_number) const {
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
