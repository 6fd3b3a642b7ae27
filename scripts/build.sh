#!/usr/bin/env bash
# Installs what is missing (scripts/install-deps.sh), then configures and builds dbstep in
# build/ (or $DBSTEP_BUILD_DIR). Extra arguments go to `cmake --build` (e.g. --target dbstep).
# $DBSTEP_CMAKE_ARGS holds extra configure arguments, split on spaces (scripts/test-sanitized.sh:
# "-DDBSTEP_SANITIZE=address,undefined"); when set, the build folder is configured again with them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DBSTEP_BUILD_DIR:-$root/build}

"$root/scripts/install-deps.sh"
read -r -a cmake_args <<<"${DBSTEP_CMAKE_ARGS:-}"
if [ ! -f "$build/CMakeCache.txt" ] || [ ${#cmake_args[@]} -gt 0 ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cmake_args[@]}" >/dev/null
fi
cmake --build "$build" -j"$(nproc)" "$@"
