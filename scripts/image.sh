#!/usr/bin/env bash
# Builds the container image (`make image`, IMAGE=name:tag) for PLATFORM (default linux/amd64; linux/arm64 for arm64
# nodes, which needs QEMU emulation or an arm64 host), with docker, else podman, else buildah, whichever answers
# first. Push the result to a registry your cluster pulls from. Tagged releases publish a multi-arch image instead
# (.github/workflows/release.yml).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
image=${1:-${IMAGE:-certpush-operator:$version}}
platform=${PLATFORM:-linux/amd64}
for engine in docker podman buildah; do
  if command -v "$engine" >/dev/null && "$engine" info >/dev/null 2>&1; then
    commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    echo "==> $engine build --platform $platform --build-arg CERTPUSH_COMMIT=$commit -t $image ." >&2
    if [[ $engine == buildah ]]; then
      exec buildah bud --platform "$platform" --build-arg "CERTPUSH_COMMIT=$commit" -t "$image" .
    fi
    exec "$engine" build --platform "$platform" --build-arg "CERTPUSH_COMMIT=$commit" -t "$image" .
  fi
done
echo "error: no container engine answers (tried docker, podman and buildah: \`<engine> info\` failed)." >&2
echo "Install one (or start its daemon), or build on a machine that has one; see docs/deploy.md." >&2
exit 1
