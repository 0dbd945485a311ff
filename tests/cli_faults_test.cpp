// Fault injection (issue 7): kill -9 at random moments of a stamp, an output directory that runs
// out of space or is read-only, a golden image truncated or corrupted at random offsets, a full
// filesystem inside the image, and paths of the wrong kind (symlinks, hard links, directories),
// inside the image and on the host. tests/README.md catalogues every bad input and its error.
//
// Random choices come from one seed, printed with every failure; IMPRINT_FAULT_SEED=N replays a run.
// Mount namespaces (read-only bind mount, small tmpfs) need root, as CI runs.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <stdexcept>
#include <sstream>
#include <thread>

#include "support.hpp"

using namespace imprint::test;
namespace fs = std::filesystem;

namespace {

const std::string kDevice = "mender-azure-test-device1";

std::string credential(const std::string& name) { return fixture("credentials/" + name); }
std::string profile() { return source_dir() + "/profiles/azure-dps-mender.yaml"; }

std::vector<std::string> device_variables() {
  return {"--set", "key_file=" + credential(kDevice + ".key.pem"), "--set", "cert_file=" + credential(kDevice + ".cert.pem"),
          "--set", "pfx_file=" + credential(kDevice + ".cert.pfx"), "--set", "dps_client=" + fixture("elf/hello-armhf")};
}

std::vector<std::string> stamp_arguments(const std::string& golden, const std::string& output) {
  std::vector<std::string> arguments{"stamp", "-p", profile(), "-i", golden, "--device", kDevice, "-o", output};
  for (const auto& argument : device_variables()) arguments.push_back(argument);
  return arguments;
}

CommandResult verify(const std::string& image) {
  std::vector<std::string> arguments{"verify", "-p", profile(), "--device", kDevice, image};
  for (const auto& argument : device_variables()) arguments.push_back(argument);
  return run_imprint(arguments);
}

// Every name in a directory, hidden ones included, sorted.
std::vector<std::string> entries(const std::string& directory) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(directory)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : " ") + name;
  return out.empty() ? "(empty)" : out;
}

