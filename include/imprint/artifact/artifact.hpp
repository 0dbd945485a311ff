// Mender Artifacts (format version 3) written natively: libarchive for the tar and gzip layers,
// OpenSSL for the sha256 sums and the manifest signature (as mender-artifact signs: RSA PKCS#1 v1.5
// or ECDSA P-256 as r||s, over the manifest's sha256, base64).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "imprint/image/image.hpp"

namespace imprint {

// The base64 signature of a manifest with the PEM private key at key_path (RSA or ECDSA P-256).
std::string sign_manifest(const std::string& manifest, const std::string& key_path);

// A `rootfs-image` Artifact whose payload is a partition of an image file.
struct RootfsArtifact {
  std::string name;                       // artifact_name and rootfs-image.version
  std::vector<std::string> device_types;  // artifact_depends.device_type
  std::string payload_name = "rootfs.ext4";
  std::string key_path;                   // sign when set
};

// Writes the Artifact to out_fd: payload = `size` bytes of image_fd from `offset`, gzip-compressed in
// data/0000.tar.gz; provides rootfs-image.checksum = its sha256 (returned). scratch_path names a file
// in the output's directory for the compressed payload (never kept).
std::string write_rootfs_artifact(const RootfsArtifact& spec, int image_fd, std::uint64_t offset, std::uint64_t size,
                                  int out_fd, const std::string& scratch_path);

// An Artifact rewritten with some artifact_provides of its first payload replaced; everything else
// (name, device types, depends, clears_artifact_provides, data) is kept byte for byte.
struct RewrittenArtifact {
  std::string bytes;
  bool was_signed = false;  // the input had a manifest.sig
  bool signed_now = false;  // the output has one (key_path given and the input was signed)
};
RewrittenArtifact rewrite_artifact_provides(const std::string& artifact, const std::string& name,
                                            const std::vector<std::pair<std::string, std::string>>& provides,
                                            const std::string& key_path);

// The sha256 of a partition's bytes as the device (and mender-convert) hashes the partition image.
std::string partition_sha256(const DiskImage& image, const Partition& partition);

// Can refresh_bootstrap_artifact renew this image's bootstrap Artifact? Only when the data partition
// and both root filesystems are opened natively (libext2fs): a libguestfs appliance is shut down by
// the flush that must precede the hash, and asking it whether the file exists costs a VM start.
bool bootstrap_renewable(const DiskImage& image);

// After a plan edited the root filesystems: when the data partition holds mender/bootstrap.mender,
// rewrites its rootfs-image.checksum to the sha256 of rootfs A (refusing when A and B differ). Returns
// warnings (a signature that could not be renewed). Call it on an image reopened after the stamp (the
// rootfs filesystems closed, their superblocks final). Does nothing when not
// bootstrap_renewable.
std::vector<std::string> refresh_bootstrap_artifact(DiskImage& image, const std::string& key_path);

}  // namespace imprint
