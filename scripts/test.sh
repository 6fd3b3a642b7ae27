#!/usr/bin/env bash
# Installs what is missing, builds dbstep and its tests, starts a throwaway PostgreSQL 15
# cluster on a free loopback port and a PgBouncer in transaction pooling mode in front of it,
# runs every test through ctest against them, and stops both again (also on failure). Extra
# arguments go to ctest (e.g. -R sqlite).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DBSTEP_BUILD_DIR:-$root/build}

"$root/scripts/build.sh"

pgdir=$(mktemp -d "${TMPDIR:-/tmp}/dbstep-pg-XXXXXX")
cleanup() { "$root/scripts/pg-cluster.sh" stop "$pgdir" >/dev/null 2>&1 || rm -rf "$pgdir"; }
trap cleanup EXIT
# No PostgreSQL, no green run: the PostgreSQL tests fail rather than skip.
DBSTEP_TEST_POSTGRES_URL=$("$root/scripts/pg-cluster.sh" start "$pgdir")
export DBSTEP_TEST_POSTGRES_URL
echo "PostgreSQL test server: $DBSTEP_TEST_POSTGRES_URL"
# The same server behind PgBouncer (transaction pooling): tests/e2e/pgbouncer_test.cpp.
DBSTEP_TEST_PGBOUNCER_URL=$("$root/scripts/pg-cluster.sh" start-pgbouncer "$pgdir")
export DBSTEP_TEST_PGBOUNCER_URL
echo "PgBouncer (transaction pooling) in front of it: $DBSTEP_TEST_PGBOUNCER_URL"

cd "$build"
ctest --output-on-failure -j"$(nproc)" "$@"
