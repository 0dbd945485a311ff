// Manifest files: JSON Lines appended while a batch runs, compacted atomically at its end.
#include "imprint/batch/manifest.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/core/overwrite.hpp"

namespace imprint {

namespace {

std::string device_id_of(const ManifestRecord& record, const std::string& where) {
  if (!record.is_object() || !record.contains("device_id") || !record["device_id"].is_string()) {
    throw Error(where + ": a manifest record needs a string device_id", ErrorCode::Corrupt);
  }
  return record["device_id"].get<std::string>();
}

// RFC 4180 quoting: fields holding a comma, quote or line break are quoted, quotes doubled.
std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
  std::string quoted = "\"";
  for (char c : value) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string text_of(const ManifestRecord& record, const char* key) {
  if (!record.contains(key) || record[key].is_null()) return "";
  const auto& value = record[key];
  return value.is_string() ? value.get<std::string>() : value.dump();
}

}  // namespace

std::vector<ManifestRecord> read_manifest(const std::string& path, CutOff cut_off) {
  if (!std::filesystem::exists(path)) return {};
  const std::string text = read_host_file(path, kListInputLimit);
  std::vector<ManifestRecord> records;
  std::size_t start = 0;
  int line = 0;
  while (start < text.size()) {
    ++line;
    const std::size_t end = text.find('\n', start);
    const bool terminated = end != std::string::npos;
    const std::string content = text.substr(start, (terminated ? end : text.size()) - start);
    start = terminated ? end + 1 : text.size();
    if (content.find_first_not_of(" \t\r") == std::string::npos) continue;
    ManifestRecord record = ManifestRecord::parse(content, nullptr, false);
    if (record.is_discarded()) {
      if (!terminated && cut_off == CutOff::Drop) break;  // the last line of an interrupted append
      const std::string why = terminated ? "not a JSON object" : "the last record is cut off (an interrupted batch? run it again)";
      throw Error(path + ":" + std::to_string(line) + ": " + why, ErrorCode::Corrupt);
    }
    device_id_of(record, path + ":" + std::to_string(line));
    records.push_back(std::move(record));
  }
  return records;
}

void append_manifest_record(const std::string& path, const ManifestRecord& record) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!fd) throw_errno("cannot open the manifest " + path);
  // A previous crash may have left an unterminated last line: cut it off, so that the file stays
  // whole lines (read_manifest tolerates a partial line only at the very end).
  const std::string line = record.dump() + "\n";
  const off_t size = ::lseek(fd.get(), 0, SEEK_END);
  char last = '\n';
  if (size > 0 && ::pread(open_read(path).get(), &last, 1, size - 1) == 1 && last != '\n') {
    const std::string text = read_host_file(path, kListInputLimit);
    {
      const auto keep = text.rfind('\n');
      if (::ftruncate(fd.get(), keep == std::string::npos ? 0 : static_cast<off_t>(keep + 1)) != 0) {
        throw_errno("cannot repair the manifest " + path);
      }
    }
  }
  write_all(fd.get(), line, "the manifest " + path);
  if (::fsync(fd.get()) != 0) throw_errno("cannot write the manifest " + path);
}

std::vector<ManifestRecord> compact_records(const std::vector<ManifestRecord>& records) {
  std::map<std::string, ManifestRecord> by_id;
  for (const ManifestRecord& record : records) by_id[device_id_of(record, "manifest")] = record;
  std::vector<ManifestRecord> result;
  for (auto& [id, record] : by_id) result.push_back(std::move(record));
  return result;
}

std::string csv_view_path(const std::string& path) {
  return path.ends_with(".jsonl") ? path.substr(0, path.size() - 6) + ".csv" : path + ".csv";
}

