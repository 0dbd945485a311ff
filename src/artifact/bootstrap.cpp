// The bootstrap Artifact mender-convert 4.0+ leaves on the data partition: its
// rootfs-image.checksum must be the sha256 of the root filesystem the device boots.
#include <unistd.h>

#include <algorithm>

#include "imprint/artifact.hpp"
#include "imprint/bytes.hpp"
#include "imprint/error.hpp"
#include "imprint/fileio.hpp"
#include "imprint/filesystem.hpp"

namespace imprint {

namespace {

constexpr const char* bootstrap_path = "/mender/bootstrap.mender";

}  // namespace

std::string partition_sha256(const DiskImage& image, const Partition& partition) {
  const UniqueFd fd = open_read(image.io_path());
  Sha256 hash;
  std::string buffer(1 << 20, '\0');
  for (std::uint64_t done = 0; done < partition.size;) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), partition.size - done));
    const ssize_t got = ::pread(fd.get(), buffer.data(), want, static_cast<off_t>(partition.offset + done));
    if (got <= 0) throw_errno(image.path() + ": cannot read partition " + std::to_string(partition.number));
    hash.update(std::string_view(buffer.data(), static_cast<std::size_t>(got)));
    done += static_cast<std::uint64_t>(got);
  }
  return hash.hex_digest();
}

std::vector<std::string> refresh_bootstrap_artifact(DiskImage& image, const std::string& key_path) {
  const auto& partitions = image.layout().partitions;
  const auto has = [&](Role role) {
    return std::any_of(partitions.begin(), partitions.end(), [&](const Partition& p) { return p.role == role; });
  };
  if (!has(Role::Data) || !has(Role::Primary) || !has(Role::Secondary)) return {};
  const Partition& data_partition = image.partition(Role::Data);
  Filesystem& data = image.filesystem(data_partition);
  const auto stat = data.stat(bootstrap_path);
  if (!stat) return {};
  // Flushing shuts a libguestfs appliance down, after which the data partition could not be written.
  for (const Role role : {Role::Data, Role::Primary, Role::Secondary}) {
    if (image.backend_for(image.partition(role)) != Backend::Native) {
      return {"data:" + std::string(bootstrap_path) + " holds a rootfs checksum that is now stale (imprint renews it only on "
              "ext2/3/4 partitions opened natively); regenerate it or remove it"};
    }
  }
  image.flush();  // the rootfs edits must be on disk before the partition is hashed
  // The device boots A first, and B is overwritten by the first update: A's checksum is the one to name.
  std::vector<std::string> warnings;
  const std::string checksum = partition_sha256(image, image.partition(Role::Primary));
  if (partition_sha256(image, image.partition(Role::Secondary)) != checksum) {
    warnings.push_back("rootfs A and B differ after this stamp; data:" + std::string(bootstrap_path) +
                       " now names rootfs A's checksum");
  }
  const std::string where = "data:" + std::string(bootstrap_path);
  const RewrittenArtifact rewritten =
      rewrite_artifact_provides(read_all(data, bootstrap_path), where, {{"rootfs-image.checksum", checksum}}, key_path);
  MemorySource source(rewritten.bytes);
  data.write(bootstrap_path, source, Attributes{stat->mode, stat->uid, stat->gid, stat->mtime});
  if (rewritten.was_signed && !rewritten.signed_now) {
    warnings.push_back(where + " was signed; its rootfs checksum is renewed but it is now unsigned (give --artifact-key KEY to re-sign it)");
  }
  return warnings;
}

}  // namespace imprint
