// imprint batch / manifest merge / flash end to end on the MBR fixture: 20 devices with their own
// keys (RSA 2048, made once for the suite), checked with imprint verify, e2fsck, debugfs, /bin/sh,
// bmaptool and cmp.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "imprint/credentials/credentials.hpp"
#include "support.hpp"

extern char** environ;

using namespace imprint::test;
using nlohmann::json;

namespace {

constexpr int kDevices = 20;
const std::vector<std::string> kEpoch{"SOURCE_DATE_EPOCH=1700000000"};

const char* kProfile = R"(version: 1
credentials:
  key: "{{key_file}}"
  cert: "{{cert_file}}"
files:
  - path: /data/mender/mender-agent.pem
    from: credentials.key
    format: pkcs1
    mode: "0600"
  - path: /data/mender/device-id
    content: "{{device_id}}\n"
    mode: "0644"
  - path: /usr/share/mender/identity/mender-device-identity
    content: |
      #!/bin/sh
      echo "DeviceId={{device_id}}"
    mode: "0755"
  - path: /usr/bin/prov_dev_client_bbb
    source: "{{dps_client}}"
    mode: "0755"
    expect: { elf: armhf }
  - path: /etc/fleet.conf
    content: "fleet=imprint-test\n"
    mode: "0644"
checks: [key-matches-cert, cn-is-device-id, identity-prints-device-id]
)";

std::string device_id(int i) {
  char name[32];
  std::snprintf(name, sizeof name, "batch-dev-%02d", i);
  return name;
}

// Keys, certificates, the profile and the device CSV, made once for every test here.
class BatchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::filesystem::create_directories(*dir_ / "certs");
    std::string csv = "device_id,key_file,cert_file\n";
    for (int i = 0; i < kDevices; ++i) {
      const std::string id = device_id(i);
      const auto credentials = imprint::DeviceCredentials::generate(
          fixture("credentials/intermediate.cert.pem"), fixture("credentials/intermediate.key.pem"), "1234", id, "rsa:2048", 30);
      write_file(*dir_ / ("certs/" + id + ".key.pem"), credentials.key_pem(imprint::KeyFormat::Pkcs8));
      write_file(*dir_ / ("certs/" + id + ".cert.pem"), credentials.cert_pem());
      csv += id + "," + *dir_ / ("certs/" + id + ".key.pem") + "," + *dir_ / ("certs/" + id + ".cert.pem") + "\n";
    }
    write_file(*dir_ / "devices.csv", csv);
    write_file(*dir_ / "profile.yaml", kProfile);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static std::string path(const std::string& name) { return *dir_ / name; }

  static std::vector<std::string> batch_arguments(const std::string& out, const std::vector<std::string>& extra = {},
                                                  const std::string& csv = "") {
    std::vector<std::string> arguments{"batch", "-p", path("profile.yaml"), "-i", fixture("mbr.img"),
                                       "--devices", csv.empty() ? path("devices.csv") : csv, "-O", out,
                                       "--set", "dps_client=" + fixture("elf/hello-armhf")};
    arguments.insert(arguments.end(), extra.begin(), extra.end());
    return arguments;
  }

  // The manifest of an uninterrupted, unsharded run with bmaps (made once).
  static const std::string& reference_run() {
    static std::string out;
    if (out.empty()) {
      out = path("reference");
      CommandResult result = run_imprint(batch_arguments(out, {"-j", "2", "--bmap"}), "", kEpoch);
      if (result.status != 0) throw std::runtime_error("reference batch failed: " + result.err);
    }
    return out;
  }

  static TempDir* dir_;
};
TempDir* BatchTest::dir_ = nullptr;

std::vector<json> manifest_lines(const std::string& file) {
  std::vector<json> records;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) records.push_back(json::parse(line));
  }
  return records;
}

std::vector<json> without_timing(std::vector<json> records) {
  for (json& record : records) record.erase("timing");
  return records;
}

