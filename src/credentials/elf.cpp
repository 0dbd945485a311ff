// ELF reading with <elf.h> structures. The input is untrusted (a user's binary, maybe truncated):
// every read goes through Reader, which bounds-checks and byte-swaps for big-endian files.
#include "imprint/credentials/elf.hpp"

#include <elf.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <string.h>  // strverscmp (GNU)
#include <map>
#include <optional>
#include <type_traits>

#include "imprint/core/error.hpp"

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

// The version records have the same layout in 32- and 64-bit files. Counts come from the file:
// they are capped, and every record is bounds-checked by the reader.
constexpr std::uint64_t kMaxVersionRecords = 4096;

template <typename NameAt>
void read_version_needs(const Reader& reader, std::uint64_t at, std::uint64_t count, const NameAt& name_at, ElfInfo& info) {
  for (std::uint64_t i = 0; i < std::min(count, kMaxVersionRecords); ++i) {
    const auto need = reader.get<Elf32_Verneed>(at, "a version need");
    const std::string library = name_at(reader.fix(need.vn_file), "a version need's library");
    std::uint64_t aux_at = at + reader.fix(need.vn_aux);
    for (std::uint64_t j = 0; j < std::min<std::uint64_t>(reader.fix(need.vn_cnt), kMaxVersionRecords); ++j) {
      const auto aux = reader.get<Elf32_Vernaux>(aux_at, "a needed version");
      info.version_needs.push_back(
          VersionNeed{library, name_at(reader.fix(aux.vna_name), "a needed version's name"), (reader.fix(aux.vna_flags) & VER_FLG_WEAK) != 0});
      if (aux.vna_next == 0) break;
      aux_at += reader.fix(aux.vna_next);
    }
    if (need.vn_next == 0) break;
    at += reader.fix(need.vn_next);
  }
}

template <typename NameAt>
void read_version_definitions(const Reader& reader, std::uint64_t at, std::uint64_t count, const NameAt& name_at, ElfInfo& info) {
  for (std::uint64_t i = 0; i < std::min(count, kMaxVersionRecords); ++i) {
    const auto definition = reader.get<Elf32_Verdef>(at, "a version definition");
    const auto aux = reader.get<Elf32_Verdaux>(at + reader.fix(definition.vd_aux), "a version definition's name");
    // The base definition is the library's own soname, not a version.
    if ((reader.fix(definition.vd_flags) & VER_FLG_BASE) == 0) {
      info.version_definitions.push_back(name_at(reader.fix(aux.vda_name), "a defined version's name"));
    }
    if (definition.vd_next == 0) break;
    at += reader.fix(definition.vd_next);
  }
}

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

  std::uint64_t strtab = 0, strsz = 0, verneed = 0, verneed_count = 0, verdef = 0, verdef_count = 0;
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
    if (tag == DT_VERNEED) verneed = value;
    if (tag == DT_VERNEEDNUM) verneed_count = value;
    if (tag == DT_VERDEF) verdef = value;
    if (tag == DT_VERDEFNUM) verdef_count = value;
  }
  if (needed.empty() && runpath.empty() && verdef_count == 0) return;

  // Dynamic entries hold virtual addresses: map them to file offsets through the PT_LOAD segments.
  const auto file_offset = [&](std::uint64_t address, const char* what) {
    for (const Phdr& load : loads) {
      if (address >= load.p_vaddr && address - load.p_vaddr < load.p_filesz) return load.p_offset + (address - load.p_vaddr);
    }
    corrupt(std::string(what) + " is outside every loaded segment");
  };
  const std::optional<std::uint64_t> strtab_offset = file_offset(strtab, "DT_STRTAB");
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
  const auto name_at = [&](std::uint64_t name, const char* what) {
    if (name > limit) corrupt(std::string(what) + " lies beyond the string table");
    return reader.string_at(*strtab_offset + name, limit, what);
  };
  if (verneed != 0 && verneed_count != 0) read_version_needs(reader, file_offset(verneed, "DT_VERNEED"), verneed_count, name_at, info);
  if (verdef != 0 && verdef_count != 0) read_version_definitions(reader, file_offset(verdef, "DT_VERDEF"), verdef_count, name_at, info);
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

