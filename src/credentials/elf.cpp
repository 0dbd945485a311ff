// ELF reading with <elf.h> structures. The input is untrusted (a user's binary, maybe truncated):
// every read goes through Reader, which bounds-checks and byte-swaps for big-endian files.
#include "imprint/elf.hpp"

#include <elf.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <optional>
#include <type_traits>

#include "imprint/error.hpp"

namespace imprint {

namespace {

[[noreturn]] void corrupt(const std::string& why) { throw Error("corrupt ELF file: " + why, ErrorCode::Corrupt); }

class Reader {
 public:
  Reader(std::string_view bytes, bool swap) : bytes_(bytes), swap_(swap) {}

  // A struct of fixed-size integer fields at offset, every field byte-swapped when needed.
  template <typename T>
  T get(std::uint64_t offset, const char* what) const {
    if (offset > bytes_.size() || bytes_.size() - offset < sizeof(T)) corrupt(std::string(what) + " lies beyond the end of the file");
    T value;
    std::memcpy(&value, bytes_.data() + offset, sizeof(T));
    return value;
  }

  template <typename U>
  U fix(U value) const {
    if constexpr (sizeof(U) == 1) {
      return value;
    } else {
      return swap_ ? byteswap(value) : value;
    }
  }

  // NUL-terminated string within [offset, limit).
  std::string string_at(std::uint64_t offset, std::uint64_t limit, const char* what) const {
    limit = std::min<std::uint64_t>(limit, bytes_.size());
    if (offset >= limit) corrupt(std::string(what) + " lies beyond its table");
    const char* begin = bytes_.data() + offset;
    const void* nul = std::memchr(begin, '\0', limit - offset);
    if (nul == nullptr) corrupt(std::string(what) + " is not terminated");
    return std::string(begin, static_cast<const char*>(nul));
  }

  std::uint64_t size() const { return bytes_.size(); }

 private:
  template <typename U>
  static U byteswap(U value) {
    using Unsigned = std::make_unsigned_t<U>;
    const auto in = static_cast<Unsigned>(value);
    Unsigned out = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) {
      out = static_cast<Unsigned>((out << 8) | ((in >> (8 * i)) & 0xffu));
    }
    return static_cast<U>(out);
  }

