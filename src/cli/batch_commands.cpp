// batch, manifest merge, flash: registered here (the batch module does the work).
#include <cstdint>
#include <memory>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "imprint/batch/batch.hpp"
#include "imprint/image/golden_cache.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/core/progress.hpp"
#include "imprint/core/error.hpp"
#include "imprint/batch/flash.hpp"
#include "imprint/batch/manifest.hpp"

namespace imprint::cli {

namespace {

// flash's progress on a terminal: one line for writing, then one for the read-back, each with
// bytes, MiB/s and ETA (core's ProgressLine; nothing while stamping, which shows its own copy).
class FlashLine {
 public:
  explicit FlashLine(const std::string& target) : line_("writing", "wrote", target) {}
  void update(FlashPhase phase, std::uint64_t done, std::uint64_t total) {
    if (phase == FlashPhase::Stamping) return;
    if (phase != phase_) {
      if (phase_ != FlashPhase::Stamping) line_.finish(done_);
      if (phase == FlashPhase::Writing) line_.restart("writing", "wrote", total);
      else line_.restart("reading back", "read back", total);  // "verified" only once compared: the result line says it
      phase_ = phase;
    }
    done_ = done;
    line_.update(done);
  }
  void finish() {
    if (phase_ != FlashPhase::Stamping) line_.finish(done_);
  }

