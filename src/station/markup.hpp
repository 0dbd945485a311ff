// Text for SVG labels and the HTML status page (internal to the station module).
#pragma once

#include <string>
#include <string_view>

#include "imprint/core/bytes.hpp"

namespace imprint {

// Untrusted text as XML/HTML character data or attribute value: control characters escaped first
// (escape_control: XML 1.0 allows none of them), then & < > " '.
inline std::string escape_markup(std::string_view text) {
  std::string out;
  for (char c : escape_control(text)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace imprint
