// imprint artifact: the fleet's rootfs update as a Mender Artifact.
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "imprint/artifact_update.hpp"

namespace imprint::cli {

void add_artifact_commands(CLI::App& app) {
  auto* command = app.add_subcommand(
      "artifact", "Write the fleet's rootfs update: the profile's device-independent rootfs part as a Mender Artifact");
  static ArtifactRequest request;
  static VariableOptions variables;
  static BackendOption backend;
  static bool json = false;
  command->add_option("-p,--profile", request.profile_path, "Profile (YAML)")->required();
  command->add_option("-i,--input", request.golden_path, "Golden image (raw or compressed; never modified)")->required();
  command->add_option("--artifact-name", request.artifact_name, "Artifact name (also rootfs-image.version)")->required();
  command->add_option("-o,--output", request.output_path, "Output Artifact (update.mender, created 0600)")->required();
  command->add_option("-k,--key", request.key_path, "Sign with this PEM private key (RSA or ECDSA P-256)");
  command->add_flag("--json", json, "Machine-readable output");
  variables.add_to(command);
  backend.add_to(command);
  command->callback([] {
    request.overrides = variables.collect();
    request.backend = backend.get();
    const ArtifactResult result = write_rootfs_update(request);
    if (json) {
      nlohmann::ordered_json out{{"output", request.output_path}, {"artifact_name", request.artifact_name},
                                 {"device_types", result.device_types}, {"rootfs_checksum", result.checksum},
                                 {"ops", result.plan.ops.size()}, {"signed", !request.key_path.empty()}};
      write_stdout(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    }
  });
}

}  // namespace imprint::cli
