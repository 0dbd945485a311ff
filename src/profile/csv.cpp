// A small RFC 4180 reader (no C++ CSV library is packaged in Debian): quoted fields, "" inside
// quotes, commas and newlines inside quotes, CRLF or LF records.
#include "imprint/profile/csv.hpp"

#include <map>
#include <string_view>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"

namespace imprint {

namespace {

struct Record {
  int line = 0;  // where the record starts
  std::vector<std::string> fields;
};

class CsvParser {
 public:
  CsvParser(std::string_view text, std::string name) : text_(text), name_(std::move(name)) {
    if (text_.starts_with("\xEF\xBB\xBF")) text_.remove_prefix(3);  // spreadsheet exports add a BOM
  }

  // The next record; false at the end of the file. Blank lines are skipped.
  bool next(Record& record) {
    while (position_ < text_.size() && at_line_end()) skip_line_end();
    if (position_ >= text_.size()) return false;
    record.line = line_;
    record.fields.clear();
    for (;;) {
      record.fields.push_back(field());
      if (position_ >= text_.size()) return true;
      if (text_[position_] == ',') {
        ++position_;
        continue;
      }
      skip_line_end();  // field() stops only at ',' or a line end
      return true;
    }
  }

  [[noreturn]] void fail(int line, const std::string& message) const {
    throw Error(name_ + ":" + std::to_string(line) + ": " + message, ErrorCode::Invalid);
  }

 private:
  std::string_view text_;
  std::string name_;
  std::size_t position_ = 0;
  int line_ = 1;

  bool at_line_end() const { return text_[position_] == '\n' || text_.substr(position_).starts_with("\r\n"); }
  void skip_line_end() {
    position_ += text_[position_] == '\r' ? 2 : 1;
    ++line_;
  }

  std::string field() {
    if (position_ < text_.size() && text_[position_] == '"') return quoted_field();
    std::string value;
    while (position_ < text_.size() && text_[position_] != ',' && !at_line_end()) {
      const char c = text_[position_];
      if (c == '"') fail(line_, "a quote inside an unquoted field (quote the whole field and double the quote: \"a\"\"b\")");
      if (c == '\r') fail(line_, "a carriage return that is not part of a CRLF line end");
      value.push_back(c);
      ++position_;
    }
    return value;
  }

  std::string quoted_field() {
    const int start = line_;
    ++position_;  // opening quote
    std::string value;
    for (;;) {
      if (position_ >= text_.size()) fail(start, "a quoted field is not closed");
      const char c = text_[position_++];
      if (c == '"') {
        if (position_ < text_.size() && text_[position_] == '"') {
          value.push_back('"');
          ++position_;
          continue;
        }
        break;
      }
      if (c == '\n') ++line_;
      value.push_back(c);
    }
    if (position_ < text_.size() && text_[position_] != ',' && !at_line_end()) {
      fail(line_, "text after the closing quote of a field");
    }
    return value;
  }
};

}  // namespace

std::vector<DeviceRow> read_devices_csv(const std::string& path) {
  const std::string text = read_host_file(path, kListInputLimit);
  CsvParser parser(text, path);
  Record header;
  if (!parser.next(header)) parser.fail(1, "empty file (a header row with a device_id column is required)");

  int id_column = -1;
  std::map<std::string, int> seen;
  for (std::size_t i = 0; i < header.fields.size(); ++i) {
    const std::string& name = header.fields[i];
    if (!seen.emplace(name, header.line).second) parser.fail(header.line, "header: column '" + name + "' appears twice");
    if (name == "device_id") {
      id_column = static_cast<int>(i);
    } else if (!is_variable_name(name)) {
      parser.fail(header.line, "header: column '" + name + "' is not a variable name (letters, digits, '_', not starting with a digit)");
    }
  }
  if (id_column < 0) parser.fail(header.line, "header: no device_id column");

  std::vector<DeviceRow> rows;
  std::map<std::string, int> id_lines;
  Record record;
  while (parser.next(record)) {
    if (record.fields.size() != header.fields.size()) {
      parser.fail(record.line, std::to_string(record.fields.size()) + " fields, but the header has " +
                                   std::to_string(header.fields.size()));
    }
    DeviceRow row;
    row.line = record.line;
    row.device_id = record.fields[static_cast<std::size_t>(id_column)];
    if (row.device_id.empty()) parser.fail(record.line, "missing device_id");
    if (const auto [found, added] = id_lines.emplace(row.device_id, record.line); !added) {
      parser.fail(record.line, "duplicate device_id '" + row.device_id + "' (first on line " + std::to_string(found->second) + ")");
    }
    for (std::size_t i = 0; i < header.fields.size(); ++i) {
      if (static_cast<int>(i) != id_column) row.columns[header.fields[i]] = std::move(record.fields[i]);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace imprint