// Starts imprint ARGUMENTS (SOURCE_DATE_EPOCH set) in the background, stdout to /dev/null, stderr
// to `err_path`.
pid_t start_batch(std::vector<std::string> arguments, const std::string& err_path) {
  arguments.insert(arguments.begin(), imprint_bin());
  std::vector<char*> argv;
  for (auto& argument : arguments) argv.push_back(argument.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings{kEpoch[0]};
  for (char** entry = environ; *entry != nullptr; ++entry) env_strings.emplace_back(*entry);
  std::vector<char*> envp;
  for (auto& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) throw std::runtime_error("cannot start " + arguments.front());
  return pid;
}

// Waits (up to a minute) until the manifest holds `count` records.
void wait_for_records(const std::string& manifest, std::size_t count) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (manifest_lines(manifest).size() < count && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

TEST_F(BatchTest, TwentyDevicesVerifyCheckCleanAndPrintTheirOwnIds) {
  const std::string out = reference_run();
  const auto records = manifest_lines(out + "/manifest.jsonl");
  ASSERT_EQ(records.size(), static_cast<std::size_t>(kDevices));
  EXPECT_TRUE(std::filesystem::exists(out + "/manifest.csv"));
  for (int i = 0; i < kDevices; ++i) {
    const std::string id = device_id(i);
    const json& record = records[static_cast<std::size_t>(i)];  // sorted by device_id
    ASSERT_EQ(record.at("device_id"), id);
    const std::string image = out + "/" + record.at("output").get<std::string>();
    EXPECT_EQ(image, out + "/" + id + ".img");
    EXPECT_EQ(file_sha256(image), record.at("output_sha256")) << id;
    EXPECT_EQ(std::filesystem::file_size(image), record.at("output_size").get<std::uint64_t>());
    EXPECT_EQ(file_sha256(out + "/" + record.at("bmap").get<std::string>()), record.at("bmap_sha256"));
    EXPECT_EQ(record.at("golden_sha256"), file_sha256(fixture("mbr.img")));
    EXPECT_EQ(record.at("profile_sha256"), file_sha256(path("profile.yaml")));
    EXPECT_EQ(record.at("credentials").at("sha256_thumbprint").get<std::string>().size(), 64u);
    EXPECT_EQ(record.at("credentials").at("preauth").at("identity_data").at("DeviceId"), id);
    EXPECT_EQ(record.at("credentials").at("enrollment").at("registrationId"), id);
    EXPECT_FALSE(record.at("imprint_version").get<std::string>().empty());
    std::map<std::string, std::string> files;
    for (const json& file : record.at("files")) files[file.at("target")] = file.at("sha256");
    EXPECT_EQ(files.size(), 5u);
    EXPECT_EQ(files["/data/mender/device-id"], shell("printf '%s\\n' " + id + " | sha256sum | cut -d' ' -f1").substr(0, 64));
    EXPECT_EQ(files["/data/mender/mender-agent.pem"].size(), 64u);

    CommandResult verify = run_imprint({"verify", "-p", path("profile.yaml"), "--device", id, image, "--set",
                                        "key_file=" + path("certs/" + id + ".key.pem"), "--set",
                                        "cert_file=" + path("certs/" + id + ".cert.pem"), "--set",
                                        "dps_client=" + fixture("elf/hello-armhf")});
    EXPECT_EQ(verify.status, 0) << id << ": " << verify.out << verify.err;
    for (int number : {2, 3, 4}) {
      CommandResult fsck = e2fsck(image, number);
      EXPECT_EQ(fsck.status, 0) << id << " p" << number << ": " << fsck.out;
    }
    for (int rootfs : {2, 3}) {
      const std::string script = debugfs(image, rootfs, "cat /usr/share/mender/identity/mender-device-identity");
      EXPECT_EQ(run({"sh", "-c", script}).out, "DeviceId=" + id + "\n") << id << " p" << rootfs;
    }
    EXPECT_EQ(debugfs(image, 4, "cat /mender/device-id"), id + "\n");
  }
}

TEST_F(BatchTest, KilledBatchResumesToTheSameManifest) {
  const std::string reference = reference_run();
  const std::string out = path("killed");
  std::filesystem::create_directories(out);
  // Start a one-job batch, kill -9 it once a few devices are recorded.
  const pid_t pid = start_batch(batch_arguments(out, {"-j", "1", "--bmap"}), "/dev/null");
  wait_for_records(out + "/manifest.jsonl", 5);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the batch finished before it could be killed";
  const std::size_t recorded = manifest_lines(out + "/manifest.jsonl").size();
  EXPECT_LT(recorded, static_cast<std::size_t>(kDevices));
  // Nothing half-written under a final name: every image present is complete (its bmap or record may lag).
  for (const auto& entry : std::filesystem::directory_iterator(out)) {
    const std::string name = entry.path().filename().string();
    EXPECT_NE(name.front(), '.') << "a temp file was left behind: " << name;
    if (name.ends_with(".img")) {
      EXPECT_EQ(e2fsck(entry.path().string(), 4).status, 0) << name;
    }
  }

  CommandResult rerun = run_imprint(batch_arguments(out, {"-j", "2", "--bmap"}), "", kEpoch);
  ASSERT_EQ(rerun.status, 0) << rerun.err;
  EXPECT_NE(rerun.out.find(std::to_string(recorded) + " already done"), std::string::npos) << rerun.out;
  EXPECT_EQ(without_timing(manifest_lines(out + "/manifest.jsonl")), without_timing(manifest_lines(reference + "/manifest.jsonl")));
  for (int i = 0; i < kDevices; ++i) {
    EXPECT_EQ(file_sha256(out + "/" + device_id(i) + ".img"), file_sha256(reference + "/" + device_id(i) + ".img"));
  }

  // A damaged output is redone on the next run, the intact ones are skipped.
  const std::string victim = out + "/" + device_id(3) + ".img";
  shell("printf 'X' | dd of='" + victim + "' bs=1 seek=1048576 conv=notrunc status=none");
  CommandResult again = run_imprint(batch_arguments(out, {"-j", "2", "--bmap"}), "", kEpoch);
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.out.find("1 stamped, 19 already done"), std::string::npos) << again.out;
  // The re-run names the device it stamped again, and why.
  EXPECT_NE(again.out.find("restamped " + device_id(3) + ": " + victim +
                           " changed since it was stamped (sha256 differs from the manifest)\n"),
            std::string::npos)
      << again.out;
  EXPECT_EQ(again.out.find("restamped " + device_id(4)), std::string::npos) << again.out;
  EXPECT_EQ(file_sha256(victim), file_sha256(reference + "/" + device_id(3) + ".img"));
}

// Ctrl-C mid-batch: one line says how many devices are finished (kept, recorded) and how many the
// next run stamps; the batch dies of SIGINT, and the next run does just that.
TEST_F(BatchTest, InterruptedBatchSaysWhatIsKeptAndWhatTheNextRunRedoes) {
  const std::string out = path("interrupted");
  std::filesystem::create_directories(out);
  const std::string manifest = out + "/manifest.jsonl";
  const pid_t pid = start_batch(batch_arguments(out, {"-j", "1"}), path("interrupted.err"));
  wait_for_records(manifest, 3);
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the batch finished before the signal: " << read_file(path("interrupted.err"));
  EXPECT_EQ(WTERMSIG(status), SIGINT);
  const std::size_t recorded = manifest_lines(manifest).size();
  const std::string err = read_file(path("interrupted.err"));
  // The count is the one the handler last saw: a record appended in the very instant of the signal
  // may not be in it yet.
  std::size_t finished = 0;
  ASSERT_EQ(std::sscanf(err.c_str(), "imprint: interrupted: %zu of", &finished), 1) << err;
  EXPECT_TRUE(finished == recorded || finished + 1 == recorded) << finished << " said, " << recorded << " recorded";
  EXPECT_EQ(err, "imprint: interrupted: " + std::to_string(finished) + " of 20 device(s) finished and recorded in " +
                     manifest + "; the next run of the same command stamps the other " + std::to_string(20 - finished) +
                     " (the images in progress were removed)\n");
  for (const auto& entry : std::filesystem::directory_iterator(out)) {
    EXPECT_NE(entry.path().filename().string().front(), '.') << "a temp file was left behind: " << entry.path();
  }
  const CommandResult rerun = run_imprint(batch_arguments(out, {"-j", "2"}), "", kEpoch);
  ASSERT_EQ(rerun.status, 0) << rerun.err;
  EXPECT_NE(rerun.out.find(std::to_string(20 - recorded) + " stamped, " + std::to_string(recorded) + " already done"),
            std::string::npos)
      << rerun.out;
}

// On a terminal the batch counts devices (done of total, rate, ETA); without one it does not; with
// --quiet it prints nothing at all.
TEST_F(BatchTest, CountsDevicesOnATerminalOnly) {
  const std::string csv = path("devices.csv");
  const CommandResult tty = run_imprint_on_terminal(batch_arguments(path("tty"), {"-j", "1", "--shard", "1/10"}));
  ASSERT_EQ(tty.status, 0) << tty.out;
  EXPECT_NE(tty.out.find("\rimprint: stamping " + csv + ": 1/2 devices (50%), "), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("\rimprint: stamped " + csv + ": 2/2 devices in "), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("2 stamped, 0 already done"), std::string::npos) << tty.out;

  const CommandResult plain = run_imprint(batch_arguments(path("plain"), {"-j", "1", "--shard", "1/10"}));
  ASSERT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.err, "");
  EXPECT_EQ(plain.out.find('\r'), std::string::npos) << plain.out;

  const CommandResult quiet =
      run_imprint_on_terminal(batch_arguments(path("quiet"), {"-j", "1", "--shard", "1/10", "--quiet"}));
  ASSERT_EQ(quiet.status, 0) << quiet.out;
  EXPECT_EQ(quiet.out, "");
}

