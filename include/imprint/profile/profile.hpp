// Profiles: the YAML file (version: 1) that says what goes where for every device of a fleet.
// Loading is strict: unknown keys, wrong types, non-octal modes, duplicate targets and undefined
// variables are Error(Invalid) naming "<file>:<line>:<column>".
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "imprint/profile/plan.hpp"
#include "imprint/profile/template.hpp"

namespace imprint {

// "<file>:<line>:<column>" of a YAML node (1-based).
struct SourcePosition {
  std::string file;
  int line = 0;
  int column = 0;
  std::string str() const;
};

enum class ContentKind { Source, Content, Credential };

// The Mender client's identity script, which it executes directly (no shell fallback).
constexpr const char* kMenderIdentityScript = "/usr/share/mender/identity/mender-device-identity";
// Is this profile path (device view or ROLE:PATH, as written) the identity script on a root filesystem?
bool is_mender_identity_script(const std::string& path);
// What the kernel can exec: a script with "#!" or an ELF executable.
bool starts_like_an_executable(std::string_view bytes);

struct FileSpec {
  SourcePosition where;
  std::string path;            // template; device view or ROLE:PATH
  ContentKind kind = ContentKind::Content;
  std::string value;           // Source: host path template (relative to the profile's directory);
                               // Content: inline template; Credential: "key", "cert", "chain",
                               // "fullchain", "pfx" (from: credentials.<name>)
  std::string format;          // Credential key format: "pkcs1" | "pkcs8" | "" (default)
  unsigned mode = 0;           // required
  std::string owner = "0:0";
  bool template_source = false;  // expand {{...}} inside a source: file
  std::string elf_arch;        // expect: { elf: armhf | aarch64 | x86_64 }
  bool secret = false;         // secret: true: its digest is never printed (--dry-run shows its size)
};

struct DirectorySpec {
  SourcePosition where;
  std::string path;
  unsigned mode = 0755;
  std::string owner = "0:0";
};

struct SymlinkSpec {
  SourcePosition where;
  std::string path;
  std::string target;  // template
  std::string owner = "0:0";
};

struct RemoveSpec {
  SourcePosition where;
  std::string path;
  bool recursive = false;
};

struct GenerateSpec {
  std::string ca_cert;           // template, host path
  std::string ca_key;            // template, host path
  std::string ca_key_password;   // template (usually "{{ca_key_password}}"), may be empty
  std::string key_type = "rsa:4096";  // rsa:2048 | rsa:3072 | rsa:4096 | ec:p256
  int days = 365;
};

struct CredentialsSpec {
  SourcePosition where;
  std::string key;            // templates of host paths; empty when not given
  std::string key_password;   // template, for an encrypted key
  std::string cert;
  std::string chain;
  std::string pfx;
  std::string pfx_password = "{{pfx_password}}";  // template; the device client's password
  std::string pfx_encryption = "compat";            // compat (3DES + SHA-1 MAC) | aes
  std::optional<GenerateSpec> generate;
};

struct CheckSpec {
  SourcePosition where;
  std::string name;       // "key-matches-cert", "cert-valid-for-days", ...
  std::string argument;   // "30" for cert-valid-for-days: 30; empty otherwise
};

struct Profile {
  std::string path;       // the profile file
  std::string directory;  // its directory: relative source paths resolve against it
  // Variables whose relative path values resolve against a directory other than the working one:
  // a batch's CSV columns, against the CSV's directory.
  std::map<std::string, std::string> variable_directories;
  Variables variables;    // defaults
  std::set<std::string> raw_variables;  // `raw: true`: may hold control characters in a #! script
  std::optional<CredentialsSpec> credentials;
  std::vector<DirectorySpec> directories;
  std::vector<FileSpec> files;
  std::vector<SymlinkSpec> symlinks;
  std::vector<RemoveSpec> removes;
  std::vector<CheckSpec> checks;
};

Profile load_profile(const std::string& path);
// Parses YAML text; `name` is used in messages and `directory` for relative sources.
Profile parse_profile(const std::string& yaml, const std::string& name, const std::string& directory);

// Every variable the profile's templates use (device_id included), sorted.
std::vector<std::string> required_variables(const Profile& profile);

// Every variable the profile uses has a value in `variables`, or Error(Invalid) naming all the
// missing ones at once: "<profile>: no value for variables 'a', 'b': set each with --set NAME=...
// or a column of the devices CSV".
void require_variables(const Profile& profile, const Variables& variables);
// Does a device get a value for `name` without being given one: a default in the profile's
// variables, or credentials.pfx_password left at its default template (the built-in password)?
bool variable_has_default(const Profile& profile, const std::string& name);

// A variable given by --set (or --set-file, --set-env, a CSV column) that the profile neither uses
// nor defines a default for: "<profile> never uses variable 'dps_clinet' (did you mean
// 'dps_client'?)", the closest known name by edit distance. Empty when the profile knows it.
std::string unused_variable_problem(const Profile& profile, const std::string& name);

// A host path from a template: absolute stays; relative resolves against the profile's directory
// when the profile wrote it ("files/x"), and when it starts with a variable ("{{key_file}}") against
// that variable's directory in variable_directories (a CSV column), else the working directory
// (the value came from the command line).
std::string resolve_host_path(const Profile& profile, const std::string& template_text, const std::string& expanded);

// Variables for one device: profile defaults < overrides (CSV columns, --set) < device_id.
Variables device_variables(const Profile& profile, const Variables& overrides, const std::string& device_id);

// Supplies the bytes of `from: credentials.<name>` (format as in FileSpec::format). The stamp
// module wires this to the credentials module; an empty function makes such entries an error.
using CredentialBytes = std::function<std::string(const std::string& name, const std::string& format)>;

// Expands the profile for one device: templates, source files read byte for byte, credentials.
// Error(Invalid) naming the entry's position for undefined variables, missing source files and
// two entries writing the same target.
Plan build_plan(const Profile& profile, const Variables& variables, const CredentialBytes& credentials);

}  // namespace imprint
