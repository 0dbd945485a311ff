// A path component inside an image is a symbolic link, which imprint never follows (the link may
// point into another partition on the running device). Both backends throw it; the error keeps the
// link's target, so a caller can point at the path that was meant (src/edit's hint for /data links).
#pragma once

#include <string>

#include "imprint/core/error.hpp"

namespace imprint {

class SymlinkError : public Error {
 public:
  SymlinkError(const std::string& message, std::string link_target)
      : Error(message, ErrorCode::Symlink), link_target_(std::move(link_target)) {}
  const std::string& link_target() const noexcept { return link_target_; }

 private:
  std::string link_target_;
};

// Throws SymlinkError("WHERE is a symlink to TARGET" + suffix).
[[noreturn]] void throw_symlink(const std::string& where, const std::string& link_target, const std::string& suffix = "");

}  // namespace imprint
