// An io_manager that keeps every write to a filesystem in memory until commit(): until
// Filesystem::flush() succeeds the image file is never written, so a command that fails half-way
// (no space, a damaged directory, an I/O error) leaves it byte-identical. Reads see the pending
// writes. Options: "offset=N" (the partition's byte offset), as the unix io manager.
#pragma once

#include <ext2fs/ext2fs.h>

namespace imprint::ext4 {

io_manager overlay_io_manager();
// Writes the pending changes of a channel opened by overlay_io_manager() to the file, then forgets
// them. Returns 0 or an errno / libext2fs error code.
errcode_t overlay_commit(io_channel channel);

}  // namespace imprint::ext4
