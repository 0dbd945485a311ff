// Disk images: the partition table and filesystems of a whole-disk image file, probed with
// libblkid; the mender-convert roles of its partitions; filesystems opened in place.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imprint/core/device_view.hpp"
#include "imprint/fs/filesystem.hpp"
#include "imprint/core/fileio.hpp"

namespace imprint {

enum class TableType { None, Dos, Gpt };
// The mender-convert roles. Rootfs A is "primary", rootfs B "secondary".
enum class Role { None, Boot, Primary, Secondary, Data, Swap, Extended };

std::string to_string(TableType type);  // "none", "dos", "gpt"
std::string to_string(Role role);       // "none", "boot", "primary", ...

struct Partition {
  int number = 0;                // 1-based, as the kernel names it (p1, p5 for the first logical)
  std::uint64_t offset = 0;      // bytes from the start of the image
  std::uint64_t size = 0;        // bytes
  std::string fs_type;           // blkid TYPE: "ext4", "vfat", "swap", "" when none
  std::string label;             // filesystem label (blkid LABEL)
  std::string uuid;              // filesystem UUID
  std::string part_uuid;         // PARTUUID
  std::string part_label;        // PARTLABEL (GPT partition name)
  std::string part_type;         // MBR type "0x83" or GPT type GUID
  bool extended = false;         // MBR extended container
  Role role = Role::None;
};

// ext2, ext3 or ext4 (blkid's TYPE): what the native backend and the block map parse.
bool is_ext_type(const std::string& fs_type);
// "data (p4)", or "p5" for a partition without a role: how messages name a partition.
std::string partition_name(const Partition& partition);

struct Layout {
  TableType table = TableType::None;
  std::uint64_t image_size = 0;
  std::string disk_id;  // MBR disk identifier or GPT disk GUID
  std::vector<Partition> partitions;
};

// Probes the table and every partition's filesystem with libblkid, then assigns roles:
// labels boot/primary/secondary/data when present (mender-convert 1.x), else the first four
// partitions that are neither extended containers nor swap, in order: boot, primary, secondary,
// data. Refuses (Error(Corrupt), naming the partitions) a table whose entries point past the end of
// the file, overlap each other (a logical partition inside its extended container is fine) or the
// MBR in sector 0, and a file with no partition table. (libblkid itself drops GPT entries outside
// the header's usable range.)
Layout probe_layout(const std::string& image_path);

enum class OpenMode { ReadOnly, ReadWrite };

// Which Filesystem implementation opens a partition:
//   Auto    native (libext2fs) for ext2/3/4, libguestfs for everything else (vfat, xfs, btrfs);
//   Native  libext2fs only (other filesystems are refused);
//   Guestfs libguestfs for every partition (one appliance per image, launched on first use).
enum class Backend { Auto, Native, Guestfs };
std::string to_string(Backend backend);  // "auto", "native", "guestfs"
// "auto" | "native" | "guestfs"; Error(Invalid) naming the word otherwise.
Backend parse_backend(std::string_view text);

// What the apply layer (apply, verify, the edit commands, the checks against an image) needs of an
// image: a name, its layout, where the device mounts its partitions, and each partition's
// filesystem. DiskImage is an image file; MemoryImage (image/memory_image.hpp) is made of
// in-memory filesystems, for unit tests of that layer.
class ImageView {
 public:
  virtual ~ImageView() = default;

  virtual const std::string& path() const = 0;  // as the user named it: messages start with it
  virtual const Layout& layout() const = 0;
  // A partition's filesystem, opened on first use and kept; Error when it cannot be opened.
  virtual Filesystem& filesystem(const Partition& partition) = 0;

  // Partition by role / number; Error(NotFound) naming the image when absent.
  const Partition& partition(Role role) const;
  const Partition& partition_number(int number) const;
  // The boot and data mount points from the primary rootfs fstab (defaults when unreadable).
  const MountMap& mounts();

 protected:
  ImageView() = default;
  ImageView(const ImageView&) = default;
  ImageView(ImageView&&) noexcept = default;
  ImageView& operator=(const ImageView&) = default;
  ImageView& operator=(ImageView&&) noexcept = default;

 private:
  std::optional<MountMap> mounts_;
};

class GuestfsSession;
class ImageOverlay;

class DiskImage final : public ImageView {
 public:
  // Opens an image. A compressed image (.gz, .xz, .zst, .bz2, .zip holding one .img) is decompressed
  // through libarchive into an unnamed sparse temp file (O_TMPFILE in $TMPDIR), which disappears
  // with the process; writing to a compressed image is refused: "write commands need a raw image".
  // backend picks the Filesystem implementation per partition (see Backend). `name` is what messages
  // call the image when `path` is only a copy of it (an unnamed output, /proc/self/fd/N): the
  // golden's path, so an error about its contents names the file the user gave.
  static DiskImage open(const std::string& path, OpenMode mode, Backend backend = Backend::Auto,
                        const std::string& name = {});

