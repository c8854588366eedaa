#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (deny.toml): licenses, bans and sources must pass; the advisories check runs
# when the RustSec database can be fetched and is otherwise skipped with a notice (this machine's network may only
# reach the package registries). cargo-deny is installed from crates.io at a pinned version on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q " $version"; then
  echo "==> installing cargo-deny $version (once per machine)"
  cargo install --locked --quiet cargo-deny --version "$version"
fi
# Only errors are printed: duplicate versions are warnings, and their listing would fill the log.
cargo deny --log-level error --locked check --hide-inclusion-graph licenses bans sources
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if timeout 120 cargo deny --locked fetch db >"$log" 2>&1; then
  cargo deny --locked check --hide-inclusion-graph advisories
else
  reason=$(grep -m1 -E 'fatal:|error' "$log" | sed -E 's/^.*(fatal|ERROR)[]:]* *//' | cut -c1-160)
  echo "NOTICE: cargo deny advisories SKIPPED: the RustSec advisory database could not be fetched (${reason:-no reason given});" >&2
  echo "        run 'bash scripts/deny.sh' where github.com is reachable to check advisories." >&2
fi
