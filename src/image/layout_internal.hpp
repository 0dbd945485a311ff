// Private to the image module: probing an already open image (a decompressed temp file has no
// name worth showing, so messages name the image as the user gave it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "imprint/image/image.hpp"

namespace imprint::detail {

// probe_layout on an open descriptor; `name` is what error messages call the image.
Layout probe_layout_fd(int fd, const std::string& name);

// Where the image whose start fd holds so far (a decompression in progress) ends, in bytes: the
// end of the last MBR partition, or of the GPT's backup header; nullopt when no table is found.
std::optional<std::uint64_t> table_span_fd(int fd);

}  // namespace imprint::detail
