#!/usr/bin/env bash
# Throwaway Kubernetes control plane (etcd + kube-apiserver) on loopback for
# the e2e tests, in the spirit of controller-runtime's envtest.
#
# Usage: tests/e2e/control-plane.sh build
#        tests/e2e/control-plane.sh start|stop|env|status|restart-apiserver [DIR]
#
#   build   make sure the cached kube-apiserver and etcd binaries exist (built
#           from their Go modules the first time, ~8 min on 2 cores)
#   start   start etcd + kube-apiserver with state in DIR, wait until usable,
#           write DIR/env; exits 0 at once if DIR already has a healthy one
#   stop    stop exactly the processes `start` recorded in DIR/pids, remove DIR
#   env     print DIR/env (shell exports; `source` it)
#   status  exit 0 iff the control plane in DIR runs and /readyz is ok
#   restart-apiserver  stop kube-apiserver (TERM) and start it again on the same
#           port and etcd, for tests of clients that must survive it
#
# DIR defaults to ${CERTPUSH_CP_DIR:-${TMPDIR:-/tmp}/certpush-cp}, so after
# `source DIR/env` the other subcommands find it without an argument.
#
# Files in DIR: env, admin.kubeconfig, restricted.kubeconfig, admin.token,
# tokens.csv, ca.{crt,key}, serving.{crt,key}, sa.{key,pub}, pids, etcd/,
# etcd.log, kube-apiserver.log.
#
# The env file exports KUBECONFIG, CERTPUSH_ADMIN_KUBECONFIG,
# CERTPUSH_RESTRICTED_KUBECONFIG, CERTPUSH_APISERVER_URL and CERTPUSH_CP_DIR.
#
# Versions: KUBE_VERSION (default below) and ETCD_VERSION. Both binaries are
# built the way envtest-style projects vendor them: a throwaway Go module that
# requires k8s.io/kubernetes at KUBE_VERSION, with each k8s.io/* staging module
# replaced by its matching v0.X.Y release (resp. go.etcd.io/etcd/server/v3 at
# ETCD_VERSION behind etcd's own four-line main), fetched from the Go module
# proxy. Nothing of them ends up in this repository; only the binaries are kept
# in the user's cache (${XDG_CACHE_HOME:-$HOME/.cache}/certpush-operator), by
# version. Needs Go >= 1.26 on PATH (or in /usr/local/go/bin).

set -euo pipefail

# The newest Kubernetes release the Go module proxy serves that builds with Go 1.26.
readonly KUBE_VERSION=${KUBE_VERSION:-1.37.2}
# etcd 3.6: the API server's consistent reads from its watch cache need etcd's
# RequestWatchProgress, which Debian's etcd 3.4 lacks (the API server logs
# "RequestWatchProgress feature is not supported" and falls back to etcd reads).
readonly ETCD_VERSION=${ETCD_VERSION:-3.6.16}
readonly CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/certpush-operator"
readonly APISERVER_BIN="$CACHE_DIR/kube-apiserver-$KUBE_VERSION"
readonly ETCD_BIN="$CACHE_DIR/etcd-$ETCD_VERSION"
readonly READY_TIMEOUT=60 # seconds, per wait step
readonly MARKER=.certpush-control-plane # proves a DIR is ours before rm -rf
readonly ADMIN_USER=certpush-admin
# Named like the operator's ServiceAccount so RBAC bindings to that
# ServiceAccount (from deploy/) apply to this token user as well.
readonly RESTRICTED_USER=system:serviceaccount:certpush-system:certpush-operator
readonly RESTRICTED_GROUPS=system:serviceaccounts,system:serviceaccounts:certpush-system

# Diagnostics go to a copy of the original stderr: a signal trap runs with
# the fds of whatever command was executing (e.g. a check with 2>/dev/null),
# and its messages must still be seen. Launched servers do not inherit it.
exec {LOG_FD}>&2
log() { printf '[control-plane] %s\n' "$*" >&"$LOG_FD"; }
die() {
  log "error: $*"
  exit 1
}

