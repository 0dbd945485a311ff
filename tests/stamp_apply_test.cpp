// apply_plan on an image of in-memory filesystems: where each op lands (device view, explicit
// roles, the image's own fstab), what it leaves there (bytes, modes, owners by the image's own
// names, times, parents), and how it refuses (a symlink on the way, an unknown owner, a full
// partition), naming the op's profile line and the partition.
#include <gtest/gtest.h>

#include "imprint/core/error.hpp"
#include "imprint/stamp/stamp.hpp"
#include "memory_image_support.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::expect_error;
using test::mender_image;
using test::plan_op;
using test::put_file;

Plan plan_of(std::vector<PlanOp> ops) { return Plan{"dev-1", std::move(ops)}; }

TEST(StampApply, EachOpLandsWhereTheDeviceWillSeeIt) {
  MemoryImage image = mender_image();
  put_file(image.memory_filesystem(Role::Primary), "/etc/old", "stale");
  put_file(image.memory_filesystem(Role::Secondary), "/etc/old", "stale");
  apply_plan(image, plan_of({
                        plan_op(OpKind::Directory, "/data/app", "", 0750, "mender:mender"),
                        plan_op(OpKind::File, "/data/mender/device-id", "dev-1\n", 0600),
                        plan_op(OpKind::File, "/etc/hostname", "dev-1\n", 0644),
                        plan_op(OpKind::File, "/uboot/config.txt", "dtoverlay=x\n", 0644),
                        plan_op(OpKind::Symlink, "/var/lib/mender", "/data/mender"),
                        plan_op(OpKind::Remove, "/etc/old"),
                        plan_op(OpKind::Remove, "/etc/never-there"),  // nothing to remove is fine
                        plan_op(OpKind::File, "primary:/etc/only-a", "a", 0600),
                    }));

  Filesystem& data = image.memory_filesystem(Role::Data);
  EXPECT_EQ(read_all(data, "/mender/device-id"), "dev-1\n");  // /data stripped: the partition's own path
  const FileStat id = data.stat("/mender/device-id").value();
  EXPECT_EQ(id.mode, 0600u);
  EXPECT_EQ(id.mtime, 1700000000);
  // Parents are made 0755 root, with the op's time.
  const FileStat parent = data.stat("/mender").value();
  EXPECT_EQ(parent.type, FileType::Directory);
  EXPECT_EQ(parent.mode, 0755u);
  EXPECT_EQ(parent.uid, 0u);
  EXPECT_EQ(parent.mtime, 1700000000);
  const FileStat app = data.stat("/app").value();
  EXPECT_EQ(app.mode, 0750u);
  EXPECT_EQ(app.uid, 999u);  // "mender" from the primary rootfs' /etc/passwd, not the host's
  EXPECT_EQ(app.gid, 999u);
  EXPECT_EQ(read_all(image.memory_filesystem(Role::Boot), "/config.txt"), "dtoverlay=x\n");

  for (Role role : {Role::Primary, Role::Secondary}) {  // a rootfs path lands on both
    Filesystem& rootfs = image.memory_filesystem(role);
    EXPECT_EQ(read_all(rootfs, "/etc/hostname"), "dev-1\n") << to_string(role);
    EXPECT_EQ(rootfs.stat("/var/lib/mender")->link_target, "/data/mender") << to_string(role);
    EXPECT_EQ(rootfs.stat("/var/lib")->mode, 0755u);
    EXPECT_FALSE(rootfs.stat("/etc/old")) << to_string(role);
    EXPECT_FALSE(rootfs.stat("/data")) << "nothing of /data goes to the root filesystem";
  }
  EXPECT_TRUE(image.memory_filesystem(Role::Primary).stat("/etc/only-a"));
  EXPECT_FALSE(image.memory_filesystem(Role::Secondary).stat("/etc/only-a"));
  EXPECT_EQ(image.memory_filesystem(Role::Data).flushes(), 0u);  // flushing is the caller's
}

TEST(StampApply, TheImagesFstabDecidesWhereTheBootPartitionIs) {
  MemoryImage image = mender_image("/boot/efi");
  apply_plan(image, plan_of({plan_op(OpKind::File, "/boot/efi/grub.cfg", "set x=1\n"), plan_op(OpKind::File, "/uboot/x", "y")}));
  EXPECT_EQ(read_all(image.memory_filesystem(Role::Boot), "/grub.cfg"), "set x=1\n");
  // /uboot is not a mount point of this image: a plain rootfs path.
  EXPECT_FALSE(image.memory_filesystem(Role::Boot).stat("/x"));
  EXPECT_EQ(read_all(image.memory_filesystem(Role::Primary), "/uboot/x"), "y");
}

