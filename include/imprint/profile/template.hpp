// Templates: "{{name}}" placeholders only. An undefined variable is an error, never an empty string.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>

namespace imprint {

using Variables = std::map<std::string, std::string>;

// Expands every {{name}} (whitespace inside the braces allowed: {{ name }}). Throws
// Error(Invalid) "<where>: undefined variable 'name'" or for an unterminated "{{".
std::string expand_template(std::string_view text, const Variables& variables, const std::string& where);
// expand_template for a file's contents. When the result is a script (it starts with "#!"), a
// value holding a control character (newline, carriage return, escape, NUL, ...) is refused unless
// its name is in `raw`: a line break in a value turns data into commands. Throws Error(Invalid)
// "<where>: variable 'name' holds a control character (...)"; the value itself is never printed.
std::string expand_content_template(std::string_view text, const Variables& variables, const std::set<std::string>& raw,
                                    const std::string& where);
// The names a template uses (syntax errors throw as above).
std::set<std::string> template_variables(std::string_view text, const std::string& where);
// Variable names: [A-Za-z_][A-Za-z0-9_]*
bool is_variable_name(std::string_view name);

}  // namespace imprint
