// Fuzzes the ELF reader and checker: read_elf, describe_elf and elf_problems for every architecture
// imprint checks.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "imprint/credentials/elf.hpp"
#include "imprint/core/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace imprint;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const ElfInfo info = read_elf(bytes);
    (void)describe_elf(info);
    (void)library_directories(arch_name(info));
  } catch (const Error&) {
  }
  // elf_problems reports problems as lines instead of throwing.
  const LibraryExists some_exist = [](const std::string& path) { return path.size() % 2 == 0; };
  for (const char* arch : {"armhf", "aarch64", "x86_64"}) {
    try {
      (void)elf_problems(bytes, arch, some_exist);
    } catch (const Error&) {
    }
  }
  return 0;
}
