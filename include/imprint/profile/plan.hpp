// A Plan: the fully expanded, validated list of operations for one device. Backend-independent
// (paths are PathSpecs, resolved against an image only when applied), printable (--dry-run) and
// comparable (verify checks an image against it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "imprint/core/pathspec.hpp"

namespace imprint {

enum class OpKind { File, Directory, Symlink, Remove };
std::string to_string(OpKind kind);  // "file", "dir", "symlink", "remove"

struct PlanOp {
  OpKind kind = OpKind::File;
  PathSpec target;                    // expanded: "/data/mender/x" or "primary:/etc/x"
  std::string bytes;                  // File: the content; Symlink: the link target
  unsigned mode = 0;                  // File/Directory: permission bits
  std::string owner = "0:0";          // "uid:gid" or "user:group" (names resolved in the image)
  std::optional<std::int64_t> mtime;  // unset: SOURCE_DATE_EPOCH or now
  bool recursive = false;             // Remove: also non-empty directories
  std::string elf_arch;               // File: expect { elf: ... } ("armhf", "aarch64", "x86_64")
  std::string credential;             // File: from credentials.<name> ("key", "pfx", ...), else ""
  bool reproducible = true;           // false when the bytes differ on every build (a PFX built with
                                      // a random salt): verify then checks meaning, not bytes
  bool secret = false;                // File: a digest would reveal it (a credential, `secret: true`, or
                                      // bytes holding a variable other than device_id, which may come
                                      // from --set-file or --set-env): plans print its size only
  std::string origin;                 // where it came from, for messages: "profile.yaml:14:5"
  std::string source;                 // File from `source:`: the host file (its size is checked
                                      // against the target partition once the image is open)
  bool inline_content = false;        // File from `content:` in the profile (not a source file or a
                                      // credential): an inline script must itself be runnable
};

struct Plan {
  std::string device_id;
  std::vector<PlanOp> ops;  // in profile order: directories, files, symlinks, removes
};

// Human listing, one line per op ("file  /data/mender/x  0600 0:0  1704 bytes sha256=...").
std::string format_plan(const Plan& plan);
// JSON: {"device_id": ..., "ops": [{"kind","target","mode","owner","size","sha256",...}]}
std::string plan_to_json(const Plan& plan);

}  // namespace imprint
