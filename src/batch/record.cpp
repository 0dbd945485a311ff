#include "record.hpp"

#include <ctime>

#include "imprint/batch/flash.hpp"
#include "imprint/image/golden_cache.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"

namespace imprint::detail {

std::string target_name(const PathSpec& target) { return target.role.empty() ? target.path : target.role + ":" + target.path; }

ManifestRecord device_record(const DevicePlan& device, const std::optional<DeviceExports>& exports) {
  ManifestRecord record;
  record["device_id"] = device.plan.device_id;
  if (exports) {
    ManifestRecord credentials;
    credentials["sha1_thumbprint"] = exports->sha1_thumbprint;
    credentials["sha256_thumbprint"] = exports->sha256_thumbprint;
    credentials["public_key"] = exports->public_key_pem;
    credentials["preauth"] = ManifestRecord::parse(exports->preauth_json);
    // The DPS individual enrollment body, so a ledger or manifest can hand it to the cloud later.
    if (!exports->enrollment_json.empty()) credentials["enrollment"] = ManifestRecord::parse(exports->enrollment_json);
    record["credentials"] = std::move(credentials);
  } else {
    record["credentials"] = nullptr;
  }
  ManifestRecord files = ManifestRecord::array();
  for (const PlanOp& op : device.plan.ops) {
    if (op.kind != OpKind::File) continue;
    files.push_back({{"target", target_name(op.target)}, {"sha256", sha256_hex(op.bytes)}, {"size", op.bytes.size()}});
  }
  record["files"] = std::move(files);
  return record;
}

ManifestRecord timing(std::chrono::system_clock::time_point started) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(started);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  const double elapsed = std::chrono::duration<double>(std::chrono::system_clock::now() - started).count();
  return {{"started", text}, {"seconds", static_cast<double>(static_cast<long long>(elapsed * 1000)) / 1000.0}};
}

}  // namespace imprint::detail

namespace imprint {

// From the golden cache (golden_cache.hpp) that batches keep: flash -p --manifest on the line would
// otherwise read and hash the whole golden again for every card.
std::string golden_digest(const std::string& path) { return GoldenCache(default_cache_directory(), path).digest(); }

}  // namespace imprint
