// The factory station: slots, one writer thread per card, the ledger's exactly-once ids.
#include "imprint/station/station.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "imprint/image/copy.hpp"
#include "imprint/profile/csv.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/core/progress.hpp"
#include "imprint/batch/flash.hpp"
#include "station_internal.hpp"

namespace imprint {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A view redraws at most this often for progress alone (phase changes are shown at once).
constexpr std::chrono::milliseconds kProgressEvery{100};
constexpr std::size_t kLastResults = 8;

SlotPhase slot_phase(FlashPhase phase) {
  switch (phase) {
    case FlashPhase::Stamping:
      return SlotPhase::Stamping;
    case FlashPhase::Writing:
      return SlotPhase::Writing;
    case FlashPhase::Verifying:
      return SlotPhase::Verifying;
  }
  return SlotPhase::Writing;
}

// Test hook (IMPRINT_TEST_STATION_HOLD=FILE): the first card to start writing creates FILE (its
// device id inside) and its writer waits there until FILE is removed, so that a test can kill or
// stop the station while a card is half written.
void hold_for_test(FlashPhase phase, std::uint64_t done, const std::string& device_id) {
  static std::atomic<bool> held{false};
  const char* file = std::getenv("IMPRINT_TEST_STATION_HOLD");
  if (file == nullptr || *file == '\0' || phase != FlashPhase::Writing || done == 0 || held.exchange(true)) return;
  std::ofstream(file) << device_id << "\n";
  while (fs::exists(file)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

}  // namespace

std::string to_string(CardOutcome outcome) {
  switch (outcome) {
    case CardOutcome::Flashed:
      return "flashed";
    case CardOutcome::Failed:
      return "failed";
    case CardOutcome::PoolExhausted:
      return "pool exhausted";
    case CardOutcome::Refused:
      return "refused";
    case CardOutcome::Skipped:
      return "skipped";
  }
  return "?";
}

bool StationReport::ok() const {
  for (const CardResult& card : cards) {
    if (card.outcome != CardOutcome::Flashed) return false;
  }
  return true;
}

std::string default_station_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "station";
  return name;
}

// A card to do: the slot's device, and the id it must get again when it is a reconciliation.
struct CardJob {
  std::string slot;
  std::string target;
  std::optional<PoolEntry> reconcile;
};

class Station::Impl {
 public:
  Impl(StationOptions options, StationHooks hooks) : options_(std::move(options)), hooks_(std::move(hooks)) {
    if (options_.station.empty()) options_.station = default_station_name();
    status_.station = options_.station;
  }

  StationReport run();
  void stop() {
    stopping_ = true;
    permits_changed_.notify_all();
  }
  void abandon();
  bool stopping() const { return stopping_; }
  StationStatus snapshot() const {
    std::lock_guard lock(status_mutex_);
    return status_;
  }

 private:
  void check_inputs() const;
  void prepare_golden();
  void fill_pool();
  std::vector<CardJob> reconcile(const std::vector<std::string>& targets);
  void start(CardJob job);
  void work(const CardJob& job);
  CardResult write_card(const CardJob& job);
  void flash_card(const CardJob& job, const PoolEntry& entry, const CardIdentity& card, CardResult& result);
  void record(const std::string& device_id, const std::function<void()>& change);
  bool take_permit();
  void give_permit();
  void finish(CardResult result);
  void set_phase(const std::string& slot, SlotPhase phase, const std::string& device_id = "");
  void progress(const std::string& slot, FlashPhase phase, std::uint64_t done, std::uint64_t total);
  void refresh_pool_count();
  void changed() const {
    if (hooks_.changed) hooks_.changed();
  }
  void note(const std::string& line) {
    notes_.push_back(line);
    if (hooks_.note) hooks_.note(line);
  }
  void watch();

  StationOptions options_;
  StationHooks hooks_;
  std::vector<std::string> notes_;

  // The status views read, and the results so far.
  mutable std::mutex status_mutex_;
  StationStatus status_;
  std::vector<CardResult> results_;
  std::map<std::string, ProgressMeter> meters_;  // per slot: its current phase's bytes (core/progress.hpp)
  std::map<std::string, Clock::time_point> last_shown_;

