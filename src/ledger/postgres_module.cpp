// The PostgreSQL backend, loaded when a postgres:// ledger is first opened: libpqxx and libpq (and
// the Kerberos, LDAP and TLS libraries they pull) stay out of every other command's start. The
// module, imprint-postgres.so, is built beside the executable (and the test binaries) and looked up
// in the directory of /proc/self/exe.
#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <mutex>

#include "imprint/core/error.hpp"
#include "sql.hpp"

namespace imprint::detail {

namespace {

constexpr const char* kModule = "imprint-postgres.so";

std::string executable_directory() {
  char path[PATH_MAX];
  const ssize_t length = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (length <= 0) throw_errno("cannot find the executable's directory (/proc/self/exe)");
  const std::string executable(path, static_cast<std::size_t>(length));
  return executable.substr(0, executable.rfind('/'));
}

// The module's entry point, loaded once per process (the module is never unloaded: sessions and
// their vtables live in it).
decltype(&imprint_open_postgres) entry_point(const std::string& location) {
  static std::mutex mutex;
  static decltype(&imprint_open_postgres) entry = nullptr;
  const std::lock_guard lock(mutex);
  if (entry != nullptr) return entry;
  const std::string module = executable_directory() + "/" + kModule;
  const auto fail = [&](const std::string& problem) {
    return Error("cannot open ledger " + location + ": the PostgreSQL backend " + module +
                     " cannot be loaded (it is built with imprint, next to the executable): " + problem,
                 ErrorCode::Unsupported);
  };
  void* library = ::dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) throw fail(::dlerror());
  // dlsym returns void*: POSIX guarantees it converts to a function pointer.
  entry = reinterpret_cast<decltype(&imprint_open_postgres)>(::dlsym(library, "imprint_open_postgres"));
  if (entry == nullptr) throw fail("it has no imprint_open_postgres");
  return entry;
}

}  // namespace

std::unique_ptr<SqlSession> open_postgres(const std::string& url, bool init) {
  const std::string location = redact_location(url);
  return std::unique_ptr<SqlSession>(entry_point(location)(url, location, init));
}

}  // namespace imprint::detail
