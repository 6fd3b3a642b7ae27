#!/usr/bin/env bash
# Installs what bench/run.sh measures with, idempotently (a second run installs nothing):
#   hyperfine, sql-migrate, sqlite3, GNU time (peak RSS), Google Benchmark (libbenchmark-dev) and the PostgreSQL 15
#   client from Debian's packages (apt-get, as root or through sudo);
#   dbmate from the npm registry's `dbmate` package into bench/.tools (never globally).
#
# The npm package's bin (`dbmate` -> dist/cli.js) is a Node.js launcher that starts the real Go
# binary from the platform package @dbmate/linux-x64; timing it would add Node's start-up to every
# dbmate run, so bench/.tools/bin/dbmate is a link to the Go binary itself.
# Prints nothing on success but one summary line; failures exit non-zero with a message.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools="$here/.tools"
dbmate_version=${DBSTEP_BENCH_DBMATE_VERSION:-2.36.0}

die() {
  echo "bench/setup.sh: $*" >&2
  exit 1
}

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "not root and no sudo: install $* yourself"
  sudo_cmd=(sudo)
fi

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v sql-migrate >/dev/null || need+=(sql-migrate)
command -v sqlite3 >/dev/null || need+=(sqlite3)
[ -x /usr/bin/time ] || need+=(time)
[ -x /usr/lib/postgresql/15/bin/psql ] || need+=(postgresql-client-15)
[ -f /usr/include/benchmark/benchmark.h ] || need+=(libbenchmark-dev)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench/setup.sh: installing ${need[*]} from Debian's packages" >&2
  "${sudo_cmd[@]}" apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >&2 ||
    die "apt-get install ${need[*]} failed"
fi

arch=$(uname -m)
case "$arch" in
  x86_64) npm_platform=linux-x64 ;;
  aarch64) npm_platform=linux-arm64 ;;
  *) die "no dbmate npm platform package known for $arch" ;;
esac
go_binary="$tools/node_modules/@dbmate/$npm_platform/bin/dbmate"
if [ ! -x "$go_binary" ] || ! "$go_binary" --version 2>/dev/null | grep -q " $dbmate_version\$"; then
  echo "bench/setup.sh: installing dbmate@$dbmate_version from the npm registry into $tools" >&2
  mkdir -p "$tools"
  # A package.json of our own keeps npm from walking up into the repository.
  [ -f "$tools/package.json" ] || echo '{"name":"dbstep-bench-tools","private":true}' \
    >"$tools/package.json"
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error \
    "dbmate@$dbmate_version" >&2 || die "npm install dbmate@$dbmate_version failed"
  [ -x "$go_binary" ] || die "dbmate's npm package did not bring $go_binary (optional dependency \
@dbmate/$npm_platform missing?)"
fi
mkdir -p "$tools/bin"
ln -sfn "$go_binary" "$tools/bin/dbmate"

echo "bench tools: $(hyperfine --version), sql-migrate (Debian $(dpkg-query -W -f='${Version}' \
sql-migrate)), $("$tools/bin/dbmate" --version), sqlite3 $(sqlite3 --version | cut -d' ' -f1), \
$(/usr/lib/postgresql/15/bin/psql --version)"
