// The Artifact writer checked with mender-artifact itself (read, validate) and openssl.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include "imprint/artifact/artifact.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "support.hpp"

using namespace imprint;
using namespace imprint::test;

namespace {

// A bootstrap Artifact as mender-convert 4 writes it.
std::string make_bootstrap(const TempDir& dir, const std::string& checksum, const std::string& key = "") {
  const std::string out = dir / "bootstrap.mender";
  shell("mender-artifact write bootstrap-artifact --no-progress -n release-1 -t beaglebone -t beaglebone-yocto"
        " -p rootfs-image.version:release-1 -p rootfs-image.checksum:" + checksum +
        " --clears-provides 'rootfs-image.*' " + (key.empty() ? "" : "-k " + key + " ") + "-o " + out + " >/dev/null");
  return read_file(out);
}

std::string rsa_key(const TempDir& dir) {
  // PKCS#1: mender-artifact 3.9 signs only with that form, and the tests make signed inputs with it.
  shell("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null | openssl pkey -traditional -out " + (dir / "rsa.pem") +
        " && openssl pkey -in " +
        (dir / "rsa.pem") + " -pubout -out " + (dir / "rsa.pub"));
  return dir / "rsa.pem";
}

std::string ec_key(const TempDir& dir) {
  shell("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + (dir / "ec.pem") + " && openssl pkey -in " +
        (dir / "ec.pem") + " -pubout -out " + (dir / "ec.pub"));
  return dir / "ec.pem";
}

std::string read_artifact(const std::string& path) {
  const CommandResult result = run({"mender-artifact", "read", "--no-progress", path});
  EXPECT_EQ(result.status, 0) << result.err;
  return result.out;
}

const std::string kOld = std::string(64, 'a');
const std::string kNew = std::string(64, 'b');

}  // namespace

TEST(ArtifactRewrite, RenewsTheChecksumAndKeepsEverythingElse) {
  TempDir dir;
  const std::string original = make_bootstrap(dir, kOld);
  const RewrittenArtifact rewritten = rewrite_artifact_provides(original, "bootstrap.mender", {{"rootfs-image.checksum", kNew}}, "");
  EXPECT_FALSE(rewritten.was_signed);
  write_file(dir / "new.mender", rewritten.bytes);
  const std::string before = read_artifact(dir / "bootstrap.mender");
  const std::string after = read_artifact(dir / "new.mender");
  EXPECT_NE(after.find("rootfs-image.checksum: " + kNew), std::string::npos) << after;
  std::string expected = before;
  expected.replace(expected.find(kOld), kOld.size(), kNew);
  EXPECT_EQ(after, expected);  // name, device types, version provide, clears-provides: unchanged
  EXPECT_EQ(run({"mender-artifact", "validate", dir / "new.mender"}).status, 0);
}

TEST(ArtifactRewrite, DropsASignatureItCannotRenewAndReSignsWithAKey) {
  TempDir dir;
  const std::string key = rsa_key(dir);
  const std::string original = make_bootstrap(dir, kOld, key);
  const RewrittenArtifact unsigned_ = rewrite_artifact_provides(original, "b", {{"rootfs-image.checksum", kNew}}, "");
  EXPECT_TRUE(unsigned_.was_signed);
  EXPECT_FALSE(unsigned_.signed_now);
  write_file(dir / "unsigned.mender", unsigned_.bytes);
  EXPECT_NE(read_artifact(dir / "unsigned.mender").find("Signature: no signature"), std::string::npos);
  const RewrittenArtifact resigned = rewrite_artifact_provides(original, "b", {{"rootfs-image.checksum", kNew}}, key);
  EXPECT_TRUE(resigned.signed_now);
  write_file(dir / "signed.mender", resigned.bytes);
  const CommandResult valid = run({"mender-artifact", "validate", "-k", dir / "rsa.pub", dir / "signed.mender"});
  EXPECT_EQ(valid.status, 0) << valid.out << valid.err;
  shell("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null | openssl pkey -pubout -out " + (dir / "other.pub"));
  EXPECT_NE(run({"mender-artifact", "validate", "-k", dir / "other.pub", dir / "signed.mender"}).status, 0);
}

