// The identity script as the Mender client sees it: parsing, the JSON it sends, the preauth body,
// and running a script in the sandbox with the plan's /data files.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "imprint/core/error.hpp"
#include "imprint/credentials/identity.hpp"
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
  // Its stderr reaches a terminal: control characters escaped.
  EXPECT_EQ(script_error("#!/bin/sh\nprintf 'a\\033[2Jb\\rc\\n' >&2\nexit 1\n"), "identity script: exit status 1: a\\x1b[2Jb\\x0dc");
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

// A file name on the host no sandboxed script may create.
std::string host_marker(const std::string& stem) {
  std::random_device random;
  return "/tmp/imprint-" + stem + "-" + std::to_string(random()) + std::to_string(random());
}

// A line of the host's /etc/shadow (root's entry), which no sandboxed output may contain.
std::string shadow_root_line() {
  const std::string shadow = test::read_file("/etc/shadow");
  const auto start = shadow.find("root:");
  EXPECT_NE(start, std::string::npos);
  return shadow.substr(start, shadow.find('\n', start) - start);
}

TEST(IdentitySandbox, AnInjectedValueCannotWriteTheHostOrReadItsSecrets) {
  const std::string hostfile = host_marker("HOSTFILE");
  // What `echo "DeviceId={{serial}}"` becomes with serial = x"; echo pwned > HOSTFILE; cat /etc/shadow; "
  const std::string script = "#!/bin/sh\necho \"DeviceId=x\"; echo pwned > " + hostfile + "; cat /etc/shadow; \"\"\n";
  const std::string message = script_error(script);
  EXPECT_EQ(message.rfind("identity script: exit status 127: ", 0), 0u) << message;
  EXPECT_FALSE(std::filesystem::exists(hostfile));
  EXPECT_EQ(message.find(shadow_root_line()), std::string::npos);
  // Whatever the script prints, the host's secrets are not there to print.
  const std::string printed = run_identity_script("#!/bin/sh\ncat /etc/shadow /proc/1/root/etc/shadow 2>&1\nexit 0\n", {});
  EXPECT_EQ(printed.find(shadow_root_line()), std::string::npos);
  EXPECT_NE(printed.find("No such file"), std::string::npos) << printed;
}

