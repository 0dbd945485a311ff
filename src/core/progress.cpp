// Byte progress on a terminal (see progress.hpp).
#include "imprint/core/progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <utility>

#include "imprint/core/bytes.hpp"

namespace imprint {

namespace {

constexpr auto kRedraw = std::chrono::milliseconds(200);
constexpr double kMiB = 1024.0 * 1024.0;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string fixed1(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", value);
  return text;
}

}  // namespace

std::string format_byte_rate(std::uint64_t bytes, double seconds) {
  const double mib = static_cast<double>(bytes) / kMiB;
  std::string text = fixed1(mib) + " MiB";
  if (seconds >= 0.001) text += ", " + fixed1(mib / seconds) + " MiB/s";
  return text;
}

ByteProgress::ByteProgress(std::string doing, std::string done, const std::string& what)
    : ByteProgress(std::move(doing), std::move(done), what, ::isatty(STDERR_FILENO) == 1 ? STDERR_FILENO : -1) {}

ByteProgress::ByteProgress(std::string doing, std::string done, const std::string& what, int fd)
    : doing_(std::move(doing)), done_(std::move(done)), what_(escape_control(what)), fd_(fd),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

ByteProgress::~ByteProgress() {
  // A failed job: its half-drawn line is erased, so the error prints on a clean line.
  if (active() && drawn_ && !finished_) {
    static constexpr char kErase[] = "\r\x1b[K";
    [[maybe_unused]] const ssize_t ignored = ::write(fd_, kErase, sizeof kErase - 1);
  }
}

void ByteProgress::update(std::uint64_t bytes) {
  if (!active()) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < kRedraw) return;
  last_ = now;
  draw("imprint: " + doing_ + " " + what_ + ": " + format_byte_rate(bytes, seconds_since(start_)), false);
}

void ByteProgress::finish(std::uint64_t bytes) {
  if (!active() || finished_) return;
  const double seconds = seconds_since(start_);
  draw("imprint: " + done_ + " " + what_ + ": " + fixed1(static_cast<double>(bytes) / kMiB) + " MiB in " +
           fixed1(seconds) + " s" + (seconds >= 0.001 ? ", " + fixed1(static_cast<double>(bytes) / kMiB / seconds) + " MiB/s" : ""),
       true);
  finished_ = true;
}

// \r and "erase to the end of the line" (ESC [ K) redraw in place; a write error only loses progress.
void ByteProgress::draw(const std::string& line, bool final) {
  const std::string text = "\r" + line + "\x1b[K" + (final ? "\n" : "");
  [[maybe_unused]] const ssize_t ignored = ::write(fd_, text.data(), text.size());
  drawn_ = true;
}

}  // namespace imprint
