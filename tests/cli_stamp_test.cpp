// imprint stamp / verify end to end with the shipped profiles on every fixture, checked with
// debugfs, mender-artifact, e2fsck, openssl, qemu-arm-static and /bin/sh.
#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "support.hpp"

extern char** environ;

using namespace imprint::test;

namespace {

const std::string kDevice = "mender-azure-test-device1";

std::string credential(const std::string& name) { return fixture("credentials/" + name); }

std::vector<std::string> device_variables(const std::string& key = "", const std::string& client = "") {
  return {"--set", "key_file=" + (key.empty() ? credential(kDevice + ".key.pem") : key),
          "--set", "cert_file=" + credential(kDevice + ".cert.pem"),
          "--set", "pfx_file=" + credential(kDevice + ".cert.pfx"),
          "--set", "dps_client=" + (client.empty() ? fixture("elf/hello-armhf") : client)};
}

std::string profile(const std::string& name) { return source_dir() + "/profiles/" + name; }

std::vector<std::string> stamp_arguments(const std::string& profile_name, const std::string& golden,
                                         const std::string& output, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> arguments{"stamp", "-p", profile(profile_name), "-i", golden, "--device", kDevice, "-o", output};
  for (const auto& argument : device_variables()) arguments.push_back(argument);
  for (const auto& argument : extra) arguments.push_back(argument);
  return arguments;
}

int data_partition(const std::string& fixture_name) { return fixture_name == "v1.img" ? 5 : 4; }

// Dumps a file of an ext partition to a host file with debugfs (independent of imprint).
std::string dump(const std::string& image, int partition, const std::string& path, const TempDir& dir, const std::string& name) {
  const std::string out = dir / name;
  shell("debugfs -R 'dump " + path + " " + out + "' '" + ext_device(image, partition) + "' 2>/dev/null");
  if (!std::filesystem::exists(out)) throw std::runtime_error("debugfs could not dump " + path);
  return out;
}

// Runs an identity script the way the device does, in a throwaway root holding the host's
// binaries and the image's /data/mender: needs root for unshare/mount/chroot.
std::string run_identity(const std::string& script, const std::string& data_mender_dir) {
  if (geteuid() != 0) throw std::runtime_error("running identity scripts in a chroot needs root (CI runs as root)");
  TempDir root;
  std::string command = "set -e; r='" + root.path() + "'; mkdir -p $r/data/mender $r/bin $r/usr $r/lib $r/lib64; ";
  for (const std::string dir : {"bin", "usr", "lib", "lib64"}) {
    command += "[ -e /" + dir + " ] && mount --bind /" + dir + " $r/" + dir + "; ";
  }
  command += "cp -a '" + data_mender_dir + "/.' $r/data/mender/; cp '" + script + "' $r/identity; chmod 755 $r/identity; ";
  command += "chroot $r /bin/sh /identity";
  CommandResult result = run({"unshare", "-m", "sh", "-c", command});
  if (result.status != 0) throw std::runtime_error("identity script failed: " + result.err);
  return result.out;
}

std::string pubkey_of_cert(const std::string& cert) { return shell("openssl x509 -in '" + cert + "' -pubkey -noout"); }

class StampFixture : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(StampFixture, WritesTheTutorialsFilesAndNothingElse) {
  const auto& [fixture_name, profile_name] = GetParam();
  const std::string golden = fixture(fixture_name);
  const std::string golden_sha = file_sha256(golden);
  const int data = data_partition(fixture_name);
  TempDir dir;
  const std::string output = dir / "device.img";

  CommandResult result = run_imprint(stamp_arguments(profile_name, golden, output));
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(file_sha256(golden), golden_sha) << "the golden image changed";
  const std::string raw_golden = fixture(fixture_name.substr(0, fixture_name.find(".img") + 4));
  EXPECT_EQ(partition_sha256(output, 1), partition_sha256(raw_golden, 1)) << "boot partition changed";

  for (int number : {2, 3, data}) {
    CommandResult fsck = e2fsck(output, number);
    EXPECT_EQ(fsck.status, 0) << "p" << number << ": " << fsck.out;
  }

