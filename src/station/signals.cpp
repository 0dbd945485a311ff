// The station's signals: a handler that only writes the signal's number to a pipe (all a handler
// may do), and a thread that reads it and stops, then abandons, the station.
#include "imprint/station/signals.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <iterator>

#include "imprint/core/error.hpp"
#include "imprint/core/lifetime.hpp"
#include "imprint/station/station.hpp"

namespace imprint {

namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
// One station per process: the handler's pipe and the handlers it replaced.
int g_pipe[2] = {-1, -1};
std::atomic<int> g_first{0};
struct sigaction g_previous[3];

void on_signal(int signal_number) {
  const int saved = errno;
  int expected = 0;
  g_first.compare_exchange_strong(expected, signal_number);
  const char byte = static_cast<char>(signal_number);
  [[maybe_unused]] const ssize_t ignored = ::write(g_pipe[1], &byte, 1);
  errno = saved;
}

}  // namespace

StationSignals::StationSignals(Station& station, std::chrono::seconds timeout) : station_(station), timeout_(timeout) {
  if (::pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) throw_errno("cannot create the station's signal pipe");
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    struct sigaction action {};
    action.sa_handler = on_signal;
    ::sigemptyset(&action.sa_mask);
    ::sigaction(kSignals[i], &action, &g_previous[i]);
  }
  thread_ = std::thread([this] { watch(); });
}

StationSignals::~StationSignals() {
  for (std::size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &g_previous[i], nullptr);
  const char quit = 0;  // 0: the station is done, the thread ends
  [[maybe_unused]] const ssize_t ignored = ::write(g_pipe[1], &quit, 1);
  thread_.join();
  ::close(g_pipe[0]);
  ::close(g_pipe[1]);
  g_pipe[0] = g_pipe[1] = -1;
}

int StationSignals::received() const noexcept { return g_first.load(); }

void StationSignals::watch() {
  int first = 0;
  auto deadline = std::chrono::steady_clock::time_point::max();
  for (;;) {
    int wait = -1;
    if (first != 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      wait = static_cast<int>(std::max<long long>(left, 0));
    }
    pollfd descriptor{g_pipe[0], POLLIN, 0};
    const int ready = ::poll(&descriptor, 1, wait);
    char byte = 0;
    if (ready > 0 && ::read(g_pipe[0], &byte, 1) != 1) continue;
    if (ready > 0 && byte == 0) return;
    if (ready > 0 && first == 0) {  // the first: finish what is in flight
      first = byte;
      deadline = std::chrono::steady_clock::now() + timeout_;
      station_.stop();
      continue;
    }
    if (ready < 0) continue;  // EINTR
    // A second signal, or the timeout: give up on the cards in flight.
    station_.abandon();
    die_by_signal(first);
  }
}

}  // namespace imprint
