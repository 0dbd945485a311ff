// Children and temp directories tied to imprint's lifetime (see lifetime.hpp).
//
// The registry is fixed-size arrays of atomics, so the signal handler reads it without locks or
// allocation; registering takes a free slot by compare-and-swap. Guarded entries are also sent to
// the guardian, a forked process that reads fixed-size records from a socket and acts when the
// socket ends, which happens only when imprint (and every child that did not exec) is gone.
#include "imprint/core/lifetime.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"

namespace imprint {

namespace {

constexpr int kPidSlots = 64;
constexpr int kDirSlots = 32;
constexpr std::size_t kPathBytes = 1024;

std::atomic<pid_t> g_pids[kPidSlots];
struct DirSlot {
  std::atomic<int> state{0};  // 0 free, 1 being written, 2 registered
  char path[kPathBytes];
};
DirSlot g_dirs[kDirSlots];

// --- removal with system calls only (signal handler, guardian) ---

bool remove_at(int parent, const char* name, int depth) noexcept {
  if (::unlinkat(parent, name, 0) == 0 || errno == ENOENT) return true;
  if (errno != EISDIR && errno != EPERM) return false;
  const int fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0 && depth < 16) {
    char buffer[1024];
    for (;;) {
      const ssize_t got = ::getdents64(fd, buffer, sizeof buffer);
      if (got <= 0) break;
      for (ssize_t at = 0; at < got;) {
        const auto* entry = reinterpret_cast<const dirent64*>(buffer + at);
        at += entry->d_reclen;
        if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) remove_at(fd, entry->d_name, depth + 1);
      }
    }
  }
  if (fd >= 0) ::close(fd);
  return ::unlinkat(parent, name, AT_REMOVEDIR) == 0 || errno == ENOENT;
}

// --- the guardian ---

struct Message {
  char op;  // 'p' / 'P': add / drop a pid; 'd' / 'D': add / drop a directory
  pid_t pid;
  char path[kPathBytes];
};

std::mutex g_guardian_mutex;
int g_guardian_fd = -1;  // imprint's end; -1 before the guardian starts (or when it could not)

[[noreturn]] void guardian_main(int read_fd) {
  // It must outlive imprint: a Ctrl-C or a hangup reaches the whole process group.
  for (const int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(signal_number, SIG_IGN);
  ::prctl(PR_SET_NAME, "imprint-guard");
  // Hold nothing of imprint's: a pipe reader waiting for imprint's stdout must not wait for us.
  const int null_fd = ::open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) ::dup2(null_fd, fd);
  ::dup2(read_fd, 3);
  ::close_range(4, ~0U, 0);
  static pid_t pids[256];
  static char dirs[kDirSlots * 2][kPathBytes];  // more than imprint keeps at once
  static Message message;
  for (;;) {
    const ssize_t got = ::read(3, &message, sizeof message);
    if (got < 0 && errno == EINTR) continue;
    if (got != sizeof message) break;  // end of file: imprint is gone
    message.path[kPathBytes - 1] = '\0';
    if (message.op == 'p' || message.op == 'P') {
      for (pid_t& pid : pids) {
        if (message.op == 'p' && pid == 0) {
          pid = message.pid;
          break;
        }
        if (message.op == 'P' && pid == message.pid) pid = 0;
      }
    } else {
      for (char* dir : dirs) {
        if (message.op == 'd' && dir[0] == '\0') {
          std::memcpy(dir, message.path, kPathBytes);
          break;
        }
        if (message.op == 'D' && std::strcmp(dir, message.path) == 0) dir[0] = '\0';
      }
    }
  }
  for (const pid_t pid : pids) {
    if (pid > 0) ::kill(pid, SIGKILL);
  }
  // A child killed a moment ago may still be dying: give a directory a few tries.
  for (const char* dir : dirs) {
    for (int tries = 0; dir[0] != '\0' && !remove_at(AT_FDCWD, dir, 0) && tries < 20; ++tries) {
      const timespec pause{0, 50'000'000};
      ::nanosleep(&pause, nullptr);
    }
  }
  ::_exit(0);
}

