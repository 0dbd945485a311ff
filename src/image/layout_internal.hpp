// Private to the image module: probing an already open image (a decompressed temp file has no
// name worth showing, so messages name the image as the user gave it).
#pragma once

#include <string>

#include "imprint/image.hpp"

namespace imprint::detail {

// probe_layout on an open descriptor; `name` is what error messages call the image.
Layout probe_layout_fd(int fd, const std::string& name);

}  // namespace imprint::detail
