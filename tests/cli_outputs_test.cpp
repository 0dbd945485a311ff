// What a batch or a stamp writes besides the image itself (manifest, bmaps, emitted files): checked
// before the first image is stamped, never written over one another, and all-or-nothing.
#include <gtest/gtest.h>

#include <filesystem>

#include "support.hpp"

using namespace imprint::test;

namespace {

// No credentials: a batch of these takes well under a second per device.
const char* kProfile = R"(version: 1
files:
  - path: /data/mender/device-id
    content: "{{device_id}}\n"
    mode: "0644"
)";

std::vector<std::string> batch_arguments(const TempDir& dir, const std::string& csv, const std::string& out,
                                         const std::vector<std::string>& extra = {}) {
  write_file(dir / "profile.yaml", kProfile);
  write_file(dir / "devices.csv", csv);
  std::vector<std::string> arguments{"batch", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--devices",
                                     dir / "devices.csv", "-O", out, "--backend", "native", "-j", "1"};
  arguments.insert(arguments.end(), extra.begin(), extra.end());
  return arguments;
}

int lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

}  // namespace

// --manifest /missing-dir/m.jsonl used to stamp the first image, then die in std::terminate (exit 134).
TEST(BatchOutputs, ManifestInAMissingDirectoryIsRefusedBeforeAnyImage) {
  TempDir dir;
  const std::string out = dir / "out";
  const CommandResult result =
      run_imprint(batch_arguments(dir, "device_id\nd1\nd2\n", out, {"--manifest", dir / "missing-dir/m.jsonl"}));
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_EQ(result.err, "imprint: manifest " + dir / "missing-dir/m.jsonl" + ": directory " + dir / "missing-dir" + " does not exist\n");
  EXPECT_FALSE(std::filesystem::exists(out)) << "the refused batch left its output directory";

  // A manifest path that is a directory is refused the same way, before any image.
  std::filesystem::create_directories(dir / "m.jsonl");
  const CommandResult directory = run_imprint(batch_arguments(dir, "device_id\nd1\n", out, {"--manifest", dir / "m.jsonl"}));
  EXPECT_EQ(directory.status, 1) << directory.err;
  EXPECT_NE(directory.err.find("manifest " + dir / "m.jsonl" + " exists and is not a regular file"), std::string::npos) << directory.err;
  EXPECT_EQ(lines(directory.err), 1) << directory.err;
  EXPECT_TRUE(directory_entries(out).empty()) << "an image was stamped";
}

// Devices x and x.img with --name '{{device_id}}' --bmap both wrote x.bmap.
TEST(BatchOutputs, DerivedBmapNamesThatCollideAreRefusedNamingBothDevices) {
  TempDir dir;
  const std::string out = dir / "out";
  const CommandResult result = run_imprint(batch_arguments(dir, "device_id\nx\nx.img\n", out, {"--name", "{{device_id}}", "--bmap"}));
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_EQ(result.err, "imprint: " + out + "/x.bmap would be written as the bmap of device x (" + dir / "devices.csv:2) and as the bmap of device x.img (" +
                            dir / "devices.csv:3)\n");
  EXPECT_TRUE(directory_entries(out).empty());
  // Case matters on the output filesystem: X and x are two files.
  const CommandResult cases = run_imprint(batch_arguments(dir, "device_id\nx\nX\n", out, {"--name", "{{device_id}}", "--bmap"}));
  EXPECT_EQ(cases.status, 0) << cases.err;
  EXPECT_EQ(directory_entries(out), (std::vector<std::string>{"X", "X.bmap", "manifest.csv", "manifest.jsonl", "x", "x.bmap"}));
  EXPECT_EQ(e2fsck(out + "/X", 4).status, 0);
}

