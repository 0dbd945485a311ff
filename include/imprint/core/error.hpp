// Errors: every failure imprint reports is an imprint::Error whose what() is one line that names the
// input at fault (file, partition, path, profile line). The CLI prints it as "imprint: <what>".
#pragma once

#include <stdexcept>
#include <string>

namespace imprint {

// What kind of failure, for callers that react differently (e.g. `mkdir -p` tolerates Exists).
enum class ErrorCode {
  Generic,
  NotFound,      // a path, partition or file does not exist
  Exists,        // the path exists where it must not
  NotDirectory,  // a path component is not a directory
  IsDirectory,   // a file operation on a directory
  NotEmpty,      // removing a non-empty directory without recursion
  Symlink,       // a path component inside the image is a symbolic link (never followed)
  NoSpace,       // the filesystem inside the image is full
  Unsupported,   // a feature, filesystem or format imprint cannot handle (yet)
  Corrupt,       // an image, partition table or filesystem is damaged or truncated
  Invalid,       // bad user input: profile, argument, path syntax
  CheckFailed,   // a credential or content check refused the input
  Usage,         // the command line itself is wrong (a missing or conflicting option, a bad option
                 // value): the CLI exits 2, as for CLI11's own parse errors
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ErrorCode code = ErrorCode::Generic)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

// The ErrorCode an errno value stands for (ENOENT -> NotFound, ENOSPC -> NoSpace, ...).
ErrorCode error_code_for_errno(int error_number);

// Throws Error("<context>: <strerror(errno)>") with a code derived from errno.
[[noreturn]] void throw_errno(const std::string& context);
[[noreturn]] void throw_errno(const std::string& context, int error_number);

}  // namespace imprint
