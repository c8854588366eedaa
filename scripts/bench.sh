#!/usr/bin/env bash
# The scale benchmark (docs/benchmarks.md): a real etcd + kube-apiserver (tests/e2e/control-plane.sh), scm-sim with
# 20 ms latency, the operator's release build with the defaults users get, and in the same run peers doing the same
# job: a controller-runtime operator (tests/bench/go-peer) and a kopf one (tests/bench/kopf_operator.py). Prints
# numbers; BENCH_N (default "1000 5000"), BENCH_STEADY_SECONDS (default 60), BENCH_COMPARE (default "go,kopf"; "go",
# "kopf", or "none" for this operator only) and BENCH_CONCURRENCY (--concurrency of ours and the Go peer, default 64,
# the operator's default) change what is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_COMPARE=${BENCH_COMPARE:-go,kopf}

if [[ ,$BENCH_COMPARE, == *,go,* ]]; then
  # Built from its Go module like the other Go tools the tests use, cached by content.
  eval "$(bash tests/bench/go-peer/build.sh)"
  export CERTPUSH_GO_PEER_BIN
fi

if [[ ,$BENCH_COMPARE, == *,kopf,* ]]; then
  # kopf and its dependencies go into a virtualenv of their own (not tests/helm's), reinstalled only when
  # tests/bench/requirements.txt changes.
  BENCH_KOPF_PYTHON=$(bash scripts/venv.sh tests/bench/requirements.txt \
    "${XDG_CACHE_HOME:-$HOME/.cache}/certpush-operator/bench-kopf-venv")
  export BENCH_KOPF_PYTHON
  kopf_version=$("$BENCH_KOPF_PYTHON" -m pip show kopf 2>/dev/null | awk '/^Version:/ {print $2}')
  echo "==> kopf $kopf_version, $("$BENCH_KOPF_PYTHON" --version)"
fi

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
