// DiskImage: an opened image file (raw, or a decompressed temp copy), its layout, and its
// partitions' filesystems opened in place.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "imprint/image/copy.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/progress.hpp"
#include "imprint/fs/ext4.hpp"
#include "imprint/guestfs/guestfs.hpp"
#include "imprint/image/image.hpp"
#include "imprint/image/overlay.hpp"
#include "imprint/image/pathmap.hpp"
#include "layout_internal.hpp"

namespace imprint {

namespace {

// A card (block device) is an image too: inspect, ls, cat and verify read one.
UniqueFd open_image(const std::string& path, OpenMode mode) {
  return open_input(path, mode == OpenMode::ReadWrite ? O_RDWR : O_RDONLY, InputKind::FileOrBlockDevice, "a disk image");
}

}  // namespace

bool is_ext_type(const std::string& fs_type) { return fs_type == "ext2" || fs_type == "ext3" || fs_type == "ext4"; }

std::string golden_scan_key(const std::string& golden_path) {
  struct stat info {};
  if (::stat(golden_path.c_str(), &info) != 0) throw_errno("cannot stat " + golden_path);
  return golden_path + " dev " + std::to_string(info.st_dev) + " ino " + std::to_string(info.st_ino) + " size " +
         std::to_string(info.st_size) + " mtime " + std::to_string(info.st_mtim.tv_sec) + "." +
         std::to_string(info.st_mtim.tv_nsec) + " ctime " + std::to_string(info.st_ctim.tv_sec) + "." +
         std::to_string(info.st_ctim.tv_nsec);
}

std::string partition_name(const Partition& partition) {
  return describe(Location{partition.number, partition.role, "", ""});
}

DiskImage::~DiskImage() = default;

std::string to_string(Backend backend) {
  switch (backend) {
    case Backend::Auto: return "auto";
    case Backend::Native: return "native";
    case Backend::Guestfs: return "guestfs";
  }
  return "auto";
}

Backend parse_backend(std::string_view text) {
  if (text == "auto") return Backend::Auto;
  if (text == "native") return Backend::Native;
  if (text == "guestfs") return Backend::Guestfs;
  throw Error("unknown backend \"" + std::string(text) + "\" (expected auto, native or guestfs)", ErrorCode::Invalid);
}

DiskImage DiskImage::open(const std::string& path, OpenMode mode, Backend backend, const std::string& name) {
  DiskImage image;
  image.path_ = name.empty() ? path : name;
  image.mode_ = mode;
  image.backend_ = backend;
  if (is_compressed_image(path)) {
    if (mode == OpenMode::ReadWrite) {
      throw Error(path + " is compressed; write commands need a raw image (decompress it first, or use stamp)",
                  ErrorCode::Unsupported);
    }
    image.fd_ = decompressed_beside(path);  // it may be a stamped image, with a device's key
    image.io_path_ = fd_path(image.fd_.get());
  } else {
    image.fd_ = open_image(path, mode);
    image.io_path_ = path;
  }
  image.layout_ = detail::probe_layout_fd(image.fd_.get(), image.path_);
  return image;
}

DiskImage DiskImage::open_overlay(const std::string& path, std::shared_ptr<ImageOverlay> overlay, Backend backend,
                                  const std::string& name, const std::string& qcow2_beside) {
  DiskImage image = open(path, OpenMode::ReadOnly, backend, name);
  image.mode_ = OpenMode::ReadWrite;  // the filesystems are; the file stays read-only (fd_ is)
  image.overlaid_ = true;
  image.overlay_ = std::move(overlay);
  image.qcow2_beside_ = qcow2_beside;
  return image;
}

bool DiskImage::overlay_covers(const std::vector<int>& partition_numbers) const {
  // libguestfs writes into the qcow2 overlay, over the golden alone: not over a layered overlay's below.
  if (!qcow2_beside_.empty() && !(overlay_ && overlay_->below())) return true;
  for (const int number : partition_numbers) {
    if (backend_for(partition_number(number)) != Backend::Native) return false;
  }
  return true;
}

// One appliance per image, shared by its partitions, launched on the first operation. With an
// ImageOverlay, its drive is a qcow2 overlay over the read-only image (taken over by flush()).
std::shared_ptr<GuestfsSession> DiskImage::guestfs_session() {
  if (session_) return session_;
  GuestfsSession::Drive drive{path_for_another_process(io_path_), writable() && !overlaid_, path_, overlaid_, {}};
  if (overlaid_ && overlay_) {
    qcow2_ = std::make_unique<PendingFile>(qcow2_beside_);
    drive = GuestfsSession::Drive{path_for_another_process(std::filesystem::absolute(qcow2_->temp_path()).string()), true,
                                  path_, false, path_for_another_process(std::filesystem::absolute(io_path_).string())};
  }
  session_ = std::make_shared<GuestfsSession>(std::vector<GuestfsSession::Drive>{drive});
  return session_;
}

// What the appliance wrote (the qcow2's own clusters, 64 KiB each: the bytes around a write are the
// golden's, copied up) goes into the ImageOverlay, in runs of at most 8 MiB.
void DiskImage::take_qcow2_writes() {
  const std::string what = "the libguestfs overlay of " + path_;
  std::string run;
  for (const Qcow2Run& written : qcow2_written_runs(path_for_another_process(qcow2_->temp_path()), path_)) {
    for (std::uint64_t done = 0; done < written.length; done += run.size()) {
      run.assign(static_cast<std::size_t>(std::min<std::uint64_t>(written.length - done, 8ull << 20)), '\0');
      if (!written.zero) pread_all(qcow2_->fd(), run.data(), run.size(), written.file_offset + done, what);
      overlay_->write(written.offset + done, run);
    }
  }
}

// A filesystem that does not open is a fault of the image the user gave (the golden, for a stamp's
// unnamed output): name it, and never the /proc/self/fd/N path libext2fs opened a copy by.
std::string DiskImage::named_as_given(std::string message) const {
  if (io_path_ != path_) {
    for (std::size_t at = message.find(io_path_); at != std::string::npos; at = message.find(io_path_, at + path_.size())) {
      message.replace(at, io_path_.size(), path_);
    }
  }
  return message.find(path_) == std::string::npos ? path_ + ": " + message : message;
}

Backend DiskImage::backend_for(const Partition& partition) const {
  if (backend_ != Backend::Auto) return backend_;
  return is_ext_type(partition.fs_type) ? Backend::Native : Backend::Guestfs;
}

Filesystem& DiskImage::filesystem(const Partition& partition) {
  for (auto& [number, opened] : filesystems_) {
    if (number == partition.number) return *opened;
  }
  const std::string name = partition_name(partition);
  if (partition.extended) {
    throw Error(path_ + ": " + name + " is an extended partition container, not a filesystem", ErrorCode::Invalid);
  }
  if (partition.fs_type.empty()) {
    throw Error(path_ + ": " + name + " holds no filesystem that libblkid recognizes", ErrorCode::Unsupported);
  }
  if (!is_ext_type(partition.fs_type) && !guestfs_supports(partition.fs_type)) {
    throw Error(partition.fs_type + " on " + name + " is not supported yet", ErrorCode::Unsupported);
  }
  std::unique_ptr<Filesystem> opened;
  if (backend_for(partition) == Backend::Native) {
    if (!is_ext_type(partition.fs_type)) {
      throw Error(partition.fs_type + " on " + name +
                      " needs the libguestfs backend (--backend auto or guestfs); the native backend opens ext2/3/4 only",
                  ErrorCode::Unsupported);
    }
    try {
      Ext4OpenOptions options{io_path_, partition.offset, partition.size, writable(), name};
      if (!scan_key_.empty()) options.scan_key = scan_key_ + " @" + std::to_string(partition.offset);
      if (overlaid_) {
        std::shared_ptr<ImageOverlay> overlay = overlay_;
        options.commit_to = [overlay](std::uint64_t offset, std::string_view bytes) {
          if (overlay) overlay->write(offset, bytes);
        };
        // A layered overlay (a batch device's): the filesystem is read as golden + the layers below.
        if (overlay && overlay->below()) {
          options.read_from = [below = overlay->below(), fd = fd_.get()](std::uint64_t offset, std::size_t size, char* out) {
            below->read(fd, offset, size, out);
          };
        }
      }
      opened = open_ext4(options);
    } catch (const Error& error) {
      throw Error(named_as_given(error.what()), error.code());
    }
  } else {
    if (overlaid_ && overlay_ && qcow2_beside_.empty()) {
      throw Error(path_ + ": " + name + " (" + partition.fs_type + ") is written through libguestfs, whose writes cannot go to an overlay",
                  ErrorCode::Unsupported);
    }
    opened = open_guestfs(GuestfsOpenOptions{guestfs_session(), 0, partition.number, partition.fs_type, writable(), name});
  }
  // A copy being stamped is named after its golden in errors; here it must not read as the golden.
  verbose_note((io_path_ != path_ ? "the copy of " + path_ : path_) + ": opened " + name + " (" + partition.fs_type + ", " +
               (backend_for(partition) == Backend::Native ? "libext2fs" : "libguestfs") + ", " +
               (writable() ? "read-write" : "read-only") + ")");
  filesystems_.emplace_back(partition.number, std::move(opened));
  return *filesystems_.back().second;
}

void DiskImage::flush() {
  for (auto& [number, opened] : filesystems_) opened->flush();
  if (session_) session_->shutdown();
  if (qcow2_ && session_ && session_->overlays_created()) take_qcow2_writes();
  if (writable() && !overlaid_ && ::fsync(fd_.get()) != 0) throw_errno("cannot sync " + path_);
  if (writable()) {
    verbose_note((io_path_ != path_ ? "the copy of " + path_ : path_) + ": flushed " + std::to_string(filesystems_.size()) +
                 (overlaid_ ? " filesystem(s) into the overlay" : " filesystem(s) and synced"));
  }
}

}  // namespace imprint
