#!/usr/bin/env bash
# Builds the real tools the deployment tests run and prints shell exports naming them (eval the output):
#   CERTPUSH_KSTATUS_BIN        kstatus, Flux's health library (tests/tools/kstatus)
#   CERTPUSH_ARGOCD_HEALTH_BIN  Argo CD's Lua VM running health scripts (tests/tools/argocd-health)
#   CERTPUSH_HELM3_BIN          the Helm 3 CLI, helm.sh/helm/v3 at HELM3_VERSION
#   CERTPUSH_ACTIONLINT_BIN     actionlint, the GitHub Actions workflow linter, github.com/rhysd/actionlint at
#                               ACTIONLINT_VERSION (tests/helm/test_release.py lints .github/workflows with it)
#   CERTPUSH_REGISTRY_BIN       the CNCF Distribution OCI registry, github.com/distribution/distribution/v3 at
#                               REGISTRY_VERSION (the README's release quickstart installs the chart from it)
# Binaries are cached in ${XDG_CACHE_HOME:-$HOME/.cache}/certpush-operator (the first two by the content of
# this module, the others by version), so only the first run builds (about 7 min on 2 cores: Helm ~3, the registry
# ~3, actionlint ~1).
# Needs Go >= 1.26 (PATH or /usr/local/go/bin) and the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")"
readonly HELM3_VERSION=${HELM3_VERSION:-3.22.0}
readonly ACTIONLINT_VERSION=${ACTIONLINT_VERSION:-1.7.12}
readonly REGISTRY_VERSION=${REGISTRY_VERSION:-3.1.2}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/certpush-operator
go=$(command -v go || echo /usr/local/go/bin/go)
[[ -x $go ]] || { echo "tests/tools/build.sh: Go >= 1.26 is needed" >&2; exit 1; }
export GOFLAGS='' CGO_ENABLED=0
mkdir -p "$cache"

# actionlint checks the workflows' run: scripts with shellcheck when it is on PATH, as on GitHub's runners: install
# Debian's, so the lint is the same on every machine.
if ! command -v shellcheck >/dev/null; then
  echo "==> installing shellcheck (apt-get)" >&2
  sudo_=(); ((EUID == 0)) || sudo_=(sudo)
  "${sudo_[@]}" apt-get update -q >&2
  "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends shellcheck >&2
fi

key=$(cat go.mod go.sum ./*/main.go | sha256sum | cut -c1-16)
tools=$cache/tools-$key
if [[ ! -x $tools/kstatus || ! -x $tools/argocd-health ]]; then
  echo "==> building kstatus and argocd-health (tests/tools)" >&2
  rm -rf "$tools.tmp"
  "$go" build -trimpath -o "$tools.tmp/" ./kstatus ./argocd-health
  rm -rf "$tools"
  mv "$tools.tmp" "$tools"
fi

helm=$cache/helm-$HELM3_VERSION
if [[ ! -x $helm ]]; then
  echo "==> building the Helm $HELM3_VERSION CLI from helm.sh/helm/v3 (a few minutes the first time)" >&2
  work=$(mktemp -d "${TMPDIR:-/tmp}/certpush-helm.XXXXXX")
  (
    cd "$work"
    "$go" mod init certpush-throwaway >/dev/null 2>&1
    "$go" mod edit -require "helm.sh/helm/v3@v$HELM3_VERSION"
    printf 'package tools\n\nimport _ "helm.sh/helm/v3/cmd/helm"\n' >tools.go
    "$go" mod tidy >&2
    # As Helm's own Makefile does: the default Kubernetes version of `helm template` and `helm lint` is the
    # client-go version Helm is built with (without it, Helm assumes 1.20).
    client_go=$("$go" list -m -f '{{.Version}}' k8s.io/client-go)
    minor=${client_go#v0.}
    minor=${minor%%.*}
    "$go" build -trimpath -o "$helm.tmp" \
      -ldflags "-X helm.sh/helm/v3/internal/version.version=v$HELM3_VERSION \
        -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor" \
      helm.sh/helm/v3/cmd/helm
  )
  mv -f "$helm.tmp" "$helm"
  rm -rf "$work"
fi

# build_module OUT MODULE@VERSION PACKAGE [go build args...]: builds PACKAGE of MODULE at VERSION to OUT in a
# throwaway module (so the versions of its dependencies are the module's own go.mod's), unless OUT exists.
build_module() {
  local out=$1 module=$2 package=$3
  shift 3
  [[ -x $out ]] && return
  echo "==> building $package from $module" >&2
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/certpush-tool.XXXXXX")
  (
    cd "$work"
    "$go" mod init certpush-throwaway >/dev/null 2>&1
    "$go" mod edit -require "$module"
    printf 'package tools\n\nimport _ "%s"\n' "$package" >tools.go
    "$go" mod tidy >&2
    "$go" build -trimpath -o "$out.$$.tmp" "$@" "$package"
  )
  mv -f "$out.$$.tmp" "$out"
  rm -rf "$work"
}

actionlint=$cache/actionlint-$ACTIONLINT_VERSION
# As actionlint's release builds do: `actionlint -version` reports the version, not "(devel)".
build_module "$actionlint" "github.com/rhysd/actionlint@v$ACTIONLINT_VERSION" github.com/rhysd/actionlint/cmd/actionlint \
  -ldflags "-X github.com/rhysd/actionlint.version=v$ACTIONLINT_VERSION"

registry=$cache/registry-$REGISTRY_VERSION
build_module "$registry" "github.com/distribution/distribution/v3@v$REGISTRY_VERSION" \
  github.com/distribution/distribution/v3/cmd/registry

printf 'export CERTPUSH_KSTATUS_BIN=%q\n' "$tools/kstatus"
printf 'export CERTPUSH_ARGOCD_HEALTH_BIN=%q\n' "$tools/argocd-health"
printf 'export CERTPUSH_HELM3_BIN=%q\n' "$helm"
printf 'export CERTPUSH_ACTIONLINT_BIN=%q\n' "$actionlint"
printf 'export CERTPUSH_REGISTRY_BIN=%q\n' "$registry"
