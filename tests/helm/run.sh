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

python=$(bash scripts/venv.sh tests/helm/requirements.txt "${XDG_CACHE_HOME:-$HOME/.cache}/certpush-operator/venv")

if [[ ${1:-} == generate ]]; then
  exec "$python" deploy/manifests/generate.py
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
exec "$python" -m pytest -q -p no:cacheprovider tests/helm "$@"
