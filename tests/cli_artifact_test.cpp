// Mender Artifacts end to end: the bootstrap Artifact renewed by stamp (issue 13 item 4) and
// `imprint artifact`, the fleet's rootfs update (item 5), checked with mender-artifact, e2fsck,
// debugfs, tar and openssl.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "support.hpp"

using namespace imprint::test;

namespace {

const std::string kDevice = "mender-azure-test-device1";

std::string credential(const std::string& name) { return fixture("credentials/" + name); }
std::string profile(const std::string& name) { return source_dir() + "/profiles/" + name; }

std::vector<std::string> with(std::vector<std::string> arguments, const std::vector<std::string>& extra) {
  arguments.insert(arguments.end(), extra.begin(), extra.end());
  return arguments;
}

std::vector<std::string> stamp_arguments(const std::string& golden, const std::string& output) {
  return {"stamp", "-p", profile("azure-dps-mender-ota-safe.yaml"), "-i", golden, "--device", kDevice, "-o", output,
          "--set", "key_file=" + credential(kDevice + ".key.pem"), "--set", "cert_file=" + credential(kDevice + ".cert.pem"),
          "--set", "pfx_file=" + credential(kDevice + ".cert.pfx"), "--set", "dps_client=" + fixture("elf/hello-armhf")};
}

std::vector<std::string> artifact_arguments(const std::string& golden, const std::string& output, const std::string& name = "ota-safe.yaml") {
  return {"artifact", "-p", profile(name.empty() ? "azure-dps-mender.yaml" : "azure-dps-mender-" + name), "-i", golden, "--artifact-name", "fleet-2.0", "-o", output,
          "--set", "dps_client=" + fixture("elf/hello-armhf")};
}

std::string key_pair(const TempDir& dir, const std::string& algorithm) {
  const std::string key = dir / (algorithm + ".pem");
  const std::string options = algorithm == "rsa" ? "-algorithm RSA -pkeyopt rsa_keygen_bits:2048" : "-algorithm EC -pkeyopt ec_paramgen_curve:P-256";
  // PKCS#1 / SEC1 ("traditional"): mender-artifact 3.9 signs the golden's bootstrap only with those.
  shell("openssl genpkey " + options + " 2>/dev/null | openssl pkey -traditional -out " + key + " && openssl pkey -in " + key +
        " -pubout -out " + (dir / (algorithm + ".pub")));
  return key;
}

// A golden copy with the bootstrap Artifact mender-convert 4 writes: name, the image's device type,
// rootfs-image.checksum = sha256 of p2, rootfs-image.version = the name, clears-provides rootfs-image.*.
std::string golden_with_bootstrap(const TempDir& dir, const std::string& key = "") {
  const std::string golden = copy_fixture("mbr.img", dir);
  const std::string type = shell("debugfs -R 'cat /mender/device_type' '" + ext_device(golden, 4) + "' 2>/dev/null | sed -n 's/^device_type=//p'");
  shell("mender-artifact write bootstrap-artifact --no-progress -n golden-1.0 -t " + type.substr(0, type.find('\n')) +
        " -p rootfs-image.version:golden-1.0 -p rootfs-image.checksum:" + partition_sha256(golden, 2) +
        " --clears-provides 'rootfs-image.*' " + (key.empty() ? "" : "-k " + key + " ") + "-o " + (dir / "bootstrap.mender") + " >/dev/null");
  const CommandResult put = run_imprint({"put", dir / "bootstrap.mender", golden + ":/data/mender/bootstrap.mender"});
  if (put.status != 0) throw std::runtime_error(put.err);
  return golden;
}

std::string bootstrap_of(const std::string& image, const TempDir& dir, const std::string& name) {
  const std::string out = dir / name;
  shell("debugfs -R 'dump /mender/bootstrap.mender " + out + "' '" + ext_device(image, 4) + "' 2>/dev/null");
  return out;
}

std::string artifact_info(const std::string& path) {
  const CommandResult result = run({"mender-artifact", "read", "--no-progress", path});
  EXPECT_EQ(result.status, 0) << result.err;
  return result.out;
}

}  // namespace

