// Path mapping: normalize_path and parse_path_spec (core/pathspec), parse_image_target, resolve, describe; and
// parse_fstab on hand-made layouts.
#include <gtest/gtest.h>

#include <functional>

#include "imprint/core/error.hpp"
#include "imprint/image/image.hpp"
#include "imprint/image/pathmap.hpp"

namespace imprint {
namespace {

ErrorCode error_code_of(const std::function<void()>& action, std::string* message = nullptr) {
  try {
    action();
  } catch (const Error& error) {
    if (message != nullptr) *message = error.what();
    return error.code();
  }
  ADD_FAILURE() << "no Error thrown";
  return ErrorCode::Generic;
}

Partition make_partition(int number, Role role, std::string label = "", std::string uuid = "",
                         std::string part_uuid = "", std::string part_label = "") {
  Partition partition;
  partition.number = number;
  partition.role = role;
  partition.label = std::move(label);
  partition.uuid = std::move(uuid);
  partition.part_uuid = std::move(part_uuid);
  partition.part_label = std::move(part_label);
  return partition;
}

// mender-convert 2.x+: boot, primary, secondary, data.
Layout mender_layout() {
  Layout layout;
  layout.table = TableType::Dos;
  layout.partitions = {make_partition(1, Role::Boot, "", "4A9C-A165", "1badcafe-01"),
                       make_partition(2, Role::Primary, "", "cbcdea98-08d1-4574-aa77-a79c30e2a3d1", "1badcafe-02"),
                       make_partition(3, Role::Secondary, "", "11111111-08d1-4574-aa77-a79c30e2a3d1", "1badcafe-03"),
                       make_partition(4, Role::Data, "", "22222222-08d1-4574-aa77-a79c30e2a3d1", "1badcafe-04", "data")};
  return layout;
}

// mender-convert 1.x: labels, p4 extended, p5 data, p6 swap.
Layout v1_layout() {
  Layout layout;
  layout.table = TableType::Dos;
  layout.partitions = {make_partition(1, Role::Boot, "boot"), make_partition(2, Role::Primary, "primary"),
                       make_partition(3, Role::Secondary, "secondary"), make_partition(4, Role::Extended),
                       make_partition(5, Role::Data, "data"), make_partition(6, Role::Swap, "swap")};
  return layout;
}

MountMap uboot_mounts() { return MountMap{{"/uboot"}, "/data"}; }

// ---- normalize_path

TEST(ImagePathmap, NormalizeCollapsesSlashesDotsAndDotDot) {
  EXPECT_EQ(normalize_path("/"), "/");
  EXPECT_EQ(normalize_path("//etc///mender//"), "/etc/mender");
  EXPECT_EQ(normalize_path("/etc/./mender/."), "/etc/mender");
  EXPECT_EQ(normalize_path("/etc/mender/../hostname"), "/etc/hostname");
  EXPECT_EQ(normalize_path("/a/b/../../c"), "/c");
  EXPECT_EQ(normalize_path("/a/.."), "/");
  EXPECT_EQ(normalize_path("/..."), "/...");  // a name, not a parent reference
}

TEST(ImagePathmap, NormalizeRefusesEscapesAndRelativePaths) {
  std::string message;
  EXPECT_EQ(error_code_of([] { normalize_path("/../etc/passwd"); }, &message), ErrorCode::Invalid);
  EXPECT_EQ(message, "/../etc/passwd is outside the filesystem");
  EXPECT_EQ(error_code_of([] { normalize_path("/etc/../../x"); }, &message), ErrorCode::Invalid);
  EXPECT_EQ(message, "/etc/../../x is outside the filesystem");
  EXPECT_EQ(error_code_of([] { normalize_path("etc/passwd"); }, &message), ErrorCode::Invalid);
  EXPECT_EQ(message, "'etc/passwd' is not an absolute path");
  EXPECT_EQ(error_code_of([] { normalize_path(""); }), ErrorCode::Invalid);
}

// ---- specs and targets

TEST(ImagePathmap, RoleNames) {
  for (const char* role : {"primary", "secondary", "rootfs", "data", "boot", "p1", "p4", "p12"}) {
    EXPECT_TRUE(is_role_name(role)) << role;
  }
  for (const char* role : {"", "p", "p0", "px", "Primary", "root", "disk.img", "/data", "p01"}) {
    EXPECT_FALSE(is_role_name(role)) << role;
  }
}

TEST(ImagePathmap, ParsePathSpec) {
  PathSpec spec = parse_path_spec("/etc/hostname");
  EXPECT_EQ(spec.role, "");
  EXPECT_EQ(spec.path, "/etc/hostname");
  spec = parse_path_spec("primary:/etc/x");
  EXPECT_EQ(spec.role, "primary");
  EXPECT_EQ(spec.path, "/etc/x");
  spec = parse_path_spec("p4:/mender/x");
  EXPECT_EQ(spec.role, "p4");
  EXPECT_EQ(spec.path, "/mender/x");
  spec = parse_path_spec("/odd:name");  // a colon inside a device path is part of the name
  EXPECT_EQ(spec.role, "");
  EXPECT_EQ(spec.path, "/odd:name");
  std::string message;
  EXPECT_EQ(error_code_of([] { parse_path_spec("rootfsA:/etc/x"); }, &message), ErrorCode::Invalid);
  EXPECT_NE(message.find("unknown role 'rootfsA'"), std::string::npos) << message;
}

TEST(ImagePathmap, ParseImageTarget) {
  ImageTarget target = parse_image_target("disk.img:/etc/hostname");
  EXPECT_EQ(target.image, "disk.img");
  EXPECT_EQ(target.spec.role, "");
  EXPECT_EQ(target.spec.path, "/etc/hostname");

  target = parse_image_target("IMAGE:primary:/etc/x");
  EXPECT_EQ(target.image, "IMAGE");
  EXPECT_EQ(target.spec.role, "primary");
  EXPECT_EQ(target.spec.path, "/etc/x");

  target = parse_image_target("out/dev-1.img:p4:/mender/x");
  EXPECT_EQ(target.image, "out/dev-1.img");
  EXPECT_EQ(target.spec.role, "p4");

  // A colon in the image name: the image ends at the first ':' followed by '/' or ROLE:/.
  target = parse_image_target("a:b.img:/data/x");
  EXPECT_EQ(target.image, "a:b.img");
  EXPECT_EQ(target.spec.path, "/data/x");
  target = parse_image_target("/abs/dir/disk.img:data:/mender/x");
  EXPECT_EQ(target.image, "/abs/dir/disk.img");
  EXPECT_EQ(target.spec.role, "data");
  EXPECT_EQ(target.spec.path, "/mender/x");
  // Not a role: the colon belongs to the image name (opening it then fails, naming it).
  target = parse_image_target("disk.img:primry:/etc/x");
  EXPECT_EQ(target.image, "disk.img:primry");
  EXPECT_EQ(target.spec.role, "");
  target = parse_image_target("disk.img:/");
  EXPECT_EQ(target.spec.path, "/");
}

TEST(ImagePathmap, ParseImageTargetRefusesMissingPath) {
  std::string message;
  EXPECT_EQ(error_code_of([] { parse_image_target("disk.img"); }, &message), ErrorCode::Invalid);
  EXPECT_EQ(message, "'disk.img' is not IMAGE:/PATH or IMAGE:ROLE:/PATH");
  EXPECT_EQ(error_code_of([] { parse_image_target("disk.img:etc/x"); }), ErrorCode::Invalid);
  EXPECT_EQ(error_code_of([] { parse_image_target(":/etc/x"); }), ErrorCode::Invalid);
}

// ---- resolve

std::vector<Location> resolve_text(const std::string& spec, const Layout& layout, const MountMap& mounts) {
  return resolve(parse_path_spec(spec), layout, mounts);
}

TEST(ImagePathmap, DataPathsGoToTheDataPartitionWithPrefixStripped) {
  const auto locations = resolve_text("/data/mender/mender.conf", mender_layout(), uboot_mounts());
  ASSERT_EQ(locations.size(), 1u);
  EXPECT_EQ(locations[0].partition, 4);
  EXPECT_EQ(locations[0].role, Role::Data);
  EXPECT_EQ(locations[0].path, "/mender/mender.conf");
  EXPECT_EQ(locations[0].device_path, "/data/mender/mender.conf");

  const auto root = resolve_text("/data", mender_layout(), uboot_mounts());
  ASSERT_EQ(root.size(), 1u);
  EXPECT_EQ(root[0].partition, 4);
  EXPECT_EQ(root[0].path, "/");

  // "/database" is not under "/data".
  const auto other = resolve_text("/database/x", mender_layout(), uboot_mounts());
  ASSERT_EQ(other.size(), 2u);
  EXPECT_EQ(other[0].role, Role::Primary);
}

TEST(ImagePathmap, DataPathIsNormalizedBeforeMapping) {
  const auto locations = resolve_text("/etc/../data//mender/./x", mender_layout(), uboot_mounts());
  ASSERT_EQ(locations.size(), 1u);
  EXPECT_EQ(locations[0].partition, 4);
  EXPECT_EQ(locations[0].path, "/mender/x");
  std::string message;
  EXPECT_EQ(error_code_of([] { resolve_text("/data/../../x", mender_layout(), uboot_mounts()); }, &message),
            ErrorCode::Invalid);
  EXPECT_EQ(message, "/data/../../x is outside the filesystem");
  EXPECT_EQ(error_code_of([] { resolve_text("data:/../x", mender_layout(), uboot_mounts()); }), ErrorCode::Invalid);
}

TEST(ImagePathmap, BootMountGoesToTheBootPartition) {
  const auto locations = resolve_text("/uboot/uEnv.txt", mender_layout(), uboot_mounts());
  ASSERT_EQ(locations.size(), 1u);
  EXPECT_EQ(locations[0].partition, 1);
  EXPECT_EQ(locations[0].role, Role::Boot);
  EXPECT_EQ(locations[0].path, "/uEnv.txt");
  EXPECT_EQ(locations[0].device_path, "/uboot/uEnv.txt");

  const MountMap efi{{"/boot/efi"}, "/data"};
  const auto grub = resolve_text("/boot/efi/EFI/BOOT/grub.cfg", mender_layout(), efi);
  ASSERT_EQ(grub.size(), 1u);
  EXPECT_EQ(grub[0].partition, 1);
  EXPECT_EQ(grub[0].path, "/EFI/BOOT/grub.cfg");
  // /boot itself is on the root filesystems when only /boot/efi is mounted.
  EXPECT_EQ(resolve_text("/boot/zImage", mender_layout(), efi).size(), 2u);
  // Without a boot mount, /uboot is a plain rootfs directory.
  EXPECT_EQ(resolve_text("/uboot/x", mender_layout(), MountMap{{}, "/data"}).size(), 2u);
}

TEST(ImagePathmap, OtherPathsGoToBothRootFilesystemsPrimaryFirst) {
  const auto locations = resolve_text("/usr/bin/y", mender_layout(), uboot_mounts());
  ASSERT_EQ(locations.size(), 2u);
  EXPECT_EQ(locations[0].partition, 2);
  EXPECT_EQ(locations[0].role, Role::Primary);
  EXPECT_EQ(locations[1].partition, 3);
  EXPECT_EQ(locations[1].role, Role::Secondary);
  EXPECT_EQ(locations[0].path, "/usr/bin/y");
  EXPECT_EQ(locations[1].path, "/usr/bin/y");
  EXPECT_EQ(locations[1].device_path, "/usr/bin/y");
  // The symlink target /var/lib/mender is a rootfs path: the backend refuses to pass through it.
  EXPECT_EQ(resolve_text("/var/lib/mender/x", mender_layout(), uboot_mounts()).size(), 2u);
}

TEST(ImagePathmap, ExplicitRoles) {
  const Layout layout = mender_layout();
  auto one = resolve_text("primary:/etc/x", layout, uboot_mounts());
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].partition, 2);
  EXPECT_EQ(one[0].path, "/etc/x");