TEST_F(BatchTest, ShardsMergeToTheUnshardedManifest) {
  const std::string reference = reference_run();
  std::vector<std::string> manifests;
  std::size_t images = 0;
  for (int k = 1; k <= 3; ++k) {
    const std::string out = path("shard" + std::to_string(k));
    CommandResult result = run_imprint(batch_arguments(out, {"-j", "2", "--bmap", "--shard", std::to_string(k) + "/3"}), "", kEpoch);
    ASSERT_EQ(result.status, 0) << result.err;
    manifests.push_back(out + "/manifest.jsonl");
    for (const auto& entry : std::filesystem::directory_iterator(out)) images += entry.path().extension() == ".img";
  }
  EXPECT_EQ(images, static_cast<std::size_t>(kDevices)) << "every row in exactly one shard";
  std::vector<std::string> arguments{"manifest", "merge"};
  arguments.insert(arguments.end(), manifests.begin(), manifests.end());
  arguments.insert(arguments.end(), {"-o", path("merged.jsonl")});
  CommandResult merge = run_imprint(arguments);
  ASSERT_EQ(merge.status, 0) << merge.err;
  // The same records, but their paths lead from the merged file to each shard's directory.
  std::vector<json> merged = without_timing(manifest_lines(path("merged.jsonl")));
  std::vector<json> expected = without_timing(manifest_lines(reference + "/manifest.jsonl"));
  ASSERT_EQ(merged.size(), expected.size());
  for (std::size_t i = 0; i < merged.size(); ++i) {
    const std::string shard = "shard" + std::to_string(i % 3 + 1) + "/";
    for (const char* key : {"output", "bmap"}) {
      EXPECT_EQ(merged[i][key], shard + expected[i][key].get<std::string>());
      expected[i][key] = merged[i][key];
    }
    EXPECT_EQ(file_sha256(path(merged[i]["output"].get<std::string>())), merged[i]["output_sha256"]);
  }
  EXPECT_EQ(merged, expected);
  EXPECT_TRUE(std::filesystem::exists(path("merged.csv")));
}