// Starts the guardian once; false when it cannot (the signal handlers still work). A seqpacket
// socket rather than a pipe: records stay whole, and send() with MSG_NOSIGNAL to a guardian killed
// by someone is an error, not a SIGPIPE for imprint.
bool guardian_started() {
  if (g_guardian_fd >= 0) return true;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return false;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[1]);
    guardian_main(fds[0]);
  }
  ::close(fds[0]);
  if (pid < 0) {
    ::close(fds[1]);
    return false;
  }
  g_guardian_fd = fds[1];
  return true;
}

void tell_guardian(char op, pid_t pid, const char* path) {
  const std::lock_guard lock(g_guardian_mutex);
  if (!guardian_started()) return;
  Message message{};
  message.op = op;
  message.pid = pid;
  if (path != nullptr) std::strncpy(message.path, path, kPathBytes - 1);
  while (::send(g_guardian_fd, &message, sizeof message, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

// --- the interrupt note (InterruptNote), read by the signal handler ---

std::atomic<const std::string*> g_note[3] = {};  // before, between, after; all set or none
std::atomic<std::size_t> g_note_done{0}, g_note_left{0};

void write_all_now(const char* data, std::size_t size) noexcept {
  while (size > 0) {
    const ssize_t wrote = ::write(STDERR_FILENO, data, size);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return;
    data += wrote;
    size -= static_cast<std::size_t>(wrote);
  }
}

void write_number_now(std::size_t value) noexcept {
  char digits[24];
  std::size_t at = sizeof digits;
  do {
    digits[--at] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0 && at > 0);
  write_all_now(digits + at, sizeof digits - at);
}

void write_note_now() noexcept {
  const std::string* parts[3] = {g_note[0].load(), g_note[1].load(), g_note[2].load()};
  if (parts[0] == nullptr || parts[1] == nullptr || parts[2] == nullptr) return;
  write_all_now(parts[0]->data(), parts[0]->size());
  write_number_now(g_note_done.load());
  write_all_now(parts[1]->data(), parts[1]->size());
  write_number_now(g_note_left.load());
  write_all_now(parts[2]->data(), parts[2]->size());
}

// --- the signal handlers ---

void clean_up_now() noexcept {
  for (auto& slot : g_pids) {
    const pid_t pid = slot.load();
    if (pid > 0) ::kill(pid, SIGKILL);
  }
  for (auto& slot : g_dirs) {
    if (slot.state.load() == 2) remove_at(AT_FDCWD, slot.path, 0);
  }
}

void reraise(int signal_number) noexcept {
  // Die of the same signal, so the caller sees what happened (exit status 128 + N in a shell).
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  ::sigaction(signal_number, &action, nullptr);
  sigset_t set;
  ::sigemptyset(&set);
  ::sigaddset(&set, signal_number);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(signal_number);
}

void on_signal(int signal_number) {
  const int saved = errno;
  write_note_now();
  clean_up_now();
  reraise(signal_number);
  errno = saved;
}

void install_handlers_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (const int signal_number : {SIGTERM, SIGINT, SIGHUP}) {
      struct sigaction old {};
      if (::sigaction(signal_number, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) continue;  // ignored or handled: keep
      struct sigaction action {};
      action.sa_handler = on_signal;
      ::sigfillset(&action.sa_mask);  // one cleanup at a time
      ::sigaction(signal_number, &action, nullptr);
    }
  });
}

int take_dir_slot(const std::string& path) {
  if (path.size() >= kPathBytes) return -1;
  for (int i = 0; i < kDirSlots; ++i) {
    int expected = 0;
    if (!g_dirs[i].state.compare_exchange_strong(expected, 1)) continue;
    std::memcpy(g_dirs[i].path, path.c_str(), path.size() + 1);
    g_dirs[i].state.store(2);
    return i;
  }
  return -1;
}

// PATH lookup in the parent: after fork only system calls are safe.
std::string find_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string directories = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= directories.size()) {
    const std::size_t end = std::min(directories.find(':', start), directories.size());
    const std::string candidate = (end > start ? directories.substr(start, end - start) : ".") + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  throw Error("cannot run " + name + ": not found in PATH", ErrorCode::Unsupported);
}

}  // namespace

ChildRegistration::ChildRegistration(pid_t pid, bool guarded) : pid_(pid), guarded_(guarded) {
  install_handlers_once();
  for (int i = 0; i < kPidSlots; ++i) {
    pid_t expected = 0;
    if (g_pids[i].compare_exchange_strong(expected, pid)) {
      slot_ = i;
      break;
    }
  }
  if (guarded_) tell_guardian('p', pid, nullptr);
}

