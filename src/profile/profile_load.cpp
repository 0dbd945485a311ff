// Strict loading of profile YAML: every key is known, every value has the right type, and every
// error names "<file>:<line>:<column>" and the key at fault.
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <set>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/profile/profile.hpp"
#include "imprint/core/pathspec.hpp"
#include "targets.hpp"

namespace imprint {

std::string SourcePosition::str() const { return file + ":" + std::to_string(line) + ":" + std::to_string(column); }

namespace {

using profile_detail::split_role;
using profile_detail::TargetRegistry;

// One "key: value" of a YAML map, with the key's node for positions.
struct Field {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
};

std::string join(std::initializer_list<std::string_view> words) {
  std::string out;
  for (std::string_view word : words) {
    if (!out.empty()) out += ", ";
    out += word;
  }
  return out;
}

bool contains(std::initializer_list<std::string_view> words, std::string_view word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

std::string type_name(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "an undefined node";
  }
}

// A quoted scalar has the tag "!", a plain one "?"; "!!str 0600" names the string tag explicitly.
bool is_string_scalar(const YAML::Node& node) {
  return node.IsScalar() && (node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str");
}

class Loader {
 public:
  Loader(std::string name, std::string directory) {
    profile_.path = std::move(name);
    profile_.directory = std::move(directory);
  }

  Profile load(const std::string& yaml) {
    YAML::Node root;
    try {
      root = YAML::Load(yaml);
    } catch (const YAML::DeepRecursion& error) {  // a ParserException whose message is just "bad file"
      fail(error.mark, too_deep());
    } catch (const YAML::ParserException& error) {
      fail(error.mark, "YAML syntax error: " + error.msg);
    }
    check_depth(root);
    if (root.IsNull()) fail(YAML::Mark(), "the profile is empty (it needs at least 'version: 1')");
    if (!root.IsMap()) fail(root.Mark(), "the profile must be a map of keys (version, files, ...), not " + type_name(root));
    const auto fields = map_fields(root, "profile",
                                   {"version", "variables", "credentials", "files", "directories", "symlinks",
                                    "remove", "checks"});
    bool has_version = false;
    for (const Field& field : fields) {
      if (field.key == "version") {
        has_version = true;
        read_version(field);
      } else if (field.key == "variables") {
        read_variables(field);
      } else if (field.key == "credentials") {
        read_credentials(field);
      } else if (field.key == "files") {
        for_each_item(field, [&](const YAML::Node& item, const std::string& label) { read_file(item, label); });
      } else if (field.key == "directories") {
        for_each_item(field, [&](const YAML::Node& item, const std::string& label) { read_directory(item, label); });
      } else if (field.key == "symlinks") {
        for_each_item(field, [&](const YAML::Node& item, const std::string& label) { read_symlink(item, label); });
      } else if (field.key == "remove") {
        for_each_item(field, [&](const YAML::Node& item, const std::string& label) { read_remove(item, label); });
      } else if (field.key == "checks") {
        for_each_item(field, [&](const YAML::Node& item, const std::string& label) { read_check(item, label); });
      }
    }
    if (!has_version) fail(root.Mark(), "missing required key 'version' (write 'version: 1')");
    check_credentials_configured();
    return std::move(profile_);
  }

 private:
  Profile profile_;
  TargetRegistry targets_;
  std::vector<std::pair<SourcePosition, std::string>> credential_uses_;  // from: entries

  // A profile is a few levels deep; yaml-cpp itself stops only at 2000 levels.
  static constexpr int kMaxDepth = 32;
  static constexpr long kMaxNodes = 1'000'000;  // aliases can make a small file a huge tree

  static std::string too_deep() { return "YAML nested deeper than " + std::to_string(kMaxDepth) + " levels (the limit for a profile)"; }

  void check_depth(const YAML::Node& root) const {
    long nodes = 0;
    const auto walk = [&](const auto& self, const YAML::Node& node, int depth) -> void {
      if (depth > kMaxDepth) fail(node.Mark(), too_deep());
      if (++nodes > kMaxNodes) fail(node.Mark(), "YAML with more than " + std::to_string(kMaxNodes) + " nodes (aliases?)");
      if (node.IsSequence()) {
        for (const auto& item : node) self(self, item, depth + 1);
      } else if (node.IsMap()) {
        for (const auto& pair : node) {
          self(self, pair.first, depth + 1);
          self(self, pair.second, depth + 1);
        }
      }
    };
    walk(walk, root, 1);
  }

  SourcePosition position(const YAML::Mark& mark) const {
    // yaml-cpp marks are 0-based; an empty document has no mark (-1).
    if (mark.line < 0) return {profile_.path, 1, 1};
    return {profile_.path, mark.line + 1, mark.column + 1};
  }
  SourcePosition position(const YAML::Node& node) const { return position(node.Mark()); }
  // A null value ("key:" with nothing after it) has no useful mark of its own: use the key's.
  SourcePosition position(const Field& field) const {
    return field.value.IsNull() ? position(field.key_node) : position(field.value);
  }

  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& message) const {
    throw Error(position(mark).str() + ": " + message, ErrorCode::Invalid);
  }
  [[noreturn]] void fail(const SourcePosition& where, const std::string& message) const {
    throw Error(where.str() + ": " + message, ErrorCode::Invalid);
  }

  // The fields of a map, refusing non-scalar keys, repeated keys (yaml-cpp keeps both) and keys
  // outside `allowed`.
  std::vector<Field> map_fields(const YAML::Node& map, const std::string& what,
                                std::initializer_list<std::string_view> allowed) const {
    std::vector<Field> fields;
    std::set<std::string> seen;
    for (const auto& pair : map) {
      const YAML::Node& key = pair.first;
      if (!key.IsScalar()) fail(key.Mark(), what + ": a key must be a plain name, not " + type_name(key));
      const std::string name = key.Scalar();
      if (!contains(allowed, name)) {
        fail(key.Mark(), what + ": unknown key '" + name + "' (allowed: " + join(allowed) + ")");
      }
      if (!seen.insert(name).second) fail(key.Mark(), what + ": key '" + name + "' appears twice");
      fields.push_back({name, key, pair.second});
    }
    return fields;
  }

  std::vector<Field> entry_fields(const YAML::Node& item, const std::string& label,
                                  std::initializer_list<std::string_view> allowed) const {
    if (!item.IsMap()) fail(item.Mark(), label + ": an entry must be a map of keys (" + join(allowed) + "), not " + type_name(item));
    return map_fields(item, label, allowed);
  }

  // A list section; "files:" with nothing after it counts as an empty list.
  template <typename Read>
  void for_each_item(const Field& field, Read read) {
    if (field.value.IsNull()) return;
    if (!field.value.IsSequence()) {
      fail(position(field), field.key + ": must be a list (entries start with '- '), not " + type_name(field.value));
    }
    std::size_t index = 0;
    for (const auto& item : field.value) read(item, field.key + "[" + std::to_string(index++) + "]");
  }

  std::string scalar(const Field& field, const std::string& label) const {
    if (!field.value.IsScalar()) {
      const std::string hint = field.value.IsNull() ? " (write \"\" for an empty string)" : "";
      fail(position(field), label + "." + field.key + ": must be a string, not " + type_name(field.value) + hint);
    }
    return field.value.Scalar();
  }

  // A string that is a template: its syntax is checked here, where the position is exact.
  std::string template_text(const Field& field, const std::string& label) const {
    std::string text = scalar(field, label);
    template_variables(text, position(field).str() + ": " + label + "." + field.key);
    return text;
  }

  bool boolean(const Field& field, const std::string& label) const {
    bool value = false;
    if (!field.value.IsScalar() || field.value.Tag() != "?" || !YAML::convert<bool>::decode(field.value, value)) {
      fail(position(field), label + "." + field.key + ": must be true or false");
    }
    return value;
  }

  long integer(const Field& field, const std::string& label) const {
    long value = 0;
    if (!field.value.IsScalar() || field.value.Tag() != "?" || !YAML::convert<long>::decode(field.value, value)) {
      fail(position(field), label + "." + field.key + ": must be a whole number");
    }
    return value;
  }

  // Modes are octal strings: YAML reads a bare 600 as decimal and 0600 as octal 384, which is how
  // `mender-artifact install -m 600` ends up writing mode 0130. Only a quoted string is accepted.
  unsigned mode(const Field& field, const std::string& label) const {
    const std::string what = label + ".mode";
    if (!is_string_scalar(field.value)) {
      const std::string written = field.value.IsScalar() ? " " + field.value.Scalar() : "";
      fail(position(field), what + ": write the mode as a quoted octal string like \"0600\", not a bare" + written +
                                " (YAML reads a bare number as decimal or octal)");
    }
    try {
      return parse_octal_mode(field.value.Scalar(), what);
    } catch (const Error& error) {
      fail(position(field), error.what());
    }
  }

  // "uid:gid" numbers or "user:group" names (resolved later against the image's /etc/passwd).
  std::string owner(const Field& field, const std::string& label) const {
    const std::string text = scalar(field, label);
    const auto valid_part = [](std::string_view part) {
      if (part.empty()) return false;
      if (std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) return part.size() <= 10;
      const auto name_char = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
      };
      if (part.back() == '$') part.remove_suffix(1);  // Samba machine accounts
      return !part.empty() && !(part[0] >= '0' && part[0] <= '9') && part[0] != '-' &&
             std::all_of(part.begin(), part.end(), name_char);
    };
    const std::size_t colon = text.find(':');
    if (colon == std::string::npos || !valid_part(std::string_view(text).substr(0, colon)) ||
        !valid_part(std::string_view(text).substr(colon + 1))) {
      fail(position(field), label + ".owner: '" + text + "' is not \"uid:gid\" or \"user:group\" (e.g. \"0:0\", \"root:root\")");
    }
    return text;
  }

