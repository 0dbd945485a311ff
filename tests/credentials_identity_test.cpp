// The identity script as the Mender client sees it: parsing, the JSON it sends, the preauth body,
// and running a script in the sandbox with the plan's /data files.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "imprint/error.hpp"
#include "imprint/identity.hpp"
#include "support.hpp"

namespace imprint {
namespace {

std::string parse_error(std::string_view text) {
  try {
    parse_identity_output(text);
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::Invalid);
    return error.what();
  }
  return "parsed";
}

TEST(IdentityParse, KeyValueLinesAsTheMenderClientReadsThem) {
  const IdentityAttributes expected{{"DeviceId", {"dev1"}}};
  EXPECT_EQ(parse_identity_output("DeviceId=dev1\n"), expected);
  EXPECT_EQ(parse_identity_output("DeviceId=dev1"), expected);            // last line without a newline
  EXPECT_EQ(parse_identity_output("\n\nDeviceId=dev1\n\n"), expected);    // empty lines skipped
  EXPECT_EQ(parse_identity_output("DeviceId=dev1\r\n"), expected);        // Go's ScanLines drops the \r
  // Split at the first '=', nothing trimmed.
  EXPECT_EQ(parse_identity_output("key=a=b\n"), (IdentityAttributes{{"key", {"a=b"}}}));
  EXPECT_EQ(parse_identity_output(" DeviceId = dev1 \n"), (IdentityAttributes{{" DeviceId ", {" dev1 "}}}));
  EXPECT_EQ(parse_identity_output("empty=\n"), (IdentityAttributes{{"empty", {""}}}));
  EXPECT_EQ(parse_identity_output("=value\n"), (IdentityAttributes{{"", {"value"}}}));
  // Repeated keys become a list, in output order.
  EXPECT_EQ(parse_identity_output("mac=b\nDeviceId=x\nmac=a\n"), (IdentityAttributes{{"DeviceId", {"x"}}, {"mac", {"b", "a"}}}));
  EXPECT_EQ(parse_identity_output(""), IdentityAttributes{});
}

TEST(IdentityParse, ALineWithoutEqualsIsAnError) {
  EXPECT_EQ(parse_error("DeviceId=x\nhello world\n"), "identity output line 2 has no '=': hello world");
  EXPECT_EQ(parse_error("\n\nDeviceId\n"), "identity output line 3 has no '=': DeviceId");
  EXPECT_EQ(parse_error(" \n"), "identity output line 1 has no '=':  ");  // a blank is not an empty line
}

TEST(IdentityJson, CompactSortedKeysStringsAndLists) {
  EXPECT_EQ(identity_json(parse_identity_output("DeviceId=mender-azure-test-device1\n")),
            R"({"DeviceId":"mender-azure-test-device1"})");
  EXPECT_EQ(identity_json(parse_identity_output("mac=02:00\nDeviceId=x\nmac=01:00\nSerial=9\n")),
            R"({"DeviceId":"x","Serial":"9","mac":["02:00","01:00"]})");
  EXPECT_EQ(identity_json({}), "{}");
  // Encoded like Go's encoding/json: quotes, backslashes, control and HTML characters escaped.
  EXPECT_EQ(identity_json({{"k", {"a\"b\\c\td<&>"}}}), R"({"k":"a\"b\\c\td\u003c\u0026\u003e"})");
  EXPECT_EQ(identity_json({{"k", {std::string("x\x01y")}}}), R"({"k":"x\u0001y"})");
  EXPECT_EQ(identity_json({{"k", {"caf\xc3\xa9 \xe2\x80\xa8"}}}), "{\"k\":\"caf\xc3\xa9 \\u2028\"}");
  EXPECT_EQ(identity_json({{"k", {"bad\xff"}}}), R"({"k":"bad\ufffd"})");
  // Whatever it holds, it is valid JSON with the same content.
  const auto parsed = nlohmann::json::parse(identity_json({{"k", {"a\"b\\c\td<&>"}}, {"l", {"1", "2"}}}));
  EXPECT_EQ(parsed.at("k"), "a\"b\\c\td<&>");
  EXPECT_EQ(parsed.at("l"), nlohmann::json::array({"1", "2"}));
}

