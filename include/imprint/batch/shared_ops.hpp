// Batch planning: the operations every device's plan holds identically are applied once, to the
// shared base image every device's image is copied from; each device then applies only its own.
#pragma once

#include <vector>

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

}  // namespace imprint