  // A target path: device view ("/etc/x") or "ROLE:/PATH". A template may supply the start.
  std::string path(const Field& field, const std::string& label) const {
    std::string text = template_text(field, label);
    const auto split = split_role(text);
    if (!split.path.starts_with('/') && !split.path.starts_with("{{")) {
      fail(position(field), label + ".path: '" + text +
                                "' is neither an absolute device path nor ROLE:/PATH (roles: primary, secondary, rootfs, data, boot, pN)");
    }
    if (split.path.starts_with('/') && !lexically_normal(split.path)) {
      fail(position(field), label + ".path: '" + text + "' climbs above the root with '..'");
    }
    return text;
  }

  [[noreturn]] void missing(const YAML::Node& item, const std::string& label, const std::string& key) const {
    fail(item.Mark(), label + ": missing required key '" + key + "'");
  }

  void read_version(const Field& field) {
    const long version = integer(field, "profile");
    if (version != 1) fail(position(field), "version: unsupported version " + std::to_string(version) + " (this imprint reads version 1)");
  }

  void read_variables(const Field& field) {
    if (field.value.IsNull()) return;
    if (!field.value.IsMap()) fail(position(field), "variables: must be a map of name: value, not " + type_name(field.value));
    std::set<std::string> seen;
    for (const auto& pair : field.value) {
      const Field variable{pair.first.IsScalar() ? pair.first.Scalar() : "", pair.first, pair.second};
      if (!pair.first.IsScalar() || !is_variable_name(variable.key)) {
        fail(pair.first.Mark(), "variables: '" + variable.key + "' is not a variable name (letters, digits, '_', not starting with a digit)");
      }
      if (variable.key == "device_id") fail(pair.first.Mark(), "variables: 'device_id' is built in (it comes from --device or the CSV)");
      if (!seen.insert(variable.key).second) fail(pair.first.Mark(), "variables: '" + variable.key + "' appears twice");
      if (!variable.value.IsMap()) {
        profile_.variables[variable.key] = scalar(variable, "variables");
        continue;
      }
      // name: { value: "...", raw: true }: the value may hold control characters in a #! script.
      const std::string label = "variables." + variable.key;
      for (const Field& part : map_fields(variable.value, label, {"value", "raw"})) {
        if (part.key == "value") profile_.variables[variable.key] = scalar(part, label);
        if (part.key == "raw" && boolean(part, label)) profile_.raw_variables.insert(variable.key);
      }
    }
  }

