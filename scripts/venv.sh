#!/usr/bin/env bash
# Usage: bash scripts/venv.sh REQUIREMENTS VENV_DIR
# Makes VENV_DIR a virtualenv with REQUIREMENTS installed, reinstalling only when that file changes, and prints
# the path of its python. Used by the deployment tests (tests/helm/run.sh) and the benchmark (scripts/bench.sh).
set -euo pipefail
requirements=$1
venv=$2
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "==> installing $requirements into $venv" >&2
  # Debian's python3 ships venv/ensurepip in a separate package.
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    sudo_=(); ((EUID == 0)) || sudo_=(sudo)
    "${sudo_[@]}" apt-get update -q >&2
    "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv >&2
  fi
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
  echo "$want" >"$stamp"
fi
echo "$venv/bin/python"