TEST(IdentityJson, PreauthBodyNeedsASubjectPublicKeyInfo) {
  const std::string pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";
  EXPECT_EQ(preauth_json({{"DeviceId", {"d"}}}, pem),
            "{\"identity_data\":{\"DeviceId\":\"d\"},\"pubkey\":\"-----BEGIN PUBLIC KEY-----\\nMFkw\\n-----END PUBLIC KEY-----\\n\"}");
  EXPECT_THROW(preauth_json({{"DeviceId", {"d"}}}, "-----BEGIN RSA PUBLIC KEY-----\n"), Error);  // the server rejects it
}

std::string script_error(std::string_view script, const std::map<std::string, std::string>& files = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  try {
    run_identity_script(script, files, timeout);
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::CheckFailed);
    return error.what();
  }
  return "ran";
}

TEST(IdentityScript, PrintsTheDeviceIdReadFromAData) {
  const std::map<std::string, std::string> files{{"mender/device-id", "mender-azure-test-device1"},
                                                 {"/mender/nested/dir/x", "deep"}};
  const std::string out = run_identity_script(
      "#!/bin/sh\nprintf 'DeviceId=%s\\n' \"$(cat /data/mender/device-id)\"\ncat /data/mender/nested/dir/x\necho\n", files);
  EXPECT_EQ(out, "DeviceId=mender-azure-test-device1\ndeep\n");
  EXPECT_EQ(parse_identity_output(out.substr(0, out.find("deep"))), (IdentityAttributes{{"DeviceId", {"mender-azure-test-device1"}}}));
}

TEST(IdentityScript, RunsLikeTheDeviceExecsIt) {
  // No shell fallback: without #! exec fails with ENOEXEC.
  EXPECT_EQ(script_error("echo DeviceId=x\n"),
            "identity script: cannot execute the script: Exec format error (the script must start with #!)");
  EXPECT_EQ(script_error("#!/nonexistent/interpreter\n"), "identity script: cannot execute the script: No such file or directory");
  // Empty environment but PATH; the script is /identity, run from /.
  const std::string env = run_identity_script("#!/bin/sh\nenv | sort\necho \"$0\"\npwd\n", {});
  EXPECT_NE(env.find("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"), std::string::npos) << env;
  EXPECT_EQ(env.find("HOME="), std::string::npos) << env;
  EXPECT_EQ(env.find("IMPRINT_"), std::string::npos) << env;
  EXPECT_NE(env.find("/identity\n/\n"), std::string::npos) << env;
  // Non-zero exit: the status and the first line of stderr.
  EXPECT_EQ(script_error("#!/bin/sh\necho oops >&2\nexit 3\n"), "identity script: exit status 3: oops");
  // Host directories are read-only, /dev/null works.
  EXPECT_EQ(run_identity_script("#!/bin/sh\ntouch /etc/imprint-probe 2>/dev/null && echo writable || echo read-only\n", {}),
            "read-only\n");
}

TEST(IdentityScript, TimeoutAndStragglers) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(script_error("#!/bin/sh\nsleep 30\n", {}, std::chrono::milliseconds(500)), "identity script: still running after 0.50 s");
  // A background process left holding stdout does not keep us waiting.
  EXPECT_EQ(run_identity_script("#!/bin/sh\nsleep 30 &\necho DeviceId=x\n", {}), "DeviceId=x\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(IdentityScript, DataFilesNeverTouchAHostFile) {
  std::random_device random;
  const std::string marker = "imprint-secret-" + std::to_string(random()) + std::to_string(random());
  test::TempDir stamp_dir;
  const std::string stamp = stamp_dir / "stamp";
  test::write_file(stamp, "");
  ::sleep(1);  // find -newer has one-second resolution on some filesystems
  EXPECT_EQ(run_identity_script("#!/bin/sh\ncat /data/mender/secret\n", {{"mender/secret", marker}}), marker);
  // No file written since the stamp, in the temp directory or the working directory, holds it.
  for (const std::string& root : {std::filesystem::temp_directory_path().string(), std::filesystem::current_path().string()}) {
    const auto found = test::run({"sh", "-c", "find \"$1\" -xdev -type f -newer \"$2\" -size -16M -print0 2>/dev/null | "
                                              "xargs -0 -r grep -lF \"$3\" 2>/dev/null; true",
                                  "sh", root, stamp, marker});
    EXPECT_EQ(found.out, "") << root;
  }
  EXPECT_THROW(run_identity_script("#!/bin/sh\n", {{"../escape", "x"}}), Error);
}

}  // namespace
}  // namespace imprint
