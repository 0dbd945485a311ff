// Paths and outputs (issue 15): where relative paths resolve (CSV cells, --set, the profile), the
// merged manifest's paths, compression by the output's extension, one overwrite rule, generated
// credentials kept outside the image, re-runs under another --compress, sparse --zero-unmapped on a
// file, and batch --dry-run. Oracles: debugfs, zstd/gzip/xz -t, cmp, st_blocks.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support.hpp"

using namespace imprint::test;
using nlohmann::json;

namespace {

const std::vector<std::string> kEpoch{"SOURCE_DATE_EPOCH=1700000000"};

std::vector<std::string> batch(const TempDir& dir, const std::string& csv, const std::string& out,
                               const std::vector<std::string>& extra = {}) {
  write_file(dir / "profile.yaml", kDeviceIdProfile);
  write_file(dir / "devices.csv", csv);
  std::vector<std::string> arguments{"batch", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--devices",
                                     dir / "devices.csv", "-O", out, "--backend", "native", "-j", "1"};
  arguments.insert(arguments.end(), extra.begin(), extra.end());
  return arguments;
}

std::vector<std::string> stamp(const TempDir& dir, const std::string& out, const std::vector<std::string>& extra = {}) {
  write_file(dir / "profile.yaml", kDeviceIdProfile);
  std::vector<std::string> arguments{"stamp", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--device", "d1",
                                     "--backend", "native", "-o", out};
  arguments.insert(arguments.end(), extra.begin(), extra.end());
  return arguments;
}

std::string quoted(const std::string& text) { return "'" + text + "'"; }

std::vector<json> manifest(const std::string& path) {
  std::vector<json> records;
  std::istringstream lines(read_file(path));
  for (std::string line; std::getline(lines, line);) records.push_back(json::parse(line));
  return records;
}

}  // namespace

