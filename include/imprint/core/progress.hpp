// Feedback while imprint works, one model for every command:
// - ProgressMeter: the numbers of a long job (done of total, rate, ETA), no output. The decompression
//   line, stamp's and flash's progress lines, batch's device count and the station's slot views all
//   count with it.
// - ProgressLine: one line on stderr, redrawn in place, only when stderr is a terminal (logs and
//   pipes get no carriage returns) and never with --quiet.
// - Verbosity (--quiet, --verbose; a process-wide setting the command line sets once) and
//   verbose_note(): what each step does, on stderr, with --verbose only.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace imprint {

enum class Verbosity { Quiet, Normal, Verbose };
void set_verbosity(Verbosity verbosity);
Verbosity verbosity();
// "imprint: MESSAGE" on stderr (control characters escaped) with --verbose; nothing otherwise.
void verbose_note(const std::string& message);

// Counts units (bytes, devices) of one job against a total that may be unknown (0).
class ProgressMeter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ProgressMeter(std::uint64_t total = 0, Clock::time_point start = Clock::now()) : total_(total), start_(start) {}
  // Starts over (a new phase): nothing done, the clock from now.
  void restart(std::uint64_t total, Clock::time_point start = Clock::now()) { *this = ProgressMeter(total, start); }
  void set_total(std::uint64_t total) { total_ = total; }  // the clock runs on
  void set(std::uint64_t done) { done_ = done; }
  void add(std::uint64_t units) { done_ += units; }

  std::uint64_t done() const noexcept { return done_; }
  std::uint64_t total() const noexcept { return total_; }
  double seconds(Clock::time_point now = Clock::now()) const;
  // Units per second; 0 before the first millisecond.
  double rate(Clock::time_point now = Clock::now()) const;
  // done of total, 0 to 1; nullopt when the total is unknown.
  std::optional<double> fraction() const;
  // Seconds left at the rate so far; nullopt when the total or the rate is unknown.
  std::optional<double> eta(Clock::time_point now = Clock::now()) const;

 private:
  std::uint64_t done_ = 0, total_ = 0;
  Clock::time_point start_;
};

// "812.0 MiB, 245.3 MiB/s" for bytes done in seconds (the rate left out below 1 ms).
std::string format_byte_rate(std::uint64_t bytes, double seconds);
// "0:42", "12:05", "1:02:03".
std::string format_duration(double seconds);

// Whether ProgressLine may draw at all (default yes): a caller that owns the terminal with a view
// of its own (the station's slot lines) turns the single-job lines off for the rest of the process.
void set_progress_lines(bool allowed);

// What a progress line counts: bytes ("812.0 of 4096.0 MiB, 245.3 MiB/s, ETA 0:13") or items
// ("12/20 devices, 3.4/s, ETA 0:03"; `unit` names them).
enum class ProgressUnit { Bytes, Items };

// One line redrawn in place, at most every 200 ms:
//   imprint: decompressing golden.img.zst: 812.0 MiB, 245.3 MiB/s
//   imprint: writing /dev/sdb: 812.0 of 4096.0 MiB (19%), 245.3 MiB/s, ETA 0:13
// finish() replaces it by a summary that stays:
//   imprint: decompressed golden.img.zst: 1024.0 MiB in 4.2 s, 243.8 MiB/s
// When the job fails before finish(), the destructor erases the line so the error starts clean.
class ProgressLine {
 public:
  // `doing` and `done` are the verbs ("decompressing", "decompressed"); `what` names the input
  // (escaped before it reaches the terminal). Draws on stderr when it is a terminal, not --quiet,
  // and progress lines are allowed.
  ProgressLine(std::string doing, std::string done, const std::string& what, ProgressUnit unit = ProgressUnit::Bytes);
  // Draws on `fd` (a terminal or not; -1: nowhere) instead of deciding by stderr; for tests and reuse.
  ProgressLine(std::string doing, std::string done, const std::string& what, ProgressUnit unit, int fd);
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  bool active() const noexcept { return fd_ >= 0; }
  // Starts a phase over with its own verbs and total (flash: writing, then verifying).
  void restart(std::string doing, std::string done, std::uint64_t total);
  void set_total(std::uint64_t total) { meter_.set_total(total); }
  void update(std::uint64_t done);  // units done so far
  void finish(std::uint64_t done);  // the summary line; nothing more is drawn
  // Erases a drawn line without a summary (the job's own result line follows).
  void clear();
  // items unit only: the plural noun ("devices").
  void set_item_name(std::string name) { items_ = std::move(name); }

 private:
  std::string numbers(bool final) const;
  void draw(const std::string& line, bool final);

  std::string doing_, done_, what_, items_ = "items";
  ProgressUnit unit_;
  int fd_;  // -1: not drawing
  ProgressMeter meter_;
  ProgressMeter::Clock::time_point last_;
  bool drawn_ = false, finished_ = false;
};

}  // namespace imprint
