#include "support/postgres.hpp"

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "support.hpp"

namespace imprint::test {

namespace {

const std::string kBin = "/usr/lib/postgresql/15/bin/";
constexpr const char* kUser = "imprint";  // the database superuser initdb creates

// argv run as `nobody` when we are root (PostgreSQL refuses to run as root).
std::vector<std::string> as_server_user(std::vector<std::string> argv) {
  if (::geteuid() != 0) return argv;
  const passwd* nobody = ::getpwnam("nobody");
  if (nobody == nullptr) throw std::runtime_error("PostgresServer: no user 'nobody' to run PostgreSQL as");
  std::vector<std::string> wrapped{"setpriv", "--reuid=" + std::to_string(nobody->pw_uid), "--regid=" + std::to_string(nobody->pw_gid),
                                   "--clear-groups", "--"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

void run_or_throw(const std::vector<std::string>& argv, const std::string& what) {
  const CommandResult result = run(as_server_user(argv));
  if (result.status != 0) throw std::runtime_error("PostgresServer: " + what + " failed (" + std::to_string(result.status) + "): " + result.err + result.out);
}

}  // namespace

PostgresServer::PostgresServer() {
  for (const char* tool : {"initdb", "pg_ctl", "createdb"}) {
    if (::access((kBin + tool).c_str(), X_OK) != 0) {
      throw std::runtime_error(kBin + tool + " is missing: install PostgreSQL 15 (scripts/setup.sh: postgresql-15)");
    }
  }
  char pattern[] = "/tmp/imprint-pg-XXXXXX";  // short: a Unix socket path has at most 107 bytes
  if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("PostgresServer: mkdtemp failed");
  directory_ = pattern;
  try {
    if (::geteuid() == 0) {
      const passwd* nobody = ::getpwnam("nobody");
      if (nobody == nullptr || ::chown(directory_.c_str(), nobody->pw_uid, nobody->pw_gid) != 0) {
        throw std::runtime_error("PostgresServer: cannot hand " + directory_ + " to user nobody");
      }
    }
    run_or_throw({kBin + "initdb", "-D", directory_ + "/data", "-U", kUser, "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"}, "initdb");
    // No TCP (listen_addresses empty), the socket in our directory; fsync off: test data only.
    const std::string options = "-k " + directory_ + " -c listen_addresses='' -c fsync=off -c max_connections=60";
    run_or_throw({kBin + "pg_ctl", "-D", directory_ + "/data", "-l", directory_ + "/server.log", "-o", options, "-w", "-t", "60", "start"},
                 "pg_ctl start (log: " + directory_ + "/server.log)");
    running_ = true;
  } catch (...) {
    stop();
    throw;
  }
}

PostgresServer::~PostgresServer() { stop(); }

void PostgresServer::stop() noexcept {
  try {
    if (running_) {
      const CommandResult result = run(as_server_user({kBin + "pg_ctl", "-D", directory_ + "/data", "-m", "immediate", "-w", "stop"}));
      if (result.status != 0) {
        // pg_ctl could not stop it: kill the postmaster named in its pid file.
        std::ifstream pid_file(directory_ + "/data/postmaster.pid");
        long pid = 0;
        if (pid_file >> pid && pid > 0) ::kill(static_cast<pid_t>(pid), SIGKILL);
      }
      running_ = false;
    }
    std::error_code ignored;
    if (!directory_.empty()) std::filesystem::remove_all(directory_, ignored);
  } catch (...) {
  }
}

std::string PostgresServer::url(const std::string& database) const {
  return "postgresql:///" + database + "?host=" + directory_ + "&user=" + kUser;
}

std::string PostgresServer::create_database() {
  const std::string name = "test" + std::to_string(++databases_);
  const CommandResult result = run({kBin + "createdb", "-h", directory_, "-U", kUser, name});
  if (result.status != 0) throw std::runtime_error("PostgresServer: createdb " + name + " failed: " + result.err);
  return url(name);
}

}  // namespace imprint::test
