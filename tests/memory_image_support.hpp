// A mender-convert image in memory for the apply layer's unit tests: boot (vfat) p1, primary p2,
// secondary p3, data p4; the primary's /etc/fstab mounts boot at /uboot and data at /data, and its
// /etc/passwd and /etc/group know root and mender (uid/gid 999). And plan operations to apply there.
#pragma once

#include <string>

#include "imprint/core/bytes.hpp"
#include "imprint/image/memory_image.hpp"
#include "imprint/core/pathspec.hpp"
#include "imprint/profile/plan.hpp"

namespace imprint::test {

inline void put_file(Filesystem& filesystem, const std::string& path, const std::string& bytes, Attributes attributes = {}) {
  make_directories(filesystem, parent_path(path), Attributes{0755, 0, 0, 1});
  MemorySource source(bytes);
  filesystem.write(path, source, attributes);
}

// A plan operation as a profile entry at profile.yaml:10:5 would give it (mtime 1700000000).
inline PlanOp plan_op(OpKind kind, const std::string& target, const std::string& bytes = "", unsigned mode = 0644,
                      const std::string& owner = "0:0") {
  PlanOp result;
  result.kind = kind;
  result.target = parse_path_spec(target);
  result.bytes = bytes;
  result.mode = mode;
  result.owner = owner;
  result.mtime = 1700000000;
  result.origin = "profile.yaml:10:5";
  return result;
}

inline MemoryImage mender_image(const std::string& boot_mount = "/uboot", const std::string& name = "golden.img") {
  MemoryImage image(name);
  MemoryFilesystemOptions boot;
  boot.type = "vfat";
  boot.capacity = 16 << 20;
  image.add_partition(Role::Boot, boot);
  for (Role role : {Role::Primary, Role::Secondary}) {
    MemoryFilesystem& rootfs = image.add_partition(role);
    put_file(rootfs, "/etc/fstab",
             "/dev/root / auto defaults 0 1\n/dev/mmcblk0p1 " + boot_mount + " auto defaults 0 0\n/dev/mmcblk0p4 /data auto defaults 0 0\n");
    put_file(rootfs, "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nmender:x:999:999::/var/lib/mender:/bin/false\n");
    put_file(rootfs, "/etc/group", "root:x:0:\nmender:x:999:\n");
  }
  image.add_partition(Role::Data);
  return image;
}

}  // namespace imprint::test
