// Identity script output, parsed and encoded as the Mender client does it.
#include "imprint/credentials/identity.hpp"

#include <nlohmann/json.hpp>

#include "imprint/core/error.hpp"

namespace imprint {

IdentityAttributes parse_identity_output(std::string_view text) {
  IdentityAttributes identity;
  std::size_t line_number = 0;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // Go's bufio.ScanLines drops it
    if (line.empty()) continue;
    const std::size_t equals = line.find('=');
    if (equals == std::string_view::npos) {
      throw Error("identity output line " + std::to_string(line_number) + " has no '=': " + std::string(line.substr(0, 80)),
                  ErrorCode::Invalid);
    }
    identity[std::string(line.substr(0, equals))].emplace_back(line.substr(equals + 1));
  }
  return identity;
}

namespace {

// One UTF-8 sequence at text[i]: its length, or 0 when invalid (Go then writes U+FFFD).
std::size_t utf8_length(std::string_view text, std::size_t i, char32_t& code) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  std::size_t length = 0;
  char32_t minimum = 0;
  if (lead < 0x80) {
    code = lead;
    return 1;
  } else if ((lead & 0xe0) == 0xc0) {
    length = 2, code = lead & 0x1f, minimum = 0x80;
  } else if ((lead & 0xf0) == 0xe0) {
    length = 3, code = lead & 0x0f, minimum = 0x800;
  } else if ((lead & 0xf8) == 0xf0) {
    length = 4, code = lead & 0x07, minimum = 0x10000;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3f);
  }
  if (code < minimum || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;
  return length;
}

// A JSON string as Go's encoding/json writes it (the Mender client is Go): <, >, & and U+2028/9
// escaped, control characters as \n \r \t or \u00XX, invalid UTF-8 as \ufffd. nlohmann::json
// does none of the HTML escaping, and the server hashes the identity as the device sends it.
std::string go_json_string(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 0xf];
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    char32_t code = 0;
    const std::size_t length = utf8_length(text, i, code);
    if (length == 0) {
      out += "\\ufffd";
      ++i;
    } else if (code == 0x2028 || code == 0x2029) {
      out += code == 0x2028 ? "\\u2028" : "\\u2029";
      i += length;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out + "\"";
}

}  // namespace

std::string identity_json(const IdentityAttributes& identity) {
  std::string out = "{";
  for (const auto& [key, values] : identity) {  // std::map: sorted by bytes, as Go sorts map keys
    if (out.size() > 1) out += ',';
    out += go_json_string(key) + ':';
    if (values.size() == 1) {
      out += go_json_string(values.front());
    } else {
      out += '[';
      for (std::size_t i = 0; i < values.size(); ++i) out += (i > 0 ? "," : "") + go_json_string(values[i]);
      out += ']';
    }
  }
  return out + "}";
}

std::string preauth_json(const IdentityAttributes& identity, const std::string& public_key_pem) {
  if (public_key_pem.find("-----BEGIN PUBLIC KEY-----") == std::string::npos) {
    throw Error("preauthorization needs a SubjectPublicKeyInfo PEM (BEGIN PUBLIC KEY)", ErrorCode::Invalid);
  }
  nlohmann::ordered_json body;
  body["identity_data"] = nlohmann::json::parse(identity_json(identity));
  body["pubkey"] = public_key_pem;
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace imprint
