// The fleet's rootfs update: the device-independent part of a profile applied to (a copy of) the
// golden image's rootfs, written as a `rootfs-image` Mender Artifact, so the first OTA update carries
// the same fleet-wide files (the identity script of the OTA-safe profile) as the stamped cards.
#pragma once

#include <string>
#include <vector>

#include "imprint/image/image.hpp"
#include "imprint/profile/plan.hpp"
#include "imprint/profile/template.hpp"

namespace imprint {

struct ArtifactRequest {
  std::string profile_path;
  std::string golden_path;   // never modified
  std::string artifact_name;
  std::string output_path;   // update.mender, created 0600 when complete
  std::string key_path;      // signs the manifest when set (RSA or ECDSA P-256)
  Variables overrides;       // --set and friends (fleet-wide values only)
  Backend backend = Backend::Auto;
};

struct ArtifactResult {
  Plan plan;                              // the rootfs ops applied
  std::vector<std::string> device_types;  // from data:/mender/device_type
  std::string checksum;                   // rootfs-image.checksum: sha256 of the payload
};

// Error(Invalid) naming the profile entry when a rootfs entry depends on the device ({{device_id}},
// a variable without a fleet-wide value, a credential); data-partition and boot entries are skipped.
ArtifactResult write_rootfs_update(const ArtifactRequest& request);

}  // namespace imprint
