// The station's status snapshot as text and JSON (see station/status.hpp).
#include "imprint/station/status.hpp"

#include <algorithm>

namespace imprint {

std::string to_string(SlotPhase phase) {
  switch (phase) {
    case SlotPhase::Idle: return "idle";
    case SlotPhase::Allocating: return "allocating";
    case SlotPhase::Stamping: return "stamping";
    case SlotPhase::Writing: return "writing";
    case SlotPhase::Verifying: return "verifying";
    case SlotPhase::Recording: return "recording";
    case SlotPhase::Done: return "done";
    case SlotPhase::Failed: return "failed";
  }
  return "unknown";
}

bool is_busy(SlotPhase phase) { return phase != SlotPhase::Idle && phase != SlotPhase::Done && phase != SlotPhase::Failed; }

std::optional<double> progress(const SlotStatus& slot) {
  if (slot.phase == SlotPhase::Done) return 1.0;
  if (!is_busy(slot.phase) || slot.bytes_total == 0) return std::nullopt;
  return std::min(1.0, static_cast<double>(slot.bytes_done) / static_cast<double>(slot.bytes_total));
}

nlohmann::json to_json(const StationStatus& status) {
  nlohmann::json slots = nlohmann::json::array();
  for (const SlotStatus& slot : status.slots) {
    slots.push_back({{"slot", slot.slot},
                     {"target", slot.target},
                     {"device_id", slot.device_id},
                     {"phase", to_string(slot.phase)},
                     {"bytes_done", slot.bytes_done},
                     {"bytes_total", slot.bytes_total},
                     {"mib_per_s", slot.mib_per_s},
                     {"result", slot.result},
                     {"result_failed", slot.result_failed}});
  }
  return {{"station", status.station},
          {"slots", std::move(slots)},
          {"flashed", status.flashed},
          {"failed", status.failed},
          {"pool_left", status.pool_left},
          {"last_results", status.last_results},
          {"results", status.results}};
}

}  // namespace imprint
