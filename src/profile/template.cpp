#include "imprint/profile/template.hpp"

#include <functional>

#include "imprint/core/error.hpp"

namespace imprint {

namespace {

bool is_name_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_blanks(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  return text;
}

// Walks a template once: literal text goes to `literal`, each {{name}} to `variable`. Both
// expand_template and template_variables use it, so they agree on the syntax and its errors.
void scan_template(std::string_view text, const std::string& where,
                   const std::function<void(std::string_view)>& literal,
                   const std::function<void(const std::string&)>& variable) {
  std::size_t position = 0;
  while (position < text.size()) {
    const std::size_t open = text.find("{{", position);
    if (open == std::string_view::npos) {
      literal(text.substr(position));
      return;
    }
    literal(text.substr(position, open - position));
    const std::size_t close = text.find("}}", open + 2);
    if (close == std::string_view::npos) {
      throw Error(where + ": unterminated '{{' (a placeholder is {{name}})", ErrorCode::Invalid);
    }
    const std::string_view inside = text.substr(open + 2, close - open - 2);
    const std::string name(trim_blanks(inside));
    if (!is_variable_name(name)) {
      throw Error(where + ": '{{" + std::string(inside) + "}}' is not a variable name (letters, digits, '_')",
                  ErrorCode::Invalid);
    }
    variable(name);
    position = close + 2;
  }
}

}  // namespace

bool is_variable_name(std::string_view name) {
  if (name.empty() || !is_name_start(name.front())) return false;
  for (char c : name) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

std::string expand_template(std::string_view text, const Variables& variables, const std::string& where) {
  std::string out;
  out.reserve(text.size());
  scan_template(
      text, where, [&](std::string_view piece) { out.append(piece); },
      [&](const std::string& name) {
        const auto found = variables.find(name);
        if (found == variables.end()) {
          // Never an empty string: a silently empty device id or password is worse than a stop.
          throw Error(where + ": undefined variable '" + name + "'", ErrorCode::Invalid);
        }
        out += found->second;
      });
  return out;
}

namespace {

// "a newline", "a carriage return", "character 0x1b": the first control character of a value.
std::string first_control_character(std::string_view value) {
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte == '\n') return "a newline";
    if (byte == '\r') return "a carriage return";
    if (byte == '\t') return "a tab";
    if (byte < 0x20 || byte == 0x7f) {
      static constexpr char hex[] = "0123456789abcdef";
      return std::string("character 0x") + hex[byte >> 4] + hex[byte & 0xf];
    }
  }
  return "";
}

}  // namespace

std::string expand_content_template(std::string_view text, const Variables& variables, const std::set<std::string>& raw,
                                    const std::string& where) {
  std::string out = expand_template(text, variables, where);
  if (!out.starts_with("#!")) return out;
  for (const std::string& name : template_variables(text, where)) {
    if (raw.count(name) != 0) continue;
    const std::string found = first_control_character(variables.at(name));
    if (!found.empty()) {
      throw Error(where + ": variable '" + name + "' holds " + found +
                      " and this content is a script (#!): refused (mark the variable raw: true in the profile's variables if "
                      "the script quotes it safely)",
                  ErrorCode::Invalid);
    }
  }
  return out;
}

std::set<std::string> template_variables(std::string_view text, const std::string& where) {
  std::set<std::string> names;
  scan_template(
      text, where, [](std::string_view) {}, [&](const std::string& name) { names.insert(name); });
  return names;
}

}  // namespace imprint
