#!/usr/bin/env bash
# Everything CI checks: formatting, clippy, unit + simulator tests, then the e2e suite against a real
# kube-apiserver + etcd that this script provisions (and always stops).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "supply chain: cargo deny (licenses, bans, sources; advisories when reachable)"
bash scripts/deny.sh

step "unit and simulator tests"
cargo test --locked
bash tests/sdk/run.sh

step "control plane (etcd + kube-apiserver)"
cp_dir=$(mktemp -d "${TMPDIR:-/tmp}/certpush-cp.XXXXXX")
trap 'bash tests/e2e/control-plane.sh stop "$cp_dir" >/dev/null 2>&1 || true' EXIT
bash tests/e2e/control-plane.sh start "$cp_dir"
# shellcheck disable=SC1091
source "$cp_dir/env"
export KUBECONFIG CERTPUSH_ADMIN_KUBECONFIG CERTPUSH_RESTRICTED_KUBECONFIG

step "end-to-end suite"
# The e2e tests mostly wait on timers, so more threads than cores shortens the run.
cargo test --locked --test e2e -- --include-ignored --test-threads 8

step "deployment artefacts: Helm chart, manifests, image, Argo CD health"
bash tests/helm/run.sh
