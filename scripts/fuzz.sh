#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS]: builds every libFuzzer target (clang, ASan+UBSan, in the sanitizer tree of
# scripts/sanitized-tree.sh) and runs each for SECONDS (default 60), as many at once as there are
# cores, after replaying fuzz/regressions/. Exit 1 on any finding. fuzz/run takes more options.
set -euo pipefail
cd "$(dirname "$0")/.."
exec fuzz/run -t "${1:-60}"