// "clear error": a non-zero status below 128 (not a signal) and exactly one line "imprint: ...".
void expect_clean_error(const CommandResult& result, const std::string& needle) {
  EXPECT_GT(result.status, 0) << result.err;
  EXPECT_LT(result.status, 124) << "crashed, hung or was killed: " << result.err;
  EXPECT_EQ(result.err.rfind("imprint: ", 0), 0u) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  if (!needle.empty()) {
    EXPECT_NE(result.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << result.err;
  }
}

std::uint32_t fault_seed() {
  if (const char* text = std::getenv("IMPRINT_FAULT_SEED"); text != nullptr && *text != '\0') {
    return static_cast<std::uint32_t>(std::strtoul(text, nullptr, 10));
  }
  return std::random_device{}();
}

std::string seed_note(std::uint32_t seed) { return "IMPRINT_FAULT_SEED=" + std::to_string(seed); }

// How long a complete run takes, to aim the kills inside it: the median of three runs after a
// warm-up, each after reset(). One slow run (a cold cache, the other tests' load) would stretch the
// window past the end of most runs, and most kills would land on a finished process.
double typical_run_seconds(const std::vector<std::string>& arguments, const std::function<void()>& reset) {
  std::vector<double> seconds;
  for (int run = 0; run < 4; ++run) {
    reset();
    const auto start = std::chrono::steady_clock::now();
    const CommandResult result = run_imprint(arguments);
    if (result.status != 0) throw std::runtime_error("a complete run failed: " + result.err);
    if (run > 0) seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

// Starts imprint with stdout/stderr discarded, so the test can kill it.
pid_t spawn_imprint(const std::vector<std::string>& arguments) {
  std::vector<std::string> argv_strings{imprint_bin()};
  argv_strings.insert(argv_strings.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (auto& argument : argv_strings) argv.push_back(argument.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

bool is_root() { return ::geteuid() == 0; }

// Runs a shell script in a private mount namespace (mounts made there vanish with it).
CommandResult in_mount_namespace(const std::string& script) {
  if (!is_root()) throw std::runtime_error("this test needs root for unshare -m and mount (CI runs as root)");
  return run({"unshare", "-m", "sh", "-c", script});
}

std::string quoted(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& word : words) {
    std::string escaped;
    for (char c : word) escaped += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += " '" + escaped + "'";
  }
  return out;
}

// Is the stamped output complete? Independent readers: e2fsck on every ext partition, debugfs for
// the device's files; and imprint verify against the plan.
void expect_complete_output(const std::string& image) {
  for (int number : {2, 3, 4}) EXPECT_EQ(e2fsck(image, number).status, 0) << "p" << number;
  EXPECT_TRUE(debugfs_exists(image, 4, "/mender/mender-agent.pem"));
  EXPECT_NE(debugfs(image, 3, "cat /usr/share/mender/identity/mender-device-identity").find("DeviceId="), std::string::npos);
  const CommandResult verified = verify(image);
  EXPECT_EQ(verified.status, 0) << verified.out << verified.err;
}

// ---------------------------------------------------------------------------------------------
// kill -9

// 100 kills at random moments between the start and the measured run time of a stamp of the
// 1 GiB image: a file under the output's name only when it is complete; no temp file ever; the
// golden unchanged; and a re-run after all that completes and verifies.
TEST(KillNine, HundredRandomKillsOfAStampLeaveNothingButCompleteOutputs) {
  const std::uint32_t seed = fault_seed();
  SCOPED_TRACE(seed_note(seed));
  std::mt19937 random(seed);
  TempDir dir;
  const std::string golden = fixture("big.img");
  const std::string golden_sha = file_sha256(golden);
  const std::string output = dir / "out.img";
  const auto arguments = stamp_arguments(golden, output);

  const double run_seconds = typical_run_seconds(arguments, [&] { fs::remove(output); });
  fs::remove(output);
  std::uniform_real_distribution<double> delay(0.0, run_seconds);

  int killed = 0, completed = 0, verified = 0;
  for (int trial = 0; trial < 100; ++trial) {
    const double seconds = delay(random);
    const pid_t pid = spawn_imprint(arguments);
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    const std::string moment = "trial " + std::to_string(trial) + ", kill at " + std::to_string(seconds) + " s";
    if (WIFEXITED(status)) {
      ++completed;
      EXPECT_EQ(WEXITSTATUS(status), 0) << moment;
    } else {
      ++killed;
    }
    const auto names = entries(dir.path());
    if (fs::exists(output)) {
      // Complete, even when the kill landed after the rename: check it (fully for the first few).
      EXPECT_EQ(names, std::vector<std::string>{"out.img"}) << moment << ": " << joined(names);
      if (verified++ < 5) {
        expect_complete_output(output);
      } else {
        EXPECT_EQ(e2fsck(output, 4).status, 0) << moment;
        EXPECT_TRUE(debugfs_exists(output, 4, "/mender/mender-certificate.pfx")) << moment;
      }
      fs::remove(output);
    } else {
      EXPECT_TRUE(names.empty()) << moment << ": left behind: " << joined(names);
    }
  }
  RecordProperty("killed", killed);
  RecordProperty("completed", completed);
  EXPECT_GE(killed, 50) << "most kills must land before the stamp finishes (run time " << run_seconds << " s)";
  EXPECT_EQ(file_sha256(golden), golden_sha) << "the golden image changed";

  const CommandResult rerun = run_imprint(arguments);
  ASSERT_EQ(rerun.status, 0) << rerun.err;
  expect_complete_output(output);
}

// The same for a batch of 5 devices (2 jobs), 15 kills: every name in the output directory is the
// manifest or a complete image of its own device, never a hidden temp file; a re-run over what a
// kill left completes every device. The kills are stratified: one at a random moment inside each
// fifteenth of the run time, so every phase of the batch (the base, each device's copy and edits,
// the renames, the manifest) is hit on every run, never more than 2/15 of the run time apart. The
// 30 uniformly random kills this test used before left on average two of those fifteenths unhit
// (15 x (14/15)^30) and a widest gap of about 13% (H(31)/31): the same coverage for half the
// batch runs, which are what this test's time goes to.
TEST(KillNine, RandomKillsOfABatchLeaveOnlyCompleteImagesAndAResumableDirectory) {
  const std::uint32_t seed = fault_seed();
  SCOPED_TRACE(seed_note(seed));
  std::mt19937 random(seed);
  TempDir dir;
  write_file(dir / "p.yaml", "version: 1\nfiles:\n  - path: /data/mender/device-id\n    content: \"{{device_id}}\\n\"\n"
                             "    mode: \"0644\"\n  - path: /usr/share/mender/identity/mender-device-identity\n"
                             "    content: \"#!/bin/sh\\necho DeviceId={{device_id}}\\n\"\n    mode: \"0755\"\n");
  std::string csv = "device_id\n";
  for (int i = 0; i < 5; ++i) csv += "fault-" + std::to_string(i) + "\n";
  write_file(dir / "devices.csv", csv);
  const std::string golden = fixture("big.img");
  const std::string golden_sha = file_sha256(golden);
  const std::string out = dir / "out";
  const std::vector<std::string> arguments{"batch", "-p", dir / "p.yaml", "-i", golden, "--devices", dir / "devices.csv", "-O", out, "-j", "2"};

  const double run_seconds = typical_run_seconds(arguments, [&] {
    fs::remove_all(out);  // else the re-run would skip every device
    fs::create_directory(out);
  });
  constexpr int kKills = 15;
  std::uniform_real_distribution<double> within(0.0, run_seconds / kKills);

  auto check_directory = [&](const std::string& moment) {
    for (const std::string& name : entries(out)) {
      EXPECT_NE(name.front(), '.') << moment << ": temp file left behind: " << name;
      if (!name.ends_with(".img")) continue;
      EXPECT_EQ(e2fsck(out + "/" + name, 4).status, 0) << moment << ": " << name;
      EXPECT_EQ(debugfs(out + "/" + name, 4, "cat /mender/device-id"), name.substr(0, name.size() - 4) + "\n") << moment;
    }
  };
  int killed = 0;
  for (int trial = 0; trial < kKills; ++trial) {
    fs::remove_all(out);
    fs::create_directory(out);
    const double seconds = trial * run_seconds / kKills + within(random);
    const pid_t pid = spawn_imprint(arguments);
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status)) ++killed;
    check_directory("trial " + std::to_string(trial) + ", kill at " + std::to_string(seconds) + " s");
  }
  EXPECT_GE(killed, (kKills + 1) / 2) << "most kills must land before the batch finishes (run time " << run_seconds << " s)";
  const CommandResult resumed = run_imprint(arguments);
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  check_directory("re-run");
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(fs::exists(out + "/fault-" + std::to_string(i) + ".img")) << i;
  EXPECT_EQ(file_sha256(golden), golden_sha);
}

// ---------------------------------------------------------------------------------------------
// The output directory

// ulimit -f: the copy hits the file size limit. Not a SIGXFSZ death but one line naming the
// output; the unnamed temp file goes with it.
TEST(OutputDirectory, FileSizeLimitGivesACleanErrorNamingTheOutput) {
  TempDir dir;
  const std::string golden = fixture("mbr.img");
  const std::string golden_sha = file_sha256(golden);
  const std::string output = dir / "out.img";
  std::vector<std::string> argv{"prlimit", "--fsize=1048576", imprint_bin()};
  for (const auto& argument : stamp_arguments(golden, output)) argv.push_back(argument);
  const CommandResult result = run(argv);
  expect_clean_error(result, output);
  EXPECT_NE(result.err.find("File too large"), std::string::npos) << result.err;
  EXPECT_TRUE(entries(dir.path()).empty()) << joined(entries(dir.path()));
  EXPECT_EQ(file_sha256(golden), golden_sha);
}

// A real full disk: the output directory is a small tmpfs. Sizes from far too small to enough
// let ENOSPC land in the copy and in the writes into the copy (which fill its holes).
TEST(OutputDirectory, FullDiskGivesACleanErrorNamingTheOutputAndLeavesNothing) {
  TempDir dir;
  const std::string golden = fixture("mbr.img");
  const std::string golden_sha = file_sha256(golden);
  const std::string mount_point = dir / "out";
  fs::create_directory(mount_point);
  const std::string output = mount_point + "/out.img";
  const std::uint64_t allocated_kib = allocated_bytes(golden) / 1024;
  std::string script = "set -u; ";
  std::vector<std::uint64_t> sizes;
  for (int percent = 30; percent <= 130; percent += 5) sizes.push_back(allocated_kib * percent / 100);
  for (std::uint64_t kib : sizes) {
    script += "mount -t tmpfs -o size=" + std::to_string(kib) + "k none '" + mount_point + "' || exit 99; ";
    script += quoted({imprint_bin()}) + quoted(stamp_arguments(golden, output)) + " >/dev/null 2>'" + (dir / "err") + "'; ";
    script += "echo \"size " + std::to_string(kib) + " status $? entries $(ls -A '" + mount_point + "' | tr '\\n' ' ')\"; ";
    script += "echo \"stderr $(cat '" + (dir / "err") + "' | tr '\\n' '|')\"; umount '" + mount_point + "'; ";
  }
  const CommandResult result = in_mount_namespace(script);
  ASSERT_EQ(result.status, 0) << result.out << result.err;
  std::istringstream lines(result.out);
  std::string summary, error_line;
  int failures = 0, successes = 0;
  while (std::getline(lines, summary) && std::getline(lines, error_line)) {
    SCOPED_TRACE(summary + " / " + error_line);
    if (summary.find(" status 0 ") != std::string::npos) {
      ++successes;
      EXPECT_NE(summary.find("entries out.img "), std::string::npos);
      EXPECT_EQ(summary.substr(summary.find("entries ")), "entries out.img ");
      continue;
    }
    ++failures;
    EXPECT_NE(summary.find(" status 1 "), std::string::npos) << "a full disk is status 1, not a crash";
    EXPECT_EQ(summary.substr(summary.find("entries ")), "entries ") << "a failed stamp left files behind";
    EXPECT_EQ(error_line.rfind("stderr imprint: ", 0), 0u);
    EXPECT_EQ(std::count(error_line.begin(), error_line.end(), '|'), 1) << "one line";
    EXPECT_NE(error_line.find(output), std::string::npos) << "the error must name the output";
    EXPECT_NE(error_line.find("No space left on device"), std::string::npos);
    EXPECT_EQ(error_line.find("no space left in the filesystem"), std::string::npos)
        << "the host disk is full, not the filesystem inside the image";
  }
  EXPECT_EQ(failures + successes, static_cast<int>(sizes.size())) << result.out;
  EXPECT_GT(failures, 0) << result.out;
  EXPECT_GT(successes, 0) << result.out;
  EXPECT_EQ(file_sha256(golden), golden_sha);
}

// A read-only output directory (root ignores chmod 555, so a read-only bind mount).
TEST(OutputDirectory, ReadOnlyDirectoryGivesACleanErrorAndLeavesNothing) {
  TempDir dir;
  const std::string golden = fixture("mbr.img");
  const std::string golden_sha = file_sha256(golden);
  const std::string target = dir / "ro";
  fs::create_directory(target);
  const std::string output = target + "/out.img";
  const CommandResult result = in_mount_namespace(
      "mount --bind '" + target + "' '" + target + "' && mount -o remount,bind,ro '" + target + "' || exit 99; exec" +
      quoted({imprint_bin()}) + quoted(stamp_arguments(golden, output)));
  ASSERT_NE(result.status, 99) << result.err;
  expect_clean_error(result, output);
  EXPECT_NE(result.err.find("Read-only file system"), std::string::npos) << result.err;
  EXPECT_TRUE(entries(target).empty()) << joined(entries(target));
  EXPECT_EQ(file_sha256(golden), golden_sha);
}

// ---------------------------------------------------------------------------------------------
// Corrupt goldens

struct Corruption {
  std::string description;
  std::uint64_t truncate_at = 0;  // when not 0 and bytes is empty
  std::uint64_t offset = 0;
  std::string bytes;
};

// Where damage matters: the partition table, and the first 64 KiB of each partition (superblock,
// group descriptors, bitmaps); else anywhere in the allocated data.
std::vector<Corruption> corruptions(std::mt19937& random, const std::string& golden) {
  std::vector<std::uint64_t> starts{0};
  for (int number = 1; number <= 4; ++number) starts.push_back(partition_span(golden, number).offset);
  const std::uint64_t size = fs::file_size(golden);
  std::vector<Corruption> out;
  auto pick = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(random); };
  for (int i = 0; i < 50; ++i) {
    const bool near_metadata = i % 2 == 0;
    const std::uint64_t offset = near_metadata ? starts[pick(starts.size())] + pick(65536) : pick(size);
    Corruption corruption;
    if (i < 20) {
      corruption.truncate_at = std::max<std::uint64_t>(offset, 1);
      corruption.description = "truncated at " + std::to_string(corruption.truncate_at);
    } else {
      corruption.offset = offset;
      const std::uint64_t length = 1 + pick(i % 3 == 0 ? 4 : 1024);
      for (std::uint64_t k = 0; k < length; ++k) corruption.bytes.push_back(static_cast<char>(pick(256)));
      corruption.description = std::to_string(length) + " random bytes at " + std::to_string(offset);
    }
    out.push_back(corruption);
  }
  return out;
}

void apply_corruption(const std::string& image, const Corruption& corruption) {
  if (corruption.bytes.empty()) {
    fs::resize_file(image, corruption.truncate_at);
    return;
  }
  const int fd = ::open(image.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, corruption.bytes.data(), corruption.bytes.size(), static_cast<off_t>(corruption.offset)),
            static_cast<ssize_t>(corruption.bytes.size()));
  ::close(fd);
}

// 50 damaged goldens (20 truncated, 30 overwritten): stamp and ls each, under a timeout. Each run
// succeeds or fails with one clear line; never a crash (status >= 128), never a hang; never a file
// left in the output directory after a failure; the damaged golden itself never modified.
TEST(CorruptGolden, FiftyDamagedImagesGiveClearErrorsOrSuccessNeverACrashOrHang) {
  const std::uint32_t seed = fault_seed();
  SCOPED_TRACE(seed_note(seed));
  std::mt19937 random(seed);
  TempDir dir;
  const std::string pristine = fixture("mbr.img");
  int refused = 0;
  for (const Corruption& corruption : corruptions(random, pristine)) {
    SCOPED_TRACE(corruption.description);
    const std::string golden = copy_fixture("mbr.img", dir);
    apply_corruption(golden, corruption);
    const std::string damaged_sha = file_sha256(golden);
    const std::string out_dir = dir / "out";
    fs::create_directory(out_dir);
    const std::string output = out_dir + "/out.img";

    std::vector<std::string> stamp{"timeout", "120", imprint_bin()};
    for (const auto& argument : stamp_arguments(golden, output)) stamp.push_back(argument);
    const CommandResult stamped = run(stamp);
    EXPECT_NE(stamped.status, 124) << "stamp hung";
    if (stamped.status == 0) {
      EXPECT_EQ(entries(out_dir), std::vector<std::string>{"out.img"});
    } else {
      ++refused;
      expect_clean_error(stamped, "");
      EXPECT_TRUE(entries(out_dir).empty()) << joined(entries(out_dir));
    }
    const CommandResult listed = run({"timeout", "60", imprint_bin(), "ls", golden + ":/etc"});
    EXPECT_NE(listed.status, 124) << "ls hung";
    if (listed.status != 0) {
      expect_clean_error(listed, "");
    }
    EXPECT_EQ(file_sha256(golden), damaged_sha) << "the golden image was modified";
    fs::remove_all(out_dir);
    fs::remove(golden);
  }
  RecordProperty("refused", refused);
  EXPECT_GE(refused, 15) << "every truncation at least must be refused";
}

// ---------------------------------------------------------------------------------------------
// A full filesystem inside the image

// Fills the data partition of an image with random (incompressible, hole-free) files until a write fails.
void fill_data_partition(const std::string& image, const TempDir& dir) {
  const std::string stats = debugfs(image, 4, "stats");
  const auto number_after = [&](const std::string& label) {
    const auto at = stats.find(label);
    if (at == std::string::npos) throw std::runtime_error("debugfs stats has no '" + label + "'");
    return std::stoull(stats.substr(at + label.size()));
  };
  const std::uint64_t block = number_after("Block size:");
  const std::uint64_t free_blocks = number_after("Free blocks:");
  const std::string filler = dir / "filler";
  std::uint64_t blocks = free_blocks > 64 ? free_blocks - 64 : 1;
  shell("head -c " + std::to_string(blocks * block) + " /dev/urandom > '" + filler + "'");
  ASSERT_EQ(run_imprint({"put", filler, image + ":/data/filler"}).status, 0);
  shell("head -c " + std::to_string(block) + " /dev/urandom > '" + filler + "'");
  for (int i = 0; i < 200; ++i) {
    const CommandResult put = run_imprint({"put", filler, image + ":/data/f" + std::to_string(i)});
    if (put.status != 0) {
      ASSERT_NE(put.err.find("no space left in the filesystem"), std::string::npos) << put.err;
      return;
    }
  }
  FAIL() << "the data partition did not fill up";
}

TEST(FullFilesystem, StampIntoAFullDataPartitionFailsNamingPartitionAndOutput) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  fill_data_partition(golden, dir);
  const std::string golden_sha = file_sha256(golden);
  const std::string out_dir = dir / "out";
  fs::create_directory(out_dir);
  const CommandResult result = run_imprint(stamp_arguments(golden, out_dir + "/out.img"));
  expect_clean_error(result, out_dir + "/out.img");
  EXPECT_NE(result.err.find("data (p4)"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("no space left in the filesystem"), std::string::npos) << result.err;
  EXPECT_TRUE(entries(out_dir).empty()) << joined(entries(out_dir));
  EXPECT_EQ(file_sha256(golden), golden_sha);
  EXPECT_EQ(e2fsck(golden, 4).status, 0);
}

TEST(FullFilesystem, PutIntoAFullPartitionLeavesItFsckClean) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  fill_data_partition(image, dir);
  write_file(dir / "big", std::string(1 << 20, 'x'));
  const CommandResult result = run_imprint({"put", dir / "big", image + ":/data/mender/big"});
  expect_clean_error(result, "no space left in the filesystem");
  EXPECT_FALSE(debugfs_exists(image, 4, "/mender/big"));
  const CommandResult fsck = e2fsck(image, 4);
  EXPECT_EQ(fsck.status, 0) << fsck.out;
}