  // The device key: PKCS#1, the certificate's key.
  const std::string key = dump(output, data, "/mender/mender-agent.pem", dir, "key.pem");
  EXPECT_EQ(read_file(key).rfind("-----BEGIN RSA PRIVATE KEY-----", 0), 0u);
  EXPECT_EQ(shell("openssl pkey -in '" + key + "' -pubout"), pubkey_of_cert(credential(kDevice + ".cert.pem")));
  EXPECT_NE(debugfs(output, data, "stat /mender/mender-agent.pem").find("Mode:  0600"), std::string::npos);

  // The PFX, byte for byte, opening with the client's password.
  const std::string pfx = dump(output, data, "/mender/mender-certificate.pfx", dir, "cert.pfx");
  EXPECT_EQ(file_sha256(pfx), file_sha256(credential(kDevice + ".cert.pfx")));
  EXPECT_EQ(run({"openssl", "pkcs12", "-info", "-in", pfx, "-passin", "pass:1234", "-noout"}).status, 0);

  // Identity script and DPS client on both root filesystems.
  for (int rootfs : {2, 3}) {
    const std::string script = dump(output, rootfs, "/usr/share/mender/identity/mender-device-identity", dir, "id" + std::to_string(rootfs));
    EXPECT_EQ(read_file(script).rfind("#!/bin/sh", 0), 0u);
    const std::string data_dir = dir / ("data" + std::to_string(rootfs));
    std::filesystem::create_directories(data_dir);
    if (profile_name.find("ota-safe") != std::string::npos) dump(output, data, "/mender/device-id", dir, "data" + std::to_string(rootfs) + "/device-id");
    EXPECT_EQ(run_identity(script, data_dir), "DeviceId=" + kDevice + "\n") << "p" << rootfs;
    const std::string stat = debugfs(output, rootfs, "stat /usr/share/mender/identity/mender-device-identity");
    EXPECT_NE(stat.find("Mode:  0755"), std::string::npos) << stat;
    EXPECT_NE(stat.find("User:     0   Group:     0"), std::string::npos) << stat;

    const std::string client = dump(output, rootfs, "/usr/bin/prov_dev_client_bbb", dir, "client" + std::to_string(rootfs));
    EXPECT_EQ(file_sha256(client), file_sha256(fixture("elf/hello-armhf")));
    shell("chmod +x '" + client + "'");
    EXPECT_EQ(run({"qemu-arm-static", "-L", "/usr/arm-linux-gnueabihf", client}).out, "hello from imprint\n");
  }

  if (fixture_name != "v1.img") {  // mender-artifact needs exactly four partitions
    EXPECT_EQ(mender_artifact_read(output, "/usr/share/mender/identity/mender-device-identity", dir.path()),
              read_file(dump(output, 3, "/usr/share/mender/identity/mender-device-identity", dir, "id-again")));
    EXPECT_EQ(mender_artifact_read(output, "/data/mender/mender-agent.pem", dir.path()), read_file(key));
  }

