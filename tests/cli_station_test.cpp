// imprint station with loop devices as cards (--allow-nonremovable): every card gets a different
// id from the ledger, verified, passing e2fsck -fn and holding its own id (debugfs); the card after
// the pool's last id gets nothing; kill -9 mid-write and the restart's reconciliation; Ctrl-C
// (SIGTERM) finishing the card in flight, or marking it failed after the stop timeout; --watch
// flashing a card attached after the start and leaving one present before it alone; two station
// processes on one SQLite ledger and on one real PostgreSQL 15 server, every id used exactly once;
// the labels' QR codes (rsvg-convert, zbarimg) and the status page of a running station in
// headless Chromium.
// The cards are the small fixture image's size (184 MiB, sparse); the golden is mbr.img.zst.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "browser_support.hpp"
#include "imprint/ledger/ledger.hpp"
#include "support.hpp"
#include "support/postgres.hpp"

using namespace imprint::test;
using imprint::PoolEntry;
using imprint::PoolState;

namespace {

namespace fs = std::filesystem;

constexpr auto kPatience = std::chrono::seconds(120);

// A card: a sparse backing file of the golden's size on a loop device, detached at the end.
struct Card {
  std::string file;
  std::string device;
  Card(const std::string& path, std::uint64_t size) : file(path) {
    shell("truncate -s " + std::to_string(size) + " '" + path + "'");
  }
  void attach() {
    const CommandResult attached = run({"losetup", "--find", "--show", file});
    if (attached.status != 0) throw std::runtime_error("this test needs root and free loop devices (losetup): " + attached.err);
    device = attached.out.substr(0, attached.out.find('\n'));
  }
  ~Card() {
    if (!device.empty()) run({"losetup", "-d", device});
  }
  // The id the card holds (its data and rootfs partitions must agree), "" when it holds nothing.
  std::string id() const {
    if (allocated_bytes(file) == 0) return "";
    const std::string data = debugfs(file, 4, "cat /mender/device-id");
    EXPECT_EQ(debugfs(file, 2, "cat /etc/device-id"), data) << file;
    return data.substr(0, data.find('\n'));
  }
};

// A station process in the background; its output goes to files the test reads.
class Background {
 public:
  Background(const std::vector<std::string>& arguments, const std::string& directory, const std::vector<std::string>& environment = {})
      : out_(directory + "/out-" + std::to_string(counter()++)), err_(out_ + ".err") {
    // Opened here, so that they exist before the child runs.
    const int out = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::setpgid(0, 0);  // not in the test's process group
      for (const std::string& entry : environment) ::putenv(const_cast<char*>(entry.c_str()));
      std::vector<std::string> argv{imprint_bin()};
      argv.insert(argv.end(), arguments.begin(), arguments.end());
      std::vector<char*> pointers;
      for (std::string& argument : argv) pointers.push_back(argument.data());
      pointers.push_back(nullptr);
      ::execv(pointers[0], pointers.data());
      ::_exit(127);
    }
    ::close(out);
    ::close(err);
  }
  ~Background() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  void signal(int number) const { ::kill(pid_, number); }
  // The exit status (128 + N for a signal).
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return status_;
  }
  std::string out() const { return read_file(out_); }
  std::string err() const { return read_file(err_); }

 private:
  static int& counter() {
    static int value = 0;
    return value;
  }
  pid_t pid_ = -1;
  int status_ = -1;
  std::string out_, err_;
};

template <typename Condition>
bool wait_for(Condition condition) {
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string devices_csv(const TempDir& dir, int count) {
  std::string csv = "device_id\n";
  for (int i = 1; i <= count; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "dev-%03d", i);
    csv += std::string(id) + "\n";
  }
  const std::string path = dir / "devices.csv";
  write_file(path, csv);
  return path;
}

std::vector<PoolEntry> entries(const std::string& ledger) { return imprint::open_ledger(ledger)->entries(); }

