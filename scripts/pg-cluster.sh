#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL 15 cluster for dbstep's tests.
#
#   scripts/pg-cluster.sh start DIR   creates a cluster in DIR, starts it on a free loopback port
#                                     and prints exactly one line on stdout: its URL, e.g.
#                                     postgres://postgres@127.0.0.1:54321/postgres?sslmode=disable
#   scripts/pg-cluster.sh stop DIR    stops the cluster whose data directory is DIR/data, and
#                                     removes DIR
#
# The server listens on 127.0.0.1 only, with trust authentication for the superuser "postgres",
# and keeps its Unix socket in a directory of its own (DIR/sock, or a short temporary one when DIR
# is too long for a socket path). It is tuned for tests (fsync off): never keep data in it.
#
# PostgreSQL refuses to run as root. As root, the cluster runs as the user named by
# $DBSTEP_PG_USER, else the Debian "postgres" user when it exists, else a system user
# "dbstep-pg" created on first use. Everything else goes to stderr; any failure exits non-zero
# with a message there (and the server log when the server did not start).
set -euo pipefail

die() {
  echo "pg-cluster.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start DIR | stop DIR" >&2
  exit 2
}

[ $# -eq 2 ] || usage
command=$1
dir=$2
[ -n "$dir" ] || usage

find_bin() {
  local candidates=("${DBSTEP_PG_BIN:-}" /usr/lib/postgresql/15/bin)
  local d
  for d in "${candidates[@]}"; do
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return
    fi
  done
  die "PostgreSQL 15 server binaries not found in /usr/lib/postgresql/15/bin (run scripts/install-deps.sh, or set DBSTEP_PG_BIN)"
}

# Runs a command as the cluster's owner (a no-op wrapper when we are not root).
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$owner" -- "$@"
  else
    "$@"
  fi
}

pick_owner() {
  if [ "$(id -u)" -ne 0 ]; then
    owner=$(id -un)
    return
  fi
  if [ -n "${DBSTEP_PG_USER:-}" ]; then
    owner=$DBSTEP_PG_USER
    getent passwd "$owner" >/dev/null || die "user $owner (DBSTEP_PG_USER) does not exist"
  elif getent passwd postgres >/dev/null; then
    owner=postgres
  else
    owner=dbstep-pg
    if ! getent passwd "$owner" >/dev/null; then
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
        "$owner" >&2 || die "cannot create system user $owner to run PostgreSQL (it refuses root)"
    fi
  fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local bin
  bin=$(find_bin)
  pick_owner

  if [ -e "$dir/data/PG_VERSION" ]; then
    die "$dir already holds a cluster; stop it first with: $0 stop $dir"
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local data="$dir/data" sock="$dir/sock" log="$dir/server.log"

  # A Unix socket path must fit in 107 bytes: "$sock/.s.PGSQL.NNNNN".
  if [ $(( ${#sock} + 17 )) -gt 100 ]; then
    sock=$(mktemp -d /tmp/dbstep-pg-sock.XXXXXX)
  else
    mkdir -p "$sock"
  fi
  echo "$sock" >"$dir/socket-dir"

  if [ "$(id -u)" -eq 0 ]; then
    chown "$owner" "$dir" "$sock"
    chmod 700 "$sock"
    as_owner test -x "$dir" ||
      die "user $owner cannot reach $dir (a parent directory is private); choose a DIR under /tmp"
  fi

  if ! as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C \
      --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    die "initdb failed in $data"
  fi

  cat >>"$data/postgresql.conf" <<EOF

# scripts/pg-cluster.sh: a throwaway cluster for tests.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
EOF

  local attempt port=""
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    port_in_use "$port" && continue
    if as_owner "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 -o "-p $port" start >/dev/null 2>&1
    then
      echo "$port" >"$dir/port"
      break
    fi
    # Another process may have taken the port between the check and the start: try another.
    if grep -q "could not bind\|Address already in use" "$log" 2>/dev/null; then
      port=""
      continue
    fi
    tail -n 30 "$log" >&2 2>/dev/null || true
    die "PostgreSQL did not start in $data (log: $log)"
  done
  [ -n "$port" ] && [ -e "$dir/port" ] || die "found no free port for PostgreSQL"

  # pg_ctl -w waits for the server; check that it accepts queries on TCP too.
  local i
  for i in $(seq 1 100); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
      echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
      return
    fi
    sleep 0.1
  done
  tail -n 30 "$log" >&2 2>/dev/null || true
  die "PostgreSQL started but does not answer on 127.0.0.1:$port"
}

stop() {
  [ -d "$dir" ] || die "$dir does not exist"
  dir=$(cd "$dir" && pwd)
  local data="$dir/data"
  if [ -e "$data/postmaster.pid" ]; then
    local bin
    bin=$(find_bin)
    owner=$(stat -c %U "$data")
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null ||
      die "could not stop the PostgreSQL cluster in $data"
  fi
  if [ -f "$dir/socket-dir" ]; then
    local sock
    sock=$(cat "$dir/socket-dir")
    case "$sock" in
      /tmp/dbstep-pg-sock.*) rm -rf "$sock" ;;
    esac
  fi
  rm -rf "$dir"
}

case "$command" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
