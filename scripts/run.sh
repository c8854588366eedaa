#!/usr/bin/env bash
# The operator's main job.
# - With KUBECONFIG (or ~/.kube/config) and SCM_ENDPOINT set: run the operator against them (extra args are
#   passed to `certpush-operator run`).
# - Otherwise: a local demo. Start a real etcd + kube-apiserver on loopback and scm-sim, install the CRD and
#   RBAC, apply the examples (one fails on purpose), run the operator as its ServiceAccount user and show
#   `kubectl get cpush` converging. Everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${SCM_ENDPOINT:-}" && ( -n "${KUBECONFIG:-}" || -f "$HOME/.kube/config" ) ]]; then
  echo "==> running certpush-operator against $(kubectl config current-context) and $SCM_ENDPOINT"
  exec cargo run --release --locked --bin certpush-operator -- run "$@"
fi

echo "==> no KUBECONFIG + SCM_ENDPOINT configured: starting the local demo"
cargo build --locked --bins
work=$(mktemp -d "${TMPDIR:-/tmp}/certpush-demo.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  bash tests/e2e/control-plane.sh stop "$work/cp" >/dev/null 2>&1 || true
  echo "==> stopped; logs were in $work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

bash tests/e2e/control-plane.sh start "$work/cp"
# shellcheck disable=SC1091
source "$work/cp/env"
export KUBECONFIG

# A fresh access key pair (the recommended kind of credentials), passed through the environment, not argv.
access_key=$(openssl rand -hex 10 | tr 'a-f' 'A-F')
secret_key=$(openssl rand -hex 20)
sim_port=$(free_port)
SCM_SIM_ACCESS_KEYS="$access_key:$secret_key" target/debug/scm-sim --port "$sim_port" >"$work/scm-sim.log" 2>&1 &
pids+=($!)

echo "==> installing the CRD and RBAC"
kubectl apply --server-side -f crds/certificatepush.yaml
kubectl wait --for=condition=Established crd/certificatepushes.scm.certpush.dev --timeout=60s
kubectl apply -f deploy/manifests/rbac.yaml

echo "==> applying the examples in namespace demo"
kubectl create namespace demo
kubectl -n demo create secret generic scm-credentials --from-literal=accessKey="$access_key" \
  --from-literal=secretKey="$secret_key"
# A TLS Secret as cert-manager would write it (here self-signed with openssl), imported into SCM and pushed.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 90 -subj /CN=www.example.com \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
kubectl -n demo create secret tls www-example-tls --cert="$work/tls.crt" --key="$work/tls.key"
kubectl -n demo apply -f deploy/examples/push-cdn.yaml -f deploy/examples/push-waf.yaml \
  -f deploy/examples/push-elb.yaml -f deploy/examples/push-unknown-certificate.yaml \
  -f deploy/examples/push-imported.yaml

metrics_port=$(free_port)
echo "==> running the operator (as system:serviceaccount:certpush-system:certpush-operator); log: $work/operator.log"
KUBECONFIG="$CERTPUSH_RESTRICTED_KUBECONFIG" target/debug/certpush-operator run \
  --scm-endpoint "http://127.0.0.1:$sim_port" --metrics-addr "127.0.0.1:$metrics_port" >"$work/operator.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 30); do
  kubectl -n demo get cpush
  pending=$(kubectl -n demo get cpush -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -cvE '^(True|False)$' || true)
  [[ "$pending" == "0" ]] && break
  echo "--- $pending not settled yet"
  sleep 2
done

echo "==> converged:"
kubectl -n demo get cpush -o wide
echo "==> events:"
kubectl -n demo get events.events.k8s.io -o custom-columns=TYPE:.type,REASON:.reason,OBJECT:.regarding.name,NOTE:.note
echo "==> operator metrics:"
curl -fsS "http://127.0.0.1:$metrics_port/metrics" | grep -E '^certpush_(reconciles|scm_requests)_total' || true

if [[ -t 0 ]]; then
  echo "==> the demo keeps running (KUBECONFIG=$KUBECONFIG); press Ctrl-C to stop"
  wait
fi