// ---------------------------------------------------------------------------------------------
// Paths of the wrong kind inside the image

const std::string kIdentity = "/usr/share/mender/identity/mender-device-identity";

TEST(ImagePaths, StampRefusesADirectoryWhereItWritesAFile) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  ASSERT_EQ(run_imprint({"rm", golden + ":secondary:" + kIdentity}).status, 0);
  ASSERT_EQ(run_imprint({"mkdir", golden + ":secondary:" + kIdentity}).status, 0);
  const std::string golden_sha = file_sha256(golden);
  const std::string out_dir = dir / "out";
  fs::create_directory(out_dir);
  const CommandResult result = run_imprint(stamp_arguments(golden, out_dir + "/out.img"));
  expect_clean_error(result, kIdentity);
  EXPECT_NE(result.err.find("secondary (p3)"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("directory"), std::string::npos) << result.err;
  EXPECT_TRUE(entries(out_dir).empty());
  EXPECT_EQ(file_sha256(golden), golden_sha);
}

TEST(ImagePaths, PutOntoADirectoryPathIsRefusedAndTheDirectoryStays) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  write_file(dir / "h", "hello\n");
  const CommandResult result = run_imprint({"put", dir / "h", image + ":primary:/etc"});
  expect_clean_error(result, "/etc");
  EXPECT_NE(result.err.find("directory"), std::string::npos) << result.err;
  EXPECT_NE(debugfs(image, 2, "stat /etc").find("Type: directory"), std::string::npos);
  EXPECT_TRUE(debugfs_exists(image, 2, "/etc/fstab"));
  EXPECT_EQ(e2fsck(image, 2).status, 0);
}

