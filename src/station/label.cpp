// Labels of flashed cards: SVG with a QR code (libqrencode), and the operator's print command
// (see station/label.hpp).
#include "imprint/station/label.hpp"

#include <fcntl.h>
#include <poll.h>
#include <qrencode.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <sstream>

#include "imprint/core/bytes.hpp"
#include "imprint/stamp/device.hpp"
#include "imprint/core/error.hpp"
#include "markup.hpp"
#include "imprint/core/fileio.hpp"

extern char** environ;

namespace imprint {

namespace {

// The label's geometry in millimetres (a common 70 x 30 mm label): the QR code on the left, text
// on the right.
constexpr double kLabelWidth = 70, kLabelHeight = 30, kMargin = 2;
constexpr double kQrSide = kLabelHeight - 2 * kMargin;
constexpr double kTextX = kMargin + kQrSide + 2, kTextWidth = kLabelWidth - kTextX - kMargin;
constexpr int kQuietZone = 4;  // modules of white around the code, as the QR standard asks

std::string number(double value) {
  std::ostringstream out;
  out.imbue(std::locale::classic());
  out.precision(4);
  out << value;
  return out.str();
}

// The dark modules as one SVG path in module units, each row's runs as rectangles.
std::string qr_path(const std::string& text) {
  std::unique_ptr<QRcode, decltype(&QRcode_free)> code(
      QRcode_encodeData(static_cast<int>(text.size()), reinterpret_cast<const unsigned char*>(text.data()), 0, QR_ECLEVEL_M),
      &QRcode_free);
  if (!code) throw_errno("cannot make the QR code of device " + escape_control(text));
  const int width = code->width;
  std::string path;
  for (int y = 0; y < width; ++y) {
    for (int x = 0; x < width;) {
      if ((code->data[y * width + x] & 1) == 0) {
        ++x;
        continue;
      }
      int run = 1;
      while (x + run < width && (code->data[y * width + x + run] & 1) != 0) ++run;
      path += "M" + std::to_string(x + kQuietZone) + " " + std::to_string(y + kQuietZone) + "h" + std::to_string(run) +
              "v1h-" + std::to_string(run) + "z";
      x += run;
    }
  }
  return "<g transform=\"translate(" + number(kMargin) + " " + number(kMargin) + ") scale(" +
         number(kQrSide / (width + 2 * kQuietZone)) + ")\"><path fill=\"#000\" d=\"" + path + "\"/></g>";
}

std::size_t code_points(std::string_view text) {
  std::size_t count = 0;
  for (char c : text) count += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return count;
}

// "SHA256 1A2B 3C4D 5E6F 7A8B": the first 16 hex digits, enough to tell certificates apart by eye.
std::string short_thumbprint(const std::string& thumbprint) {
  std::string digits;
  for (char c : thumbprint) {
    if (std::isxdigit(static_cast<unsigned char>(c))) digits += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  digits.resize(std::min<std::size_t>(digits.size(), 16));
  std::string out;
  for (std::size_t i = 0; i < digits.size(); i += 4) out += (i ? " " : "") + digits.substr(i, 4);
  return out;
}

std::string today() {
  const std::time_t now = reproducible_now();
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char text[16];
  std::strftime(text, sizeof text, "%Y-%m-%d", &utc);
  return text;
}

std::string text_element(double y, double size, const std::string& weight, const std::string& text) {
  return "<text x=\"" + number(kTextX) + "\" y=\"" + number(y) + "\" font-family=\"DejaVu Sans Mono, monospace\" font-size=\"" +
         number(size) + "\" font-weight=\"" + weight + "\">" + text + "</text>\n";
}

}  // namespace

std::string label_svg(const LabelData& label) {
  const std::string id_text = escape_markup(label.device_id);
  // A monospace glyph is about 0.6 em wide: shrink long ids to fit the text column.
  const double id_size = std::min(5.0, kTextWidth / (0.6 * static_cast<double>(std::max<std::size_t>(code_points(id_text), 1))));
  std::string svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                    number(kLabelWidth) + "mm\" height=\"" + number(kLabelHeight) + "mm\" viewBox=\"0 0 " +
                    number(kLabelWidth) + " " + number(kLabelHeight) + "\" shape-rendering=\"crispEdges\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n";
  svg += qr_path(label.device_id) + "\n";
  svg += text_element(11, id_size, "bold", id_text);
  const std::string thumbprint = short_thumbprint(label.cert_thumbprint);
  if (!thumbprint.empty()) svg += text_element(18, 3, "normal", "cert " + thumbprint);
  svg += text_element(24, 3, "normal", escape_markup(label.date.empty() ? today() : label.date));
  svg += "</svg>\n";
  return svg;
}

LabelData label_for_record(const nlohmann::ordered_json& record) {
  LabelData label;
  label.device_id = record.value("device_id", "");
  const auto credentials = record.find("credentials");
  if (credentials != record.end() && credentials->is_object()) label.cert_thumbprint = credentials->value("sha1_thumbprint", "");
  return label;
}

std::string write_label_svg(const std::string& directory, const LabelData& label) {
  require_safe_device_id(label.device_id);
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) throw Error("--labels " + directory + ": cannot create it: " + error.message(), error_code_for_errno(error.value()));
  const std::string path = (std::filesystem::path(directory) / (label.device_id + ".svg")).string();
  write_file_atomically(path, label_svg(label), 0644);  // a label holds nothing secret
  return path;
}

namespace {

std::vector<std::string> split_words(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\' && i + 1 < line.size()) {
      word += line[++i];
    } else if (c == '\'') {
      const std::size_t end = line.find('\'', i + 1);
      if (end == std::string::npos) throw Error("--label-cmd '" + escape_control(line) + "': unbalanced ' quote", ErrorCode::Invalid);
      word += line.substr(i + 1, end - i - 1);
      i = end;
    } else if (c == '"') {
      for (++i;; ++i) {
        if (i >= line.size()) throw Error("--label-cmd '" + escape_control(line) + "': unbalanced \" quote", ErrorCode::Invalid);
        if (line[i] == '"') break;
        if (line[i] == '\\' && i + 1 < line.size() && std::strchr("\\\"$`", line[i + 1])) ++i;
        word += line[i];
      }
    } else {
      word += c;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

std::string replace_all(std::string text, const std::string& what, const std::string& with) {
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + with.size())) {
    text.replace(at, what.size(), with);
  }
  return text;
}

struct Finished {
  int status = -1;  // exit status, or 128 + signal
  bool timed_out = false;
  std::string output;
};

// Spawns argv in its own process group with a clean signal state (the station may block or ignore
// signals in its threads; the child must not inherit that), output into a pipe.
pid_t spawn(const std::vector<std::string>& arguments, int output_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, output_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, output_fd, STDERR_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int signal_number : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGXFSZ}) sigaddset(&defaults, signal_number);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> argv;
  for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawnp(&pid, argv[0], &actions, &attributes, argv.data(), environ);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) throw_errno("cannot run " + arguments[0], spawned);
  return pid;
}