std::string manifest_csv(const std::vector<ManifestRecord>& records) {
  static const char* const kColumns[] = {"device_id", "output", "output_sha256", "output_size", "image_sha256", "image_size",
                                         "bmap", "target", "verified", "profile_sha256", "golden_sha256",
                                         "sha1_thumbprint", "sha256_thumbprint", "preauth", "files", "imprint_version"};
  std::string csv;
  for (const char* column : kColumns) csv += std::string(csv.empty() ? "" : ",") + column;
  csv += "\n";
  for (const ManifestRecord& record : records) {
    std::vector<std::string> row;
    for (const char* column : kColumns) {
      std::string value;
      const std::string key = column;
      if (key == "sha1_thumbprint" || key == "sha256_thumbprint" || key == "preauth") {
        if (record.contains("credentials") && record["credentials"].is_object()) value = text_of(record["credentials"], column);
      } else if (key == "files") {
        // "target=sha256" pairs separated by spaces (targets hold no spaces in practice).
        if (record.contains("files")) {
          for (const auto& file : record["files"]) {
            value += (value.empty() ? "" : " ") + file.value("target", "") + "=" + file.value("sha256", "");
          }
        }
      } else {
        value = text_of(record, column);
      }
      row.push_back(csv_field(value));
    }
    for (std::size_t i = 0; i < row.size(); ++i) csv += (i ? "," : "") + row[i];
    csv += "\n";
  }
  return csv;
}

void write_manifest(const std::string& path, const std::vector<ManifestRecord>& records) {
  const std::vector<ManifestRecord> compacted = compact_records(records);
  std::string text;
  for (const ManifestRecord& record : compacted) text += record.dump() + "\n";
  write_file_atomically(path, text, 0644);
  write_file_atomically(csv_view_path(path), manifest_csv(compacted), 0644);
}

ManifestRecord without_timing(const ManifestRecord& record) {
  ManifestRecord copy = record;
  copy.erase("timing");
  return copy;
}

bool records_equal_ignoring_timing(const ManifestRecord& a, const ManifestRecord& b) {
  return without_timing(a) == without_timing(b);
}

namespace {

// A shard's paths are relative to its own directory; the merged manifest's, to the merged file's
// directory (shard-1/dev.img.zst for manifest merge shard-*/manifest.jsonl -o manifest.jsonl).
// Absolute paths stay as they are.
void rebase_paths(ManifestRecord& record, const std::string& input, const std::string& output) {
  const auto directory = [](const std::string& file) {
    return std::filesystem::absolute(file).lexically_normal().parent_path();
  };
  const std::filesystem::path from = directory(input), to = directory(output);
  for (const char* key : {"output", "bmap"}) {
    if (!record.contains(key) || !record[key].is_string()) continue;
    const std::filesystem::path path(record[key].get<std::string>());
    if (path.empty() || path.is_absolute()) continue;
    record[key] = (from / path).lexically_normal().lexically_relative(to).string();
  }
}

}  // namespace

void merge_manifests(const std::vector<std::string>& inputs, const std::string& output, bool force) {
  refuse_existing_output(output, force);
  refuse_existing_output(csv_view_path(output), force);
  std::map<std::string, std::pair<ManifestRecord, std::string>> by_id;  // record, file it came from
  for (const std::string& input : inputs) {
    if (!std::filesystem::exists(input)) throw Error("manifest " + input + " does not exist", ErrorCode::NotFound);
    for (ManifestRecord record : compact_records(read_manifest(input))) {
      rebase_paths(record, input, output);
      const std::string id = device_id_of(record, input);
      const auto found = by_id.find(id);
      if (found != by_id.end() && !records_equal_ignoring_timing(found->second.first, record)) {
        throw Error("device " + id + " has different records in " + found->second.second + " and " + input, ErrorCode::Invalid);
      }
      by_id[id] = {record, input};
    }
  }
  std::vector<ManifestRecord> records;
  for (auto& [id, entry] : by_id) records.push_back(std::move(entry.first));
  write_manifest(output, records);
}

}  // namespace imprint
