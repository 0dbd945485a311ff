// Helpers shared by the tests: fixtures, running commands (imprint and independent tools), temp
// directories, and reading partitions back with e2fsprogs.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "imprint/core/error.hpp"

namespace imprint::test {

// Path of a built fixture ($IMPRINT_FIXTURES/name); throws with a message saying how to build it
// when it is missing, so a test never passes or skips silently.
std::string fixture(const std::string& name);
std::string source_dir();   // $IMPRINT_SOURCE_DIR
std::string imprint_bin();  // $IMPRINT_BIN

// The smallest profile that shows which device a card or image is: the id on the data partition
// and on the root filesystem (what the flash, station and card tests read back with debugfs).
inline constexpr const char* kDeviceIdProfile = R"(version: 1
files:
  - path: /data/mender/device-id
    content: "{{device_id}}\n"
    mode: "0644"
  - path: /etc/device-id
    content: "{{device_id}}\n"
    mode: "0644"
)";

struct CommandResult {
  int status = -1;  // exit status, or 128+signal
  std::string out;
  std::string err;
};
// Runs argv (no shell) with optional stdin bytes and extra environment entries ("K=V").
CommandResult run(const std::vector<std::string>& argv, const std::string& stdin_bytes = "",
                  const std::vector<std::string>& environment = {});
// Runs imprint with the given arguments.
CommandResult run_imprint(const std::vector<std::string>& arguments, const std::string& stdin_bytes = "",
                      const std::vector<std::string>& environment = {});
// Runs imprint on a pseudo-terminal (script(1), util-linux): `out` is what the terminal showed,
// stdout and stderr together, carriage returns and escape sequences included.
CommandResult run_imprint_on_terminal(const std::vector<std::string>& arguments);
// Runs a shell command line (for pipelines in tests); throws when it fails.
std::string shell(const std::string& command);

// A fresh directory removed (recursively) at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Sparse copy of a fixture into dir; returns the new path.
std::string copy_fixture(const std::string& name, const TempDir& dir);

std::string file_sha256(const std::string& path);
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

// Partition n (1-based) of an image as sfdisk --json reports it, in bytes.
struct Span {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
};
Span partition_span(const std::string& image, int number);
// "IMAGE?offset=N" for debugfs / e2fsck.
std::string ext_device(const std::string& image, int number);
// debugfs -R command on a filesystem: an ext image file, or "IMAGE?offset=N" (ext_device). debugfs
// exits 0 even when it cannot open the filesystem: that throws, naming it.
std::string debugfs(const std::string& device, const std::string& command);
// The same on partition n of an image.
std::string debugfs(const std::string& image, int number, const std::string& command);
// debugfs -w -R command (the independent tool shapes or damages a filesystem); throws when it fails
// or prints an error ("... while ..."). Returns what it printed.
std::string debugfs_write(const std::string& device, const std::string& command);
// blkid -p's values (TYPE, LABEL, UUID, ...) for the bytes of one partition: the independent prober.
std::map<std::string, std::string> blkid_values(const std::string& image, const Span& span);
std::map<std::string, std::string> blkid_values(const std::string& image, int number);
// Does path exist on partition n? (debugfs stat, which reports a missing file on stderr)
bool debugfs_exists(const std::string& image, int number, const std::string& path);
// Reads a file out of an image with `mender-artifact cp IMAGE:PATH` (its `cat` stops at 32 KiB in
// 3.9) into dir; returns the bytes.
std::string mender_artifact_read(const std::string& image, const std::string& path, const std::string& dir);
// e2fsck -fn on partition n; returns its exit status (0 = clean) and output.
CommandResult e2fsck(const std::string& image, int number);
// sha256 of the bytes of partition n.
std::string partition_sha256(const std::string& image, int number);
// Allocated bytes of a host file (st_blocks * 512).
std::uint64_t allocated_bytes(const std::string& path);
// The names in a directory (hidden ones included), sorted; none when it does not exist.
std::vector<std::string> directory_entries(const std::string& directory);

// A loop device over a backing file (losetup: root), detached at the end of the scope; throws with
// what is missing when none can be attached.
struct Loop {
  std::string device;
  explicit Loop(const std::string& backing);
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
};

// Runs action, which must throw imprint::Error with this code; returns the error for more checks
// (a test failure, and an empty Error, when nothing is thrown).
template <typename Action>
Error expect_error(Action&& action, ErrorCode code) {
  try {
    action();
  } catch (const Error& error) {
    EXPECT_EQ(static_cast<int>(error.code()), static_cast<int>(code)) << error.what();
    return error;
  }
  ADD_FAILURE() << "no Error thrown";
  return Error("");
}

}  // namespace imprint::test
