#!/usr/bin/env bash
# The long crash test: the test suite's crash cases (tests/e2e/crash_test.cpp: `dbstep migrate
# all` and `dbstep rollback all` killed with SIGKILL at random points, on SQLite and PostgreSQL,
# with and without no-transaction migrations, every state checked after every kill) with ROUNDS
# rounds of one killed migrate and one killed rollback per case instead of the suite's 2
# (default 50). It runs through scripts/test.sh: build, a throwaway PostgreSQL cluster, ctest.
#
# The kill delays come from $DBSTEP_CRASH_SEED, a fresh one per run unless it is set; it is
# printed here and in every failure, with the command that reruns the failing case.
# $DBSTEP_CRASH_MIGRATIONS sets the number of generated migrations (default 250).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

rounds=${1:-50}
case $rounds in
  '' | *[!0-9]*) echo "usage: $0 [ROUNDS]   (a positive number, default 50)" >&2; exit 2 ;;
esac
[ "$rounds" -gt 0 ] || { echo "usage: $0 [ROUNDS]   (a positive number, default 50)" >&2; exit 2; }

export DBSTEP_CRASH_ROUNDS=$rounds
export DBSTEP_CRASH_SEED=${DBSTEP_CRASH_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "crash test: $rounds round(s) per case, DBSTEP_CRASH_SEED=$DBSTEP_CRASH_SEED"
# No practical time limit per case (a week): a long run takes as long as it takes.
exec "$root/scripts/test.sh" -R '^e2e crash' --timeout 604800
