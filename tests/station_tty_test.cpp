// The station's TTY view: the rendered lines, the plain log's events, and the live redraw as a real
// VT100 emulator (python3-pyte) shows it on a pseudo-terminal.
#include <pty.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "imprint/station/tty_view.hpp"
#include "station_support.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::slot_status;

StationStatus three_slots() {
  StationStatus status;
  status.station = "line-1";
  status.slots = {slot_status("/dev/sdb", "dev-001", SlotPhase::Writing, 450, 1000, 21.5),
                  slot_status("/dev/sdc", "dev-002", SlotPhase::Done, 1000, 1000, 0, "flashed dev-002"),
                  slot_status("/dev/sdd", "", SlotPhase::Idle, 0, 0, 0, "dev-000: read-back verify failed", true)};
  status.flashed = 3;
  status.failed = 1;
  status.pool_left = 6;
  return status;
}

std::size_t visible_columns(const std::string& line) {
  std::size_t count = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\x1b') {  // a colour sequence: ESC [ ... m
      i = line.find('m', i);
      continue;
    }
    count += (static_cast<unsigned char>(line[i]) & 0xc0) != 0x80;
  }
  return count;
}

TEST(StationTty, OneLinePerSlotWithPhaseProgressRateAndResultThenTheTotals) {
  const auto lines = render_status_lines(three_slots(), 120, false);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_NE(lines[0].find("/dev/sdb"), std::string::npos);
  EXPECT_NE(lines[0].find("dev-001"), std::string::npos);
  EXPECT_NE(lines[0].find("writing"), std::string::npos);
  EXPECT_NE(lines[0].find("[#############"), std::string::npos) << lines[0];  // 45 % of a 30-column bar
  EXPECT_NE(lines[0].find(" 45%"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("21.5 MiB/s"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("done"), std::string::npos);
  EXPECT_NE(lines[1].find("100%"), std::string::npos);
  EXPECT_NE(lines[1].find("flashed dev-002"), std::string::npos);
  EXPECT_EQ(lines[1].find("MiB/s"), std::string::npos) << "no rate once done";
  EXPECT_NE(lines[2].find("idle"), std::string::npos);
  EXPECT_NE(lines[2].find("dev-000: read-back verify failed"), std::string::npos);
  EXPECT_EQ(lines[3], "line-1: flashed 3  failed 1  left in the pool 6");
  for (const auto& line : lines) EXPECT_EQ(line.find('\x1b'), std::string::npos) << "no colour asked";
}

TEST(StationTty, ResultsAndPhasesInColour) {
  const auto lines = render_status_lines(three_slots(), 120, true);
  EXPECT_NE(lines[1].find("\x1b[32mflashed dev-002"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("\x1b[32mdone"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("\x1b[31mdev-000: read-back verify failed"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find("failed \x1b[31m1\x1b[0m"), std::string::npos) << lines[3];
}

TEST(StationTty, NoLineIsWiderThanTheTerminalAtAnyWidth) {
  StationStatus status = three_slots();
  status.slots.push_back(slot_status("/dev/disk/by-path/pci-0000:00:14.0-usb-0:3:1.0-scsi-0:0:0:0", std::string(60, 'x'),
                              SlotPhase::Verifying, 5, 10, 99.9, std::string(200, 'r'), true));
  for (std::size_t width : {20, 40, 60, 79, 100, 200}) {
    for (bool colour : {false, true}) {
      for (const auto& line : render_status_lines(status, width, colour)) {
        EXPECT_LE(visible_columns(line), width) << width << ": " << line;
      }
    }
  }
}

TEST(StationTty, DeviceIdsAndResultsCannotSendTerminalControls) {
  StationStatus status;
  status.slots = {slot_status("/dev/sdb", "dev\x1b[2J\nfake", SlotPhase::Writing, 1, 2, 1, "x\rflashed\x1b]0;t\x07", true)};
  status.last_results = {"id\x1b[31m"};
  status.flashed = 1;
  for (const auto& line : render_status_lines(status, 200, false)) {
    EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_EQ(line.find('\r'), std::string::npos) << line;
  }
  EXPECT_NE(render_status_lines(status, 200, false)[0].find("dev\\x1b[2J\\nfake"), std::string::npos);
  for (const auto& event : status_events({}, status)) EXPECT_EQ(event.find('\x1b'), std::string::npos) << event;
}

TEST(StationTty, ThePlainLogHasOneLinePerEvent) {
  StationStatus before;
  StationStatus during;
  during.station = "s";
  during.pool_left = 2;
  during.slots = {slot_status("/dev/sdb", "dev-1", SlotPhase::Writing, 10, 100, 5)};
  EXPECT_EQ(status_events(before, during), (std::vector<std::string>{"slot /dev/sdb added", "/dev/sdb: dev-1 writing"}));
  EXPECT_TRUE(status_events(during, during).empty()) << "progress alone is no event";
  StationStatus later = during;
  later.slots[0].bytes_done = 90;
  later.slots[0].phase = SlotPhase::Verifying;
  EXPECT_EQ(status_events(during, later), (std::vector<std::string>{"/dev/sdb: dev-1 verifying"}));
  // Two cards finished between two snapshots: both results, oldest first, then the totals.
  StationStatus after = later;
  after.slots[0] = slot_status("/dev/sdb", "", SlotPhase::Idle, 0, 0, 0, "flashed dev-2");
  after.flashed = 2;
  after.pool_left = 0;
  after.last_results = {"flashed dev-2", "flashed dev-1", "an older one"};
  EXPECT_EQ(status_events(later, after),
            (std::vector<std::string>{"flashed dev-1", "flashed dev-2", "s: flashed 2  failed 0  left in the pool 0"}));
  // With `results` counted, a result that is neither flashed nor failed (a skipped card) shows too.
  StationStatus skipped = after;
  skipped.results = 3;
  StationStatus next = skipped;
  next.results = 4;
  next.last_results.insert(next.last_results.begin(), "/dev/sdb: not started, the station is stopping");
  EXPECT_EQ(status_events(skipped, next),
            (std::vector<std::string>{"/dev/sdb: not started, the station is stopping", "s: flashed 2  failed 0  left in the pool 0"}));
  StationStatus removed = after;
  removed.slots.clear();
  EXPECT_EQ(status_events(after, removed), (std::vector<std::string>{"slot /dev/sdb removed"}));
}

// A station whose status moves on with every snapshot: slot 1 writes, a slot appears, cards finish.
class MovingStation {
 public:
  StationStatus operator()() {
    std::lock_guard lock(mutex_);
    ++calls_;
    StationStatus status;
    status.station = "line-1";
    status.pool_left = 10 - std::min<std::size_t>(calls_ / 5, 10);
    status.flashed = std::min<std::size_t>(calls_ / 5, 10);
    for (std::size_t i = status.flashed; i-- > 0 && status.last_results.size() < 3;) status.last_results.push_back("flashed dev-" + std::to_string(i));
    status.slots.push_back(slot_status("/dev/sdb", "dev-" + std::to_string(status.flashed), SlotPhase::Writing, calls_ % 5, 4, 30));
    if (calls_ > 8) status.slots.push_back(slot_status("/dev/sdc", "dev-x", SlotPhase::Verifying, 1, 2, 12.5));
    return status;
  }
  std::size_t calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  std::mutex mutex_;
  std::size_t calls_ = 0;
};

// What a VT100 screen of width x height shows after these bytes (python3-pyte, Debian python3-pyte).
std::vector<std::string> screen_after(const std::string& bytes, int width, int height) {
  test::TempDir dir;
  test::write_file(dir / "bytes", bytes);
  const std::string script =
      "import sys, pyte\n"
      "screen = pyte.Screen(" + std::to_string(width) + ", " + std::to_string(height) + ")\n"
      "stream = pyte.Stream(screen)\n"
      "stream.feed(open(sys.argv[1], 'rb').read().decode('utf-8'))\n"
      "for line in screen.display: print(line.rstrip())\n";
  const auto shown = test::run({"/usr/bin/python3", "-c", script, dir / "bytes"});
  EXPECT_EQ(shown.status, 0) << "python3 with pyte (Debian python3-pyte) failed: " << shown.err;
  std::vector<std::string> lines;
  std::istringstream stream(shown.out);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

TEST(StationTty, OnATerminalTheLinesAreRedrawnInPlaceWithMessagesAbove) {
  int master = -1, terminal = -1;
  winsize size{};
  size.ws_col = 100;
  size.ws_row = 30;
  ASSERT_EQ(::openpty(&master, &terminal, nullptr, nullptr, &size), 0);
  std::string bytes;
  std::atomic<bool> done{false};
  std::thread reader([&] {  // drain the terminal so the ticker never blocks on a full buffer
    char buffer[4096];
    for (ssize_t got; (got = ::read(master, buffer, sizeof buffer)) > 0;) bytes.append(buffer, static_cast<std::size_t>(got));
    done = true;
  });
  MovingStation station;
  {
    StatusTicker ticker([&] { return station(); }, terminal, StatusTicker::Mode::Auto, std::chrono::milliseconds(5));
    EXPECT_TRUE(ticker.live()) << "a pseudo-terminal is a terminal";
    ticker.start();
    while (station.calls() < 12) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ticker.print("warning: label printer offline");
    while (station.calls() < 40) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ticker.stop();
  }
  ::close(terminal);
  reader.join();
  ::close(master);
  ASSERT_TRUE(done);
  EXPECT_NE(bytes.find("\x1b["), std::string::npos);
  const auto screen = screen_after(bytes, 100, 30);
  // Forty frames drawn, and the screen holds the message once, then exactly the last frame.
  ASSERT_EQ(screen.size(), 4u) << testing::PrintToString(screen);
  EXPECT_EQ(screen[0], "warning: label printer offline");
  EXPECT_NE(screen[1].find("/dev/sdb"), std::string::npos) << screen[1];
  const std::size_t flashed = station.calls() / 5;  // of the last snapshot, taken by stop()
  EXPECT_NE(screen[1].find("dev-" + std::to_string(flashed)), std::string::npos) << screen[1];
  EXPECT_NE(screen[2].find("/dev/sdc"), std::string::npos) << screen[2];
  EXPECT_NE(screen[2].find("12.5 MiB/s"), std::string::npos) << screen[2];
  EXPECT_EQ(screen[3], "line-1: flashed " + std::to_string(flashed) + "  failed 0  left in the pool " + std::to_string(10 - flashed));
}

TEST(StationTty, OffATerminalItIsAPlainLogWithoutEscapes) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  std::string bytes;
  std::thread reader([&] {
    char buffer[4096];
    for (ssize_t got; (got = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) bytes.append(buffer, static_cast<std::size_t>(got));
  });
  MovingStation station;
  {
    StatusTicker ticker([&] { return station(); }, pipe_fds[1], StatusTicker::Mode::Auto, std::chrono::milliseconds(5));
    EXPECT_FALSE(ticker.live());
    ticker.start();
    while (station.calls() < 12) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ticker.print("warning: label printer offline");
  }
  ::close(pipe_fds[1]);
  reader.join();
  ::close(pipe_fds[0]);
  EXPECT_EQ(bytes.find('\x1b'), std::string::npos) << bytes;
  EXPECT_NE(bytes.find("slot /dev/sdb added\n/dev/sdb: dev-0 writing\n"), std::string::npos) << bytes;
  EXPECT_NE(bytes.find("\nflashed dev-0\nline-1: flashed 1  failed 0  left in the pool 9\n"), std::string::npos) << bytes;
  EXPECT_NE(bytes.find("\nslot /dev/sdc added\n"), std::string::npos) << bytes;
  EXPECT_NE(bytes.find("\nwarning: label printer offline\n"), std::string::npos) << bytes;
}

}  // namespace
}  // namespace imprint