// A symlink on the way (/usr/share/mender/identity -> /data/mender): the write would land
// elsewhere, so it is refused, naming the link; nothing is written through it.
TEST(ImagePaths, StampRefusesASymlinkOnTheWay) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  ASSERT_EQ(run_imprint({"rm", "-r", golden + ":primary:/usr/share/mender/identity"}).status, 0);
  debugfs_write(ext_device(golden, 2), "symlink /usr/share/mender/identity /data/mender");
  const std::string golden_sha = file_sha256(golden);
  const std::string out_dir = dir / "out";
  fs::create_directory(out_dir);
  const CommandResult result = run_imprint(stamp_arguments(golden, out_dir + "/out.img"));
  expect_clean_error(result, "/usr/share/mender/identity");
  EXPECT_NE(result.err.find("symlink"), std::string::npos) << result.err;
  EXPECT_TRUE(entries(out_dir).empty());
  EXPECT_EQ(file_sha256(golden), golden_sha);
}

// The file itself is a symlink (to /bin/sh): put replaces the link with a file and leaves the
// link's target alone.
TEST(ImagePaths, PutOverASymlinkReplacesTheLinkNotItsTarget) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  const std::string target_before = debugfs(image, 2, "cat /etc/hostname");
  debugfs_write(ext_device(image, 2), "symlink /etc/hostname-link /etc/hostname");
  write_file(dir / "h", "replaced\n");
  const CommandResult result = run_imprint({"put", dir / "h", image + ":primary:/etc/hostname-link"});
  if (result.status == 0) {
    EXPECT_EQ(debugfs(image, 2, "cat /etc/hostname-link"), "replaced\n");
    EXPECT_NE(debugfs(image, 2, "stat /etc/hostname-link").find("Type: regular"), std::string::npos);
  } else {
    expect_clean_error(result, "/etc/hostname-link");
  }
  EXPECT_EQ(debugfs(image, 2, "cat /etc/hostname"), target_before) << "the link's target was written through";
  EXPECT_EQ(e2fsck(image, 2).status, 0);
}

