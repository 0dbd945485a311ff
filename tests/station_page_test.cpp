// Acceptance: the station's status page in headless Chromium. By default it is served by a
// StatusServer from a snapshot of 3 slots; IMPRINT_STATUS_URL=http://HOST:PORT/ points the same
// checks at a running station instead.
#include <cstdlib>

#include <gtest/gtest.h>

#include "browser_support.hpp"
#include "station_support.hpp"
#include "imprint/station/http_view.hpp"

namespace imprint {
namespace {

StationStatus three_busy_slots() {
  StationStatus status;
  status.station = "line-1";
  status.slots = {test::slot_status("/dev/sdb", "acme-0001", SlotPhase::Writing, 300, 1000, 23.5),
                  test::slot_status("/dev/sdc", "acme-0002", SlotPhase::Verifying, 800, 1000, 23.5),
                  test::slot_status("/dev/sdd", "acme-0003", SlotPhase::Stamping, 0, 1000, 23.5,
                                    "acme-0000: read-back verify failed", true)};
  status.flashed = 7;
  status.failed = 1;
  status.pool_left = 2;
  status.last_results = {"acme-0000: read-back verify failed", "flashed acme-0009"};
  return status;
}

TEST(StationPage, ChromiumShowsTheSlotsThatTheApiReports) {
  test::TempDir dir;
  std::string url;
  std::unique_ptr<StatusServer> server;
  if (const char* given = std::getenv("IMPRINT_STATUS_URL"); given != nullptr && *given != '\0') {
    url = given;
    if (url.back() != '/') url += '/';
  } else {
    server = std::make_unique<StatusServer>(parse_http_address("127.0.0.1:0", false), [] { return three_busy_slots(); });
    server->start();
    url = server->url();
  }
  const test::StatusPageCapture capture = test::capture_status_page(url, dir);
  test::expect_png_not_blank(capture.screenshot, 1200, 800);
  test::expect_dom_shows_the_api_slots(capture);
  if (server) {
    ASSERT_EQ(capture.api["slots"].size(), 3u);
    for (const char* device_id : {"acme-0001", "acme-0002", "acme-0003"}) {
      EXPECT_NE(capture.dom.find(std::string("<td class=\"device-id\">") + device_id + "</td>"), std::string::npos) << device_id;
    }
    EXPECT_NE(capture.dom.find("<b id=\"pool-left\">2</b>"), std::string::npos);
  }
}

}  // namespace
}  // namespace imprint
