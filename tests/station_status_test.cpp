// The station's status snapshot as text and JSON (GET /api/status).
#include <gtest/gtest.h>

#include "imprint/station/status.hpp"

namespace imprint {
namespace {

TEST(StationStatus, EveryPhaseHasItsOwnName) {
  const SlotPhase phases[] = {SlotPhase::Idle,    SlotPhase::Allocating, SlotPhase::Stamping, SlotPhase::Writing,
                              SlotPhase::Verifying, SlotPhase::Recording, SlotPhase::Done,     SlotPhase::Failed};
  std::set<std::string> names;
  for (SlotPhase phase : phases) names.insert(to_string(phase));
  EXPECT_EQ(names.size(), std::size(phases));
  EXPECT_EQ(to_string(SlotPhase::Writing), "writing");
  EXPECT_EQ(to_string(SlotPhase::Failed), "failed");
  EXPECT_TRUE(is_busy(SlotPhase::Writing));
  EXPECT_TRUE(is_busy(SlotPhase::Allocating));
  EXPECT_FALSE(is_busy(SlotPhase::Idle));
  EXPECT_FALSE(is_busy(SlotPhase::Done));
  EXPECT_FALSE(is_busy(SlotPhase::Failed));
}

TEST(StationStatus, JsonHoldsEverySlotAndTheTotals) {
  StationStatus status;
  status.station = "line-1";
  status.slots.push_back({"/dev/sdb", "/dev/sdb", "dev-001", SlotPhase::Writing, 512, 1024, 21.5, ""});
  status.slots.push_back({"/dev/sdc", "/dev/sdc", "", SlotPhase::Idle, 0, 0, 0, "flashed dev-000"});
  status.flashed = 3;
  status.failed = 1;
  status.pool_left = 6;
  status.last_results = {"flashed dev-000", "failed dev-x: read-back verify failed"};
  const nlohmann::json json = to_json(status);
  EXPECT_EQ(json["station"], "line-1");
  ASSERT_EQ(json["slots"].size(), 2u);
  EXPECT_EQ(json["slots"][0]["device_id"], "dev-001");
  EXPECT_EQ(json["slots"][0]["phase"], "writing");
  EXPECT_EQ(json["slots"][0]["bytes_done"], 512);
  EXPECT_EQ(json["slots"][0]["bytes_total"], 1024);
  EXPECT_DOUBLE_EQ(json["slots"][0]["mib_per_s"].get<double>(), 21.5);
  EXPECT_EQ(json["slots"][1]["phase"], "idle");
  EXPECT_EQ(json["slots"][1]["result"], "flashed dev-000");
  EXPECT_EQ(json["flashed"], 3);
  EXPECT_EQ(json["failed"], 1);
  EXPECT_EQ(json["pool_left"], 6);
  EXPECT_EQ(json["last_results"][1], "failed dev-x: read-back verify failed");
}

TEST(StationStatus, ProgressIsKnownWhileBusyWithATotalAndOnceDone) {
  SlotStatus slot;
  slot.bytes_done = 250;
  slot.bytes_total = 1000;
  slot.phase = SlotPhase::Writing;
  EXPECT_DOUBLE_EQ(progress(slot).value(), 0.25);
  slot.bytes_done = 2000;
  EXPECT_DOUBLE_EQ(progress(slot).value(), 1.0) << "never past the end";
  slot.phase = SlotPhase::Done;
  slot.bytes_total = 0;
  EXPECT_DOUBLE_EQ(progress(slot).value(), 1.0);
  slot.phase = SlotPhase::Failed;
  EXPECT_FALSE(progress(slot));
  slot.phase = SlotPhase::Stamping;
  EXPECT_FALSE(progress(slot)) << "no total yet";
}

TEST(StationStatus, AnEmptyStationIsValidJsonWithAnEmptySlotList) {
  const nlohmann::json json = to_json(StationStatus{});
  EXPECT_TRUE(json["slots"].is_array());
  EXPECT_TRUE(json["slots"].empty());
  EXPECT_TRUE(json["last_results"].is_array());
  EXPECT_EQ(json["results"], 0);
}

TEST(StationStatus, InvalidUtf8InADeviceIdDumpsWithReplacementInsteadOfThrowing) {
  StationStatus status;
  status.slots.push_back({"s", "t", "bad\xff", SlotPhase::Writing, 0, 0, 0, ""});
  const std::string body = to_json(status).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  EXPECT_NE(body.find("bad\xef\xbf\xbd"), std::string::npos) << body;  // U+FFFD
}

}  // namespace
}  // namespace imprint
