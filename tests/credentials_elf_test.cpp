// ELF checks on real binaries built by fixtures/make-elf.sh (arm-linux-gnueabihf-gcc, gcc), and on
// truncated and corrupted copies of them.
#include <gtest/gtest.h>
#include <elf.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>

#include "imprint/credentials/elf.hpp"
#include "imprint/core/error.hpp"
#include "credentials_support.hpp"
#include "support.hpp"

namespace imprint {
namespace {

// The bytes of an ELF fixture.
std::string elf_fixture(const std::string& name) { return test::read_file(test::elf_fixture(name)); }

// A Debian armhf root filesystem's library files, as paths.
LibraryExists rootfs(std::set<std::string> files) {
  return [files = std::move(files)](const std::string& path) { return files.count(path) > 0; };
}
const std::set<std::string> kBookworm{"/lib/ld-linux-armhf.so.3", "/usr/lib/arm-linux-gnueabihf/libc.so.6",
                                      "/usr/lib/arm-linux-gnueabihf/libssl.so.3", "/usr/lib/arm-linux-gnueabihf/libcrypto.so.3"};

TEST(Elf, ReadsTheArmhfExecutable) {
  const ElfInfo info = read_elf(elf_fixture("hello-armhf"));
  EXPECT_EQ(info.bits, 32);
  EXPECT_TRUE(info.little_endian);
  EXPECT_EQ(info.machine, EM_ARM);
  EXPECT_EQ(info.arm_eabi_version, 5);
  EXPECT_TRUE(info.arm_hard_float);
  EXPECT_EQ(info.interpreter, "/lib/ld-linux-armhf.so.3");
  EXPECT_EQ(info.needed, std::vector<std::string>{"libc.so.6"});
  EXPECT_EQ(arch_name(info), "armhf");
  EXPECT_EQ(describe_elf(info), "ELF 32-bit LSB ARM, EABI5, hard-float (armhf)");
  // Independent reader agrees.
  const auto readelf = test::run({"readelf", "-h", test::fixture("elf/hello-armhf")});
  EXPECT_NE(readelf.out.find("hard-float ABI"), std::string::npos) << readelf.out;

  const ElfInfo ssl = read_elf(elf_fixture("needs-ssl11-armhf"));
  EXPECT_EQ(ssl.needed, (std::vector<std::string>{"libssl.so.1.1", "libcrypto.so.1.1", "libc.so.6"}));
}

TEST(Elf, ReadsTheHostExecutable) {
  const ElfInfo info = read_elf(elf_fixture("hello-x86_64"));
  EXPECT_EQ(info.bits, 64);
  EXPECT_EQ(info.machine, EM_X86_64);
  EXPECT_EQ(arch_name(info), "x86_64");
  EXPECT_EQ(info.interpreter, "/lib64/ld-linux-x86-64.so.2");
  EXPECT_EQ(info.needed, std::vector<std::string>{"libc.so.6"});
}

TEST(Elf, CheckPassesWhenTheRootfsHasEverything) {
  EXPECT_EQ(elf_problems(elf_fixture("hello-armhf"), "armhf", rootfs(kBookworm)), std::vector<std::string>{});
  EXPECT_NO_THROW(check_elf(elf_fixture("hello-armhf"), "armhf", rootfs(kBookworm), "/usr/bin/hello"));
  // /lib/arm-linux-gnueabihf is searched too (non-merged /usr).
  EXPECT_NO_THROW(check_elf(elf_fixture("hello-armhf"), "armhf",
                            rootfs({"/lib/ld-linux-armhf.so.3", "/lib/arm-linux-gnueabihf/libc.so.6"}), "hello"));
}

TEST(Elf, X86BinaryForAnArmhfImageIsRefused) {
  try {
    check_elf(elf_fixture("hello-x86_64"), "armhf", rootfs(kBookworm), "/usr/bin/prov_dev_client_bbb");
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::CheckFailed);
    EXPECT_EQ(std::string(error.what()), "/usr/bin/prov_dev_client_bbb: is ELF 64-bit LSB (x86_64), expected armhf");
  }
  EXPECT_EQ(elf_problems(elf_fixture("hello-armhf"), "aarch64", rootfs(kBookworm)),
            std::vector<std::string>{"is ELF 32-bit LSB ARM, EABI5, hard-float (armhf), expected aarch64"});
  EXPECT_EQ(elf_problems("#!/bin/sh\necho hi\n", "armhf", rootfs(kBookworm)),
            std::vector<std::string>{"is not a usable ELF executable (not an ELF file)"});
}

TEST(Elf, MissingLibrariesAreAllNamed) {
  try {
    check_elf(elf_fixture("needs-ssl11-armhf"), "armhf", rootfs(kBookworm), "/usr/bin/prov_dev_client_bbb");
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::CheckFailed);
    EXPECT_EQ(std::string(error.what()),
              "/usr/bin/prov_dev_client_bbb: needs libssl.so.1.1, libcrypto.so.1.1 which the root filesystem lacks "
              "(the root filesystem has libssl.so.3: build the client against it)");
  }
  // A Debian 11 root filesystem has them.
  auto bullseye = kBookworm;
  bullseye.insert({"/usr/lib/arm-linux-gnueabihf/libssl.so.1.1", "/usr/lib/arm-linux-gnueabihf/libcrypto.so.1.1"});
  EXPECT_NO_THROW(check_elf(elf_fixture("needs-ssl11-armhf"), "armhf", rootfs(bullseye), "client"));
  // No interpreter, no libc.
  EXPECT_EQ(elf_problems(elf_fixture("hello-armhf"), "armhf", rootfs({})),
            (std::vector<std::string>{"needs the interpreter /lib/ld-linux-armhf.so.3 which the root filesystem lacks",
                                      "needs libc.so.6 which the root filesystem lacks"}));
}

