// The station's TTY view: one live line per slot (slot, device id, phase, progress bar, MiB/s,
// result in colour) and a running total, redrawn in place with ANSI cursor movement when the output
// is a terminal; otherwise a plain log, one line per event (a slot's new phase, a finished card).
#pragma once

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "imprint/station/status.hpp"

namespace imprint {

// The live view's lines: one per slot, then the totals. No line is wider than `width` columns
// (colour sequences take none); untrusted text (device ids, results) is escaped.
std::vector<std::string> render_status_lines(const StationStatus& status, std::size_t width, bool colour);

// The plain log's lines for what changed from `before` to `after`: slots added or removed, a slot's
// new device or phase, each finished card's result (counted by flashed + failed) and then the totals.
std::vector<std::string> status_events(const StationStatus& before, const StationStatus& after);

// Draws a station's status every `interval` on `fd` (stderr by default) from its own thread. Live
// (redrawn in place, colour unless NO_COLOR is set) when fd is a terminal whose TERM is not "dumb",
// else the plain log; Mode forces one (tests). Usage: construct with the station's snapshot
// function, start(), route messages through print(), stop() (also on destruction) draws the last
// state and leaves it on the screen.
class StatusTicker {
 public:
  enum class Mode { Auto, Live, Plain };
  explicit StatusTicker(std::function<StationStatus()> snapshot, int fd = STDERR_FILENO, Mode mode = Mode::Auto,
                        std::chrono::milliseconds interval = std::chrono::milliseconds(250));
  ~StatusTicker();
  StatusTicker(const StatusTicker&) = delete;
  StatusTicker& operator=(const StatusTicker&) = delete;

  void start();
  void stop();
  // A message (a warning, a label printed) on a line of its own: above the live lines, which are
  // redrawn below it, or as a log line. Written as given: escape untrusted parts first.
  void print(const std::string& line);
  bool live() const noexcept { return live_; }

 private:
  void run();
  void tick();  // with mutex_ held
  void draw_live(const StationStatus& status);
  void write(const std::string& bytes);
  std::size_t width() const;

  std::function<StationStatus()> snapshot_;
  int fd_;
  bool live_;
  bool colour_;
  std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
  std::size_t drawn_ = 0;      // live lines on the screen now
  StationStatus previous_;     // the plain log's last snapshot
  StationStatus last_;         // the live view's last snapshot
};

}  // namespace imprint
