#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS]: builds every libFuzzer target (clang, ASan+UBSan, in build-fuzz/) and
# runs each for SECONDS (default 60) after replaying fuzz/regressions/. Exit 1 on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
exec fuzz/run -t "${1:-60}"
