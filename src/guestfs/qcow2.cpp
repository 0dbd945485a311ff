// What a qcow2 overlay holds in its own layer: the appliance wrote there instead of the golden
// (stamp -o, flash -p on a partition only libguestfs opens), and these runs are what the device's
// ImageOverlay takes over. qemu-img map is the reader: it is qemu's own view of the format
// (allocated, zero and copied-on-write clusters), where a hand-written L1/L2 walk would not be.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <nlohmann/json.hpp>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/core/lifetime.hpp"
#include "imprint/guestfs/guestfs.hpp"

namespace imprint {

namespace {

// The whole text a helper wrote into a memfd (a pipe would need reading while it runs).
std::string memfd_text(int fd, const std::string& what) {
  if (::lseek(fd, 0, SEEK_SET) != 0) throw_errno("cannot read " + what);
  return read_fd(fd, what, kListInputLimit);
}

std::string first_line(const std::string& text) {
  const std::string line = text.substr(0, text.find('\n'));
  return line.empty() ? "no message" : line;
}

}  // namespace

std::vector<Qcow2Run> qcow2_written_runs(const std::string& path, const std::string& name) {
  UniqueFd out(::memfd_create("imprint-qemu-img-map", MFD_CLOEXEC));
  UniqueFd err(::memfd_create("imprint-qemu-img-errors", MFD_CLOEXEC));
  if (!out || !err) throw_errno(name + ": cannot run qemu-img map");
  pid_t pid = 0;
  try {
    pid = spawn_helper({"qemu-img", "map", "--output=json", "-f", "qcow2", path}, out.get(), err.get());
  } catch (const Error& error) {
    throw Error(name + ": cannot run qemu-img (Debian package qemu-utils; run scripts/setup.sh): " + error.what(),
                ErrorCode::Unsupported);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw Error(name + ": qemu-img map cannot read the libguestfs overlay: " + first_line(memfd_text(err.get(), "qemu-img's errors")));
  }
  std::vector<Qcow2Run> runs;
  try {
    for (const nlohmann::json& entry : nlohmann::json::parse(memfd_text(out.get(), "qemu-img's map"))) {
      if (entry.at("depth").get<int>() != 0) continue;  // the golden's bytes (depth 1)
      Qcow2Run run{entry.at("start").get<std::uint64_t>(), entry.at("length").get<std::uint64_t>(), false, 0};
      if (entry.at("data").get<bool>()) {
        if (!entry.contains("offset")) throw Error("a written run at byte " + std::to_string(run.offset) + " has no offset in the file");
        run.file_offset = entry.at("offset").get<std::uint64_t>();
      } else if (entry.at("zero").get<bool>()) {
        run.zero = true;
      } else {
        continue;  // allocated in no layer: reads as the golden's end does (nothing written)
      }
      runs.push_back(run);
    }
  } catch (const nlohmann::json::exception& error) {
    throw Error(name + ": cannot read qemu-img's map of the libguestfs overlay: " + error.what());
  } catch (const Error& error) {
    throw Error(name + ": cannot read the libguestfs overlay: " + error.what());
  }
  return runs;
}

}  // namespace imprint