  one = resolve_text("secondary:/etc/x", layout, uboot_mounts());
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].partition, 3);

  const auto both = resolve_text("rootfs:/data/x", layout, uboot_mounts());  // no device-view mapping
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[0].partition, 2);
  EXPECT_EQ(both[1].partition, 3);
  EXPECT_EQ(both[0].path, "/data/x");

  one = resolve_text("data:/mender/x", layout, uboot_mounts());
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].partition, 4);
  EXPECT_EQ(one[0].path, "/mender/x");
  EXPECT_EQ(one[0].device_path, "/data/mender/x");

  one = resolve_text("boot:/uEnv.txt", layout, uboot_mounts());
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].partition, 1);
  EXPECT_EQ(one[0].device_path, "/uboot/uEnv.txt");

  one = resolve_text("p3:/etc/x", layout, uboot_mounts());
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].partition, 3);
  EXPECT_EQ(one[0].role, Role::Secondary);
  EXPECT_EQ(one[0].device_path, "");
}

TEST(ImagePathmap, MissingPartitionsAreNotFound) {
  std::string message;
  EXPECT_EQ(error_code_of([] { resolve_text("p9:/x", mender_layout(), uboot_mounts()); }, &message),
            ErrorCode::NotFound);
  EXPECT_EQ(message, "the image has no partition 9 (p9)");
  Layout single;
  single.partitions = {make_partition(1, Role::Boot)};
  EXPECT_EQ(error_code_of([&] { resolve_text("/etc/x", single, uboot_mounts()); }, &message), ErrorCode::NotFound);
  EXPECT_EQ(message, "the image has no primary partition (for /etc/x)");
  EXPECT_EQ(error_code_of([&] { resolve_text("data:/x", single, uboot_mounts()); }, &message), ErrorCode::NotFound);
  EXPECT_EQ(message, "the image has no data partition (for data:/x)");
}

