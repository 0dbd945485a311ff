// What an imprint command loads before it does anything. libguestfs pulls ~70 shared libraries
// (libvirt, glib/gio, gnutls, libssh...) whose constructors cost every command ~25 ms, and only an
// appliance launch needs them: src/guestfs/api.hpp loads it with dlopen then. Checked with binutils'
// readelf (the executable's dynamic section) and the dynamic loader's own trace of what a command
// loads (LD_DEBUG=files). That a launch still finds the library is the guestfs_* tests' part.
#include <gtest/gtest.h>

#include "support.hpp"

using namespace imprint::test;

namespace {

// Every library the dynamic loader loaded while imprint ran `arguments` (its LD_DEBUG=files
// trace, on stderr), failing the test when the trace is missing.
std::string loaded_libraries(const std::vector<std::string>& arguments) {
  const CommandResult result = run_imprint(arguments, "", {"LD_DEBUG=files"});
  EXPECT_EQ(result.status, 0) << result.err;
  EXPECT_NE(result.err.find("file=libc.so.6"), std::string::npos) << "no LD_DEBUG trace of the loader:\n" << result.err;
  return result.err;
}

}  // namespace

TEST(Startup, TheExecutableDoesNotNeedLibguestfs) {
  const CommandResult dynamic = run({"readelf", "-d", imprint_bin()});
  ASSERT_EQ(dynamic.status, 0) << "readelf (Debian package binutils): " << dynamic.err;
  ASSERT_NE(dynamic.out.find("(NEEDED)"), std::string::npos) << "not a dynamic executable?\n" << dynamic.out;
  EXPECT_EQ(dynamic.out.find("libguestfs"), std::string::npos) << dynamic.out;
}

TEST(Startup, CommandsWithoutAnApplianceNeverLoadLibguestfsOrWhatItPulls) {
  // --version, and a listing of an ext4 partition (the native backend, no appliance).
  const std::vector<std::vector<std::string>> commands{{"--version"}, {"ls", fixture("mbr.img") + ":data:/"}};
  for (const auto& arguments : commands) {
    const std::string trace = loaded_libraries(arguments);
    for (const char* library : {"file=libguestfs", "file=libvirt", "file=libglib-2.0", "file=libgio-2.0"}) {
      EXPECT_EQ(trace.find(library), std::string::npos) << "imprint " << arguments.front() << " loaded " << library << ":\n" << trace;
    }
  }
}
