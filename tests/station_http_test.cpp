// The station's HTTP view: the address rules, and a real server on an ephemeral port asked with a
// real HTTP client (cpp-httplib's) for the page, the JSON and write methods.
#include <httplib.h>

#include <atomic>

#include <gtest/gtest.h>

#include "imprint/core/error.hpp"
#include "imprint/station/http_view.hpp"
#include "station_support.hpp"
#include "support.hpp"

namespace imprint {
namespace {

StationStatus sample() {
  StationStatus status;
  status.station = "line-1";
  status.slots = {test::slot_status("/dev/sdb", "dev-<b>&001", SlotPhase::Writing, 300, 1000, 42.25),
                  test::slot_status("/dev/sdc", "", SlotPhase::Idle, 0, 0, 0, "dev-000: read-back verify failed", true)};
  status.flashed = 5;
  status.failed = 1;
  status.pool_left = 4;
  status.last_results = {"dev-000: read-back verify failed", "flashed dev-999"};
  return status;
}

TEST(StationHttp, LoopbackOnlyUnlessAnotherAddressIsAllowed) {
  const HttpAddress v4 = parse_http_address("127.0.0.1:8080", false);
  EXPECT_EQ(v4.host, "127.0.0.1");
  EXPECT_EQ(v4.port, 8080);
  EXPECT_EQ(parse_http_address("[::1]:9000", false).host, "::1");
  EXPECT_EQ(parse_http_address("localhost:1", false).host, "127.0.0.1");
  EXPECT_EQ(parse_http_address("8081", false).host, "127.0.0.1");
  EXPECT_EQ(parse_http_address("8081", false).port, 8081);
  EXPECT_EQ(parse_http_address("127.1.2.3:0", false).port, 0);
  const auto refused = test::expect_error([] { parse_http_address("0.0.0.0:8080", false); }, ErrorCode::Invalid);
  EXPECT_STREQ(refused.what(),
               "--http 0.0.0.0:8080: 0.0.0.0 is not a loopback address; the status page has no access control, so it listens on "
               "127.0.0.1 or ::1 unless --http-bind allows another address");
  for (const char* other : {"192.168.1.10:80", "[::]:80", "[::ffff:10.0.0.1]:80", "station.example:80"}) {
    test::expect_error([&] { parse_http_address(other, false); }, ErrorCode::Invalid);
  }
  EXPECT_EQ(parse_http_address("0.0.0.0:8080", true).host, "0.0.0.0");
  EXPECT_EQ(parse_http_address("[::ffff:127.0.0.1]:80", false).host, "::ffff:127.0.0.1");
  for (const char* bad : {"127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:http", ":80", "::1:80", "127.0.0.1:-1"}) {
    test::expect_error([&] { parse_http_address(bad, false); }, ErrorCode::Invalid);
  }
}

TEST(StationHttp, ThePageEscapesWhatItShows) {
  const std::string page = status_page_html(sample());
  EXPECT_NE(page.find("dev-&lt;b&gt;&amp;001"), std::string::npos);
  EXPECT_EQ(page.find("dev-<b>"), std::string::npos);
  EXPECT_NE(page.find("<meta http-equiv=\"refresh\" content=\"1\">"), std::string::npos);
  EXPECT_NE(page.find("<progress max=\"100\" value=\"30\"></progress> 30%"), std::string::npos);
  EXPECT_NE(page.find("42.2"), std::string::npos);
  EXPECT_NE(page.find("<b id=\"pool-left\">4</b>"), std::string::npos);
  EXPECT_NE(page.find("<li>flashed dev-999</li>"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
}

TEST(StationHttp, ServesThePageAndTheJsonAndRefusesEveryWrite) {
  std::atomic<int> snapshots{0};
  StatusServer server(parse_http_address("127.0.0.1:0", false), [&] {
    ++snapshots;
    return sample();
  });
  server.start();
  ASSERT_GT(server.port(), 0);
  EXPECT_EQ(server.url(), "http://127.0.0.1:" + std::to_string(server.port()) + "/");
  httplib::Client client("127.0.0.1", server.port());

  const auto page = client.Get("/");
  ASSERT_TRUE(page) << httplib::to_string(page.error());
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(page->body, status_page_html(sample()));

  const auto api = client.Get("/api/status");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 200);
  EXPECT_EQ(api->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(api->get_header_value("Cache-Control"), "no-store");
  EXPECT_EQ(nlohmann::json::parse(api->body), to_json(sample()));
  EXPECT_EQ(snapshots, 2);

  EXPECT_EQ(client.Get("/nothing-here")->status, 404);
  EXPECT_EQ(client.Head("/api/status")->status, 200);
  EXPECT_EQ(snapshots, 3);
  EXPECT_EQ(client.Post("/api/status", "{}", "application/json")->status, 405);
  EXPECT_EQ(client.Put("/", "x", "text/plain")->status, 405);
  EXPECT_EQ(client.Delete("/api/status")->status, 405);
  EXPECT_EQ(client.Patch("/api/status", "{}", "application/json")->status, 405);
  EXPECT_EQ(client.Options("/")->status, 405);
  EXPECT_EQ(client.Post("/")->get_header_value("Allow"), "GET, HEAD");
  EXPECT_EQ(snapshots, 3) << "a refused request never reads the station";

  // A page of another site whose name was rebound to 127.0.0.1 sends its own Host: refused.
  const auto rebound = client.Get("/api/status", {{"Host", "attacker.example:" + std::to_string(server.port())}});
  ASSERT_TRUE(rebound);
  EXPECT_EQ(rebound->status, 403);
  EXPECT_EQ(client.Get("/", {{"Host", "localhost:" + std::to_string(server.port())}})->status, 200);

  server.stop();
  EXPECT_FALSE(httplib::Client("127.0.0.1", server.port()).Get("/")) << "nothing listens after stop()";
}

TEST(StationHttp, AnAddressInUseIsOneErrorNamingIt) {
  StatusServer first(parse_http_address("127.0.0.1:0", false), [] { return StationStatus{}; });
  first.start();
  StatusServer second(parse_http_address("127.0.0.1:" + std::to_string(first.port()), false), [] { return StationStatus{}; });
  try {
    second.start();
    ADD_FAILURE() << "a second server on the same port started";
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), "--http: cannot listen on 127.0.0.1:" + std::to_string(first.port()) + ": Address already in use");
  }
}

TEST(StationHttp, AStationErrorIsA500NotACrash) {
  StatusServer server(parse_http_address("[::1]:0", false), []() -> StationStatus { throw Error("ledger gone"); });
  server.start();
  EXPECT_EQ(server.url(), "http://[::1]:" + std::to_string(server.port()) + "/");
  httplib::Client client("::1", server.port());
  const auto response = client.Get("/api/status", {{"Host", "[::1]:" + std::to_string(server.port())}});
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(response->status, 500);
  EXPECT_EQ(response->body, "ledger gone\n");
}

TEST(StationHttp, StopRightAfterStartEndsTheServer) {
  for (int i = 0; i < 20; ++i) {
    StatusServer server(parse_http_address("127.0.0.1:0", false), [] { return StationStatus{}; });
    server.start();
    server.stop();
  }
}

}  // namespace
}  // namespace imprint
