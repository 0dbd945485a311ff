// Named temporary files removed when the process dies of SIGINT, SIGTERM or SIGHUP, and partials
// that earlier, killed runs left behind. Only filesystems without O_TMPFILE (vfat, exFAT, NFS,
// CIFS, FUSE) get named temporaries; an unnamed one vanishes by itself.
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>

#include "imprint/core/fileio.hpp"

namespace imprint {

namespace {

// The handler may only read plain memory: a fixed table of paths, each published by its state.
enum SlotState : int { kFree = 0, kWriting = 1, kReady = 2 };
struct Slot {
  std::atomic<int> state{kFree};
  char path[PATH_MAX];
};
constexpr std::size_t kSlots = 128;  // more pending outputs than batch -j ever runs
std::array<Slot, kSlots> slots;

constexpr std::array<int, 3> kSignals{SIGINT, SIGTERM, SIGHUP};
std::array<struct sigaction, kSignals.size()> previous{};

void remove_registered() {
  for (Slot& slot : slots) {
    if (slot.state.load(std::memory_order_acquire) == kReady) ::unlink(slot.path);
  }
}

// Removes the registered files, then hands the signal on: to the handler that was installed before
// (another module's, e.g. one that stops child processes), or by re-raising it with the default
// action, so the exit status still says which signal ended the process.
void on_signal(int signal_number, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  remove_registered();
  for (std::size_t i = 0; i < kSignals.size(); ++i) {
    if (kSignals[i] != signal_number) continue;
    const struct sigaction& before = previous[i];
    if ((before.sa_flags & SA_SIGINFO) != 0 && before.sa_sigaction != nullptr) {
      before.sa_sigaction(signal_number, info, context);
    } else if (before.sa_handler != SIG_DFL && before.sa_handler != SIG_IGN && before.sa_handler != nullptr) {
      before.sa_handler(signal_number);
    } else {
      ::sigaction(signal_number, &before, nullptr);
      ::raise(signal_number);  // blocked while this handler runs; delivered when it returns
    }
  }
  errno = saved_errno;
}

void install_handlers() {
  for (std::size_t i = 0; i < kSignals.size(); ++i) {
    struct sigaction current {};
    ::sigaction(kSignals[i], nullptr, &current);
    if (current.sa_handler == SIG_IGN) continue;  // nohup: the signal cannot end us, nothing to clean
    struct sigaction action {};
    action.sa_sigaction = on_signal;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    ::sigemptyset(&action.sa_mask);
    for (int other : kSignals) ::sigaddset(&action.sa_mask, other);  // one cleanup at a time
    previous[i] = current;
    ::sigaction(kSignals[i], &action, nullptr);
  }
}

// ".NAME.imprint-PID-" -> PID, for a partial named by partial_prefix(); 0 when it is not one.
pid_t partial_owner(std::string_view entry, std::string_view prefix) {
  if (entry.substr(0, prefix.size()) != prefix) return 0;
  entry.remove_prefix(prefix.size());
  pid_t pid = 0;
  const auto [end, error] = std::from_chars(entry.data(), entry.data() + entry.size(), pid);
  if (error != std::errc() || pid <= 0 || end == entry.data() + entry.size() || *end != '-') return 0;
  const std::string_view suffix(end + 1, entry.data() + entry.size() - (end + 1));
  if (suffix.size() != 8) return 0;
  for (char c : suffix) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return 0;
  }
  return pid;
}

}  // namespace

int remove_on_signal(const std::string& path) {
  static std::once_flag installed;
  std::call_once(installed, install_handlers);
  if (path.size() >= PATH_MAX) return -1;
  for (std::size_t i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (!slots[i].state.compare_exchange_strong(expected, kWriting, std::memory_order_acq_rel)) continue;
    std::memcpy(slots[i].path, path.c_str(), path.size() + 1);
    slots[i].state.store(kReady, std::memory_order_release);
    return static_cast<int>(i);
  }
  return -1;  // full: the file survives a signal, and the next run's sweep removes it
}

void forget_on_signal(int slot) {
  if (slot >= 0 && static_cast<std::size_t>(slot) < kSlots) slots[slot].state.store(kFree, std::memory_order_release);
}

std::string partial_prefix(const std::string& name) { return "." + name + ".imprint-"; }

void remove_stale_partials(const std::string& directory, const std::string& name) {
  DIR* listing = ::opendir(directory.c_str());
  if (listing == nullptr) return;  // creating the output will report what is wrong with the directory
  const std::string prefix = partial_prefix(name);
  while (const dirent* entry = ::readdir(listing)) {
    const pid_t owner = partial_owner(entry->d_name, prefix);
    // Only a dead owner's file: a live one is another run writing that output right now.
    if (owner == 0 || owner == ::getpid() || ::kill(owner, 0) == 0 || errno != ESRCH) continue;
    ::unlinkat(::dirfd(listing), entry->d_name, 0);
  }
  ::closedir(listing);
}

}  // namespace imprint