TEST_F(BatchTest, BmaptoolCopiesTheImageAndRejectsAChangedByte) {
  const std::string reference = reference_run();
  const std::string image = reference + "/" + device_id(0) + ".img";
  const std::string bmap = reference + "/" + device_id(0) + ".bmap";
  TempDir dir;
  CommandResult copy = run({"bmaptool", "copy", "--bmap", bmap, image, dir / "copy.img"});
  ASSERT_EQ(copy.status, 0) << copy.err;
  EXPECT_EQ(run({"cmp", image, dir / "copy.img"}).status, 0);

  // One byte changed inside the first mapped range (the partition table's sector): rejected.
  const std::string changed = dir / "changed.img";
  shell("cp --sparse=always '" + image + "' '" + changed + "'");
  shell("printf 'Z' | dd of='" + changed + "' bs=1 seek=100 conv=notrunc status=none");
  ASSERT_NE(read_file(bmap).find("<Range chksum="), std::string::npos);
  CommandResult rejected = run({"bmaptool", "copy", "--bmap", bmap, changed, dir / "copy2.img"});
  EXPECT_NE(rejected.status, 0);
  EXPECT_NE((rejected.out + rejected.err).find("checksum mismatch"), std::string::npos) << rejected.err;
}

// Compressed outputs, framed (the shared base compressed once, each device's ops applied to an
// overlay on it and only the frames the overlay touches recompressed, as --verbose says): for every
// format and both devices, a valid .gz/.xz/.zst that the format's own tool reads back as exactly
// the raw batch's image, and a manifest whose digest is the output's (image_sha256 null: nothing
// hashes the whole image). zst, the format CI pipelines use, also goes through bmaptool with the
// batch's bmap (its checksums reused from the base's where the overlay left a piece alone) and a
// re-run, which skips both devices (the skip decompresses and verifies each). Two devices show the
// reuse across devices; tests/image_frames_test.cpp checks the frame counts, a change across a
// frame boundary and libarchive's reading for every format.
TEST_F(BatchTest, CompressedOutputsAreFramedAndHoldExactlyTheRawBatchsImages) {
  const std::string reference = reference_run();
  std::string csv = "device_id,key_file,cert_file\n";
  for (int i = 0; i < 2; ++i) {
    csv += device_id(i) + "," + path("certs/" + device_id(i) + ".key.pem") + "," + path("certs/" + device_id(i) + ".cert.pem") + "\n";
  }
  write_file(path("two.csv"), csv);
  for (const std::string format : {"gz", "xz", "zst"}) {
    SCOPED_TRACE(format);
    const bool zst = format == "zst";
    const std::string out = path("framed-" + format);
    std::vector<std::string> options{"-j", "2", "--compress", format};
    if (zst) options.push_back("--bmap");
    auto arguments = batch_arguments(out, options, path("two.csv"));
    arguments.insert(arguments.begin(), "--verbose");
    CommandResult result = run_imprint(arguments, "", kEpoch);
    ASSERT_EQ(result.status, 0) << result.err;
    for (int i = 0; i < 2; ++i) {
      const std::regex note(device_id(i) + R"(\.img\.)" + format + R"(: \d+ frame\(s\) recompressed from the shared base \+ the device's overlay)");
      EXPECT_TRUE(std::regex_search(result.err, note)) << result.err;
    }
    const std::string tool = format == "gz" ? "gzip" : format == "xz" ? "xz" : "zstd";
    const auto records = manifest_lines(out + "/manifest.jsonl");
    ASSERT_EQ(records.size(), 2u);
    for (int i = 0; i < 2; ++i) {
      const std::string raw = reference + "/" + device_id(i) + ".img";
      const std::string file = out + "/" + device_id(i) + ".img." + format;
      shell(tool + " -t '" + file + "'");  // throws when the tool rejects the file or is missing
      EXPECT_EQ(run({"sh", "-c", tool + " -dc '" + file + "' | cmp - '" + raw + "'"}).status, 0) << file;
      EXPECT_EQ(records[static_cast<std::size_t>(i)].at("output_sha256"), file_sha256(file));
      EXPECT_TRUE(records[static_cast<std::size_t>(i)].at("image_sha256").is_null());
      EXPECT_EQ(records[static_cast<std::size_t>(i)].at("image_size"), std::filesystem::file_size(raw));
      if (!zst) continue;
      const std::string flashed = out + "/" + device_id(i) + ".flashed";
      CommandResult copied = run({"bmaptool", "copy", "--bmap", out + "/" + device_id(i) + ".bmap", file, flashed});
      ASSERT_EQ(copied.status, 0) << copied.err;
      EXPECT_EQ(run({"cmp", flashed, raw}).status, 0) << flashed;
      std::filesystem::remove(flashed);
    }
    if (!zst) continue;
    const auto before = std::filesystem::last_write_time(out + "/" + device_id(0) + ".img." + format);
    CommandResult again = run_imprint(arguments, "", kEpoch);
    ASSERT_EQ(again.status, 0) << again.err;
    EXPECT_NE((again.out + again.err).find("0 stamped, 2 already done"), std::string::npos) << again.out << again.err;
    EXPECT_EQ(std::filesystem::last_write_time(out + "/" + device_id(0) + ".img." + format), before);
  }
}

