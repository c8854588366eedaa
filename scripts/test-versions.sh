#!/usr/bin/env bash
# `make test-versions`: the end-to-end suite on the oldest and the newest Kubernetes minor the operator supports,
# each on a fresh control plane (tests/e2e/control-plane.sh, which builds and caches each kube-apiserver version the
# first time, about 5 to 11 min each on 2 cores). Not part of `make test`, which runs the newest only.
#
# KUBE_VERSIONS overrides the list (space-separated), e.g. KUBE_VERSIONS="1.30.14" make test-versions.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# The oldest: 1.28, the minimum the chart's kubeVersion allows (CEL validation rules with messages and fieldPath, the
# CRD's one-source and per-service rules, are on by default from 1.28). The newest: the default of control-plane.sh.
versions=${KUBE_VERSIONS:-1.28.15 1.37.2}

cargo build --quiet --locked --tests --bins
status=0
for version in $versions; do
  printf '\n==> end-to-end suite on kube-apiserver %s\n' "$version"
  dir=$(mktemp -d "${TMPDIR:-/tmp}/certpush-cp-$version.XXXXXX")
  if ! KUBE_VERSION=$version bash tests/e2e/control-plane.sh start "$dir"; then
    echo "==> kube-apiserver $version: the control plane did not start" >&2
    status=1
    continue
  fi
  if (
    # shellcheck disable=SC1091
    source "$dir/env"
    export KUBECONFIG CERTPUSH_ADMIN_KUBECONFIG CERTPUSH_RESTRICTED_KUBECONFIG
    server=$(kubectl version -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')
    [[ $server == "v$version" ]] || { echo "expected kube-apiserver v$version, got $server" >&2; exit 1; }
    cargo test --locked --test e2e -- --include-ignored --test-threads 8
  ); then
    echo "==> kube-apiserver $version: passed"
  else
    echo "==> kube-apiserver $version: FAILED" >&2
    status=1
  fi
  bash tests/e2e/control-plane.sh stop "$dir" >/dev/null 2>&1 || true
done
exit $status
