#!/usr/bin/env bash
# Builds the controller-runtime peer of the scale benchmark (main.go here) and prints one line on stdout,
#   CERTPUSH_GO_PEER_BIN=<path>
# so a caller can `eval "$(bash tests/bench/go-peer/build.sh)"`. Progress goes to stderr.
# The binary is cached in ${XDG_CACHE_HOME:-$HOME/.cache}/certpush-operator/go-peer-<key>, the key being the content
# of go.mod, go.sum and main.go, so only the first run after a change builds (about 2 min on 2 cores with an empty Go
# build cache, seconds with a warm one).
# Needs Go >= 1.26 (PATH or /usr/local/go/bin) and the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/certpush-operator
go=$(command -v go || echo /usr/local/go/bin/go)
[[ -x $go ]] || { echo "tests/bench/go-peer/build.sh: Go >= 1.26 is needed" >&2; exit 1; }
# A static binary, and no GOFLAGS from the environment (e.g. -mod=vendor) changing what is built.
export GOFLAGS='' CGO_ENABLED=0

key=$(cat go.mod go.sum main.go | sha256sum | cut -c1-16)
dir=$cache/go-peer-$key
if [[ ! -x $dir/go-peer ]]; then
  echo "==> building the controller-runtime peer (tests/bench/go-peer)" >&2
  mkdir -p "$cache"
  # Build into a temporary directory and rename it into place, so an interrupted build never leaves a binary that
  # the check above would take for a finished one.
  rm -rf "$dir.tmp.$$"
  "$go" build -trimpath -o "$dir.tmp.$$/go-peer" .
  rm -rf "$dir"
  mv "$dir.tmp.$$" "$dir"
fi
printf 'CERTPUSH_GO_PEER_BIN=%q\n' "$dir/go-peer"