# ---------------------------------------------------------------------------
# Cleanup: the EXIT trap stops whatever a failing `start` already launched and
# ends the build heartbeat. INT/TERM are turned into a normal exit so the
# trap also runs when CI cancels us.
STARTING_DIR=""
HEARTBEAT_PID=""
on_exit() {
  local rc=$?
  if [[ -n $HEARTBEAT_PID ]]; then
    kill "$HEARTBEAT_PID" 2>/dev/null || true
  fi
  if ((rc != 0)) && [[ -n $STARTING_DIR ]]; then
    log "start failed; stopping the processes it started (logs stay in $STARTING_DIR)"
    stop_processes "$STARTING_DIR"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Packages. A fresh CI machine has none of them, so install on demand.

as_root() {
  if ((EUID == 0)); then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
ensure_packages() {
  local pkg missing=()
  for pkg in "$@"; do
    # shellcheck disable=SC2016 # ${Status} is a dpkg-query field, not shell
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  if ((!APT_UPDATED)); then
    as_root apt-get update -q
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------------------
# Building kube-apiserver and etcd from their Go modules.

# Prints a line every 30 s so CI logs show the silent go build is alive.
# sleep gets no stdout/stderr, so a lingering one never holds the caller's pipes.
heartbeat() {
  local what=$1 started=$SECONDS
  while sleep 30 >/dev/null 2>&1 {LOG_FD}>&-; do
    log "… still building $what ($((SECONDS - started)) s elapsed)"
  done
}

# The go command: PATH's, else the machine's /usr/local/go; 1.26 or newer.
go_bin() {
  local go minor
  go=$(command -v go || true)
  [[ -n $go ]] || go=/usr/local/go/bin/go
  [[ -x $go ]] || die "Go >= 1.26 is needed to build the control plane; none found on PATH or in /usr/local/go/bin"
  minor=$("$go" env GOVERSION | sed -nE 's/^go1\.([0-9]+).*/\1/p')
  ((${minor:-0} >= 26)) || die "$go is $("$go" env GOVERSION); building Kubernetes $KUBE_VERSION needs Go >= 1.26"
  printf '%s\n' "$go"
}

# Runs `go build -o OUT PKG` in a fresh module prepared by SETUP (a function
# that gets the go command and edits go.mod), then moves the binary into place:
# copy then rename, so an interrupted build never looks like a cached binary.
build_in_module() {
  local what=$1 out=$2 pkg=$3 setup=$4 ldflags=${5:-}
  local go work started=$SECONDS
  go=$(go_bin)
  work=$(mktemp -d "${TMPDIR:-/tmp}/certpush-build.XXXXXX")
  log "building $what from the Go module proxy in $work (minutes on 2 cores)…"
  heartbeat "$what" &
  HEARTBEAT_PID=$!
  # A caller's GOFLAGS (e.g. -mod=vendor) must not change how the throwaway module resolves.
  if ! (
    export GOFLAGS=
    cd "$work" &&
      "$go" mod init certpush-throwaway >/dev/null 2>&1 &&
      "$setup" "$go" &&
      "$go" mod tidy >&2 &&
      CGO_ENABLED=0 "$go" build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg" >&2
  ); then
    die "building $what failed; the module is kept in $work"
  fi
  kill "$HEARTBEAT_PID" 2>/dev/null || true
  HEARTBEAT_PID=""
  mv -f "$out.tmp" "$out"
  rm -rf "$work"
  log "built $out in $((SECONDS - started)) s"
}

# k8s.io/kubernetes replaces its k8s.io/* staging modules with ./staging paths,
# which a module depending on it cannot see: each becomes its v0.X.Y release.
kube_module() {
  local go=$1 gomod module staging=0.${KUBE_VERSION#1.}
  gomod=$("$go" mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" |
    sed -nE 's/^[[:space:]]*"GoMod": "(.*)",?$/\1/p')
  [[ -f $gomod ]] || die "the Go module proxy served no go.mod for k8s.io/kubernetes@v$KUBE_VERSION"
  for module in $(sed -nE 's#^[[:space:]]*(k8s\.io/[a-z0-9-]+) => \./staging/.*#\1#p' "$gomod"); do
    "$go" mod edit -replace "$module=$module@v$staging"
  done
  "$go" mod edit -require "k8s.io/kubernetes@v$KUBE_VERSION"
  printf 'package tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >tools.go
}

# etcd's own main.go is these lines; its root module is not meant to be required.
etcd_module() {
  local go=$1
  "$go" mod edit -require "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  printf '%s\n' 'package main' '' 'import (' '	"os"' '' '	"go.etcd.io/etcd/server/v3/etcdmain"' ')' '' \
    'func main() { etcdmain.Main(os.Args) }' >main.go
}

build_apiserver() {
  local minor=${KUBE_VERSION#1.} v=k8s.io/component-base/version
  minor=${minor%%.*}
  # What `kube-apiserver --version` and the /version endpoint report (kubectl, Helm and kube read it).
  build_in_module "kube-apiserver $KUBE_VERSION" "$APISERVER_BIN" k8s.io/kubernetes/cmd/kube-apiserver kube_module \
    "-X $v.gitVersion=v$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
}

build_etcd() {
  build_in_module "etcd $ETCD_VERSION" "$ETCD_BIN" . etcd_module
}

# Serialises concurrent CI jobs sharing a cache: the second waits, then finds
# the binaries the first one built.
ensure_binaries() {
  [[ -x $APISERVER_BIN && -x $ETCD_BIN ]] && return 0
  mkdir -p "$CACHE_DIR"
  local lock_fd
  exec {lock_fd}>"$CACHE_DIR/build.lock"
  flock "$lock_fd"
  [[ -x $ETCD_BIN ]] || build_etcd
  [[ -x $APISERVER_BIN ]] || build_apiserver
  exec {lock_fd}>&-
}

# ---------------------------------------------------------------------------
# Process bookkeeping. DIR/pids holds "name pid" lines in start order.

# True if PID is alive and really one of ours: every process we start has
# DIR in its command line, which guards against recycled PIDs (and zombies,
# whose cmdline is empty).
owns_pid() {
  local dir=$1 pid=$2 cmdline
  [[ -r /proc/$pid/cmdline ]] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$dir/"* ]]
}

# Prints the recorded PIDs, newest first (stop apiserver before etcd).
recorded_pids() {
  local dir=$1
  [[ -f $dir/pids ]] || return 0
  tac "$dir/pids" | while read -r _ pid; do echo "$pid"; done
}

# TERM, wait up to 15 s, then KILL; only PIDs we recorded and still own.
stop_processes() {
  local dir=$1 pid alive=() deadline
  for pid in $(recorded_pids "$dir"); do
    if owns_pid "$dir" "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      alive+=("$pid")
    fi
  done
  ((${#alive[@]})) || return 0
  deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)); do
    local still=()
    for pid in "${alive[@]}"; do
      if owns_pid "$dir" "$pid"; then still+=("$pid"); fi
    done
    ((${#still[@]})) || return 0
    alive=("${still[@]}")
    sleep 0.2
  done
  log "sending KILL to ${alive[*]}"
  kill -KILL "${alive[@]}" 2>/dev/null || true
  # Let them vanish before the caller removes etcd's data dir.
  for pid in "${alive[@]}"; do
    for _ in {1..20}; do
      owns_pid "$dir" "$pid" || break
      sleep 0.1
    done
  done
}

# All recorded processes are still running.
all_running() {
  local dir=$1 pid any=0
  for pid in $(recorded_pids "$dir"); do
    owns_pid "$dir" "$pid" || return 1
    any=1
  done
  ((any))
}

# Starts a long-running server in the background with its own log and
# records its PID right away, so the EXIT trap can stop it on failure.
launch() {
  local dir=$1 name=$2
  shift 2
  nohup "$@" >"$dir/$name.log" 2>&1 </dev/null {LOG_FD}>&- &
  echo "$name $!" >>"$dir/pids"
}

# ---------------------------------------------------------------------------
# Helpers for start.

# Absolute path (need not exist): env and kubeconfigs must work from any cwd.
resolve_dir() {
  realpath -m -- "${1:-${CERTPUSH_CP_DIR:-${TMPDIR:-/tmp}/certpush-cp}}"
}

# N distinct free loopback ports. Binding port 0 lets the kernel choose; all
# sockets are held until every port is known so the ports differ.
free_ports() {
  local n=$1
  if command -v python3 >/dev/null; then
    python3 - "$n" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
  else
    # Fallback without python3: random high ports nobody is listening on.
    local ports=() p
    while ((${#ports[@]} < n)); do
      p=$((20000 + RANDOM % 30000))
      [[ " ${ports[*]} " == *" $p "* ]] && continue
      (: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
      ports+=("$p")
    done
    echo "${ports[*]}"
  fi
}

# Runs a noisy command (openssl prints progress), showing output only on failure.
quiet() {
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" >&"$LOG_FD"
    die "command failed: $*"
  fi
}

# CA, serving certificate for 127.0.0.1/localhost, service-account key pair.
# Own openssl config so the result does not depend on the distro's defaults.
generate_pki() {
  local dir=$1 cnf=$1/openssl.cnf
  cat >"$cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = certpush-e2e
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[serving_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  quiet openssl req -x509 -config "$cnf" -extensions ca_ext -newkey rsa:2048 -nodes \
    -sha256 -days 3650 -subj /CN=certpush-e2e-ca -keyout "$dir/ca.key" -out "$dir/ca.crt"
  quiet openssl req -new -config "$cnf" -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$dir/serving.key" -out "$dir/serving.csr"
  quiet openssl x509 -req -in "$dir/serving.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -sha256 -days 365 \
    -extfile "$cnf" -extensions serving_ext -out "$dir/serving.crt"
  quiet openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/sa.key"
  quiet openssl pkey -in "$dir/sa.key" -pubout -out "$dir/sa.pub"
  rm -f "$dir/serving.csr" "$dir/openssl.cnf"
}

# kubeconfig that verifies the server against our CA (no insecure skip).
write_kubeconfig() {
  local file=$1 url=$2 ca_file=$3 name=$4 token=$5
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: certpush-e2e
  cluster:
    server: $url
    certificate-authority-data: $(base64 -w0 <"$ca_file")
users:
- name: $name
  user:
    token: $token
contexts:
- name: $name
  context:
    cluster: certpush-e2e
    user: $name
current-context: $name
EOF
}

# GET an API path as admin, printing the body. The token goes through curl's
# config on stdin so it never shows up in `ps`.
api_get() {
  local dir=$1 url=$2 path=$3
  printf 'header = "Authorization: Bearer %s"\n' "$(cat "$dir/admin.token")" |
    curl -fsS --max-time 5 --cacert "$dir/ca.crt" -K - "$url$path"
}

apiserver_url() {
  local dir=$1
  [[ -f $dir/env ]] || return 1
  # shellcheck disable=SC1091 # generated at runtime
  (source "$dir/env" && echo "$CERTPUSH_APISERVER_URL")
}

# Healthy = env written (start completed), processes alive, /readyz ok.
is_healthy() {
  local dir=$1 url
  url=$(apiserver_url "$dir") || return 1
  all_running "$dir" || return 1
  [[ $(api_get "$dir" "$url" /readyz 2>/dev/null) == ok ]]
}

# Prints the last lines of a log and fails start (the EXIT trap cleans up).
fail_with_log() {
  local logfile=$1
  shift
  log "error: $*"
  if [[ -f $logfile ]]; then
    log "last 40 lines of $logfile:"
    tail -n 40 "$logfile" >&"$LOG_FD"
  fi
  exit 1
}

# Polls CHECK (a command) every 0.5 s until it succeeds, failing early if
# the process named NAME died.
wait_for() {
  local dir=$1 name=$2 what=$3
  shift 3
  local deadline=$((SECONDS + READY_TIMEOUT)) pid
  pid=$(awk -v n="$name" '$1 == n { print $2 }' "$dir/pids")
  until "$@" >/dev/null 2>&1; do
    owns_pid "$dir" "$pid" || fail_with_log "$dir/$name.log" "$name exited while waiting for $what"
    ((SECONDS < deadline)) || fail_with_log "$dir/$name.log" "timed out after ${READY_TIMEOUT}s waiting for $what"
    sleep 0.5
  done
}

etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$1/health" | grep -q '"health":"true"'; }
apiserver_ready() { [[ $(api_get "$1" "$2" /readyz) == ok ]]; }
# The bootstrap controller creates "default" shortly after /readyz; tests
# expect it, and the ServiceAccount API, to be there.
default_namespace_usable() {
  api_get "$1" "$2" /api/v1/namespaces/default &&
    api_get "$1" "$2" /api/v1/namespaces/default/serviceaccounts
}

# Makes DIR empty and ours. Leftovers of an earlier (failed or unhealthy)
# start are stopped and wiped; a foreign non-empty directory is refused.
prepare_dir() {
  local dir=$1
  if [[ -f $dir/$MARKER ]]; then
    log "cleaning up previous state in $dir"
    stop_processes "$dir"
    rm -rf -- "$dir"
  elif [[ -d $dir && -n $(ls -A -- "$dir") ]]; then
    die "$dir exists, is not empty and was not created by this script"
  fi
  mkdir -p -- "$dir"
  chmod 700 "$dir"
  touch "$dir/$MARKER"
}

# ---------------------------------------------------------------------------
# Subcommands.

cmd_build() {
  ensure_binaries
  log "kube-apiserver ready: $APISERVER_BIN ($("$APISERVER_BIN" --version))"
  log "etcd ready: $ETCD_BIN ($("$ETCD_BIN" --version | head -n 1))"
}

cmd_start() {
  local dir started=$SECONDS
  dir=$(resolve_dir "${1:-}")
  if is_healthy "$dir"; then
    log "control plane already running in $dir ($(apiserver_url "$dir"))"
    return 0
  fi

  ensure_packages openssl curl
  ensure_binaries

  umask 077 # keys, tokens and kubeconfigs are secrets
  prepare_dir "$dir"
  STARTING_DIR=$dir # from here on the EXIT trap stops what we started

  local etcd_port peer_port api_port url
  read -r etcd_port peer_port api_port < <(free_ports 3)
  url=https://127.0.0.1:$api_port

  generate_pki "$dir"
  local admin_token restricted_token
  admin_token=$(openssl rand -hex 32)
  restricted_token=$(openssl rand -hex 32)
  printf '%s\n' "$admin_token" >"$dir/admin.token"
  # token,user,uid,"groups"
  cat >"$dir/tokens.csv" <<EOF
$admin_token,$ADMIN_USER,$ADMIN_USER,"system:masters"
$restricted_token,$RESTRICTED_USER,certpush-operator,"$RESTRICTED_GROUPS"
EOF
  write_kubeconfig "$dir/admin.kubeconfig" "$url" "$dir/ca.crt" certpush-admin "$admin_token"
  write_kubeconfig "$dir/restricted.kubeconfig" "$url" "$dir/ca.crt" certpush-restricted "$restricted_token"

  log "starting etcd on 127.0.0.1:$etcd_port"
  launch "$dir" etcd "$ETCD_BIN" \
    --name=certpush \
    --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="certpush=http://127.0.0.1:$peer_port" \
    --initial-cluster-state=new \
    --logger=zap --log-outputs=stderr
  wait_for "$dir" etcd "etcd /health" etcd_healthy "$etcd_port"

  echo "$etcd_port $api_port" >"$dir/ports"
  launch_apiserver "$dir" "$etcd_port" "$api_port"
  wait_for "$dir" kube-apiserver "namespace default" default_namespace_usable "$dir" "$url"

  # End-to-end check of the generated kubeconfig, CA data included.
  if command -v kubectl >/dev/null; then
    kubectl --kubeconfig "$dir/admin.kubeconfig" get namespace default -o name >/dev/null ||
      fail_with_log "$dir/kube-apiserver.log" "kubectl cannot use $dir/admin.kubeconfig"
  fi

  {
    echo "# source this file to use the control plane in $dir"
    printf 'export KUBECONFIG=%q\n' "$dir/admin.kubeconfig"
    printf 'export CERTPUSH_ADMIN_KUBECONFIG=%q\n' "$dir/admin.kubeconfig"
    printf 'export CERTPUSH_RESTRICTED_KUBECONFIG=%q\n' "$dir/restricted.kubeconfig"
    printf 'export CERTPUSH_APISERVER_URL=%q\n' "$url"
    printf 'export CERTPUSH_CP_DIR=%q\n' "$dir"
  } >"$dir/env"

  STARTING_DIR=""
  log "control plane ready in $((SECONDS - started)) s at $url"
  log "use it with: source $dir/env"
}

# Starts kube-apiserver against the etcd on ETCD_PORT, serving on API_PORT, and waits for /readyz.
launch_apiserver() {
  local dir=$1 etcd_port=$2 api_port=$3 url=https://127.0.0.1:$3
  log "starting kube-apiserver on $url"
  # --endpoint-reconciler-type=none: the "kubernetes" Endpoints cannot hold a
  #   loopback address, so reconciling it would only spam the log.
  # --disable-admission-plugins=ServiceAccount: without kube-controller-manager
  #   no "default" ServiceAccount exists and Pods would be rejected (envtest
  #   does the same).
  launch "$dir" kube-apiserver "$APISERVER_BIN" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$api_port" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --cert-dir="$dir" \
    --tls-cert-file="$dir/serving.crt" \
    --tls-private-key-file="$dir/serving.key" \
    --authorization-mode=RBAC \
    --token-auth-file="$dir/tokens.csv" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$dir/sa.pub" \
    --service-account-signing-key-file="$dir/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --allow-privileged=false \
    --endpoint-reconciler-type=none \
    --disable-admission-plugins=ServiceAccount \
    --profiling=false
  wait_for "$dir" kube-apiserver "/readyz" apiserver_ready "$dir" "$url"
}

# Stops kube-apiserver (TERM, KILL after 5 s) and starts it again on the same port and etcd, for tests of
# clients that must survive an API server restart. etcd keeps running, so nothing stored is lost.
cmd_restart_apiserver() {
  local dir pid etcd_port api_port
  dir=$(resolve_dir "${1:-}")
  [[ -f $dir/env && -f $dir/ports ]] || die "no control plane in $dir (run: $0 start)"
  read -r etcd_port api_port <"$dir/ports"
  pid=$(awk '$1 == "kube-apiserver" {p = $2} END {print p}' "$dir/pids")
  if [[ -n $pid ]] && owns_pid "$dir" "$pid"; then
    # TERM first; an API server still draining long-running watches after 5 s is killed.
    kill -TERM "$pid"
    for _ in {1..50}; do
      owns_pid "$dir" "$pid" || break
      sleep 0.1
    done
    if owns_pid "$dir" "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    for _ in {1..50}; do
      owns_pid "$dir" "$pid" || break
      sleep 0.1
    done
    ! owns_pid "$dir" "$pid" || die "kube-apiserver (pid $pid) did not stop"
  fi
  grep -v '^kube-apiserver ' "$dir/pids" >"$dir/pids.new" || true
  mv "$dir/pids.new" "$dir/pids"
  mv "$dir/kube-apiserver.log" "$dir/kube-apiserver.previous.log"
  launch_apiserver "$dir" "$etcd_port" "$api_port"
  log "kube-apiserver restarted"
}

cmd_stop() {
  local dir
  dir=$(resolve_dir "${1:-}")
  if [[ ! -e $dir ]]; then
    log "nothing to stop in $dir"
    return 0
  fi
  [[ -f $dir/$MARKER ]] || die "$dir was not created by this script; not touching it"
  stop_processes "$dir"
  rm -rf -- "$dir"
  log "stopped; removed $dir"
}

cmd_env() {
  local dir
  dir=$(resolve_dir "${1:-}")
  [[ -f $dir/env ]] || die "no control plane in $dir (run: $0 start)"
  cat "$dir/env"
}

cmd_status() {
  local dir
  dir=$(resolve_dir "${1:-}")
  if is_healthy "$dir"; then
    log "running: $(apiserver_url "$dir") (state in $dir)"
  else
    log "not running (or not ready) in $dir"
    return 1
  fi
}

usage() {
  sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0" >&2
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
  build) (($# == 0)) || die "build takes no arguments"; cmd_build ;;
  start | stop | env | status | restart-apiserver)
    (($# <= 1)) || die "$cmd takes at most one argument (DIR)"
    "cmd_${cmd//-/_}" "$@"
    ;;
  -h | --help | help) usage ;;
  *)
    [[ -z $cmd ]] || log "unknown command: $cmd"
    usage
    exit 2
    ;;
  esac
}

main "$@"