// /etc/hostname and /etc/hostname-twin are one inode (link count 2). Replacing one name gives it a
// new inode; the other keeps the old content, with link count 1, and fsck stays clean.
TEST(ImagePaths, ReplacingAHardLinkedFileKeepsTheOtherLinksContent) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  const std::string before = debugfs(image, 2, "cat /etc/hostname");
  debugfs_write(ext_device(image, 2), "ln /etc/hostname /etc/hostname-twin");
  debugfs_write(ext_device(image, 2), "sif /etc/hostname links_count 2");
  ASSERT_EQ(e2fsck(image, 2).status, 0) << "the hard link was not made cleanly";
  write_file(dir / "h", "new-name\n");
  const CommandResult result = run_imprint({"put", dir / "h", image + ":primary:/etc/hostname"});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(debugfs(image, 2, "cat /etc/hostname"), "new-name\n");
  EXPECT_EQ(debugfs(image, 2, "cat /etc/hostname-twin"), before);
  EXPECT_NE(debugfs(image, 2, "stat /etc/hostname-twin").find("Links: 1"), std::string::npos);
  const CommandResult fsck = e2fsck(image, 2);
  EXPECT_EQ(fsck.status, 0) << fsck.out;
}

// ---------------------------------------------------------------------------------------------
// Paths of the wrong kind on the host

