#include "common.hpp"

#include <cstdio>
#include <cstdlib>

#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/fs/ext4.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/profile/profile.hpp"
#include "imprint/core/progress.hpp"

namespace imprint::cli {

void write_stdout(std::string_view bytes) {
  if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size()) throw Error("cannot write to standard output");
}

void print_error(const std::string& message) { std::fprintf(stderr, "imprint: %s\n", escape_control(message).c_str()); }

void warn(const std::string& message) { std::fprintf(stderr, "imprint: warning: %s\n", escape_control(message).c_str()); }

void add_global_options(CLI::App& app) {
  app.fallthrough();
  auto* quiet = app.add_flag_callback(
      "-q,--quiet", [] { set_verbosity(Verbosity::Quiet); },
      "No progress and no success line (errors and warnings still print)");
  auto* verbose = app.add_flag_callback(
      "-v,--verbose", [] { set_verbosity(Verbosity::Verbose); },
      "Say what each step does (checks, partitions opened, operations applied, flushes) on stderr");
  quiet->excludes(verbose);
}

void write_result(const std::string& line) {
  if (verbosity() != Verbosity::Quiet) write_stdout(line + "\n");
}

void print_timing_if_asked() {
  const char* asked = std::getenv("IMPRINT_TIMING");
  if (asked == nullptr || std::string(asked) != "1") return;
  const Ext4ScanStats scans = ext4_scan_stats();
  std::fprintf(stderr, "imprint: timing: ext4 damage scans: %u run in %.3f s, %u reused\n", scans.run, scans.seconds,
               scans.reused);
}

void usage_error(const std::string& message) { throw Error(message, ErrorCode::Usage); }

namespace {
std::pair<std::string, std::string> split_assignment(const std::string& item, const std::string& option) {
  const auto equals = item.find('=');
  if (equals == std::string::npos || equals == 0) usage_error(option + " " + item + ": expected NAME=VALUE");
  return {item.substr(0, equals), item.substr(equals + 1)};
}
}  // namespace

std::string value_from_file(const std::string& path) {
  std::string value = read_host_file(path);
  if (!value.empty() && value.back() == '\n') value.pop_back();
  return value;
}

std::string value_from_environment(const std::string& name, const std::string& what) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) throw Error(what + ": environment variable " + name + " is not set", ErrorCode::Invalid);
  return value;
}

void BackendOption::add_to(CLI::App* command) {
  command->add_option("--backend", value, "auto (libext2fs for ext2/3/4, libguestfs otherwise) | native | guestfs");
  command->add_flag_callback("--allow-dirty", [] { set_default_allow_dirty(true); },
                             "Write into a damaged ext2/3/4 filesystem, only where its scan proves it safe");
}

Backend BackendOption::get() const {
  return option_value([&] { return parse_backend(value); });
}

void CommandOptions::add_to(CLI::App* command, const std::string& json_help) {
  command->add_flag("--json", json, json_help);
  variables.add_to(command);
  backend.add_to(command);
}

void VariableOptions::add_to(CLI::App* command) {
  command->add_option("--set", set, "Set a profile variable (K=V)");
  command->add_option("--set-file", set_file, "Set a variable from a file's content (K=PATH; one trailing newline dropped)");
  command->add_option("--set-env", set_env, "Set a variable from an environment variable (K=ENV)");
  command->add_flag("--strict", strict, "A variable the profile never uses (in --set or a CSV column) is an error, not a warning");
}

namespace {

// Each --set/--set-file/--set-env name the profile never uses: a warning, or with strict an error.
void check_variable_names(const std::string& profile_path, const std::vector<std::pair<std::string, std::string>>& given,
                          bool strict) {
  if (profile_path.empty() || given.empty()) return;
  const Profile profile = load_profile(profile_path);
  for (const auto& [option, name] : given) {
    const std::string problem = unused_variable_problem(profile, name);
    if (problem.empty()) continue;
    if (strict) usage_error(option + " " + name + ": " + problem);
    warn(option + " " + name + ": " + problem + "; ignored");
  }
}

}  // namespace

Variables VariableOptions::collect(const std::string& profile_path) const {
  std::vector<std::pair<std::string, std::string>> given;  // (option, name), in command-line order per option
  for (const auto* items : {&set, &set_file, &set_env}) {
    const char* option = items == &set ? "--set" : items == &set_file ? "--set-file" : "--set-env";
    for (const auto& item : *items) given.emplace_back(option, split_assignment(item, option).first);
  }
  check_variable_names(profile_path, given, strict);
  Variables variables;
  for (const auto& item : set) {
    auto [name, value] = split_assignment(item, "--set");
    variables[name] = value;
  }
  for (const auto& item : set_file) {
    auto [name, path] = split_assignment(item, "--set-file");
    variables[name] = value_from_file(path);
  }
  for (const auto& item : set_env) {
    auto [name, environment] = split_assignment(item, "--set-env");
    variables[name] = value_from_environment(environment, "--set-env " + item);
  }
  return variables;
}

}  // namespace imprint::cli
