// ELF checks on real binaries built by fixtures/make-elf.sh (arm-linux-gnueabihf-gcc, gcc), and on
// truncated and corrupted copies of them.
#include <gtest/gtest.h>
#include <elf.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>

#include "imprint/elf.hpp"
#include "imprint/error.hpp"
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
              "(Debian 12 ships libssl3)");
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
