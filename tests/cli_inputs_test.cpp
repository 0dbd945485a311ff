// Hostile host inputs through the command line (issue 12): FIFOs, pipes, devices and oversized files
// as golden, profile, key or --set-file value; goldens whose table overlaps or whose contents are
// damaged (the error names the golden, never /proc/self/fd/N); and outputs on a filesystem without
// O_TMPFILE (vfat), where a killed stamp leaves a named partial that must not survive.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "support.hpp"

using namespace imprint::test;
namespace fs = std::filesystem;

namespace {

const std::string kDevice = "mender-azure-test-device1";

std::string credential(const std::string& name) { return fixture("credentials/" + name); }
std::string profile() { return source_dir() + "/profiles/azure-dps-mender.yaml"; }

std::vector<std::string> stamp_arguments(const std::string& golden, const std::string& output,
                                         const std::string& key = credential(kDevice + ".key.pem")) {
  return {"stamp", "-p", profile(), "-i", golden, "--device", kDevice, "-o", output,
          "--set", "key_file=" + key, "--set", "cert_file=" + credential(kDevice + ".cert.pem"),
          "--set", "pfx_file=" + credential(kDevice + ".cert.pfx"), "--set", "dps_client=" + fixture("elf/hello-armhf")};
}

// imprint under `timeout`: a hang (the defect: open() of a FIFO blocks forever) is status 124.
CommandResult run_bounded(const std::vector<std::string>& arguments) {
  std::vector<std::string> argv{"timeout", "30", imprint_bin()};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  return run(argv);
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

std::vector<std::string> entries(const std::string& directory) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(directory)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// One line "imprint: ...", status 1, the needle in it.
void expect_one_line_error(const CommandResult& result, const std::string& needle) {
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_EQ(result.err.rfind("imprint: ", 0), 0u) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_NE(result.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << result.err;
}

std::string make_fifo(const TempDir& dir, const std::string& name) {
  const std::string path = dir / name;
  EXPECT_EQ(::mkfifo(path.c_str(), 0600), 0);
  return path;
}

TEST(CliInputs, FifosAsGoldenProfileKeyOrValueAreRefusedAtOnce) {
  TempDir dir;
  const std::string fifo = make_fifo(dir, "fifo");
  const std::string golden = fixture("mbr.img");
  fs::create_directory(dir / "out");
  const std::string output = dir / "out/out.img";
  expect_one_line_error(run_bounded({"inspect", fifo}), fifo + " is a pipe (FIFO), not a disk image: pipes are not supported");
  expect_one_line_error(run_bounded(stamp_arguments(fifo, output)), "pipes are not supported");
  expect_one_line_error(run_bounded(stamp_arguments(golden, output, fifo)), fifo + " is a pipe (FIFO), not a regular file");
  auto arguments = stamp_arguments(golden, output);
  arguments[2] = fifo;  // -p
  expect_one_line_error(run_bounded(arguments), "profile " + fifo + " is a pipe (FIFO)");
  arguments = stamp_arguments(golden, output);
  arguments.insert(arguments.end(), {"--set-file", "pfx_password=" + fifo});
  expect_one_line_error(run_bounded(arguments), fifo + " is a pipe (FIFO), not a regular file");
  EXPECT_TRUE(entries(dir / "out").empty());
}

TEST(CliInputs, AGoldenFromAPipeSaysPipesAreNotSupported) {
  TempDir dir;
  const std::string output = dir / "out.img";
  const std::string command = quoted({imprint_bin()}) + quoted(stamp_arguments("GOLDEN", output));
  const std::string script = "exec timeout 30" + command.substr(0, command.find(" 'GOLDEN'")) + " <(cat '" +
                             fixture("mbr.img") + "')" + command.substr(command.find(" 'GOLDEN'") + 9);
  const CommandResult result = run({"bash", "-c", script});
  expect_one_line_error(result, "is a pipe (FIFO), not a disk image: pipes are not supported (inputs must be seekable files");
  EXPECT_FALSE(fs::exists(output));
}

TEST(CliInputs, DevZeroAndOversizedKeysFailAtOnceNamingTheFile) {
  TempDir dir;
  const std::string output = dir / "out.img";
  expect_one_line_error(run_bounded(stamp_arguments(fixture("mbr.img"), output, "/dev/zero")),
                        "/dev/zero is a character device, not a regular file");
  const std::string big = dir / "big.key.pem";
  write_file(big, std::string((1 << 20) + 1, 'A'));
  expect_one_line_error(run_bounded(stamp_arguments(fixture("mbr.img"), output, big)),
                        big + " is larger than 1 MiB, the limit for this input");
  EXPECT_FALSE(fs::exists(output));
}

// The rest of the weak spot's list (the copy is an unnamed /proc/self/fd/N file): a truncated
// golden, one of random bytes, one with eight partitions, a decompression bomb. Each error names the
// golden as given, never /proc/self/fd.
TEST(CliInputs, TruncatedRandomEightPartitionAndBombGoldensAreNamedAsGiven) {
  TempDir dir;
  fs::create_directory(dir / "out");
  const auto expect_named = [&](const std::string& golden, const std::string& needle) {
    const CommandResult result = run_bounded(stamp_arguments(golden, dir / "out/out.img"));
    expect_one_line_error(result, needle);
    EXPECT_EQ(result.err.find("/proc/"), std::string::npos) << result.err;
    EXPECT_TRUE(entries(dir / "out").empty()) << golden;
  };
  const std::string truncated = dir / "truncated.img";
  shell("head -c 100M '" + fixture("mbr.img") + "' > '" + truncated + "'");
  expect_named(truncated, truncated + ": partition 3 ends at ");

  const std::string random = dir / "random.img";
  shell("head -c 16M /dev/urandom > '" + random + "'");
  expect_named(random, random + ": ");

  const std::string eight = dir / "eight.img";
  shell("truncate -s 64M '" + eight + "' && printf '%s\\n' 'label: dos' 'start=2048, size=8192' 'start=10240, size=8192' "
        "'start=18432, size=8192' 'start=26624, type=5' 'size=8192' 'size=8192' 'size=8192' 'size=8192' | sfdisk -q '" + eight + "'");
  ASSERT_NE(run({"sfdisk", "-l", eight}).out.find(eight + "8 "), std::string::npos) << "the fixture has eight partitions";
  expect_named(eight, eight + ": primary (p2) holds no filesystem that libblkid recognizes");

  const std::string bomb = dir / "bomb.img.zst";
  shell("{ cat '" + fixture("mbr.img") + "'; head -c 64M /dev/zero; } | zstd -q -o '" + bomb + "'");
  expect_named(bomb, bomb + ": decompresses to more than ");
}

// A source: file is limited by the partition it goes to (it was a flat 256 MiB, the plan being built
// before the image is open): a sparse file 8 MiB larger than the 32 MiB data partition is refused
// before anything is written, naming the file and the partition; one that fits is written.
TEST(CliInputs, ASourceFileLargerThanItsPartitionIsRefusedNamingBoth) {
  TempDir dir;
  const std::string golden = fixture("mbr.img");
  const std::string big = dir / "payload.bin";
  const std::uint64_t data_size = partition_span(golden, 4).size;
  shell("truncate -s " + std::to_string(data_size + (8 << 20)) + " '" + big + "'");
  write_file(dir / "profile.yaml", "version: 1\nfiles:\n  - path: /data/payload.bin\n    mode: \"0644\"\n    source: payload.bin\n");
  fs::create_directory(dir / "out");
  const std::string sha = file_sha256(golden);
  const std::vector<std::string> arguments{"stamp", "-p", dir / "profile.yaml", "-i", golden, "--device", "d1", "-o", dir / "out/out.img"};
  expect_one_line_error(run_bounded(arguments), "source " + big + " is " + std::to_string(data_size + (8 << 20)) +
                                                    " bytes, larger than data (p4) (" + std::to_string(data_size) + " bytes)");
  EXPECT_TRUE(entries(dir / "out").empty());
  EXPECT_EQ(file_sha256(golden), sha);

  shell("truncate -s 1M '" + big + "'");
  const CommandResult fits = run_bounded(arguments);
  ASSERT_EQ(fits.status, 0) << fits.err;
  EXPECT_NE(debugfs(dir / "out/out.img", 4, "stat /payload.bin").find("Size: 1048576"), std::string::npos);
}

// Decompressing a golden shows progress (bytes, MiB/s) when stderr is a terminal, and nothing when
// it is not (a log or a pipe gets no carriage returns).
TEST(CliInputs, DecompressionShowsProgressOnATerminalOnly) {
  const std::string golden = fixture("mbr.img.zst");
  // script(1) (util-linux) runs the command on a pseudo-terminal and copies what it prints.
  const CommandResult tty = run({"script", "-qfec", "exec" + quoted({imprint_bin(), "inspect", golden}), "/dev/null"});
  ASSERT_EQ(tty.status, 0) << tty.out << tty.err;
  EXPECT_NE(tty.out.find("\rimprint: decompressing " + golden + ": "), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("\rimprint: decompressed " + golden + ": 184.0 MiB in "), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find(" MiB/s"), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("data"), std::string::npos) << "inspect's own output follows: " << tty.out;

  const CommandResult plain = run_imprint({"inspect", golden});
  ASSERT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.err, "");
  EXPECT_EQ(plain.out.find("decompress"), std::string::npos) << plain.out;
}

void set_start_sector(const std::string& image, int entry, std::uint32_t sector) {
  std::fstream file(image, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(446 + 16 * (entry - 1) + 8);
  const char bytes[4] = {static_cast<char>(sector & 0xff), static_cast<char>((sector >> 8) & 0xff),
                         static_cast<char>((sector >> 16) & 0xff), static_cast<char>(sector >> 24)};
  file.write(bytes, 4);
}

TEST(CliInputs, AGoldenWithOverlappingPartitionsIsRefusedAndStaysByteIdentical) {
  TempDir dir;
  const std::string golden = copy_fixture("mbr.img", dir);
  set_start_sector(golden, 4, static_cast<std::uint32_t>(partition_span(golden, 2).offset / 512));
  const std::string sha = file_sha256(golden);
  fs::create_directory(dir / "out");
  const CommandResult result = run_bounded(stamp_arguments(golden, dir / "out/out.img"));
  expect_one_line_error(result, golden + ": partitions 2 and 4 overlap");
  EXPECT_EQ(file_sha256(golden), sha);
  EXPECT_TRUE(entries(dir / "out").empty());
}

// The stamp decompresses or copies the golden into an unnamed output (/proc/self/fd/N): errors
// about its contents must still name the golden.
TEST(CliInputs, ErrorsAboutTheGoldensContentsNameTheGolden) {
  TempDir dir;
  fs::create_directory(dir / "out");
  const std::string no_table = copy_fixture("mbr.img", dir);
  shell("dd if=/dev/zero of='" + no_table + "' bs=512 count=1 conv=notrunc status=none");
  CommandResult result = run_bounded(stamp_arguments(no_table, dir / "out/out.img"));
  expect_one_line_error(result, no_table + ": no partition table found");
  EXPECT_EQ(result.err.find("/proc/"), std::string::npos) << result.err;
  shell("gzip -k -1 '" + no_table + "'");
  result = run_bounded(stamp_arguments(no_table + ".gz", dir / "out/out.img"));
  expect_one_line_error(result, no_table + ".gz: no partition table found");

  const std::string empty_table = dir / "empty-table.img";
  shell("truncate -s 16M '" + empty_table + "' && echo 'label: dos' | sfdisk -q '" + empty_table + "'");
  expect_one_line_error(run_bounded(stamp_arguments(empty_table, dir / "out/out.img")),
                        empty_table + " has no primary partition (for /data/mender/mender-agent.pem)");
  expect_one_line_error(run_bounded({"ls", empty_table + ":/etc"}), empty_table + " has no primary partition (for /etc)");

  const std::string no_superblock = dir / "no-superblock.img";
  shell("cp --sparse=always '" + fixture("mbr.img") + "' '" + no_superblock + "'");
  const Span primary = partition_span(no_superblock, 2);
  shell("dd if=/dev/zero of='" + no_superblock + "' bs=1024 seek=" + std::to_string(primary.offset / 1024 + 1) +
        " count=1 conv=notrunc status=none");  // the primary rootfs superblock
  result = run_bounded(stamp_arguments(no_superblock, dir / "out/out.img"));
  expect_one_line_error(result, no_superblock + ": primary (p2)");
  EXPECT_EQ(result.err.find("/proc/"), std::string::npos) << result.err;
  EXPECT_TRUE(entries(dir / "out").empty());
}

// A USB-drive filesystem without O_TMPFILE as the output directory, in a private mount namespace:
// a loop-mounted vfat, or where the kernel has no vfat module (this machine's) exFAT through FUSE
// on a loop device. SIGTERM mid-stamp must remove the hidden partial; after a kill -9 it stays, and
// the next run for the same output removes it (its pid is dead) but not a live process's partial.
TEST(CliInputs, PartialsOnVfatGoOnSigtermAndStalePartialsOnTheNextRun) {
  ASSERT_EQ(::geteuid(), 0u) << "needs root for unshare -m, losetup and mount (CI runs as root)";
  TempDir dir;
  const std::string mount_point = dir / "usb";
  fs::create_directory(mount_point);
  const std::string output = mount_point + "/out.img";
  const std::string stamp = quoted({imprint_bin()}) + quoted(stamp_arguments(fixture("big.img"), output));
  const std::string wait_for_partial =
      "for i in $(seq 1 1200); do p=$(ls -A " + mount_point + " | grep '^\\.out\\.img\\.imprint-' | head -1); "
      "[ -n \"$p\" ] && [ $(stat -c %s \"" + mount_point + "/$p\") -gt 1048576 ] && break; sleep 0.05; done; ";
  const std::string disk = dir / "usb.disk";
  std::string script = "set -u; truncate -s 1600M " + disk + "; loop=$(losetup -f --show " + disk + ") || exit 99; ";
  script += "trap 'umount " + mount_point + " 2>/dev/null; losetup -d $loop' EXIT; ";
  script += "if grep -qw vfat /proc/filesystems || modprobe vfat 2>/dev/null; then echo 'fs vfat'; ";
  script += "mkfs.vfat -F 32 $loop >/dev/null && mount $loop " + mount_point + " || exit 99; ";
  script += "else echo 'fs exfat-fuse'; mkfs.exfat $loop >/dev/null && mount.exfat-fuse $loop " + mount_point +
            " >/dev/null || exit 99; fi; ";
  script += stamp + " >/dev/null 2>&1 & pid=$!; " + wait_for_partial + "echo \"partial $p\"; ";
  script += "kill -TERM $pid; wait $pid; echo \"term status $?\"; echo \"after term: $(ls -A " + mount_point + " | tr '\\n' ' ')\"; ";
  script += stamp + " >/dev/null 2>&1 & pid=$!; " + wait_for_partial;
  script += "kill -KILL $pid; wait $pid; echo \"after kill: $(ls -A " + mount_point + " | tr '\\n' ' ')\"; ";
  script += "touch " + mount_point + "/.out.img.imprint-$$-abcdefgh; ";  // a live process's partial (this shell)
  script += stamp + " >/dev/null; echo \"rerun status $?\"; echo \"after rerun: $(ls -A " + mount_point + " | tr '\\n' ' ')\"; ";
  script += "echo \"live $$\"";
  const CommandResult result = run({"unshare", "-m", "sh", "-c", script});
  ASSERT_EQ(result.status, 0) << result.out << result.err;
  const std::string& out = result.out;
  EXPECT_NE(out.find("partial .out.img.imprint-"), std::string::npos) << "the stamp made no named partial: " << out;
  EXPECT_NE(out.find("term status 143"), std::string::npos) << "SIGTERM must still end the process by SIGTERM: " << out;
  EXPECT_NE(out.find("after term: \n"), std::string::npos) << "SIGTERM left files behind: " << out;
  EXPECT_NE(out.find("after kill: .out.img.imprint-"), std::string::npos) << "kill -9 is the case this sweep is for: " << out;
  EXPECT_NE(out.find("rerun status 0"), std::string::npos) << out;
  const std::string live = out.substr(out.find("live ") + 5, out.find('\n', out.find("live ")) - out.find("live ") - 5);
  EXPECT_NE(out.find("after rerun: .out.img.imprint-" + live + "-abcdefgh out.img \n"), std::string::npos)
      << "the rerun must remove the dead run's partial, keep the live one's: " << out;
}

}  // namespace
