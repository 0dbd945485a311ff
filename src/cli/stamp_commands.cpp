// The main job: stamp, verify, profile check, certs. Each command's options live in one struct,
// owned by its callback (no function-level statics).
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/credentials/credentials.hpp"
#include "imprint/core/error.hpp"
#include "imprint/profile/profile.hpp"
#include "imprint/stamp/stamp.hpp"

namespace imprint::cli {

namespace {

struct StampOptions : CommandOptions {
  StampRequest request;
  bool bmap = false;
  std::string compress;  // empty: by the output's extension
  void run();
};

void add_stamp(CLI::App& app) {
  auto* command = app.add_subcommand("stamp", "Write one device's image from a golden image and a profile");
  auto options = std::make_shared<StampOptions>();
  StampRequest& request = options->request;
  command->add_option("-p,--profile", request.profile_path, "Profile (YAML)")->required();
  command->add_option("-i,--input", request.golden_path, "Golden image (raw or compressed; never modified)")->required();
  command->add_option("--device", request.device_id, "Device id ({{device_id}})")->required();
  command->add_option("-o,--output", request.output_path, "Output image (created 0600; OUT.gz, .xz, .zst are compressed so)");
  command->add_flag("--force", request.force, "Replace an existing output (and its bmap)");
  command->add_option("--compress", options->compress, "none | gz | xz | zst (default: by the output's extension, which must agree)");
  command->add_flag("--in-place", request.in_place, "Patch the input image itself (raw images; developer use)");
  command->add_flag("--dry-run", request.dry_run, "Print the plan; write nothing");
  command->add_flag("--bmap", options->bmap, "Also write OUTPUT's bmap (OUT.bmap for OUT.img): its block map, for bmaptool copy");
  command->add_option("--emit", request.emit_directory,
                      "Write the device's public key, preauthorization body, thumbprints and DPS enrollment here");
  command->add_option("--artifact-key", request.artifact_key, "Re-sign data:/mender/bootstrap.mender with this key once renewed");
  options->add_to(command);
  command->callback([options] { options->run(); });
}

// "stamped dev-01 into out.img (1024.0 MiB; bmap out.bmap; exports in keys/)" and
// "checks passed: key-matches-cert, elf aarch64 (1 file(s)), files fit their partitions".
std::string success_line(const StampRequest& request, const StampResult& result) {
  char size[32];
  std::snprintf(size, sizeof size, "%.1f MiB", static_cast<double>(result.output_size) / (1024.0 * 1024.0));
  std::string line = "stamped " + request.device_id + (request.in_place ? " in place into " : " into ") +
                     result.output_path + " (" + size + ", " + std::to_string(result.plan.ops.size()) + " operation(s)";
  if (!request.bmap_path.empty()) line += "; bmap " + request.bmap_path;
  if (!request.emit_directory.empty()) line += "; exports in " + request.emit_directory;
  line += ")";
  std::string checks = "checks passed: ";
  for (std::size_t i = 0; i < result.checks.size(); ++i) checks += (i ? ", " : "") + result.checks[i];
  return escape_control(line) + "\n" + escape_control(checks);
}

void StampOptions::run() {
  if (request.output_path.empty() && !request.in_place && !request.dry_run) {
    usage_error("stamp needs -o OUTPUT (or --in-place, or --dry-run)");
  }
  if (bmap) {
    if (request.output_path.empty()) usage_error("stamp --bmap needs -o OUTPUT");
    // OUT.bmap for OUT.img and OUT.img.zst alike (batch names its bmaps so): the bmap maps the image.
    std::string out = request.output_path;
    for (const char* suffix : {".gz", ".xz", ".zst"}) {
      if (out.ends_with(suffix)) out.erase(out.size() - std::string_view(suffix).size());
    }
    request.bmap_path = (out.ends_with(".img") ? out.substr(0, out.size() - 4) : out) + ".bmap";
  }
  if (!compress.empty()) request.compression = option_value([&] { return parse_compression(compress); });
  request.overrides = variables.collect(request.profile_path);
  request.backend = backend.get();
  const StampResult result = stamp(request);
  for (const auto& warning : result.warnings) warn(warning);
  if (request.dry_run) {
    write_stdout(json ? plan_to_json(result.plan) + "\n" : format_plan(result.plan));
  } else if (json) {
    nlohmann::ordered_json out{{"device_id", request.device_id},
                               {"output", result.output_path},
                               {"size", result.output_size},
                               {"checks", result.checks},
                               {"warnings", result.warnings}};
    write_stdout(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  } else {
    // On stdout, as verify's, flash's and batch's result lines: stdout carries what a command did,
    // stderr what goes wrong (and progress); --quiet drops it.
    write_result(success_line(request, result));
  }
}

struct VerifyOptions : CommandOptions {
  VerifyRequest request;
  void run();
};

void add_verify(CLI::App& app) {
  auto* command = app.add_subcommand("verify", "Check an image (or a card) against a device's plan");
  auto options = std::make_shared<VerifyOptions>();
  VerifyRequest& request = options->request;
  command->add_option("-p,--profile", request.profile_path, "Profile (YAML)")->required();
  command->add_option("--device", request.device_id, "Device id")->required();
  command->add_option("IMAGE", request.image_path, "Stamped image, or the card it was flashed to")->required();
  command->add_option("--golden", request.golden_path,
                      "Also compare IMAGE byte for byte with this golden + the device's writes (raw or compressed)");
  command->add_flag("--structure", request.structure, "Also check every filesystem's structure (e2fsck -fn, fsck.fat -n)");
  options->add_to(command);
  command->callback([options] { options->run(); });
}

void VerifyOptions::run() {
  request.overrides = variables.collect(request.profile_path);
  request.backend = backend.get();
  const VerifyResult result = verify(request);
  const std::vector<std::string>& differences = result.differences;
  const std::string& image = request.image_path;
  if (json) {
    nlohmann::ordered_json out{{"device_id", request.device_id}, {"image", image}, {"ok", differences.empty()}, {"differences", differences}};
    if (!request.golden_path.empty()) out["golden"] = request.golden_path;
    if (result.structure) {
      out["structure"] = {{"checked", result.structure->checked}, {"skipped", result.structure->skipped}, {"problems", result.structure->problems}};
    }
    write_stdout(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  } else {
    for (const auto& difference : differences) write_stdout(difference + "\n");
  }
  if (!differences.empty()) {
    throw Error(image + " does not match " + (request.golden_path.empty() ? "" : request.golden_path + " + ") + "the plan for " +
                    request.device_id + ": " + std::to_string(differences.size()) + " difference(s)",
                ErrorCode::CheckFailed);
  }
  if (!json) {  // the success lines: none with --quiet
    if (result.structure) {
      for (const auto& line : result.structure->checked) write_result(line);
    }
    write_result(image + ": matches " + (request.golden_path.empty() ? "" : request.golden_path + " + ") + "the plan for " +
                 request.device_id + (result.structure ? ", filesystems clean" : ""));
  }
}

void add_profile(CLI::App& app) {
  auto* command = app.add_subcommand("profile", "Work with profiles");
  command->require_subcommand(1);
  auto* check = command->add_subcommand("check", "Validate a profile without an image; list the variables it needs");
  auto profile_path = std::make_shared<std::string>();
  check->add_option("PROFILE", *profile_path)->required();
  check->callback([profile_path] {
    const Profile profile = load_profile(*profile_path);
    write_stdout(*profile_path + ": ok\nvariables:\n");
    for (const auto& name : required_variables(profile)) {
      const bool defaulted = variable_has_default(profile, name);
      write_stdout("  " + name + (name == "device_id" ? " (from --device)" : defaulted ? " (has a default)" : " (required)") + "\n");
    }
  });
}

// A secret from a file or an environment variable, never from argv; `fallback` when neither is given.
std::string secret_from(const std::string& file, const std::string& environment, const std::string& fallback,
                        const std::string& what) {
  if (!file.empty()) return value_from_file(file);
  if (!environment.empty()) return value_from_environment(environment, what);
  return fallback;
}

struct CertsOptions {
  std::string ca_cert, ca_key, ca_pass_file, ca_pass_env, device_id, directory, key_type = "rsa:4096";
  std::string pfx_pass_file, pfx_pass_env, key_format = "pkcs1", pfx_encryption = "compat";
  int days = 365;
  bool force = false;
  void run() const;
};

void add_certs(CLI::App& app) {
  auto* command = app.add_subcommand("certs", "Make a device key, certificate (signed by a CA), full chain and PFX");
  auto options = std::make_shared<CertsOptions>();
  CertsOptions& o = *options;
  command->add_option("--ca-cert", o.ca_cert, "CA certificate (PEM; further certificates in the file form the chain)")->required();
  command->add_option("--ca-key", o.ca_key, "CA private key (PEM, optionally encrypted)")->required();
  command->add_option("--ca-key-pass-file", o.ca_pass_file, "File holding the CA key's password");
  command->add_option("--ca-key-pass-env", o.ca_pass_env, "Environment variable holding the CA key's password");
  command->add_option("--device", o.device_id, "Device id: the certificate's CN")->required();
  command->add_option("-O,--output-dir", o.directory, "Where to write <id>.key.pem, .cert.pem, .fullchain.cert.pem, .cert.pfx")->required();
  command->add_option("--key", o.key_type, "rsa:2048 | rsa:3072 | rsa:4096 | ec:p256");
  command->add_option("--days", o.days, "Validity in days, 1 to 36500, within the CA's own validity");
  command->add_option("--key-format", o.key_format, "pkcs1 (Mender clients up to 2.4) | pkcs8");
  command->add_option("--pfx-pass-file", o.pfx_pass_file, "File holding the PFX password (default: 1234, the DPS client's)");
  command->add_option("--pfx-pass-env", o.pfx_pass_env, "Environment variable holding the PFX password");
  command->add_option("--pfx-encryption", o.pfx_encryption, "compat (3DES + SHA-1 MAC) | aes");
  command->add_flag("--force", o.force, "Replace an existing key, certificate and PFX of this device");
  command->callback([options] { options->run(); });
}

void CertsOptions::run() const {
  // The id becomes the certificate's CN, which DPS takes as the registration id: refused now, not
  // by stamp's check once the certificate exists.
  const std::string problem = dps_registration_id_problem(device_id, "--device \"" + device_id + "\"");
  if (!problem.empty()) usage_error(problem);
  const std::string ca_password = secret_from(ca_pass_file, ca_pass_env, "", "--ca-key-pass-env");
  const std::string pfx_password = secret_from(pfx_pass_file, pfx_pass_env, "1234", "--pfx-pass-env");
  const KeyFormat format = option_value([&] { return parse_key_format(key_format); });
  const PfxEncryption encryption = option_value([&] { return parse_pfx_encryption(pfx_encryption); });
  const DeviceCredentials credentials = DeviceCredentials::generate(ca_cert, ca_key, ca_password, device_id, key_type, days);
  for (const auto& path : credentials.write_certs_dir(directory, pfx_password, format, encryption, force)) {
    write_stdout(path + "\n");
  }
}

}  // namespace

void add_stamp_commands(CLI::App& app) {
  add_stamp(app);
  add_verify(app);
  add_profile(app);
  add_certs(app);
}

}  // namespace imprint::cli
