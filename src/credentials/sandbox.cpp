// run_identity_script: the script runs as the device would run it, in a throw-away root.
//
// The child builds its root on a tmpfs inside a private mount namespace (plus a user namespace
// when not root), so the plan's data files (which may hold keys) never reach a host disk file and
// vanish with the namespace. Everything the child needs is prepared before fork(): after fork it
// only makes system calls (the parent may be multi-threaded).
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "imprint/error.hpp"
#include "imprint/fileio.hpp"
#include "imprint/identity.hpp"

namespace imprint {

namespace {

// Inside the namespace a tmpfs is mounted over /tmp (shadowing it for this child only) and becomes
// the new root.
constexpr const char* kRoot = "/tmp";
constexpr std::size_t kMaxOutput = 1 << 20;

// What the child failed at: index into kStages, reported through a close-on-exec pipe with errno.
enum Stage : int {
  Unshare, UserMap, MakePrivate, MountTmpfs, HostDir, DevNull, DataDir, DataFile, Script, Chroot, Redirect, Exec
};
constexpr const char* kStages[] = {
    "cannot create a private mount namespace", "cannot map the user namespace",
    "cannot make the mount namespace private", "cannot mount a tmpfs for the sandbox root",
    "cannot bind the host system directories", "cannot provide /dev/null",
    "cannot create a /data directory", "cannot write a /data file",
    "cannot write the script", "cannot chroot into the sandbox",
    "cannot redirect the script's output", "cannot execute the script"};

struct Report {
  int stage;
  int error;
};

struct PreparedFile {
  std::string path;  // absolute, under kRoot
  const std::string* bytes;
};

struct Prepared {
  std::vector<std::string> host_dirs;       // "/bin", ... (bind or symlink)
  std::vector<std::string> host_targets;    // kRoot + "/bin", ...
  std::vector<std::string> directories;     // to mkdir, parents first
  std::vector<PreparedFile> files;
  std::string script_path, dev_null;
  std::string uid_map, gid_map, deny = "deny";
  bool user_namespace = false;
};

// "mender/x", "/mender/x" -> "mender/x"; refuses "..", "." and empty components.
std::string normalize_data_path(const std::string& path) {
  std::string out;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t slash = std::min(path.find('/', start), path.size());
    const std::string part = path.substr(start, slash - start);
    start = slash + 1;
    if (part.empty()) continue;
    if (part == "." || part == "..") throw Error("data file path " + path + " has a '" + part + "' component", ErrorCode::Invalid);
    out += (out.empty() ? "" : "/") + part;
  }
  if (out.empty()) throw Error("data file path '" + path + "' names no file", ErrorCode::Invalid);
  return out;
}

Prepared prepare(const std::map<std::string, std::string>& data_files) {
  Prepared prepared;
  for (const char* dir : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/usr", "/etc"}) {
    struct stat info {};
    if (::lstat(dir, &info) != 0) continue;
    prepared.host_dirs.emplace_back(dir);
    prepared.host_targets.push_back(std::string(kRoot) + dir);
  }
  std::set<std::string> directories{"/dev", "/tmp", "/data"};
  for (const auto& [path, bytes] : data_files) {
    const std::string relative = normalize_data_path(path);
    for (std::size_t slash = relative.find('/'); slash != std::string::npos; slash = relative.find('/', slash + 1)) {
      directories.insert("/data/" + relative.substr(0, slash));
    }
    prepared.files.push_back({std::string(kRoot) + "/data/" + relative, &bytes});
  }
  for (const auto& directory : directories) prepared.directories.push_back(kRoot + directory);  // set order: parents first
  prepared.script_path = std::string(kRoot) + "/identity";
  prepared.dev_null = std::string(kRoot) + "/dev/null";
  prepared.user_namespace = ::geteuid() != 0;
  prepared.uid_map = "0 " + std::to_string(::geteuid()) + " 1\n";
  prepared.gid_map = "0 " + std::to_string(::getegid()) + " 1\n";
  return prepared;
}

[[noreturn]] void child_fail(int report_fd, Stage stage) {
  const Report report{stage, errno};
  [[maybe_unused]] const ssize_t ignored = ::write(report_fd, &report, sizeof report);
  ::_exit(127);
}

bool write_whole(const char* path, const char* data, std::size_t size, mode_t mode) {
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  while (size > 0) {
    const ssize_t put = ::write(fd, data, size);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) {
      ::close(fd);
      return false;
    }
    data += put;
    size -= static_cast<std::size_t>(put);
  }
  return ::close(fd) == 0 && ::chmod(path, mode) == 0;  // chmod: the umask must not strip 0755
}