  // The ledger, one call at a time (its connection is not shared between threads), and the ids of
  // cards in flight (allocated and not yet recorded) that abandon() marks failed.
  std::mutex ledger_mutex_;
  std::unique_ptr<Ledger> ledger_;
  std::set<std::string> in_flight_;
  bool abandoned_ = false;

  // Writers: how many may write at once, and the slots busy now.
  std::atomic<bool> stopping_{false};
  std::mutex work_mutex_;
  std::condition_variable permits_changed_;
  std::size_t permits_ = 0;
  std::set<std::string> busy_;
  std::vector<std::thread> threads_;

  UniqueFd golden_fd_;  // the decompressed golden, when it was compressed
  std::string golden_;
  std::uint64_t golden_size_ = 0;
  std::string golden_sha256_;  // of the golden as named (compressed or not), as batch and flash -p record it
};

void Station::Impl::check_inputs() const {
  if (options_.targets.empty() && !options_.watch) throw Error("station needs --target DEVICE (one per slot) or --watch", ErrorCode::Usage);
  std::set<std::string> disks;
  for (const std::string& target : options_.targets) {
    const std::string sysfs = sysfs_block_dir(target);  // Error for a missing node or a file
    if (fs::exists(fs::path(sysfs) / "partition")) {
      throw Error("--target " + target + ": a partition; a slot is a whole card (" + fs::path(sysfs).parent_path().filename().string() + ")",
                  ErrorCode::Invalid);
    }
    if (!disks.insert(sysfs).second) throw Error("--target " + target + ": named twice", ErrorCode::Usage);
  }
}

// A compressed golden is decompressed once, into an unnamed temp file every writer reads.
void Station::Impl::prepare_golden() {
  golden_ = options_.golden_path;
  golden_sha256_ = golden_digest(options_.golden_path);
  if (is_compressed_image(options_.golden_path)) {
    golden_fd_ = decompressed_golden(options_.golden_path);
    golden_ = fd_path(golden_fd_.get());
  }
  struct stat info {};
  if (::stat(golden_.c_str(), &info) != 0) throw_errno("cannot stat " + options_.golden_path);
  golden_size_ = static_cast<std::uint64_t>(info.st_size);
  // From here the station's own view owns the terminal: each card's copy of the golden draws no line.
  set_progress_lines(false);
}

void Station::Impl::fill_pool() {
  std::unique_ptr<Ledger> ledger = open_ledger(options_.ledger);  // never created here: a typo must not start a second pool
  {
    std::lock_guard lock(ledger_mutex_);
    ledger_ = std::move(ledger);
  }
  std::vector<Variables> rows;
  for (const DeviceRow& row : read_devices_csv(options_.devices_csv)) {
    Variables variables = row.columns;
    variables["device_id"] = row.device_id;
    rows.push_back(std::move(variables));
  }
  const std::size_t added = ledger_->import_pool(rows);
  if (added > 0) note(std::to_string(added) + " device(s) of " + options_.devices_csv + " added to the pool");
  if (options_.reissue_failed) {
    const std::size_t reissued = ledger_->reissue_failed();
    note(std::to_string(reissued) + " failed id(s) back in the pool (--reissue-failed)");
  }
}

// The ids this station left allocated: each goes back onto its own card when that card is in a
// named slot now, else it is quarantined. Returns the named targets' jobs.
std::vector<CardJob> Station::Impl::reconcile(const std::vector<std::string>& targets) {
  std::vector<CardJob> jobs;
  std::vector<CardIdentity> cards;
  for (const std::string& target : targets) {
    jobs.push_back(CardJob{target, target, std::nullopt});
    cards.push_back(card_identity(target));
  }
  for (const PoolEntry& entry : ledger_->allocated_to(options_.station)) {
    const std::string was = entry.device_id + " (left allocated by station " + options_.station + ", slot " + entry.slot + ")";
    bool placed = false;
    for (std::size_t i = 0; i < jobs.size() && entry.card && !placed; ++i) {
      if (jobs[i].reconcile || !same_card(*entry.card, cards[i])) continue;
      jobs[i].reconcile = entry;
      in_flight_.insert(entry.device_id);
      note(was + ": its card is in " + jobs[i].target + "; writing it again and verifying");
      placed = true;
    }
    if (placed) continue;
    const bool weak = entry.card && !identifies_the_card(*entry.card);
    const std::string reason = weak ? "interrupted; its card was known only by its reader, so it is not written again"
                                    : "interrupted; its card is not in a slot at the station's start";
    ledger_->quarantine(entry.device_id, reason);
    note(was + ": quarantined (" + reason + ")");
  }
  return jobs;
}

bool Station::Impl::take_permit() {
  std::unique_lock lock(work_mutex_);
  permits_changed_.wait(lock, [&] { return permits_ > 0 || stopping_; });
  if (stopping_) return false;
  --permits_;
  return true;
}

void Station::Impl::give_permit() {
  {
    std::lock_guard lock(work_mutex_);
    ++permits_;
  }
  permits_changed_.notify_all();
}

void Station::Impl::set_phase(const std::string& slot, SlotPhase phase, const std::string& device_id) {
  {
    std::lock_guard lock(status_mutex_);
    for (SlotStatus& status : status_.slots) {
      if (status.slot != slot) continue;
      status.phase = phase;
      if (!device_id.empty()) status.device_id = device_id;
      status.bytes_done = status.bytes_total = 0;
      status.mib_per_s = 0;
    }
    meters_[slot].restart(0);
  }
  changed();
}

void Station::Impl::progress(const std::string& slot, FlashPhase phase, std::uint64_t done, std::uint64_t total) {
  bool show = false;
  {
    std::lock_guard lock(status_mutex_);
    const auto now = Clock::now();
    for (SlotStatus& status : status_.slots) {
      if (status.slot != slot) continue;
      const SlotPhase next = slot_phase(phase);
      ProgressMeter& meter = meters_[slot];
      if (status.phase != next) {
        status.phase = next;
        meter.restart(total, now);
        show = true;
      }
      meter.set(done);
      status.bytes_done = meter.done();
      status.bytes_total = meter.total();
      status.mib_per_s = meter.rate(now) / (1024.0 * 1024.0);
    }
    if (show || now - last_shown_[slot] >= kProgressEvery || done == total) {
      last_shown_[slot] = now;
      show = true;
    }
  }
  if (show) changed();
}

void Station::Impl::refresh_pool_count() {
  const PoolCounts counts = ledger_->counts();  // under ledger_mutex_ (the callers hold it)
  std::lock_guard lock(status_mutex_);
  status_.pool_left = counts.free;
}

// One ledger transition for a card in flight; none once abandon() has marked it failed.
void Station::Impl::record(const std::string& device_id, const std::function<void()>& change) {
  std::lock_guard lock(ledger_mutex_);
  if (abandoned_ || in_flight_.count(device_id) == 0) {
    throw Error(device_id + ": the station was stopped before this card was recorded; it is marked failed", ErrorCode::Generic);
  }
  change();
  in_flight_.erase(device_id);
  refresh_pool_count();
}

void Station::Impl::flash_card(const CardJob& job, const PoolEntry& entry, const CardIdentity& card, CardResult& result) {
  FlashRequest request;
  request.profile_path = options_.profile_path;
  request.golden_path = golden_;
  request.golden_sha256 = golden_sha256_;
  request.record_kept = true;  // the ledger keeps every card's record
  request.device_id = entry.device_id;
  request.overrides = options_.overrides;
  for (const auto& [key, value] : entry.variables) {
    if (key != "device_id") request.overrides[key] = value;
  }
  request.target = job.target;
  request.force = options_.allow_nonremovable;
  request.backend = options_.backend;
  request.progress = [&](FlashPhase phase, std::uint64_t done, std::uint64_t total) {
    hold_for_test(phase, done, entry.device_id);
    progress(job.slot, phase, done, total);
  };
  FlashResult flashed;
  try {
    flashed = flash(request);
  } catch (const std::exception& error) {
    result.message = job.target + ": " + entry.device_id + " failed: " + error.what();
    record(entry.device_id, [&] { ledger_->mark_failed(entry.device_id, error.what()); });
    result.outcome = CardOutcome::Failed;
    return;
  }
  result.warnings = flashed.warnings;
  set_phase(job.slot, SlotPhase::Recording);
  if (!flashed.verified) {
    result.message = job.target + ": " + entry.device_id + " failed the read-back: " + flashed.failure;
    record(entry.device_id, [&] { ledger_->mark_failed(entry.device_id, "read-back: " + flashed.failure); });
    result.outcome = CardOutcome::Failed;
    return;
  }
  ManifestRecord manifest = flashed.record;
  manifest["card"] = to_json(card);
  manifest["station"] = options_.station;
  manifest["slot"] = job.slot;
  if (job.reconcile) manifest["reconciled"] = true;
  record(entry.device_id, [&] { ledger_->mark_flashed(entry.device_id, manifest); });
  result.record = manifest;
  result.outcome = CardOutcome::Flashed;
  result.message = job.target + ": " + entry.device_id + " flashed and verified" + (job.reconcile ? " (reconciled)" : "");
}

CardResult Station::Impl::write_card(const CardJob& job) {
  CardResult result;
  result.slot = job.slot;
  result.target = job.target;
  result.reconciled = job.reconcile.has_value();
  set_phase(job.slot, SlotPhase::Allocating);
  // Refusals before an id is spent: a mounted, busy, too small or fixed disk gets none.
  CardIdentity card;
  try {
    check_block_target(job.target, golden_size_, options_.allow_nonremovable);
    card = card_identity(job.target);
  } catch (const std::exception& error) {
    result.outcome = CardOutcome::Refused;
    result.message = error.what();
    if (job.reconcile) {  // its id stays bound to this card: quarantined, never reused
      std::lock_guard lock(ledger_mutex_);
      ledger_->quarantine(job.reconcile->device_id, std::string("interrupted; its card was refused at restart: ") + error.what());
      in_flight_.erase(job.reconcile->device_id);
    }
    return result;
  }
  std::optional<PoolEntry> entry = job.reconcile;
  if (!entry) {
    std::lock_guard lock(ledger_mutex_);
    if (stopping_ || abandoned_) {
      result.message = job.target + ": not started, the station is stopping";
      return result;
    }
    entry = ledger_->allocate(options_.station, job.slot, card);  // committed before a byte is written
    if (entry) in_flight_.insert(entry->device_id);
    refresh_pool_count();
  }
  if (!entry) {
    result.outcome = CardOutcome::PoolExhausted;
    result.message = job.target + ": pool exhausted: no free device id in " + ledger_->location() + "; nothing written to this card";
    return result;
  }
  result.device_id = entry->device_id;
  set_phase(job.slot, SlotPhase::Stamping, entry->device_id);
  try {
    flash_card(job, *entry, card, result);
  } catch (const std::exception& error) {  // the ledger refused the transition, or was abandoned
    result.outcome = CardOutcome::Failed;
    result.message = job.target + ": " + entry->device_id + ": " + error.what();
  }
  return result;
}

void Station::Impl::finish(CardResult result) {
  {
    std::lock_guard lock(status_mutex_);
    for (SlotStatus& status : status_.slots) {
      if (status.slot != result.slot) continue;
      status.phase = result.outcome == CardOutcome::Flashed ? SlotPhase::Done : SlotPhase::Failed;
      status.device_id = result.device_id;
      status.result = result.outcome == CardOutcome::Flashed ? "flashed " + result.device_id : result.message;
      status.result_failed = result.outcome != CardOutcome::Flashed;
    }
    if (result.outcome == CardOutcome::Flashed) ++status_.flashed;
    else if (result.outcome != CardOutcome::Skipped) ++status_.failed;
    status_.last_results.insert(status_.last_results.begin(), result.message);
    ++status_.results;
    if (status_.last_results.size() > kLastResults) status_.last_results.resize(kLastResults);
    results_.push_back(result);
  }
  if (hooks_.card_done) hooks_.card_done(result);
  changed();
}

void Station::Impl::work(const CardJob& job) {
  CardResult result;
  if (!take_permit()) {
    result.slot = job.slot;
    result.target = job.target;
    result.message = job.target + ": not started, the station is stopping";
    if (job.reconcile) {  // stopped before it was written again: the id is no one's now
      std::lock_guard lock(ledger_mutex_);
      if (!abandoned_) ledger_->quarantine(job.reconcile->device_id, "interrupted; the station stopped before writing it again");
      in_flight_.erase(job.reconcile->device_id);
    }
  } else {
    result = write_card(job);
    give_permit();
  }
  finish(std::move(result));
  std::lock_guard lock(work_mutex_);
  busy_.erase(job.target);
}

void Station::Impl::start(CardJob job) {
  {
    std::lock_guard lock(status_mutex_);
    bool known = false;
    for (const SlotStatus& status : status_.slots) known = known || status.slot == job.slot;
    if (!known) {
      SlotStatus slot;
      slot.slot = job.slot;
      slot.target = job.target;
      status_.slots.push_back(slot);
    }
  }
  {
    std::lock_guard lock(work_mutex_);
    busy_.insert(job.target);
  }
  changed();
  threads_.emplace_back([this, job = std::move(job)] { work(job); });
}

void Station::Impl::watch() {
  DiskWatcher watcher(options_.watch_match);
  note("watching for new cards" + (options_.watch_match.empty() ? std::string() : " matching " + options_.watch_match));
  std::vector<std::string> waiting;  // new cards in readers whose previous card is still finishing
  while (!stopping_) {
    if (const std::optional<std::string> disk = watcher.next(std::chrono::milliseconds(200))) waiting.push_back(*disk);
    for (auto it = waiting.begin(); it != waiting.end() && !stopping_;) {
      {
        std::lock_guard lock(work_mutex_);
        if (busy_.count(*it) != 0) {
          ++it;
          continue;
        }
      }
      note(*it + ": a new card");
      start(CardJob{*it, *it, std::nullopt});
      it = waiting.erase(it);
    }
  }
}

StationReport Station::Impl::run() {
  check_inputs();
  StationNameLock name_lock(options_.station);
  fill_pool();
  prepare_golden();
  std::vector<CardJob> jobs;
  {
    std::lock_guard lock(ledger_mutex_);
    jobs = reconcile(options_.targets);
    refresh_pool_count();
  }
  permits_ = options_.jobs > 0 ? options_.jobs : (options_.watch ? SIZE_MAX : std::max<std::size_t>(jobs.size(), 1));
  for (CardJob& job : jobs) start(std::move(job));
  if (options_.watch) watch();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
  StationReport report;
  {
    std::lock_guard lock(status_mutex_);
    report.cards = results_;
  }
  report.notes = notes_;
  std::lock_guard lock(ledger_mutex_);
  report.pool = ledger_->counts();
  return report;
}

void Station::Impl::abandon() {
  stop();
  std::lock_guard lock(ledger_mutex_);
  if (abandoned_ || !ledger_) return;
  abandoned_ = true;
  for (const std::string& device_id : in_flight_) {
    try {
      ledger_->mark_failed(device_id, "interrupted: the station was stopped before this card was finished");
    } catch (const std::exception&) {  // already recorded by its writer a moment ago
    }
  }
  in_flight_.clear();
}

Station::Station(StationOptions options, StationHooks hooks) : impl_(std::make_unique<Impl>(std::move(options), std::move(hooks))) {}
Station::~Station() = default;
StationReport Station::run() { return impl_->run(); }
void Station::stop() { impl_->stop(); }
void Station::abandon() { impl_->abandon(); }
bool Station::stopping() const { return impl_->stopping(); }
StationStatus Station::snapshot() const { return impl_->snapshot(); }

}  // namespace imprint
