// One device's plan with everything that must hold before a byte is written: credentials loaded
// (or generated), the profile's checks run, ELF expectations checked against the target image;
// and the per-device records exported next to the image (public key, preauthorization, thumbprints,
// DPS enrollment).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "imprint/credentials/credentials.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/image/image.hpp"
#include "imprint/profile/plan.hpp"
#include "imprint/profile/profile.hpp"

namespace imprint {

struct DevicePlan {
  Plan plan;
  Variables variables;
  std::optional<DeviceCredentials> credentials;
  std::string pfx_password;  // the password the device's DPS client opens its PFX with
};

// Device ids name files (DIR/<id>.img, a station's DIR/<id>.svg label): Error(Invalid) for an empty
// id, '.', '..', or one holding '/' or a control character.
void require_safe_device_id(const std::string& device_id);

// Expands the profile for the device (defaults < overrides < device_id), loads or generates its
// credentials, builds the plan and runs every check of the profile's `checks:` list. Any failure
// throws before anything is written.
DevicePlan prepare_device(const Profile& profile, const std::string& device_id, const Variables& overrides);

// Checks that need the target image: `expect: { elf: ARCH }` files must be executables for ARCH
// whose interpreter and libraries exist in each target root filesystem (or are in the plan).
void check_plan_against_image(ImageView& image, const Plan& plan);

// What goes next to the image for the fleet's back office.
struct DeviceExports {
  std::string device_id;
  std::string identity_json;   // as the Mender client will send it
  std::string public_key_pem;  // SubjectPublicKeyInfo, for preauthorization
  std::string preauth_json;    // body of POST /api/management/v2/devauth/devices
  std::string sha1_thumbprint, sha256_thumbprint;
  std::string enrollment_json;  // DPS individual enrollment
};
// Empty optional when the profile has no credentials. The identity comes from running the plan's
// identity script as the device would; without one, {"DeviceId": device_id}.
std::optional<DeviceExports> device_exports(const DevicePlan& device);
// Writes DIR/<id>.pub.pem, <id>.preauth.json, <id>.enrollment.json, <id>.thumbprints.txt into
// pending files (DIR is created when missing) and returns them unnamed: the caller commits them
// together with its output, so a failure on either side leaves neither.
std::vector<PendingFile> stage_exports(const std::string& directory, const DeviceExports& exports);

}  // namespace imprint
