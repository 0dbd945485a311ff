#!/usr/bin/env bash
# scripts/sanitize.sh [--unit | --tsan] [CTEST ARGS...]: builds imprint and its tests with AddressSanitizer +
# UndefinedBehaviorSanitizer (clang, scripts/sanitized-tree.sh, in ${IMPRINT_SANITIZE_BUILD_DIR:-build-sanitize})
# and runs the test suite under them; extra arguments go to ctest (e.g. -R '^Profile').
# --unit: only the module tests (ctest label "unit"), without those that start a libguestfs appliance,
# whose time goes to the emulated guest, not to imprint's code; this is what CI runs (scripts/test.sh).
# --tsan: instead, the batch tests (tests/batch_*_test.cpp, ctest label unit-batch: the worker pool
# and whole batches on several threads) built with ThreadSanitizer (clang, -DIMPRINT_TSAN=ON) in
# ${IMPRINT_TSAN_BUILD_DIR:-build-tsan}, and run under it. With IMPRINT_FIXTURES set, the fixtures
# there are used instead of building them again in that tree (CI passes its main tree's).
# A sanitizer report fails the run even where the test expected imprint to fail: every report is
# also written to BUILD/sanitizer-logs/, and any file there fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

# Prints each report in the log directory $1 and fails when there is one.
check_logs() {
  if compgen -G "$1/*" >/dev/null; then
    for report in "$1"/*; do
      echo "==== $report" >&2
      head -n 60 "$report" >&2
    done
    echo "sanitize: sanitizer reports above (all in $1)" >&2
    return 1
  fi
}

if [ "${1:-}" = "--tsan" ]; then
  shift
  command -v clang++ >/dev/null || { echo "sanitize: clang++ is missing (scripts/setup.sh installs clang and libclang-rt-14-dev)" >&2; exit 2; }
  build=${IMPRINT_TSAN_BUILD_DIR:-build-tsan}
  cmake -S . -B "$build" -DIMPRINT_TSAN=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  targets=()
  for source in tests/batch_*_test.cpp; do targets+=(--target "$(basename "$source" .cpp)"); done
  cmake --build "$build" -j "$(nproc)" "${targets[@]}"
  build=$(cd "$build" && pwd)
  logs=$build/sanitizer-logs
  rm -rf "$logs"
  mkdir -p "$logs"
  fixtures=()
  if [ -n "${IMPRINT_FIXTURES:-}" ]; then
    export IMPRINT_FIXTURES
    fixtures=(-FS images)  # do not run build_fixtures: the tests read IMPRINT_FIXTURES
  fi
  export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:log_path=$logs/tsan:log_exe_name=1"
  status=0
  (cd "$build" && ctest --output-on-failure -j "$(nproc)" --timeout 900 -L unit-batch "${fixtures[@]}" "$@") || status=$?
  check_logs "$logs" || status=1
  [ "$status" -eq 0 ] && echo "sanitize: every batch test passed under ThreadSanitizer"
  exit "$status"
fi
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
check_logs "$logs" || status=1
[ "$status" -eq 0 ] && echo "sanitize: every test passed under ASan+UBSan (leak checks: $([ $leaks = 1 ] && echo on || echo off))"
exit "$status"
