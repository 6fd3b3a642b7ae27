#!/usr/bin/env bash
# dbstep's benchmark, one command from a fresh clone (see bench/README.md):
#
#   bench/run.sh            the full run: N = 100, 1000, 10000 on SQLite and PostgreSQL, 5 rounds
#                           (3 for N = 10000), micro-benchmarks, embedding probe (~30-40 min)
#   bench/run.sh --tiny     CI's configuration: N = 10, one round, few runs (~1-2 min with builds)
#
# Options: --ns 100,1000   --rounds R   --rounds-large R   --uptodate-ns 1000   --uptodate-runs K
#          --status-ns 1000,10000 (Ns at which `dbstep status` is timed against its floor)
#          --backends sqlite[,postgres]   --no-micro   --no-embed   --out DIR
#          --big-file-mb 4,16 (sizes of the one-big-migration probe; empty skips it)
#
# Steps: bench/setup.sh (tools), scripts/build.sh into $DBSTEP_BENCH_BUILD_DIR (default
# build-bench/, so the shared build/ keeps its own options) with -DDBSTEP_BUILD_BENCH=ON, a
# throwaway PostgreSQL cluster from scripts/pg-cluster.sh (stopped on exit), then
# bench/harness.py, which prints the results table and writes it to OUT/results.md (default
# build-bench/bench-results/). Timing is never pass/fail: the exit code says only whether every
# tool ran and produced the expected schema.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DBSTEP_BENCH_BUILD_DIR:-$root/build-bench}
command_line="bench/run.sh${*:+ $*}"

tiny=0
micro=1
embed=1
harness_args=()
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tiny) tiny=1 ;;
    --no-micro) micro=0 ;;
    --no-embed) embed=0 ;;
    --out) out=$2; shift ;;
    --ns|--rounds|--rounds-large|--uptodate-ns|--status-ns|--uptodate-runs|--backends\
    |--micro-repetitions|--big-file-mb)
      harness_args+=("$1" "$2"); shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$tiny" -eq 1 ]; then
  harness_args=(--ns 10 --uptodate-ns 10 --status-ns 10 --rounds 1 --rounds-large 1 --uptodate-runs 3
                --micro-repetitions 1 --big-file-mb 1,2 "${harness_args[@]}")
fi
out=${out:-$build/bench-results}

"$root/bench/setup.sh" >&2

# The CLI through the project's own build script (which installs the project's dependencies),
# then the bench targets in the same build folder.
DBSTEP_BUILD_DIR=$build "$root/scripts/build.sh" --target dbstep >&2
targets=(dbstep)
if [ "$micro" -eq 1 ]; then
  cmake -DDBSTEP_BUILD_BENCH=ON "$build" >/dev/null
  targets+=(dbstep_bench_micro dbstep_bench_templates)
fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >&2

work=$(mktemp -d "${DBSTEP_BENCH_TMP:-/tmp}/dbstep-bench.XXXXXX")
fstype=$(stat -f -c %T "$work")
if [ "$fstype" = tmpfs ] || [ "$fstype" = ramfs ]; then
  # SQLite must write to a real disk, as an application's database does.
  rmdir "$work"
  work=$(mktemp -d "$build/dbstep-bench.XXXXXX")
  fstype=$(stat -f -c %T "$work")
  [ "$fstype" != tmpfs ] || { echo "bench/run.sh: no disk-backed folder for SQLite" >&2; exit 1; }
fi
pg_dir=""
cleanup() {
  if [ -n "$pg_dir" ] && [ -d "$pg_dir" ]; then
    "$root/scripts/pg-cluster.sh" stop "$pg_dir" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

pg_url=""
pg_skip=""
if [[ " ${harness_args[*]} " == *" --backends "* ]] && [[ " ${harness_args[*]} " != *postgres* ]]
then
  pg_skip="not requested (--backends)"
elif [ -x "$root/scripts/pg-cluster.sh" ]; then
  # Its own folder straight under /tmp: the server runs as another user, who cannot enter
  # mktemp's private $work.
  pg_dir=$(mktemp -d /tmp/dbstep-bench-pg.XXXXXX)
  if ! pg_url=$("$root/scripts/pg-cluster.sh" start "$pg_dir"); then
    pg_skip="scripts/pg-cluster.sh could not start a server"
    pg_url=""
  fi
else
  pg_skip="no scripts/pg-cluster.sh"
fi

py_args=(--dbstep "$build/cli/dbstep" --work "$work" --out "$out" --pg-url "$pg_url"
         --pg-skip-reason "$pg_skip" --command "$command_line"
         --revision "${DBSTEP_BENCH_REVISION:-$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)}")
if [ "$micro" -eq 1 ]; then
  py_args+=(--micro "$build/bench/dbstep_bench_micro")
fi
if [ "$embed" -eq 1 ]; then
  if [ "$tiny" -eq 1 ]; then
    python3 "$root/bench/gen_migrations.py" --n 10 --formats dbstep --out "$work/embed-src"
    py_args+=(--embed-folder "$work/embed-src/dbstep" --embed-files 20)
  else
    py_args+=(--embed-folder "$build/bench/generated/n5000/dbstep" --embed-files 10000)
  fi
fi
python3 "$root/bench/harness.py" "${py_args[@]}" "${harness_args[@]}"

# dbstep::testing: a fresh test database from a template vs. migrated from scratch, 50 migrations
# (bench/templates.cpp), on the same throwaway server; its table goes to OUT/templates.md.
if [ "$micro" -eq 1 ]; then
  "$build/bench/dbstep_bench_templates" --migrations "$build/bench/generated/n50/dbstep" \
    --runs "$([ "$tiny" -eq 1 ] && echo 5 || echo 50)" --folder "$work" \
    ${pg_url:+--pg-url "$pg_url"} | tee "$out/templates.md"
fi