// A CSV's relative paths resolved against the working directory: the same batch worked or not
// depending on where it was started.
TEST(Paths, CsvCellsResolveAgainstTheCsvsDirectorySetAgainstTheWorkingDirectory) {
  TempDir dir;
  std::filesystem::create_directories(dir / "csvdir/files");
  std::filesystem::create_directories(dir / "profiledir/files");
  std::filesystem::create_directories(dir / "cwd");
  write_file(dir / "csvdir/files/d1.txt", "from the csv's directory\n");
  write_file(dir / "profiledir/files/common.txt", "from the profile's directory\n");
  write_file(dir / "cwd/extra.txt", "from the working directory\n");
  write_file(dir / "profiledir/profile.yaml", R"(version: 1
files:
  - { path: /data/blob.txt, source: "{{blob}}", mode: "0644" }
  - { path: /data/common.txt, source: files/common.txt, mode: "0644" }
  - { path: /data/extra.txt, source: "{{extra}}", mode: "0644" }
)");
  write_file(dir / "csvdir/devices.csv", "device_id,blob\nd1,files/d1.txt\n");
  const CommandResult result =
      run({"sh", "-c",
           "cd " + quoted(dir / "cwd") + " && exec " + quoted(imprint_bin()) + " batch -p ../profiledir/profile.yaml -i " +
               quoted(fixture("mbr.img")) + " --devices ../csvdir/devices.csv -O ../out --backend native -j 1 --set extra=extra.txt"});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(debugfs(dir / "out/d1.img", 4, "cat /blob.txt"), "from the csv's directory\n");
  EXPECT_EQ(debugfs(dir / "out/d1.img", 4, "cat /common.txt"), "from the profile's directory\n");
  EXPECT_EQ(debugfs(dir / "out/d1.img", 4, "cat /extra.txt"), "from the working directory\n");

  // A missing file is named by its path in the CSV's directory.
  write_file(dir / "csvdir/devices.csv", "device_id,blob\nd1,files/missing.txt\n");
  const CommandResult missing = run({"sh", "-c",
                                     "cd " + quoted(dir / "cwd") + " && exec " + quoted(imprint_bin()) +
                                         " batch -p ../profiledir/profile.yaml -i " + quoted(fixture("mbr.img")) +
                                         " --devices ../csvdir/devices.csv -O ../out2 --backend native --set extra=extra.txt"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find(dir / "csvdir/files/missing.txt"), std::string::npos) << missing.err;
  EXPECT_TRUE(directory_entries(dir / "out2").empty()) << "an image was written";
}

// README's CI layout: shards in shard-1/, shard-2/, merged next to them. The merged records kept
// "d1.img", which does not exist next to the merged file.
TEST(Paths, ManifestMergeRewritesShardPathsRelativeToTheMergedManifest) {
  TempDir dir;
  for (const std::string shard : {"1", "2"}) {
    const CommandResult result = run_imprint(batch(dir, "device_id\nd1\nd2\n", dir / ("shard-" + shard), {"--shard", shard + "/2", "--bmap"}));
    ASSERT_EQ(result.status, 0) << result.err;
  }
  CommandResult merged = run_imprint({"manifest", "merge", dir / "shard-1/manifest.jsonl", dir / "shard-2/manifest.jsonl", "-o", dir / "manifest.jsonl"});
  ASSERT_EQ(merged.status, 0) << merged.err;
  const std::vector<json> records = manifest(dir / "manifest.jsonl");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["output"], "shard-1/d1.img");
  EXPECT_EQ(records[0]["bmap"], "shard-1/d1.bmap");
  EXPECT_EQ(records[1]["output"], "shard-2/d2.img");
  for (const json& record : records) {
    EXPECT_EQ(file_sha256(dir / record["output"].get<std::string>()), record["output_sha256"]);
  }
  // Into another directory: paths climb out of it.
  std::filesystem::create_directories(dir / "all");
  merged = run_imprint({"manifest", "merge", dir / "shard-1/manifest.jsonl", dir / "shard-2/manifest.jsonl", "-o", dir / "all/m.jsonl"});
  ASSERT_EQ(merged.status, 0) << merged.err;
  EXPECT_EQ(manifest(dir / "all/m.jsonl")[1]["output"], "../shard-2/d2.img");
  EXPECT_NE(read_file(dir / "all/m.csv").find("../shard-1/d1.img"), std::string::npos);

  // The overwrite rule: merging again over the merged file needs --force.
  merged = run_imprint({"manifest", "merge", dir / "shard-1/manifest.jsonl", "-o", dir / "manifest.jsonl"});
  EXPECT_EQ(merged.status, 1);
  EXPECT_EQ(merged.err, "imprint: " + dir / "manifest.jsonl" + " already exists (--force replaces it)\n");
  EXPECT_EQ(manifest(dir / "manifest.jsonl").size(), 2u);
  merged = run_imprint({"manifest", "merge", dir / "shard-1/manifest.jsonl", "-o", dir / "manifest.jsonl", "--force"});
  EXPECT_EQ(merged.status, 0) << merged.err;
  EXPECT_EQ(manifest(dir / "manifest.jsonl").size(), 1u);
}

