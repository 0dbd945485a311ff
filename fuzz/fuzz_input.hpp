// Shared by the fuzz targets: parsers that take a path get the fuzz input through an in-memory
// file (memfd) opened as /proc/self/fd/N, so no fuzz run touches a disk file.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace imprint::fuzz {

class MemoryFile {
 public:
  MemoryFile(const std::uint8_t* data, std::size_t size) : fd_(::memfd_create("imprint-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) std::abort();  // the harness itself is broken: stop loudly
    for (std::size_t done = 0; done < size;) {
      const ssize_t put = ::write(fd_, data + done, size - done);
      if (put <= 0) std::abort();
      done += static_cast<std::size_t>(put);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemoryFile() { ::close(fd_); }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

}  // namespace imprint::fuzz
