// An io_manager that keeps every write to a filesystem in memory until commit(): until
// Filesystem::flush() succeeds the image file is never written, so a command that fails half-way
// (no space, a damaged directory, an I/O error) leaves it byte-identical. Reads see the pending
// writes. Options: "offset=N" (the partition's byte offset), as the unix io manager.
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <functional>
#include <string_view>

namespace imprint::ext4 {

io_manager overlay_io_manager();
// The same overlay on a file opened read-only (a golden that stays untouched): commit hands the
// pending bytes (offset in the image file, offset option included) to the channel's sink, and keeps
// them: reads after the commit still see them (the file never will).
io_manager overlay_sink_io_manager();
using OverlaySink = std::function<void(std::uint64_t offset, std::string_view bytes)>;
void overlay_set_sink(io_channel channel, OverlaySink sink);
// Where a sink channel reads what it has not written itself (offset in the image file) instead of
// the file, e.g. the golden plus a batch's shared overlay; it may throw (the read then fails with
// EIO). It is given while the channel opens, because ext2fs_open2 reads the superblock and group
// descriptors during its open, before any setter could run: every sink channel opened on this
// thread while a ScopedOverlaySource lives reads through its source.
using OverlaySource = std::function<void(std::uint64_t offset, std::size_t size, char* out)>;
class ScopedOverlaySource {
 public:
  explicit ScopedOverlaySource(OverlaySource source);
  ~ScopedOverlaySource();
  ScopedOverlaySource(const ScopedOverlaySource&) = delete;
  ScopedOverlaySource& operator=(const ScopedOverlaySource&) = delete;
};
// Writes the pending changes of a channel opened by overlay_io_manager() to the file, then forgets
// them (a sink channel: hands them to the sink, see above). Returns 0 or an errno / libext2fs error code.
errcode_t overlay_commit(io_channel channel);

}  // namespace imprint::ext4
