#!/usr/bin/env bash
# Fidelity test of scm-sim against Huawei's official Python SDK (huaweicloudsdkscm, pinned in requirements.txt): the
# SDK's ScmClient signs every call with AK/SK and parses every answer into its models, so a signature the simulator
# verifies differently, or an answer the models do not know, fails here. When it does, fix the simulator.
#
# Usage: bash tests/sdk/run.sh [pytest args]
#
# Builds and starts the scm-sim binary (debug build, demo access key and certificates) on a free loopback port, runs
# tests/sdk/test_sdk.py against it, and stops it. Python dependencies go into a virtualenv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/certpush-operator/sdk-venv-<hash of requirements.txt>, created on the first run.
set -euo pipefail
cd "$(dirname "$0")/../.."
# No __pycache__ in the work tree.
export PYTHONDONTWRITEBYTECODE=1

requirements=tests/sdk/requirements.txt
hash=$(sha256sum "$requirements" | cut -c1-16)
python=$(bash scripts/venv.sh "$requirements" "${XDG_CACHE_HOME:-$HOME/.cache}/certpush-operator/sdk-venv-$hash")

echo "==> cargo build (scm-sim)" >&2
cargo build --quiet --locked -p scm-sim --bin scm-sim
# Wherever cargo puts it (CARGO_TARGET_DIR, build.target-dir).
target_dir=$(cargo metadata --quiet --locked --format-version 1 --no-deps |
  "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

work=$(mktemp -d "${TMPDIR:-/tmp}/certpush-sdk.XXXXXX")
sim_pid=
stop() {
  if [[ -n $sim_pid ]]; then
    kill "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT

# Port 0: the kernel picks a free port, and the simulator prints the URL it listens on as its first stdout line.
"$target_dir/debug/scm-sim" --port 0 >"$work/stdout" 2>"$work/log" &
sim_pid=$!
url=
for _ in $(seq 200); do
  url=$(sed -n 's/^scm-sim listening on //p' "$work/stdout")
  [[ -n $url ]] && break
  if ! kill -0 "$sim_pid" 2>/dev/null; then
    cat "$work/log" >&2
    echo "scm-sim exited before listening" >&2
    exit 1
  fi
  sleep 0.05
done
if [[ -z $url ]]; then
  echo "scm-sim did not report its address within 10 s" >&2
  exit 1
fi

# Loopback must not go through a proxy from the environment (the SDK's HTTP client honours the proxy variables).
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
status=0
# -p no:cacheprovider: no .pytest_cache in the work tree.
SCM_SIM_URL=$url "$python" -m pytest -q -p no:cacheprovider tests/sdk "$@" || status=$?
if ((status != 0)); then
  echo "==> scm-sim log (last 40 lines)" >&2
  tail -n 40 "$work/log" >&2
fi
exit "$status"