  std::vector<std::string> verify{"verify", "-p", profile(profile_name), "--device", kDevice, output};
  for (const auto& argument : device_variables()) verify.push_back(argument);
  CommandResult verified = run_imprint(verify);
  EXPECT_EQ(verified.status, 0) << verified.out << verified.err;
  // And byte for byte against golden + this device's overlay (a .gz golden decompressed once).
  verify.insert(verify.end(), {"--golden", golden});
  verified = run_imprint(verify);
  EXPECT_EQ(verified.status, 0) << verified.out << verified.err;
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, StampFixture,
    ::testing::Combine(::testing::Values("mbr.img", "gpt.img", "v1.img", "mbr-1k.img", "mbr.img.gz"),
                       ::testing::Values("azure-dps-mender.yaml", "azure-dps-mender-ota-safe.yaml")),
    [](const auto& param_info) {
      std::string name = std::get<0>(param_info.param) + "_" + std::get<1>(param_info.param);
      for (char& c : name) if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return name;
    });

TEST(Stamp, SameInputsGiveByteIdenticalOutputs) {
  TempDir dir;
  const std::vector<std::string> epoch{"SOURCE_DATE_EPOCH=1700000000"};
  ASSERT_EQ(run_imprint(stamp_arguments("azure-dps-mender.yaml", fixture("mbr.img"), dir / "a.img"), "", epoch).status, 0);
  ASSERT_EQ(run_imprint(stamp_arguments("azure-dps-mender.yaml", fixture("mbr.img"), dir / "b.img"), "", epoch).status, 0);
  EXPECT_EQ(file_sha256(dir / "a.img"), file_sha256(dir / "b.img"));
}

TEST(Stamp, OutputIsPrivateAndSparse) {
  TempDir dir;
  ASSERT_EQ(run_imprint(stamp_arguments("azure-dps-mender.yaml", fixture("big.img"), dir / "out.img")).status, 0);
  EXPECT_EQ(std::filesystem::status(dir / "out.img").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_LT(allocated_bytes(dir / "out.img"), allocated_bytes(fixture("big.img")) + (8u << 20));
}

TEST(Stamp, DryRunPrintsThePlanAndWritesNothing) {
  TempDir dir;
  CommandResult result = run_imprint(stamp_arguments("azure-dps-mender.yaml", fixture("mbr.img"), dir / "out.img", {"--dry-run", "--json"}));
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out.img"));
  const auto plan = nlohmann::json::parse(result.out);
  EXPECT_EQ(plan.at("device_id"), kDevice);
  EXPECT_EQ(plan.at("ops").size(), 4u);
  EXPECT_EQ(result.out.find("PRIVATE KEY"), std::string::npos) << "a plan must never print key bytes";
}

// stdout says what was written (output, size, checks passed); --quiet says nothing; --verbose says
// each step on stderr; on a terminal the copy of the golden shows its progress.
TEST(Stamp, SaysWhatItWroteOrNothingWithQuiet) {
  TempDir dir;
  const std::string output = dir / "out.img";
  const CommandResult stamped = run_imprint(stamp_arguments("azure-dps-mender.yaml", fixture("mbr.img"), output));
  ASSERT_EQ(stamped.status, 0) << stamped.err;
  EXPECT_EQ(stamped.err, "");
  char size[32];
  std::snprintf(size, sizeof size, "%.1f MiB", static_cast<double>(std::filesystem::file_size(output)) / (1024.0 * 1024.0));
  EXPECT_EQ(stamped.out.rfind("stamped " + kDevice + " into " + output + " (" + std::string(size) + ", ", 0), 0u)
      << stamped.out;
  EXPECT_NE(
      stamped.out.find(" operation(s))\nchecks passed: key-matches-cert, cn-is-device-id, dps-registration-id, cert-not-ca, "
                       "cert-valid-for-days 7, pfx-opens, rsa-only, identity-prints-device-id, elf armhf (1 file(s)), "
                       "files fit their partitions\n"),
      std::string::npos)
      << stamped.out;
  EXPECT_EQ(std::count(stamped.out.begin(), stamped.out.end(), '\n'), 2) << stamped.out;

  const CommandResult quiet =
      run_imprint(stamp_arguments("azure-dps-mender.yaml", fixture("mbr.img"), dir / "quiet.img", {"--quiet"}));
  ASSERT_EQ(quiet.status, 0) << quiet.err;
  EXPECT_EQ(quiet.out, "");
  EXPECT_EQ(quiet.err, "");
  EXPECT_TRUE(std::filesystem::exists(dir / "quiet.img")) << "--quiet changes what is said, not what is written";
}

TEST(Stamp, VerboseSaysEachStepOnStderr) {
  TempDir dir;
  std::vector<std::string> arguments = stamp_arguments("azure-dps-mender.yaml", fixture("mbr.img"), dir / "out.img");
  arguments.insert(arguments.begin(), "-v");
  const CommandResult result = run_imprint(arguments);
  ASSERT_EQ(result.status, 0) << result.err;
  for (const char* note :
       {" operation(s) planned from ", "; the profile's checks passed: key-matches-cert, ",
        "the plan fits the image (file sizes, ELF expectations); applying ", ": opened ", "(ext4, libext2fs, read-write)",
        "imprint: applied file /usr/bin/prov_dev_client_bbb on primary (p2): ",
        "imprint: applied file /usr/bin/prov_dev_client_bbb on secondary (p3): ", ": flushed "}) {
    EXPECT_NE(result.err.find(note), std::string::npos) << note << " in:\n" << result.err;
  }
  EXPECT_EQ(result.out.rfind("stamped " + kDevice, 0), 0u) << result.out;
}

TEST(Stamp, ShowsTheCopysProgressOnATerminalOnly) {
  TempDir dir;
  const std::string golden = fixture("mbr.img");
  const CommandResult tty = run_imprint_on_terminal(stamp_arguments("azure-dps-mender.yaml", golden, dir / "out.img"));
  ASSERT_EQ(tty.status, 0) << tty.out;
  // /tmp cannot reflink here (ext4): the golden is copied, its share shown from the first draw.
  const std::size_t copying = tty.out.find("\rimprint: copying " + golden + ": ");
  ASSERT_NE(copying, std::string::npos) << tty.out;
  const std::string first_line = tty.out.substr(copying + 1, tty.out.find('\r', copying + 1) - copying - 1);
  EXPECT_NE(first_line.find(" of 184.0 MiB ("), std::string::npos) << first_line;
  EXPECT_NE(tty.out.find("\rimprint: copied " + golden + ": 184.0 MiB in "), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("stamped " + kDevice), std::string::npos) << "the success line follows: " << tty.out;
  // Decompressing shows the share and the ETA too: the partition table gives the total.
  const CommandResult zst =
      run_imprint_on_terminal(stamp_arguments("azure-dps-mender.yaml", golden + ".zst", dir / "zst.img"));
  ASSERT_EQ(zst.status, 0) << zst.out;
  EXPECT_NE(zst.out.find("\rimprint: decompressed " + golden + ".zst: 184.0 MiB in "), std::string::npos) << zst.out;
  const CommandResult quiet =
      run_imprint_on_terminal(stamp_arguments("azure-dps-mender.yaml", golden, dir / "quiet.img", {"-q"}));
  ASSERT_EQ(quiet.status, 0) << quiet.out;
  EXPECT_EQ(quiet.out, "");
}

TEST(Stamp, InPlacePatchesARawImage) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  std::vector<std::string> arguments{"stamp", "-p", profile("azure-dps-mender.yaml"), "-i", image, "--device", kDevice, "--in-place"};
  for (const auto& argument : device_variables()) arguments.push_back(argument);
  ASSERT_EQ(run_imprint(arguments).status, 0);
  EXPECT_NE(debugfs(image, 2, "cat /usr/share/mender/identity/mender-device-identity").find("DeviceId=" + kDevice), std::string::npos);
}

TEST(Stamp, VerifyReportsEveryDifference) {
  TempDir dir;
  const std::string output = dir / "out.img";
  ASSERT_EQ(run_imprint(stamp_arguments("azure-dps-mender.yaml", fixture("mbr.img"), output)).status, 0);
  write_file(dir / "x", "tampered\n");
  ASSERT_EQ(run_imprint({"put", "-m", "0755", dir / "x", output + ":secondary:/usr/share/mender/identity/mender-device-identity"}).status, 0);
  ASSERT_EQ(run_imprint({"put", "-m", "0644", dir / "x", output + ":/data/mender/mender-certificate.pfx"}).status, 0);
  std::vector<std::string> verify{"verify", "-p", profile("azure-dps-mender.yaml"), "--device", kDevice, output};
  for (const auto& argument : device_variables()) verify.push_back(argument);
  CommandResult result = run_imprint(verify);
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.out.find("secondary (p3): /usr/share/mender/identity/mender-device-identity: content differs"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("/mender/mender-certificate.pfx: mode 0644, expected 0600"), std::string::npos) << result.out;
  EXPECT_EQ(result.out.find("primary (p2)"), std::string::npos) << "primary was not tampered with: " << result.out;
}

TEST(Stamp, EmitWritesPreauthorizationForTheCertificateKey) {
  TempDir dir;
  CommandResult result = run_imprint(stamp_arguments("azure-dps-mender.yaml", fixture("mbr.img"), dir / "out.img", {"--emit", dir / "emit"}));
  ASSERT_EQ(result.status, 0) << result.err;
  const auto preauth = nlohmann::json::parse(read_file(dir / ("emit/" + kDevice + ".preauth.json")));
  EXPECT_EQ(preauth.at("identity_data"), nlohmann::json({{"DeviceId", kDevice}}));
  write_file(dir / "pub.pem", preauth.at("pubkey").template get<std::string>());
  EXPECT_EQ(shell("openssl pkey -pubin -in '" + dir / "pub.pem" + "'"), pubkey_of_cert(credential(kDevice + ".cert.pem")));
  EXPECT_EQ(read_file(dir / ("emit/" + kDevice + ".pub.pem")), preauth.at("pubkey").template get<std::string>());
  const std::string thumbprints = read_file(dir / ("emit/" + kDevice + ".thumbprints.txt"));
  std::string sha1 = shell("openssl x509 -in '" + credential(kDevice + ".cert.pem") + "' -noout -fingerprint -sha1 | cut -d= -f2 | tr -d ':\\n'");
  EXPECT_NE(thumbprints.find("sha1 " + sha1), std::string::npos) << thumbprints << " vs " << sha1;
}

// Failures stop the stamp before any output exists and name the culprit.
void expect_stamp_refused(const std::vector<std::string>& arguments, const std::string& needle, const TempDir& dir) {
  const std::string golden_sha = file_sha256(fixture("mbr.img"));
  CommandResult result = run_imprint(arguments);
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.err.find(needle), std::string::npos) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "a failed stamp left files behind";
  EXPECT_EQ(file_sha256(fixture("mbr.img")), golden_sha);
}

