// Manifest record pieces shared by batch and flash (private to the batch module).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "imprint/stamp/device.hpp"
#include "imprint/batch/manifest.hpp"

namespace imprint::detail {

// "primary:/etc/x" or "/data/mender/x", as the plan names the target.
std::string target_name(const PathSpec& target);

// device_id, credentials (thumbprints, public key, preauthorization body) or null, files written
// (target, sha256, size), in that order; the caller adds outputs, digests and timing.
ManifestRecord device_record(const DevicePlan& device, const std::optional<DeviceExports>& exports);

// {"started": "2024-01-31T12:00:00Z", "seconds": 1.234}
ManifestRecord timing(std::chrono::system_clock::time_point started);

}  // namespace imprint::detail
