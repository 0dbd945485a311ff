// open_ledger (which backend a location names), and what the CLI and the station show of a ledger.
#include <sys/stat.h>

#include <filesystem>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/core/overwrite.hpp"
#include "sql.hpp"

namespace imprint {

std::string to_string(PoolState state) {
  switch (state) {
    case PoolState::Free: return "free";
    case PoolState::Allocated: return "allocated";
    case PoolState::Flashed: return "flashed";
    case PoolState::Failed: return "failed";
    case PoolState::Quarantined: return "quarantined";
  }
  return "unknown";
}

namespace {

bool is_postgres_url(const std::string& location) {
  return location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0;
}

}  // namespace

std::unique_ptr<Ledger> open_ledger(const std::string& location, bool init) {
  if (location.empty()) throw Error("the ledger location is empty", ErrorCode::Invalid);
  auto session = is_postgres_url(location) ? detail::open_postgres(location, init) : detail::open_sqlite(location, init);
  return detail::make_sql_ledger(std::move(session), init);
}

std::string redact_location(const std::string& location) {
  if (!is_postgres_url(location)) return location;
  std::string text = location;
  // postgresql://user:PASSWORD@host: the userinfo ends at the last '@' before the path.
  const std::size_t start = text.find("://") + 3;
  const std::size_t path = text.find_first_of("/?#", start);
  const std::size_t at = text.rfind('@', path == std::string::npos ? std::string::npos : path);
  if (at != std::string::npos && at >= start) {
    const std::size_t colon = text.find(':', start);
    if (colon != std::string::npos && colon < at) text.replace(colon + 1, at - colon - 1, "***");
  }
  // ...?password=PASSWORD&...
  for (std::size_t key = text.find("password="); key != std::string::npos; key = text.find("password=", key + 1)) {
    if (key > 0 && text[key - 1] != '?' && text[key - 1] != '&') continue;
    const std::size_t value = key + 9, end = text.find('&', value);
    text.replace(value, (end == std::string::npos ? text.size() : end) - value, "***");
  }
  return text;
}

nlohmann::ordered_json entry_json(const PoolEntry& entry) {
  nlohmann::ordered_json json{{"device_id", entry.device_id}, {"position", entry.position}, {"state", to_string(entry.state)}};
  if (!entry.station.empty()) json["station"] = entry.station;
  if (!entry.slot.empty()) json["slot"] = entry.slot;
  if (entry.card) {
    json["card"] = {{"cid", entry.card->cid}, {"serial", entry.card->serial}, {"path", entry.card->path},
                    {"devnode", entry.card->devnode}, {"size", entry.card->size}};
  }
  if (!entry.reason.empty()) json["reason"] = entry.reason;
  json["updated_at"] = entry.updated_at;
  return json;
}

std::size_t export_flashed(Ledger& ledger, const std::string& directory, bool force) {
  // Every file first (path -> text), so that a refusal (an existing file, a bad id) writes none.
  std::vector<ManifestRecord> records;
  std::vector<std::pair<std::string, std::string>> files;
  for (const PoolEntry& entry : ledger.entries()) {
    if (entry.state != PoolState::Flashed || !entry.record) continue;
    records.push_back(*entry.record);
    const ManifestRecord& credentials = entry.record->contains("credentials") ? (*entry.record)["credentials"] : ManifestRecord();
    if (!credentials.is_object()) continue;
    // Device ids are file names already (batch names its outputs after them); a '/' would escape.
    if (entry.device_id.find('/') != std::string::npos || entry.device_id == "." || entry.device_id == "..") {
      throw Error("ledger " + ledger.location() + ": device id '" + entry.device_id + "' cannot name a file", ErrorCode::Invalid);
    }
    const std::string base = directory + "/" + entry.device_id;
    for (const auto& [key, suffix] : {std::pair{"preauth", ".preauth.json"}, std::pair{"enrollment", ".enrollment.json"}}) {
      if (credentials.contains(key) && !credentials[key].is_null()) {
        files.emplace_back(base + suffix, credentials[key].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
      }
    }
  }
  const std::string manifest = directory + "/manifest.jsonl";
  refuse_existing_output(manifest, force);
  refuse_existing_output(csv_view_path(manifest), force);
  for (const auto& [path, text] : files) refuse_existing_output(path, force);
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error || !std::filesystem::is_directory(directory)) {
    throw Error(directory + ": cannot make it a directory" + (error ? ": " + error.message() : ""), ErrorCode::Invalid);
  }
  for (const auto& [path, text] : files) write_file_atomically(path, text, 0644);
  write_manifest(manifest, records);
  return records.size();
}

}  // namespace imprint
