#!/usr/bin/env bash
# Prints the module graph from CMakeLists.txt: each imprint_module line as "module -> the modules it
# links" (external libraries left out). README's layout section shows this output; every arrow
# points down: a module links only modules listed above it.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -E '^imprint_module\(' CMakeLists.txt | sed -E 's/^imprint_module\(([a-z_]+)(.*)\)$/\1 \2/' |
  while read -r module links; do
    deps=$(tr ' ' '\n' <<<"$links" | sed -n 's/^imprint_//p' | paste -sd' ' -)
    printf '%-12s -> %s\n' "$module" "${deps:-(libraries only)}"
  done
