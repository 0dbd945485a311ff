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

struct AccountFiles {
  std::string passwd, group;  // empty when the rootfs has none
};

AccountFiles account_files(ImageView& image, Role rootfs_role) {
  Filesystem& rootfs = image.filesystem(image.partition(rootfs_role));
  AccountFiles files;
  if (rootfs.stat("/etc/passwd")) files.passwd = read_all(rootfs, "/etc/passwd");
  if (rootfs.stat("/etc/group")) files.group = read_all(rootfs, "/etc/group");
  return files;
}

// ls -l's names: the secondary rootfs's own accounts for its files, the primary's for every other
// partition (boot and data have no accounts of their own). Numbers only when there are none.
OwnerNames owner_names_for(ImageView& image, const Location& location) {
  try {
    const AccountFiles files = account_files(image, location.role == Role::Secondary ? Role::Secondary : Role::Primary);
    return OwnerNames::parse(files.passwd, files.group);
  } catch (const Error&) {
    return {};  // no rootfs (a bare data image): a listing still works, with numbers
  }
}

// Depth first below listed[parent], each subdirectory right after its parent's listing (ls -R's
// order). By index: listed grows (and moves) while the parent's entries are walked.
void list_below(Filesystem& filesystem, std::size_t parent, std::vector<ListedEntry>& listed) {
  for (std::size_t i = 0; i < listed[parent].entries.size(); ++i) {
    const DirEntry& item = listed[parent].entries[i];
    if (item.stat.type != FileType::Directory) continue;  // symbolic links are not followed
    ListedEntry child{listed[parent].location, {}, listed[parent].owners};
    const std::string& base = listed[parent].location.path;
    child.location.path = (base == "/" ? "" : base) + "/" + item.name;
    // A damaged filesystem could loop; no real tree comes near PATH_MAX.
    if (child.location.path.size() > 4096) {
      throw Error(child.location.path.substr(0, 64) + "...: path too long (a directory loop?)", ErrorCode::Corrupt);
    }
    child.entries = filesystem.list(child.location.path);
    listed.push_back(std::move(child));
    list_below(filesystem, listed.size() - 1, listed);
  }
}

}  // namespace

Owner resolve_image_owner(ImageView& image, const std::string& owner) {
  // Numeric owners need no lookup; names are resolved against the primary rootfs.
  if (owner.find_first_not_of("0123456789:") == std::string::npos) return resolve_owner(owner, "", "");
  const AccountFiles files = account_files(image, Role::Primary);
  return resolve_owner(owner, files.passwd, files.group);
}

void require_representable(ImageView& image, const PathSpec& spec, FileType type, unsigned mode, const std::string& owner) {
  std::optional<Owner> numbers;  // resolved once, and only for a partition that keeps no owners
  for (const Location& location : resolve(spec, image)) {
    const std::string& fs_type = image.partition_number(location.partition).fs_type;
    if (keeps_permissions(fs_type)) continue;
    std::string problem;
    if (type == FileType::Symlink) {
      problem = fs_type + " cannot hold symbolic links";
    } else {
      if (!numbers) numbers = resolve_image_owner(image, owner);
      problem = unrepresentable_attributes(fs_type, mode, numbers->uid, numbers->gid, type == FileType::Directory);
    }
    if (!problem.empty()) throw Error(describe(location) + ": " + location.path + ": " + problem, ErrorCode::Unsupported);
  }
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

std::vector<ListedEntry> list_path(ImageView& image, const PathSpec& spec, const ListOptions& options) {
  std::vector<ListedEntry> listed;
  for_each_location(image, spec, [&](Filesystem& filesystem, const Location& location) {
    const auto stat = filesystem.stat(location.path);
    if (!stat) throw Error(location.path + ": no such file or directory", ErrorCode::NotFound);
    ListedEntry entry{location, {}, options.owner_names ? owner_names_for(image, location) : OwnerNames{}};
    if (stat->type == FileType::Directory) {
      entry.entries = filesystem.list(location.path);
    } else {
      entry.entries.push_back(DirEntry{std::filesystem::path(location.path).filename().string(), *stat});
    }
    listed.push_back(std::move(entry));
    if (options.recursive && stat->type == FileType::Directory) list_below(filesystem, listed.size() - 1, listed);
  });
  return listed;
}

std::string format_entry(const DirEntry& entry, bool long_format, const OwnerNames& owners) {
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
  std::string line = kind + permissions + " " + owners.user(stat.uid) + " " + owners.group(stat.gid) + " " +
                     std::to_string(stat.size) + " " + when + " " + entry.name;
  if (stat.type == FileType::Symlink) line += " -> " + stat.link_target;
  return line;
}

std::string cat_path(ImageView& image, const PathSpec& spec, const ByteSink& sink) {
  // Rootfs paths: the primary's file is printed; the secondary's is only hashed, to tell the user
  // when A and B disagree (a half-applied update, a hand edit) instead of silently showing A.
  std::optional<Location> primary;
  std::string printed_digest, note;
  for_each_location(image, spec, [&](Filesystem& filesystem, const Location& location) {
    const auto stat = filesystem.stat(location.path);
    const bool regular = stat && stat->type == FileType::Regular;
    if (primary) {
      const std::string shown = location.device_path.empty() ? location.path : location.device_path;
      const std::string choose = "; name primary:" + shown + " or secondary:" + shown + " to choose";
      if (!regular) {
        note = shown + " is a file on " + describe(*primary) + " only, not on " + describe(location) + ": printed the copy on " +
               describe(*primary) + choose;
        return;
      }
      Sha256 other;
      filesystem.read(location.path, [&](std::string_view chunk) { other.update(chunk); });
      if (other.hex_digest() != printed_digest) {
        note = shown + " differs between " + describe(*primary) + " and " + describe(location) + ": printed the copy on " +
               describe(*primary) + choose;
      }
      return;
    }
    if (!stat) throw Error(location.path + ": no such file", ErrorCode::NotFound);
    if (!regular) throw Error(location.path + ": not a regular file", ErrorCode::IsDirectory);
    Sha256 digest;
    filesystem.read(location.path, [&](std::string_view chunk) {
      digest.update(chunk);
      sink(chunk);
    });
    printed_digest = digest.hex_digest();
    primary = location;
  });
  return note;
}

void put_path(ImageView& image, const PathSpec& spec, const std::function<std::unique_ptr<ByteSource>()>& open_source,
              const PutOptions& options) {
  require_representable(image, spec, FileType::Regular, options.mode, options.owner);
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
  require_representable(image, spec, FileType::Directory, mode, "0:0");
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
