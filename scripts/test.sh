#!/usr/bin/env bash
# Sets everything up, builds, and runs every test (fixtures are built by the first ctest test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${IMPRINT_BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" --timeout 900