// stamp -o out.img.zst wrote a raw image under a .zst name.
TEST(Paths, StampCompressesByTheOutputsExtension) {
  TempDir dir;
  ASSERT_EQ(run_imprint(stamp(dir, dir / "raw.img"), "", kEpoch).status, 0);
  const std::string raw_sha256 = file_sha256(dir / "raw.img");
  const std::vector<std::pair<std::string, std::string>> tools{{".gz", "gzip"}, {".xz", "xz"}, {".zst", "zstd"}};
  for (const auto& [suffix, tool] : tools) {
    const std::string out = dir / ("d1.img" + suffix);
    const CommandResult result = run_imprint(stamp(dir, out, {"--bmap"}), "", kEpoch);
    ASSERT_EQ(result.status, 0) << result.err;
    const CommandResult test = run({tool, "-t", out});
    EXPECT_EQ(test.status, 0) << tool << " -t " << out << ": " << test.err;
    EXPECT_EQ(shell(tool + " -dc " + quoted(out) + " | sha256sum | cut -d' ' -f1"), raw_sha256 + "\n") << out;
    EXPECT_TRUE(std::filesystem::exists(dir / "d1.bmap")) << "the bmap of " << out << " is OUT.bmap";
    std::filesystem::remove(dir / "d1.bmap");
  }
  // An explicit --compress agrees with the extension, or nothing is written.
  CommandResult contradiction = run_imprint(stamp(dir, dir / "x.img", {"--compress", "zst"}));
  EXPECT_EQ(contradiction.status, 1);
  EXPECT_EQ(contradiction.err, "imprint: --compress zst contradicts the name of " + dir / "x.img" + " (a zst image ends in .zst)\n");
  contradiction = run_imprint(stamp(dir, dir / "x.img.gz", {"--compress", "xz"}));
  EXPECT_EQ(contradiction.status, 1);
  EXPECT_NE(contradiction.err.find("--compress xz contradicts the name of " + dir / "x.img.gz"), std::string::npos) << contradiction.err;
  contradiction = run_imprint(stamp(dir, dir / "x.img.gz", {"--compress", "none"}));
  EXPECT_EQ(contradiction.status, 1) << contradiction.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "x.img"));
  EXPECT_FALSE(std::filesystem::exists(dir / "x.img.gz"));
  const CommandResult agreeing = run_imprint(stamp(dir, dir / "y.img.zst", {"--compress", "zst"}));
  EXPECT_EQ(agreeing.status, 0) << agreeing.err;
  EXPECT_EQ(run({"zstd", "-t", dir / "y.img.zst"}).status, 0);
}