TEST(StampApply, AnExistingDirectoryTakesThePlannedModeAndOwnerAndAFileIsReplacedWhole) {
  MemoryImage image = mender_image();
  Filesystem& data = image.memory_filesystem(Role::Data);
  make_directories(data, "/mender", Attributes{0700, 5, 5, 1});
  put_file(data, "/mender/device-id", "a much longer old content", Attributes{0666, 7, 7, 1});
  apply_plan(image, plan_of({plan_op(OpKind::Directory, "/data/mender", "", 0755, "0:0"), plan_op(OpKind::File, "/data/mender/device-id", "new", 0600, "1:2")}));
  EXPECT_EQ(data.stat("/mender")->mode, 0755u);
  EXPECT_EQ(data.stat("/mender")->uid, 0u);
  const FileStat id = data.stat("/mender/device-id").value();
  EXPECT_EQ(read_all(data, "/mender/device-id"), "new");
  EXPECT_EQ(id.mode, 0600u);
  EXPECT_EQ(id.uid, 1u);
  EXPECT_EQ(id.gid, 2u);
}

TEST(StampApply, ASymlinkOnTheWayIsRefusedWithTheDataPathToWriteInstead) {
  MemoryImage image = mender_image();
  for (Role role : {Role::Primary, Role::Secondary}) image.memory_filesystem(role).symlink("/var", "/data/var", Attributes{});
  const Error error = expect_error([&] { apply_plan(image, plan_of({plan_op(OpKind::File, "/var/lib/mender/x", "k")})); },
                                   ErrorCode::Symlink);
  EXPECT_EQ(std::string(error.what()),
            "profile.yaml:10:5: primary (p2): /var is a symlink to /data/var; write /data/var/... instead");
  EXPECT_TRUE(image.memory_filesystem(Role::Data).list("/").empty());  // nothing written through it
}

TEST(StampApply, AnOwnerTheImageDoesNotKnowNamesTheOp) {
  MemoryImage image = mender_image();
  const Error error = expect_error([&] { apply_plan(image, plan_of({plan_op(OpKind::File, "/data/x", "x", 0644, "nobody:nogroup")})); },
                                   ErrorCode::Invalid);
  EXPECT_EQ(std::string(error.what()), "owner 'nobody' is not in the image's /etc/passwd");
  EXPECT_FALSE(image.memory_filesystem(Role::Data).stat("/x"));
}

TEST(StampApply, AFullPartitionNamesTheOpAndThePartitionAndKeepsTheOldFile) {
  MemoryImage image("golden.img");
  image.add_partition(Role::Boot);
  image.add_partition(Role::Primary);
  MemoryFilesystemOptions small;
  small.capacity = 64 << 10;
  MemoryFilesystem& data = image.add_partition(Role::Data, small);
  put_file(data, "/mender/blob", "old");
  const Error error = expect_error(
      [&] { apply_plan(image, plan_of({plan_op(OpKind::File, "/data/mender/blob", std::string(100 << 10, 'x'))})); }, ErrorCode::NoSpace);
  EXPECT_EQ(std::string(error.what()).rfind("profile.yaml:10:5: data (p3): /mender/blob: ", 0), 0u) << error.what();
  EXPECT_EQ(read_all(data, "/mender/blob"), "old");
}

TEST(StampApply, ExplicitRolesAndPartitionNumbersAndMissingRoles) {
  MemoryImage image = mender_image();
  apply_plan(image, plan_of({plan_op(OpKind::File, "data:/direct", "d"), plan_op(OpKind::File, "p1:/by-number", "n"),
                             plan_op(OpKind::File, "secondary:/b-only", "b"), plan_op(OpKind::File, "rootfs:/both", "r")}));
  EXPECT_EQ(read_all(image.memory_filesystem(Role::Data), "/direct"), "d");
  EXPECT_EQ(read_all(image.memory_filesystem(Role::Boot), "/by-number"), "n");
  EXPECT_FALSE(image.memory_filesystem(Role::Primary).stat("/b-only"));
  EXPECT_TRUE(image.memory_filesystem(Role::Secondary).stat("/b-only"));
  EXPECT_TRUE(image.memory_filesystem(Role::Primary).stat("/both"));
  EXPECT_TRUE(image.memory_filesystem(Role::Secondary).stat("/both"));

  MemoryImage plain("plain.img");  // one root filesystem, no data partition
  plain.add_partition(Role::Boot);
  plain.add_partition(Role::Primary);
  apply_plan(plain, plan_of({plan_op(OpKind::File, "/etc/x", "x")}));  // no secondary: only A
  EXPECT_TRUE(plain.memory_filesystem(Role::Primary).stat("/etc/x"));
  const Error error = expect_error([&] { apply_plan(plain, plan_of({plan_op(OpKind::File, "data:/x", "x")})); }, ErrorCode::NotFound);
  EXPECT_EQ(std::string(error.what()), "profile.yaml:10:5: plain.img has no data partition (for data:/x)");
}

TEST(StampApply, APartitionWithoutAFilesystemIsRefusedAsOnDisk) {
  MemoryImage image("golden.img");
  image.add_partition(Role::Boot);
  image.add_partition(Role::Primary);
  image.add_empty_partition(Role::None, "swap");
  const Error error = expect_error([&] { apply_plan(image, plan_of({plan_op(OpKind::File, "p3:/x", "x")})); }, ErrorCode::Unsupported);
  // (The location is named before the image's own message, which names it again: as for a DiskImage.)
  EXPECT_EQ(std::string(error.what()), "profile.yaml:10:5: p3: golden.img: p3 holds no filesystem that libblkid recognizes");
}

}  // namespace
}  // namespace imprint