TEST(ImagePathmap, PlainImageWithOneRootFilesystem) {
  // boot + one rootfs (not A/B): device paths land on the one rootfs; /data stays on it.
  Layout plain;
  plain.partitions = {make_partition(1, Role::Boot), make_partition(2, Role::Primary)};
  const auto locations = resolve_text("/data/x", plain, uboot_mounts());
  ASSERT_EQ(locations.size(), 1u);
  EXPECT_EQ(locations[0].partition, 2);
  EXPECT_EQ(locations[0].path, "/data/x");
}

TEST(ImagePathmap, V1LayoutDataIsP5) {
  const auto locations = resolve_text("/data/mender/device_type", v1_layout(), uboot_mounts());
  ASSERT_EQ(locations.size(), 1u);
  EXPECT_EQ(locations[0].partition, 5);
  EXPECT_EQ(locations[0].path, "/mender/device_type");
}

TEST(ImagePathmap, Describe) {
  EXPECT_EQ(describe(Location{2, Role::Primary, "/etc", "/etc"}), "primary (p2)");
  EXPECT_EQ(describe(Location{4, Role::Data, "/", "/data"}), "data (p4)");
  EXPECT_EQ(describe(Location{7, Role::None, "/", ""}), "p7");
}

// ---- parse_fstab