// stamp -o replaced an existing file silently, while flash asked for --force.
TEST(Paths, OneOverwriteRuleStampLedgerExport) {
  TempDir dir;
  write_file(dir / "d1.img", "not an image\n");
  CommandResult result = run_imprint(stamp(dir, dir / "d1.img"));
  EXPECT_EQ(result.status, 1);
  EXPECT_EQ(result.err, "imprint: " + dir / "d1.img" + " already exists (--force replaces it)\n");
  EXPECT_EQ(read_file(dir / "d1.img"), "not an image\n");
  // --emit's directory is not made for a refused stamp.
  write_file(dir / "d2.bmap", "old bmap\n");
  result = run_imprint(stamp(dir, dir / "d2.img", {"--bmap"}));
  EXPECT_EQ(result.status, 1);
  EXPECT_EQ(result.err, "imprint: " + dir / "d2.bmap" + " already exists (--force replaces it)\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "d2.img"));
  result = run_imprint(stamp(dir, dir / "d1.img", {"--force"}));
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(debugfs(dir / "d1.img", 4, "cat /mender/device-id"), "d1\n");

  // ledger export: a second export into the same directory.
  write_file(dir / "pool.csv", "device_id\ndev-1\n");
  ASSERT_EQ(run_imprint({"ledger", "init", dir / "l.db", "--devices", dir / "pool.csv"}).status, 0);
  ASSERT_EQ(run_imprint({"ledger", "export", dir / "l.db", "-O", dir / "export"}).status, 0);
  write_file(dir / "export/manifest.jsonl", "{\"device_id\":\"kept\"}\n");
  result = run_imprint({"ledger", "export", dir / "l.db", "-O", dir / "export"});
  EXPECT_EQ(result.status, 1);
  EXPECT_EQ(result.err, "imprint: " + dir / "export/manifest.jsonl" + " already exists (--force replaces it)\n");
  EXPECT_EQ(read_file(dir / "export/manifest.jsonl"), "{\"device_id\":\"kept\"}\n");
  result = run_imprint({"ledger", "export", dir / "l.db", "-O", dir / "export", "--force"});
  EXPECT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(read_file(dir / "export/manifest.jsonl"), "");
}

// A batch may replace what its manifest lists (resuming), and an image left by a batch killed
// between naming it and recording it; anything else at an output's name needs --force.
TEST(Paths, OneOverwriteRuleBatchRefusesForeignFilesButResumes) {
  TempDir dir;
  const std::string out = dir / "out";
  std::filesystem::create_directories(out);
  write_file(out + "/d2.img", "someone else's file\n");
  CommandResult result = run_imprint(batch(dir, "device_id\nd1\nd2\n", out));
  EXPECT_EQ(result.status, 1);
  EXPECT_EQ(result.err, "imprint: " + out + "/d2.img already exists (and is not in the manifest as device d2's; --force replaces it)\n");
  EXPECT_EQ(directory_entries(out), (std::vector<std::string>{"d2.img"})) << "a refused batch wrote something";
  EXPECT_EQ(read_file(out + "/d2.img"), "someone else's file\n");

  result = run_imprint(batch(dir, "device_id\nd1\nd2\n", out, {"--force"}));
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(debugfs(out + "/d2.img", 4, "cat /mender/device-id"), "d2\n");
  // Re-running is resuming, not overwriting.
  result = run_imprint(batch(dir, "device_id\nd1\nd2\n", out));
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_NE(result.out.find("0 stamped, 2 already done"), std::string::npos) << result.out;
  // Killed after naming d1.img, before its record: the image is d1's, the re-run redoes it.
  write_file(out + "/manifest.jsonl", "");
  result = run_imprint(batch(dir, "device_id\nd1\nd2\n", out));
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_NE(result.out.find("2 stamped"), std::string::npos) << result.out;
}

// A generate: credential without --emit: the key and certificate existed only inside the image.
TEST(Paths, GeneratedCredentialsNeedEmit) {
  TempDir dir;
  const std::string credentials = fixture("credentials");
  write_file(dir / "profile.yaml", "version: 1\ncredentials:\n  generate: { ca_cert: " + credentials + "/chain.cert.pem, ca_key: " +
                                       credentials + "/intermediate.key.pem, ca_key_password: \"1234\", key: ec:p256, days: 7 }\n"
                                       "files:\n  - { path: /data/mender/mender-agent.pem, from: credentials.key, mode: \"0600\" }\n");
  const std::vector<std::string> base{"stamp", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--device", "dev-1",
                                      "--backend", "native", "-o", dir / "dev-1.img"};
  CommandResult result = run_imprint(base);
  EXPECT_EQ(result.status, 1);
  EXPECT_EQ(result.err, "imprint: " + dir / "profile.yaml" +
                            ":3:3: generate: makes a new key and certificate for dev-1 that would exist only inside the image (nobody "
                            "could preauthorize or enroll the device): --emit DIR keeps its public key, thumbprints, preauthorization "
                            "and enrollment\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "dev-1.img"));
  // flash -p keeps them in its manifest.
  result = run_imprint({"flash", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--device", "dev-1", "--target", dir / "card.img",
                        "--backend", "native"});
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.err.find("--manifest FILE keeps its public key"), std::string::npos) << result.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "card.img"));

  std::vector<std::string> emitting = base;
  emitting.insert(emitting.end(), {"--emit", dir / "emit"});
  result = run_imprint(emitting);
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(directory_entries(dir / "emit"), (std::vector<std::string>{"dev-1.enrollment.json", "dev-1.preauth.json", "dev-1.pub.pem", "dev-1.thumbprints.txt"}));
  // The emitted public key is the one whose private half is in the image.
  write_file(dir / "agent.pem", debugfs(dir / "dev-1.img", 4, "cat /mender/mender-agent.pem"));
  EXPECT_EQ(shell("openssl pkey -in " + quoted(dir / "agent.pem") + " -pubout"), read_file(dir / "emit/dev-1.pub.pem"));
}

