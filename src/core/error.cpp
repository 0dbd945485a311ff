#include "imprint/core/error.hpp"

#include "imprint/fs/symlink_error.hpp"

#include <cerrno>
#include <cstring>

namespace imprint {

ErrorCode error_code_for_errno(int error_number) {
  switch (error_number) {
    case ENOENT: return ErrorCode::NotFound;
    case EEXIST: return ErrorCode::Exists;
    case ENOTDIR: return ErrorCode::NotDirectory;
    case EISDIR: return ErrorCode::IsDirectory;
    case ENOTEMPTY: return ErrorCode::NotEmpty;
    case ENOSPC:
    case EFBIG:
    case EDQUOT: return ErrorCode::NoSpace;
    case ELOOP: return ErrorCode::Symlink;
    default: return ErrorCode::Generic;
  }
}

void throw_errno(const std::string& context) { throw_errno(context, errno); }

void throw_errno(const std::string& context, int error_number) {
  throw Error(context + ": " + std::strerror(error_number), error_code_for_errno(error_number));
}

void throw_symlink(const std::string& where, const std::string& link_target, const std::string& suffix) {
  throw SymlinkError(where + " is a symlink to " + link_target + suffix, link_target);
}

}  // namespace imprint