TEST(StampBootstrap, RenewsTheRootfsChecksumOfTheBootstrapArtifact) {
  TempDir dir;
  const std::string golden = golden_with_bootstrap(dir);
  const std::string before = artifact_info(dir / "bootstrap.mender");
  const CommandResult result = run_imprint(stamp_arguments(golden, dir / "out.img"));
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(result.err.find("bootstrap"), std::string::npos) << result.err;  // nothing stale to warn about
  const std::string stamped_a = partition_sha256(dir / "out.img", 2);
  EXPECT_NE(stamped_a, partition_sha256(golden, 2));
  EXPECT_EQ(partition_sha256(dir / "out.img", 3), stamped_a);
  const std::string renewed = bootstrap_of(dir / "out.img", dir, "renewed.mender");
  const std::string after = artifact_info(renewed);
  std::string expected = before;
  expected.replace(expected.find(partition_sha256(golden, 2)), 64, stamped_a);
  EXPECT_EQ(after, expected);  // only the checksum changed
  EXPECT_EQ(run({"mender-artifact", "validate", renewed}).status, 0);
  EXPECT_EQ(e2fsck(dir / "out.img", 4).status, 0);
}

TEST(StampBootstrap, ASignedBootstrapIsReSignedWithArtifactKeyOrReportedUnsigned) {
  TempDir dir;
  const std::string key = key_pair(dir, "rsa");
  const std::string golden = golden_with_bootstrap(dir, key);
  CommandResult result = run_imprint(stamp_arguments(golden, dir / "unsigned.img"));
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_NE(result.err.find("was signed"), std::string::npos) << result.err;
  EXPECT_NE(artifact_info(bootstrap_of(dir / "unsigned.img", dir, "u.mender")).find("Signature: no signature"), std::string::npos);

  result = run_imprint(with(stamp_arguments(golden, dir / "signed.img"), {"--artifact-key", key}));
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(result.err.find("signed"), std::string::npos) << result.err;
  const std::string renewed = bootstrap_of(dir / "signed.img", dir, "s.mender");
  EXPECT_NE(artifact_info(renewed).find("rootfs-image.checksum: " + partition_sha256(dir / "signed.img", 2)), std::string::npos);
  const CommandResult valid = run({"mender-artifact", "validate", "-k", dir / "rsa.pub", renewed});
  EXPECT_EQ(valid.status, 0) << valid.out << valid.err;
}

TEST(StampBootstrap, RootfsAAndBDifferingIsSaidAndAsChecksumIsNamed) {
  TempDir dir;
  const std::string golden = golden_with_bootstrap(dir);
  write_file(dir / "a-only.yaml", "version: 1\nfiles:\n  - path: primary:/etc/only-a\n    content: \"a\\n\"\n    mode: \"0644\"\n");
  const CommandResult result = run_imprint({"stamp", "-p", dir / "a-only.yaml", "-i", golden, "--device", "dev-1", "-o", dir / "out.img"});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_NE(result.err.find("rootfs A and B differ"), std::string::npos) << result.err;
  ASSERT_NE(partition_sha256(dir / "out.img", 2), partition_sha256(dir / "out.img", 3));
  const std::string info = artifact_info(bootstrap_of(dir / "out.img", dir, "b.mender"));
  EXPECT_NE(info.find("rootfs-image.checksum: " + partition_sha256(dir / "out.img", 2)), std::string::npos) << info;
}

TEST(StampBootstrap, FlashWritesTheRenewedBootstrapOntoTheCard) {
  TempDir dir;
  const std::string golden = golden_with_bootstrap(dir);
  std::vector<std::string> arguments = stamp_arguments(golden, "");
  arguments[0] = "flash";
  arguments.erase(arguments.begin() + 7, arguments.begin() + 9);  // -o ""
  shell("truncate -s 200M " + (dir / "card.img"));
  // The renewal needs the plan on a copy, which holds the device's key: in memory, never in TMPDIR
  // (a directory that does not exist: any temp file there would be an error).
  const CommandResult result =
      run_imprint(with(arguments, {"--target", dir / "card.img", "--force"}), "", {"TMPDIR=" + (dir / "no-such-dir")});
  ASSERT_EQ(result.status, 0) << result.err;
  const std::string renewed = bootstrap_of(dir / "card.img", dir, "card.mender");
  EXPECT_NE(artifact_info(renewed).find("rootfs-image.checksum: " + partition_sha256(dir / "card.img", 2)), std::string::npos);
  EXPECT_NE(partition_sha256(dir / "card.img", 2), partition_sha256(golden, 2));
  EXPECT_EQ(run({"mender-artifact", "validate", renewed}).status, 0);
}

TEST(StampBootstrap, ABootstrapThatIsNotAnArtifactIsRefused) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  write_file(dir / "bootstrap", "artifact");
  ASSERT_EQ(run_imprint({"put", dir / "bootstrap", golden + ":/data/mender/bootstrap.mender"}).status, 0);
  const CommandResult result = run_imprint(stamp_arguments(golden, dir / "out.img"));
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.err.find("data:/mender/bootstrap.mender is not a Mender Artifact"), std::string::npos) << result.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out.img"));
}

