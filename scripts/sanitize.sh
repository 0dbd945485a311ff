#!/usr/bin/env bash
# scripts/sanitize.sh [CTEST ARGS...]: builds imprint and every test with AddressSanitizer +
# UndefinedBehaviorSanitizer (-DIMPRINT_SANITIZE=ON) in ${IMPRINT_ASAN_BUILD_DIR:-build-asan} and runs
# the whole test suite under them (ctest; extra arguments go to ctest, e.g. -R '^Profile').
# A sanitizer report fails the run even where the test expected imprint to fail: every report is
# also written to BUILD/sanitizer-logs/, and any file there fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${IMPRINT_ASAN_BUILD_DIR:-build-asan}
cmake -S . -B "$build" -DIMPRINT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)"
build=$(cd "$build" && pwd)
logs=$build/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"

# Leak checking needs ptrace-like access to the process (LeakSanitizer stops the threads); where the
# sandbox forbids it, LSan aborts with "LeakSanitizer has encountered a fatal error": say so and
# run without it rather than fail every test.
leaks=1
probe=$build/imprint
if ! ASAN_OPTIONS=detect_leaks=1 "$probe" --version >/dev/null 2>"$logs/.lsan-probe"; then
  if grep -q "LeakSanitizer has encountered a fatal error" "$logs/.lsan-probe"; then
    echo "sanitize: LeakSanitizer does not work here (no ptrace); running without leak checks" >&2
    leaks=0
  fi
fi
rm -f "$logs/.lsan-probe"
export ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=0:log_path=$logs/asan:log_exe_name=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan:log_exe_name=1"

status=0
(cd "$build" && ctest --output-on-failure -j "$(nproc)" --timeout 900 "$@") || status=$?
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