// /proc/self/{setgroups,uid_map,gid_map}: one write, no create, no chmod.
bool write_proc(const char* path, const std::string& text) {
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  return ::close(fd) == 0 && written;
}

// Read-only bind of a host directory; a remount keeps the flags the kernel locked on the source.
bool bind_read_only(const char* source, const char* target) {
  if (::mkdir(target, 0755) != 0) return false;
  if (::mount(source, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) return false;
  struct statvfs info {};
  if (::statvfs(target, &info) != 0) return false;
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
  if (info.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (info.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (info.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (info.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (info.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (info.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return ::mount(nullptr, target, nullptr, flags, nullptr) == 0;
}

[[noreturn]] void child(const Prepared& prepared, std::string_view script, int out_fd, int err_fd, int report_fd) {
  ::setpgid(0, 0);  // the parent kills the whole group on timeout
  if (prepared.user_namespace) {
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) child_fail(report_fd, Unshare);
    if (!write_proc("/proc/self/setgroups", prepared.deny) || !write_proc("/proc/self/uid_map", prepared.uid_map) ||
        !write_proc("/proc/self/gid_map", prepared.gid_map)) {
      child_fail(report_fd, UserMap);
    }
  } else if (::unshare(CLONE_NEWNS) != 0) {
    child_fail(report_fd, Unshare);
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) child_fail(report_fd, MakePrivate);
  if (::mount("tmpfs", kRoot, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64m") != 0) child_fail(report_fd, MountTmpfs);

  for (std::size_t i = 0; i < prepared.host_dirs.size(); ++i) {
    const char* source = prepared.host_dirs[i].c_str();
    const char* target = prepared.host_targets[i].c_str();
    struct stat info {};
    if (::lstat(source, &info) != 0) child_fail(report_fd, HostDir);
    if (S_ISLNK(info.st_mode)) {  // merged /usr: /bin -> usr/bin stays a link
      char link[4096];
      const ssize_t length = ::readlink(source, link, sizeof link - 1);
      if (length < 0) child_fail(report_fd, HostDir);
      link[length] = '\0';
      if (::symlink(link, target) != 0) child_fail(report_fd, HostDir);
    } else if (S_ISDIR(info.st_mode) && !bind_read_only(source, target)) {
      child_fail(report_fd, HostDir);
    }
  }
  for (const auto& directory : prepared.directories) {
    if (::mkdir(directory.c_str(), 0755) != 0 && errno != EEXIST) child_fail(report_fd, DataDir);
  }
  if (!write_whole(prepared.dev_null.c_str(), "", 0, 0666) ||
      ::mount("/dev/null", prepared.dev_null.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    child_fail(report_fd, DevNull);
  }
  for (const auto& file : prepared.files) {
    if (!write_whole(file.path.c_str(), file.bytes->data(), file.bytes->size(), 0644)) child_fail(report_fd, DataFile);
  }
  if (!write_whole(prepared.script_path.c_str(), script.data(), script.size(), 0755)) child_fail(report_fd, Script);

  if (::chdir(kRoot) != 0 || ::chroot(".") != 0 || ::chdir("/") != 0) child_fail(report_fd, Chroot);
  const int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) {
    child_fail(report_fd, Redirect);
  }
  char name[] = "/identity";
  char path_env[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  char* const argv[] = {name, nullptr};
  char* const envp[] = {path_env, nullptr};
  ::execve(name, argv, envp);  // no shell fallback, like the Mender client
  child_fail(report_fd, Exec);
}

struct Pipe {
  UniqueFd read, write;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("identity script: cannot create a pipe");
    read.reset(fds[0]);
    write.reset(fds[1]);
  }
};

// Reads what is available; false at end of stream.
bool drain(UniqueFd& fd, std::string& into) {
  char buffer[8192];
  const ssize_t got = ::read(fd.get(), buffer, sizeof buffer);
  if (got < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (got <= 0) {
    fd.reset();
    return false;
  }
  into.append(buffer, static_cast<std::size_t>(got));
  return true;
}

std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  return line.size() > 200 ? line.substr(0, 200) + "..." : line;
}

}  // namespace

std::string run_identity_script(std::string_view script, const std::map<std::string, std::string>& data_files,
                                std::chrono::milliseconds timeout) {
  const Prepared prepared = prepare(data_files);
  Pipe out, err, report;

  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("identity script: cannot fork");
  if (pid == 0) {
    out.read.reset();
    err.read.reset();
    report.read.reset();
    child(prepared, script, out.write.get(), err.write.get(), report.write.get());
  }
  out.write.reset();
  err.write.reset();
  report.write.reset();

  std::string stdout_text, stderr_text, report_bytes;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false, too_long = false;
  int status = 0;
  bool exited = false;
  while (out.read || err.read || report.read) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd fds[3];
    UniqueFd* owners[3];
    nfds_t count = 0;
    for (UniqueFd* fd : {&out.read, &err.read, &report.read}) {
      if (*fd) {
        fds[count] = {fd->get(), POLLIN, 0};
        owners[count++] = fd;
      }
    }
    const int ready = ::poll(fds, count, static_cast<int>(std::min<long long>(left.count(), 100)));
    if (ready < 0 && errno != EINTR) break;
    for (nfds_t i = 0; i < count; ++i) {
      if (fds[i].revents == 0) continue;
      std::string& into = owners[i] == &out.read ? stdout_text : owners[i] == &err.read ? stderr_text : report_bytes;
      drain(*owners[i], into);
    }
    if (stdout_text.size() + stderr_text.size() > kMaxOutput) {
      too_long = true;
      break;
    }
    // The script has exited: background processes it left must not keep us waiting.
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      ::kill(-pid, SIGKILL);
    }
  }
  ::kill(-pid, SIGKILL);
  if (!exited) {
    if (timed_out || too_long) ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }

  if (report_bytes.size() >= sizeof(Report)) {
    Report failure{};
    std::memcpy(&failure, report_bytes.data(), sizeof failure);
    std::string message = std::string("identity script: ") + kStages[failure.stage] + ": " + std::strerror(failure.error);
    if (failure.stage == Exec && failure.error == ENOEXEC) message += " (the script must start with #!)";
    throw Error(message, ErrorCode::CheckFailed);
  }
  if (timed_out) {
    throw Error("identity script: still running after " + std::to_string(static_cast<double>(timeout.count()) / 1000.0).substr(0, 4) + " s",
                ErrorCode::CheckFailed);
  }
  if (too_long) throw Error("identity script: printed more than 1 MiB", ErrorCode::CheckFailed);
  if (WIFSIGNALED(status)) {
    throw Error("identity script: killed by signal " + std::to_string(WTERMSIG(status)), ErrorCode::CheckFailed);
  }
  if (WEXITSTATUS(status) != 0) {
    throw Error("identity script: exit status " + std::to_string(WEXITSTATUS(status)) +
                    (stderr_text.empty() ? "" : ": " + first_line(stderr_text)),
                ErrorCode::CheckFailed);
  }
  return stdout_text;
}

}  // namespace imprint
