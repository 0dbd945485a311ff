// The libguestfs backend: every filesystem the appliance kernel knows (vfat boot partitions, xfs,
// btrfs, and ext2/3/4 as an independent cross-check of the native backend).
//
// One appliance (a small qemu VM) per session: the image file(s) are added as raw drives, the
// appliance is launched once on first use and partitions are mounted by device path (/dev/sda1,
// /dev/sdb5: never by UUID or label, batch copies share them) on demand. Launching costs ~15-25 s
// with TCG; group work into few sessions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imprint/fs/filesystem.hpp"
#include "imprint/core/lifetime.hpp"

struct guestfs_h;  // guestfs.h: typedef struct guestfs_h guestfs_h

namespace imprint {

// Why this process cannot run a KVM guest ("/dev/kvm: Permission denied", "KVM_CREATE_VM:
// ..."), or "" when it can: opens /dev/kvm and creates (and drops) a VM, in milliseconds, so a launch
// on a machine without usable KVM goes straight to TCG instead of waiting for KVM to time out.
std::string kvm_problem();

// Where the "the appliance runs with TCG" note is remembered as shown: once per machine and user,
// not on every command. $XDG_CACHE_HOME/imprint/tcg-noted, else ~/.cache/imprint/tcg-noted; ""
// when neither is set (the note is then shown every time).
std::string tcg_note_marker();

class GuestfsSession {
 public:
  struct Drive {
    std::string path;       // a host path qemu can open (not /proc/self/...: that is qemu's own)
    bool writable = false;  // read-only drives are protected by an overlay; writable ones use cache=unsafe
    std::string name;       // for messages, e.g. the image path
    // A read-only drive whose filesystems still mount read-write: the writes stay in libguestfs's
    // overlay and are thrown away with it (a dry run applies its plan this way).
    bool scratch_writes = false;
    // Non-empty: `path` is a qcow2 overlay over this raw file (absolute path), made by the first
    // launch (guestfs_disk_create). qemu opens `backing` read-only and the appliance's writes land
    // in the qcow2: read them back after shutdown() with qcow2_written_runs().
    std::string backing;
  };

  explicit GuestfsSession(std::vector<Drive> drives);
  ~GuestfsSession();  // kills the appliance without syncing (error paths; flush() syncs)
  GuestfsSession(const GuestfsSession&) = delete;
  GuestfsSession& operator=(const GuestfsSession&) = delete;

  // "/dev/sda1" for drive 0 partition 1, "/dev/sdab5" for drive 27 partition 5.
  static std::string partition_device(std::size_t drive, int number);

  // The launched handle (launching it first: retries once with TCG when KVM fails).
  guestfs_h* handle();
  // Mounts the partition (once) and returns its mount point inside the appliance ("/sda1").
  // Partitions are mounted read-only until the first write asks for_writing (then remounted
  // read-write), so a partition that is only read keeps its bytes (no mount count, no journal).
  std::string mountpoint(std::size_t drive, int number, const std::string& fs_type, const std::string& name,
                         bool for_writing);
  // sync + umount_all + shutdown: every write is in the image files afterwards. The session can be
  // used again (it relaunches on the next call).
  void shutdown();
  bool launched() const noexcept { return handle_ != nullptr; }
  // The drives' qcow2 overlays (Drive::backing) exist: made by the first launch.
  bool overlays_created() const noexcept { return overlays_created_; }
  // Seconds the last launch took (0 before the first).
  double launch_seconds() const noexcept { return launch_seconds_; }

 private:
  void launch();
  void create_overlays(guestfs_h* g);
  void close() noexcept;

  std::vector<Drive> drives_;
  guestfs_h* handle_ = nullptr;
  struct Mounted {
    std::string device;
    bool writable = false;
  };
  std::vector<Mounted> mounted_;  // in this launch
  double launch_seconds_ = 0;
  bool overlays_created_ = false;  // the drives' qcow2 overlays (Drive::backing) exist
  std::shared_ptr<class NbdServers> nbd_;  // qemu-nbd for unnamed files (session.cpp)
  std::unique_ptr<PrivateTempDir> temp_;   // libguestfs' temp files and sockets, qemu-nbd's sockets
  ChildRegistration qemu_;                 // the appliance's qemu, killed if imprint is
};

struct GuestfsOpenOptions {
  std::shared_ptr<GuestfsSession> session;
  std::size_t drive = 0;     // index of the image in the session's drives
  int partition = 0;         // partition number (p1 = 1; logical partitions from 5)
  std::string fs_type;       // blkid TYPE: "vfat", "xfs", "ext4", ...
  bool writable = false;
  std::string name;          // for messages, e.g. "boot (p1)"
};

// A guest range that a qcow2 overlay's own layer holds (what was written over its backing file).
struct Qcow2Run {
  std::uint64_t offset = 0;       // in the guest (the image)
  std::uint64_t length = 0;
  bool zero = false;              // reads as zeros (a zero cluster): no bytes in the file
  std::uint64_t file_offset = 0;  // where the bytes are in the qcow2 file (when not zero)
};

// The runs of `path`'s top layer, in order, from `qemu-img map --output=json` (qemu-utils, which
// libguestfs needs anyway): the entries at depth 0. `name` is for messages. Error when qemu-img is
// missing or fails, or a written run has no plain offset in the file (compressed/encrypted: never
// in the overlays disk_create makes).
std::vector<Qcow2Run> qcow2_written_runs(const std::string& path, const std::string& name);

// Filesystem types the backend opens (those the appliance kernel mounts and imprint was tested on).
bool guestfs_supports(const std::string& fs_type);

// A Filesystem over one partition of a session. Nothing is launched until the first operation.
std::unique_ptr<Filesystem> open_guestfs(const GuestfsOpenOptions& options);

}  // namespace imprint
