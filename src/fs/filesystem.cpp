// Helpers over the Filesystem interface, shared by every backend.
#include "imprint/fs/filesystem.hpp"

#include <algorithm>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"

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

std::vector<std::string> split_path(const std::string& name, const std::string& path) {
  if (path.empty() || path.front() != '/') throw Error(name + ": not an absolute path: " + path, ErrorCode::Invalid);
  std::vector<std::string> components;
  std::size_t start = 1;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find('/', start), path.size());
    std::string component = path.substr(start, end - start);
    if (component.empty() && path.size() > 1) {
      throw Error(name + ": not a normalized path (empty component): " + path, ErrorCode::Invalid);
    }
    if (component == "." || component == "..") {
      throw Error(name + ": not a normalized path (\".\" or \"..\"): " + path, ErrorCode::Invalid);
    }
    if (component.size() > 255) throw Error(name + ": name too long: " + path, ErrorCode::Invalid);
    if (!component.empty()) components.push_back(std::move(component));
    start = end + 1;
  }
  return components;
}

std::string join_path(const std::vector<std::string>& components, std::size_t count) {
  if (count == 0) return "/";
  std::string path;
  for (std::size_t i = 0; i < count; ++i) path += "/" + components[i];
  return path;
}

bool keeps_permissions(const std::string& fs_type) {
  return fs_type != "vfat" && fs_type != "msdos" && fs_type != "exfat";
}

std::string unrepresentable_attributes(const std::string& fs_type, unsigned mode, std::uint32_t uid, std::uint32_t gid,
                                       bool directory) {
  if (keeps_permissions(fs_type)) return "";
  const unsigned shown = directory ? 0755 : 0644;
  if ((mode & 07777) == shown && uid == 0 && gid == 0) return "";
  return fs_type + " keeps no owners or permissions: cannot store mode " + format_mode(mode & 07777) + " owner " +
         std::to_string(uid) + ":" + std::to_string(gid) + " (only " + format_mode(shown) + " 0:0)";
}

}  // namespace imprint
