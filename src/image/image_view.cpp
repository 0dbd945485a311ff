// ImageView: what every image offers on top of its layout and filesystems.
#include "imprint/core/device_view.hpp"
#include "imprint/core/error.hpp"
#include "imprint/image/image.hpp"

namespace imprint {

const Partition& ImageView::partition(Role role) const {
  for (const Partition& candidate : layout().partitions) {
    if (candidate.role == role) return candidate;
  }
  throw Error(path() + " has no " + to_string(role) + " partition", ErrorCode::NotFound);
}

const Partition& ImageView::partition_number(int number) const {
  for (const Partition& candidate : layout().partitions) {
    if (candidate.number == number) return candidate;
  }
  throw Error(path() + " has no partition " + std::to_string(number), ErrorCode::NotFound);
}

const MountMap& ImageView::mounts() {
  if (mounts_) return *mounts_;
  std::string fstab;
  try {
    fstab = read_all(filesystem(partition(Role::Primary)), "/etc/fstab");
  } catch (const Error&) {
    // No readable fstab (not a mender image, or a rootfs we cannot open): mender-convert's mounts.
    mounts_ = mender_convert_mounts();
    return *mounts_;
  }
  try {
    mounts_ = parse_fstab(fstab, layout());
  } catch (const Error& error) {
    throw Error(path() + ": " + partition_name(partition(Role::Primary)) + ": " + error.what(), error.code());
  }
  return *mounts_;
}

}  // namespace imprint