TEST(StampRefuses, AKeyThatDoesNotMatchTheCertificate) {
  TempDir dir;
  auto arguments = stamp_arguments("azure-dps-mender.yaml", fixture("mbr.img"), dir / "out.img",
                                   {"--set", "key_file=" + credential("other.key.pem")});
  expect_stamp_refused(arguments, "check key-matches-cert failed for device " + kDevice, dir);
}

TEST(StampRefuses, AnX86ClientForAnArmBoard) {
  TempDir dir;
  auto arguments = stamp_arguments("azure-dps-mender.yaml", fixture("mbr.img"), dir / "out.img",
                                   {"--set", "dps_client=" + fixture("elf/hello-x86_64")});
  expect_stamp_refused(arguments, "x86_64", dir);
}

TEST(StampRefuses, AClientNeedingLibrariesTheImageLacks) {
  TempDir dir;
  auto arguments = stamp_arguments("azure-dps-mender.yaml", fixture("mbr.img"), dir / "out.img",
                                   {"--set", "dps_client=" + fixture("elf/needs-ssl11-armhf")});
  expect_stamp_refused(arguments, "libssl.so.1.1", dir);
}

TEST(StampRefuses, AMissingVariable) {
  TempDir dir;
  CommandResult result = run_imprint({"stamp", "-p", profile("azure-dps-mender.yaml"), "-i", fixture("mbr.img"), "--device", kDevice, "-o", dir / "out.img"});
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.err.find("key_file"), std::string::npos) << result.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(StampRefuses, WritingOverTheGoldenImage) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  const std::string before = file_sha256(golden);
  CommandResult result = run_imprint(stamp_arguments("azure-dps-mender.yaml", golden, golden));
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.err.find("golden"), std::string::npos) << result.err;
  EXPECT_EQ(file_sha256(golden), before);
}

