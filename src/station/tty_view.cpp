// The station's TTY view and plain log (see station/tty_view.hpp).
#include "imprint/station/tty_view.hpp"

#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "imprint/core/bytes.hpp"

namespace imprint {

namespace {

constexpr const char* kGreen = "\x1b[32m";
constexpr const char* kRed = "\x1b[31m";
constexpr const char* kYellow = "\x1b[33m";
constexpr const char* kReset = "\x1b[0m";

// Columns of text: one per code point (escape_control'd text holds no controls; wide CJK glyphs
// would be counted short, which only shortens what fits).
std::size_t columns(std::string_view text) {
  std::size_t count = 0;
  for (char c : text) count += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return count;
}

// Cut to at most `width` columns (at a code point boundary, "..." marking the cut), or pad to it.
std::string fit(const std::string& text, std::size_t width, bool pad = true) {
  if (columns(text) <= width) return pad ? text + std::string(width - columns(text), ' ') : text;
  const std::size_t keep = width > 3 ? width - 3 : width;
  std::size_t bytes = 0;
  for (std::size_t kept = 0; bytes < text.size(); ++bytes) {
    if ((static_cast<unsigned char>(text[bytes]) & 0xc0) != 0x80 && kept++ == keep) break;
  }
  return text.substr(0, bytes) + (width > 3 ? "..." : "");
}

std::string paint(const std::string& text, const char* colour, bool enabled) {
  return enabled && colour != nullptr && !text.empty() ? colour + text + kReset : text;
}

const char* phase_colour(SlotPhase phase) {
  switch (phase) {
    case SlotPhase::Done: return kGreen;
    case SlotPhase::Failed: return kRed;
    case SlotPhase::Writing:
    case SlotPhase::Verifying: return kYellow;
    default: return nullptr;
  }
}

std::string format(const char* pattern, double value) {
  char text[32];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

// The totals, coloured or plain; plain and cut when the coloured line would not fit.
std::string totals_line(const StationStatus& status, std::size_t width, bool colour) {
  const std::string station = status.station.empty() ? "" : escape_control(status.station) + ": ";
  const auto line = [&](bool paint_it) {
    return station + "flashed " + paint(std::to_string(status.flashed), kGreen, paint_it && status.flashed > 0) + "  failed " +
           paint(std::to_string(status.failed), kRed, paint_it && status.failed > 0) + "  left in the pool " +
           std::to_string(status.pool_left);
  };
  const std::string plain = line(false);
  return columns(plain) <= width ? line(colour) : fit(plain, width, false);
}

// Widths of the columns that every slot line shares.
struct Layout {
  std::size_t slot = 4, device = 9, bar = 0;
};

Layout layout_for(const StationStatus& status, std::size_t width) {
  Layout layout;
  for (const SlotStatus& slot : status.slots) {
    layout.slot = std::max(layout.slot, columns(escape_control(slot.slot)));
    layout.device = std::max(layout.device, columns(escape_control(slot.device_id)));
  }
  layout.slot = std::min<std::size_t>(layout.slot, 16);
  layout.device = std::min<std::size_t>(layout.device, 24);
  // slot, device, phase (10), "[bar]", "100%", "123.4 MiB/s", with a space between, and a result of
  // at least 16 columns; the bar takes what is left, up to 30, and goes when less than 10 is left.
  const std::size_t fixed = layout.slot + 1 + layout.device + 1 + 10 + 1 + 2 + 1 + 4 + 1 + 11 + 2 + 16;
  const std::size_t room = width > fixed ? width - fixed : 0;
  layout.bar = room >= 10 ? std::min<std::size_t>(room, 30) : 0;
  return layout;
}

std::string slot_line(const SlotStatus& slot, const Layout& layout, std::size_t width, bool colour) {
  const std::optional<double> done = progress(slot);
  const double fraction = done.value_or(0);
  std::string bar;
  if (layout.bar > 0) {
    const auto filled = static_cast<std::size_t>(fraction * static_cast<double>(layout.bar));
    bar = is_busy(slot.phase) || slot.phase == SlotPhase::Done
              ? "[" + std::string(filled, '#') + std::string(layout.bar - filled, '.') + "] "
              : std::string(layout.bar + 3, ' ');
  }
  const std::string percent = done ? format("%3.0f%%", fraction * 100) : "    ";
  const std::string rate = fit(is_busy(slot.phase) && slot.mib_per_s > 0 ? format("%.1f MiB/s", slot.mib_per_s) : "", 11);
  const std::string phase = fit(to_string(slot.phase), 10);
  const std::string head = fit(escape_control(slot.slot), layout.slot) + " " + fit(escape_control(slot.device_id), layout.device) + " ";
  const std::string tail = " " + bar + percent + " " + rate;
  const std::size_t used = columns(head) + columns(phase) + columns(tail);
  if (used > width) return fit(head + phase + tail, width, false);  // a narrow terminal: plain and cut
  std::string line = head + paint(phase, phase_colour(slot.phase), colour) + tail;
  // Whatever room is left goes to the slot's last result.
  if (!slot.result.empty() && width >= used + 2 + 8) {
    line += "  " + paint(fit(escape_control(slot.result), width - used - 2, false), slot.result_failed ? kRed : kGreen, colour);
  }
  return line;
}

}  // namespace

std::vector<std::string> render_status_lines(const StationStatus& status, std::size_t width, bool colour) {
  const Layout layout = layout_for(status, width);
  std::vector<std::string> lines;
  for (const SlotStatus& slot : status.slots) lines.push_back(slot_line(slot, layout, width, colour));
  if (status.slots.empty()) lines.push_back(fit("no slot yet: waiting for a card", width, false));
  lines.push_back(totals_line(status, width, colour));
  return lines;
}

std::vector<std::string> status_events(const StationStatus& before, const StationStatus& after) {
  std::vector<std::string> events;
  std::map<std::string, const SlotStatus*> earlier;
  for (const SlotStatus& slot : before.slots) earlier[slot.slot] = &slot;
  for (const SlotStatus& slot : after.slots) {
    const auto found = earlier.find(slot.slot);
    const std::string name = escape_control(slot.slot);
    if (found == earlier.end()) {
      events.push_back("slot " + name + " added" + (slot.target.empty() || slot.target == slot.slot ? "" : " (" + escape_control(slot.target) + ")"));
    }
    const SlotStatus* old = found == earlier.end() ? nullptr : found->second;
    if (found != earlier.end()) earlier.erase(found);
    // Finished cards are told by their result below; here, what a slot has started doing.
    if (is_busy(slot.phase) && (old == nullptr || old->phase != slot.phase || old->device_id != slot.device_id)) {
      events.push_back(name + ": " + (slot.device_id.empty() ? "" : escape_control(slot.device_id) + " ") + to_string(slot.phase));
    }
  }
  for (const auto& [name, slot] : earlier) events.push_back("slot " + escape_control(name) + " removed");
  const bool counted = before.results > 0 || after.results > 0;
  const std::size_t finished_before = counted ? before.results : before.flashed + before.failed;
  const std::size_t finished_after = counted ? after.results : after.flashed + after.failed;
  if (finished_after > finished_before) {
    const std::size_t fresh = std::min(finished_after - finished_before, after.last_results.size());
    for (std::size_t i = fresh; i-- > 0;) events.push_back(escape_control(after.last_results[i]));  // oldest first
    events.push_back(totals_line(after, SIZE_MAX, false));
  }
  return events;
}

StatusTicker::StatusTicker(std::function<StationStatus()> snapshot, int fd, Mode mode, std::chrono::milliseconds interval)
    : snapshot_(std::move(snapshot)), fd_(fd), interval_(interval) {
  const char* term = std::getenv("TERM");
  const bool terminal = ::isatty(fd) == 1 && !(term != nullptr && std::strcmp(term, "dumb") == 0);
  live_ = mode == Mode::Live || (mode == Mode::Auto && terminal);
  const char* no_colour = std::getenv("NO_COLOR");  // https://no-color.org
  colour_ = live_ && (no_colour == nullptr || *no_colour == '\0');
}

StatusTicker::~StatusTicker() { stop(); }

void StatusTicker::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void StatusTicker::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void StatusTicker::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    tick();  // the last one after stop() leaves the final state on the screen
    if (stopping_) return;
    wake_.wait_for(lock, interval_, [this] { return stopping_; });
  }
}

