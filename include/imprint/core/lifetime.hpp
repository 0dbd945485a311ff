// Helper processes (qemu-nbd, qemu, the identity sandbox) and temp directories that must not outlive
// imprint, however it ends:
// - normal return or exception: their owners' destructors stop and remove them;
// - SIGTERM, SIGINT, SIGHUP: a handler (installed once, on the first registration; a signal the
//   caller ignores stays ignored) SIGKILLs every registered child, removes every registered
//   directory, then re-raises the signal with its default action;
// - SIGKILL or a crash: children spawned with spawn_helper() get SIGKILL from the kernel
//   (PR_SET_PDEATHSIG), and a guardian process (forked on the first guarded registration; it holds
//   none of imprint's files) sees its socket from imprint close, SIGKILLs the guarded children and
//   removes the guarded directories.
// PR_SET_PDEATHSIG fires when the *thread* that forked exits: spawn from the thread that owns the
// helper and outlives it (imprint's sessions and sandboxes live in one thread each).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

namespace imprint {

// While alive, `pid` is SIGKILLed when imprint is stopped by a signal (guarded: also when imprint is
// killed with SIGKILL). Release it (or destroy it) before reaping the child, so that a reused pid is
// never killed.
class ChildRegistration {
 public:
  ChildRegistration() = default;
  explicit ChildRegistration(pid_t pid, bool guarded = false);
  ~ChildRegistration() { release(); }
  ChildRegistration(ChildRegistration&& other) noexcept;
  ChildRegistration& operator=(ChildRegistration&& other) noexcept;
  ChildRegistration(const ChildRegistration&) = delete;
  ChildRegistration& operator=(const ChildRegistration&) = delete;
  void release() noexcept;
  pid_t pid() const noexcept { return pid_; }

 private:
  pid_t pid_ = 0;
  int slot_ = -1;
  bool guarded_ = false;
};

// While alive, `path` (a file, or a directory with its contents) is removed when imprint is stopped
// by SIGTERM/SIGINT/SIGHUP and, by the guardian, when imprint ends any other way. release() (or
// the destructor) forgets it without removing it: call it once the path is meant to stay (renamed
// into place) or has been removed. Up to 32 paths at a time are known to the signal handler.
class PathRegistration {
 public:
  explicit PathRegistration(std::string path);
  ~PathRegistration() { release(); }
  PathRegistration(const PathRegistration&) = delete;
  PathRegistration& operator=(const PathRegistration&) = delete;
  void release() noexcept;

 private:
  std::string path_;
  int slot_ = -1;
};

// A fresh private directory ($TMPDIR or /tmp)/<prefix>XXXXXX, mode 0700, removed with its contents
// at destruction, on SIGTERM/SIGINT/SIGHUP and (by the guardian) after SIGKILL.
class PrivateTempDir {
 public:
  explicit PrivateTempDir(const std::string& prefix);
  ~PrivateTempDir();
  PrivateTempDir(const PrivateTempDir&) = delete;
  PrivateTempDir& operator=(const PrivateTempDir&) = delete;
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  PathRegistration registration_;
};

// While alive, the signal handler (SIGTERM/SIGINT/SIGHUP) writes this note to stderr before imprint
// dies: `before` DONE `between` LEFT `after`, with the two counts as set() last left them (a
// batch: how many devices are finished and kept, how many the next run redoes). One note at a time;
// the texts are fixed at construction so that the handler only reads and formats two numbers.
class InterruptNote {
 public:
  InterruptNote(std::string before, std::string between, std::string after);
  ~InterruptNote();
  InterruptNote(const InterruptNote&) = delete;
  InterruptNote& operator=(const InterruptNote&) = delete;
  void set(std::size_t done, std::size_t left) noexcept;

 private:
  std::string before_, between_, after_;
};

// posix_spawnp-like: runs argv[0] from PATH with stdin /dev/null, stdout and stderr inherited, and
// PR_SET_PDEATHSIG(SIGKILL). Throws Error naming argv[0] when it cannot be executed. stdout_fd and
// stderr_fd (>= 0) replace its standard output and error (e.g. memfds whose text the caller reads).
pid_t spawn_helper(const std::vector<std::string>& argv, int stdout_fd = -1, int stderr_fd = -1);

// Ends imprint as SIGTERM/SIGINT/SIGHUP would when nothing else handles them: the registered children
// SIGKILLed, the registered paths removed, then the signal re-raised with its default action. For a
// caller that handles these signals itself (the station finishes its cards first) and then gives up.
[[noreturn]] void die_by_signal(int signal_number) noexcept;

// Removes a directory tree with system calls only (usable in a signal handler); true if it is gone.
bool remove_tree_now(const char* path) noexcept;

}  // namespace imprint