  void read_credentials(const Field& field) {
    if (!field.value.IsMap()) fail(position(field), "credentials: must be a map, not " + type_name(field.value));
    CredentialsSpec spec;
    spec.where = position(field.value);
    const std::string label = "credentials";
    for (const Field& item : map_fields(field.value, label,
                                        {"key", "key_password", "cert", "chain", "pfx", "pfx_password",
                                         "pfx_encryption", "generate"})) {
      if (item.key == "key") spec.key = template_text(item, label);
      if (item.key == "key_password") spec.key_password = template_text(item, label);
      if (item.key == "cert") spec.cert = template_text(item, label);
      if (item.key == "chain") spec.chain = template_text(item, label);
      if (item.key == "pfx") spec.pfx = template_text(item, label);
      if (item.key == "pfx_password") spec.pfx_password = template_text(item, label);
      if (item.key == "pfx_encryption") {
        spec.pfx_encryption = scalar(item, label);
        if (spec.pfx_encryption != "compat" && spec.pfx_encryption != "aes") {
          fail(position(item), "credentials.pfx_encryption: '" + spec.pfx_encryption + "' is not compat or aes");
        }
      }
      if (item.key == "generate") spec.generate = read_generate(item);
    }
    if (spec.generate && (!spec.key.empty() || !spec.cert.empty() || !spec.pfx.empty())) {
      fail(spec.where, "credentials: 'generate' makes the key and certificate: do not also give key, cert or pfx");
    }
    if (!spec.generate && spec.key.empty() && spec.cert.empty() && spec.pfx.empty()) {
      fail(spec.where, "credentials: give key and cert, pfx, or generate");
    }
    profile_.credentials = std::move(spec);
  }

