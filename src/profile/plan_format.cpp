// Printing plans. File bytes are never printed (a key or PFX is a secret): only sizes, and digests
// of the files that are not secret (a digest of a 4-digit PIN gives the PIN back in a second).
#include "imprint/profile/plan.hpp"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>

#include "imprint/core/bytes.hpp"
#include "imprint/core/fileio.hpp"

namespace imprint {

namespace {

std::string target_text(const PathSpec& target) {
  return target.role.empty() ? target.path : target.role + ":" + target.path;
}

// The columns of one human line: kind, target, mode, owner, details.
std::array<std::string, 5> columns(const PlanOp& op) {
  switch (op.kind) {
    case OpKind::File:
      return {to_string(op.kind), target_text(op.target), format_mode(op.mode), op.owner,
              std::to_string(op.bytes.size()) + " bytes  " + (op.secret ? "secret" : "sha256=" + sha256_hex(op.bytes).substr(0, 12))};
    case OpKind::Directory:
      return {to_string(op.kind), target_text(op.target), format_mode(op.mode), op.owner, ""};
    case OpKind::Symlink:
      return {to_string(op.kind), target_text(op.target), "", op.owner, "-> " + op.bytes};
    case OpKind::Remove:
      return {to_string(op.kind), target_text(op.target), "", "", op.recursive ? "recursive" : ""};
  }
  return {};
}

}  // namespace

std::string to_string(OpKind kind) {
  switch (kind) {
    case OpKind::File: return "file";
    case OpKind::Directory: return "dir";
    case OpKind::Symlink: return "symlink";
    case OpKind::Remove: return "remove";
  }
  return "unknown";
}

std::string format_plan(const Plan& plan) {
  std::vector<std::array<std::string, 5>> rows;
  std::array<std::size_t, 5> widths{};
  for (const PlanOp& op : plan.ops) {
    rows.push_back(columns(op));
    for (std::size_t i = 0; i < widths.size(); ++i) widths[i] = std::max(widths[i], rows.back()[i].size());
  }
  std::string out = "plan for device " + plan.device_id + ": " + std::to_string(plan.ops.size()) + " operations\n";
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (widths[i] == 0) continue;  // a column no op uses
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += "  " + line + "\n";
  }
  return out;
}

std::string plan_to_json(const Plan& plan) {
  nlohmann::ordered_json ops = nlohmann::ordered_json::array();
  for (const PlanOp& op : plan.ops) {
    nlohmann::ordered_json entry;
    entry["kind"] = to_string(op.kind);
    entry["target"] = target_text(op.target);
    if (op.kind == OpKind::File || op.kind == OpKind::Directory) entry["mode"] = format_mode(op.mode);
    if (op.kind != OpKind::Remove) entry["owner"] = op.owner;
    if (op.kind == OpKind::File) {
      entry["size"] = op.bytes.size();
      if (op.secret) entry["secret"] = true;
      else entry["sha256"] = sha256_hex(op.bytes);
      if (!op.elf_arch.empty()) entry["expect_elf"] = op.elf_arch;
      if (!op.credential.empty()) entry["credential"] = op.credential;
      if (!op.reproducible) entry["reproducible"] = false;
    }
    if (op.kind == OpKind::Symlink) entry["link_target"] = op.bytes;
    if (op.kind == OpKind::Remove) entry["recursive"] = op.recursive;
    if (op.mtime) entry["mtime"] = *op.mtime;
    entry["origin"] = op.origin;
    ops.push_back(std::move(entry));
  }
  nlohmann::ordered_json root;
  root["device_id"] = plan.device_id;
  root["ops"] = std::move(ops);
  // Paths and link targets are bytes, not always UTF-8: print U+FFFD rather than throw json's type_error.
  return root.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace imprint
