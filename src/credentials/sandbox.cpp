// run_identity_script: the script runs as the device would run it (executed directly, PATH only, the
// plan's data files under /data), in a sandbox it cannot leave: profile values end up in the script,
// so its author may be hostile.
//
//   imprint --fork--> A, on the host side: drops to an unprivileged host uid (nobody when imprint is
//                     root), unshares user, mount, pid, net, ipc and uts namespaces with uid 0 inside
//                     mapped to that uid, forks B, waits for it and reports its wait status.
//   A --fork--> B, pid 1 of the new pid namespace: builds the root on a tmpfs (read-only binds of the
//               host's /usr /bin /lib..., /data, a few /dev nodes, its own /proc, a 1 MiB /tmp), makes
//               it read-only, pivot_root()s into it and detaches the host's tree, enters a nested user
//               namespace as uid 1000 (no capabilities: empty bounding set, no_new_privs), sets rlimits
//               and a seccomp filter, and execs the script.
//
// B dies with A (PR_SET_PDEATHSIG) and A with imprint; when B, the namespace's pid 1, dies the kernel
// kills every process left in the namespace. So killing A ends everything (timeout, output limit).
// The script uses the host's tools (the image's are armhf): it sees them, never the host's /etc,
// /home, /root, /tmp, network or processes. Everything is prepared before fork(): after it the
// children only make system calls (the parent may be multi-threaded).
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/credentials/identity.hpp"
#include "imprint/core/lifetime.hpp"

