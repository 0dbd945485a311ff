// The station's HTTP view (--http ADDR): GET / a small status page that refreshes itself every
// second (slots, progress, last results, pool counts; rendered on the server, no script), GET
// /api/status the JSON of to_json(StationStatus). Read-only: every other method gets 405. It has no
// access control, so it listens on loopback only unless the operator allows another address.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "imprint/station/status.hpp"

namespace imprint {

struct HttpAddress {
  std::string host;  // a numeric address ("127.0.0.1", "::1") or, when allowed, a host name
  int port = 0;      // 0: any free port (tests)
};

// Parses --http: "HOST:PORT", "[IPV6]:PORT", "localhost:PORT" (-> 127.0.0.1) or a bare "PORT"
// (-> 127.0.0.1). Error(Invalid) naming the value for a bad syntax or port, and for an address that
// is not loopback (127.0.0.0/8, ::1) unless allow_non_loopback (the CLI's --http-bind).
HttpAddress parse_http_address(const std::string& text, bool allow_non_loopback);
bool is_loopback_address(const std::string& host);

// The status page for one snapshot (every untrusted string HTML-escaped).
std::string status_page_html(const StationStatus& status);

class StatusServer {
 public:
  // snapshot is called once per request, from the server's threads.
  StatusServer(HttpAddress address, std::function<StationStatus()> snapshot);
  ~StatusServer();
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  // Binds now (Error naming the address when it cannot: in use, not an address of this host) and
  // serves from background threads until stop() (also on destruction).
  void start();
  void stop();
  int port() const;         // the port it listens on (the chosen one when asked for 0)
  std::string url() const;  // "http://127.0.0.1:PORT/"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace imprint
