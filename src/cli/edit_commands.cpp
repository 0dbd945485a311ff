// Developer commands: inspect, ls, cat, put, rm, mkdir.
#include <unistd.h>

#include <algorithm>

#include "common.hpp"
#include "imprint/bytes.hpp"
#include "imprint/edit.hpp"
#include "imprint/error.hpp"
#include "imprint/fileio.hpp"
#include "imprint/inspect.hpp"
#include "imprint/pathmap.hpp"

namespace imprint::cli {

namespace {

// A listing with each line escaped (device_type, artifact name, labels and file names come from the
// image): its own line breaks stay, those inside a value do not.
std::string escape_lines(const std::string& text) {
  std::string out;
  for (std::size_t start = 0; start < text.size();) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    out += escape_control(std::string_view(text).substr(start, end - start)) + (end < text.size() ? "\n" : "");
    start = end + 1;
  }
  return out;
}

void add_inspect(CLI::App& app) {
  auto* command = app.add_subcommand("inspect", "Show partitions, roles, filesystems, free space, device_type, artifact name");
  static std::string image;
  static bool json = false;
  command->add_option("IMAGE", image, "Disk image (raw or compressed)")->required();
  command->add_flag("--json", json, "Machine-readable output");
  static BackendOption backend;
  backend.add_to(command);
  command->callback([] {
    DiskImage disk = DiskImage::open(image, OpenMode::ReadOnly, backend.get());
    const InspectReport report = inspect_image(disk);
    write_stdout(json ? inspect_json(report) : escape_lines(format_inspect(report)));
  });
}

void add_ls(CLI::App& app) {
  auto* command = app.add_subcommand("ls", "List a directory or file inside an image");
  static std::string target;
  static bool long_format = false;
  command->add_flag("-l", long_format, "Long listing (mode, owner, size, time)");
  command->add_option("IMAGE:PATH", target, "e.g. disk.img:/data/mender or disk.img:primary:/etc")->required();
  static BackendOption backend;
  backend.add_to(command);
  command->callback([] {
    const ImageTarget parsed = parse_image_target(target);
    DiskImage disk = DiskImage::open(parsed.image, OpenMode::ReadOnly, backend.get());
    const auto listed = list_path(disk, parsed.spec);
    // Names come from the image: a newline or an escape sequence in one must not reach the terminal raw.
    for (const ListedEntry& entry : listed) {
      if (listed.size() > 1) write_stdout(escape_control(describe(entry.location)) + ":\n");
      for (const DirEntry& item : entry.entries) write_stdout(escape_control(format_entry(item, long_format)) + "\n");
    }
  });
}

void add_cat(CLI::App& app) {
  auto* command = app.add_subcommand("cat", "Print a file inside an image");
  static std::string target;
  command->add_option("IMAGE:PATH", target, "e.g. disk.img:/data/mender/mender.conf")->required();
  static BackendOption backend;
  backend.add_to(command);
  command->callback([] {
    const ImageTarget parsed = parse_image_target(target);
    DiskImage disk = DiskImage::open(parsed.image, OpenMode::ReadOnly, backend.get());
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
  static BackendOption backend;
  backend.add_to(command);
  command->callback([] {
    PutOptions options;
    options.mode = parse_octal_mode(mode, "-m");
    options.owner = owner;
    const ImageTarget parsed = parse_image_target(target);
    std::string buffered_stdin;
    if (source == "-") buffered_stdin = read_fd(STDIN_FILENO, "standard input", kSourceInputLimit);
    else if (::access(source.c_str(), R_OK) != 0) throw_errno("cannot read " + source);
    UniqueFd current;
    auto open_source = [&]() -> std::unique_ptr<ByteSource> {
      if (source == "-") return std::make_unique<MemorySource>(buffered_stdin);
      current = open_read(source, InputKind::File);
      return std::make_unique<FdSource>(current.get(), source);
    };
    DiskImage disk = DiskImage::open(parsed.image, OpenMode::ReadWrite, backend.get());
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
  static BackendOption backend;
  backend.add_to(command);
  command->callback([] {
    const ImageTarget parsed = parse_image_target(target);
    DiskImage disk = DiskImage::open(parsed.image, OpenMode::ReadWrite, backend.get());
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
  static BackendOption backend;
  backend.add_to(command);
  command->callback([] {
    const ImageTarget parsed = parse_image_target(target);
    DiskImage disk = DiskImage::open(parsed.image, OpenMode::ReadWrite, backend.get());
    mkdir_path(disk, parsed.spec, parents, parse_octal_mode(mode, "-m"));
    disk.flush();
  });
}

}  // namespace

void add_edit_commands(CLI::App& app) {
  add_inspect(app);
  add_ls(app);
  add_cat(app);
  add_put(app);
  add_rm(app);
  add_mkdir(app);
}

}  // namespace imprint::cli
