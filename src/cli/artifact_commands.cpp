// imprint artifact: the fleet's rootfs update as a Mender Artifact.
#include <memory>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "imprint/stamp/artifact_update.hpp"

namespace imprint::cli {

void add_artifact_commands(CLI::App& app) {
  auto* command = app.add_subcommand(
      "artifact", "Write the fleet's rootfs update: the profile's device-independent rootfs part as a Mender Artifact");
  struct Options : CommandOptions {
    ArtifactRequest request;
  };
  auto o = std::make_shared<Options>();
  command->add_option("-p,--profile", o->request.profile_path, "Profile (YAML)")->required();
  command->add_option("-i,--input", o->request.golden_path, "Golden image (raw or compressed; never modified)")->required();
  command->add_option("--artifact-name", o->request.artifact_name, "Artifact name (also rootfs-image.version)")->required();
  command->add_option("-o,--output", o->request.output_path, "Output Artifact (update.mender, created 0600)")->required();
  command->add_option("-k,--key", o->request.key_path, "Sign with this PEM private key (RSA or ECDSA P-256)");
  o->add_to(command);
  command->callback([o] {
    ArtifactRequest& request = o->request;
    const bool json = o->json;
    request.overrides = o->variables.collect(request.profile_path);
    request.backend = o->backend.get();
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
