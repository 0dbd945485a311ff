#!/usr/bin/env bash
# scripts/sanitized-tree.sh [TARGET...]: configures and builds the clang tree in which every target has
# AddressSanitizer + UndefinedBehaviorSanitizer and coverage instrumentation, plus the libFuzzer
# targets (-DIMPRINT_FUZZ=ON), in ${IMPRINT_SANITIZE_BUILD_DIR:-build-sanitize}; builds the TARGETs
# (default: all). scripts/sanitize.sh and fuzz/run share this one tree, so CI compiles it once.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang++ >/dev/null || { echo "sanitized-tree: clang++ is missing (scripts/setup.sh installs clang and libclang-rt-14-dev)" >&2; exit 2; }
build=${IMPRINT_SANITIZE_BUILD_DIR:-build-sanitize}
generator=()  # Ninja for a new tree, as scripts/build.sh
if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S . -B "$build" "${generator[@]}" -DIMPRINT_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=()
for target in "$@"; do targets+=(--target "$target"); done
cmake --build "$build" -j "$(nproc)" "${targets[@]}"
