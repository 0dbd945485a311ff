// Helpers over the Filesystem interface, shared by every backend.
#include "imprint/filesystem.hpp"

#include "imprint/error.hpp"

namespace imprint {

void make_directories(Filesystem& filesystem, const std::string& path, const Attributes& attributes) {
  if (path.empty() || path.front() != '/') throw Error("not an absolute path: " + path, ErrorCode::Invalid);
  std::size_t end = 0;
  while (end != std::string::npos) {
    end = path.find('/', end + 1);
    const std::string prefix = path.substr(0, end);
    if (prefix.size() <= 1) continue;  // "/" or a trailing slash
    const std::optional<FileStat> found = filesystem.stat(prefix);
    if (!found) {
      filesystem.mkdir(prefix, attributes);
    } else if (found->type != FileType::Directory) {
      // Let the backend word the refusal (it names its partition; a symlink gets Error(Symlink)).
      filesystem.list(prefix);
      throw Error(prefix + " is not a directory", ErrorCode::NotDirectory);
    }
  }
}

std::string read_all(Filesystem& filesystem, const std::string& path) {
  std::string content;
  filesystem.read(path, [&content](std::string_view chunk) { content.append(chunk); });
  return content;
}

}  // namespace imprint
