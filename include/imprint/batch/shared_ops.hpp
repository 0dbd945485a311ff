// Batch planning: the operations every device's plan holds identically are applied once, to the
// shared base image every device's image is copied from; each device then applies only its own
// (to an overlay on the base where the overlay can hold them, to a copy of the base otherwise).
#pragma once

#include <cstddef>
#include <vector>

#include "imprint/image/image.hpp"
#include "imprint/profile/plan.hpp"

namespace imprint {

// Two ops that write the same bytes to the same place the same way. An op whose bytes differ on
// every build (not reproducible: a PFX) is never shared, even with itself.
bool same_op(const PlanOp& a, const PlanOp& b);

struct SharedOps {
  std::vector<PlanOp> common;  // in every plan, in the first plan's order
  std::vector<Plan> own;       // own[i]: what plans[i] holds besides them, in its order
};
SharedOps split_shared_ops(const std::vector<const Plan*>& plans);

// A shared operation on a partition only libguestfs opens (vfat, or any with --backend guestfs) costs
// the base an appliance launch of its own (15-25 s with TCG). When every device launches one anyway
// (each has such an operation of its own), those shared operations go to each device's own ops,
// first, in their order: one launch per device and none for the base. Returns how many moved.
std::size_t fold_appliance_ops_into_devices(DiskImage& base, SharedOps& split);

// Can a device's own ops go to an overlay on the base (opened with DiskImage::open_overlay)? Only
// when every partition they write is native ext: what libguestfs writes cannot reach an overlay.
// False too when a target does not resolve (the copy's path reports it, as it always has).
bool overlay_takes(DiskImage& base, const Plan& own);

}  // namespace imprint
