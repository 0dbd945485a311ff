#include "support.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "imprint/core/bytes.hpp"
#include "test_paths.hpp"

extern char** environ;

namespace imprint::test {

namespace {
// The environment overrides the paths CMake compiled in.
std::string environment_value(const char* name, const char* built_in) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : built_in;
}

std::string slurp_and_remove(const std::string& path) {
  std::string content = read_file(path);
  std::filesystem::remove(path);
  return content;
}
}  // namespace

std::string fixture(const std::string& name) {
  const std::string path = environment_value("IMPRINT_FIXTURES", IMPRINT_TEST_FIXTURES) + "/" + name;
  if (!std::filesystem::exists(path)) {
    throw std::runtime_error("fixture " + path + " is missing: run fixtures/build-all.sh (ctest runs it as build_fixtures)");
  }
  return path;
}

std::string source_dir() { return environment_value("IMPRINT_SOURCE_DIR", IMPRINT_TEST_SOURCE_DIR); }
std::string imprint_bin() { return environment_value("IMPRINT_BIN", IMPRINT_TEST_BIN); }

CommandResult run(const std::vector<std::string>& argv, const std::string& stdin_bytes,
                  const std::vector<std::string>& environment) {
  // stdout/stderr go to temp files (no pipe deadlocks on large outputs); stdin from a temp file.
  TempDir scratch;
  const std::string in_path = scratch / "stdin", out_path = scratch / "stdout", err_path = scratch / "stderr";
  write_file(in_path, stdin_bytes);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);

  // An extra entry replaces the inherited one of its name (getenv would return the first of two).
  const auto name_of = [](std::string_view entry) { return entry.substr(0, entry.find('=')); };
  std::vector<std::string> env_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const bool replaced = std::any_of(environment.begin(), environment.end(),
                                      [&](const std::string& extra) { return name_of(extra) == name_of(*entry); });
    if (!replaced) env_strings.emplace_back(*entry);
  }
  for (const auto& extra : environment) env_strings.push_back(extra);
  std::vector<char*> env_pointers;
  for (auto& entry : env_strings) env_pointers.push_back(entry.data());
  env_pointers.push_back(nullptr);

  std::vector<std::string> args = argv;
  std::vector<char*> arg_pointers;
  for (auto& arg : args) arg_pointers.push_back(arg.data());
  arg_pointers.push_back(nullptr);

  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, args.at(0).c_str(), &actions, nullptr, arg_pointers.data(), env_pointers.data());
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) throw std::runtime_error("cannot run " + args.at(0) + " (is it installed? run scripts/setup.sh)");
  int wait_status = 0;
  while (waitpid(pid, &wait_status, 0) < 0) {
  }
  CommandResult result;
  result.status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
  result.out = slurp_and_remove(out_path);
  result.err = slurp_and_remove(err_path);
  return result;
}

CommandResult run_imprint(const std::vector<std::string>& arguments, const std::string& stdin_bytes,
                      const std::vector<std::string>& environment) {
  std::vector<std::string> argv{imprint_bin()};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  return run(argv, stdin_bytes, environment);
}

CommandResult run_imprint_on_terminal(const std::vector<std::string>& arguments) {
  std::vector<std::string> words{imprint_bin()};
  words.insert(words.end(), arguments.begin(), arguments.end());
  std::string command = "exec";
  for (const std::string& word : words) {
    std::string escaped;
    for (char c : word) escaped += c == '\'' ? std::string("'\\''") : std::string(1, c);
    command += " '" + escaped + "'";
  }
  return run({"script", "-qfec", command, "/dev/null"});
}

std::string shell(const std::string& command) {
  CommandResult result = run({"/bin/sh", "-c", command});
  if (result.status != 0) {
    throw std::runtime_error("command failed (" + std::to_string(result.status) + "): " + command + "\n" + result.err);
  }
  return result.out;
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "imprint-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot create a temp directory");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string copy_fixture(const std::string& name, const TempDir& dir) {
  const std::string source = fixture(name);
  const std::string target = dir / std::filesystem::path(source).filename().string();
  CommandResult result = run({"cp", "--sparse=always", source, target});
  if (result.status != 0) throw std::runtime_error("cannot copy " + source + ": " + result.err);
  return target;
}

std::string file_sha256(const std::string& path) { return sha256_file_hex(path); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out) throw std::runtime_error("cannot write " + path);
}