TEST(ImageFstab, MenderConvertDeviceNames) {
  const std::string fstab =
      "# /etc/fstab: static file system information.\n"
      "/dev/root            /                    auto       defaults              1  1\n"
      "proc                 /proc                proc       defaults              0  0\n"
      "/dev/mmcblk0p1       /uboot               auto       defaults,sync         0  0\n"
      "   # /dev/mmcblk0p3 /old auto defaults 0 0\n"
      "/dev/mmcblk0p4       /data                auto       defaults,x-systemd.growfs 0  0\n";
  const MountMap mounts = parse_fstab(fstab, mender_layout());
  EXPECT_EQ(mounts.boot_mounts, std::vector<std::string>{"/uboot"});
  EXPECT_EQ(mounts.data_mount, "/data");
}

TEST(ImageFstab, OtherDiskNamesAndTags) {
  Layout layout = mender_layout();
  MountMap mounts = parse_fstab("/dev/sda1 /boot/efi vfat defaults 0 0\n/dev/sda4 /var/data ext4 defaults 0 0\n", layout);
  EXPECT_EQ(mounts.boot_mounts, std::vector<std::string>{"/boot/efi"});
  EXPECT_EQ(mounts.data_mount, "/var/data");

  mounts = parse_fstab("/dev/nvme0n1p1\t/boot/efi\tvfat\tdefaults\t0\t0\n", layout);
  EXPECT_EQ(mounts.boot_mounts, std::vector<std::string>{"/boot/efi"});
  EXPECT_EQ(mounts.data_mount, "/data");  // no data line: the default

  mounts = parse_fstab("UUID=4a9c-a165 /uboot vfat defaults 0 0\nPARTUUID=1BADCAFE-04 /data ext4 defaults 0 0\n", layout);
  EXPECT_EQ(mounts.boot_mounts, std::vector<std::string>{"/uboot"});
  EXPECT_EQ(mounts.data_mount, "/data");

  mounts = parse_fstab("PARTLABEL=data /mnt/data ext4 defaults 0 0\n", layout);
  EXPECT_EQ(mounts.data_mount, "/mnt/data");

  mounts = parse_fstab("/dev/disk/by-partuuid/1badcafe-01 /uboot/ vfat defaults 0 0\n", layout);
  EXPECT_EQ(mounts.boot_mounts, std::vector<std::string>{"/uboot"});  // trailing slash dropped
}