// kill -9 at several moments of a stamp on the 1 GiB image: never a file under the output's name,
// never a leftover temp file, the golden image unchanged.
TEST(Stamp, KillNineLeavesNothingBehind) {
  TempDir dir;
  const std::string golden = fixture("big.img");
  const std::string golden_sha = file_sha256(golden);
  auto arguments = stamp_arguments("azure-dps-mender.yaml", golden, dir / "out.img");
  arguments.insert(arguments.begin(), imprint_bin());
  int finished = 0;
  for (int delay_ms : {0, 2, 5, 10, 20, 40, 80, 160, 320}) {
    std::vector<char*> argv;
    for (auto& argument : arguments) argv.push_back(argument.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    ASSERT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status)) {
      ++finished;  // it won the race
      EXPECT_EQ(WEXITSTATUS(status), 0);
    }
    // Whatever stands under the output's name is complete: a finished stamp's, or one whose kill
    // landed after the rename but before the exit (the one-pass stamp takes well under a second).
    if (std::filesystem::exists(dir / "out.img")) {
      EXPECT_EQ(std::filesystem::file_size(dir / "out.img"), std::filesystem::file_size(golden)) << "after kill at " << delay_ms << " ms";
      for (int partition : {2, 3, 4}) EXPECT_EQ(e2fsck(dir / "out.img", partition).status, 0) << "p" << partition << " after kill at " << delay_ms << " ms";
      std::filesystem::remove(dir / "out.img");
    }
    EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "after kill at " << delay_ms << " ms";
  }
  EXPECT_LT(finished, 9) << "no kill landed before the stamp finished";
  EXPECT_EQ(file_sha256(golden), golden_sha);
}

}  // namespace

