#!/usr/bin/env bash
# scripts/sanitize.sh [--unit] [CTEST ARGS...]: builds imprint and its tests with AddressSanitizer +
# UndefinedBehaviorSanitizer (clang, scripts/sanitized-tree.sh, in ${IMPRINT_SANITIZE_BUILD_DIR:-build-sanitize})
# and runs the test suite under them; extra arguments go to ctest (e.g. -R '^Profile').
# --unit: only the module tests (ctest label "unit"), without those that start a libguestfs appliance,
# whose time goes to the emulated guest, not to imprint's code; this is what CI runs (scripts/test.sh).
# A sanitizer report fails the run even where the test expected imprint to fail: every report is
# also written to BUILD/sanitizer-logs/, and any file there fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${IMPRINT_SANITIZE_BUILD_DIR:-build-sanitize}
selection=()
targets=()
if [ "${1:-}" = "--unit" ]; then
  shift
  selection=(-L unit -LE guestfs)
  for source in tests/*_test.cpp; do
    name=$(basename "$source" .cpp)
    case "$name" in cli_* | guestfs_*) ;; *) targets+=("$name") ;; esac
  done
fi
IMPRINT_SANITIZE_BUILD_DIR=$build scripts/sanitized-tree.sh "${targets[@]}"
build=$(cd "$build" && pwd)
logs=$build/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"

# Leak checking needs ptrace-like access to the process (LeakSanitizer stops the threads); where the
# sandbox forbids it, LSan aborts with "LeakSanitizer has encountered a fatal error": say so and
# run without it rather than fail every test.
leaks=1
probe=$build/profile_load_test
if ! ASAN_OPTIONS=detect_leaks=1 "$probe" --gtest_list_tests >/dev/null 2>"$logs/.lsan-probe"; then
  if grep -q "LeakSanitizer has encountered a fatal error" "$logs/.lsan-probe"; then
    echo "sanitize: LeakSanitizer does not work here (no ptrace); running without leak checks" >&2
    leaks=0
  fi
fi
rm -f "$logs/.lsan-probe"
export ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=0:log_path=$logs/asan:log_exe_name=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan:log_exe_name=1"

status=0
(cd "$build" && ctest --output-on-failure -j "$(nproc)" --timeout 900 "${selection[@]}" "$@") || status=$?
if compgen -G "$logs/*" >/dev/null; then
  for report in "$logs"/*; do
    echo "==== $report" >&2
    head -n 60 "$report" >&2
  done
  echo "sanitize: sanitizer reports above (all in $logs)" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "sanitize: every test passed under ASan+UBSan (leak checks: $([ $leaks = 1 ] && echo on || echo off))"
exit "$status"