class Station : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(dir_ / "profile.yaml", kDeviceIdProfile);
    golden_ = fixture("mbr.img.zst");
    size_ = fs::file_size(fixture("mbr.img"));
    golden_digest_ = shell("sha256sum '" + golden_ + "' | cut -d' ' -f1 | tr -d '\\n'");
  }

  std::vector<std::unique_ptr<Card>> cards(int count, const std::string& prefix = "card", bool attach = true) {
    std::vector<std::unique_ptr<Card>> result;
    for (int i = 0; i < count; ++i) {
      result.push_back(std::make_unique<Card>(dir_ / (prefix + std::to_string(i) + ".img"), size_));
      if (attach) result.back()->attach();
    }
    return result;
  }

  std::vector<std::string> station_args(const std::string& ledger, const std::string& csv, const std::string& name,
                                        const std::vector<std::unique_ptr<Card>>& slots) const {
    std::vector<std::string> args{"station", "-p", dir_ / "profile.yaml", "-i", golden_, "--devices", csv, "--ledger", ledger,
                                  "--station", name, "--allow-nonremovable"};
    for (const auto& card : slots) {
      args.push_back("--target");
      args.push_back(card->device);
    }
    return args;
  }

  // Every flashed entry's card holds exactly its id, verified, and passes e2fsck -fn; returns the
  // ids the cards hold (card file -> id, "" for a card that holds nothing).
  std::map<std::string, std::string> check_cards(const std::vector<PoolEntry>& pool, const std::vector<std::unique_ptr<Card>>& all) {
    std::map<std::string, std::string> by_backing;
    for (const auto& card : all) by_backing[card->file] = card->id();
    for (const PoolEntry& entry : pool) {
      if (entry.state != PoolState::Flashed) continue;
      SCOPED_TRACE(entry.device_id);
      EXPECT_TRUE(entry.card.has_value());
      EXPECT_TRUE(entry.record.has_value());
      if (!entry.card || !entry.record) continue;
      EXPECT_EQ(entry.record->at("verified"), true);
      EXPECT_EQ(entry.record->at("card").at("serial"), entry.card->serial);
      // The golden as the operator named it (its compressed bytes), as batch and flash -p record it.
      EXPECT_EQ(entry.record->at("golden_sha256"), golden_digest_);
      const std::string backing = entry.card->serial.substr(std::string("loop:").size());
      EXPECT_EQ(by_backing[backing], entry.device_id) << backing;
      for (int partition : {2, 3, 4}) {
        const CommandResult checked = e2fsck(backing, partition);
        EXPECT_EQ(checked.status, 0) << backing << " p" << partition << checked.out << checked.err;
      }
    }
    return by_backing;
  }

  TempDir dir_;
  std::string golden_;
  std::string golden_digest_;  // sha256sum of golden_
  std::uint64_t size_ = 0;
};

std::size_t count_state(const std::vector<PoolEntry>& pool, PoolState state) {
  std::size_t count = 0;
  for (const PoolEntry& entry : pool) count += entry.state == state ? 1 : 0;
  return count;
}

