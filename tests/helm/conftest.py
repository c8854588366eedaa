"""Shared helpers: render the chart with the real Helm engine, and talk to the test control plane."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "certpush-operator"
CRD_SOURCE = ROOT / "crds" / "certificatepush.yaml"
# Every CRD the operator serves, one file each (CertificatePush first), and the name of each.
CRD_SOURCES = [ROOT / "crds" / f for f in ("certificatepush.yaml", "scmaccount.yaml", "clusterscmaccount.yaml")]
# What `certpush-operator crd` prints: every CRD file, as YAML documents.
CRD_OUTPUT = "---\n".join(p.read_text() for p in CRD_SOURCES)
CRD_NAMES = [
    "certificatepushes.scm.certpush.dev",
    "scmaccounts.scm.certpush.dev",
    "clusterscmaccounts.scm.certpush.dev",
]
MANIFESTS = ROOT / "deploy" / "manifests"
# The chart as released in 0.1.0, for "upgrade from the previous chart version" (see fixtures/README.md).
# Pod Security admission labels of every test namespace.
RESTRICTED_PSS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
PREVIOUS_CHART = Path(__file__).resolve().parent / "fixtures" / "certpush-operator-0.1.0.tgz"
OPERATOR_BIN = ROOT / "target" / "debug" / "certpush-operator"
SIM_BIN = ROOT / "target" / "debug" / "scm-sim"
RELEASE_BIN = ROOT / "target" / "release" / "certpush-operator"

# What the operator needs and nothing else (issue #4), as (apiGroups, resources, verbs) per rule.
_PUSH_RULES = [
    (["scm.certpush.dev"], ["certificatepushes"], ["get", "list", "watch", "patch"]),
    # Status is written with server-side apply (a PATCH) only: no update.
    (["scm.certpush.dev"], ["certificatepushes/status"], ["patch"]),
    (["scm.certpush.dev"], ["scmaccounts"], ["get", "list", "watch"]),
    (["scm.certpush.dev"], ["scmaccounts/status"], ["patch"]),
]
_CLUSTER_ACCOUNT_RULES = [
    (["scm.certpush.dev"], ["clusterscmaccounts"], ["get", "list", "watch"]),
    (["scm.certpush.dev"], ["clusterscmaccounts/status"], ["patch"]),
    ([""], ["namespaces"], ["get"]),
]
_SECRETS_RULE = [([""], ["secrets"], ["get", "list", "watch"])]
_EVENTS_RULE = [(["events.k8s.io"], ["events"], ["create", "patch"])]
# The operator's ClusterRole with `scope: cluster` (the default): no Secret anywhere (a Role in the release namespace
# reads ClusterSCMAccounts' Secrets there, and rbac.secretNamespaces adds others).
OPERATOR_RULES = _PUSH_RULES + _CLUSTER_ACCOUNT_RULES + _EVENTS_RULE
# The same with rbac.secretNamespaces ["*"]: every Secret, read-only, as before accounts existed.
OPERATOR_RULES_ALL_SECRETS = _PUSH_RULES + _CLUSTER_ACCOUNT_RULES + _SECRETS_RULE + _EVENTS_RULE
# The Role in each watched namespace with `scope: namespace(s)`: the Secrets there, no cluster accounts.
NAMESPACED_OPERATOR_RULES = _PUSH_RULES + _SECRETS_RULE + _EVENTS_RULE
# The Role of rbac.secretNamespaces (and the release namespace) with `scope: cluster`.
SECRETS_RULES = _SECRETS_RULE

# The leader election Role in the release namespace (leaderElection.enabled, the default).
LEASE_RULES = [(["coordination.k8s.io"], ["leases"], ["get", "list", "watch", "create", "update", "patch"])]
# The credentials digest key: its one Secret read by name, and created on first start (create cannot be limited
# to a name).
DIGEST_KEY_RULES = [([""], ["secrets"], ["get"]), ([""], ["secrets"], ["create"])]

# 32+ characters, as the operator requires of an IAM token.
SIM_TOKEN = "helm-test-token-0123456789abcdef0123456789"


def tool(variable: str) -> Path:
    """A real tool built by tests/tools/build.sh (tests/helm/run.sh exports where): kstatus, argocd-health, helm 3."""
    path = os.environ.get(variable)
    if not path or not Path(path).is_file():
        pytest.fail(f"{variable} is not set: run the tests through `bash tests/helm/run.sh` (it builds the tools)")
    return Path(path)


def rules_of(role: dict) -> list[tuple[list[str], list[str], list[str]]]:
    return [(r["apiGroups"], r["resources"], r["verbs"]) for r in role["rules"]]


# ---------------------------------------------------------------------------------------------------
# Rendering


@pytest.fixture(scope="session")
def chart() -> helm.Chart:
    with helm.Chart.load(str(CHART)) as loaded:
        yield loaded


class Rendered(list):
    """The objects a render produced, with lookups that fail loudly."""

    def all(self, kind: str) -> list[dict]:
        return [o for o in self if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [o for o in self.all(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
        return found[0]

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self)


# What a cluster running the Prometheus Operator serves (Helm's .Capabilities.APIVersions).
MONITORING_APIS = [
    "monitoring.coreos.com/v1",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
]


# What a Kubernetes 1.30+ cluster serves for the chart's admission policy (Helm's defaults do not list it).
ADMISSION_POLICY_APIS = [
    "admissionregistration.k8s.io/v1",
    "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy",
    "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding",
]


def render_raw(
    chart: helm.Chart,
    values: dict | None = None,
    name: str = "certpush-operator",
    namespace: str = "certpush-system",
    api_versions: list[str] | None = None,
) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included). `api_versions` adds to the capabilities, as
    `helm template --api-versions` does; helm-python's Chart.render does not expose that option of the
    native render call, so it is passed to the call directly."""
    if api_versions is None:
        return chart.render(values, name=name, namespace=namespace, is_install=True)
    from helm_python import _native

    opts = {"name": name, "namespace": namespace, "is_install": True, "api_versions": api_versions}
    values_json = None if values is None else json.dumps(values)
    return json.loads(_native.call_string("helm_render", chart._raw(), values_json, json.dumps(opts)))