// A device named manifest with --name '{{device_id}}.jsonl' was written over the manifest.
TEST(BatchOutputs, ADeviceNamedLikeTheManifestOrAnInputIsRefused) {
  TempDir dir;
  const std::string out = dir / "out";
  const CommandResult manifest = run_imprint(batch_arguments(dir, "device_id\nd1\nmanifest\n", out, {"--name", "{{device_id}}.jsonl"}));
  EXPECT_EQ(manifest.status, 1) << manifest.err;
  EXPECT_EQ(manifest.err, "imprint: " + out + "/manifest.jsonl would be written as the manifest and as the image of device manifest (" +
                              dir / "devices.csv:3)\n");
  EXPECT_TRUE(directory_entries(out).empty());
  // --compress adds its suffix to the image's name; the manifest's CSV view is a file of its own.
  const CommandResult compressed =
      run_imprint(batch_arguments(dir, "device_id\nm\n", out, {"--name", "{{device_id}}", "--compress", "gz", "--manifest", out + "/m.gz"}));
  EXPECT_EQ(compressed.status, 1) << compressed.err;
  EXPECT_NE(compressed.err.find(out + "/m.gz would be written as the manifest and as the image of device m"), std::string::npos)
      << compressed.err;
  const CommandResult view = run_imprint(batch_arguments(dir, "device_id\nmanifest\n", out, {"--name", "{{device_id}}.csv"}));
  EXPECT_EQ(view.status, 1) << view.err;
  EXPECT_NE(view.err.find(out + "/manifest.csv would be written as the manifest's CSV view and as the image of device manifest"),
            std::string::npos)
      << view.err;
  EXPECT_TRUE(directory_entries(out).empty());
  // An output directory that holds the inputs: a device named profile with --name '{{device_id}}.yaml'.
  const std::string before = file_sha256(dir / "profile.yaml");
  const CommandResult input = run_imprint(batch_arguments(dir, "device_id\nprofile\n", dir.path(), {"--name", "{{device_id}}.yaml"}));
  EXPECT_EQ(input.status, 1) << input.err;
  EXPECT_EQ(input.err, "imprint: " + dir / "profile.yaml" + " is the profile and would be overwritten as the image of device profile (" +
                           dir / "devices.csv:2)\n");
  EXPECT_EQ(file_sha256(dir / "profile.yaml"), before);
}

// A failed --emit used to leave the stamped image under its final name (exit 1).
TEST(StampOutputs, AFailedEmitLeavesNeitherTheImageNorAnyEmittedFile) {
  TempDir dir;
  const std::string device = "mender-azure-test-device1";
  write_file(dir / "profile.yaml", R"(version: 1
credentials:
  key: "{{key_file}}"
  cert: "{{cert_file}}"
files:
  - path: /data/mender/mender-agent.pem
    from: credentials.key
    mode: "0600"
)");
  const auto stamp = [&](const std::string& emit, const std::string& output = "") {
    return run_imprint({"stamp", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--device", device, "--set",
                        "key_file=" + fixture("credentials/" + device + ".key.pem"), "--set",
                        "cert_file=" + fixture("credentials/" + device + ".cert.pem"), "-o",
                        output.empty() ? dir / "out/dev.img" : output, "--emit", emit});
  };
  // An output named like an emitted file was replaced by the public key, exit 0.
  const CommandResult over = stamp(dir / "out", dir / "out/" + device + ".pub.pem");
  EXPECT_EQ(over.status, 1) << over.err;
  EXPECT_EQ(over.err, "imprint: --emit would write " + dir / "out/" + device + ".pub.pem, which is the output image\n");
  EXPECT_TRUE(directory_entries(dir / "out").empty());

  std::filesystem::create_directories(dir / "out");
  write_file(dir / "out/not-a-dir", "x");
  const CommandResult file = stamp(dir / "out/not-a-dir");
  EXPECT_EQ(file.status, 1) << file.err;
  EXPECT_NE(file.err.find("--emit " + dir / "out/not-a-dir" + ": cannot make it a directory"), std::string::npos) << file.err;
  EXPECT_EQ(lines(file.err), 1) << file.err;
  EXPECT_EQ(directory_entries(dir / "out"), std::vector<std::string>{"not-a-dir"});

  // One emitted name taken by a directory: found before the image is written, not after.
  std::filesystem::create_directories(dir / "emit/" + device + ".preauth.json");
  const CommandResult taken = stamp(dir / "emit");
  EXPECT_EQ(taken.status, 1) << taken.err;
  EXPECT_EQ(taken.err, "imprint: --emit: " + dir / "emit/" + device + ".preauth.json is a directory\n");
  EXPECT_EQ(directory_entries(dir / "out"), std::vector<std::string>{"not-a-dir"});
  EXPECT_EQ(directory_entries(dir / "emit"), std::vector<std::string>{device + ".preauth.json"});

  // Once the way is clear, the image and all four emitted files appear together.
  std::filesystem::remove(dir / "emit/" + device + ".preauth.json");
  const CommandResult ok = stamp(dir / "emit");
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(directory_entries(dir / "emit"), (std::vector<std::string>{device + ".enrollment.json", device + ".preauth.json", device + ".pub.pem",
                                                              device + ".thumbprints.txt"}));
  EXPECT_EQ(shell("openssl pkey -pubin -in '" + dir / "emit/" + device + ".pub.pem" + "' -noout && echo ok"), "ok\n");
  EXPECT_EQ(e2fsck(dir / "out/dev.img", 4).status, 0);
}