ChildRegistration::ChildRegistration(ChildRegistration&& other) noexcept
    : pid_(other.pid_), slot_(other.slot_), guarded_(other.guarded_) {
  other.pid_ = 0;
  other.slot_ = -1;
}

ChildRegistration& ChildRegistration::operator=(ChildRegistration&& other) noexcept {
  if (this != &other) {
    release();
    pid_ = other.pid_;
    slot_ = other.slot_;
    guarded_ = other.guarded_;
    other.pid_ = 0;
    other.slot_ = -1;
  }
  return *this;
}

void ChildRegistration::release() noexcept {
  if (pid_ <= 0) return;
  if (slot_ >= 0) g_pids[slot_].store(0);
  if (guarded_) {
    try {
      tell_guardian('P', pid_, nullptr);
    } catch (...) {  // std::mutex::lock: nothing to do about it here
    }
  }
  pid_ = 0;
  slot_ = -1;
}

PathRegistration::PathRegistration(std::string path) : path_(std::move(path)) {
  install_handlers_once();
  slot_ = take_dir_slot(path_);
  tell_guardian('d', 0, path_.c_str());
}

void PathRegistration::release() noexcept {
  if (path_.empty()) return;
  if (slot_ >= 0) g_dirs[slot_].state.store(0);
  try {
    tell_guardian('D', 0, path_.c_str());
  } catch (...) {  // std::mutex::lock: nothing to do about it here
  }
  slot_ = -1;
  path_.clear();
}

namespace {

std::string make_temp_dir(const std::string& prefix) {
  std::string pattern = temp_directory() + "/" + prefix + "XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno("cannot create a temporary directory " + pattern);
  return pattern;
}

}  // namespace

PrivateTempDir::PrivateTempDir(const std::string& prefix) : path_(make_temp_dir(prefix)), registration_(path_) {}

PrivateTempDir::~PrivateTempDir() {
  registration_.release();
  remove_tree_now(path_.c_str());
}

pid_t spawn_helper(const std::vector<std::string>& argv, int stdout_fd, int stderr_fd) {
  if (argv.empty()) throw Error("spawn_helper: no program", ErrorCode::Invalid);
  const std::string program = find_executable(argv.front());
  std::vector<char*> pointers;
  for (const std::string& argument : argv) pointers.push_back(const_cast<char*>(argument.c_str()));
  pointers.push_back(nullptr);
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) throw_errno("cannot start " + argv.front());
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(report[0]);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // imprint died before the line above
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    if (stdout_fd >= 0) ::dup2(stdout_fd, 1);
    if (stderr_fd >= 0) ::dup2(stderr_fd, 2);
    ::execv(program.c_str(), pointers.data());
    const int error = errno;
    [[maybe_unused]] const ssize_t ignored = ::write(report[1], &error, sizeof error);
    ::_exit(127);
  }
  ::close(report[1]);
  if (pid < 0) {
    ::close(report[0]);
    throw_errno("cannot start " + argv.front());
  }
  int error = 0;
  ssize_t got = 0;
  while ((got = ::read(report[0], &error, sizeof error)) < 0 && errno == EINTR) {
  }
  ::close(report[0]);
  if (got == sizeof error) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw_errno("cannot start " + argv.front(), error);
  }
  return pid;
}

bool remove_tree_now(const char* path) noexcept { return remove_at(AT_FDCWD, path, 0); }

InterruptNote::InterruptNote(std::string before, std::string between, std::string after)
    : before_(std::move(before)), between_(std::move(between)), after_(std::move(after)) {
  install_handlers_once();
  g_note[0].store(&before_);
  g_note[1].store(&between_);
  g_note[2].store(&after_);
}

InterruptNote::~InterruptNote() {
  for (auto& part : g_note) part.store(nullptr);
}

void InterruptNote::set(std::size_t done, std::size_t left) noexcept {
  g_note_done.store(done);
  g_note_left.store(left);
}

void die_by_signal(int signal_number) noexcept {
  write_note_now();
  clean_up_now();
  reraise(signal_number);
  ::_exit(128 + signal_number);  // a signal whose default action does not end the process
}

}  // namespace imprint
