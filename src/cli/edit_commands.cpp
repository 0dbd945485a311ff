// Developer commands: inspect, ls, cat, put, rm, mkdir.
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "common.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/edit/edit.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/inspect/inspect.hpp"
#include "imprint/image/pathmap.hpp"

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

// What every IMAGE:PATH command takes; a command's own options derive from it. Each command's
// options are owned by its callback.
struct PathOptions {
  std::string target;
  BackendOption backend;
  void add_to(CLI::App* command, const std::string& example = "") {
    command->add_option("IMAGE:PATH", target, example)->required();
    backend.add_to(command);
  }
  ImageTarget parse() const {
    return option_value([&] { return parse_image_target(target); });
  }
  DiskImage open(const ImageTarget& parsed, OpenMode mode) const { return DiskImage::open(parsed.image, mode, backend.get()); }
};

void add_inspect(CLI::App& app) {
  auto* command = app.add_subcommand("inspect", "Show partitions, roles, filesystems, free space, device_type, artifact name");
  struct Options {
    std::string image;
    bool json = false;
    BackendOption backend;
  };
  auto o = std::make_shared<Options>();
  command->add_option("IMAGE", o->image, "Disk image (raw or compressed)")->required();
  command->add_flag("--json", o->json, "Machine-readable output");
  o->backend.add_to(command);
  command->callback([o] {
    DiskImage disk = DiskImage::open(o->image, OpenMode::ReadOnly, o->backend.get());
    const InspectReport report = inspect_image(disk);
    write_stdout(o->json ? inspect_json(report) : escape_lines(format_inspect(report)));
  });
}

void add_ls(CLI::App& app) {
  auto* command = app.add_subcommand("ls", "List a directory or file inside an image");
  struct Options : PathOptions {
    bool long_format = false, recursive = false;
  };
  auto o = std::make_shared<Options>();
  command->add_flag("-l", o->long_format, "Long listing (mode, owner and group names from the image, size, time)");
  command->add_flag("-R,--recursive", o->recursive, "List subdirectories too (symbolic links are not followed)");
  o->add_to(command, "e.g. disk.img:/data/mender or disk.img:primary:/etc");
  command->callback([o] {
    const bool long_format = o->long_format;
    const ImageTarget parsed = o->parse();
    DiskImage disk = o->open(parsed, OpenMode::ReadOnly);
    const auto listed = list_path(disk, parsed.spec, ListOptions{o->recursive, long_format});
    const bool two_partitions = listed.front().location.partition != listed.back().location.partition;
    // Names come from the image: a newline or an escape sequence in one must not reach the terminal raw.
    for (std::size_t i = 0; i < listed.size(); ++i) {
      const ListedEntry& entry = listed[i];
      if (o->recursive) {
        // As ls -R: "DIR:" before each directory, a blank line between them.
        const std::string where = two_partitions ? describe(entry.location) + " " : "";
        write_stdout((i > 0 ? "\n" : "") + escape_control(where + entry.location.path) + ":\n");
      } else if (listed.size() > 1) {
        write_stdout(escape_control(describe(entry.location)) + ":\n");
      }
      for (const DirEntry& item : entry.entries) write_stdout(escape_control(format_entry(item, long_format, entry.owners)) + "\n");
    }
  });
}

void add_cat(CLI::App& app) {
  auto* command = app.add_subcommand("cat", "Print a file inside an image");
  auto o = std::make_shared<PathOptions>();
  o->add_to(command, "e.g. disk.img:/data/mender/mender.conf");
  command->callback([o] {
    const ImageTarget parsed = o->parse();
    DiskImage disk = o->open(parsed, OpenMode::ReadOnly);
    const std::string note = cat_path(disk, parsed.spec, write_stdout);
    if (!note.empty()) warn(note);
  });
}

void add_put(CLI::App& app) {
  auto* command = app.add_subcommand("put", "Write a host file (or - for stdin) into an image, creating parent directories");
  struct Options : PathOptions {
    std::string source, mode = "0644", owner = "0:0";
  };
  auto o = std::make_shared<Options>();
  command->add_option("-m,--mode", o->mode, "Octal mode (600 and 0600 both mean 0600)");
  command->add_option("--owner", o->owner, "uid:gid, or user:group from the image's /etc/passwd");
  command->add_option("HOSTFILE", o->source, "Host file, or - for standard input")->required();
  o->add_to(command, "e.g. disk.img:/data/mender/mender-agent.pem");
  command->callback([o] {
    const std::string& source = o->source;
    PutOptions options;
    options.mode = option_value([&] { return parse_octal_mode(o->mode, "-m"); });
    options.owner = o->owner;
    const ImageTarget parsed = o->parse();
    std::string buffered_stdin;
    if (source == "-") buffered_stdin = read_fd(STDIN_FILENO, "standard input", kSourceInputLimit);
    else if (::access(source.c_str(), R_OK) != 0) throw_errno("cannot read " + source);
    UniqueFd current;
    auto open_source = [&]() -> std::unique_ptr<ByteSource> {
      if (source == "-") return std::make_unique<MemorySource>(buffered_stdin);
      current = open_read(source, InputKind::File);
      return std::make_unique<FdSource>(current.get(), source);
    };
    DiskImage disk = o->open(parsed, OpenMode::ReadWrite);
    put_path(disk, parsed.spec, open_source, options);
    disk.flush();
  });
}

void add_rm(CLI::App& app) {
  auto* command = app.add_subcommand("rm", "Remove a file or directory inside an image");
  struct Options : PathOptions {
    bool recursive = false;
  };
  auto o = std::make_shared<Options>();
  command->add_flag("-r,--recursive", o->recursive, "Remove directories and their contents");
  o->add_to(command);
  command->callback([o] {
    const ImageTarget parsed = o->parse();
    DiskImage disk = o->open(parsed, OpenMode::ReadWrite);
    remove_path(disk, parsed.spec, o->recursive);
    disk.flush();
  });
}

void add_mkdir(CLI::App& app) {
  auto* command = app.add_subcommand("mkdir", "Create a directory inside an image");
  struct Options : PathOptions {
    std::string mode = "0755";
    bool parents = false;
  };
  auto o = std::make_shared<Options>();
  command->add_flag("-p,--parents", o->parents, "Create missing parents; no error if it exists");
  command->add_option("-m,--mode", o->mode, "Octal mode");
  o->add_to(command);
  command->callback([o] {
    const ImageTarget parsed = o->parse();
    DiskImage disk = o->open(parsed, OpenMode::ReadWrite);
    mkdir_path(disk, parsed.spec, o->parents, option_value([&] { return parse_octal_mode(o->mode, "-m"); }));
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
