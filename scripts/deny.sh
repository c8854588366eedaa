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
cargo deny --locked check licenses bans sources
if timeout 120 cargo deny --locked fetch db >/tmp/certpush-deny-fetch.log 2>&1; then
  cargo deny --locked check advisories
else
  echo "NOTICE: cargo deny advisories SKIPPED: the RustSec advisory database could not be fetched" >&2
  echo "        ($(tail -n 1 /tmp/certpush-deny-fetch.log)); run 'bash scripts/deny.sh' where GitHub is reachable." >&2
fi
