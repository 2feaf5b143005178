#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy (there is no Debian
# package of it) and caches the binary outside the repository, so the real
# Kubernetes test tier can run on any machine with Go. The first build takes
# about 15 minutes on 2 cores; later runs reuse the cache. Prints the path
# of the binary on stdout.
set -euo pipefail

version=${KUBE_VERSION:-1.37.2}
minor=${version#*.}; minor=${minor%%.*}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/aurum-canary/kube-apiserver-v$version
bin=$cache/kube-apiserver

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

cat > main.go <<'GO'
// Command kube-apiserver is the upstream server's main, built here so the
// tests can run against a real API server.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	command := app.NewAPIServerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
GO

cat > go.mod <<GO
module example.com/kube-apiserver

go 1.26.0

godebug default=go1.26

require k8s.io/kubernetes v$version
GO

echo "building kube-apiserver v$version into $cache (about 15 minutes the first time)" >&2
go mod download -json "k8s.io/kubernetes@v$version" >/dev/null
modfile=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$version.mod
# k8s.io/kubernetes replaces its staging modules with local paths; point
# each at its published version instead (the two sample modules are not
# published and not needed).
for m in $(grep '=> ./staging' "$modfile" | awk '{print $1}' | grep -v -e sample-cli-plugin -e sample-controller); do
  go mod edit -replace="$m=$m@v0.$minor.${version##*.}"
done
go mod tidy >&2
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w \
  -X k8s.io/component-base/version.gitVersion=v$version \
  -X k8s.io/component-base/version.gitMajor=1 \
  -X k8s.io/component-base/version.gitMinor=$minor" -o "$bin.tmp" .
mv "$bin.tmp" "$bin"
echo "$bin"
