#include "imprint/core/overwrite.hpp"

#include <sys/stat.h>

#include "imprint/core/error.hpp"

namespace imprint {

void refuse_existing_output(const std::string& path, bool force, const std::string& hint) {
  struct stat info {};
  if (force || ::lstat(path.c_str(), &info) != 0) return;
  throw Error(path + " already exists (" + hint + ")", ErrorCode::Exists);
}

}  // namespace imprint
