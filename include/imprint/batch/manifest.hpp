// The manifest: the record that ties an image (or a card) to a device. JSON Lines, one object per
// device, plus a CSV view of the same records.
//
// Writing: while a batch runs, each finished device is appended as one line (a single write() on an
// O_APPEND descriptor, then fsync), so a crash loses at most a partly written last line; reading
// tolerates exactly that (an unterminated, unparsable last line is ignored). When the batch ends the
// whole file is rewritten atomically (write_file_atomically), one record per device_id (the last
// one written wins), sorted by device_id, and the CSV view is written beside it.
//
// Batch records name their files ("output", "bmap") relative to the batch's output directory.
// "output_sha256" is the sha256 of the output file as written; "image_sha256" that of the image,
// the same for a raw output and null for a compressed one (it would take a hash of the whole image,
// more than a device's frames cost: a consumer checks output_sha256, and decompressing the output
// and `imprint verify` check the image); "image_size" is the image's size either way.
// Fields that change from run to run for the same inputs live under the key "timing" only, so two
// manifests compare equal with records_equal_ignoring_timing().
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace imprint {

using ManifestRecord = nlohmann::ordered_json;

// Every record of a manifest file, in file order; an empty list when the file does not exist.
// Error(Corrupt) "<file>:<line>: ..." for a bad line. A batch reading its own manifest passes
// CutOff::Drop: an unterminated, unparsable last line is an append a kill interrupted, and the
// batch redoes that device. Everything else (merge) gets CutOff::Refuse: such a line is an error.
enum class CutOff { Drop, Refuse };
std::vector<ManifestRecord> read_manifest(const std::string& path, CutOff cut_off = CutOff::Refuse);

// Appends one record as one line and fsyncs (the file is created 0644 when missing).
void append_manifest_record(const std::string& path, const ManifestRecord& record);

// One record per device_id (the last wins), sorted by device_id.
std::vector<ManifestRecord> compact_records(const std::vector<ManifestRecord>& records);

// Rewrites path atomically with compact_records(records), and its CSV view at csv_view_path(path).
void write_manifest(const std::string& path, const std::vector<ManifestRecord>& records);

// FILE.jsonl -> FILE.csv; any other name gets ".csv" appended.
std::string csv_view_path(const std::string& path);

// The CSV view: one row per record, a header row first.
std::string manifest_csv(const std::vector<ManifestRecord>& records);

// Joins manifests (e.g. of the shards of a batch) into output: compact, sorted, written as above.
// Relative "output" and "bmap" paths (relative to each input's directory, where batch writes its
// manifest by default) are rewritten relative to output's directory.
// Error(Invalid) naming both files when one device_id has different records (timing aside);
// Error(Exists) when output (or its CSV view) exists and force is false.
void merge_manifests(const std::vector<std::string>& inputs, const std::string& output, bool force = false);

// The record without its "timing" key.
ManifestRecord without_timing(const ManifestRecord& record);
bool records_equal_ignoring_timing(const ManifestRecord& a, const ManifestRecord& b);

}  // namespace imprint
