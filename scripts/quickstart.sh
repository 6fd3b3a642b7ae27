#!/usr/bin/env bash
# A new user's first command: installs what is missing, builds dbstep, and migrates a SQLite
# database (./dbstep.db in the current folder) to the latest of dbstep's embedded default
# migrations, then shows where it stands.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DBSTEP_BUILD_DIR:-$root/build}

"$root/scripts/build.sh" --target dbstep >/dev/null
dbstep="$build/cli/dbstep"

echo "\$ dbstep migrate all"
"$dbstep" migrate all
echo
echo "\$ dbstep version"
"$dbstep" version
echo
echo "Tables in dbstep.db:"
sqlite3 dbstep.db .tables
