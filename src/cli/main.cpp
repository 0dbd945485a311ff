// imprint command line: parses arguments, calls the library, prints. No logic of its own.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "imprint/edit.hpp"
#include "imprint/error.hpp"
#include "imprint/fileio.hpp"
#include "imprint/inspect.hpp"
#include "imprint/pathmap.hpp"
#include "imprint/profile.hpp"
#include "imprint/stamp.hpp"

namespace {

using namespace imprint;

void write_stdout(std::string_view bytes) {
  if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size()) throw Error("cannot write to standard output");
}

void warn(const std::string& message) { std::fprintf(stderr, "imprint: warning: %s\n", message.c_str()); }

// Variables from --set K=V, --set-file K=PATH and --set-env K=ENV (secrets never need argv).
struct VariableOptions {
  std::vector<std::string> set, set_file, set_env;

  void add_to(CLI::App* command) {
    command->add_option("--set", set, "Set a profile variable (K=V)");
    command->add_option("--set-file", set_file, "Set a variable from a file's content (K=PATH; one trailing newline dropped)");
    command->add_option("--set-env", set_env, "Set a variable from an environment variable (K=ENV)");
  }

  Variables collect() const {
    Variables variables;
    for (const auto& item : set) {
      auto [name, value] = split(item, "--set");
      variables[name] = value;
    }
    for (const auto& item : set_file) {
      auto [name, path] = split(item, "--set-file");
      std::string value = read_host_file(path);
      if (!value.empty() && value.back() == '\n') value.pop_back();
      variables[name] = value;
    }
    for (const auto& item : set_env) {
      auto [name, environment] = split(item, "--set-env");
      const char* value = std::getenv(environment.c_str());
      if (value == nullptr) throw Error("--set-env " + item + ": environment variable " + environment + " is not set", ErrorCode::Invalid);
      variables[name] = value;
    }
    return variables;
  }

 private:
  static std::pair<std::string, std::string> split(const std::string& item, const std::string& option) {
    const auto equals = item.find('=');
    if (equals == std::string::npos || equals == 0) throw Error(option + " " + item + ": expected NAME=VALUE", ErrorCode::Invalid);
    return {item.substr(0, equals), item.substr(equals + 1)};
  }
};

void add_inspect(CLI::App& app) {
  auto* command = app.add_subcommand("inspect", "Show partitions, roles, filesystems, free space, device_type, artifact name");
  static std::string image;
  static bool json = false;
  command->add_option("IMAGE", image, "Disk image (raw or compressed)")->required();
  command->add_flag("--json", json, "Machine-readable output");
  command->callback([] {
    DiskImage disk = DiskImage::open(image, OpenMode::ReadOnly);
    const InspectReport report = inspect_image(disk);
    write_stdout(json ? inspect_json(report) : format_inspect(report));
  });
}

void add_ls(CLI::App& app) {
  auto* command = app.add_subcommand("ls", "List a directory or file inside an image");
  static std::string target;
  static bool long_format = false;
  command->add_flag("-l", long_format, "Long listing (mode, owner, size, time)");
  command->add_option("IMAGE:PATH", target, "e.g. disk.img:/data/mender or disk.img:primary:/etc")->required();
  command->callback([] {
    const ImageTarget parsed = parse_image_target(target);
    DiskImage disk = DiskImage::open(parsed.image, OpenMode::ReadOnly);
    const auto listed = list_path(disk, parsed.spec);
    for (const ListedEntry& entry : listed) {
      if (listed.size() > 1) write_stdout(describe(entry.location) + ":\n");
      for (const DirEntry& item : entry.entries) write_stdout(format_entry(item, long_format) + "\n");
    }
  });
}

void add_cat(CLI::App& app) {
  auto* command = app.add_subcommand("cat", "Print a file inside an image");
  static std::string target;
  command->add_option("IMAGE:PATH", target, "e.g. disk.img:/data/mender/mender.conf")->required();
  command->callback([] {
    const ImageTarget parsed = parse_image_target(target);
    DiskImage disk = DiskImage::open(parsed.image, OpenMode::ReadOnly);
    cat_path(disk, parsed.spec, write_stdout);
  });
}

void add_put(CLI::App& app) {
  auto* command = app.add_subcommand("put", "Write a host file (or - for stdin) into an image, creating parent directories");
  static std::string source, target, mode = "0644", owner = "0:0";
  command->add_option("-m,--mode", mode, "Octal mode (600 and 0600 both mean 0600)");
  command->add_option("--owner", owner, "uid:gid, or user:group from the image's /etc/passwd");
  command->add_option("HOSTFILE", source, "Host file, or - for standard input")->required();
  command->add_option("IMAGE:PATH", target, "e.g. disk.img:/data/mender/mender-agent.pem")->required();
  command->callback([] {
    PutOptions options;
    options.mode = parse_octal_mode(mode, "-m");
    options.owner = owner;
    const ImageTarget parsed = parse_image_target(target);
    std::string buffered_stdin;
    if (source == "-") buffered_stdin = read_host_file("/dev/stdin");
    else if (::access(source.c_str(), R_OK) != 0) throw_errno("cannot read " + source);
    UniqueFd current;
    auto open_source = [&]() -> std::unique_ptr<ByteSource> {
      if (source == "-") return std::make_unique<MemorySource>(buffered_stdin);
      current = open_read(source);
      return std::make_unique<FdSource>(current.get(), source);
    };
    DiskImage disk = DiskImage::open(parsed.image, OpenMode::ReadWrite);
    put_path(disk, parsed.spec, open_source, options);
    disk.flush();
  });
}

