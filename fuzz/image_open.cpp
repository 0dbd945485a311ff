// Fuzzes opening a corrupt image: partition table and filesystem probing (libblkid through
// probe_layout), DiskImage::open, the fstab read for mount points, and listing the root of every
// partition's filesystem (libext2fs superblock, group descriptors, root directory), read-only.
// The input is the image, through a memfd.
#include <cstddef>
#include <cstdint>

#include "fuzz_input.hpp"
#include "imprint/image/copy.hpp"
#include "imprint/core/error.hpp"
#include "imprint/image/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace imprint;
  fuzz::MemoryFile file(data, size);
  try {
    // Compressed input would fuzz libarchive and fill $TMPDIR, not imprint's image code.
    if (is_compressed_image(file.path())) return 0;
    (void)probe_layout(file.path());
    DiskImage image = DiskImage::open(file.path(), OpenMode::ReadOnly);
    (void)image.mounts();
    for (const Partition& partition : image.layout().partitions) {
      try {
        Filesystem& filesystem = image.filesystem(partition);
        (void)filesystem.usage();
        for (const DirEntry& entry : filesystem.list("/")) {
          (void)filesystem.stat("/" + entry.name);
        }
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