 private:
  ProgressLine line_;
  FlashPhase phase_ = FlashPhase::Stamping;
  std::uint64_t done_ = 0;
};

// batch --dry-run: what would be written, then the bad rows (every one, as errors) and a verdict.
void dry_run_report(const BatchRequest& request, const BatchResult& result, bool json) {
  if (json) {
    nlohmann::ordered_json out{{"would_write", result.would_write}, {"bad_rows", nlohmann::ordered_json::array()}};
    for (const BadRow& row : result.bad_rows) out["bad_rows"].push_back({{"line", row.line}, {"device_id", row.device_id}, {"error", row.reason}});
    write_stdout(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  } else {
    for (const std::string& path : result.would_write) write_stdout("would write " + path + "\n");
  }
  for (const auto& warning : result.warnings) warn(warning);
  if (result.bad_rows.empty()) return;
  const std::vector<std::string> messages = bad_row_messages(result.bad_rows, request.devices_csv);
  for (const std::string& message : messages) print_error(message);
  throw Error("dry run: " + std::to_string(result.bad_rows.size()) + " bad row(s) of " + request.devices_csv, ErrorCode::Invalid);
}

// After a re-run: which devices were stamped again although the manifest had them, and why.
void print_restamped(const BatchResult& result) {
  for (const DeviceOutcome& outcome : result.outcomes) {
    if (outcome.status == DeviceStatus::Stamped && !outcome.redo_reason.empty()) {
      write_result(escape_control("restamped " + outcome.device_id + ": " + outcome.redo_reason));
    }
  }
}

void add_batch(CLI::App& app) {
  auto* command = app.add_subcommand("batch", "Stamp one image per row of a device CSV");
  struct Options : CommandOptions {
    BatchRequest request;
    std::string shard = "1/1", compress = "none";
    bool no_cache = false;
  };
  auto o = std::make_shared<Options>();
  command->add_option("-p,--profile", o->request.profile_path, "Profile (YAML)")->required();
  command->add_option("-i,--input", o->request.golden_path, "Golden image (raw or compressed; never modified)")->required();
  command->add_option("--devices", o->request.devices_csv, "CSV with a header row: device_id, then template variables")->required();
  command->add_option("-O,--output-dir", o->request.output_directory, "Output directory")->required();
  command->add_option("-j,--jobs", o->request.jobs, "Devices in parallel")->default_str("number of cores");
  command->add_option("--shard", o->shard, "K/N: stamp rows whose index (0-based, in CSV order) modulo N is K-1");
  command->add_option("--manifest", o->request.manifest_path, "Manifest (JSON Lines; default OUTDIR/manifest.jsonl; CSV view beside it)");
  command->add_option("--compress", o->compress, "none | gz | xz | zst");
  command->add_flag("--bmap", o->request.bmap, "Write a bmaptool .bmap next to each image");
  command->add_option("--name", o->request.name_template, "Output name template (default {{device_id}}.img)");
  command->add_flag("--keep-going", o->request.keep_going, "Stamp the good rows even when some rows are bad");
  command->add_flag("--force", o->request.force, "Replace files at output names that the manifest does not list as the device's");
  command->add_flag("--dry-run", o->request.dry_run, "Prepare and check every row against the image; write nothing, list what would be written");
  command->add_flag("--no-cache", o->no_cache,
                    "Neither read nor keep the golden's sha256 and compressed frames in $XDG_CACHE_HOME/imprint (default ~/.cache/imprint)");
  o->add_to(command, "One JSON line per device on stdout");
  command->callback([o] {
    BatchRequest& request = o->request;
    const bool json = o->json;
    request.backend = o->backend.get();
    request.shard = option_value([&] { return parse_shard(o->shard); });
    request.compression = option_value([&] { return parse_compression(o->compress); });
    request.overrides = o->variables.collect(request.profile_path);
    request.strict_variables = o->variables.strict;
    if (!o->no_cache) request.cache_directory = default_cache_directory();
    if (request.dry_run) return dry_run_report(request, run_batch(request), json);
    ProgressLine progress("stamping", "stamped", request.devices_csv, ProgressUnit::Items);
    progress.set_item_name("devices");
    const BatchResult result = run_batch(request, [&](const DeviceOutcome& outcome, std::size_t done, std::size_t total) {
      if (done == 1) progress.set_total(total);
      if (json) {
        nlohmann::ordered_json line{{"device_id", outcome.device_id}, {"status", to_string(outcome.status)}};
        if (!outcome.redo_reason.empty()) line["restamped_because"] = outcome.redo_reason;
        if (outcome.status == DeviceStatus::Failed) line["error"] = outcome.message;
        else line["record"] = outcome.record;
        write_stdout(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
      }
      if (outcome.status == DeviceStatus::Failed) {
        progress.clear();  // the warning starts on a clean line; the next update redraws
        warn(outcome.message);
      }
      if (done == total) progress.finish(done);
      else progress.update(done);
    });
    for (const auto& warning : result.warnings) warn(warning);
    // Bad rows that stop the batch are its error (the last one carries the verdict); with
    // --keep-going they are warnings. Rows failing alike share one line.
    std::vector<std::string> bad_rows = bad_row_messages(result.bad_rows, request.devices_csv);
    const bool stopped = !result.bad_rows.empty() && result.aborted && result.outcomes.empty();
    if (stopped) {
      const std::string verdict =
          "; nothing written (" + std::to_string(result.bad_rows.size()) + " bad row(s); --keep-going stamps the good rows)";
      for (std::size_t i = 0; i + 1 < bad_rows.size(); ++i) print_error(bad_rows[i]);
      throw Error(bad_rows.back() + verdict, ErrorCode::Invalid);
    }
    for (const std::string& message : bad_rows) warn(message);
    for (const std::string& path : result.removed) warn("removed " + path + ": its device was re-stamped under another name");
    const std::string summary = std::to_string(result.count(DeviceStatus::Stamped)) + " stamped, " +
                                std::to_string(result.count(DeviceStatus::Skipped)) + " already done, " +
                                std::to_string(result.count(DeviceStatus::Failed)) + " failed, " +
                                std::to_string(result.bad_rows.size()) + " bad row(s) of " + request.devices_csv +
                                "; manifest " + result.manifest_path;
    if (!json) print_restamped(result);
    if (!result.ok()) throw Error("batch incomplete: " + summary);
    if (!json) write_result(summary);
  });
}

void add_manifest(CLI::App& app) {
  auto* command = app.add_subcommand("manifest", "Work with batch manifests");
  command->require_subcommand(1);
  auto* merge = command->add_subcommand("merge", "Join manifests (e.g. of the shards of a batch) into one");
  struct Options {
    std::vector<std::string> inputs;
    std::string output;
    bool force = false;
  };
  auto o = std::make_shared<Options>();
  merge->add_option("MANIFEST", o->inputs, "Manifests (JSON Lines)")->required();
  merge->add_option("-o,--output", o->output, "Merged manifest (its CSV view is written beside it)")->required();
  merge->add_flag("--force", o->force, "Replace an existing merged manifest");
  merge->callback([o] { merge_manifests(o->inputs, o->output, o->force); });
}

void add_flash(CLI::App& app) {
  auto* command = app.add_subcommand("flash", "Write an image (or a device stamped on the fly) to a card, then verify it");
  struct Options : CommandOptions {
    FlashRequest request;
  };
  auto o = std::make_shared<Options>();
  command->add_option("IMAGE", o->request.image_path, "An existing image (raw or compressed; IMAGE.bmap is used when present)");
  command->add_option("-p,--profile", o->request.profile_path, "Profile: stamp the device on the fly");
  command->add_option("-i,--input", o->request.golden_path, "Golden image (with -p)");
  command->add_option("--device", o->request.device_id, "Device id (with -p; else a label for the record)");
  command->add_option("--bmap", o->request.bmap_path, "bmap of IMAGE (default IMAGE.bmap when present)");
  command->add_option("--target", o->request.target, "Block device or regular file")->required();
  command->add_flag("--force", o->request.force, "Write a non-removable disk; overwrite an existing file");
  command->add_flag("--zero-unmapped", o->request.zero_unmapped, "Also zero the image's unmapped blocks on the target");
  command->add_option("--manifest", o->request.manifest_path, "Append the flash record to this manifest");
  o->add_to(command, "Machine-readable result");
  command->callback([o] {
    FlashRequest& request = o->request;
    const bool json = o->json;
    request.record_printed = json;
    request.backend = o->backend.get();
    if (request.profile_path.empty() == request.image_path.empty()) {
      usage_error("flash takes either IMAGE or -p PROFILE -i GOLDEN --device ID");
    }
    if (!request.profile_path.empty() && request.golden_path.empty()) usage_error("flash -p needs -i GOLDEN");
    request.overrides = o->variables.collect(request.profile_path);
    FlashLine line(request.target);
    request.progress = [&](FlashPhase phase, std::uint64_t done, std::uint64_t total) { line.update(phase, done, total); };
    const FlashResult result = flash(request);
    line.finish();
    for (const auto& warning : result.warnings) warn(warning);
    if (json) {
      write_stdout(result.record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    } else {
      write_result(result.device_id + ": " + result.target + ": " + std::to_string(result.mapped_bytes) + " bytes in " +
                   std::to_string(result.ranges) + " range(s) (" + std::to_string(result.zero_bytes) + " of them zeros), " +
                   (result.verified ? "verified" : "VERIFY FAILED"));
    }
    if (!result.verified) {
      throw Error(result.target + ": read-back verify failed for " + result.device_id + ": " + result.failure, ErrorCode::CheckFailed);
    }
  });
}

}  // namespace

void add_batch_commands(CLI::App& app) {
  add_batch(app);
  add_manifest(app);
  add_flash(app);
}

}  // namespace imprint::cli