  // Opens the image file read-only, with every filesystem writable: ext filesystems commit their
  // changes into `overlay` on flush() (image = file + overlay, overlay.hpp), and the file is never
  // written. A null overlay throws the changes away (a dry run): then libguestfs partitions are
  // written to libguestfs's own throw-away overlay too. With an overlay, partitions libguestfs opens
  // write into a qcow2 file over the (read-only) image, made as a PendingFile for `qcow2_beside` (in
  // its directory, unnamed where the filesystem allows; never committed: gone on every exit, kill -9
  // included), and flush() moves what it holds into `overlay`. It holds the device's secrets: give
  // the output's path, never one in $TMPDIR. Without qcow2_beside such a partition is
  // Error(Unsupported): callers ask overlay_covers first.
  static DiskImage open_overlay(const std::string& path, std::shared_ptr<ImageOverlay> overlay,
                                Backend backend = Backend::Auto, const std::string& name = {},
                                const std::string& qcow2_beside = {});
  // Can every partition the given locations name be written into the ImageOverlay (native ext, or
  // through the qcow2 overlay when open_overlay was given where to put it)?
  bool overlay_covers(const std::vector<int>& partition_numbers) const;

  DiskImage(DiskImage&&) noexcept = default;
  DiskImage& operator=(DiskImage&&) noexcept = default;
  ~DiskImage();

  const std::string& path() const noexcept override { return path_; }  // as the user named it
  const Layout& layout() const noexcept override { return layout_; }
  bool writable() const noexcept { return mode_ == OpenMode::ReadWrite; }
  bool overlaid() const noexcept { return overlaid_; }

  // Opens a partition's filesystem in place with the backend backend_for() names. Types neither
  // backend opens are Error(Unsupported). Filesystems are cached per partition and flushed by flush().
  Filesystem& filesystem(const Partition& partition) override;
  // Native or Guestfs for this partition (Auto resolved by its filesystem type); callers that
  // want to avoid an appliance launch for something optional (inspect's free space) ask first.
  Backend backend_for(const Partition& partition) const;
  Backend backend() const noexcept { return backend_; }
  // Flushes every opened filesystem, writes the libguestfs appliance's changes out (sync, unmount,
  // shutdown) and fsyncs the image.
  void flush();

  // A path other libraries can open for the image's bytes (the file itself or /proc/self/fd/N).
  const std::string& io_path() const noexcept { return io_path_; }

  // This image is a copy of the golden `key` names (see golden_scan_key): its ext filesystems
  // share the golden's damage scan (Ext4OpenOptions::scan_key). Before the first filesystem().
  void share_scans(std::string key) { scan_key_ = std::move(key); }

 private:
  DiskImage() = default;
  std::string named_as_given(std::string message) const;
  std::shared_ptr<GuestfsSession> guestfs_session();
  void take_qcow2_writes();
  std::string path_;
  std::string io_path_;
  UniqueFd fd_;
  OpenMode mode_ = OpenMode::ReadOnly;
  Backend backend_ = Backend::Auto;
  Layout layout_;
  std::string scan_key_;
  bool overlaid_ = false;                   // open_overlay: the file is read-only, writes go to overlay_
  std::shared_ptr<ImageOverlay> overlay_;  // null with overlaid_: the writes are thrown away
  std::string qcow2_beside_;                // open_overlay: where the libguestfs overlay file goes
  std::unique_ptr<PendingFile> qcow2_;      // that file (the appliance's writes), once a session uses it
  // Declared after fd_: the appliance (which may open the image through /proc/PID/fd/N) goes first.
  std::shared_ptr<GuestfsSession> session_;
  std::vector<std::pair<int, std::unique_ptr<Filesystem>>> filesystems_;
};

// A key naming a golden image's bytes as they are now (path, device, inode, size, modification and
// change times to the nanosecond): copies made from it share one damage scan, and a different or
// rewritten golden gets another key.
std::string golden_scan_key(const std::string& golden_path);

// Parses fstab text into a MountMap: each line's device (/dev/mmcblk0p1, /dev/sda1, LABEL=,
// UUID=, PARTUUID=, PARTLABEL=) is matched to a partition of layout; the mount point of the boot
// partition goes into boot_mounts, that of the data partition into data_mount. A line mounting any
// partition but a root filesystem at / is Error(Corrupt) naming the line.
MountMap parse_fstab(const std::string& fstab, const Layout& layout);

}  // namespace imprint
