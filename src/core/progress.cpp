// Progress and verbosity (see progress.hpp).
#include "imprint/core/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <utility>

#include "imprint/core/bytes.hpp"

namespace imprint {

namespace {

constexpr auto kRedraw = std::chrono::milliseconds(200);
constexpr double kMiB = 1024.0 * 1024.0;

std::atomic<Verbosity> g_verbosity{Verbosity::Normal};
std::atomic<bool> g_progress_lines{true};

std::string fixed1(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", value);
  return text;
}

}  // namespace

void set_verbosity(Verbosity verbosity) { g_verbosity.store(verbosity); }
Verbosity verbosity() { return g_verbosity.load(); }
void set_progress_lines(bool allowed) { g_progress_lines.store(allowed); }

void verbose_note(const std::string& message) {
  if (verbosity() != Verbosity::Verbose) return;
  // On a terminal a progress line may be drawn: erase it first (its next update redraws it below).
  const std::string line =
      std::string(::isatty(STDERR_FILENO) == 1 ? "\r\x1b[K" : "") + "imprint: " + escape_control(message) + "\n";
  [[maybe_unused]] const ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
}

double ProgressMeter::seconds(Clock::time_point now) const { return std::chrono::duration<double>(now - start_).count(); }

double ProgressMeter::rate(Clock::time_point now) const {
  const double elapsed = seconds(now);
  return elapsed >= 0.001 ? static_cast<double>(done_) / elapsed : 0;
}

std::optional<double> ProgressMeter::fraction() const {
  if (total_ == 0) return std::nullopt;
  return std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
}

std::optional<double> ProgressMeter::eta(Clock::time_point now) const {
  const double per_second = rate(now);
  if (total_ == 0 || per_second <= 0) return std::nullopt;
  return done_ >= total_ ? 0 : static_cast<double>(total_ - done_) / per_second;
}

std::string format_byte_rate(std::uint64_t bytes, double seconds) {
  const double mib = static_cast<double>(bytes) / kMiB;
  std::string text = fixed1(mib) + " MiB";
  if (seconds >= 0.001) text += ", " + fixed1(mib / seconds) + " MiB/s";
  return text;
}

std::string format_duration(double seconds) {
  const auto whole = static_cast<long long>(seconds + 0.5);
  char text[48];
  if (whole >= 3600) {
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", whole / 3600, whole / 60 % 60, whole % 60);
  } else {
    std::snprintf(text, sizeof text, "%lld:%02lld", whole / 60, whole % 60);
  }
  return text;
}

ProgressLine::ProgressLine(std::string doing, std::string done, const std::string& what, ProgressUnit unit)
    : ProgressLine(
          std::move(doing), std::move(done), what, unit,
          verbosity() != Verbosity::Quiet && g_progress_lines.load() && ::isatty(STDERR_FILENO) == 1 ? STDERR_FILENO : -1) {}

ProgressLine::ProgressLine(std::string doing, std::string done, const std::string& what, ProgressUnit unit, int fd)
    : doing_(std::move(doing)),
      done_(std::move(done)),
      what_(escape_control(what)),
      unit_(unit),
      fd_(fd),
      last_(ProgressMeter::Clock::now()) {}

ProgressLine::~ProgressLine() {
  // A failed job: its half-drawn line is erased, so the error prints on a clean line.
  if (!finished_) clear();
}

void ProgressLine::restart(std::string doing, std::string done, std::uint64_t total) {
  doing_ = std::move(doing);
  done_ = std::move(done);
  meter_.restart(total);
  finished_ = false;
  drawn_ = false;  // the next update draws at once
}

void ProgressLine::clear() {
  if (!active() || !drawn_) return;
  static constexpr char kErase[] = "\r\x1b[K";
  [[maybe_unused]] const ssize_t ignored = ::write(fd_, kErase, sizeof kErase - 1);
  drawn_ = false;
}

// While running: done (of total, percent), rate, ETA. Final: done in seconds, rate.
std::string ProgressLine::numbers(bool final) const {
  const auto now = ProgressMeter::Clock::now();
  const double seconds = meter_.seconds(now);
  const std::optional<double> fraction = meter_.fraction();
  std::string text;
  if (unit_ == ProgressUnit::Bytes) {
    const double mib = static_cast<double>(meter_.done()) / kMiB;
    text = fixed1(mib) + (fraction && !final ? " of " + fixed1(static_cast<double>(meter_.total()) / kMiB) : "") + " MiB";
  } else {
    text = std::to_string(meter_.done()) + (meter_.total() > 0 ? "/" + std::to_string(meter_.total()) : "") + " " + items_;
  }
  if (fraction && !final) text += " (" + std::to_string(static_cast<int>(*fraction * 100)) + "%)";
  if (final) text += " in " + fixed1(seconds) + " s";
  if (seconds >= 0.001) {
    const double rate = meter_.rate(now);
    text += ", " + (unit_ == ProgressUnit::Bytes ? fixed1(rate / kMiB) + " MiB/s" : fixed1(rate) + "/s");
  }
  if (!final) {
    if (const std::optional<double> eta = meter_.eta(now)) text += ", ETA " + format_duration(*eta);
  }
  return text;
}

void ProgressLine::update(std::uint64_t done) {
  meter_.set(done);
  if (!active() || finished_) return;
  const auto now = ProgressMeter::Clock::now();
  if (drawn_ && now - last_ < kRedraw) return;
  last_ = now;
  draw("imprint: " + doing_ + " " + what_ + ": " + numbers(false), false);
}

void ProgressLine::finish(std::uint64_t done) {
  meter_.set(done);
  if (!active() || finished_) return;
  draw("imprint: " + done_ + " " + what_ + ": " + numbers(true), true);
  finished_ = true;
}

// \r and "erase to the end of the line" (ESC [ K) redraw in place; a write error only loses progress.
void ProgressLine::draw(const std::string& line, bool final) {
  const std::string text = "\r" + line + "\x1b[K" + (final ? "\n" : "");
  [[maybe_unused]] const ssize_t ignored = ::write(fd_, text.data(), text.size());
  drawn_ = !final;
}

}  // namespace imprint