TEST(ArtifactRewrite, RefusesWhatIsNotAnArtifact) {
  const Error error = expect_error([] { rewrite_artifact_provides("not an artifact", "data:/mender/bootstrap.mender", {}, ""); },
                                   ErrorCode::Corrupt);
  EXPECT_NE(std::string(error.what()).find("data:/mender/bootstrap.mender"), std::string::npos) << error.what();
}

TEST(ArtifactSign, RsaSignatureVerifiesWithOpenssl) {
  TempDir dir;
  const std::string key = rsa_key(dir);
  write_file(dir / "manifest", "abc  version\n");
  write_file(dir / "sig.b64", sign_manifest("abc  version\n", key));
  shell("base64 -d " + (dir / "sig.b64") + " > " + (dir / "sig"));
  EXPECT_NO_THROW(shell("openssl dgst -sha256 -verify " + (dir / "rsa.pub") + " -signature " + (dir / "sig") + " " + (dir / "manifest") +
                        " >/dev/null"));
}

TEST(ArtifactSign, RefusesKeysMenderArtifactCannotVerify) {
  TempDir dir;
  shell("openssl genpkey -algorithm ED25519 -out " + (dir / "ed.pem"));
  expect_error([&] { sign_manifest("x", dir / "ed.pem"); }, ErrorCode::Invalid);
  write_file(dir / "junk.pem", "junk");
  expect_error([&] { sign_manifest("x", dir / "junk.pem"); }, ErrorCode::Invalid);
}

class ArtifactRootfs : public ::testing::TestWithParam<std::string> {};

TEST_P(ArtifactRootfs, WritesARootfsImageArtifactMenderArtifactValidates) {
  TempDir dir;
  const std::string key = GetParam() == "rsa" ? rsa_key(dir) : GetParam() == "ec" ? ec_key(dir) : "";
  // The payload is a partition in the middle of a file: 4 KiB of padding, then a small ext4.
  shell("truncate -s 4M " + (dir / "fs.ext4") + " && mkfs.ext4 -q -F " + (dir / "fs.ext4") + " && echo hello > " + (dir / "h") +
        " && debugfs -w -R 'write " + (dir / "h") + " hello' " + (dir / "fs.ext4") + " 2>/dev/null" +
        " && (head -c 4096 /dev/urandom; cat " + (dir / "fs.ext4") + ") > " + (dir / "disk"));
  const UniqueFd image = open_read(dir / "disk");
  const int out = ::open((dir / "update.mender").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  ASSERT_GE(out, 0);
  RootfsArtifact spec{"fleet-1.0", {"beaglebone"}, "rootfs.ext4", key};
  const std::string checksum = write_rootfs_artifact(spec, image.get(), 4096, 4 << 20, out, dir / "scratch");
  ::close(out);
  EXPECT_EQ(checksum, file_sha256(dir / "fs.ext4"));
  const std::string info = read_artifact(dir / "update.mender");
  EXPECT_NE(info.find("Name: fleet-1.0"), std::string::npos) << info;
  EXPECT_NE(info.find("Compatible devices: '[beaglebone]'"), std::string::npos) << info;
  EXPECT_NE(info.find("Type:   rootfs-image"), std::string::npos) << info;
  EXPECT_NE(info.find("rootfs-image.checksum: " + checksum), std::string::npos) << info;
  EXPECT_NE(info.find("rootfs-image.version: fleet-1.0"), std::string::npos) << info;
  std::vector<std::string> validate{"mender-artifact", "validate", dir / "update.mender"};
  if (!key.empty()) validate = {"mender-artifact", "validate", "-k", (GetParam() == "rsa" ? dir / "rsa.pub" : dir / "ec.pub"), dir / "update.mender"};
  const CommandResult valid = run(validate);
  EXPECT_EQ(valid.status, 0) << valid.out << valid.err;
  // The payload, unpacked with tar, is the partition byte for byte and a clean ext4.
  shell("cd " + dir.path() + " && tar -xOf update.mender data/0000.tar.gz | tar -xz");
  EXPECT_EQ(file_sha256(dir / "rootfs.ext4"), checksum);
  EXPECT_EQ(run({"e2fsck", "-fn", dir / "rootfs.ext4"}).status, 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "scratch"));
}

INSTANTIATE_TEST_SUITE_P(Keys, ArtifactRootfs, ::testing::Values("unsigned", "rsa", "ec"));
