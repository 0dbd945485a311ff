// A guestfs-backed stamp stopped by SIGTERM or kill -9 while qemu-nbd and the appliance's qemu run
// leaves no process, no temp directory, no qcow2 overlay beside the output and no holder of its
// stdout behind. Each case starts one
// launch and kills it after a few seconds (no appliance boots to the end).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "support.hpp"

extern char** environ;

using namespace imprint::test;

namespace {

struct Process {
  pid_t parent = 0;
  std::string comm;
  char state = 0;
};

std::map<pid_t, Process> processes() {
  std::map<pid_t, Process> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const auto open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos || line.size() < close + 5) continue;
    Process process;
    process.comm = line.substr(open + 1, close - open - 1);
    process.state = line[close + 2];
    process.parent = std::atoi(line.c_str() + close + 4);
    found[std::stoi(name)] = process;
  }
  return found;
}

// Every live descendant of root: pid -> command name.
std::map<pid_t, std::string> descendants(pid_t root) {
  const auto all = processes();
  std::map<pid_t, std::string> found;
  bool grew = true;
  while (grew) {
    grew = false;
    for (const auto& [pid, process] : all) {
      if (found.count(pid) == 0 && process.state != 'Z' && (process.parent == root || found.count(process.parent) != 0)) {
        found[pid] = process.comm;
        grew = true;
      }
    }
  }
  return found;
}

bool alive(pid_t pid, const std::string& comm) {
  const auto all = processes();
  const auto found = all.find(pid);
  return found != all.end() && found->second.state != 'Z' && found->second.comm == comm;
}

template <typename Done>
bool within(double seconds, Done done) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

// Reads the pipe until end of file (true) or `seconds` pass (false: something still holds it).
bool reaches_eof(int fd, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  char buffer[4096];
  while (std::chrono::steady_clock::now() < end) {
    pollfd poller{fd, POLLIN, 0};
    if (::poll(&poller, 1, 100) > 0 && ::read(fd, buffer, sizeof buffer) == 0) return true;
  }
  return false;
}

class GuestfsLifetime : public ::testing::TestWithParam<int> {};

TEST_P(GuestfsLifetime, NothingOutlivesAStoppedStamp) {
  const int signal_number = GetParam();
  TempDir dir;
  const std::string tmpdir = dir / "tmp";
  std::filesystem::create_directories(tmpdir);
  write_file(dir / "profile.yaml", "version: 1\nfiles:\n  - path: /uboot/imprint-lifetime.txt\n    content: \"x\\n\"\n    mode: \"0644\"\n");
  const std::string golden = fixture("mbr.img");
  const std::string golden_sha = file_sha256(golden);

  // imprint stamp, its stdout and stderr on a pipe (as in a CI step piping to tee).
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, out[1], 2);
  const std::vector<std::string> arguments{imprint_bin(), "stamp", "-p", dir / "profile.yaml", "-i", golden,
                                           "--device", "dev-1", "-o", dir / "out.img"};
  std::vector<char*> argv;
  for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> environment{"TMPDIR=" + tmpdir};
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (std::string(*entry).rfind("TMPDIR=", 0) != 0) environment.emplace_back(*entry);
  }
  std::vector<char*> envp;
  for (auto& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);
  pid_t imprint = 0;
  ASSERT_EQ(::posix_spawn(&imprint, argv[0], &actions, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);

  // Wait for qemu-nbd (serving the unnamed output) and the appliance's qemu.
  std::map<pid_t, std::string> helpers;
  const bool running = within(90, [&] {
    helpers = descendants(imprint);
    bool nbd = false, qemu = false;
    for (const auto& [pid, comm] : helpers) {
      nbd = nbd || comm == "qemu-nbd";
      qemu = qemu || comm.rfind("qemu-system", 0) == 0;
    }
    return nbd && qemu;
  });
  ASSERT_TRUE(running) << "qemu-nbd and qemu did not both start";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past the launch watcher's next look
  helpers = descendants(imprint);
  EXPECT_FALSE(std::filesystem::is_empty(tmpdir));  // imprint's private directory is there

  ::kill(imprint, signal_number);
  int status = 0;
  ASSERT_EQ(::waitpid(imprint, &status, 0), imprint);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == signal_number) << status;

  for (const auto& helper : helpers) {
    EXPECT_TRUE(within(5, [&] { return !alive(helper.first, helper.second); }))
        << helper.second << " (" << helper.first << ") outlived imprint";
  }
  EXPECT_TRUE(reaches_eof(out[0], 5)) << "something still holds imprint's stdout";
  ::close(out[0]);
  if (!within(5, [&] { return std::filesystem::is_empty(tmpdir); })) {
    ADD_FAILURE() << "temp files left: " << shell("find '" + tmpdir + "' -ls; ps -eo pid,ppid,stat,comm | grep -E 'qemu|imprint' || true");
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "out.img"));
  // Nor the qcow2 overlay the appliance writes into (beside the output: it holds the device's secrets).
  EXPECT_EQ(directory_entries(dir.path()), (std::vector<std::string>{"profile.yaml", "tmp"}));
  EXPECT_EQ(file_sha256(golden), golden_sha);
}

INSTANTIATE_TEST_SUITE_P(Signals, GuestfsLifetime, ::testing::Values(SIGTERM, SIGKILL),
                         [](const auto& param_info) { return std::string(sigabbrev_np(param_info.param)); });

}  // namespace
