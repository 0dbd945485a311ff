// Builders of station status snapshots for the views' tests (TTY, HTTP, page in Chromium).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "imprint/station/status.hpp"

namespace imprint::test {

inline SlotStatus slot_status(std::string name, std::string device_id, SlotPhase phase, std::uint64_t done = 0,
                              std::uint64_t total = 0, double rate = 0, std::string result = "", bool failed = false) {
  SlotStatus status;
  status.slot = name;
  status.target = std::move(name);
  status.device_id = std::move(device_id);
  status.phase = phase;
  status.bytes_done = done;
  status.bytes_total = total;
  status.mib_per_s = rate;
  status.result = std::move(result);
  status.result_failed = failed;
  return status;
}

}  // namespace imprint::test