// The golden's sha256 and compressed frames are kept in $XDG_CACHE_HOME/imprint: a second compressed
// batch on the same golden reads them back (as --verbose says) and writes byte-identical outputs
// holding the raw batch's image, with the manifest's golden_sha256 still sha256sum's; the cached
// frames are the golden compressed; --no-cache keeps nothing; a golden rewritten since is read again.
TEST_F(BatchTest, ACompressedBatchKeepsTheGoldensFramesForTheNextOne) {
  const std::string golden = path("cached-golden.img");
  shell("cp --sparse=always '" + fixture("mbr.img") + "' '" + golden + "'");
  const std::string csv = read_file(path("devices.csv"));
  write_file(path("one.csv"), csv.substr(0, csv.find('\n', csv.find('\n') + 1) + 1));
  const auto batch = [&](const std::string& out, const std::string& cache, std::vector<std::string> extra) {
    std::vector<std::string> arguments = batch_arguments(out, {"--verbose"}, path("one.csv"));
    if (std::find(extra.begin(), extra.end(), "--compress") == extra.end()) extra.insert(extra.end(), {"--compress", "zst"});
    *(std::find(arguments.begin(), arguments.end(), "-i") + 1) = golden;
    arguments.insert(arguments.end(), extra.begin(), extra.end());
    CommandResult result = run_imprint(arguments, "", {kEpoch[0], "XDG_CACHE_HOME=" + cache});
    EXPECT_EQ(result.status, 0) << result.err;
    return result.err;
  };
  const std::string cache = path("cache");
  const std::string note = "its compressed frames come from the cache";
  EXPECT_EQ(batch(path("cold"), cache, {}).find(note), std::string::npos);
  EXPECT_NE(batch(path("warm"), cache, {}).find(note), std::string::npos);
  const std::string name = "/" + device_id(0) + ".img.zst";
  EXPECT_EQ(run({"cmp", path("cold") + name, path("warm") + name}).status, 0);
  batch(path("raw"), cache, {"--compress", "none"});  // the same device set: the same shared operations
  EXPECT_EQ(run({"sh", "-c", "zstd -dc '" + path("warm") + name + "' | cmp - '" + path("raw") + "/" + device_id(0) + ".img'"}).status, 0);
  EXPECT_EQ(manifest_lines(path("warm") + "/manifest.jsonl").at(0).at("golden_sha256"), file_sha256(golden));
  EXPECT_EQ(run({"sh", "-c", "zstd -dc '" + cache + "'/imprint/frames/*.frames | cmp - '" + golden + "'"}).status, 0);

  batch(path("uncached"), path("no-cache"), {"--no-cache"});
  EXPECT_FALSE(std::filesystem::exists(path("no-cache")));
  shell("touch '" + golden + "'");
  EXPECT_EQ(batch(path("rewritten"), cache, {}).find(note), std::string::npos);
}

