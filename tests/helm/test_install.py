"""The chart and the plain manifests on the real control plane (etcd + kube-apiserver, RBAC on).

No kubelet runs there, so Deployments are only stored. To show the installed RBAC is enough, the
operator binary runs on this machine with the installed Deployment's own arguments (only the SCM
endpoint and metrics address swapped for loopback ones) and a kubeconfig that impersonates the
chart's ServiceAccount, so the API server authorizes it exactly as it would the Pod.

The tests run in file order and build on each other (install -> upgrade -> uninstall). They reuse
fixed namespaces and release names: without kube-controller-manager a deleted namespace never goes
away, and reruns on the same control plane must work.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import helm_python as helm
import pytest
import yaml

from conftest import (
    CHART,
    CRD_SOURCE,
    CRD_NAMES,
    MANIFESTS,
    NAMESPACED_OPERATOR_RULES,
    OPERATOR_BIN,
    OPERATOR_RULES,
    PREVIOUS_CHART,
    ROOT,
    SIM_TOKEN,
    Kube,
    Process,
    free_port,
    helm_config,
    parse_manifests,
    rules_of,
    wait_until,
)

CRD = "customresourcedefinition/certificatepushes.scm.certpush.dev"
CRD_NAME = "certificatepushes.scm.certpush.dev"

# Cluster scope: the release and its ServiceAccount in RELEASE_NS, CertificatePushes in APPS_NS.
RELEASE = "helm-certpush-operator"  # contains the chart name, so objects are named exactly this
RELEASE_NS = "certpush-helm"
APPS_NS = "certpush-helm-apps"
SA_USER = f"system:serviceaccount:{RELEASE_NS}:{RELEASE}"

# Namespace scope: release, ServiceAccount and CertificatePushes all in NS_SCOPE_NS.
NS_RELEASE = "ns-certpush-operator"
NS_SCOPE_NS = "certpush-helm-scoped"
NS_SA_USER = f"system:serviceaccount:{NS_SCOPE_NS}:{NS_RELEASE}"

UPGRADE_VALUES = {
    # The objects of these tests name Secrets of APPS_NS (credentialsRef): a Role there, not cluster-wide.
    "rbac": {"secretNamespaces": [APPS_NS]},
    "concurrency": 4,
    "logFormat": "json",
    "podDisruptionBudget": {"enabled": True},
    "networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["127.0.0.1/32"]}},
}


# --- helpers -----------------------------------------------------------------------------------------


def certificate_push(name: str, namespace: str, service: str = "CDN", certificate_id: str = "scs1554192131150") -> dict:
    return {
        "apiVersion": "scm.certpush.dev/v1alpha1",
        "kind": "CertificatePush",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "certificateId": certificate_id,
            "targetService": service,
            "targetProject": "cn-north-4",
            "credentialsRef": {"name": "scm-credentials"},
        },
    }


def fresh_certificate_push(
    kube: Kube, namespace: str, name: str, service: str = "CDN", certificate_id: str = "scs1554192131150"
) -> dict:
    """A new CertificatePush (and its token Secret) with no status left over from an earlier run."""
    kube.ensure_namespace(namespace)
    kube.run("delete", "certificatepush", name, "-n", namespace, "--ignore-not-found", "--wait=true")
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "scm-credentials", "namespace": namespace},
            "stringData": {"token": SIM_TOKEN},
        }
    )
    kube.apply(certificate_push(name, namespace, service, certificate_id))
    return kube.get("certificatepush", name, namespace)


def ready_condition(obj: dict | None) -> dict | None:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), None)


def adopt_crd(kube: Kube, release: str, namespace: str) -> None:
    """Lets `release` take over a CRD created outside it (by the e2e suite's kubectl apply, the plain
    manifests, or another release): Helm refuses to manage objects without its ownership metadata.
    This is the documented Helm adoption path (docs/deploy.md, "Moving from the plain manifests")."""
    crd = kube.get("crd", CRD_NAME)
    if crd is None:
        return
    # Helm 4 applies server-side, as field manager "python" (this process's name under helm-python-sdk). Fields
    # other managers applied (the e2e suite's kubectl, with a newer CRD than the previous chart's) would
    # conflict with a CRD of another version, so Helm's manager first takes them over by applying the CRD
    # that the previous chart installs.
    with helm.Chart.load(str(PREVIOUS_CHART)) as previous:
        objects = parse_manifests(previous.render(None, name=release, namespace=namespace, is_install=True))
    previous_crd = json.dumps(objects.one("CustomResourceDefinition"))
    kube.run("apply", "--server-side", "--force-conflicts", "--field-manager=python", "-f", "-", input=previous_crd)
    # Every CRD the new chart installs and that already exists (the account CRDs are new since the previous chart,
    # but the e2e suite's kubectl may have applied them) is handed to the release.
    for name in CRD_NAMES:
        existing = kube.get("crd", name)
        if existing is None:
            continue
        annotations = existing["metadata"].get("annotations", {})
        if (annotations.get("meta.helm.sh/release-name"), annotations.get("meta.helm.sh/release-namespace")) == (
            release,
            namespace,
        ):
            continue
        kube.run("label", f"customresourcedefinition/{name}", "app.kubernetes.io/managed-by=Helm", "--overwrite")
        kube.run(
            "annotate",
            f"customresourcedefinition/{name}",
            f"meta.helm.sh/release-name={release}",
            f"meta.helm.sh/release-namespace={namespace}",
            "--overwrite",
        )


def assert_objects_exist(kube: Kube, manifest: str) -> list[dict]:
    """Every object of a release manifest exists server-side; returns the stored objects."""
    stored = []
    for obj in parse_manifests({"m.yaml": manifest}):
        kind = f"{obj['kind'].lower()}.{obj['apiVersion'].split('/')[0]}" if "/" in obj["apiVersion"] else obj["kind"]
        live = kube.get(kind, obj["metadata"]["name"], obj["metadata"].get("namespace"))
        assert live is not None, f"{obj['kind']}/{obj['metadata']['name']} was not created"
        stored.append(live)
    return stored


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def operator_args(kube: Kube, deployment: str, namespace: str) -> list[str]:
    pod = kube.get("deployment", deployment, namespace)["spec"]["template"]["spec"]
    return pod["containers"][0]["args"]


def run_operator(kube: Kube, tmp_path: Path, user: str, args: list[str], sim_url: str) -> tuple[Process, str]:
    """The operator with `args` (from an installed Deployment), impersonating `user`; returns the
    process and its metrics URL once /readyz answers 200."""
    kubeconfig = kube.impersonating_kubeconfig(user, tmp_path / "operator.kubeconfig")
    port = free_port()
    local = [a for a in args if not a.startswith(("--scm-endpoint", "--metrics-addr"))]
    local += [f"--scm-endpoint={sim_url}", f"--metrics-addr=127.0.0.1:{port}"]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "KUBECONFIG": str(kubeconfig),
        "RUST_LOG": "info",
        "POD_NAME": "helm-test-operator",
        # scm-sim speaks plain http on loopback.
        "ALLOW_INSECURE_ENDPOINT": "true",
    }
    operator = Process([str(OPERATOR_BIN), *local], tmp_path / "operator.log", env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until("the operator's /readyz", lambda: http_get(f"{base}/readyz")[0] == 200, timeout=30)
    except AssertionError:
        operator.stop()
        raise AssertionError(f"operator never became ready; log:\n{operator.output()}") from None
    return operator, base


def assert_reconciles_to_ready(kube: Kube, namespace: str, name: str, operator: Process, sim: Process) -> None:
    try:
        ready = wait_until(
            f"{namespace}/{name} Ready=True",
            lambda: (c := ready_condition(kube.get("certificatepush", name, namespace))) and c["status"] == "True" and c,
            timeout=30,
        )
    except AssertionError:
        raise AssertionError(f"operator log:\n{operator.output()}") from None
    obj = kube.get("certificatepush", name, namespace)
    assert ready["reason"] == "Pushed"
    assert ready["observedGeneration"] == obj["metadata"]["generation"] == obj["status"]["observedGeneration"]
    # This run's operator did the push: the simulator (new for each test) recorded it.
    calls = json.loads(urllib.request.urlopen(f"{sim.url}/sim/calls", timeout=5).read())
    assert any(
        c["path"] == "/v3/scm/certificates/scs1554192131150/push" and c["status"] < 300 for c in calls
    ), calls
    # The token must never reach the operator's log.
    assert SIM_TOKEN not in operator.output()


# --- plain manifests ---------------------------------------------------------------------------------


def test_plain_manifests_apply_server_side(kube):
    # Server-side apply validates every object against the API server's schemas. --force-conflicts:
    # the e2e suite and earlier runs of these tests may own fields of the shared CRD.
    for directory in (MANIFESTS / "crd", MANIFESTS / "namespace", MANIFESTS):
        kube.run("apply", "-k", str(directory), "--server-side", "--force-conflicts")
    kube.run("wait", "--for=condition=Established", CRD, "--timeout=60s")
    deployment = kube.get("deployment", "certpush-operator", "certpush-system")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["args"][0] == "run"
    assert kube.get("namespace", "certpush-system")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    role = kube.get("clusterrole", "certpush-operator")
    assert rules_of(role) == OPERATOR_RULES
    for name in ("certpush-operator-edit", "certpush-operator-view"):
        assert kube.get("clusterrole", name) is not None
    assert kube.get("service", "certpush-operator-metrics", "certpush-system") is not None
    # The test control plane is 1.30+, so the admission policy is in the manifests it takes.
    for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        assert kube.get(f"{kind}.admissionregistration.k8s.io", "certpush-operator-secret-references") is not None
    user = "system:serviceaccount:certpush-system:certpush-operator"
    assert kube.can_i(user, "watch", "certificatepushes.scm.certpush.dev", "default")
    assert not kube.can_i(user, "create", "secrets", "default")


def test_examples_validate_against_the_installed_crd(kube):
    examples = sorted((ROOT / "deploy" / "examples").glob("*.yaml"))
    docs = [yaml.safe_load(p.read_text()) for p in examples]
    assert {d["spec"]["targetService"] for d in docs if d["kind"] == "CertificatePush"} == {"CDN", "WAF", "ELB"}
    assert any(d["kind"] == "Secret" for d in docs)
    kube.ensure_namespace(APPS_NS)
    args = [a for p in examples for a in ("-f", str(p))]
    # Server-side dry run: the API server validates them against the CRD's schema, nothing is stored.
    out = kube.run("apply", "--dry-run=server", "-n", APPS_NS, *args).stdout
    assert out.count("(server dry run)") == len(examples)


def test_examples_fit_together():
    """A user copies one credentials example and any push example: they must name the same Secret, and every value
    to change is marked REPLACE-ME (push-unknown-certificate.yaml's ID is wrong on purpose)."""
    examples = {p.name: p for p in (ROOT / "deploy" / "examples").rglob("*.yaml")}
    docs = {name: yaml.safe_load(p.read_text()) for name, p in examples.items()}
    credentials = {docs[n]["metadata"]["name"] for n in docs if n.startswith("credentials-")}
    assert len(credentials) == 1, f"the credentials examples name different Secrets: {credentials}"
    pushes = {n: d for n, d in docs.items() if d["kind"] == "CertificatePush"}
    assert {d["spec"]["credentialsRef"]["name"] for d in pushes.values()} == credentials
    tls_secrets = {d["spec"]["secretName"] for d in docs.values() if d["kind"] == "Certificate"}
    assert {d["spec"]["sourceSecretRef"]["name"] for d in pushes.values() if "sourceSecretRef" in d["spec"]} == tls_secrets
    for name, d in pushes.items():
        lines = examples[name].read_text().splitlines()
        placeholders = [f"certificateId: {d['spec']['certificateId']}"] if "certificateId" in d["spec"] else []
        placeholders += [f"id: {r['id']}" for r in d["spec"].get("deploy", {}).get("resources", []) if "id" in r]
        for value in placeholders:
            [line] = [line for line in lines if line.strip().startswith(("- " + value, value))]
            assert "REPLACE-ME" in line or name == "push-unknown-certificate.yaml", f"{name}: {line!r} is not marked"


def test_source_column_shows_the_certificate_or_the_secret(kube):
    """`kubectl get certificatepush` names each object's source, whichever of the two it has."""
    kube.run("apply", "--server-side", "--force-conflicts", "-f", str(CRD_SOURCE))
    kube.run("wait", "--for=condition=Established", CRD, "--timeout=60s")
    kube.ensure_namespace(APPS_NS)
    examples = ROOT / "deploy" / "examples"
    kube.run("apply", "-n", APPS_NS, "-f", str(examples / "push-cdn.yaml"), "-f", str(examples / "push-imported.yaml"))
    table = kube.run("get", "certificatepush", "-n", APPS_NS, "www-example-cdn", "www-example-imported").stdout
    header, *rows = table.splitlines()
    column = header.split().index("SOURCE")
    assert {row.split()[0]: row.split()[column] for row in rows} == {
        "www-example-cdn": "scs1554192131150",
        "www-example-imported": "www-example-tls",
    }, table


# --- Helm: install the previous version, upgrade, run the operator -------------------------------------


@pytest.fixture(scope="module")
def cluster_release(kube):
    """A clean slate for the cluster-scope release (uninstalled by an earlier run, or never there)."""
    with helm_config(kube, RELEASE_NS) as cfg:
        cfg.uninstall(RELEASE, ignore_not_found=True)
        kube.ensure_namespace(RELEASE_NS)
        adopt_crd(kube, RELEASE, RELEASE_NS)
        yield cfg


def test_install_previous_chart_version(kube, cluster_release):
    with helm.Chart.load(str(PREVIOUS_CHART)) as previous:
        release = cluster_release.install(previous, RELEASE, namespace=RELEASE_NS, timeout=120)
    assert release["status"] == "deployed"
    assert release["chart_version"] == previous_version()
    stored = assert_objects_exist(kube, release["manifest"])
    kinds = sorted(o["kind"] for o in stored)
    assert kinds == sorted(
        ["ClusterRole"] * 3
        + ["ClusterRoleBinding", "CustomResourceDefinition", "Deployment", "Service", "ServiceAccount"]
    )
    crd = kube.get("crd", CRD_NAME)
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    kube.run("wait", "--for=condition=Established", CRD, "--timeout=60s")


def previous_version() -> str:
    with helm.Chart.load(str(PREVIOUS_CHART)) as previous:
        return previous.version


def test_upgrade_keeps_crd_and_certificatepushes(kube, cluster_release):
    crd_uid = kube.get("crd", CRD_NAME)["metadata"]["uid"]
    existing = fresh_certificate_push(kube, APPS_NS, "existing-before-upgrade")

    release = cluster_release.upgrade(str(CHART), RELEASE, UPGRADE_VALUES, namespace=RELEASE_NS, timeout=120)
    assert release["status"] == "deployed" and release["revision"] == 2
    assert_objects_exist(kube, release["manifest"])

    assert kube.get("crd", CRD_NAME)["metadata"]["uid"] == crd_uid
    after = kube.get("certificatepush", "existing-before-upgrade", APPS_NS)
    assert after is not None and after["metadata"]["uid"] == existing["metadata"]["uid"]
    # The new CRD defaults deletionPolicy to Retain (applied when the object is read), which changes nothing: it is
    # what an absent deletionPolicy meant.
    assert after["spec"] == {**existing["spec"], "deletionPolicy": "Retain"}

    # The new values reached the server-side objects.
    args = operator_args(kube, RELEASE, RELEASE_NS)
    assert "--concurrency=4" in args and "--log-format=json" in args
    objects = parse_manifests({"m.yaml": release["manifest"]})
    assert objects.one("PodDisruptionBudget")["apiVersion"] == "policy/v1"
    assert kube.get("poddisruptionbudget.policy", RELEASE, RELEASE_NS)["spec"]["maxUnavailable"] == 1
    policy = kube.get("networkpolicy.networking.k8s.io", RELEASE, RELEASE_NS)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # Helm read the admission policy's API from the cluster (1.30+), which `helm template` does not assume.
    admission = objects.one("ValidatingAdmissionPolicy")["metadata"]["name"]
    assert kube.get("validatingadmissionpolicy.admissionregistration.k8s.io", admission) is not None


def pod_from_deployment(kube, name: str, namespace: str) -> dict:
    """A Pod with the pod template of a live Deployment: without kube-controller-manager no ReplicaSet makes one,
    so the test submits it itself."""
    template = kube.get("deployment.apps", name, namespace)["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{name}-admission-check", "namespace": namespace, "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }


def test_operator_pod_is_admitted_under_restricted_pod_security(kube, cluster_release):
    ns = kube.get("namespace", RELEASE_NS)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = pod_from_deployment(kube, RELEASE, RELEASE_NS)
    created = kube.run("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(pod), check=False)
    assert created.returncode == 0, created.stderr
    # The check has teeth: the same Pod made privileged-capable is refused by the same namespace.
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    refused = kube.run("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr


def test_installed_rbac_is_least_privilege(kube):
    role = kube.get("clusterrole", RELEASE)
    assert rules_of(role) == OPERATOR_RULES
    for verb, resource in [
        ("watch", "certificatepushes.scm.certpush.dev"),
        ("patch", "certificatepushes.scm.certpush.dev/status"),
        ("watch", "scmaccounts.scm.certpush.dev"),
        ("list", "secrets"),  # rbac.secretNamespaces lists APPS_NS
        ("create", "events.events.k8s.io"),
    ]:
        assert kube.can_i(SA_USER, verb, resource, APPS_NS), f"needs {verb} {resource}"
    # Secrets of a namespace not listed are out of reach; the release namespace's are read (ClusterSCMAccounts').
    kube.ensure_namespace("certpush-helm-other")
    assert not kube.can_i(SA_USER, "get", "secrets", "certpush-helm-other")
    assert kube.can_i(SA_USER, "list", "secrets", RELEASE_NS)
    for verb, resource in [
        ("create", "secrets"),
        ("update", "secrets"),
        ("update", "certificatepushes.scm.certpush.dev"),
        ("delete", "certificatepushes.scm.certpush.dev"),
        ("get", "configmaps"),
        ("create", "pods"),
        ("create", "events"),  # the core/v1 events API is not needed
    ]:
        assert not kube.can_i(SA_USER, verb, resource, APPS_NS), f"must not {verb} {resource}"


def test_operator_reconciles_as_the_charts_service_account(kube, scm_sim, tmp_path):
    name = "www-example-cdn"
    fresh_certificate_push(kube, APPS_NS, name)
    # Cluster scope watches every namespace; --namespace keeps this run off other tests' objects.
    args = operator_args(kube, RELEASE, RELEASE_NS) + [f"--namespace={APPS_NS}"]
    operator, metrics_url = run_operator(kube, tmp_path, SA_USER, args, scm_sim.url)
    try:
        assert_reconciles_to_ready(kube, APPS_NS, name, operator, scm_sim)
        status, metrics = http_get(f"{metrics_url}/metrics")
        assert status == 200
        assert 'certpush_reconciles_total{result="pushed"}' in metrics
        assert 'certpush_scm_requests_total{operation="push",code="204",error_code=""}' in metrics
        assert http_get(f"{metrics_url}/healthz")[0] == 200
    finally:
        operator.stop()
    # The chart's args were used as rendered: json logs (from the upgrade values) parse as JSON.
    lines = [line for line in operator.output().splitlines() if line.strip()]
    assert lines and all(json.loads(line) for line in lines)


def test_disabling_crds_and_uninstalling_keep_the_crd(kube, cluster_release):
    crd_uid = kube.get("crd", CRD_NAME)["metadata"]["uid"]
    release = cluster_release.upgrade(
        str(CHART), RELEASE, {**UPGRADE_VALUES, "crds": {"enabled": False}}, namespace=RELEASE_NS, timeout=120
    )
    assert "CustomResourceDefinition" not in {o["kind"] for o in parse_manifests({"m.yaml": release["manifest"]})}
    assert kube.get("crd", CRD_NAME)["metadata"]["uid"] == crd_uid

    cluster_release.uninstall(RELEASE, timeout=120)
    assert kube.get("deployment", RELEASE, RELEASE_NS) is None
    assert kube.get("clusterrole", RELEASE) is None
    # helm.sh/resource-policy: keep -> the CRD, and so every CertificatePush, survives.
    assert kube.get("crd", CRD_NAME)["metadata"]["uid"] == crd_uid
    assert kube.get("certificatepush", "existing-before-upgrade", APPS_NS) is not None


# --- Helm: namespace scope ---------------------------------------------------------------------------


def test_namespace_scope_install_reconciles_only_its_namespace(kube, scm_sim, tmp_path):
    kube.ensure_namespace(NS_SCOPE_NS)
    with helm_config(kube, NS_SCOPE_NS) as cfg:
        cfg.uninstall(NS_RELEASE, ignore_not_found=True)
        # The CRD belongs to the cluster-wide install; a namespaced tenant does not manage it.
        values = {"scope": "namespace", "crds": {"enabled": False}, "rbac": {"aggregateClusterRoles": False}}
        release = cfg.install(str(CHART), NS_RELEASE, values, namespace=NS_SCOPE_NS, timeout=120)
    assert release["status"] == "deployed"
    stored = assert_objects_exist(kube, release["manifest"])
    # The operator's Role and RoleBinding, the leader election Lease's and the digest key Secret's; the admission
    # policy, cluster-scoped but bound to this namespace only.
    assert sorted(o["kind"] for o in stored) == [
        "Deployment", "Role", "Role", "Role", "RoleBinding", "RoleBinding", "RoleBinding", "Service", "ServiceAccount",
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    ]  # fmt: skip
    [binding] = [o for o in stored if o["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"] == [NS_SCOPE_NS]
    assert rules_of(kube.get("role.rbac.authorization.k8s.io", NS_RELEASE, NS_SCOPE_NS)) == NAMESPACED_OPERATOR_RULES
    assert kube.get("clusterrole", NS_RELEASE) is None

    assert kube.can_i(NS_SA_USER, "watch", "certificatepushes.scm.certpush.dev", NS_SCOPE_NS)
    assert kube.can_i(NS_SA_USER, "get", "secrets", NS_SCOPE_NS)
    assert not kube.can_i(NS_SA_USER, "watch", "certificatepushes.scm.certpush.dev", APPS_NS)
    assert not kube.can_i(NS_SA_USER, "get", "secrets", APPS_NS)

    args = operator_args(kube, NS_RELEASE, NS_SCOPE_NS)
    assert f"--namespace={NS_SCOPE_NS}" in args
    fresh_certificate_push(kube, NS_SCOPE_NS, "scoped-waf", service="WAF")
    operator, _ = run_operator(kube, tmp_path, NS_SA_USER, args, scm_sim.url)
    try:
        assert_reconciles_to_ready(kube, NS_SCOPE_NS, "scoped-waf", operator, scm_sim)
    finally:
        operator.stop()

