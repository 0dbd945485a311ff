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

// Whether `op` writes a partition that only the appliance opens. A target that does not resolve is
// left where it is (false): the device's run reports it as it always has.
bool needs_appliance(DiskImage& base, const PlanOp& op) {
  try {
    const std::vector<Location> locations = resolve(op.target, base);
    return std::any_of(locations.begin(), locations.end(), [&](const Location& location) {
      return base.backend_for(base.partition_number(location.partition)) != Backend::Native;
    });
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

std::size_t fold_appliance_ops_into_devices(DiskImage& base, SharedOps& split) {
  if (split.own.empty()) return 0;
  const bool every_device_launches = std::all_of(split.own.begin(), split.own.end(), [&](const Plan& own) {
    return std::any_of(own.ops.begin(), own.ops.end(), [&](const PlanOp& op) { return needs_appliance(base, op); });
  });
  if (!every_device_launches) return 0;
  std::vector<PlanOp> kept, moved;
  for (PlanOp& op : split.common) (needs_appliance(base, op) ? moved : kept).push_back(std::move(op));
  split.common = std::move(kept);
  for (Plan& own : split.own) own.ops.insert(own.ops.begin(), moved.begin(), moved.end());
  return moved.size();
}

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