TEST(IdentitySandbox, NoWayOutWithPerlOrPython) {
  const std::string hostfile = host_marker("ESCAPE");
  // The classic chroot escape (chroot into a subdirectory, climb, chroot "."), then the host.
  const std::string perl = "#!/usr/bin/perl\n"
                           "mkdir '/tmp/x'; print 'chroot=', (chroot('/tmp/x') ? 'ok' : $!+0), \"\\n\";\n"
                           "chdir '..' for 1..64; chroot '.';\n"
                           "print 'hostfile=', (open(F, '>', '" + hostfile + "') ? 'ok' : 'refused'), \"\\n\";\n"
                           "print 'shadow=', (open(S, '<', '/etc/shadow') ? join('', <S>) : 'absent'), \"\\n\";\n";
  const auto perl_out = parse_identity_output(run_identity_script(perl, {}));
  EXPECT_EQ(perl_out.at("chroot"), std::vector<std::string>{std::to_string(EPERM)});
  EXPECT_EQ(perl_out.at("shadow"), std::vector<std::string>{"absent"});
  EXPECT_FALSE(std::filesystem::exists(hostfile));

  const std::string python = R"(#!/usr/bin/python3
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def attempt(name, action):
    try:
        result = action()
        print(f"{name}=" + ("ok" if result in (None, 0, True) else f"errno{ctypes.get_errno()}"))
    except OSError as error:
        print(f"{name}=errno{error.errno}")
attempt("write_root", lambda: open("/imprint-probe", "w"))
attempt("chroot", lambda: os.chroot("/tmp"))
attempt("unshare", lambda: libc.unshare(0x10000000))
attempt("mount", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
attempt("ptrace", lambda: libc.ptrace(16, 1, 0, 0))
attempt("connect", lambda: socket.create_connection(("1.1.1.1", 53), timeout=2) and None)
attempt("host_root", lambda: os.listdir("/proc/1/root/root"))
print("uid=%d" % os.getuid())
for line in open("/proc/self/status"):
    key, value = line.split(":", 1)
    if key in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"):
        print(f"{key}={value.strip()}")
print("pids=%d" % len([p for p in os.listdir("/proc") if p.isdigit()]))
print("fds=" + ",".join(sorted(os.listdir("/proc/self/fd"))))
)";
  const int leaked = ::open("/etc/hostname", O_RDONLY);  // not close-on-exec: the script must not get it
  const auto out = parse_identity_output(run_identity_script(python, {}));
  ::close(leaked);
  EXPECT_EQ(out.at("fds"), std::vector<std::string>{"0,1,2,3"});  // 3: the listing's own
  for (const char* name : {"write_root", "chroot", "unshare", "mount", "ptrace", "connect", "host_root"}) {
    ASSERT_EQ(out.count(name), 1u) << name;
    EXPECT_NE(out.at(name).front(), "ok") << name;
  }
  EXPECT_EQ(out.at("uid"), std::vector<std::string>{"1000"});
  EXPECT_EQ(out.at("CapEff"), std::vector<std::string>{"0000000000000000"});
  EXPECT_EQ(out.at("CapPrm"), std::vector<std::string>{"0000000000000000"});
  EXPECT_EQ(out.at("CapBnd"), std::vector<std::string>{"0000000000000000"});
  EXPECT_EQ(out.at("NoNewPrivs"), std::vector<std::string>{"1"});
  EXPECT_EQ(out.at("Seccomp"), std::vector<std::string>{"2"});
  EXPECT_EQ(out.at("pids"), std::vector<std::string>{"1"});  // its own pid namespace: only itself
  EXPECT_FALSE(std::filesystem::exists("/imprint-probe"));
}

// Live processes in another pid namespace than ours (a sandbox's): "pid state", one a line.
std::string sandbox_processes() {
  std::error_code ignored;
  const auto own = std::filesystem::read_symlink("/proc/self/ns/pid", ignored);
  std::string found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code error;
    const auto namespace_link = std::filesystem::read_symlink(entry.path() / "ns/pid", error);
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (error || namespace_link == own || !std::getline(stat, line)) continue;
    const char state = line[line.rfind(')') + 2];
    if (state != 'Z') found += pid + " " + state + "\n";  // killed processes may stay zombies until init reaps them
  }
  return found;
}

TEST(IdentitySandbox, BoundedInTimeOutputAndProcesses) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(script_error("#!/bin/sh\nwhile :; do :; done\n", {}, std::chrono::milliseconds(1500)),
            "identity script: still running after 1.50 s");
  EXPECT_EQ(script_error("#!/bin/sh\nhead -c 100000000 /dev/zero | tr '\\0' x\n"), "identity script: printed more than 64 KiB");
  // A fork bomb meets RLIMIT_NPROC ("Cannot fork") or the time limit; all of it dies with the namespace.
  const std::string bomb = script_error("#!/bin/sh\nb() { b | b & }; b; sleep 30\n", {}, std::chrono::seconds(2));
  EXPECT_TRUE(bomb == "identity script: still running after 2.00 s" || bomb.rfind("identity script: exit status 2: ", 0) == 0)
      << bomb;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
  // Nothing of the sandbox runs once run_identity_script returns (no other test here makes pid
  // namespaces; killed processes may take a moment to die).
  const auto settle = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (sandbox_processes() != "" && std::chrono::steady_clock::now() < settle) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(sandbox_processes(), "");
  // The tmpfs /tmp is small and the file size limit holds: a script cannot fill memory that way.
  EXPECT_EQ(run_identity_script("#!/bin/sh\nhead -c 4000000 /dev/zero > /tmp/big 2>/dev/null || echo refused\n", {}), "refused\n");
}

}  // namespace
}  // namespace imprint