TEST(HostPaths, GoldenThroughASymlinkIsReadAndNeverModified) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  const std::string golden_sha = file_sha256(golden);
  fs::create_symlink(golden, dir / "link.img");
  ASSERT_EQ(run_imprint(stamp_arguments(dir / "link.img", dir / "out.img")).status, 0);
  EXPECT_EQ(file_sha256(golden), golden_sha);
  EXPECT_TRUE(fs::is_symlink(dir / "link.img"));
}

TEST(HostPaths, OutputThatIsASymlinkOrHardLinkToTheGoldenIsRefused) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  const std::string golden_sha = file_sha256(golden);
  fs::create_symlink(golden, dir / "sym.img");
  fs::create_hard_link(golden, dir / "hard.img");
  for (const std::string name : {"sym.img", "hard.img"}) {
    SCOPED_TRACE(name);
    expect_clean_error(run_imprint(stamp_arguments(golden, dir / name)), "golden");
  }
  EXPECT_EQ(file_sha256(golden), golden_sha);
  EXPECT_TRUE(fs::is_symlink(dir / "sym.img"));
  EXPECT_EQ(fs::hard_link_count(golden), 2u);
}

// An output name that is a hard link to some other file, or a symlink to one: the stamp (with
// --force: the name exists) replaces the name (rename), and the other file keeps its content.
TEST(HostPaths, ReplacingAnOutputNameKeepsWhatItWasLinkedTo) {
  TempDir dir;
  write_file(dir / "other", "precious\n");
  fs::create_hard_link(dir / "other", dir / "hard.img");
  fs::create_symlink(dir / "other", dir / "sym.img");
  for (const std::string name : {"hard.img", "sym.img"}) {
    SCOPED_TRACE(name);
    std::vector<std::string> arguments = stamp_arguments(fixture("mbr.img"), dir / name);
    arguments.push_back("--force");
    const CommandResult result = run_imprint(arguments);
    ASSERT_EQ(result.status, 0) << result.err;
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(dir / name)));
    EXPECT_EQ(read_file(dir / "other"), "precious\n");
  }
  EXPECT_EQ(fs::hard_link_count(dir / "other"), 1u);
}

TEST(HostPaths, DirectoriesWhereFilesAreExpectedAreRefused) {
  TempDir dir;
  fs::create_directory(dir / "out.img");
  fs::create_directory(dir / "golden.img");
  expect_clean_error(run_imprint(stamp_arguments(fixture("mbr.img"), dir / "out.img")), dir / "out.img");
  EXPECT_TRUE(fs::is_directory(dir / "out.img"));
  EXPECT_TRUE(fs::is_empty(dir / "out.img"));
  expect_clean_error(run_imprint(stamp_arguments(dir / "golden.img", dir / "x.img")), "directory");
  EXPECT_FALSE(fs::exists(dir / "x.img"));
  expect_clean_error(run_imprint({"ls", dir / "golden.img" + ":/etc"}), "directory");
  EXPECT_EQ(entries(dir.path()), (std::vector<std::string>{"golden.img", "out.img"}));
}

}  // namespace
