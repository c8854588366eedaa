#!/usr/bin/env bash
# The operator's main job.
# - By default: a local demo. Start a real etcd + kube-apiserver on loopback and scm-sim, install the CRD and
#   RBAC, apply the examples (one fails on purpose; one deploys), run the operator as its ServiceAccount user and
#   show `kubectl get cpush` converging. Everything started here is stopped on exit. It never touches a cluster
#   your kubeconfig points at.
# - With CLUSTER=1 (`make run CLUSTER=1`): run the operator against the kubeconfig's current context, as its
#   identity (both are printed), with the SCM site named by SCM_REGION or SCM_ENDPOINT (one must be set: there is no
#   guessing which site an account is on); extra args are passed to `certpush-operator run`. The CRD must be
#   installed, and no certpush-operator Deployment may run there (CERTPUSH_FORCE=1 overrides).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${CLUSTER:-}" == 1 ]]; then
  if [[ -z "${SCM_REGION:-}" && -z "${SCM_ENDPOINT:-}" ]]; then
    echo "error: say which Huawei Cloud site your SCM account is on: SCM_REGION=cn-north-4 (Chinese mainland)," >&2
    echo "ap-southeast-1 (international), eu-west-101 (Europe) or my-kualalumpur-1; or SCM_ENDPOINT=<base URL>." >&2
    exit 1
  fi
  context=$(kubectl config current-context)
  if ! kubectl get crd certificatepushes.scm.certpush.dev >/dev/null; then
    echo "error: the CertificatePush CRD is not installed in context $context (or this identity cannot read CRDs)." >&2
    echo "Install it: cargo run --quiet -- crd | kubectl apply --server-side -f -" >&2
    echo "Or run the local demo instead: make run" >&2
    exit 1
  fi
  # A second operator without leader election would push every certificate a second time.
  deployed=$(kubectl get deployments --all-namespaces -l app.kubernetes.io/name=certpush-operator \
    -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{" "}{end}' 2>/dev/null || true)
  if [[ -n "$deployed" && "${CERTPUSH_FORCE:-}" != 1 ]]; then
    echo "error: certpush-operator is already deployed in context $context ($deployed); a second one would push" >&2
    echo "every certificate again. Scale it to 0 first, or run this one with its Lease so it stands by:" >&2
    echo "  bash scripts/run.sh --leader-elect --lease-namespace <its namespace>   (with CERTPUSH_FORCE=1)" >&2
    exit 1
  fi
  who=$(kubectl auth whoami -o jsonpath='{.status.userInfo.username}' 2>/dev/null || echo "the kubeconfig's user")
  echo "==> running certpush-operator against context $context as $who; SCM: ${SCM_ENDPOINT:-the site of region $SCM_REGION}"
  exec cargo run --release --locked --bin certpush-operator -- run "$@"
fi

echo "==> starting the local demo (a control plane of its own and scm-sim; \`make run CLUSTER=1\` runs against your cluster)"
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

# A fresh access key pair (the recommended kind of credentials), passed through the environment, not argv. Its
# Secret names no domainId: the operator asks the simulator's IAM (--iam-endpoint) for it, as Huawei's SDK does.
access_key=$(openssl rand -hex 10 | tr 'a-f' 'A-F')
secret_key=$(openssl rand -hex 20)
sim_port=$(free_port)
SCM_SIM_ACCESS_KEYS="$access_key:$secret_key" target/debug/scm-sim --port "$sim_port" >"$work/scm-sim.log" 2>&1 &
pids+=($!)

echo "==> installing the CRD and RBAC"
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established crd/certificatepushes.scm.certpush.dev --timeout=60s
kubectl apply --server-side -f deploy/manifests/namespace/namespace.yaml -f deploy/manifests/rbac.yaml

echo "==> applying the examples in namespace demo"
kubectl create namespace demo
# The examples name Secrets of their own namespace: what the chart's rbac.secretNamespaces [demo] grants (the
# shipped RBAC reads Secrets only in certpush-system, where ClusterSCMAccounts keep theirs).
kubectl -n demo create role certpush-operator-secrets --verb=get,list,watch --resource=secrets
kubectl -n demo create rolebinding certpush-operator-secrets --role=certpush-operator-secrets \
  --serviceaccount=certpush-system:certpush-operator
kubectl -n demo create secret generic scm-credentials --from-literal=accessKey="$access_key" \
  --from-literal=secretKey="$secret_key"
# A TLS Secret as cert-manager would write it (here self-signed with openssl), imported into SCM and pushed.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 90 -subj /CN=www.example.com \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
kubectl -n demo create secret tls www-example-tls --cert="$work/tls.crt" --key="$work/tls.key"
examples=6
# push-elb-deploy.yaml also deploys the imported certificate onto an ELB certificate (the simulator accepts any ID).
kubectl -n demo apply --server-side -f deploy/examples/push-cdn.yaml -f deploy/examples/push-waf.yaml \
  -f deploy/examples/push-elb.yaml -f deploy/examples/push-unknown-certificate.yaml \
  -f deploy/examples/push-imported.yaml -f deploy/examples/push-elb-deploy.yaml

metrics_port=$(free_port)
echo "==> running the operator (as system:serviceaccount:certpush-system:certpush-operator); log: $work/operator.log"
KUBECONFIG="$CERTPUSH_RESTRICTED_KUBECONFIG" target/debug/certpush-operator run \
  --scm-endpoint "http://127.0.0.1:$sim_port" --allow-insecure-endpoint --metrics-addr "127.0.0.1:$metrics_port" \
  --iam-endpoint "http://127.0.0.1:$sim_port" \
  --digest-key-namespace certpush-system --cluster-resource-namespace certpush-system --secret-namespace demo \
  >"$work/operator.log" 2>&1 &
pids+=($!)

settled=false
pending=$examples
for _ in $(seq 1 30); do
  kubectl -n demo get cpush || true
  # Every example must show a final Ready; a failed kubectl counts as not settled.
  if ! ready=$(kubectl -n demo get cpush -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}'); then
    sleep 2
    continue
  fi
  settled_count=$(grep -cE '^(True|False)$' <<<"$ready" || true)
  pending=$((examples - settled_count))
  if ((pending == 0)); then
    settled=true
    break
  fi
  echo "--- $pending not settled yet"
  sleep 2
done

if $settled; then
  echo "==> converged:"
else
  echo "==> NOT converged after 60 s: $pending CertificatePush(es) still without a final Ready; operator log tail:"
  tail -n 30 "$work/operator.log"
fi
kubectl -n demo get cpush -o wide
echo "==> events:"
kubectl -n demo get events.events.k8s.io -o custom-columns=TYPE:.type,REASON:.reason,OBJECT:.regarding.name,NOTE:.note
echo "==> operator metrics:"
curl -fsS "http://127.0.0.1:$metrics_port/metrics" | grep -E '^certpush_(reconciles|scm_requests)_total' || true

$settled || exit 1
if [[ -t 0 ]]; then
  echo "==> the demo keeps running (KUBECONFIG=$KUBECONFIG); press Ctrl-C to stop"
  wait
fi
