#!/usr/bin/env bash
# Installs the real components the tests start: the Prometheus server,
# Alertmanager, PostgreSQL and the headless Chromium the web UI's tests
# drive, from Debian packages. Idempotent: it installs
# only what is missing.
set -euo pipefail

# command -> Debian package
declare -A want=(
  [prometheus]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [etcd]=etcd-server
  [chromium]=chromium
)

missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
# Debian keeps the PostgreSQL server binaries off PATH, under
# /usr/lib/postgresql/<version>/bin; the tests find them there.
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && [ -z "${PG_BIN:-}" ]; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "The tests need these programs, which are missing: ${missing[*]}" >&2
  echo "Install them with your package manager (Debian/Ubuntu packages: ${missing[*]}) and run make test again." >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "Installing ${missing[*]} needs root: run as root or install them first." >&2
    exit 1
  fi
fi

echo "Installing test dependencies: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
