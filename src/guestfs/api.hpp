// libguestfs through dlopen (src/guestfs/api.cpp): the guestfs module's only door to the library.
//
// Why: linking libguestfs pulls ~60 shared libraries (libvirt, glib/gio, libssh, curl...; 24 that
// nothing else of imprint's needs) whose constructors and relocations cost every imprint command
// 15-25 ms before main(), though only the guestfs backend (vfat/xfs/btrfs partitions, --backend
// guestfs) ever launches an appliance.
// The library is loaded the first time a session creates a handle instead. The pointer types are
// guestfs.h's own declarations (decltype), so a call with the wrong signature does not compile.
// Private to src/guestfs: nothing outside the module includes guestfs.h.
#pragma once

#include <guestfs.h>

namespace imprint {

// Every libguestfs function the module calls (add one here before calling it).
// clang-format off
#define IMPRINT_GUESTFS_FUNCTIONS(X)                                                                    \
  X(create) X(close) X(last_error) X(last_errno) X(set_error_handler) X(parse_environment_list)         \
  X(set_tmpdir) X(set_cachedir) X(set_backend_setting) X(add_drive_opts) X(disk_create) X(launch)       \
  X(umask) X(get_pid) X(shutdown) X(sync) X(umount) X(umount_all) X(mkmountpoint) X(mount_options)      \
  X(lstatns) X(free_statns) X(lstatnslist) X(free_statns_list) X(statvfs) X(free_statvfs) X(readlink)   \
  X(readlinklist) X(ls) X(pread) X(pwrite) X(write) X(truncate_size) X(rename) X(mkdir_mode) X(ln_s)    \
  X(chmod) X(lchown) X(utimens) X(rm) X(rm_f) X(rm_rf) X(rmdir)
// clang-format on

// Member `f` is guestfs_f: libguestfs().launch(g) calls guestfs_launch(g).
struct Libguestfs {
#define IMPRINT_GUESTFS_POINTER(name) decltype(&::guestfs_##name) name = nullptr;
  IMPRINT_GUESTFS_FUNCTIONS(IMPRINT_GUESTFS_POINTER)
#undef IMPRINT_GUESTFS_POINTER
};

// The loaded library (dlopen of libguestfs.so.0 on the first call, never closed). Throws an
// Unsupported Error naming the library and its Debian package when it cannot be loaded (the next
// call tries again). IMPRINT_LIBGUESTFS names another file to load (the tests' missing library).
const Libguestfs& libguestfs();

}  // namespace imprint