TEST_F(BatchTest, BadRowsStopTheBatchBeforeAnyImageOrAreListedWithKeepGoing) {
  std::string csv = read_file(path("devices.csv"));
  // Line 3 (the second device) gets the first device's certificate: key-matches-cert fails.
  const std::string first_cert = path("certs/" + device_id(0) + ".cert.pem");
  const std::string second_cert = path("certs/" + device_id(1) + ".cert.pem");
  csv.replace(csv.find(second_cert), second_cert.size(), first_cert);
  write_file(path("bad.csv"), csv);
  const std::string out = path("bad");
  CommandResult stopped = run_imprint(batch_arguments(out, {"-j", "2"}, path("bad.csv")));
  EXPECT_NE(stopped.status, 0);
  EXPECT_NE(stopped.err.find("bad.csv:3: device " + device_id(1)), std::string::npos) << stopped.err;
  EXPECT_TRUE(!std::filesystem::exists(out) || std::filesystem::is_empty(out)) << "an image was written despite a bad row";

  const std::string two = path("bad-two.csv");
  std::istringstream lines(csv);
  std::string line, head;
  for (int i = 0; i < 4 && std::getline(lines, line); ++i) head += line + "\n";
  write_file(two, head);
  CommandResult going = run_imprint(batch_arguments(out, {"-j", "2", "--keep-going"}, two));
  EXPECT_NE(going.status, 0);
  EXPECT_NE(going.err.find("bad-two.csv:3"), std::string::npos) << going.err;
  EXPECT_TRUE(std::filesystem::exists(out + "/" + device_id(0) + ".img"));
  EXPECT_TRUE(std::filesystem::exists(out + "/" + device_id(2) + ".img"));
  EXPECT_FALSE(std::filesystem::exists(out + "/" + device_id(1) + ".img"));
}

