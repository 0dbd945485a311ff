// The Mender identity script, as the Mender client sees it: parse its output, encode the identity
// the way the client sends it, build the preauthorization body, and run a script the way the
// device would (sandboxed, with the plan's data-partition files at /data).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace imprint {

// key -> values in output order (a key printed twice has two values).
using IdentityAttributes = std::map<std::string, std::vector<std::string>>;

// Parses "key=value" lines exactly as the Mender client does: lines end at "\n" (one "\r" before it
// is dropped, as Go's bufio.ScanLines does), empty lines are skipped, the key/value split is at the
// first "=", nothing is trimmed, repeated keys become a list. A line without "=" is
// Error(Invalid) "identity output line N has no '=': ...".
IdentityAttributes parse_identity_output(std::string_view text);

// Compact JSON with sorted keys, a single value as a string and repeated values as an array,
// encoded like the client's Go encoder (HTML characters escaped as \u003c etc.):
// {"DeviceId":"mender-azure-test-device1"}
std::string identity_json(const IdentityAttributes& identity);

// The Mender server's preauthorization body:
// {"identity_data":{...},"pubkey":"-----BEGIN PUBLIC KEY-----\n..."}
std::string preauth_json(const IdentityAttributes& identity, const std::string& public_key_pem);

// Runs the script as the device would: executed directly (no shell fallback, so a script without
// "#!" fails with ENOEXEC), empty environment but PATH, stdin /dev/null, the script at /identity and
// `data_files` under /data (keys are data-partition paths such as "mender/x" or "/mender/x"). It runs
// sandboxed (sandbox.cpp): uid 1000 with no capabilities in its own user, mount, pid, net, ipc and
// uts namespaces, a read-only tmpfs root holding read-only binds of the host's /usr /bin /lib...,
// no host /etc, no network, seccomp, rlimits; killed with everything it started after `timeout` or
// 64 KiB of output. No byte of data_files touches a host disk file. Returns stdout;
// Error(CheckFailed) naming the failure (exec error, exit status with stderr, timeout, output).
std::string run_identity_script(std::string_view script, const std::map<std::string, std::string>& data_files,
                                std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace imprint