namespace {

// Where the device's loader would find a DT_NEEDED library: the first directory that has it.
std::optional<std::string> find_library(const std::string& library, const std::vector<std::string>& directories,
                                        const LibraryExists& exists) {
  if (library.find('/') != std::string::npos) return exists(library) ? std::optional<std::string>(library) : std::nullopt;
  for (const std::string& directory : directories) {
    if (exists(directory + "/" + library)) return directory + "/" + library;
  }
  return std::nullopt;
}

// "GLIBC_" of "GLIBC_2.34": the family a version belongs to.
std::string version_family(const std::string& version) {
  return version.substr(0, version.find_first_of("0123456789"));
}

// The newest version of that family the library defines ("GLIBC_2.36"), or "".
std::string newest_of_family(const std::vector<std::string>& defined, const std::string& family) {
  std::string newest;
  for (const std::string& version : defined) {
    if (version_family(version) == family && (newest.empty() || ::strverscmp(version.c_str(), newest.c_str()) > 0)) newest = version;
  }
  return newest;
}

// Versions the executable needs from `library` (found at `path`) that the library does not define.
std::vector<std::string> version_problems(const ElfInfo& info, const std::string& library, const std::string& path,
                                          const RootFilesystem& root) {
  std::vector<const VersionNeed*> needs;
  for (const VersionNeed& need : info.version_needs) {
    if (need.library == library && !need.weak) needs.push_back(&need);
  }
  if (needs.empty() || !root.read) return {};
  const std::optional<std::string> bytes = root.read(path);
  if (!bytes) return {};
  ElfInfo provider;
  try {
    provider = read_elf(*bytes);
  } catch (const Error& error) {
    return {"needs " + library + ", but the root filesystem's " + path + " is not a readable library (" + error.what() + ")"};
  }
  std::vector<std::string> problems;
  for (const VersionNeed* need : needs) {
    const auto& defined = provider.version_definitions;
    if (std::find(defined.begin(), defined.end(), need->version) != defined.end()) continue;
    const std::string newest = newest_of_family(defined, version_family(need->version));
    problems.push_back("needs " + need->version + " from " + library + ", which the root filesystem's " + path + " lacks (" +
                       (newest.empty() ? "it defines no " + version_family(need->version) + " version" : "newest there: " + newest) + ")");
  }
  return problems;
}

// What the image has instead of a missing OpenSSL 1.x library, from its own files and os-release.
std::string openssl_hint(const std::vector<std::string>& directories, const RootFilesystem& root) {
  const std::string system = root.os_name.empty() ? "the root filesystem" : "the image (" + root.os_name + ")";
  for (const char* other : {"libssl.so.3", "libssl.so.1.1", "libssl.so.1.0.2"}) {
    if (find_library(other, directories, root.exists)) return " (" + system + " has " + other + ": build the client against it)";
  }
  return " (" + system + " has no libssl at all)";
}

}  // namespace

std::vector<std::string> elf_problems(std::string_view bytes, const std::string& expected_arch, const RootFilesystem& root) {
  ElfInfo info;
  try {
    info = read_elf(bytes);
  } catch (const Error& error) {
    return {std::string("is not a usable ELF executable (") + error.what() + ")"};
  }
  const std::string arch = arch_name(info);
  if (arch != expected_arch) return {"is " + describe_elf(info) + ", expected " + expected_arch};

  std::vector<std::string> problems;
  if (!info.interpreter.empty() && !root.exists(info.interpreter)) {
    problems.push_back("needs the interpreter " + info.interpreter + " which the root filesystem lacks");
  }
  std::vector<std::string> directories;
  for (const auto& directory : info.runpath) {
    if (directory.find('$') == std::string::npos) directories.push_back(directory);  // $ORIGIN: unknowable here
  }
  const auto standard = library_directories(arch);
  directories.insert(directories.end(), standard.begin(), standard.end());

  std::vector<std::string> missing, versions;
  for (const auto& library : info.needed) {
    const auto path = find_library(library, directories, root.exists);
    if (!path) {
      missing.push_back(library);
      continue;
    }
    const auto problems_here = version_problems(info, library, *path, root);
    versions.insert(versions.end(), problems_here.begin(), problems_here.end());
  }
  if (!missing.empty()) {
    std::string text = "needs " + join(missing, ", ") + " which the root filesystem lacks";
    if (std::any_of(missing.begin(), missing.end(), is_openssl11)) text += openssl_hint(directories, root);
    problems.push_back(text);
  }
  problems.insert(problems.end(), versions.begin(), versions.end());
  return problems;
}

std::vector<std::string> elf_problems(std::string_view bytes, const std::string& expected_arch, const LibraryExists& library_exists) {
  return elf_problems(bytes, expected_arch, RootFilesystem{library_exists, {}, ""});
}

void check_elf(std::string_view bytes, const std::string& expected_arch, const RootFilesystem& root, const std::string& what) {
  const auto problems = elf_problems(bytes, expected_arch, root);
  if (!problems.empty()) throw Error(what + ": " + join(problems, "; "), ErrorCode::CheckFailed);
}

void check_elf(std::string_view bytes, const std::string& expected_arch, const LibraryExists& library_exists,
               const std::string& what) {
  check_elf(bytes, expected_arch, RootFilesystem{library_exists, {}, ""}, what);
}

}  // namespace imprint