  GenerateSpec read_generate(const Field& field) {
    const std::string label = "credentials.generate";
    if (!field.value.IsMap()) fail(position(field), label + ": must be a map (ca_cert, ca_key, ...), not " + type_name(field.value));
    GenerateSpec spec;
    for (const Field& item : map_fields(field.value, label, {"ca_cert", "ca_key", "ca_key_password", "key", "days"})) {
      if (item.key == "ca_cert") spec.ca_cert = template_text(item, label);
      if (item.key == "ca_key") spec.ca_key = template_text(item, label);
      if (item.key == "ca_key_password") spec.ca_key_password = template_text(item, label);
      if (item.key == "key") {
        spec.key_type = scalar(item, label);
        if (!contains({"rsa:2048", "rsa:3072", "rsa:4096", "ec:p256"}, spec.key_type)) {
          fail(position(item), label + ".key: '" + spec.key_type + "' is not rsa:2048, rsa:3072, rsa:4096 or ec:p256");
        }
      }
      if (item.key == "days") {
        const long days = integer(item, label);
        if (days < 1 || days > 36500) fail(position(item), label + ".days: must be between 1 and 36500");
        spec.days = static_cast<int>(days);
      }
    }
    if (spec.ca_cert.empty()) missing(field.value, label, "ca_cert");
    if (spec.ca_key.empty()) missing(field.value, label, "ca_key");
    return spec;
  }

  void read_file(const YAML::Node& item, const std::string& label) {
    FileSpec spec;
    spec.where = position(item);
    const Field* content_field = nullptr;
    const Field* template_field = nullptr;
    const Field* format_field = nullptr;
    bool has_path = false, has_mode = false;
    const auto fields = entry_fields(item, label, {"path", "source", "content", "from", "mode", "owner", "template", "format", "expect",
                                                          "secret"});
    for (const Field& field : fields) {
      if (field.key == "source" || field.key == "content" || field.key == "from") {
        if (content_field != nullptr) {
          fail(field.key_node.Mark(), label + ": has both '" + content_field->key + "' and '" + field.key + "' (give exactly one of source, content, from)");
        }
        content_field = &field;
      }
      if (field.key == "path") {
        spec.path = path(field, label);
        has_path = true;
      }
      if (field.key == "mode") {
        spec.mode = mode(field, label);
        has_mode = true;
      }
      if (field.key == "owner") spec.owner = owner(field, label);
      if (field.key == "template") {
        template_field = &field;
        spec.template_source = boolean(field, label);
      }
      if (field.key == "format") format_field = &field;
      if (field.key == "expect") spec.elf_arch = read_expect(field, label);
      if (field.key == "secret") spec.secret = boolean(field, label);
    }
    if (!has_path) missing(item, label, "path");
    if (content_field == nullptr) fail(item.Mark(), label + ": needs one of 'source', 'content' or 'from'");
    if (!has_mode) missing(item, label, "mode (an octal string like \"0644\")");
    read_file_content(*content_field, label, spec);
    if (template_field != nullptr && spec.kind != ContentKind::Source) {
      fail(template_field->key_node.Mark(), label + ".template: only a 'source' file can be a template ('content' always is one)");
    }
    if (format_field != nullptr) {
      if (spec.kind != ContentKind::Credential || spec.value != "key") {
        fail(format_field->key_node.Mark(), label + ".format: only applies to 'from: credentials.key'");
      }
      spec.format = scalar(*format_field, label);
      if (spec.format != "pkcs1" && spec.format != "pkcs8") {
        fail(position(*format_field), label + ".format: '" + spec.format + "' is not pkcs1 or pkcs8");
      }
    }
    if (spec.kind == ContentKind::Content && needs_interpreter_line(spec)) {
      fail(position(*content_field), label + ".content: " + spec.path + " is executed directly (mode " + format_mode(spec.mode) +
                                         ") but does not start with #!: it would fail with 'exec format error' on the device; "
                                         "start it with a line such as #!/bin/sh");
    }
    targets_.add(spec.path, spec.where.str(), label);
    profile_.files.push_back(std::move(spec));
  }

