// The device-view path rule (place_path): which partition a device path lands on, and where in it.
#include <gtest/gtest.h>

#include <string>

#include "imprint/core/device_view.hpp"

namespace imprint {
namespace {

std::string placed(const std::string& role, const std::string& path, const MountMap& mounts = mender_convert_mounts()) {
  const RolePath where = place_path(PathSpec{role, path}, mounts);
  return where.role + ":" + where.path;
}

TEST(CoreDeviceView, MenderConvertMountsAreTheDefaults) {
  const MountMap mounts = mender_convert_mounts();
  EXPECT_EQ(mounts.boot_mounts, (std::vector<std::string>{"/uboot", "/boot/efi"}));
  EXPECT_EQ(mounts.data_mount, "/data");
  EXPECT_EQ(placed("", "/data/mender/x"), "data:/mender/x");
  EXPECT_EQ(placed("", "/uboot/uEnv.txt"), "boot:/uEnv.txt");
  EXPECT_EQ(placed("", "/boot/efi/EFI/BOOT/grub.cfg"), "boot:/EFI/BOOT/grub.cfg");
  EXPECT_EQ(placed("", "/usr/bin/x"), "rootfs:/usr/bin/x");
}

TEST(CoreDeviceView, TheMountPointItselfIsThePartitionRoot) {
  EXPECT_EQ(placed("", "/data"), "data:/");
  EXPECT_EQ(placed("", "/uboot"), "boot:/");
  EXPECT_EQ(placed("", "/boot/efi"), "boot:/");
}

TEST(CoreDeviceView, APrefixIsNotAMountPoint) {
  EXPECT_EQ(placed("", "/database/x"), "rootfs:/database/x");
  EXPECT_EQ(placed("", "/ubootx"), "rootfs:/ubootx");
  EXPECT_EQ(placed("", "/boot/efix/y"), "rootfs:/boot/efix/y");
  EXPECT_EQ(placed("", "/boot/x"), "rootfs:/boot/x");  // /boot is not /boot/efi
  EXPECT_EQ(placed("", "/var/lib/mender/x"), "rootfs:/var/lib/mender/x");  // a link on the device, not a mount
  EXPECT_EQ(placed("", "/"), "rootfs:/");
}

TEST(CoreDeviceView, AnExplicitRoleKeepsItsPath) {
  EXPECT_EQ(placed("rootfs", "/data/x"), "rootfs:/data/x");
  EXPECT_EQ(placed("primary", "/uboot/x"), "primary:/uboot/x");
  EXPECT_EQ(placed("data", "/mender/x"), "data:/mender/x");
  EXPECT_EQ(placed("boot", "/uEnv.txt"), "boot:/uEnv.txt");
  EXPECT_EQ(placed("p3", "/etc/x"), "p3:/etc/x");
}

TEST(CoreDeviceView, TheImageMountPointsReplaceTheDefaults) {
  const MountMap fstab{{"/boot/firmware"}, "/var/data"};
  EXPECT_EQ(placed("", "/var/data/mender/x", fstab), "data:/mender/x");
  EXPECT_EQ(placed("", "/data/mender/x", fstab), "rootfs:/data/mender/x");
  EXPECT_EQ(placed("", "/boot/firmware/config.txt", fstab), "boot:/config.txt");
  EXPECT_EQ(placed("", "/uboot/uEnv.txt", fstab), "rootfs:/uboot/uEnv.txt");
}

TEST(CoreDeviceView, NoDataOrBootMountLeavesPathsOnTheRootFilesystems) {
  const MountMap none{{}, ""};
  EXPECT_EQ(placed("", "/data/x", none), "rootfs:/data/x");
  EXPECT_EQ(placed("", "/uboot/x", none), "rootfs:/uboot/x");
}

TEST(CoreDeviceView, DataIsTriedBeforeBootAndBootMountsInOrder) {
  // A boot partition mounted inside the data mount point (odd, but fstab allows it): data wins.
  const MountMap nested{{"/data/boot", "/boot"}, "/data"};
  EXPECT_EQ(placed("", "/data/boot/x", nested), "data:/boot/x");
  const MountMap two{{"/boot", "/boot/efi"}, "/data"};
  EXPECT_EQ(placed("", "/boot/efi/x", two), "boot:/efi/x");  // the first boot mount point that holds it
}

TEST(CoreDeviceView, AMountPointAtTheRootHoldsEveryPath) {
  const MountMap root{{}, "/"};
  EXPECT_EQ(placed("", "/etc/x", root), "data:/etc/x");
  EXPECT_EQ(placed("", "/", root), "data:/");
}

}  // namespace
}  // namespace imprint
