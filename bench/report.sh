#!/usr/bin/env bash
# report.sh RESULTS.tsv ENV_LINE... -- NOTE...: the Markdown table of a bench/run (on stdout).
# Per image size and tool: median wall time of the successful runs, the range, the ratio to the
# floor (cp --sparse=always + sync), how many times imprint stamp is faster, and the peak RSS (the
# largest of the runs; for a pipeline of processes the largest single process, as getrusage gives it).
# The same for the rows on XFS with reflink; the flash rows (MiB/s of mapped data, ratio to bmaptool
# copy); then the issues' targets, checked against these numbers, and the batch comparison.
# Environment (from bench/run): WORK_FS, FLASH_INFO, REFLINK_INFO (one line each, may be empty).
set -euo pipefail
raw=$1
shift
env_lines=() notes=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do env_lines+=("$1"); shift; done
[ $# -gt 0 ] && shift
for n in "$@"; do [ -n "$n" ] && notes+=("$n"); done

echo "# imprint benchmark results"
echo
echo "Written by \`bench/run\`; method in [bench/README.md](README.md). Every run is in \`results.tsv\`."
echo
for line in "${env_lines[@]}"; do echo "- $line"; done
echo

awk -F'\t' -v workfs="${WORK_FS:-?}" -v flashinfo="${FLASH_INFO:-}" -v reflinkinfo="${REFLINK_INFO:-}" '
function label(t) {
  if (t == "floor") return "cp --sparse=always + sync (the floor)"
  if (t == "imprint") return "**imprint stamp** (native ext4)"
  if (t == "imprint_guestfs") return "imprint stamp --backend guestfs"
  if (t == "mender_artifact") return "cp + mender-artifact install x4 + sync"
  if (t == "guestfish") return "cp + guestfish, 1 session (TCG) + sync"
  if (t == "batch_imprint") return "imprint batch, per device"
  if (t == "batch_floor") return "cp --sparse=always + sync, per device"
  if (t == "reflink:floor") return "cp --sparse=always + sync (the floor: a reflink clone here)"
  if (t == "reflink:imprint") return "**imprint stamp** (native backend; its copy is a FICLONE)"
  if (t == "reflink:mender_artifact") return "cp + mender-artifact install x4 + sync"
  if (t == "flash_imprint") return "**imprint flash IMAGE** (bmap, read-back verify)"
  if (t == "flash_bmaptool") return "bmaptool copy --bmap (sha256 while writing)"
  if (t == "flash_stamp") return "imprint flash -p ... (stamp on the fly, then flash, read-back verify)"
  if (t == "file") return "regular file"
  if (t == "loop") return "loop device"
  return t
}
function median(key,    n, i, j, tmp, a) {
  n = count[key]
  for (i = 1; i <= n; i++) a[i] = t[key, i]
  for (i = 2; i <= n; i++) { tmp = a[i]; for (j = i - 1; j >= 1 && a[j] > tmp; j--) a[j + 1] = a[j]; a[j + 1] = tmp }
  lo[key] = a[1]; hi[key] = a[n]
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
# Median of the time of A over the time of B, run by run (runs where both succeeded): a pair runs back to back, so
# the ratio holds when the disk speed drifts between runs; prange is the range of the pairs.
function pair_median(a, b,    n, r, i, j, tmp, x) {
  n = 0
  for (r = 1; r <= maxrun; r++) if (((a, r) in byrun) && ((b, r) in byrun) && byrun[b, r] > 0) x[++n] = byrun[a, r] / byrun[b, r]
  if (n == 0) return 0
  for (i = 2; i <= n; i++) { tmp = x[i]; for (j = i - 1; j >= 1 && x[j] > tmp; j--) x[j + 1] = x[j]; x[j + 1] = tmp }
  prange = sprintf("%.2f-%.2f over %d pairs", x[1], x[n], n)
  return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
}
function has(size, tool) { return count[size, tool] > 0 }
function mib(kib) { return kib == "-" || kib == "" ? "-" : sprintf("%.1f", kib / 1024) }
function verdict(ok) { return ok ? "**met**" : "**missed**" }
# One-device table for SIZE over the tools named PREFIX tool (PREFIX "": the plain ext4 rows).
function one_device(size, prefix,    floor, imp, k, key, parts, tool, ratio, faster) {
  print "| Tool | Runs | Median wall time (s) | Range (s) | x floor | imprint stamp is faster by | Peak RSS (MiB) |"
  print "|---|---:|---:|---:|---:|---:|---:|"
  floor = med[size, prefix "floor"]; imp = med[size, prefix "imprint"]
  for (k = 1; k <= nkeys; k++) {
    key = order[k]; split(key, parts, SUBSEP); tool = parts[2]
    if (parts[1] != size || tool ~ /^batch_/ || tool ~ /^flash_/) continue
    if (prefix == "" ? index(tool, ":") > 0 : substr(tool, 1, length(prefix)) != prefix) continue
    if (count[key] == 0) { printf "| %s | 0 | failed:%s | | | | |\n", label(tool), bad[key]; continue }
    ratio = floor > 0 ? sprintf("%.2f", med[key] / floor) : "-"
    faster = (imp > 0 && tool != prefix "imprint" && tool != prefix "floor") ? sprintf("%.1fx", med[key] / imp) : "-"
    printf "| %s | %d | %.3f | %.3f to %.3f | %s | %s | %s |\n", label(tool), count[key], med[key], lo[key], hi[key], ratio, faster, mib(rss[key])
    if (bad[key] != "") printf "|  (failed:%s) | | | | | | |\n", bad[key]
  }
  print ""
}
function mibs(key) { return mapped[key] / 1048576 / med[key] }
NR == 1 { next }
{
  key = $1 SUBSEP $2
  if (!(key in seen)) { seen[key] = 1; order[++nkeys] = key; if (!($1 in sizeseen)) { sizeseen[$1] = 1; sizes[++nsizes] = $1 } }
  if ($7 != "" && $7 != "-") mapped[key] = $7
  if ($6 != "ok") { bad[key] = bad[key] " run " $3 ": " $6; next }
  count[key]++; t[key, count[key]] = $4; byrun[key, $3] = $4; if ($3 + 0 > maxrun) maxrun = $3 + 0
  if ($5 != "-" && $5 + 0 > rss[key] + 0) rss[key] = $5
  if ($8 != "" && $8 + 0 > written[key] + 0) written[key] = $8
}
END {
  for (k = 1; k <= nkeys; k++) if (count[order[k]] > 0) med[order[k]] = median(order[k])
  for (s = 1; s <= nsizes; s++) if (has(sizes[s], "floor") || has(sizes[s], "imprint")) any_plain = 1
  if (any_plain || has(1, "reflink:imprint")) {
    print "## One device: the same four writes (key, PFX, identity script x2, DPS client x2)"
    print ""
  }
  for (s = 1; s <= nsizes; s++) {
    size = sizes[s]
    if (!has(size, "floor") && !has(size, "imprint")) continue
    printf "### %s GiB golden image (bench/work on %s)\n\n", size, workfs
    one_device(size, "")
  }
  if ((1 SUBSEP "reflink:floor") in seen || (1 SUBSEP "reflink:imprint") in seen) {
    print "### 1 GiB golden image on XFS with reflink"
    print ""
    if (reflinkinfo != "") { print reflinkinfo; print "" }
    one_device(1, "reflink:")
  }
  # Flash: per size, per target kind, throughput of the mapped data and the ratio to bmaptool copy.
  for (s = 1; s <= nsizes; s++) {
    size = sizes[s]; printed = 0
    for (k = 1; k <= nkeys; k++) {
      key = order[k]; split(key, parts, SUBSEP)
      if (parts[1] != size || parts[2] !~ /^flash_/) continue
      if (!printed) {
        printf "## Flash: writing the stamped image to a card (%s GiB image, %.1f MiB mapped)\n\n", size, mapped[key] / 1048576
        if (flashinfo != "") { print flashinfo; print "" }
        print "| Tool | Target | Runs | Median wall time (s) | Range (s) | Mapped data (MiB/s) | Throughput vs bmaptool copy | Peak RSS (MiB) |"
        print "|---|---|---:|---:|---:|---:|---:|---:|"
        printed = 1
      }
      split(parts[2], tk, ":")
      if (count[key] == 0) { printf "| %s | %s | 0 | failed:%s | | | | |\n", label(tk[1]), label(tk[2]), bad[key]; continue }
      bm = size SUBSEP "flash_bmaptool:" tk[2]
      vs = count[bm] > 0 ? sprintf("%.2fx", med[bm] / med[key]) : "-"
      printf "| %s | %s | %d | %.3f | %.3f to %.3f | %.0f | %s | %s |\n", label(tk[1]), label(tk[2]), count[key], med[key], lo[key], hi[key], mibs(key), vs, mib(rss[key])
      if (bad[key] != "") printf "|  (failed:%s) | | | | | | | |\n", bad[key]
    }
    if (printed) print ""
  }
  print "## Targets (issues 5 and 7)"
  print ""
  if (has(1, "imprint") && has(1, "floor")) {
    r = med[1, "imprint"] / med[1, "floor"]
    printf "- imprint stamp within 1.5x of the sparse-copy floor (1 GiB, %s): %.2fx, %s\n", workfs, r, verdict(r <= 1.5)
  } else printf "- imprint stamp within 1.5x of the floor (1 GiB, %s): not measured\n", workfs
  if (has(1, "imprint") && has(1, "mender_artifact")) {
    r = med[1, "mender_artifact"] / med[1, "imprint"]
    printf "- at least 100x faster than mender-artifact (1 GiB, %s, every copy copies the data): %.1fx, %s\n", workfs, r, verdict(r >= 100)
  } else printf "- at least 100x faster than mender-artifact (1 GiB, %s): not measured\n", workfs
  if (has(1, "reflink:imprint") && has(1, "reflink:mender_artifact")) {
    r = med[1, "reflink:mender_artifact"] / med[1, "reflink:imprint"]
    printf "- at least 100x faster than mender-artifact (1 GiB, XFS with reflink in a loop-mounted file on %s): %.1fx, %s\n", workfs, r, verdict(r >= 100)
  } else print "- at least 100x faster than mender-artifact (1 GiB, XFS with reflink): not measured"
  if (has(4, "imprint")) {
    m = rss[4, "imprint"] / 1024
    printf "- peak RSS of a stamp under 64 MiB (4 GiB): %.1f MiB, %s\n", m, verdict(m < 64)
  } else print "- peak RSS of a stamp under 64 MiB (4 GiB): not measured (no 4 GiB run)"
  for (s = 1; s <= nsizes; s++) if (has(sizes[s], "imprint")) line = line sprintf("%s%s GiB: %.1f MiB", line == "" ? "" : ", ", sizes[s], rss[sizes[s], "imprint"] / 1024)
  if (line != "") printf "- imprint stamp peak RSS by image size (flat means nothing image-sized is held in memory): %s\n", line
  fl = ""
  for (s = 1; s <= nsizes; s++) {
    for (kk = 1; kk <= 2; kk++) {
      kind = kk == 1 ? "file" : "loop"
      bm = sizes[s] SUBSEP "flash_bmaptool:" kind; im = sizes[s] SUBSEP "flash_imprint:" kind; st = sizes[s] SUBSEP "flash_stamp:" kind
      if (count[bm] == 0 || count[im] == 0) continue
      fl = fl sprintf("%s%s GiB to a %s: %.2fx (%.0f vs %.0f MiB/s)", fl == "" ? "" : "; ", sizes[s], label(kind), med[bm] / med[im], mibs(im), mibs(bm))
      if (count[st] > 0) fl = fl sprintf(", on the fly %.2fx", med[bm] / med[st])
    }
  }
  if (fl != "") printf "- imprint flash throughput vs `bmaptool copy` (issue 5 asks for the ratio, no threshold; above 1 means imprint is faster): %s\n", fl
  else print "- imprint flash throughput vs `bmaptool copy` (issue 5): not measured"
  print ""
  print "## Targets (issue 16: the golden read-only, each device an overlay)"
  print ""
  for (s = 1; s <= nsizes; s++) {
    if (!has(sizes[s], "imprint") || !has(sizes[s], "floor")) continue
    r = med[sizes[s], "imprint"] / med[sizes[s], "floor"]
    printf "- imprint stamp at most 1.1x `cp --sparse=always` + `sync` (%s GiB, %s): %.2fx, %s\n", sizes[s], workfs, r,
      sizes[s] >= 4 ? verdict(r <= 1.1) : "(the issue sets it on 4 GiB)"
  }
  if (has(1, "reflink:imprint")) printf "- imprint stamp on XFS with reflink at most 0.1 s (1 GiB): %.3f s, %s\n", med[1, "reflink:imprint"], verdict(med[1, "reflink:imprint"] <= 0.1)
  else print "- imprint stamp on XFS with reflink at most 0.1 s: not measured"
  for (s = 1; s <= nsizes; s++) {
    for (kk = 1; kk <= 2; kk++) {
      kind = kk == 1 ? "file" : "loop"
      im = sizes[s] SUBSEP "flash_imprint:" kind; st = sizes[s] SUBSEP "flash_stamp:" kind
      if (count[im] == 0 || count[st] == 0) continue
      r = pair_median(st, im)
      printf "- imprint flash -p at most 1.1x imprint flash of the stamped image (%s GiB, %s): %.2fx (median of the per-run ratios, %s; ratio of the medians %.2fx), %s", sizes[s], label(kind), r, prange, med[st] / med[im], verdict(r <= 1.1)
      if (kind == "file" && (st in written) && (im in written)) {
        extra = written[st] - written[im]
        printf "; written to storage by the process: %.1f MiB on the fly vs %.1f MiB from the stamped image (extra %.1f MiB: %s)", written[st] / 1048576, written[im] / 1048576, extra / 1048576, verdict(extra < 64 * 1048576)
      }
      printf "\n"
    }
  }
  line = ""; rss_ok = 1
  for (s = 1; s <= nsizes; s++) {
    st = sizes[s] SUBSEP "flash_stamp:file"
    if (has(sizes[s], "imprint")) { line = line sprintf("%s%s GiB stamp %.1f MiB", line == "" ? "" : ", ", sizes[s], rss[sizes[s], "imprint"] / 1024); rss_ok = rss_ok && rss[sizes[s], "imprint"] / 1024 <= 64 }
    if (count[st] > 0) { line = line sprintf("%s%s GiB flash -p %.1f MiB", line == "" ? "" : ", ", sizes[s], rss[st] / 1024); rss_ok = rss_ok && rss[st] / 1024 <= 64 }
  }
  if (line != "") printf "- peak RSS at most 64 MiB, overlay included: %s, %s\n", line, verdict(rss_ok)
  print ""
  if ((1 SUBSEP "batch_imprint") in seen) {
    print "## Batch (1 GiB golden image)"
    print ""
    print "| Tool | Time per device (s) | x floor | Peak RSS (MiB) |"
    print "|---|---:|---:|---:|"
    fl = med[1, "batch_floor"]
    for (k = 1; k <= nkeys; k++) {
      key = order[k]; split(key, parts, SUBSEP)
      if (parts[2] !~ /^batch_/) continue
      if (count[key] == 0) { printf "| %s | failed:%s | | |\n", label(parts[2]), bad[key]; continue }
      printf "| %s | %.3f | %s | %s |\n", label(parts[2]), med[key], (fl > 0 ? sprintf("%.2f", med[key] / fl) : "-"), mib(rss[key])
    }
    print ""
  }
}' "$raw"

if [ "${#notes[@]}" -gt 0 ]; then
  echo "## Not measured"
  echo
  for n in "${notes[@]}"; do echo "- $n"; done
  echo
fi