  // Inline content the device will execute (the Mender identity script, or given an execute bit)
  // must name its interpreter. A template that starts with a variable is checked once expanded.
  static bool needs_interpreter_line(const FileSpec& spec) {
    const bool executed = (spec.mode & 0111) != 0 || is_mender_identity_script(spec.path);
    return executed && !spec.value.starts_with("#!") && !spec.value.starts_with("{{");
  }

  void read_file_content(const Field& field, const std::string& label, FileSpec& spec) {
    if (field.key == "source") {
      spec.kind = ContentKind::Source;
      spec.value = template_text(field, label);
      if (spec.value.empty()) fail(position(field), label + ".source: is empty");
    } else if (field.key == "content") {
      spec.kind = ContentKind::Content;
      spec.value = template_text(field, label);
    } else {
      spec.kind = ContentKind::Credential;
      const std::string from = scalar(field, label);
      const std::string prefix = "credentials.";
      const std::string name = from.starts_with(prefix) ? from.substr(prefix.size()) : "";
      if (!contains({"key", "cert", "chain", "fullchain", "pfx"}, name)) {
        fail(position(field), label + ".from: '" + from +
                                  "' is not one of credentials.key, credentials.cert, credentials.chain, credentials.fullchain, credentials.pfx");
      }
      spec.value = name;
      credential_uses_.emplace_back(position(field), label);
    }
  }

  std::string read_expect(const Field& field, const std::string& label) {
    const std::string what = label + ".expect";
    if (!field.value.IsMap()) fail(position(field), what + ": must be a map like { elf: armhf }, not " + type_name(field.value));
    std::string arch;
    for (const Field& item : map_fields(field.value, what, {"elf"})) {
      arch = scalar(item, what);
      if (!contains({"armhf", "aarch64", "x86_64"}, arch)) {
        fail(position(item), what + ".elf: '" + arch + "' is not armhf, aarch64 or x86_64");
      }
    }
    if (arch.empty()) missing(field.value, what, "elf");
    return arch;
  }

  void read_directory(const YAML::Node& item, const std::string& label) {
    DirectorySpec spec;
    spec.where = position(item);
    bool has_path = false;
    for (const Field& field : entry_fields(item, label, {"path", "mode", "owner"})) {
      if (field.key == "path") {
        spec.path = path(field, label);
        has_path = true;
      }
      if (field.key == "mode") spec.mode = mode(field, label);
      if (field.key == "owner") spec.owner = owner(field, label);
    }
    if (!has_path) missing(item, label, "path");
    targets_.add(spec.path, spec.where.str(), label);
    profile_.directories.push_back(std::move(spec));
  }

