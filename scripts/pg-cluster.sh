#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL 15 cluster for dbstep's tests.
#
#   scripts/pg-cluster.sh start DIR   creates a cluster in DIR, starts it on a free loopback port
#                                     and prints exactly one line on stdout: its URL, e.g.
#                                     postgres://postgres@127.0.0.1:54321/postgres?sslmode=disable
#   scripts/pg-cluster.sh start-pgbouncer DIR
#                                     starts PgBouncer (Debian's pgbouncer package) in front of
#                                     the cluster running in DIR, on another free loopback port, in
#                                     transaction pooling mode, and prints its URL the same way,
#                                     e.g. postgres://postgres@127.0.0.1:54322/postgres?sslmode=disable
#   scripts/pg-cluster.sh stop DIR    stops the PgBouncer started in DIR if any, then the cluster
#                                     whose data directory is DIR/data, and removes DIR
#
# The server listens on 127.0.0.1 only, with trust authentication for the superuser "postgres",
# and keeps its Unix socket in a directory of its own (DIR/sock, or a short temporary one when DIR
# is too long for a socket path). It is tuned for tests (fsync off): never keep data in it.
#
# PostgreSQL refuses to run as root. As root, the cluster runs as the user named by
# $DBSTEP_PG_USER, else the Debian "postgres" user when it exists, else a system user
# "dbstep-pg" created on first use. Everything else goes to stderr; any failure exits non-zero
# with a message there (and the server log when the server did not start).
#
# PgBouncer (in DIR/pgbouncer, run as the cluster's owner: it refuses root too) serves every
# database of the cluster ("*"), trusts the users its auth file lists (postgres), pools in
# transaction mode and hands out its server connections round robin rather than last used first,
# so that two transactions of one client land on different server sessions once the pool holds
# two: whatever leans on session state (a session advisory lock, a session SET, a named prepared
# statement) breaks in the tests every time, not by chance. admin_users = postgres opens its
# console (database "pgbouncer") to the tests.
set -euo pipefail

die() {
  echo "pg-cluster.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start DIR | start-pgbouncer DIR | stop DIR" >&2
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

start_pgbouncer() {
  local pgbouncer=${DBSTEP_PGBOUNCER:-/usr/sbin/pgbouncer}
  [ -x "$pgbouncer" ] ||
    die "PgBouncer not found at $pgbouncer (run scripts/install-deps.sh, or set DBSTEP_PGBOUNCER)"
  [ -d "$dir" ] || die "$dir does not exist: start the cluster first with: $0 start $dir"
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/port" ] && [ -e "$dir/data/postmaster.pid" ] ||
    die "no running cluster in $dir: start it first with: $0 start $dir"
  local pg_port bin bdir="$dir/pgbouncer"
  pg_port=$(cat "$dir/port")
  bin=$(find_bin)
  owner=$(stat -c %U "$dir/data")
  if [ -f "$bdir/pgbouncer.pid" ] && kill -0 "$(cat "$bdir/pgbouncer.pid")" 2>/dev/null; then
    die "PgBouncer already runs in $bdir; stop it first with: $0 stop $dir"
  fi
  rm -rf "$bdir"
  mkdir -p "$bdir"
  printf '"postgres" ""\n' >"$bdir/userlist.txt"
  if [ "$(id -u)" -eq 0 ]; then chown "$owner" "$bdir" "$bdir/userlist.txt"; fi

  local attempt port="" i
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    port_in_use "$port" && continue
    cat >"$bdir/pgbouncer.ini" <<EOF
; scripts/pg-cluster.sh: PgBouncer in front of a throwaway test cluster.
[databases]
* = host=127.0.0.1 port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $bdir/userlist.txt
admin_users = postgres
pool_mode = transaction
server_round_robin = 1
default_pool_size = 20
max_client_conn = 1000
log_connections = 0
log_disconnections = 0
logfile = $bdir/pgbouncer.log
pidfile = $bdir/pgbouncer.pid
EOF
    if [ "$(id -u)" -eq 0 ]; then chown "$owner" "$bdir/pgbouncer.ini"; fi
    rm -f "$bdir/pgbouncer.log"
    # -d: PgBouncer reads its configuration and binds its port, then goes to the background.
    if as_owner "$pgbouncer" -d -q "$bdir/pgbouncer.ini" >"$bdir/start.log" 2>&1; then
      for i in $(seq 1 100); do
        if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
          echo "$port" >"$bdir/port"
          echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
          return
        fi
        sleep 0.1
      done
    fi
    stop_pgbouncer
    # Another process may have taken the port between the check and the start: try another.
    if grep -qs "Address already in use" "$bdir/start.log" "$bdir/pgbouncer.log"; then
      continue
    fi
    cat "$bdir/start.log" >&2 2>/dev/null || true
    tail -n 30 "$bdir/pgbouncer.log" >&2 2>/dev/null || true
    die "PgBouncer did not start on 127.0.0.1:$port (log: $bdir/pgbouncer.log)"
  done
  die "found no free port for PgBouncer"
}

# Stops the PgBouncer whose pid file is in $dir/pgbouncer, if one runs there.
stop_pgbouncer() {
  local pidfile="$dir/pgbouncer/pgbouncer.pid" pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidfile"
}

stop() {
  [ -d "$dir" ] || die "$dir does not exist"
  dir=$(cd "$dir" && pwd)
  stop_pgbouncer
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
  start-pgbouncer) start_pgbouncer ;;
  stop) stop ;;
  *) usage ;;
esac