std::size_t occurrences(const std::string& text, const std::string& word) {
  std::size_t count = 0;
  for (auto at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++count;
  return count;
}

TEST_F(Station, ThreeSlotsFlashTenCardsAndTheEleventhGetsNothing) {
  const std::string ledger = dir_ / "ledger.db";
  imprint::open_ledger(ledger, true);
  const auto slots = cards(11);
  std::vector<std::string> args = station_args(ledger, devices_csv(dir_, 10), "line-1", slots);
  args.insert(args.end(), {"-j", "3", "--labels", dir_ / "labels"});
  const CommandResult result = run_imprint(args);
  EXPECT_NE(result.status, 0) << result.err;
  EXPECT_EQ(occurrences(result.err, "pool exhausted"), 1u) << result.err;
  EXPECT_NE(result.err.find("nothing written"), std::string::npos) << result.err;
  const auto pool = entries(ledger);
  ASSERT_EQ(pool.size(), 10u);
  EXPECT_EQ(count_state(pool, PoolState::Flashed), 10u);
  const auto held = check_cards(pool, slots);
  std::set<std::string> ids;
  int empty = 0;
  for (const auto& [file, id] : held) {
    if (id.empty()) ++empty;
    else EXPECT_TRUE(ids.insert(id).second) << id << " on two cards";
  }
  EXPECT_EQ(ids.size(), 10u);
  EXPECT_EQ(empty, 1);  // the 11th card: not one byte written (its backing file allocates nothing)
  // One label per flashed card; a QR code read back by zbar is the card's id.
  for (const std::string& id : ids) EXPECT_TRUE(fs::exists(dir_ / ("labels/" + id + ".svg"))) << id;
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "labels"), fs::directory_iterator()), 10);
  const std::string png = dir_ / "label.png";
  const CommandResult rendered = run({"rsvg-convert", "--width", "700", "--background-color", "white", "-o", png, dir_ / "labels/dev-007.svg"});
  ASSERT_EQ(rendered.status, 0) << "rsvg-convert (Debian librsvg2-bin): " << rendered.err;
  const CommandResult decoded = run({"zbarimg", "--quiet", "--raw", "-Sbinary", png});
  EXPECT_EQ(decoded.status, 0) << "zbarimg (Debian zbar-tools): " << decoded.err;
  EXPECT_EQ(decoded.out, "dev-007");
}

TEST_F(Station, StatusPageOfARunningStationInChromium) {
  const std::string ledger = dir_ / "ledger.db";
  imprint::open_ledger(ledger, true);
  const auto slots = cards(3);
  const std::string hold = dir_ / "hold";
  std::vector<std::string> args = station_args(ledger, devices_csv(dir_, 3), "line-h", slots);
  args.insert(args.end(), {"--http", "127.0.0.1:0"});
  Background station(args, dir_.path(), {"IMPRINT_TEST_STATION_HOLD=" + hold});
  ASSERT_TRUE(wait_for([&] { return fs::exists(hold) && station.err().find("status page at ") != std::string::npos; })) << station.err();
  const std::string err = station.err();
  const auto at = err.find("status page at ") + std::string("status page at ").size();
  const std::string url = err.substr(at, err.find('\n', at) - at);
  const std::string held = read_file(hold).substr(0, read_file(hold).find('\n'));
  TempDir browser;
  const StatusPageCapture capture = capture_status_page(url, browser);
  expect_png_not_blank(capture.screenshot, 1200, 800);
  expect_dom_shows_the_api_slots(capture);  // every device id /api/status reports is in the page
  ASSERT_EQ(capture.api["slots"].size(), 3u);
  bool writing = false;
  for (const auto& slot : capture.api["slots"]) writing = writing || (slot["device_id"] == held && slot["phase"] == "writing");
  EXPECT_TRUE(writing) << held << " is not writing in " << capture.api.dump();
  fs::remove(hold);
  EXPECT_EQ(station.wait(), 0) << station.err();
  EXPECT_EQ(count_state(entries(ledger), PoolState::Flashed), 3u);
}

