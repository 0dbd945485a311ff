#!/usr/bin/env bash
# Sets everything up, builds, and runs every test: the whole suite (fixtures are built by the first
# ctest test), then the module tests again under AddressSanitizer + UndefinedBehaviorSanitizer, then
# each libFuzzer target for ${IMPRINT_FUZZ_SECONDS:-30} seconds, as many at once as there are cores (after
# replaying fuzz/regressions/; fuzz/run -t 600 for a longer session). The last two share one clang tree.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${IMPRINT_BUILD_DIR:-build}
bash scripts/setup.sh
bash scripts/build.sh
(cd "$build" && ctest --output-on-failure -j "$(nproc)" --timeout 900)
bash scripts/sanitize.sh --unit
IMPRINT_FIXTURES=${IMPRINT_FIXTURES:-$PWD/$build/fixtures} bash scripts/fuzz.sh "${IMPRINT_FUZZ_SECONDS:-30}"
