// Filesystem structure checks with e2fsck and fsck.fat, read-only (see structure.hpp).
#include "imprint/image/structure.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"

extern char** environ;

namespace imprint {

namespace {

constexpr std::size_t kOutputLimit = 64 * 1024;  // a checker's report past this is not needed to name the damage

struct Checked {
  int status = -1;
  std::string output;
};

// Runs a checker (from the system's sbin directories, which a normal user's PATH may lack) with its
// output captured. Never through a shell.
Checked run_checker(const std::vector<std::string>& arguments) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw_errno("cannot run " + arguments[0]);
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> argv;
  for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  std::string program;
  for (const char* directory : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
    if (::access((directory + arguments[0]).c_str(), X_OK) == 0) {
      program = directory + arguments[0];
      break;
    }
  }
  if (program.empty()) throw Error(arguments[0] + " is not installed (Debian package " +
                                   (arguments[0] == "e2fsck" ? "e2fsprogs" : "dosfstools") + ")", ErrorCode::NotFound);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) throw_errno("cannot run " + program, spawned);
  write_end.reset();
  Checked result;
  char buffer[4096];
  for (ssize_t got; (got = ::read(read_end.get(), buffer, sizeof buffer)) != 0;) {
    if (got < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (result.output.size() < kOutputLimit) result.output.append(buffer, static_cast<std::size_t>(got));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

// The checker's first line that names a problem (not its banner or pass headers).
std::string first_problem(const std::string& output) {
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line.starts_with("e2fsck ") || line.starts_with("Pass ") || line.starts_with("fsck.fat ") ||
        line.find("Checking") != std::string::npos) {
      continue;
    }
    return line;
  }
  return "exit status without a message";
}

Checked check_ext(const DiskImage& image, const Partition& partition) {
  return run_checker({"e2fsck", "-fn", path_for_another_process(image.io_path()) + "?offset=" + std::to_string(partition.offset)});
}

// fsck.fat takes no offset: it reads an in-memory copy of the partition (memfd, never a host file).
Checked check_vfat(const DiskImage& image, const Partition& partition) {
  UniqueFd copy(::memfd_create("imprint-fat-check", MFD_CLOEXEC));
  if (!copy) throw_errno("cannot make an in-memory copy of " + partition_name(partition));
  UniqueFd source = open_read(image.io_path());
  std::vector<char> buffer(1 << 20);
  for (std::uint64_t done = 0; done < partition.size;) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), partition.size - done));
    const ssize_t got = ::pread(source.get(), buffer.data(), want, static_cast<off_t>(partition.offset + done));
    if (got <= 0) throw_errno("cannot read " + partition_name(partition) + " of " + image.path());
    pwrite_all(copy.get(), std::string_view(buffer.data(), static_cast<std::size_t>(got)), done, "the in-memory copy");
    done += static_cast<std::uint64_t>(got);
  }
  return run_checker({"fsck.fat", "-n", path_for_another_process(fd_path(copy.get()))});
}

}  // namespace

StructureReport check_structure(DiskImage& image) {
  StructureReport report;
  for (const Partition& partition : image.layout().partitions) {
    if (partition.extended) continue;
    const std::string name = partition_name(partition);
    const std::string& type = partition.fs_type;
    Checked checked;
    std::string tool;
    if (is_ext_type(type)) {
      tool = "e2fsck -fn";
      checked = check_ext(image, partition);
    } else if (type == "vfat") {
      tool = "fsck.fat -n";
      checked = check_vfat(image, partition);
    } else {
      report.skipped.push_back(name + ": " + (type.empty() ? std::string("no filesystem") : type) + " is not checked");
      continue;
    }
    if (checked.status == 0) {
      report.checked.push_back(name + ": " + type + " clean (" + tool + ")");
    } else {
      report.problems.push_back(name + ": " + tool + " found damage (exit " + std::to_string(checked.status) +
                                "): " + first_problem(checked.output));
    }
  }
  return report;
}

}  // namespace imprint
