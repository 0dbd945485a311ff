// The developer commands on IMAGE:PATH (ls, cat, put, rm, mkdir): library functions the CLI calls.
// A device-view path may land on both root filesystems; every function acts on each location.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "imprint/core/bytes.hpp"
#include "imprint/image/image.hpp"
#include "imprint/edit/owners.hpp"
#include "imprint/image/pathmap.hpp"

namespace imprint {

// Runs fn on the filesystem of each location of spec, adding the location to any error
// ("primary (p2): /var/lib/mender is a symlink to /data/mender; write /data/mender/... instead").
void for_each_location(ImageView& image, const PathSpec& spec,
                       const std::function<void(Filesystem&, const Location&)>& fn);

struct ListedEntry {
  Location location;              // location.path: the directory listed (or the file)
  std::vector<DirEntry> entries;  // a directory's entries, or the single file itself
  OwnerNames owners;              // with ListOptions::owner_names: the rootfs's users and groups
};
struct ListOptions {
  bool recursive = false;    // ls -R: then each subdirectory, depth first, in listing order
  bool owner_names = false;  // ls -l: read /etc/passwd and /etc/group of the rootfs the path is on
};
std::vector<ListedEntry> list_path(ImageView& image, const PathSpec& spec, const ListOptions& options = {});
// "-rw------- root root 1704 2026-11-30 12:00 mender-agent.pem" (ls -l; numbers where `owners` has
// no name) or the plain name.
std::string format_entry(const DirEntry& entry, bool long_format, const OwnerNames& owners = {});

// Streams the file at the first location of spec (primary for rootfs paths). When spec names both
// root filesystems and the secondary's file differs (or is missing), returns a note saying so
// ("/etc/x differs between primary (p2) and secondary (p3): printed the copy on primary (p2); name
// primary:/etc/x or secondary:/etc/x to choose"); otherwise "".
std::string cat_path(ImageView& image, const PathSpec& spec, const ByteSink& sink);

struct PutOptions {
  unsigned mode = 0644;
  std::string owner = "0:0";  // "uid:gid" or names from the image's /etc/passwd and /etc/group
  std::optional<std::int64_t> mtime;
};
// Writes a file at every location, creating missing parent directories (0755, root). `open_source`
// is called once per location (a host file is reopened; stdin is buffered by the caller).
void put_path(ImageView& image, const PathSpec& spec, const std::function<std::unique_ptr<ByteSource>()>& open_source,
              const PutOptions& options);
void remove_path(ImageView& image, const PathSpec& spec, bool recursive);
void mkdir_path(ImageView& image, const PathSpec& spec, bool parents, unsigned mode);

// The image's /etc/passwd and /etc/group (from the primary rootfs) resolved into numbers.
Owner resolve_image_owner(ImageView& image, const std::string& owner);

// What can be refused from each partition's blkid type alone, before a backend opens it (the
// libguestfs appliance takes up to a minute to boot): a mode or owner a vfat partition cannot
// hold, or a symbolic link on one. Error(Unsupported) "boot (p1): /x: vfat keeps no owners ...".
void require_representable(ImageView& image, const PathSpec& spec, FileType type, unsigned mode, const std::string& owner);

}  // namespace imprint
