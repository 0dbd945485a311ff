// imprint command line: parses arguments, calls the library, prints. No logic of its own: each
// group of subcommands lives in its own file and registers itself here.
#include <sys/stat.h>

#include <csignal>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "imprint/core/error.hpp"

int main(int argc, char** argv) {
  using imprint::Error;
  using imprint::ErrorCode;
  ::umask(077);  // outputs and generated keys are private to their owner
  // A file size limit (ulimit -f) makes write() fail with EFBIG, reported as a clean error naming the
  // output, instead of SIGXFSZ killing the process mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"imprint: stamp per-device identity into mender-convert disk images, offline"};
  app.set_version_flag("--version", std::string("imprint ") + IMPRINT_VERSION);
  app.require_subcommand(1);
  // --help shows each option's default ("--days INT [365]"); subcommands inherit this from the app.
  app.option_defaults()->always_capture_default();
  imprint::cli::add_global_options(app);  // before the subcommands, which inherit fallthrough
  imprint::cli::add_edit_commands(app);
  imprint::cli::add_stamp_commands(app);
  imprint::cli::add_batch_commands(app);
  imprint::cli::add_artifact_commands(app);
  imprint::cli::add_ledger_commands(app);
  imprint::cli::add_station_commands(app);
  // Whatever the outcome, once the command is over (IMPRINT_TIMING=1).
  struct Timing {
    ~Timing() { imprint::cli::print_timing_if_asked(); }
  } timing;
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& success) {
    return app.exit(success);
  } catch (const CLI::ParseError& error) {
    imprint::cli::print_error(error.what());
    return 2;
  } catch (const Error& error) {
    imprint::cli::print_error(error.what());
    if (error.code() == ErrorCode::Usage) return 2;
    return error.code() == ErrorCode::CheckFailed ? 3 : 1;
  } catch (const std::exception& error) {
    imprint::cli::print_error(error.what());
    return 1;
  }
  return 0;
}
