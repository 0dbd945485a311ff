// Messages built from untrusted bytes: one line each on stderr, control characters escaped; no
// digest of a secret in a plan; bad rows and bad files reported once, naming file and line.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "support.hpp"

using namespace imprint::test;

namespace {

const char* kProfile = R"(version: 1
files:
  - path: /data/mender/device-id
    content: "{{device_id}}\n"
    mode: "0644"
)";

int lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

// No raw control character (other than the line ends) and no C1 control reached the stream.
bool terminal_safe(const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\n') || c == 0x7f) return false;
    if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) < 0xa0) return false;
  }
  return true;
}

std::vector<std::string> batch_arguments(const TempDir& dir, const std::string& csv, const std::string& profile = kProfile) {
  write_file(dir / "profile.yaml", profile);
  write_file(dir / "devices.csv", csv);
  return {"batch", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--devices", dir / "devices.csv", "-O", dir / "out",
          "--backend", "native", "-j", "1"};
}

// The details column (after the owner) of the plan line naming target.
std::string line_of(const std::string& plan, const std::string& target) {
  const std::size_t at = plan.find(target + " ");
  if (at == std::string::npos) return "(no line for " + target + ")";
  const std::string line = plan.substr(at, plan.find('\n', at) - at);
  const std::size_t owner = line.find("0:0");
  return owner == std::string::npos ? line : line.substr(line.find_first_not_of(' ', owner + 3));
}

}  // namespace

// A device id with a newline split the error over lines; an escape sequence went to the terminal.
TEST(Messages, UntrustedBytesInErrorsAreEscapedOnOneLine) {
  TempDir dir;
  write_file(dir / "profile.yaml", kProfile);
  const CommandResult stamp = run_imprint({"stamp", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--device",
                                           "dev\nDeviceId=spoofed\x1b[2J", "--dry-run"});
  EXPECT_EQ(stamp.status, 1);
  EXPECT_EQ(stamp.err, "imprint: device id 'dev\\nDeviceId=spoofed\\x1b[2J' cannot name a file (no '/', control characters, '.' or '..')\n");

  // A CSV header with an escape sequence and an 8-bit CSI (U+009B), and invalid UTF-8.
  const CommandResult header = run_imprint(batch_arguments(dir, "device_id,\x1b]0;owned\x07\xc2\x9b" "31m\xff\nd1,x\n"));
  EXPECT_EQ(header.status, 1);
  EXPECT_EQ(lines(header.err), 1) << header.err;
  EXPECT_TRUE(terminal_safe(header.err)) << header.err;
  EXPECT_NE(header.err.find("column '\\x1b]0;owned\\x07\\xc2\\x9b31m\\xff' is not a variable name"), std::string::npos) << header.err;
}

// ls printed names holding newlines and escape sequences raw: one name looked like two files.
TEST(Messages, LsEscapesNamesFromTheImage) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  write_file(dir / "payload", "x");
  const std::string name = "evil\nfake-entry\x1b[31m";
  const CommandResult put = run_imprint({"put", dir / "payload", image + ":/data/mender/" + name});
  ASSERT_EQ(put.status, 0) << put.err;
  // debugfs (independent) sees one entry with the raw bytes.
  EXPECT_NE(debugfs(image, 4, "ls -p /mender").find("/evil\nfake-entry\x1b[31m/"), std::string::npos);
  for (const std::vector<std::string>& arguments : {std::vector<std::string>{"ls", image + ":/data/mender"},
                                                    std::vector<std::string>{"ls", "-l", image + ":/data/mender"}}) {
    const CommandResult listed = run_imprint(arguments);
    ASSERT_EQ(listed.status, 0) << listed.err;
    EXPECT_TRUE(terminal_safe(listed.out)) << listed.out;
    EXPECT_NE(listed.out.find("evil\\nfake-entry\\x1b[31m\n"), std::string::npos) << listed.out;
    EXPECT_EQ(listed.out.find("\nfake-entry"), std::string::npos) << listed.out;
  }
}

// inspect printed the image's device_type raw: an escape sequence in it reached the terminal.
TEST(Messages, InspectEscapesValuesFromTheImage) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  const CommandResult put = run_imprint({"put", "-", image + ":/data/mender/device_type"}, "device_type=bbb\x1b[2J\rfake\n");
  ASSERT_EQ(put.status, 0) << put.err;
  EXPECT_EQ(debugfs(image, 4, "cat /mender/device_type"), "device_type=bbb\x1b[2J\rfake\n");
  const CommandResult inspect = run_imprint({"inspect", image});
  ASSERT_EQ(inspect.status, 0) << inspect.err;
  EXPECT_TRUE(terminal_safe(inspect.out)) << inspect.out;
  EXPECT_NE(inspect.out.find("device_type: bbb\\x1b[2J\\rfake\n"), std::string::npos) << inspect.out;
}

