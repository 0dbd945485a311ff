// Ctrl-C, SIGTERM and SIGHUP for a running station. The first one stops it: no new card, the cards
// in flight are finished and recorded. A second one, or `timeout` after the first, abandons the
// cards still in flight (marked failed in the ledger) and ends imprint by that signal through the
// lifetime module (helpers killed, temp directories removed).
#pragma once

#include <chrono>
#include <thread>

namespace imprint {

class Station;

class StationSignals {
 public:
  StationSignals(Station& station, std::chrono::seconds timeout);
  ~StationSignals();  // the previous handlers back
  StationSignals(const StationSignals&) = delete;
  StationSignals& operator=(const StationSignals&) = delete;

  int received() const noexcept;  // the first signal, 0 when none came

 private:
  void watch();
  Station& station_;
  std::chrono::seconds timeout_;
  std::thread thread_;
};

}  // namespace imprint
