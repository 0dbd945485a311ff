// Stamping: profile + device -> plan -> checks -> golden copied to a pending output -> plan applied
// -> flushed -> renamed to the final name. And verify: an image checked against a plan.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "imprint/image.hpp"
#include "imprint/plan.hpp"
#include "imprint/profile.hpp"

namespace imprint {

struct StampRequest {
  std::string profile_path;
  std::string golden_path;
  std::string device_id;
  Variables overrides;       // CSV columns and --set/--set-file/--set-env, already merged
  std::string output_path;   // ignored with in_place
  bool in_place = false;     // apply to golden_path itself (a raw image; developer use)
  bool dry_run = false;      // build and check the plan, touch nothing
};

struct StampResult {
  Plan plan;
  std::string output_path;
  std::vector<std::string> warnings;  // e.g. the stale bootstrap Artifact
};

// Loads the profile and builds the device's plan (credentials included), runs the profile's checks.
Plan prepare_plan(const Profile& profile, const std::string& device_id, const Variables& overrides);

StampResult stamp(const StampRequest& request);

// Applies a plan to an open, writable image (creating parent directories as needed).
void apply_plan(DiskImage& image, const Plan& plan);

// Every difference between the image and the plan, as one line each ("primary (p2):
// /usr/bin/x: mode 0644, expected 0755"); empty when the image matches.
std::vector<std::string> verify_plan(DiskImage& image, const Plan& plan);

// The warning for a plan that edits a root filesystem of an image holding a bootstrap Artifact.
std::optional<std::string> bootstrap_warning(DiskImage& image, const Plan& plan);

}  // namespace imprint
