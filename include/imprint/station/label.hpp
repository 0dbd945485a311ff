// station labels: one SVG label per flashed card (device id as text and as a QR code, a short
// certificate thumbprint, the date), and the operator's optional print command run per label.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace imprint {

struct LabelData {
  std::string device_id;
  std::string cert_thumbprint;  // the certificate's thumbprint in hex (any length; shown short); empty: none
  std::string date;             // as printed; empty: today (UTC, SOURCE_DATE_EPOCH when set), YYYY-MM-DD
};

// The label of a flashed card from its flash record (the manifest record: "device_id", and
// "credentials"."sha1_thumbprint", the thumbprint the Azure portal shows, when the profile has
// credentials); the date is today's.
LabelData label_for_record(const nlohmann::ordered_json& record);

// The label as an SVG document (text XML-escaped; the QR code encodes the device id's bytes).
std::string label_svg(const LabelData& label);

// Writes DIR/<device id>.svg atomically (complete or absent; DIR is created when missing) and returns
// its path. Error(Invalid) for a device id that cannot name a file.
std::string write_label_svg(const std::string& directory, const LabelData& label);

// --label-cmd: a command line split into words like a shell splits them (blanks; '...', "..." and
// backslash quoting), then run WITHOUT a shell: {} inside a word becomes the label's path, so a path
// never needs quoting and no shell ever parses it (no pipes, redirections or variables either; an
// operator who needs them writes `sh -c '... "$1"' sh {}`). Error(Invalid) naming the command for
// unbalanced quotes, an empty command, or no {}: check it when the station starts.
class LabelCommand {
 public:
  explicit LabelCommand(const std::string& command_line);

  // The argv for one label.
  std::vector<std::string> arguments_for(const std::string& label_path) const;

  // Runs it for one label (stdin /dev/null, stdout and stderr captured, its own process group, the
  // default signal mask and dispositions), killing it after `timeout`. Empty when it exited 0, else
  // one warning line (escaped) naming the command, its exit status or signal and its first output
  // line: a failed print is a warning, never a failed card.
  std::string run(const std::string& label_path, std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;

 private:
  std::string command_line_;
  std::vector<std::string> words_;
};

}  // namespace imprint
