#!/usr/bin/env bash
# The demo on embedded defaults: no Kubernetes, no Prometheus. It validates
# the example policies, runs their unit tests, then evaluates the iso-ingest
# policy against 30 recorded minutes of a healthy canary and of a canary
# whose error rate climbs.
set -uo pipefail
bin=${1:-bin/canary}
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "Validate the example policies" "$bin" check examples/policies || exit 1
step "Run the policies' unit tests" "$bin" test examples/tests/iso-ingest.test.yaml examples/tests/lmp-feeds.test.yaml || exit 1
step "A healthy canary: the analysis passes" \
  "$bin" eval --policy iso-ingest --param namespace=caiso --param name=lmp-ingest \
  --series examples/series/caiso-healthy.yaml
rc=$?
[ $rc -eq 0 ] || { echo "expected a pass (exit 0), got exit $rc"; exit 1; }
step "A canary whose error rate climbs: the analysis fails and says roll back" \
  "$bin" eval --policy iso-ingest --param namespace=caiso --param name=lmp-ingest \
  --series examples/series/caiso-errors.yaml
rc=$?
[ $rc -eq 2 ] || { echo "expected a fail (exit 2), got exit $rc"; exit 1; }
printf '\nBoth verdicts as expected. JSON for a webhook caller: add -o json.\n'