TEST(ImageFstab, LabelsOfMenderConvert1) {
  const std::string fstab =
      "LABEL=\"boot\" /uboot auto defaults 0 0\n"
      "LABEL=data /data auto defaults 0 0\n"
      "LABEL=swap none swap sw 0 0\n";
  const MountMap mounts = parse_fstab(fstab, v1_layout());
  EXPECT_EQ(mounts.boot_mounts, std::vector<std::string>{"/uboot"});
  EXPECT_EQ(mounts.data_mount, "/data");
  // The v1 data partition is p5: a p5 device name finds it, p4 (the extended container) does not.
  EXPECT_EQ(parse_fstab("/dev/mmcblk0p5 /srv auto defaults 0 0\n", v1_layout()).data_mount, "/srv");
  EXPECT_EQ(parse_fstab("/dev/mmcblk0p4 /srv auto defaults 0 0\n", v1_layout()).data_mount, "/data");
}

TEST(ImageFstab, IgnoresUnknownDevicesWholeDisksAndBrokenLines) {
  const std::string fstab =
      "/dev/mmcblk0 /whole auto defaults 0 0\n"
      "/dev/mmcblk1p4 /sd2 auto defaults 0 0\n"  // a BeagleBone eMMC: the number names the partition
      "LABEL=nope /nowhere auto defaults 0 0\n"
      "UUID=deadbeef /nowhere auto defaults 0 0\n"
      "tmpfs /tmp tmpfs defaults 0 0\n"
      "lonely-field\n"
      "\n";
  const MountMap mounts = parse_fstab(fstab, mender_layout());
  EXPECT_TRUE(mounts.boot_mounts.empty());
  EXPECT_EQ(mounts.data_mount, "/sd2");
}

TEST(ImageFstab, OctalEscapesInMountPoints) {
  const MountMap mounts = parse_fstab("/dev/mmcblk0p1 /boot\\040files vfat defaults 0 0\n", mender_layout());
  EXPECT_EQ(mounts.boot_mounts, std::vector<std::string>{"/boot files"});
}

TEST(ImageFstab, SeveralBootMounts) {
  const MountMap mounts =
      parse_fstab("/dev/mmcblk0p1 /uboot vfat defaults 0 0\n/dev/mmcblk0p1 /boot/firmware vfat defaults 0 0\n",
                  mender_layout());
  EXPECT_EQ(mounts.boot_mounts, (std::vector<std::string>{"/uboot", "/boot/firmware"}));
}

}  // namespace
}  // namespace imprint
