#!/usr/bin/env bash
# The whole test suite under AddressSanitizer and UndefinedBehaviorSanitizer: scripts/test.sh (its
# own throwaway PostgreSQL cluster, every ctest test) on a build in build-asan/ (or
# $DBSTEP_BUILD_DIR) configured with -DDBSTEP_SANITIZE=address,undefined. A sanitizer finding
# stops the process that hit it with a report on stderr and a failing exit code, so the test
# that ran it fails. Extra arguments go to ctest (e.g. -R sqlite).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export DBSTEP_BUILD_DIR=${DBSTEP_BUILD_DIR:-$root/build-asan}
export DBSTEP_CMAKE_ARGS="-DDBSTEP_SANITIZE=address,undefined ${DBSTEP_CMAKE_ARGS:-}"

# The first finding ends the process with exit code 86, which dbstep never uses, so a test that
# expects a failing dbstep (exit 1) still fails on a sanitizer report. Nothing is printed in a
# clean run, so the end-to-end tests that compare the binary's stderr hold as they are.
# LeakSanitizer is on: it works here (it needs to stop the process's threads with ptrace, which
# some sandboxes forbid; there it would print "LeakSanitizer has encountered a fatal error").
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:exitcode=86:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=86}

exec "$root/scripts/test.sh" "$@"
