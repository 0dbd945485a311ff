// The station's HTTP status page and JSON, served with cpp-httplib (see station/http_view.hpp).
#include "imprint/station/http_view.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <httplib.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "markup.hpp"

namespace imprint {

namespace {

int parse_port(const std::string& text, const std::string& value) {
  const bool digits = !text.empty() && text.size() <= 5 && text.find_first_not_of("0123456789") == std::string::npos;
  const long port = digits ? std::stol(text) : -1;
  if (port < 0 || port > 65535) {
    throw Error("--http '" + escape_control(value) + "': the port must be a number from 0 to 65535", ErrorCode::Invalid);
  }
  return static_cast<int>(port);
}

constexpr const char* kStyle = R"(
body { font-family: sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.4em; margin: 0 0 .4em; }
.totals { font-size: 1.2em; margin: .4em 0 1em; }
.totals span { margin-right: 1.5em; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35em .7em; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { background: #eee; }
td.device-id { font-family: monospace; font-size: 1.1em; }
td.result { white-space: normal; word-break: break-word; }
progress { width: 12em; height: 1.1em; vertical-align: middle; }
.ok { color: #17702a; } .bad { color: #b00020; font-weight: bold; }
.phase-writing, .phase-verifying { color: #8a5a00; } .phase-done { color: #17702a; } .phase-failed { color: #b00020; }
ol { font-family: monospace; } .note { color: #777; font-size: .9em; margin-top: 2em; }
)";

std::string slot_row(const SlotStatus& slot) {
  std::string bar;
  if (const std::optional<double> fraction = progress(slot)) {
    const std::string percent = std::to_string(static_cast<int>(*fraction * 100));
    bar = "<progress max=\"100\" value=\"" + percent + "\"></progress> " + percent + "%";
  }
  char rate[32] = "";
  if (is_busy(slot.phase) && slot.mib_per_s > 0) std::snprintf(rate, sizeof rate, "%.1f", slot.mib_per_s);
  const std::string phase = to_string(slot.phase);
  return "<tr class=\"slot\"><td>" + escape_markup(slot.slot) + "</td><td>" + escape_markup(slot.target) + "</td><td class=\"device-id\">" +
         escape_markup(slot.device_id) + "</td><td class=\"phase-" + phase + "\">" + phase + "</td><td>" + bar + "</td><td>" + rate +
         "</td><td class=\"result " + (slot.result_failed ? "bad" : "ok") + "\">" + escape_markup(slot.result) + "</td></tr>\n";
}

}  // namespace

bool is_loopback_address(const std::string& host) {
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

HttpAddress parse_http_address(const std::string& text, bool allow_non_loopback) {
  HttpAddress address;
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    address.host = "127.0.0.1";
    address.port = parse_port(text, text);
  } else {
    address.host = text.substr(0, colon);
    address.port = parse_port(text.substr(colon + 1), text);
    if (address.host.size() >= 2 && address.host.front() == '[' && address.host.back() == ']') {
      address.host = address.host.substr(1, address.host.size() - 2);
    } else if (address.host.find(':') != std::string::npos) {
      throw Error("--http '" + escape_control(text) + "': write an IPv6 address in brackets ([::1]:PORT)", ErrorCode::Invalid);
    }
  }
  if (address.host.empty()) throw Error("--http '" + escape_control(text) + "': expected HOST:PORT, e.g. 127.0.0.1:8080", ErrorCode::Invalid);
  if (address.host == "localhost") address.host = "127.0.0.1";
  if (!allow_non_loopback && !is_loopback_address(address.host)) {
    throw Error("--http " + escape_control(text) + ": " + escape_control(address.host) +
                    " is not a loopback address; the status page has no access control, so it listens on 127.0.0.1 or ::1 "
                    "unless --http-bind allows another address",
                ErrorCode::Invalid);
  }
  return address;
}

std::string status_page_html(const StationStatus& status) {
  const std::string station = escape_markup(status.station);
  std::string page = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                     "<meta http-equiv=\"refresh\" content=\"1\">\n<title>imprint station " + station + "</title>\n<style>" +
                     kStyle + "</style></head>\n<body>\n<h1>imprint station <span id=\"station\">" + station + "</span></h1>\n";
  page += "<p class=\"totals\"><span class=\"ok\">flashed <b id=\"flashed\">" + std::to_string(status.flashed) +
          "</b></span><span class=\"" + (status.failed ? "bad" : "") + "\">failed <b id=\"failed\">" + std::to_string(status.failed) +
          "</b></span><span>left in the pool <b id=\"pool-left\">" + std::to_string(status.pool_left) + "</b></span></p>\n";
  page += "<table id=\"slots\"><thead><tr><th>Slot</th><th>Target</th><th>Device</th><th>Phase</th><th>Progress</th><th>MiB/s</th>"
          "<th>Last result</th></tr></thead>\n<tbody>\n";
  for (const SlotStatus& slot : status.slots) page += slot_row(slot);
  if (status.slots.empty()) page += "<tr><td colspan=\"7\">no slot yet: waiting for a card</td></tr>\n";
  page += "</tbody></table>\n<h2>Last results</h2>\n<ol id=\"last-results\">\n";
  for (const std::string& result : status.last_results) page += "<li>" + escape_markup(result) + "</li>\n";
  page += "</ol>\n<p class=\"note\">Read-only; refreshes every second. JSON: <a href=\"/api/status\">/api/status</a></p>\n</body></html>\n";
  return page;
}

struct StatusServer::Impl {
  HttpAddress address;
  std::function<StationStatus()> snapshot;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> finished{false};  // listen_after_bind returned
  int port = 0;
};

StatusServer::StatusServer(HttpAddress address, std::function<StationStatus()> snapshot) : impl_(std::make_unique<Impl>()) {
  impl_->address = std::move(address);
  impl_->snapshot = std::move(snapshot);
}

StatusServer::~StatusServer() { stop(); }

int StatusServer::port() const { return impl_->port; }

std::string StatusServer::url() const {
  const std::string& host = impl_->address.host;
  return "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(impl_->port) + "/";
}

void StatusServer::start() {
  if (impl_->thread.joinable()) return;
  httplib::Server& server = impl_->server;
  server.new_task_queue = [] { return new httplib::ThreadPool(4); };  // a page for one or two operators
  server.set_keep_alive_timeout(1);  // stop() waits for open connections: keep that short
  server.set_payload_max_length(64 * 1024);
  // httplib's default also sets SO_REUSEPORT, with which a second station on the same port would
  // start and silently take half the requests: SO_REUSEADDR only, so a port in use is an error.
  server.set_socket_options([](socket_t socket) {
    int yes = 1;
    ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server.set_default_headers({{"Cache-Control", "no-store"},
                              {"X-Content-Type-Options", "nosniff"},
                              {"Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"}});
  // Read-only, and only for the names this server has: another site's page that rebinds its DNS name
  // to 127.0.0.1 sends its own name as Host and is refused.
  const bool loopback = is_loopback_address(impl_->address.host);
  server.set_pre_routing_handler([this, loopback](const httplib::Request& request, httplib::Response& response) {
    if (request.method != "GET" && request.method != "HEAD") {
      response.status = 405;
      response.set_header("Allow", "GET, HEAD");
      response.set_content("read-only: only GET and HEAD\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (loopback) {
      const std::string host = request.get_header_value("Host");
      const std::string port = ":" + std::to_string(impl_->port);
      static const std::set<std::string> names = {"127.0.0.1", "localhost", "[::1]"};
      const std::size_t colon = host.rfind(':');
      const bool allowed = (colon != std::string::npos && host.substr(colon) == port && names.count(host.substr(0, colon)) > 0) ||
                           url().find("//" + host + "/") != std::string::npos;
      if (!allowed) {
        response.status = 403;
        response.set_content("unexpected Host header\n", "text/plain");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server.Get("/", [this](const httplib::Request&, httplib::Response& response) {
    response.set_content(status_page_html(impl_->snapshot()), "text/html; charset=utf-8");
  });
  server.Get("/api/status", [this](const httplib::Request&, httplib::Response& response) {
    response.set_content(to_json(impl_->snapshot()).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                         "application/json");
  });
  server.set_exception_handler([](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
    response.status = 500;
    std::string what = "error";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& exception) {
      what = exception.what();
    } catch (...) {
    }
    response.set_content(escape_control(what) + "\n", "text/plain");
  });

  const HttpAddress& address = impl_->address;
  errno = 0;
  const bool bound = address.port == 0 ? (impl_->port = server.bind_to_any_port(address.host)) > 0
                                       : server.bind_to_port(address.host, impl_->port = address.port);
  if (!bound) {
    const int error = errno;
    throw Error("--http: cannot listen on " + escape_control(address.host) + ":" + std::to_string(address.port) +
                    (error ? std::string(": ") + std::strerror(error) : std::string(" (in use, or not an address of this host)")),
                error ? error_code_for_errno(error) : ErrorCode::Generic);
  }
  impl_->finished = false;
  impl_->thread = std::thread([this] {
    impl_->server.listen_after_bind();
    impl_->finished = true;
  });
  // stop() is a no-op until the server runs: wait for that, so that a stop right after start ends it.
  while (!server.is_running() && !impl_->finished) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void StatusServer::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

}  // namespace imprint