// The cross toolchain's libc, the one the fixture root filesystems carry.
const std::string kArmhfLibc = "/usr/arm-linux-gnueabihf/lib/libc.so.6";

// readelf's list of the versions a file needs or defines: the independent oracle.
std::set<std::string> readelf_versions(const std::string& path, const std::string& section_marker) {
  const std::string text = test::shell("readelf -V '" + path + "'");
  std::set<std::string> names;
  const auto at = text.find(section_marker);
  if (at == std::string::npos) return names;
  std::istringstream lines(text.substr(at));
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line) && !line.empty()) {
    const auto name = line.find("Name: ");
    if (name != std::string::npos) names.insert(line.substr(name + 6, line.find_first_of(" \t", name + 6) - name - 6));
  }
  return names;
}

TEST(Elf, ReadsVersionNeedsAndDefinitionsAsReadelfDoes) {
  const ElfInfo hello = read_elf(elf_fixture("hello-armhf"));
  std::set<std::string> needed;
  for (const VersionNeed& need : hello.version_needs) {
    EXPECT_EQ(need.library, "libc.so.6");
    needed.insert(need.version);
  }
  EXPECT_EQ(needed, readelf_versions(test::fixture("elf/hello-armhf"), ".gnu.version_r"));
  EXPECT_TRUE(needed.count("GLIBC_2.34")) << "built with glibc >= 2.34: __libc_start_main@GLIBC_2.34";
  const ElfInfo libc = read_elf(test::read_file(kArmhfLibc));
  std::set<std::string> defined(libc.version_definitions.begin(), libc.version_definitions.end());
  std::set<std::string> expected = readelf_versions(kArmhfLibc, ".gnu.version_d");
  expected.erase("libc.so.6");  // the base definition is the soname
  EXPECT_EQ(defined, expected);
}

// A client built against a newer glibc: its version need rewritten from GLIBC_2.34 to GLIBC_2.99
// (same length, in .dynstr), as a client from a current cross toolchain needs GLIBC_2.38+.
TEST(Elf, AVersionTheImagesLibcLacksIsRefusedNamingTheNewestItHas) {
  std::string client = elf_fixture("hello-armhf");
  for (std::size_t at = client.find("GLIBC_2.34"); at != std::string::npos; at = client.find("GLIBC_2.34", at)) {
    client.replace(at, 10, "GLIBC_2.99");
  }
  RootFilesystem root;
  root.exists = [](const std::string& path) { return kBookworm.count(path) > 0; };
  root.read = [](const std::string& path) -> std::optional<std::string> {
    if (path == "/usr/lib/arm-linux-gnueabihf/libc.so.6") return test::read_file(kArmhfLibc);
    return std::nullopt;
  };
  EXPECT_EQ(elf_problems(elf_fixture("hello-armhf"), "armhf", root), std::vector<std::string>{});
  const std::string newest = test::shell("readelf -V " + kArmhfLibc + " | grep -o 'GLIBC_2\\.[0-9]*' | sort -V | tail -n 1");
  EXPECT_EQ(elf_problems(client, "armhf", root),
            std::vector<std::string>{"needs GLIBC_2.99 from libc.so.6, which the root filesystem's "
                                     "/usr/lib/arm-linux-gnueabihf/libc.so.6 lacks (newest there: " + newest.substr(0, newest.find('\n')) + ")"});
  // Without a way to read the library, versions are not checked (and nothing is claimed).
  EXPECT_EQ(elf_problems(client, "armhf", rootfs(kBookworm)), std::vector<std::string>{});
}

TEST(Elf, TruncatedAndCorruptInputGivesErrorsNotCrashes) {
  const std::string bytes = elf_fixture("needs-ssl11-armhf");
  std::size_t errors = 0;
  for (std::size_t size = 0; size < bytes.size(); size += (size < 4096 ? 1 : 97)) {
    try {
      read_elf(std::string_view(bytes).substr(0, size));
    } catch (const Error& error) {
      ++errors;
      EXPECT_TRUE(error.code() == ErrorCode::Corrupt || error.code() == ErrorCode::Invalid) << error.what();
    }
  }
  EXPECT_GT(errors, 52u);  // at least every cut inside the ELF header
  EXPECT_THROW(read_elf(std::string_view(bytes).substr(0, 20)), Error);
  std::mt19937 random(42);
  for (int round = 0; round < 2000; ++round) {
    std::string corrupt = bytes;
    for (int flips = 0; flips < 8; ++flips) {
      corrupt[random() % std::min<std::size_t>(corrupt.size(), 2048)] = static_cast<char>(random());
    }
    try {
      const ElfInfo info = read_elf(corrupt);
      (void)arch_name(info);
    } catch (const Error&) {
    }
  }
  // A big-endian header is read with swapped fields.
  std::string big = bytes.substr(0, sizeof(Elf32_Ehdr));
  big[EI_DATA] = ELFDATA2MSB;
  std::swap(big[18], big[19]);  // e_machine
  big[44] = big[45] = 0;        // e_phnum = 0
  EXPECT_EQ(read_elf(big).machine, EM_ARM);
  EXPECT_FALSE(read_elf(big).little_endian);
  EXPECT_EQ(arch_name(read_elf(big)), "armeb");
}

TEST(Elf, LibraryDirectories) {
  EXPECT_EQ(library_directories("armhf"),
            (std::vector<std::string>{"/lib/arm-linux-gnueabihf", "/usr/lib/arm-linux-gnueabihf", "/lib", "/usr/lib"}));
  EXPECT_EQ(library_directories("aarch64").front(), "/lib/aarch64-linux-gnu");
}

}  // namespace
}  // namespace imprint