Finished run_with_timeout(const std::vector<std::string>& arguments, std::chrono::milliseconds timeout) {
  constexpr std::size_t kOutputLimit = 16 * 1024;  // enough for the line the warning quotes
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw_errno("cannot run " + arguments[0]);
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  const pid_t pid = spawn(arguments, write_end.get());
  write_end.reset();
  Finished finished;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(-pid, SIGKILL);  // the whole group: a print spooler's helpers too
      finished.timed_out = true;
      break;
    }
    pollfd readable{read_end.get(), POLLIN, 0};
    const int ready = ::poll(&readable, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    char buffer[4096];
    const ssize_t got = ::read(read_end.get(), buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // end of output: the command (and whatever shares its pipe) is done
    if (finished.output.size() < kOutputLimit) finished.output.append(buffer, static_cast<std::size_t>(got));
  }
  int status = 0;
  pid_t waited;
  while ((waited = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (waited == pid) finished.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return finished;
}

std::string first_line(const std::string& output) {
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) return line;
  }
  return "";
}

}  // namespace

LabelCommand::LabelCommand(const std::string& command_line) : command_line_(command_line), words_(split_words(command_line)) {
  if (words_.empty()) throw Error("--label-cmd is empty", ErrorCode::Invalid);
  const bool has_placeholder =
      std::any_of(words_.begin(), words_.end(), [](const std::string& word) { return word.find("{}") != std::string::npos; });
  if (!has_placeholder) {
    throw Error("--label-cmd '" + escape_control(command_line) + "' has no {} where the label's path goes", ErrorCode::Invalid);
  }
}

std::vector<std::string> LabelCommand::arguments_for(const std::string& label_path) const {
  std::vector<std::string> arguments;
  for (const std::string& word : words_) arguments.push_back(replace_all(word, "{}", label_path));
  return arguments;
}

std::string LabelCommand::run(const std::string& label_path, std::chrono::milliseconds timeout) const {
  const std::string what = "label command '" + command_line_ + "' for " + label_path;
  Finished finished;
  try {
    finished = run_with_timeout(arguments_for(label_path), timeout);
  } catch (const Error& error) {
    return escape_control(what + ": " + error.what());
  }
  if (finished.status == 0 && !finished.timed_out) return "";
  std::string warning = what;
  if (finished.timed_out) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g", static_cast<double>(timeout.count()) / 1000);
    warning += ": killed after " + std::string(seconds) + " s (timeout)";
  }
  else if (finished.status > 128) warning += ": killed by signal " + std::to_string(finished.status - 128);
  else if (finished.status == 127 && finished.output.empty()) warning += ": cannot run it (exit status 127)";
  else warning += ": exit status " + std::to_string(finished.status);
  const std::string line = first_line(finished.output);
  if (!line.empty()) warning += ": " + line;
  return escape_control(warning);
}

}  // namespace imprint
