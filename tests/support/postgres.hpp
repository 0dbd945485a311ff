// A real PostgreSQL 15 server for one test (or one test suite): initdb and pg_ctl into a fresh
// directory under /tmp, run as the unprivileged user `nobody` when the tests run as root (initdb
// refuses root), listening only on a Unix socket in that directory (no TCP port, so concurrent
// test binaries never collide). The destructor stops it and removes the directory, also when the
// test failed; a missing PostgreSQL is an exception naming the binary and the package.
#pragma once

#include <string>

namespace imprint::test {

class PostgresServer {
 public:
  PostgresServer();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // postgresql:///DATABASE?host=SOCKET_DIR&user=imprint (trust authentication on the socket).
  std::string url(const std::string& database = "postgres") const;
  // A fresh, empty database; returns its URL.
  std::string create_database();
  const std::string& directory() const { return directory_; }

 private:
  void stop() noexcept;

  std::string directory_;
  int databases_ = 0;
  bool running_ = false;
};

}  // namespace imprint::test
