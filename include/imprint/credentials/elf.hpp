// ELF executables: what architecture, and which interpreter and shared libraries they need, so a
// binary for the wrong board or needing a library the image lacks is refused before flashing.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imprint {

// A symbol version the file needs from one of its libraries (.gnu.version_r), e.g. GLIBC_2.34 from
// libc.so.6. A weak need only makes the loader warn.
struct VersionNeed {
  std::string library;
  std::string version;
  bool weak = false;
  bool operator==(const VersionNeed&) const = default;
};

struct ElfInfo {
  int bits = 0;                 // 32 | 64 (ELFCLASS)
  bool little_endian = true;
  std::uint16_t type = 0;       // ET_EXEC, ET_DYN, ...
  std::uint16_t machine = 0;    // EM_ARM, EM_AARCH64, EM_X86_64, ...
  std::uint32_t flags = 0;      // e_flags
  int arm_eabi_version = 0;     // EF_ARM_EABI_VERSION (5 for today's ARM Linux), ARM only
  bool arm_hard_float = false;  // EF_ARM_ABI_FLOAT_HARD, ARM only
  std::string interpreter;      // PT_INTERP, empty for static executables
  std::vector<std::string> needed;   // DT_NEEDED in order
  std::vector<std::string> runpath;  // DT_RUNPATH / DT_RPATH directories
  std::vector<VersionNeed> version_needs;        // DT_VERNEED
  std::vector<std::string> version_definitions;  // DT_VERDEF names a library provides (its soname excluded)
};

// Parses the ELF header, PT_INTERP and the dynamic section. Every offset is bounds-checked:
// truncated or corrupt input is Error(Corrupt) (not an ELF file: Error(Invalid)), never a crash.
ElfInfo read_elf(std::string_view bytes);

// "armhf", "armel", "arm", "aarch64", "x86_64", "i386", "riscv64", ... or "unknown (machine N)".
std::string arch_name(const ElfInfo& info);
// One-line description: "ELF 32-bit LSB ARM, EABI5, hard-float (armhf)".
std::string describe_elf(const ElfInfo& info);
// Library directories searched for DT_NEEDED on that architecture, most specific first.
std::vector<std::string> library_directories(const std::string& arch);

// Asked with an absolute path in the target root filesystem; true when a file is there.
using LibraryExists = std::function<bool(const std::string& path)>;

// What the checks may ask of the target root filesystem.
struct RootFilesystem {
  LibraryExists exists;
  // The bytes of a file there (following links inside the filesystem), for the libraries' version
  // definitions; unset, or nullopt for a path, when unknown (versions are then not checked).
  std::function<std::optional<std::string>(const std::string& path)> read;
  std::string os_name;  // PRETTY_NAME of its /etc/os-release, "" when unknown (for hints)
};

// Problems of the file for the expected architecture ("armhf", "armel", "aarch64", "x86_64"):
// not ELF, wrong architecture, missing interpreter, missing DT_NEEDED libraries (searched in
// DT_RUNPATH then library_directories(arch)), and symbol versions (DT_VERNEED: GLIBC_2.34,
// OPENSSL_1_1_0, GLIBCXX_3.4.30...) that the library the loader would find does not define
// (DT_VERDEF). Empty when all is well.
std::vector<std::string> elf_problems(std::string_view bytes, const std::string& expected_arch, const RootFilesystem& root);
std::vector<std::string> elf_problems(std::string_view bytes, const std::string& expected_arch,
                                      const LibraryExists& library_exists);

// Throws Error(CheckFailed) "<what>: is x86_64 ..., expected armhf", "<what>: needs libssl.so.1.1,
// libcrypto.so.1.1 which the root filesystem lacks (the image (Debian GNU/Linux 12 (bookworm)) has
// libssl.so.3: ...)" or "<what>: needs GLIBC_2.39 from libc.so.6, which the root filesystem's
// /lib/arm-linux-gnueabihf/libc.so.6 lacks (newest there: GLIBC_2.36)"; problems joined by "; ".
void check_elf(std::string_view bytes, const std::string& expected_arch, const RootFilesystem& root, const std::string& what);
void check_elf(std::string_view bytes, const std::string& expected_arch, const LibraryExists& library_exists,
               const std::string& what);

}  // namespace imprint
