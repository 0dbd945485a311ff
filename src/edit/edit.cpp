#include "imprint/edit/edit.hpp"

#include <ctime>
#include <filesystem>

#include "imprint/core/error.hpp"
#include "imprint/fs/symlink_error.hpp"
#include "imprint/core/fileio.hpp"

namespace imprint {

namespace {

// A symlink error gets a hint when the link leads into the data partition: that is how a write to
// /var/lib/mender/... would otherwise silently land in the rootfs.
std::string with_hint(ImageView& image, const Location& location, const Error& error) {
  // Backends name their partition already ("data (p4): ..."); other errors get it here.
  const std::string where = describe(location);
  std::string message = error.what();
  if (message.rfind(where, 0) != 0) message = where + ": " + message;
  const auto* link = dynamic_cast<const SymlinkError*>(&error);
  if (link == nullptr) return message;
  const MountMap& mounts = image.mounts();
  if (place_path(PathSpec{"", link->link_target()}, MountMap{{}, mounts.data_mount}).role == "data") {
    message += "; write " + link->link_target() + "/... instead";
  }
  return message;
}

}  // namespace

Owner resolve_image_owner(ImageView& image, const std::string& owner) {
  std::string passwd, group;
  // Numeric owners need no lookup; names are resolved against the primary rootfs.
  if (owner.find_first_not_of("0123456789:") != std::string::npos) {
    Filesystem& rootfs = image.filesystem(image.partition(Role::Primary));
    if (rootfs.stat("/etc/passwd")) passwd = read_all(rootfs, "/etc/passwd");
    if (rootfs.stat("/etc/group")) group = read_all(rootfs, "/etc/group");
  }
  return resolve_owner(owner, passwd, group);
}

void for_each_location(ImageView& image, const PathSpec& spec,
                       const std::function<void(Filesystem&, const Location&)>& fn) {
  for (const Location& location : resolve(spec, image)) {
    Filesystem* filesystem = nullptr;
    try {
      filesystem = &image.filesystem(image.partition_number(location.partition));
    } catch (const Error& error) {
      throw Error(with_hint(image, location, error), error.code());
    }
    try {
      fn(*filesystem, location);
    } catch (const Error& error) {
      throw Error(with_hint(image, location, error), error.code());
    }
  }
}

std::vector<ListedEntry> list_path(ImageView& image, const PathSpec& spec) {
  std::vector<ListedEntry> listed;
  for_each_location(image, spec, [&](Filesystem& filesystem, const Location& location) {
    const auto stat = filesystem.stat(location.path);
    if (!stat) throw Error(location.path + ": no such file or directory", ErrorCode::NotFound);
    ListedEntry entry{location, {}};
    if (stat->type == FileType::Directory) {
      entry.entries = filesystem.list(location.path);
    } else {
      entry.entries.push_back(DirEntry{std::filesystem::path(location.path).filename().string(), *stat});
    }
    listed.push_back(std::move(entry));
  });
  return listed;
}

std::string format_entry(const DirEntry& entry, bool long_format) {
  if (!long_format) return entry.name;
  const FileStat& stat = entry.stat;
  std::string kind = "?";
  switch (stat.type) {
    case FileType::Regular: kind = "-"; break;
    case FileType::Directory: kind = "d"; break;
    case FileType::Symlink: kind = "l"; break;
    case FileType::Other: kind = "?"; break;
  }
  static constexpr const char* rwx = "rwxrwxrwx";
  std::string permissions;
  for (int bit = 0; bit < 9; ++bit) permissions.push_back((stat.mode & (0400u >> bit)) ? rwx[bit] : '-');
  char when[32];
  const std::time_t mtime = static_cast<std::time_t>(stat.mtime);
  std::tm utc{};
  gmtime_r(&mtime, &utc);
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", &utc);
  std::string line = kind + permissions + " " + std::to_string(stat.uid) + " " + std::to_string(stat.gid) + " " +
                     std::to_string(stat.size) + " " + when + " " + entry.name;
  if (stat.type == FileType::Symlink) line += " -> " + stat.link_target;
  return line;
}

void cat_path(ImageView& image, const PathSpec& spec, const ByteSink& sink) {
  bool done = false;
  for_each_location(image, spec, [&](Filesystem& filesystem, const Location& location) {
    if (done) return;  // rootfs paths: A and B are identical; read the primary
    const auto stat = filesystem.stat(location.path);
    if (!stat) throw Error(location.path + ": no such file", ErrorCode::NotFound);
    if (stat->type != FileType::Regular) throw Error(location.path + ": not a regular file", ErrorCode::IsDirectory);
    filesystem.read(location.path, sink);
    done = true;
  });
}

void put_path(ImageView& image, const PathSpec& spec, const std::function<std::unique_ptr<ByteSource>()>& open_source,
              const PutOptions& options) {
  const Owner owner = resolve_image_owner(image, options.owner);
  const Attributes file_attributes{options.mode, owner.uid, owner.gid, options.mtime};
  const Attributes directory_attributes{0755, 0, 0, options.mtime};
  for_each_location(image, spec, [&](Filesystem& filesystem, const Location& location) {
    make_directories(filesystem, parent_path(location.path), directory_attributes);
    auto source = open_source();
    filesystem.write(location.path, *source, file_attributes);
  });
}

void remove_path(ImageView& image, const PathSpec& spec, bool recursive) {
  for_each_location(image, spec, [&](Filesystem& filesystem, const Location& location) {
    if (!filesystem.stat(location.path)) throw Error(location.path + ": no such file or directory", ErrorCode::NotFound);
    filesystem.remove(location.path, recursive);
  });
}

void mkdir_path(ImageView& image, const PathSpec& spec, bool parents, unsigned mode) {
  const Attributes attributes{mode, 0, 0, std::nullopt};
  for_each_location(image, spec, [&](Filesystem& filesystem, const Location& location) {
    if (parents) {
      make_directories(filesystem, location.path, attributes);
    } else {
      filesystem.mkdir(location.path, attributes);
    }
  });
}

}  // namespace imprint