TEST(ArtifactCommand, WritesTheFleetRootfsUpdateAStampedDeviceShares) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  const std::string golden_sum = file_sha256(golden);
  const CommandResult result = run_imprint(artifact_arguments(golden, dir / "update.mender"));
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(file_sha256(golden), golden_sum);
  const std::string info = artifact_info(dir / "update.mender");
  const std::string type = shell("debugfs -R 'cat /mender/device_type' '" + ext_device(golden, 4) + "' 2>/dev/null | sed -n 's/^device_type=//p'");
  EXPECT_NE(info.find("Name: fleet-2.0"), std::string::npos) << info;
  EXPECT_NE(info.find("Compatible devices: '[" + type.substr(0, type.find('\n')) + "]'"), std::string::npos) << info;
  EXPECT_NE(info.find("rootfs-image.version: fleet-2.0"), std::string::npos) << info;
  EXPECT_EQ(run({"mender-artifact", "validate", dir / "update.mender"}).status, 0);
  // The payload: a clean ext4 whose checksum the Artifact provides, holding the fleet-wide files
  // exactly as a stamped device's rootfs holds them.
  shell("cd " + dir.path() + " && tar -xOf update.mender data/0000.tar.gz | tar -xz");
  ASSERT_TRUE(std::filesystem::exists(dir / "rootfs.ext4"));
  EXPECT_NE(info.find("rootfs-image.checksum: " + file_sha256(dir / "rootfs.ext4")), std::string::npos) << info;
  EXPECT_EQ(run({"e2fsck", "-fn", dir / "rootfs.ext4"}).status, 0);
  ASSERT_EQ(run_imprint(stamp_arguments(golden, dir / "device.img")).status, 0);
  for (const std::string path : {"/usr/share/mender/identity/mender-device-identity", "/usr/bin/prov_dev_client_bbb"}) {
    const std::string from_update = shell("debugfs -R 'cat " + path + "' " + (dir / "rootfs.ext4") + " 2>/dev/null | sha256sum");
    const std::string from_device = shell("debugfs -R 'cat " + path + "' '" + ext_device(dir / "device.img", 2) + "' 2>/dev/null | sha256sum");
    EXPECT_EQ(from_update, from_device) << path;
    EXPECT_NE(shell("debugfs -R 'stat " + path + "' " + (dir / "rootfs.ext4") + " 2>/dev/null").find("Mode:  0755"), std::string::npos) << path;
  }
  // Per-device files stay out: the data partition is not in a rootfs update.
  EXPECT_EQ(shell("debugfs -R 'ls -l /data/mender' " + (dir / "rootfs.ext4") + " 2>&1").find("device-id"), std::string::npos);
}

TEST(ArtifactCommand, SignedWithRsaOrEcdsaValidatesWithThePublicKey) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  const std::map<std::string, std::string> keys{{"rsa", key_pair(dir, "rsa")}, {"ec", key_pair(dir, "ec")}};
  for (const std::string algorithm : {"rsa", "ec"}) {
    const std::string out = dir / (algorithm + ".mender");
    const CommandResult result = run_imprint(with(artifact_arguments(golden, out), {"--key", keys.at(algorithm)}));
    ASSERT_EQ(result.status, 0) << result.err;
    const CommandResult valid = run({"mender-artifact", "validate", "-k", dir / (algorithm + ".pub"), out});
    EXPECT_EQ(valid.status, 0) << algorithm << ": " << valid.out << valid.err;
    EXPECT_NE(run({"mender-artifact", "validate", "-k", dir / (algorithm == "rsa" ? "ec.pub" : "rsa.pub"), out}).status, 0) << algorithm;
  }
}

TEST(ArtifactCommand, RefusesARootfsEntryThatDependsOnTheDevice) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  // The tutorial's profile prints {{device_id}} from the identity script on the root filesystems.
  const CommandResult result = run_imprint(artifact_arguments(golden, dir / "update.mender", ""));
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.err.find("azure-dps-mender.yaml:"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("device_id"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("depends on the device"), std::string::npos) << result.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "update.mender"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);  // only the golden copy
}

TEST(ArtifactCommand, RefusesAVariableWithoutAFleetWideValueAndAnImageWithoutDeviceType) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  CommandResult result = run_imprint({"artifact", "-p", profile("azure-dps-mender-ota-safe.yaml"), "-i", golden, "--artifact-name", "x",
                                      "-o", dir / "u.mender"});
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.err.find("dps_client"), std::string::npos) << result.err;
  ASSERT_EQ(run_imprint({"rm", golden + ":/data/mender/device_type"}).status, 0);
  result = run_imprint(artifact_arguments(golden, dir / "u.mender"));
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.err.find("device_type"), std::string::npos) << result.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "u.mender"));
}