Span partition_span(const std::string& image, int number) {
  CommandResult result = run({"sfdisk", "--json", image});
  if (result.status != 0) throw std::runtime_error("sfdisk --json " + image + " failed: " + result.err);
  const auto table = nlohmann::json::parse(result.out).at("partitiontable");
  const std::uint64_t sector = table.value("sectorsize", 512);
  for (const auto& partition : table.at("partitions")) {
    const std::string node = partition.at("node");
    std::size_t digits = node.size();
    while (digits > 0 && std::isdigit(static_cast<unsigned char>(node[digits - 1]))) --digits;
    if (std::stoi(node.substr(digits)) == number) {
      return Span{partition.at("start").get<std::uint64_t>() * sector, partition.at("size").get<std::uint64_t>() * sector};
    }
  }
  throw std::runtime_error("no partition " + std::to_string(number) + " in " + image);
}

std::string ext_device(const std::string& image, int number) {
  return image + "?offset=" + std::to_string(partition_span(image, number).offset);
}

std::string debugfs(const std::string& device, const std::string& command) {
  // debugfs exits 0 even when it cannot open the filesystem: check its stderr instead.
  const CommandResult result = run({"debugfs", "-R", command, device});
  if (result.err.find("while trying to open") != std::string::npos || result.err.find("opening filesystem") != std::string::npos) {
    throw std::runtime_error("debugfs could not open " + device + ": " + result.err);
  }
  return result.out;
}

std::string debugfs(const std::string& image, int number, const std::string& command) {
  return debugfs(ext_device(image, number), command);
}

std::string debugfs_write(const std::string& device, const std::string& command) {
  const CommandResult result = run({"debugfs", "-w", "-R", command, device});
  if (result.status != 0 || result.err.find("while") != std::string::npos) {
    throw std::runtime_error("debugfs -w -R '" + command + "' on " + device + " failed: " + result.err);
  }
  return result.out;
}

std::map<std::string, std::string> blkid_values(const std::string& image, const Span& span) {
  const CommandResult result =
      run({"blkid", "-p", "-o", "export", "-O", std::to_string(span.offset), "-S", std::to_string(span.size), image});
  std::map<std::string, std::string> values;
  std::istringstream lines(result.out);
  for (std::string line; std::getline(lines, line);) {
    const auto equals = line.find('=');
    if (equals != std::string::npos) values[line.substr(0, equals)] = line.substr(equals + 1);
  }
  return values;
}

std::map<std::string, std::string> blkid_values(const std::string& image, int number) {
  return blkid_values(image, partition_span(image, number));
}

bool debugfs_exists(const std::string& image, int number, const std::string& path) {
  CommandResult result = run({"debugfs", "-R", "stat " + path, ext_device(image, number)});
  if (result.err.find("File not found") != std::string::npos) return false;
  if (result.out.find("Inode:") != std::string::npos) return true;
  throw std::runtime_error("debugfs could not stat " + path + " on partition " + std::to_string(number) + ": " + result.err);
}

std::string mender_artifact_read(const std::string& image, const std::string& path, const std::string& dir) {
  const std::string out = dir + "/mender-artifact-read";
  std::filesystem::remove(out);
  CommandResult result = run({"mender-artifact", "cp", image + ":" + path, out});
  if (result.status != 0) throw std::runtime_error("mender-artifact cp " + image + ":" + path + " failed: " + result.err);
  std::string bytes = read_file(out);
  std::filesystem::remove(out);
  return bytes;
}

CommandResult e2fsck(const std::string& image, int number) {
  return run({"e2fsck", "-fn", ext_device(image, number)});
}

std::string partition_sha256(const std::string& image, int number) {
  const Span span = partition_span(image, number);
  return shell("dd if='" + image + "' bs=1M iflag=skip_bytes,count_bytes skip=" + std::to_string(span.offset) +
               " count=" + std::to_string(span.size) + " status=none | sha256sum | cut -d' ' -f1")
      .substr(0, 64);
}

Loop::Loop(const std::string& backing) {
  const CommandResult attached = run({"losetup", "--find", "--show", backing});
  if (attached.status != 0) throw std::runtime_error("this test needs root and a free loop device (losetup): " + attached.err);
  device = attached.out.substr(0, attached.out.find('\n'));
}

Loop::~Loop() { run({"losetup", "-d", device}); }

std::vector<std::string> directory_entries(const std::string& directory) {
  std::vector<std::string> names;
  if (!std::filesystem::exists(directory)) return names;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::uint64_t allocated_bytes(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw std::runtime_error("cannot stat " + path);
  return static_cast<std::uint64_t>(info.st_blocks) * 512;
}

}  // namespace imprint::test