  std::string_view bytes_;
  bool swap_;
};

template <typename Ehdr, typename Phdr, typename Dyn>
void read_elf_class(const Reader& reader, ElfInfo& info) {
  const Ehdr header = reader.get<Ehdr>(0, "the ELF header");
  info.type = reader.fix(header.e_type);
  info.machine = reader.fix(header.e_machine);
  info.flags = reader.fix(header.e_flags);
  if (info.machine == EM_ARM) {
    info.arm_eabi_version = static_cast<int>(EF_ARM_EABI_VERSION(info.flags) >> 24);
    info.arm_hard_float = (info.flags & EF_ARM_ABI_FLOAT_HARD) != 0;
  }

  const std::uint64_t phoff = reader.fix(header.e_phoff);
  const std::uint64_t phnum = reader.fix(header.e_phnum);
  const std::uint64_t phentsize = reader.fix(header.e_phentsize);
  if (phnum == 0) return;
  if (phentsize < sizeof(Phdr)) corrupt("program header entries are too small");
  if (phoff > reader.size() || phnum * phentsize > reader.size() - phoff) corrupt("program headers lie beyond the end of the file");

  std::vector<Phdr> loads;
  std::optional<Phdr> dynamic;
  for (std::uint64_t i = 0; i < phnum; ++i) {
    Phdr segment = reader.get<Phdr>(phoff + i * phentsize, "a program header");
    segment.p_type = reader.fix(segment.p_type);
    segment.p_offset = reader.fix(segment.p_offset);
    segment.p_vaddr = reader.fix(segment.p_vaddr);
    segment.p_filesz = reader.fix(segment.p_filesz);
    if (segment.p_type == PT_LOAD) loads.push_back(segment);
    if (segment.p_type == PT_DYNAMIC) dynamic = segment;
    if (segment.p_type == PT_INTERP) {
      if (segment.p_offset > reader.size() || segment.p_filesz > reader.size() - segment.p_offset) {
        corrupt("PT_INTERP lies beyond the end of the file");
      }
      info.interpreter = reader.string_at(segment.p_offset, segment.p_offset + segment.p_filesz, "the interpreter name");
    }
  }
  if (!dynamic) return;
  if (dynamic->p_offset > reader.size() || dynamic->p_filesz > reader.size() - dynamic->p_offset) {
    corrupt("PT_DYNAMIC lies beyond the end of the file");
  }

  std::uint64_t strtab = 0, strsz = 0;
  std::vector<std::uint64_t> needed, runpath;
  for (std::uint64_t at = dynamic->p_offset; at + sizeof(Dyn) <= dynamic->p_offset + dynamic->p_filesz; at += sizeof(Dyn)) {
    const Dyn entry = reader.get<Dyn>(at, "a dynamic entry");
    const auto tag = static_cast<std::int64_t>(reader.fix(entry.d_tag));
    const auto value = static_cast<std::uint64_t>(reader.fix(entry.d_un.d_val));
    if (tag == DT_NULL) break;
    if (tag == DT_STRTAB) strtab = value;
    if (tag == DT_STRSZ) strsz = value;
    if (tag == DT_NEEDED) needed.push_back(value);
    if (tag == DT_RUNPATH || tag == DT_RPATH) runpath.push_back(value);
  }
  if (needed.empty() && runpath.empty()) return;

  // DT_STRTAB is a virtual address: map it to a file offset through the PT_LOAD segments.
  std::optional<std::uint64_t> strtab_offset;
  for (const Phdr& load : loads) {
    if (strtab >= load.p_vaddr && strtab - load.p_vaddr < load.p_filesz) {
      strtab_offset = load.p_offset + (strtab - load.p_vaddr);
      break;
    }
  }
  if (!strtab_offset) corrupt("DT_STRTAB is outside every loaded segment");
  const std::uint64_t limit = strsz > 0 && strsz <= reader.size() ? *strtab_offset + strsz : reader.size();
  for (std::uint64_t name : needed) {
    if (name > limit) corrupt("a DT_NEEDED name lies beyond the string table");
    info.needed.push_back(reader.string_at(*strtab_offset + name, limit, "a DT_NEEDED name"));
  }
  for (std::uint64_t name : runpath) {
    if (name > limit) corrupt("a DT_RUNPATH lies beyond the string table");
    const std::string paths = reader.string_at(*strtab_offset + name, limit, "a DT_RUNPATH");
    std::size_t start = 0;
    while (start <= paths.size()) {
      const std::size_t colon = std::min(paths.find(':', start), paths.size());
      if (colon > start) info.runpath.push_back(paths.substr(start, colon - start));
      start = colon + 1;
    }
  }
}

bool is_openssl11(const std::string& library) {
  return library.rfind("libssl.so.1.1", 0) == 0 || library.rfind("libcrypto.so.1.1", 0) == 0 ||
         library.rfind("libssl.so.1.0", 0) == 0 || library.rfind("libcrypto.so.1.0", 0) == 0;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

}  // namespace

ElfInfo read_elf(std::string_view bytes) {
  if (bytes.size() < EI_NIDENT || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0) {
    throw Error("not an ELF file", ErrorCode::Invalid);
  }
  ElfInfo info;
  const auto elf_class = static_cast<unsigned char>(bytes[EI_CLASS]);
  const auto data = static_cast<unsigned char>(bytes[EI_DATA]);
  if (data != ELFDATA2LSB && data != ELFDATA2MSB) corrupt("unknown byte order " + std::to_string(data));
  info.little_endian = data == ELFDATA2LSB;
  const bool host_little = std::endian::native == std::endian::little;
  const Reader reader(bytes, info.little_endian != host_little);
  if (elf_class == ELFCLASS32) {
    info.bits = 32;
    read_elf_class<Elf32_Ehdr, Elf32_Phdr, Elf32_Dyn>(reader, info);
  } else if (elf_class == ELFCLASS64) {
    info.bits = 64;
    read_elf_class<Elf64_Ehdr, Elf64_Phdr, Elf64_Dyn>(reader, info);
  } else {
    corrupt("unknown ELF class " + std::to_string(elf_class));
  }
  return info;
}

std::string arch_name(const ElfInfo& info) {
  switch (info.machine) {
    case EM_ARM:
      if (info.bits != 32 || !info.little_endian) return "armeb";
      if (info.arm_eabi_version == 5) return info.arm_hard_float ? "armhf" : "armel";
      return "arm";
    case EM_AARCH64: return "aarch64";
    case EM_X86_64: return info.bits == 64 ? "x86_64" : "x32";
    case EM_386: return "i386";
    case EM_RISCV: return info.bits == 64 ? "riscv64" : "riscv32";
    case EM_MIPS: return std::string(info.bits == 64 ? "mips64" : "mips") + (info.little_endian ? "el" : "");
    case EM_PPC64: return info.little_endian ? "ppc64el" : "ppc64";
    case EM_PPC: return "powerpc";
    case EM_S390: return "s390x";
    default: return "unknown (machine " + std::to_string(info.machine) + ")";
  }
}

std::string describe_elf(const ElfInfo& info) {
  std::string text = "ELF " + std::to_string(info.bits) + "-bit " + (info.little_endian ? "LSB" : "MSB");
  if (info.machine == EM_ARM) {
    text += " ARM, EABI" + std::to_string(info.arm_eabi_version) + (info.arm_hard_float ? ", hard-float" : ", soft-float");
  }
  return text + " (" + arch_name(info) + ")";
}

std::vector<std::string> library_directories(const std::string& arch) {
  static const std::map<std::string, std::string> triplets = {
      {"armhf", "arm-linux-gnueabihf"}, {"armel", "arm-linux-gnueabi"}, {"aarch64", "aarch64-linux-gnu"},
      {"x86_64", "x86_64-linux-gnu"},   {"i386", "i386-linux-gnu"},     {"riscv64", "riscv64-linux-gnu"}};
  std::vector<std::string> directories;
  if (const auto found = triplets.find(arch); found != triplets.end()) {
    directories.push_back("/lib/" + found->second);
    directories.push_back("/usr/lib/" + found->second);
  }
  if (arch == "x86_64" || arch == "aarch64" || arch == "riscv64") {
    directories.push_back("/lib64");
    directories.push_back("/usr/lib64");
  }
  directories.push_back("/lib");
  directories.push_back("/usr/lib");
  return directories;
}

std::vector<std::string> elf_problems(std::string_view bytes, const std::string& expected_arch,
                                      const LibraryExists& library_exists) {
  ElfInfo info;
  try {
    info = read_elf(bytes);
  } catch (const Error& error) {
    return {std::string("is not a usable ELF executable (") + error.what() + ")"};
  }
  const std::string arch = arch_name(info);
  if (arch != expected_arch) return {"is " + describe_elf(info) + ", expected " + expected_arch};

  std::vector<std::string> problems;
  if (!info.interpreter.empty() && !library_exists(info.interpreter)) {
    problems.push_back("needs the interpreter " + info.interpreter + " which the root filesystem lacks");
  }
  std::vector<std::string> directories;
  for (const auto& directory : info.runpath) {
    if (directory.find('$') == std::string::npos) directories.push_back(directory);  // $ORIGIN: unknowable here
  }
  const auto standard = library_directories(arch);
  directories.insert(directories.end(), standard.begin(), standard.end());

  std::vector<std::string> missing;
  for (const auto& library : info.needed) {
    const bool found = library.find('/') != std::string::npos
                           ? library_exists(library)
                           : std::any_of(directories.begin(), directories.end(),
                                         [&](const std::string& dir) { return library_exists(dir + "/" + library); });
    if (!found) missing.push_back(library);
  }
  if (!missing.empty()) {
    std::string text = "needs " + join(missing, ", ") + " which the root filesystem lacks";
    if (std::any_of(missing.begin(), missing.end(), is_openssl11)) text += " (Debian 12 ships libssl3)";
    problems.push_back(text);
  }
  return problems;
}

void check_elf(std::string_view bytes, const std::string& expected_arch, const LibraryExists& library_exists,
               const std::string& what) {
  const auto problems = elf_problems(bytes, expected_arch, library_exists);
  if (!problems.empty()) throw Error(what + ": " + join(problems, "; "), ErrorCode::CheckFailed);
}

}  // namespace imprint
