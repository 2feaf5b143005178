#!/usr/bin/env bash
# The demo on embedded defaults: no Kubernetes, no Prometheus, only Go.
# It validates and unit-tests the example policies, judges a recorded
# failing canary once (the verdict table), then runs a whole
# canary rollout twice on this machine: a whole deploy, where the canary
# Deployment is made from the stable one, promoted into it and scaled to 0,
# and a canary whose error rate climbs and is rolled back.
set -uo pipefail
bin=${1:-bin/canary}
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "Validate the example policies" "$bin" check examples/policies || exit 1
step "Run the policies' unit tests" "$bin" test examples/tests/iso-ingest.test.yaml examples/tests/lmp-feeds.test.yaml || exit 1
# A canary whose error rate climbs, judged once from recorded series: the
# verdict table, and exit code 2 for a failed analysis.
step "Judge a recorded failing canary once" "$bin" eval --policy iso-ingest --param namespace=caiso \
  --param name=lmp-ingest --series examples/series/caiso-errors.yaml
[ $? -eq 2 ] || { echo "expected the failing canary to fail (exit 2)"; exit 1; }
step "Deploy a new version with a canary and promote it, then roll out one whose error rate climbs" "$bin" demo --scenario deploy,errors || exit 1
printf '\nMore: %s demo --scenario healthy,lag,alert   |   %s demo --serve (then curl the API)\n' "$bin" "$bin"
