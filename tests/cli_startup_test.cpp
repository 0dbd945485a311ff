// What an imprint command loads before it does anything. libguestfs pulls ~60 shared libraries
// (libvirt, glib/gio, gnutls, libssh...) and libpqxx/libpq another ~28 (Kerberos, LDAP...), whose
// constructors and relocations cost every command tens of milliseconds; only an appliance launch
// and a PostgreSQL ledger need them, and load them then (src/guestfs/api.hpp,
// src/ledger/postgres_module.cpp). Checked with binutils' readelf (the executable's dynamic
// section) and the dynamic loader's own trace of what a command loads (LD_DEBUG=files), which also
// shows that the commands that need a library still load it.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "support.hpp"

using namespace imprint::test;

namespace {

const char* const kLateLibraries[] = {"libguestfs.so", "libvirt.so", "libglib-2.0.so", "libgio-2.0.so",
                                      "libpqxx",       "libpq.so",   "libkrb5.so",     "libldap"};

// The LD_DEBUG=files trace (stderr) of `imprint arguments`, after checking it is one.
CommandResult traced(const std::vector<std::string>& arguments, std::vector<std::string> environment = {}) {
  environment.push_back("LD_DEBUG=files");
  const CommandResult result = run_imprint(arguments, "", environment);
  EXPECT_NE(result.err.find("file=libc.so.6"), std::string::npos) << "no LD_DEBUG trace of the loader:\n" << result.err;
  return result;
}

bool loaded(const CommandResult& trace, const std::string& library) {
  return trace.err.find("file=" + library) != std::string::npos;
}

}  // namespace

TEST(Startup, TheExecutableNeedsNeitherLibguestfsNorLibpq) {
  const CommandResult dynamic = run({"readelf", "-d", imprint_bin()});
  ASSERT_EQ(dynamic.status, 0) << "readelf (Debian package binutils): " << dynamic.err;
  ASSERT_NE(dynamic.out.find("(NEEDED)"), std::string::npos) << "not a dynamic executable?\n" << dynamic.out;
  for (const std::string library : {"libguestfs", "libpq"}) {
    EXPECT_EQ(dynamic.out.find(library), std::string::npos) << library << " is NEEDED:\n" << dynamic.out;
  }
}

TEST(Startup, CommandsWithoutAnApplianceOrPostgresLoadNeither) {
  TempDir dir;
  write_file(dir / "devices.csv", "device_id\ndev-001\n");
  // --version, a listing of an ext4 partition (native backend), a SQLite ledger.
  const std::vector<std::vector<std::string>> commands{
      {"--version"},
      {"ls", fixture("mbr.img") + ":data:/"},
      {"ledger", "init", dir / "ledger.db", "--devices", dir / "devices.csv"}};
  for (const auto& arguments : commands) {
    const CommandResult trace = traced(arguments);
    EXPECT_EQ(trace.status, 0) << trace.err;
    for (const char* library : kLateLibraries) {
      EXPECT_FALSE(loaded(trace, library)) << "imprint " << arguments.front() << " loaded " << library << ":\n" << trace.err;
    }
  }
}

// The other side: a command that needs libguestfs or libpq loads it (and what it pulls), even when
// it then fails (no appliance to launch; no server at the URL).
TEST(Startup, CommandsThatNeedThemLoadThemWhenTheyNeedThem) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  write_file(dir / "x", "x\n");
  std::filesystem::create_directories(dir / "empty");
  const CommandResult boot = traced({"put", dir / "x", image + ":/uboot/x"},
                                    {"LIBGUESTFS_PATH=" + (dir / "empty"), "XDG_CACHE_HOME=" + (dir / "cache")});
  EXPECT_NE(boot.err.find("cannot launch the libguestfs appliance"), std::string::npos) << boot.err;
  EXPECT_TRUE(loaded(boot, "libguestfs.so.0")) << boot.err;
  EXPECT_TRUE(loaded(boot, "libvirt.so")) << boot.err;
  EXPECT_FALSE(loaded(boot, "libpq.so")) << boot.err;

  const CommandResult ledger = traced({"ledger", "status", "postgresql:///nowhere?host=" + dir.path()});
  EXPECT_NE(ledger.err.find("cannot open ledger postgresql:///nowhere"), std::string::npos) << ledger.err;
  EXPECT_TRUE(loaded(ledger, "libpq.so.5")) << ledger.err;
  EXPECT_FALSE(loaded(ledger, "libguestfs.so")) << ledger.err;
}

// An executable whose PostgreSQL module is not beside it: one line naming the module, never the
// URL's password; SQLite ledgers still work.
TEST(Startup, WithoutItsPostgresModuleImprintSaysSoAndSqliteLedgersStillWork) {
  TempDir dir;
  const std::string alone = dir / "imprint";
  std::error_code error;
  std::filesystem::create_hard_link(imprint_bin(), alone, error);
  if (error) std::filesystem::copy_file(imprint_bin(), alone);
  const std::string url = "postgresql://imprint:hunter2@/db?host=" + dir.path();
  const CommandResult postgres = run({alone, "ledger", "status", url});
  EXPECT_EQ(postgres.status, 1) << postgres.err;
  EXPECT_EQ(postgres.err.rfind("imprint: cannot open ledger postgresql://imprint:***@/db?host=" + dir.path() +
                                   ": the PostgreSQL backend " + dir.path() + "/imprint-postgres.so cannot be loaded",
                               0),
            0u)
      << postgres.err;
  EXPECT_EQ(std::count(postgres.err.begin(), postgres.err.end(), '\n'), 1) << postgres.err;
  EXPECT_EQ(postgres.err.find("hunter2"), std::string::npos) << postgres.err;

  write_file(dir / "devices.csv", "device_id\ndev-001\n");
  const CommandResult sqlite = run({alone, "ledger", "init", dir / "ledger.db", "--devices", dir / "devices.csv"});
  EXPECT_EQ(sqlite.status, 0) << sqlite.err;
}
