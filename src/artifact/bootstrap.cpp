// The bootstrap Artifact mender-convert 4.0+ leaves on the data partition: its
// rootfs-image.checksum must be the sha256 of the root filesystem the device boots.
#include <unistd.h>

#include <algorithm>

#include "imprint/artifact/artifact.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/fs/filesystem.hpp"

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

bool bootstrap_renewable(const DiskImage& image) {
  for (const Role role : {Role::Data, Role::Primary, Role::Secondary}) {
    const auto& partitions = image.layout().partitions;
    const auto found = std::find_if(partitions.begin(), partitions.end(), [&](const Partition& p) { return p.role == role; });
    if (found == partitions.end() || image.backend_for(*found) != Backend::Native) return false;
  }
  return true;
}

std::vector<std::string> refresh_bootstrap_artifact(DiskImage& image, const std::string& key_path) {
  if (!bootstrap_renewable(image)) return {};
  Filesystem& data = image.filesystem(image.partition(Role::Data));
  const auto stat = data.stat(bootstrap_path);
  if (!stat) return {};
  // The caller reopened the image after the stamp: libext2fs writes each superblock at close, so only
  // a closed filesystem has the bytes the device will hash.
  image.flush();
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
