#!/usr/bin/env bash
# Builds dbstep's libFuzzer targets (tests/fuzz: clang-14, ASan + UBSan, in build-fuzz/ or
# $DBSTEP_FUZZ_BUILD_DIR) and runs each for SECONDS (default 60), one after the other, each on a
# temporary copy of its seed corpus tests/fuzz/corpus/<target>/ (the committed corpus never
# grows). Prints per target the runs reached (libFuzzer's "#N DONE" line). Fails if any target
# finds a crash, a sanitizer report or a broken oracle; the input that did it is kept in
# build-fuzz/crashes/ (add it to the seed corpus once fixed, as a regression input).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DBSTEP_FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${1:-60}
[ $# -gt 0 ] && shift
case "$seconds" in '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;; esac

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$root"/tests/fuzz/fuzz_*.cpp; do
    targets+=("$(basename "$f" .cpp)")
  done
fi

"$root/scripts/install-deps.sh"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++-14 -DDBSTEP_FUZZ=ON -DDBSTEP_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

work=$(mktemp -d "${TMPDIR:-/tmp}/dbstep-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/crashes"
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  if [ -d "$root/tests/fuzz/corpus/$t" ]; then cp -R "$root/tests/fuzz/corpus/$t/." "$work/$t/"; fi
  dict=()
  [ -f "$root/tests/fuzz/$t.dict" ] && dict=(-dict="$root/tests/fuzz/$t.dict")
  log="$work/$t.log"
  if "$build/tests/fuzz/$t" "$work/$t" "${dict[@]}" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" >"$log" 2>&1
  then
    done_line=$(grep -a 'DONE' "$log" | tail -n 1 | tr -s ' \t' ' ')
    echo "$t: ${done_line:-no DONE line} (${seconds}s)"
  else
    tail -n 60 "$log" >&2
    echo "$t: FAILED; the input is in $build/crashes/" >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzers that failed: ${failed[*]}" >&2
  exit 1
fi
