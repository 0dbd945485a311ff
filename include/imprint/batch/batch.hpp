// Batches: one image per row of a device CSV, from one golden image and one profile.
//
// 1. Every row of the CSV is prepared (prepare_device: variables, credentials, the profile's
//    checks) and checked against the golden image (check_plan_against_image) before any image is
//    written. Bad rows are reported with their CSV line; by default they stop the batch with
//    nothing written, with keep_going the good rows are stamped and the bad ones listed.
// 2. The golden image is decompressed or copied once into an unnamed temp file in the output
//    directory (the "shared base"); the plan operations that are identical for every good row of
//    the CSV (all rows, not only this shard's, so that every shard builds the same base) are applied
//    to it once.
// 3. Each device of this shard copies the base (reflink or sparse copy) into an unnamed pending
//    file, applies only its own operations, is verified against its plan, and is committed under
//    its final name (rename), then its manifest record is appended. Devices run on `jobs` threads.
// 4. A re-run skips devices whose output and manifest record exist, whose output sha256 matches
//    the record and whose image verifies against the plan; everything else is redone. A file at an
//    output's name that the manifest does not list as that device's is refused without force (one
//    overwrite rule for every command); one it lists is the re-run's to replace. When a device is
//    re-stamped under another name (another --compress or --name), its previous output and bmap
//    are removed once the new record is written: the manifest lists only the new ones.
// Relative paths in CSV cells ({{key_file}} as a profile source or credential) resolve against the
// CSV's directory; --set values against the working directory; the profile's own paths against its
// directory.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "imprint/image/copy.hpp"
#include "imprint/image/image.hpp"
#include "imprint/batch/manifest.hpp"
#include "imprint/profile/template.hpp"

namespace imprint {

// --shard K/N: row i of the CSV (0-based, in file order, blank lines not counted) belongs to shard
// (i mod N) + 1. Deterministic for a given CSV; N shards together cover every row exactly once.
struct Shard {
  std::size_t index = 1;  // K, 1-based
  std::size_t count = 1;  // N
  bool contains(std::size_t row_index) const { return row_index % count == index - 1; }
};
Shard parse_shard(const std::string& text);  // "K/N" with 1 <= K <= N; Error(Invalid) otherwise

struct BatchRequest {
  std::string profile_path;
  std::string golden_path;
  std::string devices_csv;
  std::string output_directory;
  unsigned jobs = 0;                   // 0: the number of cores
  Shard shard;
  std::string manifest_path;           // empty: OUTDIR/manifest.jsonl (its CSV view: OUTDIR/manifest.csv)
  Compression compression = Compression::None;
  bool bmap = false;                   // OUTDIR/<name without .img>.bmap for each device
  std::string name_template = "{{device_id}}.img";  // + the compression suffix
  bool keep_going = false;
  bool force = false;                  // replace files at output names the manifest does not list
  bool dry_run = false;                // prepare and check every row; write nothing (not even OUTDIR)
  Variables overrides;                 // --set: below the CSV's columns, above the profile's defaults
  bool strict_variables = false;       // a CSV column the profile never uses: an error, not a warning
  Backend backend = Backend::Auto;     // which Filesystem implementation opens each partition
  // Where the golden's sha256 and compressed frames are kept between runs (GoldenCache); "": not
  // kept (the CLI passes default_cache_directory() unless --no-cache).
  std::string cache_directory;
};

struct BadRow {
  int line = 0;
  std::string device_id;
  std::string message;  // "devices.csv:7: device x: <why>"
  std::string reason;   // "<why>" alone
};

// The bad rows as messages, rows failing for the same reason in one message:
// "devices.csv:7: device x: <why>" for a reason of one row,
// "devices.csv: lines 2-5, 9 (5 devices): <why>" for a reason several rows share.
std::vector<std::string> bad_row_messages(const std::vector<BadRow>& rows, const std::string& devices_csv);

enum class DeviceStatus { Stamped, Skipped, Failed };
std::string to_string(DeviceStatus status);  // "stamped", "skipped", "failed"

struct DeviceOutcome {
  std::string device_id;
  DeviceStatus status = DeviceStatus::Failed;
  std::string message;            // why it failed
  std::string redo_reason;        // stamped again although the manifest recorded it: why ("the profile changed")
  std::vector<std::string> warnings;
  ManifestRecord record;          // stamped or skipped: the manifest record
};

struct BatchResult {
  std::vector<BadRow> bad_rows;
  std::vector<DeviceOutcome> outcomes;  // in CSV order, this shard's good rows that were attempted
  std::size_t total = 0;                // good rows in this shard
  bool aborted = false;                 // bad rows without keep_going, or a failure stopped the batch
  std::string manifest_path;
  std::vector<std::string> warnings;    // once per batch (e.g. the stale bootstrap Artifact)
  std::vector<std::string> would_write; // dry_run: each file this shard would write, in CSV order
  std::vector<std::string> removed;     // previous outputs of re-stamped devices, removed
  std::size_t count(DeviceStatus status) const;
  bool ok() const { return bad_rows.empty() && !aborted && count(DeviceStatus::Failed) == 0; }
};

// Called (from worker threads, serialized) after each device: the outcome and how many of the
// shard's devices are done.
using BatchObserver = std::function<void(const DeviceOutcome& outcome, std::size_t done, std::size_t total)>;

BatchResult run_batch(const BatchRequest& request, const BatchObserver& observer = {});

}  // namespace imprint
