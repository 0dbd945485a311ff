// One overwrite rule for every command that writes a named output (stamp -o, batch images, ledger
// export, certs, flash onto a regular file): an existing file is refused unless --force is given.
// A batch re-run that resumes its own output directory is not an overwrite (see batch.hpp).
#pragma once

#include <string>

namespace imprint {

// Error(Exists) "PATH already exists (--force replaces it)" when something is at path (a dangling
// symlink included) and force is false. `hint` replaces the parenthesis when a command says more.
void refuse_existing_output(const std::string& path, bool force, const std::string& hint = "--force replaces it");

}  // namespace imprint
