#!/usr/bin/env bash
# Tests of the deployment artefacts: Helm chart (lint, render, schema, install/upgrade into a real
# control plane), plain manifests (drift, server-side apply), Argo CD health check, container image.
#
# Usage: bash tests/helm/run.sh [pytest args]   run the tests
#        bash tests/helm/run.sh generate        regenerate the chart's CRD template and deploy/manifests
#
# Cluster tests use CERTPUSH_ADMIN_KUBECONFIG (from `source DIR/env` after
# `bash tests/e2e/control-plane.sh start DIR`); without it they fail, the rendering tests still run.
# Python dependencies go into a virtualenv under ${XDG_CACHE_HOME:-$HOME/.cache}/certpush-operator/venv,
# reinstalled only when requirements.txt changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
# No __pycache__ in the work tree.
export PYTHONDONTWRITEBYTECODE=1

venv="${XDG_CACHE_HOME:-$HOME/.cache}/certpush-operator/venv"
requirements=tests/helm/requirements.txt
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "==> installing $requirements into $venv" >&2
  # Debian's python3 ships venv/ensurepip in a separate package.
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    sudo_=(); ((EUID == 0)) || sudo_=(sudo)
    "${sudo_[@]}" apt-get update -q
    "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi

if [[ ${1:-} == generate ]]; then
  exec "$venv/bin/python" deploy/manifests/generate.py
fi

# kstatus, Argo CD's Lua VM and the Helm 3 CLI, built from their Go modules (cached after the first run).
eval "$(bash tests/tools/build.sh)"

# The cluster tests run the operator and scm-sim (debug builds, as the e2e suite does); the image tests
# run the release binary the Dockerfile builds, with the Dockerfile's own cargo command. Both are no-ops
# when up to date.
echo "==> cargo build (debug bins, release operator)" >&2
cargo build --quiet --locked --bins
cargo build --quiet --locked --release --bin certpush-operator

# -p no:cacheprovider: no .pytest_cache in the work tree.
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/helm "$@"