// --dry-run printed a sha256 prefix of a --set-file value: a 4-digit PIN came back in a second.
TEST(Messages, DryRunPrintsSizesNotDigestsOfSecrets) {
  TempDir dir;
  write_file(dir / "profile.yaml", R"(version: 1
files:
  - path: /data/mender/pin
    content: "{{pin}}"
    mode: "0600"
  - path: /data/mender/wifi.psk
    source: wifi.psk
    secret: true
    mode: "0600"
  - path: /data/mender/device-id
    content: "{{device_id}}"
    mode: "0644"
)");
  write_file(dir / "pin.txt", "4711\n");
  write_file(dir / "wifi.psk", "psk=correct horse\n");
  const std::vector<std::string> base{"stamp", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--device", "dev-1",
                                      "--set-file", "pin=" + dir / "pin.txt", "--dry-run"};
  const CommandResult human = run_imprint(base);
  ASSERT_EQ(human.status, 0) << human.err;
  const std::string pin_digest = shell("printf 4711 | sha256sum").substr(0, 12);  // --set-file drops the newline
  const std::string psk_digest = file_sha256(dir / "wifi.psk").substr(0, 12);
  EXPECT_EQ(human.out.find(pin_digest), std::string::npos) << "digest of the PIN printed:\n" << human.out;
  EXPECT_EQ(human.out.find(psk_digest), std::string::npos) << "digest of a secret: true file printed:\n" << human.out;
  EXPECT_EQ(line_of(human.out, "/data/mender/pin"), "4 bytes  secret") << human.out;
  EXPECT_EQ(line_of(human.out, "/data/mender/wifi.psk"), "18 bytes  secret") << human.out;
  // A file whose bytes hold nothing secret keeps its digest (it tells which content goes in).
  EXPECT_EQ(line_of(human.out, "/data/mender/device-id"), "5 bytes  sha256=" + shell("printf dev-1 | sha256sum").substr(0, 12)) << human.out;

  std::vector<std::string> json_arguments = base;
  json_arguments.push_back("--json");
  const CommandResult json = run_imprint(json_arguments);
  ASSERT_EQ(json.status, 0) << json.err;
  const auto plan = nlohmann::json::parse(json.out);
  EXPECT_FALSE(plan["ops"][0].contains("sha256")) << json.out;
  EXPECT_EQ(plan["ops"][0]["secret"], true);
  EXPECT_EQ(plan["ops"][0]["size"], 4);
  EXPECT_FALSE(plan["ops"][1].contains("sha256")) << json.out;
  EXPECT_TRUE(plan["ops"][2].contains("sha256"));
}

// A variable missing from every row printed one warning per device and then a second error line.
TEST(Messages, BadRowsThatStopABatchAreOneErrorGroupedByReason) {
  TempDir dir;
  std::string csv = "device_id\n";
  for (int i = 1; i <= 20; ++i) csv += "d" + std::to_string(i) + "\n";
  const std::string profile = std::string(kProfile) + "  - path: /data/mender/key\n    content: \"{{key_file}}\"\n    mode: \"0600\"\n";
  const CommandResult missing = run_imprint(batch_arguments(dir, csv, profile));
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(missing.err, "imprint: " + dir / "devices.csv" + ": lines 2-21 (20 devices): " + dir / "profile.yaml" +
                             ": no value for variable 'key_file': set it with --set NAME=... or a column of the devices CSV; nothing "
                             "written (20 bad row(s); --keep-going stamps the good rows)\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "out/d1.img"));

  // One bad row: its own line, as an error, not a warning followed by a summary.
  const CommandResult one = run_imprint(batch_arguments(dir, "device_id\nd1\n..\nd3\n"));
  EXPECT_EQ(one.status, 1);
  EXPECT_EQ(one.err, "imprint: " + dir / "devices.csv" + ":3: device ..: device id '..' cannot name a file (no '/', control characters, '.' or "
                         "'..'); nothing written (1 bad row(s); --keep-going stamps the good rows)\n");
}

// Deeply nested YAML was refused as "YAML syntax error: bad file", naming neither file nor limit.
TEST(Messages, DeeplyNestedYamlNamesTheFileAndTheLimit) {
  TempDir dir;
  for (int depth : {40, 5000}) {
    write_file(dir / "deep.yaml", "version: 1\nvariables:\n  x: " + std::string(depth, '[') + std::string(depth, ']') + "\n");
    const CommandResult result = run_imprint({"profile", "check", dir / "deep.yaml"});
    EXPECT_EQ(result.status, 1) << depth;
    EXPECT_EQ(result.err.rfind("imprint: " + dir / "deep.yaml" + ":3:", 0), 0u) << result.err;
    EXPECT_NE(result.err.find(": YAML nested deeper than 32 levels (the limit for a profile)\n"), std::string::npos) << result.err;
    EXPECT_EQ(lines(result.err), 1) << result.err;
  }
}

// A shard manifest cut off mid-record merged without that device, exit 0.
TEST(Messages, ManifestMergeRefusesACutOffRecord) {
  TempDir dir;
  write_file(dir / "a.jsonl", "{\"device_id\":\"d1\"}\n{\"device_id\":\"d2\",\"output\":\"d2.i");
  const CommandResult result = run_imprint({"manifest", "merge", dir / "a.jsonl", "-o", dir / "all.jsonl"});
  EXPECT_EQ(result.status, 1);
  EXPECT_EQ(result.err, "imprint: " + dir / "a.jsonl" + ":2: the last record is cut off (an interrupted batch? run it again)\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "all.jsonl"));
}