TEST_F(BatchTest, FlashWritesTheMappedRangesAndVerifies) {
  const std::string reference = reference_run();
  const std::string image = reference + "/" + device_id(0) + ".img";
  TempDir dir;
  const std::string target = dir / "card.img";
  CommandResult flashed = run_imprint({"flash", image, "--target", target, "--manifest", dir / "flash.jsonl"});
  ASSERT_EQ(flashed.status, 0) << flashed.err;
  EXPECT_NE(flashed.out.find(device_id(0) + ": "), std::string::npos);
  EXPECT_NE(flashed.out.find("verified"), std::string::npos);
  EXPECT_EQ(run({"cmp", image, target}).status, 0);
  // Only the mapped ranges were written: the target stays sparse like the image.
  EXPECT_LT(allocated_bytes(target), allocated_bytes(image) + (1u << 20));
  const auto records = manifest_lines(dir / "flash.jsonl");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].at("verified"), true);
  EXPECT_EQ(records[0].at("image_sha256"), file_sha256(image));

  // An existing file is not overwritten without --force.
  CommandResult refused = run_imprint({"flash", image, "--target", target});
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.err.find("--force"), std::string::npos) << refused.err;

  // A corrupted read-back is reported and fails.
  CommandResult corrupt = run_imprint({"flash", image, "--target", target, "--force", "--manifest", dir / "flash.jsonl"}, "",
                                      {"IMPRINT_TEST_CORRUPT_READBACK=1"});
  EXPECT_NE(corrupt.status, 0);
  EXPECT_NE(corrupt.err.find("read-back verify failed"), std::string::npos) << corrupt.err;
  EXPECT_EQ(manifest_lines(dir / "flash.jsonl").back().at("verified"), false);

  // Stamp on the fly onto a file: the result verifies against the device's plan.
  const std::string id = device_id(5);
  const std::string card = dir / "card2.img";
  const std::vector<std::string> vars{"--set", "key_file=" + path("certs/" + id + ".key.pem"), "--set",
                                      "cert_file=" + path("certs/" + id + ".cert.pem"), "--set", "dps_client=" + fixture("elf/hello-armhf")};
  std::vector<std::string> arguments{"flash", "-p", path("profile.yaml"), "-i", fixture("mbr.img.gz"), "--device", id,
                                     "--target", card, "--json"};
  arguments.insert(arguments.end(), vars.begin(), vars.end());
  CommandResult stamped = run_imprint(arguments, "", kEpoch);
  ASSERT_EQ(stamped.status, 0) << stamped.err;
  const json result = json::parse(stamped.out);
  EXPECT_EQ(result.at("device_id"), id);
  EXPECT_EQ(result.at("target"), card);
  EXPECT_EQ(result.at("verified"), true);
  EXPECT_EQ(result.at("files").size(), 5u) << result.dump();
  // The same device from the same inputs: the card holds what imprint stamp writes, byte for byte.
  std::vector<std::string> stamp{"stamp", "-p", path("profile.yaml"), "-i", fixture("mbr.img"), "--device", id, "-o", dir / "stamped.img"};
  stamp.insert(stamp.end(), vars.begin(), vars.end());
  ASSERT_EQ(run_imprint(stamp, "", kEpoch).status, 0);
  EXPECT_EQ(result.at("image_sha256"), file_sha256(dir / "stamped.img"));
  EXPECT_EQ(run({"cmp", dir / "stamped.img", card}).status, 0);
  std::vector<std::string> verify{"verify", "-p", path("profile.yaml"), "--device", id, card};
  verify.insert(verify.end(), vars.begin(), vars.end());
  CommandResult verified = run_imprint(verify);
  EXPECT_EQ(verified.status, 0) << verified.out << verified.err;
  EXPECT_EQ(e2fsck(card, 4).status, 0);
}

