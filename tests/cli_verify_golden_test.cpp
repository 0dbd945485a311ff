// imprint verify --golden end to end on the fixture images: the stamped image against golden + the
// device's overlay, byte for byte outside the plan's writes (checked against debugfs, e2fsck, cmp
// and dd, which place and make the changes independently), by meaning inside them.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "support.hpp"

using namespace imprint::test;

namespace {

const std::string kEpoch = "SOURCE_DATE_EPOCH=1700000000";

std::string write_profile(const TempDir& dir, const std::string& text = kDeviceIdProfile) {
  write_file(dir / "profile.yaml", text);
  return dir / "profile.yaml";
}

// Stamps `device` from golden with the profile; the same SOURCE_DATE_EPOCH as verify's (unless told).
std::string stamp(const std::string& profile, const std::string& golden, const std::string& device, const std::string& output,
                  const std::vector<std::string>& extra = {}) {
  std::vector<std::string> arguments{"stamp", "-p", profile, "-i", golden, "--device", device, "-o", output};
  arguments.insert(arguments.end(), extra.begin(), extra.end());
  const CommandResult result = run_imprint(arguments, "", {kEpoch});
  if (result.status != 0) throw std::runtime_error("stamp failed: " + result.err);
  return output;
}

CommandResult verify(const std::string& profile, const std::string& device, const std::string& golden, const std::string& image,
                     const std::vector<std::string>& extra = {}, const std::string& epoch = kEpoch) {
  std::vector<std::string> arguments{"-v", "verify", "-p", profile, "--device", device, "--golden", golden, image};
  arguments.insert(arguments.end(), extra.begin(), extra.end());
  return run_imprint(arguments, "", {epoch});
}

void poke(const std::string& image, std::uint64_t offset, const std::string& byte = "Z") {
  shell("printf '" + byte + "' | dd of='" + image + "' bs=1 seek=" + std::to_string(offset) + " conv=notrunc status=none");
}

std::string byte_at(const std::string& image, std::uint64_t offset) {
  return shell("dd if='" + image + "' bs=1 skip=" + std::to_string(offset) + " count=1 status=none | od -An -tx1 | tr -d ' \\n'");
}

// A byte of a block the data partition's filesystem does not use (debugfs ffb: find free block),
// and that still holds what the golden holds there (zeros).
std::uint64_t free_byte_in_data(const std::string& image) {
  const std::string block_size = shell("debugfs -R stats '" + ext_device(image, 4) + "' 2>/dev/null | sed -n 's/^Block size: *//p'");
  const std::string found = debugfs(image, 4, "ffb 1 2000");  // "Free blocks found: N"
  const std::uint64_t block = std::stoull(found.substr(found.find(':') + 1));
  return partition_span(image, 4).offset + block * std::stoull(block_size) + 17;
}

std::size_t lines_of(const std::string& text) { return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')); }

TEST(VerifyGolden, AStampedImageMatchesGoldenPlusItsOverlayByteForByteOrByMeaning) {
  TempDir dir;
  const std::string golden = fixture("mbr.img");
  const std::string profile = source_dir() + "/profiles/azure-dps-mender.yaml";
  const std::string credentials = fixture("credentials") + "/mender-azure-test-device1";
  const std::vector<std::string> variables{"--set", "key_file=" + credentials + ".key.pem", "--set",
                                           "cert_file=" + credentials + ".cert.pem",        "--set",
                                           "pfx_file=" + credentials + ".cert.pfx",         "--set",
                                           "dps_client=" + fixture("elf/hello-armhf")};
  const std::string image = stamp(profile, golden, "mender-azure-test-device1", dir / "out.img", variables);
  ASSERT_NE(run({"cmp", "-s", golden, image}).status, 0) << "the stamp wrote nothing";

  CommandResult result = verify(profile, "mender-azure-test-device1", golden, image, variables);
  EXPECT_EQ(result.status, 0) << result.out << result.err;
  EXPECT_EQ(result.out, image + ": matches " + golden + " + the plan for mender-azure-test-device1\n");
  EXPECT_NE(result.err.find("equal golden + overlay byte for byte; no meaning check needed"), std::string::npos) << result.err;

  // Verified at another SOURCE_DATE_EPOCH the expected inodes carry other times: the written runs
  // differ, and the plan's files are compared by meaning, which passes.
  result = verify(profile, "mender-azure-test-device1", golden, image, variables, "SOURCE_DATE_EPOCH=1800000000");
  EXPECT_EQ(result.status, 0) << result.out << result.err;
  EXPECT_NE(result.err.find("differ from golden + overlay (in "), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("compared by meaning instead"), std::string::npos) << result.err;

  std::vector<std::string> json_arguments = variables;
  json_arguments.push_back("--json");
  result = verify(profile, "mender-azure-test-device1", golden, image, json_arguments);
  ASSERT_EQ(result.status, 0) << result.err;
  const auto record = nlohmann::json::parse(result.out);
  EXPECT_EQ(record.at("golden"), golden);
  EXPECT_EQ(record.at("ok"), true);
}

TEST(VerifyGolden, BytesChangedOutsideThePlanAreReportedWithTheirPartition) {
  TempDir dir;
  const std::string golden = fixture("mbr.img");
  const std::string profile = write_profile(dir);
  const std::string image = stamp(profile, golden, "dev-01", dir / "out.img");
  const std::uint64_t data_byte = free_byte_in_data(image);
  ASSERT_EQ(byte_at(image, data_byte), "00");
  poke(image, data_byte);
  ASSERT_EQ(byte_at(image, data_byte), "5a");
  // The filesystems cannot see it: e2fsck is clean and the plain verify passes.
  EXPECT_EQ(e2fsck(image, 4).status, 0);
  CommandResult plain = run_imprint({"verify", "-p", profile, "--device", "dev-01", image}, "", {kEpoch});
  EXPECT_EQ(plain.status, 0) << plain.out << plain.err;

  CommandResult result = verify(profile, "dev-01", golden, image);
  EXPECT_EQ(result.status, 3) << result.err;
  EXPECT_EQ(result.out, image + ": 1 byte in 1 range differs from " + golden +
                            " outside what the plan writes (a change stamp never makes: tampering, a bad card or the wrong "
                            "golden); the first at byte " + std::to_string(data_byte) + " in data (p4)\n");
  EXPECT_NE(result.err.find("imprint: " + image + " does not match " + golden + " + the plan for dev-01: 1 difference(s)"),
            std::string::npos)
      << result.err;

  // Two more bytes in the boot partition (vfat; the middle of it), next to each other: one more range.
  const Span boot = partition_span(image, 1);
  const std::uint64_t boot_byte = boot.offset + boot.size / 2;
  ASSERT_EQ(byte_at(image, boot_byte) + byte_at(image, boot_byte + 1), "0000");
  poke(image, boot_byte, "ZZ");
  result = verify(profile, "dev-01", golden, image);
  EXPECT_EQ(result.status, 3);
  EXPECT_NE(result.out.find(": 3 bytes in 2 ranges differ from "), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("the first at byte " + std::to_string(boot_byte) + " in boot (p1); ranges in boot (p1), data (p4)\n"),
            std::string::npos)
      << result.out;
  EXPECT_EQ(lines_of(result.out), 1u) << result.out;

  // The partition table (the MBR's disk signature) and the gap before the first partition.
  const std::string other = dir / "other.img";
  stamp(profile, golden, "dev-01", other);
  poke(other, 441);
  poke(other, 4 << 20);
  result = verify(profile, "dev-01", golden, other);
  EXPECT_EQ(result.status, 3);
  EXPECT_NE(result.out.find(": 2 bytes in 2 ranges differ from "), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("the first at byte 441 in partition table; ranges in partition table, outside the partitions\n"),
            std::string::npos)
      << result.out;
  // cmp agrees: the freshly stamped copy and this one differ in exactly those two bytes.
  stamp(profile, golden, "dev-01", dir / "fresh.img");
  EXPECT_EQ(shell("cmp -l '" + dir / "fresh.img" + "' '" + other + "' | awk '{print $1 - 1}' | tr '\\n' ' '"),
            "441 " + std::to_string(4 << 20) + " ");
}

TEST(VerifyGolden, AnotherDevicesImageFails) {
  TempDir dir;
  const std::string golden = fixture("mbr.img");
  const std::string profile = write_profile(dir);
  const std::string image = stamp(profile, golden, "dev-02", dir / "out.img");
  const CommandResult result = verify(profile, "dev-01", golden, image);
  EXPECT_EQ(result.status, 3) << result.err;
  EXPECT_NE(result.out.find("data (p4): /mender/device-id: content differs"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("primary (p2): /etc/device-id: content differs"), std::string::npos) << result.out;
  EXPECT_EQ(result.out.find("outside what the plan writes"), std::string::npos) << "same-sized files land in the same blocks";
  EXPECT_NE(result.err.find("compared by meaning instead"), std::string::npos) << result.err;
}

TEST(VerifyGolden, ACardLargerThanTheImageFileOrLoopDevice) {
  TempDir dir;
  const std::string golden = fixture("mbr.img");
  const std::string profile = write_profile(dir);
  const std::string card = stamp(profile, golden, "dev-01", dir / "card.img");
  shell("head -c 3M /dev/urandom >> '" + card + "'");  // what the card held after the image
  CommandResult result = verify(profile, "dev-01", golden, card);
  EXPECT_EQ(result.status, 0) << result.out << result.err;
  EXPECT_NE(result.err.find("the 3145728 bytes past the golden's 192937984 are not compared"), std::string::npos) << result.err;

  const std::uint64_t data_byte = free_byte_in_data(card);
  Loop loop(card);
  result = verify(profile, "dev-01", golden, loop.device);
  EXPECT_EQ(result.status, 0) << result.out << result.err;
  EXPECT_NE(result.out.find(loop.device + ": matches "), std::string::npos) << result.out;
  shell("printf 'Z' | dd of='" + loop.device + "' bs=1 seek=" + std::to_string(data_byte) + " conv=notrunc,fsync status=none");
  result = verify(profile, "dev-01", golden, loop.device);
  EXPECT_EQ(result.status, 3) << result.err;
  EXPECT_NE(result.out.find(loop.device + ": 1 byte in 1 range differs from " + golden), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("the first at byte " + std::to_string(data_byte) + " in data (p4)\n"), std::string::npos) << result.out;

  // A card shorter than the golden: its end is missing.
  const std::string short_card = dir / "short.img";
  shell("head -c 100M '" + card + "' > '" + short_card + "'");
  result = verify(profile, "dev-01", golden, short_card);
  EXPECT_EQ(result.status, 3) << result.err;
  EXPECT_NE(result.out.find(short_card + " is 104857600 bytes, shorter than " + golden + " (192937984 bytes): its end is missing"),
            std::string::npos)
      << result.out;
}

TEST(VerifyGolden, ACompressedGoldenIsDecompressedOnceAMissingOneIsNamed) {
  TempDir dir;
  const std::string profile = write_profile(dir);
  const std::string image = stamp(profile, fixture("mbr.img"), "dev-01", dir / "out.img");
  CommandResult result = verify(profile, "dev-01", fixture("mbr.img.zst"), image);
  EXPECT_EQ(result.status, 0) << result.out << result.err;
  EXPECT_NE(result.err.find(fixture("mbr.img.zst") + " is compressed: decompressed once into an unnamed temp file"), std::string::npos)
      << result.err;
  // The stamped image compressed too (gz): compared the same way.
  shell("gzip -k -1 '" + image + "'");
  result = verify(profile, "dev-01", fixture("mbr.img.zst"), image + ".gz");
  EXPECT_EQ(result.status, 0) << result.out << result.err;
  // It holds the device's key: decompressed beside itself, never in TMPDIR (a missing directory here).
  result = run_imprint({"-v", "verify", "-p", profile, "--device", "dev-01", "--golden", fixture("mbr.img"), image + ".gz"}, "",
                       {kEpoch, "TMPDIR=" + (dir / "no-such-dir")});
  EXPECT_EQ(result.status, 0) << result.out << result.err;
  EXPECT_NE(result.err.find(image + ".gz is compressed: decompressed once into an unnamed file beside it"), std::string::npos)
      << result.err;

  for (const std::string& missing : {dir / "missing.img", dir.path()}) {
    result = verify(profile, "dev-01", missing, image);
    EXPECT_EQ(result.status, 1) << result.err;
    EXPECT_EQ(result.out, "");
    EXPECT_EQ(lines_of(result.err), 1u) << result.err;
    EXPECT_NE(result.err.find(missing), std::string::npos) << result.err;
    EXPECT_TRUE(result.err.find("No such file or directory") != std::string::npos || result.err.find("is a directory") != std::string::npos)
        << result.err;
  }
}

TEST(VerifyGolden, APlanTheOverlayCannotHoldIsRefusedNamingWhy) {
  TempDir dir;
  // A file on the vfat boot partition: only libguestfs writes it, and its writes never reach an overlay.
  const std::string profile = write_profile(dir, std::string(kDeviceIdProfile) + R"(  - path: boot:/device-id.txt
    content: "{{device_id}}\n"
    mode: "0644"
)");
  const CommandResult result =
      run_imprint({"verify", "-p", profile, "--device", "dev-01", "--golden", fixture("mbr.img"), fixture("mbr.img")});
  EXPECT_EQ(result.status, 1) << result.out << result.err;
  EXPECT_EQ(lines_of(result.err), 1u) << result.err;
  EXPECT_NE(result.err.find("imprint: " + fixture("mbr.img") +
                            ": --golden cannot build the expected image as golden + overlay: the plan writes boot (p1), which only "
                            "libguestfs opens (verify without --golden checks the plan's files)"),
            std::string::npos)
      << result.err;
}

}  // namespace