namespace {

// A profile whose one file goes through the fixtures' /var/lib/mender symlink (to /data/mender).
constexpr const char* kThroughSymlinkProfile = R"(version: 1
files:
  - path: /var/lib/mender/through-the-link
    content: "x\n"
    mode: "0644"
)";

}  // namespace

// The one-pass stamp (golden read-only + overlay, copied then overlaid) makes exactly the bytes the
// copy-then-edit path makes: a compressed golden still takes that path (its bytes exist only once
// decompressed into the output), so the same device from mbr.img and mbr.img.gz is compared.
TEST(Stamp, OnePassOutputIsByteIdenticalToTheEditedCopy) {
  TempDir dir;
  const std::vector<std::string> epoch{"SOURCE_DATE_EPOCH=1700000000"};
  const std::string golden = copy_fixture("mbr.img", dir);
  const std::string before = file_sha256(golden);
  ASSERT_EQ(run_imprint(stamp_arguments("azure-dps-mender.yaml", golden, dir / "one-pass.img"), "", epoch).status, 0);
  EXPECT_EQ(file_sha256(golden), before) << "the golden image changed";
  ASSERT_EQ(run_imprint(stamp_arguments("azure-dps-mender.yaml", fixture("mbr.img.gz"), dir / "copy.img"), "", epoch).status, 0);
  EXPECT_EQ(run({"cmp", dir / "one-pass.img", dir / "copy.img"}).status, 0);
  for (int number : {2, 3, 4}) {
    const CommandResult checked = e2fsck(dir / "one-pass.img", number);
    EXPECT_EQ(checked.status, 0) << "p" << number << ": " << checked.out << checked.err;
  }
  EXPECT_NE(debugfs(dir / "one-pass.img", 2, "cat /usr/share/mender/identity/mender-device-identity").find("DeviceId=" + kDevice),
            std::string::npos);
}

// The dry run applies the plan to an overlay it throws away, so it refuses what the real run refuses
// (here a write through the /var/lib/mender symlink, which checking the plan alone never saw).
TEST(Stamp, DryRunRefusesWhatTheRealRunRefuses) {
  TempDir dir;
  write_file(dir / "link.yaml", kThroughSymlinkProfile);
  const std::string golden = copy_fixture("mbr.img", dir);
  const std::string before = file_sha256(golden);
  auto arguments = [&](bool dry) {
    std::vector<std::string> result{"stamp", "-p", dir / "link.yaml", "-i", golden, "--device", kDevice, "-o", dir / "out.img"};
    if (dry) result.push_back("--dry-run");
    return result;
  };
  const CommandResult real = run_imprint(arguments(false));
  const CommandResult dry = run_imprint(arguments(true));
  EXPECT_NE(real.status, 0);
  EXPECT_NE(real.err.find("/var/lib/mender is a symlink to /data/mender"), std::string::npos) << real.err;
  EXPECT_EQ(dry.status, real.status) << dry.err;
  EXPECT_EQ(dry.err, real.err);
  EXPECT_FALSE(std::filesystem::exists(dir / "out.img"));
  EXPECT_EQ(file_sha256(golden), before) << "the golden image changed";
}

// Peak RSS stays flat on the 1 GiB fixture: the overlay holds only the plan's writes.
TEST(Stamp, PeakMemoryStaysUnder64MiB) {
  TempDir dir;
  std::vector<std::string> arguments{"/usr/bin/time", "-v", imprint_bin()};
  for (const auto& argument : stamp_arguments("azure-dps-mender.yaml", fixture("big.img"), dir / "out.img")) arguments.push_back(argument);
  const CommandResult result = run(arguments);
  ASSERT_EQ(result.status, 0) << "needs /usr/bin/time (Debian package time): " << result.err;
  const auto at = result.err.find("Maximum resident set size (kbytes): ");
  ASSERT_NE(at, std::string::npos) << result.err;
  const long kib = std::stol(result.err.substr(at + 36));
  EXPECT_LE(kib, 64 * 1024) << "peak RSS " << kib << " KiB";
}
