// Shared pieces of the command line: output helpers and the variable options.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "imprint/core/error.hpp"
#include "imprint/image/image.hpp"
#include "imprint/profile/template.hpp"

namespace imprint::cli {

void write_stdout(std::string_view bytes);
// The one place messages reach stderr: "imprint: MESSAGE" and "imprint: warning: MESSAGE", one line
// each, with control characters and invalid UTF-8 escaped (messages quote device ids, CSV cells and
// names read from images).
void print_error(const std::string& message);
void warn(const std::string& message);
// With IMPRINT_TIMING=1 in the environment: "imprint: timing: ext4 damage scans: 2 run in 0.412 s,
// 6 reused" on stderr (bench/ measures the scan with it).
void print_timing_if_asked();

// A usage error (exit 2): a missing or conflicting option. Error(Usage, message).
[[noreturn]] void usage_error(const std::string& message);
// An option's value parsed by a library function (--shard, --compress, -m, --key-format, ...): its
// Error becomes a usage error. The same parsers also read profiles, where a bad value is not one.
template <typename Parse>
auto option_value(Parse&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const Error& error) {
    usage_error(error.what());
  }
}

// A value from a host file, one trailing newline dropped (`echo secret > file` adds one); and one
// from an environment variable, Error(Invalid) "WHAT: environment variable NAME is not set" when it
// is not. How --set-file/--set-env and the secret options of certs read their values.
std::string value_from_file(const std::string& path);
std::string value_from_environment(const std::string& name, const std::string& what);

// Variables from --set K=V, --set-file K=PATH and --set-env K=ENV (secrets never need argv).
// collect(PROFILE) checks each name against the profile: one it never uses (a typo) is a warning
// naming the closest known variable, a usage error with --strict. An empty path checks nothing.
struct VariableOptions {
  std::vector<std::string> set, set_file, set_env;
  bool strict = false;
  void add_to(CLI::App* command);
  Variables collect(const std::string& profile_path) const;
};

// --backend auto|native|guestfs: which Filesystem implementation opens each partition; and
// --allow-dirty (damaged ext2/3/4 filesystems are written where their scan proves it safe).
struct BackendOption {
  std::string value = "auto";
  void add_to(CLI::App* command);
  Backend get() const;
};

// What most commands take besides their request: the variable options, --backend and --json. A
// command's options derive from it and are owned by the command's callback.
struct CommandOptions {
  VariableOptions variables;
  BackendOption backend;
  bool json = false;
  void add_to(CLI::App* command, const std::string& json_help = "Machine-readable output");
};

// -q/--quiet and -v/--verbose (imprint/core/progress.hpp's Verbosity), on the main app, accepted
// before or after any subcommand (fallthrough): set once, before any command runs.
void add_global_options(CLI::App& app);
// A command's success line (stamp's "wrote ...", flash's, batch's summary) on stdout; nothing
// with --quiet. Data a command prints (cat, ls, --json, --dry-run's plan) does not go through it.
void write_result(const std::string& line);

// Each group of subcommands registers itself.
void add_edit_commands(CLI::App& app);   // inspect, ls, cat, put, rm, mkdir
void add_stamp_commands(CLI::App& app);  // stamp, verify, profile check, certs
void add_batch_commands(CLI::App& app);     // batch, manifest merge, flash (src/cli/batch_commands.cpp)
void add_artifact_commands(CLI::App& app);  // artifact (src/cli/artifact_commands.cpp)
void add_ledger_commands(CLI::App& app);    // ledger init|status|export|reissue-failed (src/cli/ledger_commands.cpp)
void add_station_commands(CLI::App& app);   // station (src/cli/station_commands.cpp)

}  // namespace imprint::cli