def parse_manifests(rendered: dict[str, str]) -> Rendered:
    objects = Rendered()
    for path in sorted(rendered):
        if path.endswith(".yaml"):
            objects.extend(doc for doc in yaml.safe_load_all(rendered[path]) if doc)
    return objects


@pytest.fixture(scope="session")
def render(chart: helm.Chart) -> Callable[..., Rendered]:
    def _render(
        values: dict | None = None,
        name: str = "certpush-operator",
        namespace: str = "certpush-system",
        api_versions: list[str] | None = None,
    ):
        return parse_manifests(render_raw(chart, values, name, namespace, api_versions))

    return _render


def container(objects: Rendered) -> dict:
    pod = objects.one("Deployment")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return pod["containers"][0]


# ---------------------------------------------------------------------------------------------------
# The control plane


class Kube:
    """kubectl as the control plane's admin."""

    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig

    def run(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
        proc = self.run(*args, check=False)
        if proc.returncode != 0:
            assert "NotFound" in proc.stderr, proc.stderr
            return None
        return json.loads(proc.stdout)

    def apply(self, obj: dict | str) -> None:
        text = obj if isinstance(obj, str) else json.dumps(obj)
        self.run("apply", "-f", "-", input=text)

    def ensure_namespace(self, name: str) -> None:
        """Creates `name` (once) with Pod Security admission enforcing the `restricted` profile, as a hardened
        cluster would: whatever the chart runs there must be admissible under it."""
        # Namespaces are reused across runs: without kube-controller-manager a deleted namespace stays
        # Terminating forever.
        if self.get("namespace", name) is None:
            self.run("create", "namespace", name)
        self.run("label", "namespace", name, *[f"{k}={v}" for k, v in RESTRICTED_PSS.items()], "--overwrite")

    def can_i(self, user: str, verb: str, resource: str, namespace: str) -> bool:
        """`resource` may name a subresource as "resource/subresource"."""
        resource, _, sub = resource.partition("/")
        extra = [f"--subresource={sub}"] if sub else []
        proc = self.run("auth", "can-i", verb, resource, *extra, "--as", user, "-n", namespace, check=False)
        return proc.stdout.strip() == "yes"

    def impersonating_kubeconfig(self, user: str, path: Path) -> Path:
        """A copy of the admin kubeconfig whose requests impersonate `user` (`as:`): the API server then
        authorizes every request of the operator against exactly that user's RBAC."""
        config = yaml.safe_load(Path(self.kubeconfig).read_text())
        for entry in config["users"]:
            entry["user"]["as"] = user
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path


@pytest.fixture(scope="session")
def kube() -> Kube:
    kubeconfig = os.environ.get("CERTPUSH_ADMIN_KUBECONFIG")
    if not kubeconfig:
        pytest.fail(
            "CERTPUSH_ADMIN_KUBECONFIG is not set, so the install tests have no cluster. Start one with "
            "`bash tests/e2e/control-plane.sh start DIR && source DIR/env` (or run `make test`).",
            pytrace=False,
        )
    kube = Kube(kubeconfig)
    kube.run("get", "--raw", "/readyz")
    return kube


def helm_config(kube: Kube, namespace: str) -> helm.Config:
    return helm.Config(kubeconfig_path=kube.kubeconfig, namespace=namespace)


# ---------------------------------------------------------------------------------------------------
# Processes: scm-sim and the operator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 30.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as e:  # noqa: BLE001 - reported below if it never succeeds
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class Process:
    """A child process with its output in a file (shown when a test fails)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.handle = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self.handle, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.handle.close()


@pytest.fixture
def scm_sim(tmp_path: Path):
    port = free_port()
    sim = Process([str(SIM_BIN), "--port", str(port), "--token", SIM_TOKEN], tmp_path / "scm-sim.log")
    url = f"http://127.0.0.1:{port}"
    wait_until("scm-sim to listen", lambda: f"listening on {url}" in sim.output(), timeout=15)
    sim.url = url  # type: ignore[attr-defined]
    yield sim
    sim.stop()