TEST_F(Station, KillNineMidWriteThenRestartReconciles) {
  const std::string ledger = dir_ / "ledger.db";
  imprint::open_ledger(ledger, true);
  const std::string csv = devices_csv(dir_, 4);
  auto a = cards(1, "a"), b = cards(1, "b"), c = cards(1, "c"), d = cards(1, "d");
  const std::string hold = dir_ / "hold";
  auto kill_mid_write = [&](const std::vector<std::unique_ptr<Card>>& slot) {
    Background station(station_args(ledger, csv, "line-k", slot), dir_.path(), {"IMPRINT_TEST_STATION_HOLD=" + hold});
    ASSERT_TRUE(wait_for([&] { return fs::exists(hold); })) << station.err();
    station.signal(SIGKILL);
    EXPECT_EQ(station.wait(), 128 + SIGKILL);
    fs::remove(hold);
  };

  // Killed while writing dev-001 onto card a; restarted with a and b: a gets dev-001 again.
  kill_mid_write(a);
  auto pool = entries(ledger);
  EXPECT_EQ(pool[0].state, PoolState::Allocated);
  std::vector<std::unique_ptr<Card>> ab;
  ab.push_back(std::move(a[0]));
  ab.push_back(std::move(b[0]));
  const CommandResult restarted = run_imprint(station_args(ledger, csv, "line-k", ab));
  EXPECT_EQ(restarted.status, 0) << restarted.err;
  EXPECT_NE(restarted.err.find("dev-001 (left allocated by station line-k"), std::string::npos) << restarted.err;
  EXPECT_NE(restarted.out.find("dev-001 flashed and verified (reconciled)"), std::string::npos) << restarted.out;
  pool = entries(ledger);
  EXPECT_EQ(pool[0].state, PoolState::Flashed);
  EXPECT_EQ(pool[1].state, PoolState::Flashed);
  EXPECT_EQ(ab[0]->id(), "dev-001");
  EXPECT_EQ(ab[1]->id(), "dev-002");

  // Killed while writing dev-003 onto card c; restarted with d only: dev-003 is quarantined.
  kill_mid_write(c);
  const CommandResult without_c = run_imprint(station_args(ledger, csv, "line-k", d));
  EXPECT_EQ(without_c.status, 0) << without_c.err;
  EXPECT_NE(without_c.err.find("dev-003 (left allocated by station line-k, slot " + c[0]->device + "): quarantined"), std::string::npos)
      << without_c.err;
  pool = entries(ledger);
  EXPECT_EQ(pool[2].state, PoolState::Quarantined);
  EXPECT_EQ(pool[3].state, PoolState::Flashed);
  EXPECT_EQ(d[0]->id(), "dev-004");
  std::vector<std::unique_ptr<Card>> all;
  for (auto* list : {&ab, &d}) {
    for (auto& card : *list) all.push_back(std::move(card));
  }
  check_cards(pool, all);  // every flashed id on its own card, and on no other
}

TEST_F(Station, SigtermFinishesTheCardInFlight) {
  const std::string ledger = dir_ / "ledger.db";
  imprint::open_ledger(ledger, true);
  const auto slot = cards(2);
  const std::string hold = dir_ / "hold";
  std::vector<std::string> args = station_args(ledger, devices_csv(dir_, 3), "line-t", slot);
  args.insert(args.end(), {"-j", "1"});  // the second card waits for the first
  Background station(args, dir_.path(), {"IMPRINT_TEST_STATION_HOLD=" + hold});
  ASSERT_TRUE(wait_for([&] { return fs::exists(hold); })) << station.err();
  station.signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  fs::remove(hold);  // the card in flight goes on: it is finished, verified and recorded
  EXPECT_EQ(station.wait(), 1);
  EXPECT_NE(station.err().find("stopped by signal 15"), std::string::npos) << station.err();
  const auto pool = entries(ledger);
  EXPECT_EQ(count_state(pool, PoolState::Flashed), 1u);
  EXPECT_EQ(count_state(pool, PoolState::Allocated), 0u);
  EXPECT_EQ(count_state(pool, PoolState::Free), 2u);
  const auto held = check_cards(pool, slot);
  // -j 1: one card was written, on whichever slot took the one permit first; the other never started.
  const std::multiset<std::string> ids{held.at(slot[0]->file), held.at(slot[1]->file)};
  EXPECT_EQ(ids, (std::multiset<std::string>{"", "dev-001"}));
}

TEST_F(Station, SigtermMarksTheCardInFlightFailedAfterTheTimeout) {
  const std::string ledger = dir_ / "ledger.db";
  imprint::open_ledger(ledger, true);
  const auto slot = cards(1);
  const std::string hold = dir_ / "hold";
  std::vector<std::string> args = station_args(ledger, devices_csv(dir_, 2), "line-o", slot);
  args.insert(args.end(), {"--stop-timeout", "1"});
  Background station(args, dir_.path(), {"IMPRINT_TEST_STATION_HOLD=" + hold});
  ASSERT_TRUE(wait_for([&] { return fs::exists(hold); })) << station.err();
  station.signal(SIGTERM);
  EXPECT_EQ(station.wait(), 128 + SIGTERM);
  const auto pool = entries(ledger);
  EXPECT_EQ(pool[0].state, PoolState::Failed);
  EXPECT_NE(pool[0].reason.find("interrupted"), std::string::npos) << pool[0].reason;
  EXPECT_EQ(pool[1].state, PoolState::Free);
}