  void read_symlink(const YAML::Node& item, const std::string& label) {
    SymlinkSpec spec;
    spec.where = position(item);
    bool has_path = false, has_target = false;
    for (const Field& field : entry_fields(item, label, {"path", "target", "owner"})) {
      if (field.key == "path") {
        spec.path = path(field, label);
        has_path = true;
      }
      if (field.key == "target") {
        spec.target = template_text(field, label);
        has_target = true;
      }
      if (field.key == "owner") spec.owner = owner(field, label);
      if (field.key == "target" && spec.target.empty()) fail(position(field), label + ".target: is empty");
    }
    if (!has_path) missing(item, label, "path");
    if (!has_target) missing(item, label, "target");
    targets_.add(spec.path, spec.where.str(), label);
    profile_.symlinks.push_back(std::move(spec));
  }

  void read_remove(const YAML::Node& item, const std::string& label) {
    RemoveSpec spec;
    spec.where = position(item);
    bool has_path = false;
    for (const Field& field : entry_fields(item, label, {"path", "recursive"})) {
      if (field.key == "path") {
        spec.path = path(field, label);
        has_path = true;
      }
      if (field.key == "recursive") spec.recursive = boolean(field, label);
    }
    if (!has_path) missing(item, label, "path");
    targets_.add(spec.path, spec.where.str(), label);
    profile_.removes.push_back(std::move(spec));
  }

  // "- key-matches-cert" or "- cert-valid-for-days: 30".
  void read_check(const YAML::Node& item, const std::string& label) {
    static const std::initializer_list<std::string_view> known = {
        "key-matches-cert", "cn-is-device-id", "dps-registration-id", "cert-not-ca",  "cert-valid-for-days",
        "chain-valid-for-days", "chain-verifies", "pfx-opens",       "rsa-only",            "identity-prints-device-id"};
    const auto takes_days = [](const std::string& name) { return name == "cert-valid-for-days" || name == "chain-valid-for-days"; };
    CheckSpec spec;
    spec.where = position(item);
    if (item.IsScalar()) {
      spec.name = item.Scalar();
    } else if (item.IsMap() && item.size() == 1) {
      const auto pair = *item.begin();
      if (!pair.first.IsScalar()) fail(pair.first.Mark(), label + ": a check name must be a plain name");
      spec.name = pair.first.Scalar();
      if (!contains(known, spec.name)) fail(pair.first.Mark(), label + ": unknown check '" + spec.name + "' (known: " + join(known) + ")");
      if (!takes_days(spec.name)) fail(pair.first.Mark(), label + ": check '" + spec.name + "' takes no argument");
      const long days = integer(Field{spec.name, pair.first, pair.second}, label);
      if (days < 1) fail(pair.second.Mark(), label + "." + spec.name + ": must be at least 1");
      spec.argument = std::to_string(days);
    } else {
      fail(item.Mark(), label + ": a check is a name or 'name: argument', not " + type_name(item));
    }
    if (!contains(known, spec.name)) fail(item.Mark(), label + ": unknown check '" + spec.name + "' (known: " + join(known) + ")");
    if (takes_days(spec.name) && spec.argument.empty()) {
      fail(item.Mark(), label + ": " + spec.name + " needs a number of days ('" + spec.name + ": 30')");
    }
    for (const CheckSpec& other : profile_.checks) {
      if (other.name == spec.name) fail(item.Mark(), label + ": check '" + spec.name + "' is already listed at " + other.where.str());
    }
    profile_.checks.push_back(std::move(spec));
  }

  // A "from: credentials.*" entry needs a credentials section to take its bytes from.
  void check_credentials_configured() const {
    if (profile_.credentials || credential_uses_.empty()) return;
    const auto& [where, label] = credential_uses_.front();
    fail(where, label + ".from: the profile has no 'credentials:' section to take it from");
  }
};

}  // namespace

Profile parse_profile(const std::string& yaml, const std::string& name, const std::string& directory) {
  return Loader(name, directory).load(yaml);
}

Profile load_profile(const std::string& path) {
  std::string text;
  try {
    text = read_host_file(path);
  } catch (const Error& error) {
    throw Error(std::string("profile ") + error.what(), error.code());
  }
  // Sources resolve against the profile's directory, made absolute so a later chdir cannot move it.
  std::filesystem::path directory = std::filesystem::absolute(std::filesystem::path(path)).parent_path();
  return parse_profile(text, path, directory.lexically_normal().string());
}

}  // namespace imprint