void add_rm(CLI::App& app) {
  auto* command = app.add_subcommand("rm", "Remove a file or directory inside an image");
  static std::string target;
  static bool recursive = false;
  command->add_flag("-r,--recursive", recursive, "Remove directories and their contents");
  command->add_option("IMAGE:PATH", target)->required();
  command->callback([] {
    const ImageTarget parsed = parse_image_target(target);
    DiskImage disk = DiskImage::open(parsed.image, OpenMode::ReadWrite);
    remove_path(disk, parsed.spec, recursive);
    disk.flush();
  });
}

void add_mkdir(CLI::App& app) {
  auto* command = app.add_subcommand("mkdir", "Create a directory inside an image");
  static std::string target, mode = "0755";
  static bool parents = false;
  command->add_flag("-p,--parents", parents, "Create missing parents; no error if it exists");
  command->add_option("-m,--mode", mode, "Octal mode");
  command->add_option("IMAGE:PATH", target)->required();
  command->callback([] {
    const ImageTarget parsed = parse_image_target(target);
    DiskImage disk = DiskImage::open(parsed.image, OpenMode::ReadWrite);
    mkdir_path(disk, parsed.spec, parents, parse_octal_mode(mode, "-m"));
    disk.flush();
  });
}

void add_stamp(CLI::App& app) {
  auto* command = app.add_subcommand("stamp", "Write one device's image from a golden image and a profile");
  static StampRequest request;
  static VariableOptions variables;
  static bool json = false;
  command->add_option("-p,--profile", request.profile_path, "Profile (YAML)")->required();
  command->add_option("-i,--input", request.golden_path, "Golden image (raw or compressed; never modified)")->required();
  command->add_option("--device", request.device_id, "Device id ({{device_id}})")->required();
  command->add_option("-o,--output", request.output_path, "Output image (created 0600)");
  command->add_flag("--in-place", request.in_place, "Patch the input image itself (raw images; developer use)");
  command->add_flag("--dry-run", request.dry_run, "Print the plan; write nothing");
  command->add_flag("--json", json, "Machine-readable output");
  command->add_option("--emit", request.emit_directory,
                      "Write the device's public key, preauthorization body, thumbprints and DPS enrollment here");
  variables.add_to(command);
  command->callback([] {
    if (request.output_path.empty() && !request.in_place && !request.dry_run) {
      throw Error("stamp needs -o OUTPUT (or --in-place, or --dry-run)", ErrorCode::Invalid);
    }
    request.overrides = variables.collect();
    const StampResult result = stamp(request);
    for (const auto& warning : result.warnings) warn(warning);
    if (request.dry_run) {
      write_stdout(json ? plan_to_json(result.plan) + "\n" : format_plan(result.plan));
    } else if (json) {
      nlohmann::ordered_json out{{"device_id", request.device_id}, {"output", result.output_path}, {"warnings", result.warnings}};
      write_stdout(out.dump() + "\n");
    }
  });
}

void add_verify(CLI::App& app) {
  auto* command = app.add_subcommand("verify", "Check an image against a device's plan");
  static std::string profile_path, device_id, image;
  static VariableOptions variables;
  static bool json = false;
  command->add_option("-p,--profile", profile_path, "Profile (YAML)")->required();
  command->add_option("--device", device_id, "Device id")->required();
  command->add_option("IMAGE", image, "Stamped image")->required();
  command->add_flag("--json", json, "Machine-readable output");
  variables.add_to(command);
  command->callback([] {
    const Profile profile = load_profile(profile_path);
    const DevicePlan device = prepare_device(profile, device_id, variables.collect());
    DiskImage disk = DiskImage::open(image, OpenMode::ReadOnly);
    const auto differences = verify_plan(disk, device);
    if (json) {
      write_stdout(nlohmann::ordered_json{{"device_id", device_id}, {"image", image}, {"ok", differences.empty()}, {"differences", differences}}.dump() + "\n");
    } else {
      for (const auto& difference : differences) write_stdout(difference + "\n");
    }
    if (!differences.empty()) {
      throw Error(image + " does not match the plan for " + device_id + ": " + std::to_string(differences.size()) + " difference(s)",
                  ErrorCode::CheckFailed);
    }
    if (!json) write_stdout(image + ": matches the plan for " + device_id + "\n");
  });
}

void add_profile(CLI::App& app) {
  auto* command = app.add_subcommand("profile", "Work with profiles");
  command->require_subcommand(1);
  auto* check = command->add_subcommand("check", "Validate a profile without an image; list the variables it needs");
  static std::string profile_path;
  check->add_option("PROFILE", profile_path)->required();
  check->callback([] {
    const Profile profile = load_profile(profile_path);
    write_stdout(profile_path + ": ok\nvariables:\n");
    for (const auto& name : required_variables(profile)) {
      const auto found = profile.variables.find(name);
      const bool defaulted = found != profile.variables.end();
      write_stdout("  " + name + (name == "device_id" ? " (from --device)" : defaulted ? " (has a default)" : " (required)") + "\n");
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  ::umask(077);  // outputs and generated keys are private to their owner
  CLI::App app{"imprint: stamp per-device identity into mender-convert disk images, offline"};
  app.set_version_flag("--version", std::string("imprint ") + IMPRINT_VERSION);
  app.require_subcommand(1);
  add_inspect(app);
  add_ls(app);
  add_cat(app);
  add_put(app);
  add_rm(app);
  add_mkdir(app);
  add_stamp(app);
  add_verify(app);
  add_profile(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& success) {
    return app.exit(success);
  } catch (const CLI::ParseError& error) {
    std::fprintf(stderr, "imprint: %s\n", error.what());
    return 2;
  } catch (const Error& error) {
    std::fprintf(stderr, "imprint: %s\n", error.what());
    return error.code() == ErrorCode::CheckFailed ? 3 : 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "imprint: %s\n", error.what());
    return 1;
  }
  return 0;
}
