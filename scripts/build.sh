#!/usr/bin/env bash
# Installs what is missing (scripts/install-deps.sh), then configures and builds dbstep in
# build/ (or $DBSTEP_BUILD_DIR). Extra arguments go to `cmake --build` (e.g. --target dbstep).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DBSTEP_BUILD_DIR:-$root/build}

"$root/scripts/install-deps.sh"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j"$(nproc)" "$@"
