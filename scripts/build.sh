#!/usr/bin/env bash
# scripts/build.sh [CMAKE ARGS...]: configures and builds imprint and its tests into build/ (or
# $IMPRINT_BUILD_DIR). IMPRINT_TARGETS (space-separated) builds only those targets (scripts/demo.sh:
# just the executable). A new tree uses Ninja when it is installed (it keeps both cores busy across
# targets); ccache, when installed, is picked up by CMakeLists.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${IMPRINT_BUILD_DIR:-build}"
generator=()
if [ ! -f "$build_dir/CMakeCache.txt" ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
targets=()
for target in ${IMPRINT_TARGETS:-}; do targets+=(--target "$target"); done
cmake --build "$build_dir" -j "$(nproc)" "${targets[@]}"
