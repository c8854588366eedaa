#!/usr/bin/env bash
# The scale benchmark (docs/benchmarks.md): a real etcd + kube-apiserver (tests/e2e/control-plane.sh), scm-sim with
# 20 ms latency, the operator's release build. Prints numbers; BENCH_N (default "1000 5000") and
# BENCH_STEADY_SECONDS (default 60) change what is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --release --bin certpush-operator
cp_dir=$(mktemp -d "${TMPDIR:-/tmp}/certpush-bench.XXXXXX")
trap 'bash tests/e2e/control-plane.sh stop "$cp_dir" >/dev/null 2>&1 || true' EXIT
bash tests/e2e/control-plane.sh start "$cp_dir"
# shellcheck disable=SC1091
source "$cp_dir/env"
export KUBECONFIG CERTPUSH_ADMIN_KUBECONFIG CERTPUSH_RESTRICTED_KUBECONFIG
echo "==> machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -sr)"
CERTPUSH_OPERATOR_BIN="$PWD/target/release/certpush-operator" \
  cargo test --locked --test bench -- --ignored --nocapture --test-threads 1
