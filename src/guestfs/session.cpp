// GuestfsSession: one libguestfs appliance over the drives of one image operation (or one batch
// chunk). Launched lazily, retried once with TCG (these machines expose /dev/kvm but qemu aborts
// with it), partitions mounted by device path under their own mount points (/sda1, /sda2...), so
// several partitions of one image are open at the same time.
#include "imprint/guestfs/guestfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <linux/kvm.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/core/lifetime.hpp"
#include "api.hpp"

namespace imprint {

namespace {

// KVM failed once in this process: later sessions (batch chunks) go straight to TCG, and the
// fallback is announced only once.
bool g_use_tcg = false;
bool g_told_tcg = false;

// The first line: libguestfs appends a multi-line "Do: export LIBGUESTFS_DEBUG=1..." hint.
std::string last_error(guestfs_h* g) {
  const char* message = libguestfs().last_error(g);
  std::string text = message != nullptr ? message : "unknown libguestfs error";
  return text.substr(0, text.find('\n'));
}

}  // namespace

// libguestfs canonicalizes drive paths (realpath), which fails for an unnamed file (O_TMPFILE
// outputs, decompressed images: /proc/PID/fd/N -> "/dir/#123 (deleted)"), and such a file cannot
// be given a name and lose it again (it would no longer be linkable under its final name). Those
// files are served to the appliance by qemu-nbd (qemu-utils, a libguestfs dependency) over a unix
// socket in a private directory, for the life of one launch.
class NbdServers {
 public:
  NbdServers() = default;
  NbdServers(const NbdServers&) = delete;
  NbdServers& operator=(const NbdServers&) = delete;
  ~NbdServers() { stop(); }

  static bool needs_server(const std::string& path) {
    struct stat info {};
    return path.rfind("/proc/", 0) == 0 && ::stat(path.c_str(), &info) == 0 && info.st_nlink == 0;
  }

