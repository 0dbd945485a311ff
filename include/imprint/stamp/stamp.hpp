// Stamping: profile + device -> plan -> checks -> golden copied to a pending output -> plan applied
// -> flushed -> renamed to the final name. And verify: an image checked against a plan.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "imprint/stamp/device.hpp"
#include "imprint/image/copy.hpp"
#include "imprint/image/image.hpp"
#include "imprint/profile/plan.hpp"
#include "imprint/profile/profile.hpp"
#include "imprint/image/structure.hpp"

namespace imprint {

struct StampRequest {
  std::string profile_path;
  std::string golden_path;
  std::string device_id;
  Variables overrides;       // CSV columns and --set/--set-file/--set-env, already merged
  std::string output_path;   // ignored with in_place
  bool in_place = false;     // apply to golden_path itself (a raw image; developer use)
  bool dry_run = false;      // build and check the plan, touch nothing
  std::string emit_directory;  // when set: public key, preauth body, thumbprints, enrollment
  std::string bmap_path;       // when set (with output_path): the output's bmap, committed with it
  Backend backend = Backend::Auto;  // which Filesystem implementation opens each partition
  std::string artifact_key;         // re-signs a signed data:/mender/bootstrap.mender once renewed
  bool force = false;               // replace an existing output (and bmap); refused otherwise
  std::optional<Compression> compression;  // --compress; unset: by the output's extension
};

struct StampResult {
  Plan plan;
  std::optional<DeviceExports> exports;
  std::string output_path;
  std::uint64_t output_size = 0;      // bytes (apparent size) of the output; 0 with in_place/dry_run
  std::vector<std::string> checks;    // what passed before writing ("key-matches-cert", "elf aarch64 (1 file(s))", ...)
  std::vector<std::string> warnings;  // e.g. the stale bootstrap Artifact
};

StampResult stamp(const StampRequest& request);

// How `path` is compressed: by its extension (.gz, .xz, .zst; anything else: none). An explicit
// `asked` must agree with the extension: Error(Invalid) naming both otherwise ("out.img" with zst
// would be a zstd stream under a raw image's name).
Compression output_compression(const std::string& path, const std::optional<Compression>& asked);

// A `generate:` credential made without anything kept outside the image (stamp without --emit,
// flash -p without --manifest) would exist only inside it: nobody could preauthorize or enroll the
// device. Error(Invalid) naming the profile entry and `keeper` (the option that keeps it) then.
void require_generated_credentials_kept(const Profile& profile, const std::string& device_id, bool kept, const std::string& keeper);

class ImageOverlay;
// A device's image as golden + overlay (image/overlay.hpp): result.plan checked and applied to the
// golden opened read-only, its writes kept in the returned overlay. Partitions only libguestfs opens
// are written into a qcow2 overlay file over the golden, a PendingFile for `qcow2_beside` (it holds
// the device's secrets: the output's path, never $TMPDIR; gone on every exit) whose clusters then
// join the overlay; an empty qcow2_beside leaves such plans to the copy. Null (nothing applied) where
// the overlay does not apply: a compressed golden, such a partition without qcow2_beside, or a
// bootstrap Artifact to renew; then the caller copies the golden and edits the copy instead.
// `name`: the golden as messages call it, when golden_path is not that (a decompressed copy).
std::shared_ptr<ImageOverlay> stamp_overlay(const std::string& golden_path, StampResult& result, Backend backend,
                                            const std::string& qcow2_beside = {}, const std::string& name = {});
// Why golden + overlay does not apply to this plan on this golden (opened with open_overlay): "the
// plan writes boot (p1), which only libguestfs opens", the bootstrap Artifact to renew, or the error
// the golden gave; nullopt when it applies.
std::optional<std::string> overlay_obstacle(DiskImage& golden, const Plan& plan);

// Checks the plan against the open image, applies it, notes warnings, flushes.
void stamp_open_image(DiskImage& image, StampResult& result);

// Once the stamped image is closed (libext2fs writes each superblock at close, so only then are the
// partition's bytes final): when the plan edited the root filesystems and the data partition holds
// mender/bootstrap.mender, renews its rootfs-image.checksum (re-signed with artifact_key). Returns warnings.
std::vector<std::string> renew_bootstrap_artifact(const std::string& image_path, const Plan& plan, Backend backend,
                                                  const std::string& artifact_key);

// Applies a plan to an open, writable image (creating parent directories as needed).
void apply_plan(ImageView& image, const Plan& plan);

// Every difference between the image and the plan, as one line each ("primary (p2):
// /usr/bin/x: mode 0644, expected 0755"); empty when the image matches.
// Ops whose bytes are not reproducible (a PFX built with a random salt) are compared by meaning:
// the PFX in the image must open with the device's password and hold the device's key.
std::vector<std::string> verify_plan(ImageView& image, const DevicePlan& device);

// imprint verify: the device's plan (profile + device + variables, its checks run) against an image
// or the card it was flashed to, opened read-only; with `structure`, the filesystems' own checks too.
// With golden_path: the image is also compared byte for byte with golden + the device's overlay
// (verify_against_golden).
struct VerifyRequest {
  std::string profile_path;
  std::string device_id;
  Variables overrides;
  std::string image_path;
  std::string golden_path;  // --golden; empty: the plan's files only
  bool structure = false;
  Backend backend = Backend::Auto;
};
struct VerifyResult {
  std::vector<std::string> differences;      // verify_plan's, then the structure's problems; empty: a match
  std::optional<StructureReport> structure;  // with request.structure
};
VerifyResult verify(const VerifyRequest& request);

// verify --golden: the expected image is the golden plus the overlay stamp would write for `device`
// (the same plan, applied to the golden opened read-only). Every byte of image_path (a file, a
// compressed image, or a card: its bytes past the golden's size are not looked at) outside the
// overlay's written runs must equal the golden's: one line for all that differ (how many bytes and
// ranges, the first offset and the partition it falls in), a change stamp never makes. Written runs
// that are byte-equal are fine; when any differs, verify_plan's meaning check judges the plan's
// files and its lines are added. A compressed golden (or image) is decompressed once into an
// unnamed temp file; a plan the overlay cannot hold (a partition only libguestfs opens, a bootstrap
// Artifact to renew) is Error(Unsupported) naming why. Empty: a match.
std::vector<std::string> verify_against_golden(const std::string& golden_path, const std::string& image_path, const DevicePlan& device,
                                               Backend backend);

// The warning for a plan that edits a root filesystem of an image holding a bootstrap Artifact.
std::optional<std::string> bootstrap_warning(ImageView& image, const Plan& plan);

}  // namespace imprint