void StatusTicker::tick() {
  const StationStatus status = snapshot_();
  if (live_) {
    last_ = status;
    draw_live(status);
    return;
  }
  std::string text;
  for (const std::string& event : status_events(previous_, status)) text += event + "\n";
  write(text);
  previous_ = status;
}

void StatusTicker::print(const std::string& line) {
  std::lock_guard lock(mutex_);
  if (!live_) {
    write(line + "\n");
    return;
  }
  // Up over the live lines, erase them, the message, then the live lines again below it.
  std::string text = drawn_ > 0 ? "\r\x1b[" + std::to_string(drawn_) + "A\x1b[J" : "";
  write(text + line + "\n");
  drawn_ = 0;
  // From the last snapshot: calling the station's snapshot here could deadlock a caller that holds
  // the station's lock.
  if (thread_.joinable()) draw_live(last_);
}

void StatusTicker::draw_live(const StationStatus& status) {
  // One write per frame: the cursor goes back up to the first live line, each line is cleared and
  // drawn, and whatever was below (a frame with more lines) is erased. Lines stay one column short
  // of the width so that none wraps, which would break the count of lines to go back up.
  const std::size_t columns_now = width();
  const std::vector<std::string> lines = render_status_lines(status, columns_now > 1 ? columns_now - 1 : 1, colour_);
  std::string frame = drawn_ > 0 ? "\r\x1b[" + std::to_string(drawn_) + "A" : "";
  for (const std::string& line : lines) frame += "\x1b[2K" + line + "\n";
  frame += "\x1b[J";
  write(frame);
  drawn_ = lines.size();
}

std::size_t StatusTicker::width() const {
  winsize size{};
  if (::ioctl(fd_, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const char* columns_variable = std::getenv("COLUMNS")) {
    const long value = std::strtol(columns_variable, nullptr, 10);
    if (value > 0) return static_cast<std::size_t>(value);
  }
  return 80;
}

void StatusTicker::write(const std::string& bytes) {
  // A view must never stop the station: a closed or full output loses the frame, nothing more.
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t wrote = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return;
    done += static_cast<std::size_t>(wrote);
  }
}

}  // namespace imprint