// A re-run with another --compress left dev.img.gz beside dev.img.zst, listed nowhere.
TEST(Paths, RerunWithAnotherCompressRemovesThePreviousOutputs) {
  TempDir dir;
  const std::string out = dir / "out";
  ASSERT_EQ(run_imprint(batch(dir, "device_id\nd1\nd2\n", out, {"--compress", "gz", "--bmap"})).status, 0);
  EXPECT_EQ(directory_entries(out), (std::vector<std::string>{"d1.bmap", "d1.img.gz", "d2.bmap", "d2.img.gz", "manifest.csv", "manifest.jsonl"}));
  const CommandResult result = run_imprint(batch(dir, "device_id\nd1\nd2\n", out, {"--compress", "zst"}));
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(directory_entries(out), (std::vector<std::string>{"d1.img.zst", "d2.img.zst", "manifest.csv", "manifest.jsonl"}));
  EXPECT_NE(result.err.find("imprint: warning: removed " + out + "/d1.img.gz: its device was re-stamped under another name"), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("removed " + out + "/d2.bmap"), std::string::npos) << result.err;
  for (const json& record : manifest(out + "/manifest.jsonl")) {
    EXPECT_EQ(record["compression"], "zst");
    EXPECT_EQ(run({"zstd", "-t", out + "/" + record["output"].get<std::string>()}).status, 0);
  }
}

// --zero-unmapped on a regular file wrote the image's every unmapped byte as real zeros.
TEST(Paths, ZeroUnmappedOnAFileStaysSparse) {
  TempDir dir;
  const std::string image = fixture("mbr.img");
  const auto size = std::filesystem::file_size(image);
  CommandResult result = run_imprint({"flash", image, "--target", dir / "new.img", "--zero-unmapped"});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(std::filesystem::file_size(dir / "new.img"), size);
  EXPECT_LT(allocated_bytes(dir / "new.img"), allocated_bytes(image) + (8u << 20)) << "zeros were written as data";
  EXPECT_EQ(run({"cmp", image, dir / "new.img"}).status, 0);

  // An existing file full of old data: its unmapped ranges are punched, not written.
  shell("head -c " + std::to_string(size) + " /dev/urandom > " + quoted(dir / "old.img"));
  result = run_imprint({"flash", image, "--target", dir / "old.img", "--zero-unmapped", "--force"});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_LT(allocated_bytes(dir / "old.img"), allocated_bytes(image) + (8u << 20)) << "zeros were written as data";
  EXPECT_EQ(run({"cmp", image, dir / "old.img"}).status, 0);
}

TEST(Paths, BatchDryRunChecksEveryRowAndWritesNothing) {
  TempDir dir;
  const std::string out = dir / "out";
  write_file(dir / "profile.yaml", R"(version: 1
files:
  - { path: /data/mender/device-id, content: "{{device_id}}\n", mode: "0644" }
  - { path: /data/blob, source: "{{blob}}", mode: "0644" }
)");
  write_file(dir / "blob", "x\n");
  write_file(dir / "devices.csv", "device_id,blob\nd1,blob\nd2,missing\nd3,blob\nd4,gone\n");
  const std::vector<std::string> arguments{"batch", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--devices", dir / "devices.csv",
                                           "-O", out, "--backend", "native", "--bmap", "--dry-run"};
  CommandResult result = run_imprint(arguments);
  EXPECT_EQ(result.status, 1);
  EXPECT_EQ(result.out, "would write " + out + "/d1.img\nwould write " + out + "/d1.bmap\nwould write " + out + "/d3.img\nwould write " +
                            out + "/d3.bmap\nwould write " + out + "/manifest.jsonl\nwould write " + out + "/manifest.csv\n");
  EXPECT_NE(result.err.find(dir / "devices.csv:3: device d2: "), std::string::npos) << result.err;
  EXPECT_NE(result.err.find(dir / "devices.csv:5: device d4: "), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("imprint: dry run: 2 bad row(s) of " + dir / "devices.csv\n"), std::string::npos) << result.err;
  EXPECT_FALSE(std::filesystem::exists(out)) << "a dry run made the output directory";

  write_file(dir / "profile.yaml", kDeviceIdProfile);
  result = run_imprint(arguments);
  EXPECT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(result.out.substr(0, result.out.find('\n')), "would write " + out + "/d1.img");
  EXPECT_FALSE(std::filesystem::exists(out));
}
