// Helper processes and temp directories die with imprint (lifetime.hpp): a forked copy of this test
// plays imprint, starts a helper and a private directory, and is then ended by SIGTERM, SIGINT,
// SIGKILL or a normal return.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "imprint/core/error.hpp"
#include "imprint/core/lifetime.hpp"
#include "support.hpp"

namespace imprint {
namespace {

struct Started {
  pid_t imprint = 0;  // the forked stand-in for imprint
  pid_t helper = 0;   // its `sleep`, spawned with spawn_helper
  std::string directory;
};

bool alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close = line.rfind(')');
  return close != std::string::npos && line.size() > close + 2 && line[close + 2] != 'Z';  // a zombie is dead
}

// true once `done` holds, false after `seconds`.
template <typename Done>
bool within(double seconds, Done done) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

// Forks the stand-in: it creates a private directory (a file inside) and a registered file
// tmpdir/partial.img, spawns `sleep 600` guarded, reports, then waits for a signal (or, when
// `finish` is true, stops the helper, releases the file and exits without destructors).
Started start(const std::string& tmpdir, bool finish = false) {
  int report[2];
  EXPECT_EQ(::pipe(report), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(report[0]);
    ::setenv("TMPDIR", tmpdir.c_str(), 1);
    {
      PrivateTempDir directory("imprint-test-");
      std::ofstream(directory.path() + "/socket") << "x";
      std::ofstream(tmpdir + "/partial.img") << "a partial output";  // e.g. a hidden output in progress
      PathRegistration partial(tmpdir + "/partial.img");
      const pid_t helper = spawn_helper({"sleep", "600"});
      ChildRegistration registered(helper, true);
      const std::string message = std::to_string(helper) + " " + directory.path() + "\n";
      [[maybe_unused]] const ssize_t written = ::write(report[1], message.data(), message.size());
      if (finish) {
        ::kill(helper, SIGTERM);
        registered.release();
        ::waitpid(helper, nullptr, 0);
        partial.release();  // "renamed into place": it stays
        ::_exit(0);  // the directory stays: only the guardian removes it now
      }
      for (;;) ::pause();
    }
  }
  ::close(report[1]);
  Started started;
  started.imprint = pid;
  std::string text(4096, '\0');
  const ssize_t got = ::read(report[0], text.data(), text.size());
  ::close(report[0]);
  text.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  std::istringstream(text) >> started.helper >> started.directory;
  EXPECT_GT(started.helper, 0) << text;
  EXPECT_FALSE(started.directory.empty());
  return started;
}

int end_with(const Started& started, int signal_number) {
  EXPECT_TRUE(alive(started.helper));
  EXPECT_TRUE(std::filesystem::exists(started.directory + "/socket"));
  ::kill(started.imprint, signal_number);
  int status = 0;
  ::waitpid(started.imprint, &status, 0);
  return status;
}

class Lifetime : public ::testing::TestWithParam<int> {};

TEST_P(Lifetime, HelperAndDirectoryGoWithImprint) {
  test::TempDir tmp;
  const int signal_number = GetParam();
  const Started started = start(tmp.path());
  const int status = end_with(started, signal_number);
  // SIGTERM, SIGINT, SIGHUP: cleaned up, then the same signal re-raised (the exit status says so).
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == signal_number) << status;
  EXPECT_TRUE(within(3, [&] { return !alive(started.helper); })) << "helper " << started.helper << " survived";
  EXPECT_TRUE(within(3, [&] { return !std::filesystem::exists(started.directory); })) << started.directory;
  EXPECT_TRUE(within(3, [&] { return std::filesystem::is_empty(tmp.path()); }));
}

INSTANTIATE_TEST_SUITE_P(Signals, Lifetime, ::testing::Values(SIGTERM, SIGINT, SIGHUP, SIGKILL),
                         [](const auto& param_info) { return std::string(sigabbrev_np(param_info.param)); });

TEST(Lifetime, TheGuardianCleansUpAfterANormalExitToo) {
  test::TempDir tmp;
  const Started started = start(tmp.path(), true);
  int status = 0;
  ::waitpid(started.imprint, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_TRUE(within(3, [&] { return !std::filesystem::exists(started.directory); })) << started.directory;
  EXPECT_EQ(test::read_file(tmp / "partial.img"), "a partial output");
}

TEST(Lifetime, AnIgnoredSignalStaysIgnored) {
  test::TempDir tmp;
  ::signal(SIGHUP, SIG_IGN);  // as under nohup; inherited by the fork
  const Started started = start(tmp.path());
  ::signal(SIGHUP, SIG_DFL);
  ::kill(started.imprint, SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(alive(started.imprint));
  EXPECT_TRUE(alive(started.helper));
  end_with(started, SIGKILL);
  EXPECT_TRUE(within(3, [&] { return !alive(started.helper); }));
}

// The guardian's pid: the child of `parent` named imprint-guard.
pid_t guardian_of(pid_t parent) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line) || line.find("(imprint-guard)") == std::string::npos) continue;
    if (std::atoi(line.c_str() + line.rfind(')') + 4) == parent) return std::atoi(line.c_str());
  }
  return 0;
}

TEST(Lifetime, AGuardianKilledBySomeoneElseDoesNotKillImprint) {
  test::TempDir tmp;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("TMPDIR", tmp.path().c_str(), 1);
    PrivateTempDir directory("imprint-test-");
    pid_t guardian = 0;  // named once it has run its first lines
    for (int tries = 0; tries < 100 && guardian <= 0; ++tries, ::usleep(10000)) guardian = guardian_of(::getpid());
    if (guardian <= 0) ::_exit(2);
    ::kill(guardian, SIGKILL);
    ::waitpid(guardian, nullptr, 0);
    { ChildRegistration registered(::getpid(), true); }  // would raise SIGPIPE on a pipe with no reader
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(Lifetime, SpawnHelperNamesAProgramItCannotRun) {
  const Error error = test::expect_error([] { spawn_helper({"imprint-no-such-program"}); }, ErrorCode::Unsupported);
  EXPECT_STREQ(error.what(), "cannot run imprint-no-such-program: not found in PATH");
  try {
    spawn_helper({"/etc/passwd"});  // not executable: the child's execv error comes back
    ADD_FAILURE() << "no error";
  } catch (const Error& refused) {
    EXPECT_STREQ(refused.what(), "cannot start /etc/passwd: Permission denied");
  }
}

TEST(Lifetime, RemoveTreeNowRemovesNestedDirectories) {
  test::TempDir tmp;
  const std::string root = tmp / "tree";
  std::filesystem::create_directories(root + "/a/b/c");
  std::ofstream(root + "/a/b/c/file") << "x";
  std::ofstream(root + "/top") << "y";
  std::filesystem::create_symlink("/etc", root + "/a/link");  // removed, not followed
  EXPECT_TRUE(remove_tree_now(root.c_str()));
  EXPECT_FALSE(std::filesystem::exists(root));
  EXPECT_TRUE(std::filesystem::exists("/etc/passwd"));
}

}  // namespace
}  // namespace imprint
