// libguestfs loaded on first use (see api.hpp for why): dlopen + dlsym of every function the module
// calls, once per process.
#include "api.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include "imprint/core/error.hpp"

namespace imprint {

namespace {

constexpr const char* kLibrary = "libguestfs.so.0";

std::string dl_problem() {
  const char* message = ::dlerror();
  return message != nullptr ? message : "unknown dlopen error";
}

Libguestfs load() {
  const char* chosen = std::getenv("IMPRINT_LIBGUESTFS");
  const std::string file = chosen != nullptr && *chosen != '\0' ? chosen : kLibrary;
  const std::string hint = " (Debian package libguestfs0; install it with scripts/setup.sh)";
  // RTLD_NOW: a broken installation fails here, not in the middle of a launch. Never closed: its
  // threads and atexit handlers outlive any one session.
  void* library = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    throw Error(std::string("cannot load ") + kLibrary + hint + ": " + dl_problem(), ErrorCode::Unsupported);
  }
  Libguestfs api;
  // dlsym returns void*: POSIX guarantees it converts to a function pointer.
#define IMPRINT_GUESTFS_RESOLVE(name)                                                  \
  api.name = reinterpret_cast<decltype(api.name)>(::dlsym(library, "guestfs_" #name)); \
  if (api.name == nullptr) {                                                           \
    throw Error(file + " has no guestfs_" #name + hint, ErrorCode::Unsupported);       \
  }
  IMPRINT_GUESTFS_FUNCTIONS(IMPRINT_GUESTFS_RESOLVE)
#undef IMPRINT_GUESTFS_RESOLVE
  return api;
}

}  // namespace

const Libguestfs& libguestfs() {
  static const Libguestfs loaded = load();  // thread-safe; a throw leaves it for the next call
  return loaded;
}

}  // namespace imprint