  // Starts qemu-nbd for path with its socket in `directory`; returns the socket to give libguestfs
  // as "unix:SOCKET". qemu-nbd dies with imprint (lifetime.hpp), even after kill -9.
  // format: "raw", or "qcow2" for an overlay (qemu-nbd then serves the guest's view of it).
  std::string serve(const std::string& directory, const std::string& path, const std::string& format, bool writable,
                    const std::string& name) {
    const std::string socket = directory + "/nbd" + std::to_string(servers_.size()) + ".sock";
    std::vector<std::string> arguments{"qemu-nbd", "--persistent", "--shared=0", "--format=" + format, "--cache=unsafe",
                                       "--socket=" + socket};
    if (!writable) arguments.push_back("--read-only");
    arguments.push_back(path);
    pid_t pid = 0;
    try {
      pid = spawn_helper(arguments);
    } catch (const Error& error) {
      throw Error(name + ": cannot start qemu-nbd (Debian package qemu-utils; run scripts/setup.sh): " + error.what(),
                  ErrorCode::Unsupported);
    }
    servers_.emplace_back(pid, true);
    // Ready when the socket exists (qemu-nbd creates it once the image is open).
    for (int waited = 0; waited < 1000; ++waited) {
      struct stat info {};
      if (::stat(socket.c_str(), &info) == 0) return socket;
      siginfo_t exited{};  // WNOWAIT: stop() reaps it, after releasing its registration
      if (::waitid(P_PID, static_cast<id_t>(pid), &exited, WEXITED | WNOHANG | WNOWAIT) == 0 && exited.si_pid == pid) {
        throw Error(name + ": qemu-nbd could not serve the image to the libguestfs appliance");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw Error(name + ": qemu-nbd did not start within 10 s");
  }

  // Ends the servers (after the appliance is gone) and waits: their writes are in the file then.
  void stop() noexcept {
    for (ChildRegistration& server : servers_) {
      const pid_t pid = server.pid();
      ::kill(pid, SIGTERM);
      server.release();  // before the pid can be reused
      int status = 0;
      while (::waitpid(pid, &status, 0) == -1 && errno == EINTR) {
      }
    }
    servers_.clear();
  }

 private:
  std::vector<ChildRegistration> servers_;
};

namespace {

bool environment_forces_tcg() {
  const char* settings = std::getenv("LIBGUESTFS_BACKEND_SETTINGS");
  return settings != nullptr && std::strstr(settings, "force_tcg") != nullptr;
}

bool executable_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string directories = path != nullptr ? path : "/usr/bin:/bin";
  directories += ":/usr/sbin:/sbin";
  std::size_t start = 0;
  while (start <= directories.size()) {
    const std::size_t end = std::min(directories.find(':', start), directories.size());
    const std::string candidate = directories.substr(start, end - start) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

// What the appliance needs that this machine lacks, for the launch error ("" when nothing obvious).
std::string missing_appliance_parts() {
  std::string missing;
  glob_t kernels{};
  const bool any_kernel = ::glob("/boot/vmlinuz-*", 0, nullptr, &kernels) == 0 && kernels.gl_pathc > 0;
  bool readable = false;
  for (std::size_t i = 0; any_kernel && i < kernels.gl_pathc; ++i) {
    readable = readable || ::access(kernels.gl_pathv[i], R_OK) == 0;
  }
  ::globfree(&kernels);
  if (!any_kernel) {
    missing += "; no kernel in /boot (Debian package linux-image-amd64)";
  } else if (!readable) {
    missing += "; the kernels in /boot are not readable by this user (chmod 0644 /boot/vmlinuz-*)";
  }
  if (!executable_on_path("supermin")) missing += "; supermin is not installed (Debian package supermin)";
  return missing;
}

// A KVM launch takes a few seconds where KVM works. Where /dev/kvm exists but does not work, qemu
// may abort or hang (seen here: a launch still booting after an hour): give up after this long.
int kvm_deadline_seconds() {
  const char* text = std::getenv("IMPRINT_GUESTFS_KVM_TIMEOUT");
  const int value = text != nullptr ? std::atoi(text) : 0;
  return value > 0 ? value : 30;
}

std::string cache_directory() {
  const char* chosen = std::getenv("LIBGUESTFS_CACHEDIR");
  return chosen != nullptr && *chosen != '\0' ? chosen : "/var/tmp";
}

// Remembered across runs: once KVM failed on this machine, later runs start with TCG at once
// instead of waiting for KVM to fail again.
std::string kvm_marker() { return cache_directory() + "/.imprint-kvm-failed-" + std::to_string(::getuid()); }

bool kvm_failed_before() { return ::access(kvm_marker().c_str(), F_OK) == 0; }

void remember_kvm_failure() {
  const int fd = ::open(kvm_marker().c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
}

// The TCG note, at most once per process and, through the marker, once per machine and user.
// `news`: something happened now (a KVM launch just failed): said even when noted before.
void note_tcg(const std::string& note, bool news = false) {
  if (g_told_tcg) return;
  g_told_tcg = true;
  const std::string marker = tcg_note_marker();
  if (!news && !marker.empty() && ::access(marker.c_str(), F_OK) == 0) return;
  std::fprintf(stderr, "imprint: %s%s\n", note.c_str(), news ? "" : " (shown once on this machine)");
  if (marker.empty()) return;
  const std::string directory = marker.substr(0, marker.rfind('/'));
  ::mkdir(directory.substr(0, directory.rfind('/')).c_str(), 0700);  // ~/.cache may not exist yet
  ::mkdir(directory.c_str(), 0700);
  const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
}

// qemu processes that are children of this process (libguestfs' direct backend forks qemu).
std::set<pid_t> qemu_children() {
  std::set<pid_t> found;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return found;
  const pid_t self = ::getpid();
  while (const dirent* entry = ::readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // "pid (comm) state ppid ...": comm may hold spaces, so parse from the last ')'.
    const auto open = line.find('(');
    const auto close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    const std::string comm = line.substr(open + 1, close - open - 1);
    char state = 0;
    int ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) != 2) continue;
    if (ppid == self && comm.rfind("qemu-system", 0) == 0) found.insert(pid);
  }
  ::closedir(proc);
  return found;
}

// guestfs_launch, with a watcher that registers the qemu it starts as soon as it appears (a signal
// or kill -9 during the launch, which takes most of a guestfs run, must not leave it behind) and
// kills it when the launch has not finished within `seconds` (the launch then fails and the caller
// retries with TCG; seconds <= 0: no deadline).
int launch_watched(guestfs_h* g, int seconds, bool& timed_out) {
  timed_out = false;
  const std::set<pid_t> before = qemu_children();
  std::mutex mutex;
  std::condition_variable done_signal;
  bool done = false;
  std::vector<ChildRegistration> started;
  std::thread watcher([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    std::unique_lock lock(mutex);
    while (!done_signal.wait_for(lock, std::chrono::milliseconds(100), [&] { return done; })) {
      for (const pid_t pid : qemu_children()) {
        const bool known = before.count(pid) != 0 ||
                           std::any_of(started.begin(), started.end(), [&](const ChildRegistration& r) { return r.pid() == pid; });
        if (!known) started.emplace_back(pid, true);
      }
      if (seconds > 0 && std::chrono::steady_clock::now() >= deadline) {
        for (const ChildRegistration& qemu : started) ::kill(qemu.pid(), SIGKILL);
        timed_out = true;
        return;
      }
    }
  });
  const int result = libguestfs().launch(g);
  {
    std::lock_guard lock(mutex);
    done = true;
  }
  done_signal.notify_one();
  watcher.join();
  return result;
}

// The default cache is $TMPDIR/.guestfs-UID: a TMPDIR per run (CI jobs, tests) would rebuild the
// ~15 s supermin appliance every time. Keep it in /var/tmp unless the user chose a cache.
void choose_cachedir(guestfs_h* g) {
  if (std::getenv("LIBGUESTFS_CACHEDIR") != nullptr) return;
  libguestfs().set_cachedir(g, cache_directory().c_str());
}

}  // namespace

std::string kvm_problem() {
  const int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) return std::string("/dev/kvm: ") + std::strerror(errno);
  std::string problem;
  if (const int version = ::ioctl(kvm, KVM_GET_API_VERSION, 0); version != KVM_API_VERSION) {
    problem = "/dev/kvm: KVM API version " + std::to_string(version) + ", not " + std::to_string(KVM_API_VERSION);
  } else if (const int vm = ::ioctl(kvm, KVM_CREATE_VM, 0); vm < 0) {
    problem = std::string("/dev/kvm: cannot create a VM: ") + std::strerror(errno);
  } else {
    ::close(vm);
  }
  ::close(kvm);
  return problem;
}

std::string tcg_note_marker() {
  const std::string directory = default_cache_directory();
  return directory.empty() ? "" : directory + "/tcg-noted";
}

GuestfsSession::GuestfsSession(std::vector<Drive> drives)
    : drives_(std::move(drives)), nbd_(std::make_shared<NbdServers>()) {}

GuestfsSession::~GuestfsSession() { close(); }

std::string GuestfsSession::partition_device(std::size_t drive, int number) {
  // Linux disk names: sda..sdz, sdaa..sdzz, ...
  std::string letters;
  std::size_t index = drive + 1;
  while (index > 0) {
    --index;
    letters.insert(letters.begin(), static_cast<char>('a' + index % 26));
    index /= 26;
  }
  return "/dev/sd" + letters + std::to_string(number);
}

void GuestfsSession::close() noexcept {
  qemu_.release();  // libguestfs reaps it: its pid may be reused afterwards
  if (handle_ != nullptr) libguestfs().close(handle_);
  handle_ = nullptr;
  mounted_.clear();
  nbd_->stop();
}

guestfs_h* GuestfsSession::handle() {
  if (handle_ == nullptr) launch();
  return handle_;
}

void GuestfsSession::launch() {
  const std::string what = drives_.size() == 1 ? drives_.front().name : std::to_string(drives_.size()) + " images";
  try {
    libguestfs();  // loaded first: without it, one error line and nothing started or created
  } catch (const Error& error) {
    throw Error("cannot launch the libguestfs appliance for " + what + ": " + error.what(), error.code());
  }
  std::string first_error;
  // Without usable KVM, TCG at once: a KVM launch would only time out (30 s) first.
  const std::string kvm = g_use_tcg || environment_forces_tcg() ? "" : kvm_problem();
  const bool remembered = kvm.empty() && !g_use_tcg && !environment_forces_tcg() && kvm_failed_before();
  const bool tcg_already = g_use_tcg || environment_forces_tcg() || remembered || !kvm.empty();
  if (!kvm.empty()) note_tcg("the libguestfs appliance runs with TCG (slower): " + kvm);
  if (remembered) {
    note_tcg("the libguestfs appliance runs with TCG (slower): KVM failed on this machine before (delete " + kvm_marker() +
             " to try KVM again)");
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool tcg = tcg_already || attempt == 1;
    guestfs_h* g = libguestfs().create();
    if (g == nullptr) throw Error("cannot create a libguestfs handle for " + what + " (out of memory?)");
    libguestfs().set_error_handler(g, nullptr, nullptr);  // errors are reported as imprint::Error
    // libguestfs' own temp and socket directories go into one that imprint removes on a signal,
    // and whose removal the guardian takes over after kill -9. The socket directory has no setter
    // in libguestfs 1.48: it follows XDG_RUNTIME_DIR, read here from a list, not the environment.
    if (!temp_) temp_ = std::make_unique<PrivateTempDir>("imprint-guestfs-");
    const std::string runtime_dir = "XDG_RUNTIME_DIR=" + temp_->path();
    char* environment[] = {const_cast<char*>(runtime_dir.c_str()), nullptr};
    libguestfs().parse_environment_list(g, environment);
    libguestfs().set_tmpdir(g, temp_->path().c_str());
    choose_cachedir(g);
    if (tcg) libguestfs().set_backend_setting(g, "force_tcg", "1");
    nbd_->stop();
    if (!overlays_created_) create_overlays(g);
    for (const Drive& drive : drives_) {
      int added = 0;
      if (NbdServers::needs_server(drive.path)) {
        // qemu-nbd reads the qcow2 and serves the guest's view of it: raw to libguestfs.
        const std::string server =
            "unix:" + nbd_->serve(temp_->path(), drive.path, drive.backing.empty() ? "raw" : "qcow2", drive.writable, drive.name);
        char* servers[] = {const_cast<char*>(server.c_str()), nullptr};
        added = libguestfs().add_drive_opts(g, "", GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw", GUESTFS_ADD_DRIVE_OPTS_PROTOCOL,
                                            "nbd", GUESTFS_ADD_DRIVE_OPTS_SERVER, servers, GUESTFS_ADD_DRIVE_OPTS_READONLY,
                                            drive.writable ? 0 : 1, GUESTFS_ADD_DRIVE_OPTS_CACHEMODE,
                                            drive.writable ? "unsafe" : "writeback", -1);
      } else {
        added = libguestfs().add_drive_opts(g, drive.path.c_str(), GUESTFS_ADD_DRIVE_OPTS_FORMAT,
                                            drive.backing.empty() ? "raw" : "qcow2", GUESTFS_ADD_DRIVE_OPTS_READONLY,
                                            drive.writable ? 0 : 1, GUESTFS_ADD_DRIVE_OPTS_CACHEMODE,
                                            drive.writable ? "unsafe" : "writeback", -1);
      }
      if (added != 0) {
        const std::string message = last_error(g);
        libguestfs().close(g);
        throw Error(drive.name + ": cannot add the image to the libguestfs appliance: " + message);
      }
    }
    const auto start = std::chrono::steady_clock::now();
    bool timed_out = false;
    if (launch_watched(g, tcg ? 0 : kvm_deadline_seconds(), timed_out) == 0 && libguestfs().umask(g, 0) != -1) {
      launch_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      handle_ = g;
      if (const int qemu = libguestfs().get_pid(g); qemu > 0) qemu_ = ChildRegistration(qemu, true);
      // KVM failed and TCG works: that is this machine's KVM, not a missing appliance.
      if (attempt == 1) remember_kvm_failure();
      return;
    }
    const std::string message =
        timed_out ? "the KVM launch did not finish within " + std::to_string(kvm_deadline_seconds()) + " s" : last_error(g);
    libguestfs().close(g);
    if (tcg) {
      throw Error("cannot launch the libguestfs appliance for " + what + ": " +
                      (first_error.empty() ? message : first_error + "; with TCG: " + message) +
                      missing_appliance_parts() + "; install what is missing with scripts/setup.sh",
                  ErrorCode::Unsupported);
    }
    first_error = message;
    g_use_tcg = true;
    // Said when it happens (it cost a KVM timeout); later runs start with TCG without a word.
    note_tcg("the libguestfs appliance did not start with KVM (" + message + "); retrying with TCG (slower)", true);
  }
}

// Once per session (a relaunch, e.g. the TCG retry or a use after shutdown(), keeps what was written).
void GuestfsSession::create_overlays(guestfs_h* g) {
  for (const Drive& drive : drives_) {
    if (drive.backing.empty()) continue;
    if (libguestfs().disk_create(g, drive.path.c_str(), "qcow2", -1, GUESTFS_DISK_CREATE_BACKINGFILE, drive.backing.c_str(),
                                 GUESTFS_DISK_CREATE_BACKINGFORMAT, "raw", -1) != 0) {
      const std::string message = last_error(g);
      libguestfs().close(g);
      throw Error(drive.name + ": cannot create the libguestfs overlay over it: " + message);
    }
  }
  overlays_created_ = true;
}

std::string GuestfsSession::mountpoint(std::size_t drive, int number, const std::string& fs_type,
                                       const std::string& name, bool for_writing) {
  if (drive >= drives_.size()) throw Error(name + ": no drive " + std::to_string(drive) + " in the appliance");
  const bool writable = for_writing && (drives_[drive].writable || drives_[drive].scratch_writes);
  guestfs_h* g = handle();
  const std::string device = partition_device(drive, number);
  const std::string point = device.substr(4);  // "/sda1"
  bool created = false;
  for (auto it = mounted_.begin(); it != mounted_.end(); ++it) {
    if (it->device != device) continue;
    if (it->writable || !writable) return point;
    // Read-only so far and now written: remount read-write.
    if (libguestfs().umount(g, point.c_str()) != 0) {
      throw Error(name + ": cannot unmount " + device + " in the libguestfs appliance: " + last_error(g));
    }
    mounted_.erase(it);
    created = true;
    break;
  }
  if (!created && libguestfs().mkmountpoint(g, point.c_str()) != 0) {
    throw Error(name + ": cannot create mount point " + point + " in the libguestfs appliance: " + last_error(g));
  }
  std::string options = writable ? "rw" : "ro";
  // mender-convert writes rootfs A and B from one filesystem: both carry the same xfs UUID, and so
  // do batch copies. xfs refuses a second mount of a UUID unless told not to check.
  if (fs_type == "xfs") options += ",nouuid";
  // FAT keeps no owners or permissions: show files 0644 and directories 0755 (root:root).
  if (fs_type == "vfat" || fs_type == "msdos") options += ",uid=0,gid=0,fmask=0133,dmask=0022";
  if (libguestfs().mount_options(g, options.c_str(), device.c_str(), point.c_str()) != 0) {
    throw Error(name + ": cannot mount " + device + " (" + fs_type + ") in the libguestfs appliance: " + last_error(g),
                ErrorCode::Corrupt);
  }
  mounted_.push_back(Mounted{device, writable});
  return point;
}

void GuestfsSession::shutdown() {
  if (handle_ == nullptr) return;
  guestfs_h* g = handle_;
  const std::string what = drives_.size() == 1 ? drives_.front().name : std::to_string(drives_.size()) + " images";
  // sync, then unmount (the filesystems are clean), then let qemu exit and flush its writes.
  const auto fail = [&] {
    const std::string message = last_error(g);
    close();
    return Error(what + ": cannot write the changes out of the libguestfs appliance: " + message);
  };
  if (libguestfs().sync(g) != 0 || libguestfs().umount_all(g) != 0) throw fail();
  qemu_.release();  // guestfs_shutdown reaps it
  if (libguestfs().shutdown(g) != 0) throw fail();
  close();
}

}  // namespace imprint
