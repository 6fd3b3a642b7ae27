#!/usr/bin/env bash
# Installs, from Debian's packages, everything dbstep needs to build and test and that this
# machine does not have yet. Safe to run again: it installs only what is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libsqlitecpp-dev libsqlite3-dev sqlite3
  libboost-program-options-dev libfmt-dev doctest-dev nlohmann-json3-dev
  libpqxx-dev libpq-dev libpg-query-dev libprotobuf-c-dev
  postgresql-15 postgresql-client-15 pgbouncer
  libssl-dev
  clang-14 libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "Installing missing packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
