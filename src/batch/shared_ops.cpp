// Which ops of a batch go into the shared base image, and which stay each device's own.
#include "imprint/batch/shared_ops.hpp"

#include <algorithm>

#include "imprint/core/error.hpp"
#include "imprint/image/pathmap.hpp"

namespace imprint {

namespace {

bool contains_op(const std::vector<PlanOp>& ops, const PlanOp& op) {
  return std::any_of(ops.begin(), ops.end(), [&](const PlanOp& other) { return same_op(other, op); });
}

}  // namespace

bool same_op(const PlanOp& a, const PlanOp& b) {
  return a.kind == b.kind && a.target.role == b.target.role && a.target.path == b.target.path && a.bytes == b.bytes &&
         a.mode == b.mode && a.owner == b.owner && a.mtime == b.mtime && a.recursive == b.recursive &&
         a.elf_arch == b.elf_arch && a.reproducible && b.reproducible;
}

SharedOps split_shared_ops(const std::vector<const Plan*>& plans) {
  SharedOps split;
  if (plans.empty()) return split;
  for (const PlanOp& op : plans.front()->ops) {
    if (std::all_of(plans.begin() + 1, plans.end(), [&](const Plan* plan) { return contains_op(plan->ops, op); })) {
      split.common.push_back(op);
    }
  }
  for (const Plan* plan : plans) {
    Plan own{plan->device_id, {}};
    for (const PlanOp& op : plan->ops) {
      if (!contains_op(split.common, op)) own.ops.push_back(op);
    }
    split.own.push_back(std::move(own));
  }
  return split;
}

bool overlay_takes(DiskImage& base, const Plan& own) {
  try {
    std::vector<int> partitions;
    for (const PlanOp& op : own.ops) {
      for (const Location& location : resolve(op.target, base)) partitions.push_back(location.partition);
    }
    return base.overlay_covers(partitions);
  } catch (const Error&) {
    return false;
  }
}

}  // namespace imprint
