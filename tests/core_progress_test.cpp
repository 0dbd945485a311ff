// The one progress model (core/progress.hpp): ProgressMeter's numbers with a fixed clock, and what
// ProgressLine draws, read back from a pipe.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "imprint/core/progress.hpp"

namespace imprint {
namespace {

using Clock = ProgressMeter::Clock;

TEST(ProgressMeter, RateShareAndEtaFromTheClock) {
  const Clock::time_point start{};
  ProgressMeter meter(1000, start);
  EXPECT_EQ(meter.rate(start), 0);  // nothing measured yet
  EXPECT_FALSE(meter.eta(start));
  meter.add(250);
  meter.add(250);
  const auto later = start + std::chrono::seconds(2);
  EXPECT_DOUBLE_EQ(meter.rate(later), 250);
  EXPECT_DOUBLE_EQ(*meter.fraction(), 0.5);
  EXPECT_DOUBLE_EQ(*meter.eta(later), 2);
  meter.set(1200);  // past the total (a file that grew): done, not negative
  EXPECT_DOUBLE_EQ(*meter.fraction(), 1);
  EXPECT_DOUBLE_EQ(*meter.eta(later), 0);

  ProgressMeter unknown(0, start);
  unknown.set(10);
  EXPECT_FALSE(unknown.fraction());
  EXPECT_FALSE(unknown.eta(later));
  unknown.set_total(20);  // learnt later (decompression: from the partition table); the clock runs on
  EXPECT_DOUBLE_EQ(*unknown.eta(later), 2);
  unknown.restart(5, later);
  EXPECT_EQ(unknown.done(), 0u);
  EXPECT_EQ(unknown.total(), 5u);
}

TEST(ProgressMeter, DurationsReadAsClockTimes) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(42.4), "0:42");
  EXPECT_EQ(format_duration(725), "12:05");
  EXPECT_EQ(format_duration(3723), "1:02:03");
}

// The pipe's read end, non-blocking: what the line drew so far.
struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() {
    if (::pipe2(fds, O_NONBLOCK) != 0) throw std::runtime_error("pipe");
  }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  std::string drain() const {
    std::string text;
    char buffer[4096];
    ssize_t got = 0;
    while ((got = ::read(fds[0], buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<std::size_t>(got));
    return text;
  }
};

TEST(ProgressLine, DrawsBytesShareRateAndEtaThenASummary) {
  Pipe pipe;
  constexpr std::uint64_t kMiB = 1024 * 1024;
  {
    ProgressLine line("writing", "wrote", "/dev/sdz", ProgressUnit::Bytes, pipe.fds[1]);
    line.set_total(100 * kMiB);
    line.update(0);
    const std::string first = pipe.drain();
    EXPECT_EQ(first.rfind("\rimprint: writing /dev/sdz: 0.0 of 100.0 MiB (0%)", 0), 0u) << first;
    EXPECT_EQ(first.find("ETA"), std::string::npos) << "no rate yet, no ETA: " << first;
    line.update(10 * kMiB);
    EXPECT_EQ(pipe.drain(), "") << "redrawn at most every 200 ms";
    std::this_thread::sleep_for(std::chrono::milliseconds(210));
    line.update(25 * kMiB);
    const std::string drawn = pipe.drain();
    EXPECT_EQ(drawn.rfind("\rimprint: writing /dev/sdz: 25.0 of 100.0 MiB (25%), ", 0), 0u) << drawn;
    EXPECT_NE(drawn.find(" MiB/s, ETA 0:0"), std::string::npos) << drawn;
    line.finish(100 * kMiB);
    const std::string summary = pipe.drain();
    EXPECT_EQ(summary.rfind("\rimprint: wrote /dev/sdz: 100.0 MiB in ", 0), 0u) << summary;
    EXPECT_EQ(summary.substr(summary.size() - 10), " MiB/s\x1b[K\n") << summary;
  }
  EXPECT_EQ(pipe.drain(), "") << "a finished line stays";
}

TEST(ProgressLine, CountsItemsAndErasesAnUnfinishedLine) {
  Pipe pipe;
  {
    ProgressLine line("stamping", "stamped", "devices.csv", ProgressUnit::Items, pipe.fds[1]);
    line.set_item_name("devices");
    line.set_total(20);
    line.update(3);
    EXPECT_EQ(pipe.drain().rfind("\rimprint: stamping devices.csv: 3/20 devices (15%)", 0), 0u);
  }
  EXPECT_EQ(pipe.drain(), "\r\x1b[K") << "a failed job's line is erased so that its error starts clean";

  ProgressLine nowhere("copying", "copied", "x", ProgressUnit::Bytes, -1);
  EXPECT_FALSE(nowhere.active());
  nowhere.update(1);
  nowhere.finish(2);
}

TEST(ProgressLine, QuietOrNoTerminalDrawsNothing) {
  // The tests' stderr is not a terminal, and --quiet turns lines off even on one.
  ProgressLine plain("copying", "copied", "x");
  EXPECT_EQ(plain.active(), ::isatty(STDERR_FILENO) == 1);
  set_verbosity(Verbosity::Quiet);
  ProgressLine quiet("copying", "copied", "x");
  EXPECT_FALSE(quiet.active());
  set_verbosity(Verbosity::Normal);
  EXPECT_EQ(verbosity(), Verbosity::Normal);
}

}  // namespace
}  // namespace imprint