namespace imprint {

namespace {

// Inside the namespace a tmpfs is mounted over /tmp (shadowing it for the sandbox only) and becomes
// the new root.
constexpr const char* kRoot = "/tmp";
constexpr std::size_t kMaxOutput = 64 * 1024;
constexpr uid_t kScriptId = 1000;  // the script's uid and gid inside the nested user namespace
constexpr uid_t kNobody = 65534;   // the host uid the sandbox runs as when imprint is root

// What a child failed at: index into kStages, reported through a close-on-exec pipe with errno.
// A reports Done with B's wait status instead.
enum Stage : int {
  DropPrivileges, Unshare, UserMap, Fork, MakePrivate, MountTmpfs, HostDir, DevNode, MountProc, DataDir, DataFile,
  Script, ReadOnly, PivotRoot, NestedUser, Capabilities, Limits, Seccomp, Redirect, Exec, Done
};
constexpr const char* kStages[] = {
    "cannot drop to an unprivileged uid", "cannot create the sandbox's namespaces (are user namespaces allowed?)",
    "cannot map the user namespace", "cannot fork the sandbox's pid 1", "cannot make the mount namespace private",
    "cannot mount a tmpfs for the sandbox root", "cannot bind the host system directories", "cannot provide /dev nodes",
    "cannot mount /proc", "cannot create a directory", "cannot write a /data file", "cannot write the script",
    "cannot make the sandbox root read-only", "cannot pivot_root into the sandbox", "cannot enter the nested user namespace",
    "cannot drop capabilities", "cannot set resource limits", "cannot install the seccomp filter",
    "cannot redirect the script's output", "cannot execute the script"};

struct Report {
  int stage;
  int value;  // errno, or B's wait status for Done
};

struct PreparedFile {
  std::string path;  // absolute, under kRoot
  const std::string* bytes;
};

struct Bind {
  std::string source, target;
  bool link = false;  // merged /usr: /bin -> usr/bin stays a link (target is then the link text)
  std::string link_text;
};

struct Prepared {
  std::vector<Bind> host_dirs;
  std::vector<std::string> directories;  // to mkdir, parents first
  std::vector<PreparedFile> files;
  std::vector<std::pair<std::string, std::string>> dev_nodes;  // host node, target
  std::vector<std::pair<std::string, std::string>> dev_links;  // link text, target
  std::string ld_cache, ld_cache_target;                        // /etc/ld.so.cache, when the host has one
  std::string passwd, group, passwd_path, group_path;
  std::string script_path, proc_path, tmp_path;
  std::string uid_map, gid_map, nested_uid_map, nested_gid_map, deny = "deny";
  bool drop_root = false;
  pid_t parent = 0;
  rlim_t cpu_seconds = 11;
  std::vector<sock_filter> seccomp;
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

// System calls a script has no business making: they reach outside the sandbox (namespaces, mounts,
// other processes' memory, the kernel's keyring, modules, bpf) or widen the kernel's attack surface.
constexpr const char* kDenied[] = {
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "init_module", "finit_module", "delete_module",
    "kexec_load", "kexec_file_load", "reboot", "open_by_handle_at", "name_to_handle_at", "userfaultfd", "fsopen",
    "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "swapon", "swapoff", "acct", "quotactl", "syslog", "iopl", "ioperm",
    "lookup_dcookie", "vhangup"};

using SeccompContext = std::unique_ptr<void, decltype(&seccomp_release)>;

// The filter as BPF, built with libseccomp before fork (it allocates) and loaded by B with one prctl.
std::vector<sock_filter> seccomp_program() {
  SeccompContext context(seccomp_init(SCMP_ACT_ALLOW), &seccomp_release);
  if (!context) throw Error("identity script: cannot create a seccomp filter");
  const auto check = [](int result, const char* what) {
    if (result != 0) throw Error(std::string("identity script: seccomp filter: ") + what + ": " + std::strerror(-result));
  };
  // Another ABI (i386 int 0x80, x32) would bypass the rules written for this one: kill instead.
  check(seccomp_attr_set(context.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "bad-arch action");
  check(seccomp_attr_set(context.get(), SCMP_FLTATR_CTL_NNP, 0), "no_new_privs");  // B sets it itself
  for (const char* name : kDenied) {
    const int number = seccomp_syscall_resolve_name(name);
    if (number != __NR_SCMP_ERROR) check(seccomp_rule_add(context.get(), SCMP_ACT_ERRNO(EPERM), number, 0), name);
  }
  // rule: refuse `syscall` when (argument `index` & mask) == value. (libseccomp's SCMP_A0 macros are
  // C compound literals.)
  const auto refuse_when = [&](int syscall, unsigned index, scmp_datum_t mask, scmp_datum_t value, const char* what) {
    const scmp_arg_cmp compare{index, SCMP_CMP_MASKED_EQ, mask, value};
    check(seccomp_rule_add_array(context.get(), SCMP_ACT_ERRNO(EPERM), syscall, 1, &compare), what);
  };
  // New namespaces through clone(); clone3 passes its flags in memory a filter cannot read, so it
  // looks absent and the C library falls back to clone.
  for (const int flag : {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP,
                         CLONE_NEWTIME}) {
    refuse_when(SCMP_SYS(clone), 0, static_cast<scmp_datum_t>(flag), static_cast<scmp_datum_t>(flag), "clone");
  }
  check(seccomp_rule_add(context.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3");
  // TIOCSTI/TIOCLINUX would type into a terminal the script was never given; refuse them anyway.
  refuse_when(SCMP_SYS(ioctl), 1, 0xffffffffu, TIOCSTI, "ioctl");
  refuse_when(SCMP_SYS(ioctl), 1, 0xffffffffu, TIOCLINUX, "ioctl");

  UniqueFd memory(::memfd_create("imprint-seccomp", MFD_CLOEXEC));
  if (!memory) throw_errno("identity script: cannot create a memfd for the seccomp filter");
  check(seccomp_export_bpf(context.get(), memory.get()), "export");
  const off_t size = ::lseek(memory.get(), 0, SEEK_END);
  std::vector<sock_filter> program(static_cast<std::size_t>(size) / sizeof(sock_filter));
  if (size <= 0 || ::pread(memory.get(), program.data(), static_cast<std::size_t>(size), 0) != size) {
    throw Error("identity script: cannot read back the seccomp filter");
  }
  return program;
}

Prepared prepare(const std::map<std::string, std::string>& data_files, std::chrono::milliseconds timeout) {
  Prepared prepared;
  for (const char* dir : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr"}) {
    struct stat info {};
    if (::lstat(dir, &info) != 0 || !(S_ISDIR(info.st_mode) || S_ISLNK(info.st_mode))) continue;
    Bind bind{dir, std::string(kRoot) + dir, S_ISLNK(info.st_mode), ""};
    if (bind.link) {
      std::error_code error;
      bind.link_text = std::filesystem::read_symlink(dir, error).string();
      if (error) continue;
    }
    prepared.host_dirs.push_back(std::move(bind));
  }
  std::set<std::string> directories{"/dev", "/tmp", "/data", "/proc", "/etc"};
  for (const auto& [path, bytes] : data_files) {
    const std::string relative = normalize_data_path(path);
    for (std::size_t slash = relative.find('/'); slash != std::string::npos; slash = relative.find('/', slash + 1)) {
      directories.insert("/data/" + relative.substr(0, slash));
    }
    prepared.files.push_back({std::string(kRoot) + "/data/" + relative, &bytes});
  }
  for (const auto& directory : directories) prepared.directories.push_back(kRoot + directory);  // set order: parents first
  for (const char* node : {"null", "zero", "random", "urandom"}) {
    if (::access((std::string("/dev/") + node).c_str(), F_OK) == 0) {
      prepared.dev_nodes.emplace_back(std::string("/dev/") + node, std::string(kRoot) + "/dev/" + node);
    }
  }
  for (const auto& [text, name] : std::vector<std::pair<std::string, std::string>>{
           {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}}) {
    prepared.dev_links.emplace_back(text, std::string(kRoot) + "/dev/" + name);
  }
  if (::access("/etc/ld.so.cache", R_OK) == 0) {
    prepared.ld_cache = "/etc/ld.so.cache";
    prepared.ld_cache_target = std::string(kRoot) + "/etc/ld.so.cache";
  }
  // Only these two: the host's /etc (shadow, keys, configuration) stays out of sight.
  prepared.passwd = "root:x:0:0:root:/root:/bin/sh\nidentity:x:1000:1000:identity script:/:/bin/sh\n";
  prepared.group = "root:x:0:\nidentity:x:1000:\n";
  prepared.passwd_path = std::string(kRoot) + "/etc/passwd";
  prepared.group_path = std::string(kRoot) + "/etc/group";
  prepared.script_path = std::string(kRoot) + "/identity";
  prepared.proc_path = std::string(kRoot) + "/proc";
  prepared.tmp_path = std::string(kRoot) + "/tmp";
  prepared.drop_root = ::geteuid() == 0;
  const uid_t host_uid = prepared.drop_root ? kNobody : ::geteuid();
  const gid_t host_gid = prepared.drop_root ? kNobody : ::getegid();
  prepared.uid_map = "0 " + std::to_string(host_uid) + " 1\n";
  prepared.gid_map = "0 " + std::to_string(host_gid) + " 1\n";
  prepared.nested_uid_map = std::to_string(kScriptId) + " 0 1\n";
  prepared.nested_gid_map = std::to_string(kScriptId) + " 0 1\n";
  prepared.parent = ::getpid();
  prepared.cpu_seconds = static_cast<rlim_t>(timeout.count() / 1000 + 1);
  prepared.seccomp = seccomp_program();
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

bool map_user(const std::string& uid_map, const std::string& gid_map, const std::string& deny) {
  return write_proc("/proc/self/setgroups", deny) && write_proc("/proc/self/uid_map", uid_map) &&
         write_proc("/proc/self/gid_map", gid_map);
}

// Read-only, nosuid, nodev bind of a host directory or file onto target (which must exist). The
// remount keeps the flags the kernel locked on the source (a user namespace may not clear them).
bool bind_read_only(const char* source, const char* target) {
  if (::mount(source, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) return false;
  struct statvfs info {};
  if (::statvfs(target, &info) != 0) return false;
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV;
  if (info.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (info.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (info.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (info.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return ::mount(nullptr, target, nullptr, flags, nullptr) == 0;
}

void bind_host_dirs(const Prepared& prepared, int report_fd) {
  for (const Bind& bind : prepared.host_dirs) {
    if (bind.link) {
      if (::symlink(bind.link_text.c_str(), bind.target.c_str()) != 0) child_fail(report_fd, HostDir);
    } else if (::mkdir(bind.target.c_str(), 0755) != 0 || !bind_read_only(bind.source.c_str(), bind.target.c_str())) {
      child_fail(report_fd, HostDir);
    }
  }
}

void populate(const Prepared& prepared, std::string_view script, int report_fd) {
  for (const auto& directory : prepared.directories) {
    if (::mkdir(directory.c_str(), 0755) != 0 && errno != EEXIST) child_fail(report_fd, DataDir);
  }
  for (const auto& [source, target] : prepared.dev_nodes) {
    if (!write_whole(target.c_str(), "", 0, 0666) || ::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      child_fail(report_fd, DevNode);
    }
  }
  for (const auto& [text, target] : prepared.dev_links) {
    if (::symlink(text.c_str(), target.c_str()) != 0) child_fail(report_fd, DevNode);
  }
  if (::mount("proc", prepared.proc_path.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    child_fail(report_fd, MountProc);
  }
  if (::mount("tmpfs", prepared.tmp_path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=1m") != 0) {
    child_fail(report_fd, MountTmpfs);
  }
  if (!write_whole(prepared.passwd_path.c_str(), prepared.passwd.data(), prepared.passwd.size(), 0644) ||
      !write_whole(prepared.group_path.c_str(), prepared.group.data(), prepared.group.size(), 0644)) {
    child_fail(report_fd, DataFile);
  }
  if (!prepared.ld_cache.empty() && (!write_whole(prepared.ld_cache_target.c_str(), "", 0, 0644) ||
                                     !bind_read_only(prepared.ld_cache.c_str(), prepared.ld_cache_target.c_str()))) {
    child_fail(report_fd, HostDir);
  }
  for (const auto& file : prepared.files) {
    if (!write_whole(file.path.c_str(), file.bytes->data(), file.bytes->size(), 0644)) child_fail(report_fd, DataFile);
  }
  if (!write_whole(prepared.script_path.c_str(), script.data(), script.size(), 0755)) child_fail(report_fd, Script);
}

// Uid kScriptId in a user namespace nested in the sandbox's: not root there, no capability anywhere.
void become_unprivileged(const Prepared& prepared, int report_fd) {
  if (::unshare(CLONE_NEWUSER) != 0) child_fail(report_fd, NestedUser);
  if (!map_user(prepared.nested_uid_map, prepared.nested_gid_map, prepared.deny)) child_fail(report_fd, NestedUser);
  for (int cap = 0; ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) child_fail(report_fd, Capabilities);
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) child_fail(report_fd, Capabilities);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capset, &header, data) != 0) child_fail(report_fd, Capabilities);
}

void set_limits(const Prepared& prepared, int report_fd) {
  const std::pair<int, rlim_t> limits[] = {{RLIMIT_CPU, prepared.cpu_seconds}, {RLIMIT_NPROC, 64},
                                           {RLIMIT_FSIZE, 1 << 20},               {RLIMIT_AS, rlim_t{512} << 20},
                                           {RLIMIT_NOFILE, 256},                  {RLIMIT_CORE, 0}};
  for (const auto& [resource, value] : limits) {
    const rlimit limit{value, value};
    if (::setrlimit(resource, &limit) != 0) child_fail(report_fd, Limits);
  }
}

// B: pid 1 of the sandbox's pid namespace.
[[noreturn]] void sandbox_init(const Prepared& prepared, std::string_view script, int out_fd, int err_fd, int report_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) child_fail(report_fd, MakePrivate);
  if (::mount("tmpfs", kRoot, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64m") != 0) child_fail(report_fd, MountTmpfs);
  bind_host_dirs(prepared, report_fd);
  populate(prepared, script, report_fd);
  if (::mount(nullptr, kRoot, nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0) {
    child_fail(report_fd, ReadOnly);
  }
  // pivot_root(".", "."), then detach the old root stacked on top: the host's tree is gone, not
  // merely out of reach as it is under chroot.
  if (::chdir(kRoot) != 0 || ::syscall(SYS_pivot_root, ".", ".") != 0 || ::umount2(".", MNT_DETACH) != 0 || ::chdir("/") != 0) {
    child_fail(report_fd, PivotRoot);
  }
  become_unprivileged(prepared, report_fd);
  set_limits(prepared, report_fd);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0 ||
      ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    child_fail(report_fd, Redirect);
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(report_fd, Seccomp);
  const sock_fprog program{static_cast<unsigned short>(prepared.seccomp.size()), const_cast<sock_filter*>(prepared.seccomp.data())};
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) child_fail(report_fd, Seccomp);
  char name[] = "/identity";
  char path_env[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  char* const argv[] = {name, nullptr};
  char* const envp[] = {path_env, nullptr};
  ::execve(name, argv, envp);  // no shell fallback, like the Mender client
  child_fail(report_fd, Exec);
}

// Closes every descriptor above 2 except these three, so that the sandbox holds none of imprint's
// files (outputs, the guardian's socket) while it runs.
void close_all_but(int a, int b, int c) {
  int keep[] = {a, b, c};
  std::sort(std::begin(keep), std::end(keep));
  unsigned next = 3;
  for (const int fd : keep) {
    if (static_cast<unsigned>(fd) > next) ::close_range(next, static_cast<unsigned>(fd) - 1, 0);
    next = static_cast<unsigned>(fd) + 1;
  }
  ::close_range(next, ~0U, 0);
}

// A: on the host side of the namespaces; reports B's wait status.
[[noreturn]] void sandbox_outer(const Prepared& prepared, std::string_view script, int out_fd, int err_fd, int report_fd) {
  close_all_but(out_fd, err_fd, report_fd);
  if (prepared.drop_root && (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
                             ::setresuid(kNobody, kNobody, kNobody) != 0)) {
    child_fail(report_fd, DropPrivileges);
  }
  // A uid change makes the process undumpable, and /proc/self/uid_map then belongs to root.
  ::prctl(PR_SET_DUMPABLE, 1);
  // After the uid change, which clears it; imprint may have died before this line.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != prepared.parent) ::_exit(127);
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) != 0) {
    child_fail(report_fd, Unshare);
  }
  if (!map_user(prepared.uid_map, prepared.gid_map, prepared.deny)) child_fail(report_fd, UserMap);
  const pid_t init = ::fork();
  if (init < 0) child_fail(report_fd, Fork);
  if (init == 0) sandbox_init(prepared, script, out_fd, err_fd, report_fd);
  ::close(out_fd);  // the parent sees end-of-file when the namespace is gone
  ::close(err_fd);
  int status = 0;
  while (::waitpid(init, &status, 0) < 0 && errno == EINTR) {
  }
  const Report done{Done, status};
  [[maybe_unused]] const ssize_t ignored = ::write(report_fd, &done, sizeof done);
  ::_exit(0);
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

// The script's first stderr line for the error message, control characters escaped: the script's
// author chooses those bytes, and they end up on a terminal.
std::string first_line(const std::string& text) {
  static constexpr char hex[] = "0123456789abcdef";
  const std::size_t end = std::min(text.find('\n'), text.size());
  std::string line;
  for (const char c : text.substr(0, std::min<std::size_t>(end, 200))) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte != 0x7f) {
      line += c;
    } else {
      line += std::string("\\x") + hex[byte >> 4] + hex[byte & 0xf];
    }
  }
  return end > 200 ? line + "..." : line;
}

struct Collected {
  std::string out, err, reports;
  bool timed_out = false, too_long = false;
};

// Reads the three pipes until they all end (the namespace is gone), the deadline or the output limit.
Collected collect(Pipe& out, Pipe& err, Pipe& report, std::chrono::milliseconds timeout) {
  Collected collected;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.read || err.read || report.read) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      collected.timed_out = true;
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
      std::string& into = owners[i] == &out.read ? collected.out : owners[i] == &err.read ? collected.err : collected.reports;
      drain(*owners[i], into);
    }
    if (collected.out.size() + collected.err.size() > kMaxOutput) {
      collected.too_long = true;
      break;
    }
  }
  return collected;
}

}  // namespace

std::string run_identity_script(std::string_view script, const std::map<std::string, std::string>& data_files,
                                std::chrono::milliseconds timeout) {
  const Prepared prepared = prepare(data_files, timeout);
  Pipe out, err, report;

  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("identity script: cannot fork");
  if (pid == 0) {
    out.read.reset();
    err.read.reset();
    report.read.reset();
    sandbox_outer(prepared, script, out.write.get(), err.write.get(), report.write.get());
  }
  const ChildRegistration registered(pid);  // killed if imprint is stopped by a signal meanwhile
  out.write.reset();
  err.write.reset();
  report.write.reset();

  const Collected collected = collect(out, err, report, timeout);
  ::kill(pid, SIGKILL);  // A gone: B (pid 1) and so the whole namespace with it; a no-op when done
  int outer_status = 0;
  while (::waitpid(pid, &outer_status, 0) < 0 && errno == EINTR) {
  }

  int status = -1;
  for (std::size_t at = 0; at + sizeof(Report) <= collected.reports.size(); at += sizeof(Report)) {
    Report record{};
    std::memcpy(&record, collected.reports.data() + at, sizeof record);
    if (record.stage == Done) {
      status = record.value;
      continue;
    }
    if (record.stage < 0 || record.stage >= Done) continue;
    std::string message = std::string("identity script: ") + kStages[record.stage] + ": " + std::strerror(record.value);
    if (record.stage == Exec && record.value == ENOEXEC) message += " (the script must start with #!)";
    throw Error(message, ErrorCode::CheckFailed);
  }
  if (collected.timed_out) {
    throw Error("identity script: still running after " + std::to_string(static_cast<double>(timeout.count()) / 1000.0).substr(0, 4) + " s",
                ErrorCode::CheckFailed);
  }
  if (collected.too_long) {
    throw Error("identity script: printed more than " + std::to_string(kMaxOutput / 1024) + " KiB", ErrorCode::CheckFailed);
  }
  if (status == -1) throw Error("identity script: the sandbox ended without a status", ErrorCode::CheckFailed);
  if (WIFSIGNALED(status)) {
    throw Error("identity script: killed by signal " + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) + ")",
                ErrorCode::CheckFailed);
  }
  if (WEXITSTATUS(status) != 0) {
    throw Error("identity script: exit status " + std::to_string(WEXITSTATUS(status)) +
                    (collected.err.empty() ? "" : ": " + first_line(collected.err)),
                ErrorCode::CheckFailed);
  }
  return collected.out;
}

}  // namespace imprint
