// Batch planning: which ops go into the shared base image (applied once for the whole CSV) and
// which each device applies on its copy; and the shards that split a CSV between machines.
#include <gtest/gtest.h>

#include "imprint/batch/batch.hpp"
#include "imprint/batch/shared_ops.hpp"
#include "imprint/core/error.hpp"
#include "support.hpp"

namespace imprint {
namespace {

PlanOp file(const std::string& target, const std::string& bytes, unsigned mode = 0644) {
  PlanOp op;
  op.kind = OpKind::File;
  op.target = parse_path_spec(target);
  op.bytes = bytes;
  op.mode = mode;
  op.mtime = 1700000000;
  return op;
}

std::vector<std::string> targets(const std::vector<PlanOp>& ops) {
  std::vector<std::string> result;
  for (const PlanOp& op : ops) result.push_back((op.target.role.empty() ? "" : op.target.role + ":") + op.target.path);
  return result;
}

TEST(BatchPlan, OpsEveryDeviceHasIdenticallyGoIntoTheSharedBase) {
  const PlanOp client = file("/usr/bin/client", "ELF...", 0755);
  const PlanOp conf = file("/etc/mender/mender.conf", "{}");
  const Plan a{"a", {conf, file("/data/mender/device-id", "a"), client}};
  const Plan b{"b", {client, file("/data/mender/device-id", "b"), conf}};
  const Plan c{"c", {file("/data/mender/device-id", "c"), conf, client, file("/etc/only-c", "c")}};
  const SharedOps split = split_shared_ops({&a, &b, &c});
  EXPECT_EQ(targets(split.common), (std::vector<std::string>{"/etc/mender/mender.conf", "/usr/bin/client"}));  // a's order
  ASSERT_EQ(split.own.size(), 3u);
  EXPECT_EQ(split.own[0].device_id, "a");
  EXPECT_EQ(targets(split.own[0].ops), std::vector<std::string>{"/data/mender/device-id"});
  EXPECT_EQ(split.own[1].ops[0].bytes, "b");
  EXPECT_EQ(targets(split.own[2].ops), (std::vector<std::string>{"/data/mender/device-id", "/etc/only-c"}));  // c's order
}

// A compressed batch's choice per device: own ops on native ext partitions (/data, the rootfs) go to
// an overlay on the base; one on the vfat boot partition (libguestfs) sends the device to a copy of
// the base; so does a target that does not resolve (the copy's path reports it).
TEST(BatchPlan, OwnOpsGoToAnOverlayOnlyWhenEveryPartitionTheyWriteIsNativeExt) {
  DiskImage base = DiskImage::open_overlay(test::fixture("mbr.img"), nullptr);
  EXPECT_TRUE(overlay_takes(base, Plan{"a", {file("/data/mender/device-id", "a"), file("/etc/device-id", "a")}}));
  EXPECT_TRUE(overlay_takes(base, Plan{"a", {}}));
  EXPECT_FALSE(overlay_takes(base, Plan{"a", {file("/data/mender/device-id", "a"), file("/uboot/device-id", "a")}}));
  EXPECT_FALSE(overlay_takes(base, Plan{"a", {file("p9:/x", "a")}}));
}

// Shared ops on the vfat boot partition would cost the base an appliance launch of its own; when
// every device launches one anyway (an own op there), they go with each device's ops, first, in
// their order, and the native ones stay shared. One device that writes only native partitions
// keeps them in the base: its one launch then serves every device.
TEST(BatchPlan, SharedBootOpsGoWithTheDevicesWhenEveryDeviceLaunchesAnApplianceAnyway) {
  using Targets = std::vector<std::string>;
  DiskImage base = DiskImage::open_overlay(test::fixture("mbr.img"), nullptr);
  const PlanOp fleet = file("/uboot/fleet.txt", "fleet");
  const PlanOp conf = file("/etc/mender/mender.conf", "{}");
  const PlanOp logo = file("/uboot/logo.txt", "logo");
  const Plan a{"a", {fleet, conf, logo, file("/uboot/device-id", "a")}};
  const Plan b{"b", {fleet, conf, logo, file("/uboot/device-id", "b"), file("/data/device-id", "b")}};
  SharedOps split = split_shared_ops({&a, &b});
  EXPECT_EQ(fold_appliance_ops_into_devices(base, split), 2u);
  EXPECT_EQ(targets(split.common), Targets{"/etc/mender/mender.conf"});
  EXPECT_EQ(targets(split.own[0].ops), (Targets{"/uboot/fleet.txt", "/uboot/logo.txt", "/uboot/device-id"}));
  EXPECT_EQ(targets(split.own[1].ops), (Targets{"/uboot/fleet.txt", "/uboot/logo.txt", "/uboot/device-id", "/data/device-id"}));

  const Plan c{"c", {fleet, conf, logo, file("/data/device-id", "c")}};
  SharedOps kept = split_shared_ops({&a, &c});
  EXPECT_EQ(fold_appliance_ops_into_devices(base, kept), 0u);
  EXPECT_EQ(targets(kept.common), (Targets{"/uboot/fleet.txt", "/etc/mender/mender.conf", "/uboot/logo.txt"}));
  EXPECT_EQ(targets(kept.own[1].ops), Targets{"/data/device-id"});
}

TEST(BatchPlan, AnyDifferenceKeepsAnOpOwnAndAFreshPfxIsNeverShared) {
  const PlanOp base = file("/etc/x", "x");
  const auto differing = [&](const std::function<void(PlanOp&)>& change) {
    PlanOp other = base;
    change(other);
    return other;
  };
  for (const PlanOp& other : {differing([](PlanOp& op) { op.bytes = "y"; }), differing([](PlanOp& op) { op.mode = 0600; }),
                              differing([](PlanOp& op) { op.owner = "1:1"; }), differing([](PlanOp& op) { op.mtime = 1; }),
                              differing([](PlanOp& op) { op.target = parse_path_spec("primary:/etc/x"); }),
                              differing([](PlanOp& op) { op.kind = OpKind::Symlink; }),
                              differing([](PlanOp& op) { op.elf_arch = "armhf"; })}) {
    EXPECT_FALSE(same_op(base, other));
    const Plan a{"a", {base}};
    const Plan b{"b", {other}};
    const SharedOps split = split_shared_ops({&a, &b});
    EXPECT_TRUE(split.common.empty());
    EXPECT_EQ(split.own[0].ops.size(), 1u);
    EXPECT_EQ(split.own[1].ops.size(), 1u);
  }
  PlanOp pfx = file("/data/mender/device.pfx", "same bytes by chance");
  pfx.reproducible = false;
  EXPECT_FALSE(same_op(pfx, pfx));
  const Plan a{"a", {pfx}};
  const Plan b{"b", {pfx}};
  EXPECT_TRUE(split_shared_ops({&a, &b}).common.empty());
  // One device: every op is in "every plan", the PFX too; it also stays the device's own (it is
  // never the same as anything), so the device's copy gets it from its own plan as well.
  const Plan one{"one", {base, pfx}};
  const SharedOps alone = split_shared_ops({&one});
  EXPECT_EQ(alone.common.size(), 2u);
  EXPECT_EQ(targets(alone.own[0].ops), std::vector<std::string>{"/data/mender/device.pfx"});
  // No device: nothing.
  EXPECT_TRUE(split_shared_ops({}).own.empty());
}

TEST(BatchPlan, ShardsAreParsedStrictly) {
  const Shard shard = parse_shard("2/3");
  EXPECT_EQ(shard.index, 2u);
  EXPECT_EQ(shard.count, 3u);
  EXPECT_TRUE(shard.contains(1));
  EXPECT_TRUE(shard.contains(4));
  EXPECT_FALSE(shard.contains(2));
  for (const char* bad : {"", "1", "0/3", "4/3", "1/0", "a/3", "1/3x", "-1/3", "1//3"}) {
    const Error error = test::expect_error([&] { parse_shard(bad); }, ErrorCode::Invalid);
    EXPECT_EQ(std::string(error.what()), "--shard " + std::string(bad) + ": expected K/N with 1 <= K <= N");
  }
}

}  // namespace
}  // namespace imprint