// --backend reaches batch and flash: native cannot write the vfat boot partition, and says so
// before any image is written.
TEST_F(BatchTest, NativeBackendRefusesTheBootPartitionInBatchAndFlash) {
  TempDir dir;
  write_file(dir / "boot.yaml", "version: 1\nfiles:\n  - path: /uboot/device-id\n    content: \"{{device_id}}\\n\"\n    mode: \"0644\"\n");
  write_file(dir / "devices.csv", "device_id\nboot-dev-1\n");
  CommandResult batch = run_imprint({"batch", "-p", dir / "boot.yaml", "-i", fixture("mbr.img"), "--devices", dir / "devices.csv",
                                     "-O", dir / "out", "--backend", "native"});
  EXPECT_EQ(batch.status, 1);
  EXPECT_NE(batch.err.find("needs the libguestfs backend"), std::string::npos) << batch.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out/boot-dev-1.img"));
  CommandResult flash = run_imprint({"flash", "-p", dir / "boot.yaml", "-i", fixture("mbr.img"), "--device", "boot-dev-1",
                                     "--target", dir / "card.img", "--backend", "native"});
  EXPECT_EQ(flash.status, 1);
  EXPECT_NE(flash.err.find("needs the libguestfs backend"), std::string::npos) << flash.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "card.img"));
  CommandResult bogus = run_imprint({"flash", "-p", dir / "boot.yaml", "-i", fixture("mbr.img"), "--device", "boot-dev-1",
                                     "--target", dir / "card.img", "--backend", "nfs"});
  EXPECT_NE(bogus.status, 0);
  EXPECT_NE(bogus.err.find("nfs"), std::string::npos) << bogus.err;
}

// A real block device: a loop device over a sparse file, the closest thing to a card here (root).
TEST_F(BatchTest, FlashWritesABlockDeviceOnlyWithForceAndReadsItBack) {
  const std::string image = reference_run() + "/" + device_id(1) + ".img";
  TempDir dir;
  const std::string backing = dir / "card.raw";
  ASSERT_EQ(run({"truncate", "-s", std::to_string(std::filesystem::file_size(image) + (4u << 20)), backing}).status, 0);
  CommandResult attached = run({"losetup", "--find", "--show", backing});
  ASSERT_EQ(attached.status, 0) << "this test needs root and a free loop device (losetup): " << attached.err;
  const std::string device = attached.out.substr(0, attached.out.find('\n'));
  struct Detach {
    std::string device;
    ~Detach() { run({"losetup", "-d", device}); }
  } detach{device};

  // A loop device is not removable: refused without --force, and nothing is written.
  CommandResult refused = run_imprint({"flash", image, "--target", device});
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("not a removable disk"), std::string::npos) << refused.err;
  EXPECT_EQ(allocated_bytes(backing), 0u);

  CommandResult flashed = run_imprint({"flash", image, "--target", device, "--force", "--json"});
  ASSERT_EQ(flashed.status, 0) << flashed.err;
  EXPECT_EQ(json::parse(flashed.out).at("verified"), true) << flashed.out;
  EXPECT_EQ(run({"cmp", "-n", std::to_string(std::filesystem::file_size(image)), image, device}).status, 0);
  EXPECT_EQ(e2fsck(device, 4).status, 0);
}

TEST_F(BatchTest, FlashRefusesAMountedOrSystemDisk) {
  // The disk holding / on this machine: refused whatever the flags.
  const std::string root_source = shell("findmnt -n -o SOURCE /");
  std::string device = root_source.substr(0, root_source.find_first_of("\n["));
  if (device.rfind("/dev/", 0) != 0) GTEST_FAIL() << "/ is not on a block device here (" << device << "): cannot test the refusal";
  CommandResult refused = run_imprint({"flash", reference_run() + "/" + device_id(0) + ".img", "--target", device, "--force"});
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.err.find("refusing to write " + device), std::string::npos) << refused.err;
}

}  // namespace