TEST_F(Station, WatchFlashesACardAttachedAfterTheStartOnly) {
  const std::string ledger = dir_ / "ledger.db";
  imprint::open_ledger(ledger, true);
  auto before = cards(1, "before");
  shell("printf 'not a card for the station' | dd of='" + before[0]->file + "' conv=notrunc status=none");
  const std::string before_sha = file_sha256(before[0]->file);
  auto after = cards(1, "after", false);
  std::vector<std::string> args = station_args(ledger, devices_csv(dir_, 3), "line-w", {});
  args.insert(args.end(), {"--watch", "--watch-match", dir_.path() + "/*"});
  Background station(args, dir_.path());
  ASSERT_TRUE(wait_for([&] { return station.err().find("watching for new cards") != std::string::npos; })) << station.err();
  after[0]->attach();
  ASSERT_TRUE(wait_for([&] { return count_state(entries(ledger), PoolState::Flashed) == 1; })) << station.err();
  station.signal(SIGTERM);
  EXPECT_EQ(station.wait(), 0) << station.err();  // --watch ends with a signal; every card was flashed
  const auto pool = entries(ledger);
  EXPECT_EQ(count_state(pool, PoolState::Flashed), 1u);
  EXPECT_EQ(count_state(pool, PoolState::Allocated), 0u);
  EXPECT_EQ(after[0]->id(), "dev-001");
  EXPECT_EQ(pool[0].card->serial, "loop:" + after[0]->file);
  EXPECT_EQ(file_sha256(before[0]->file), before_sha);  // present at the start: never written
  std::vector<std::unique_ptr<Card>> all;
  all.push_back(std::move(after[0]));
  check_cards(pool, all);
}

// Two station processes, 3 slots each (11 cards each, 22 in all), one ledger with 20 ids: 20 cards
// hold 20 different ids, the ledger agrees card for card, and 2 cards get nothing.
class TwoStations : public Station {
 protected:
  void run_two(const std::string& ledger) {
    imprint::open_ledger(ledger, true);
    const std::string csv = devices_csv(dir_, 20);
    auto first = cards(11, "one-"), second = cards(11, "two-");
    std::vector<std::string> one = station_args(ledger, csv, "line-a", first), two = station_args(ledger, csv, "line-b", second);
    one.insert(one.end(), {"-j", "3"});
    two.insert(two.end(), {"-j", "3"});
    Background a(one, dir_.path()), b(two, dir_.path());
    a.wait();
    b.wait();
    EXPECT_EQ(occurrences(a.err() + b.err(), "pool exhausted"), 2u) << a.err() << b.err();
    const auto pool = entries(ledger);
    ASSERT_EQ(pool.size(), 20u);
    EXPECT_EQ(count_state(pool, PoolState::Flashed), 20u);
    std::set<std::string> stations;
    for (const PoolEntry& entry : pool) stations.insert(entry.station);
    EXPECT_EQ(stations, (std::set<std::string>{"line-a", "line-b"}));
    std::vector<std::unique_ptr<Card>> all;
    for (auto* list : {&first, &second}) {
      for (auto& card : *list) all.push_back(std::move(card));
    }
    const auto held = check_cards(pool, all);
    std::map<std::string, int> uses;
    for (const auto& [file, id] : held) {
      if (!id.empty()) ++uses[id];
    }
    EXPECT_EQ(uses.size(), 20u);
    for (const auto& [id, count] : uses) EXPECT_EQ(count, 1) << id;
  }
};

TEST_F(TwoStations, OneSqliteLedgerEveryIdOnce) { run_two(dir_ / "ledger.db"); }

TEST_F(TwoStations, OnePostgresqlServerEveryIdOnce) {
  PostgresServer server;
  run_two(server.create_database());
}

}  // namespace
