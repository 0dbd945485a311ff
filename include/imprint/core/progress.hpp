// Progress of a long byte stream (decompressing a golden image; later stamping and flashing), on
// stderr and only when stderr is a terminal: logs and pipes get no carriage returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace imprint {

// One line redrawn in place, at most every 200 ms:
//   imprint: decompressing golden.img.zst: 812.0 MiB, 245.3 MiB/s
// finish() replaces it by a summary that stays:
//   imprint: decompressed golden.img.zst: 1024.0 MiB in 4.2 s, 243.8 MiB/s
// When the job fails before finish(), the destructor erases the line so the error starts clean.
class ByteProgress {
 public:
  // `doing` and `done` are the verbs ("decompressing", "decompressed"); `what` names the input
  // (escaped before it reaches the terminal).
  ByteProgress(std::string doing, std::string done, const std::string& what);
  // Draws on `fd` (a terminal or not) instead of deciding by stderr; for tests and reuse.
  ByteProgress(std::string doing, std::string done, const std::string& what, int fd);
  ~ByteProgress();
  ByteProgress(const ByteProgress&) = delete;
  ByteProgress& operator=(const ByteProgress&) = delete;

  bool active() const noexcept { return fd_ >= 0; }
  void update(std::uint64_t bytes);  // bytes done so far
  void finish(std::uint64_t bytes);

 private:
  void draw(const std::string& line, bool final);

  std::string doing_, done_, what_;
  int fd_;  // -1: not drawing
  std::chrono::steady_clock::time_point start_, last_;
  bool drawn_ = false, finished_ = false;
};

// "812.0 MiB, 245.3 MiB/s" for bytes done in seconds (the rate left out below 1 ms).
std::string format_byte_rate(std::uint64_t bytes, double seconds);

}  // namespace imprint
