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
  Location location;
  std::vector<DirEntry> entries;  // a directory's entries, or the single file itself
};
std::vector<ListedEntry> list_path(ImageView& image, const PathSpec& spec);
// "-rw------- 0 0 1704 2026-11-30 12:00 mender-agent.pem" (ls -l) or the plain name.
std::string format_entry(const DirEntry& entry, bool long_format);

// Streams the file at the first location of spec (primary for rootfs paths).
void cat_path(ImageView& image, const PathSpec& spec, const ByteSink& sink);

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

}  // namespace imprint
