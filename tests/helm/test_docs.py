"""The install paths of README.md, docs/deploy.md and the chart's README, run as written on a real API server.

Every shell block in those files that changes a cluster (kubectl apply/create/patch/label/annotate/delete,
helm install/upgrade/uninstall, make image) must carry a `<!-- doc-test: NAME -->` marker on the line before its
fence; the tests below run the marked blocks verbatim with bash, in the order a user would, each scenario on a
fresh control plane of its own (tests/e2e/control-plane.sh, about 5 s to start), so a path starts from an empty
cluster and shares nothing with the other tests. `helm` is the Helm 3 CLI built by tests/tools/build.sh;
`certpush-operator` is the debug build (the docs' `cargo install --path .` puts the same binary on PATH).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import CHART, CRD_OUTPUT, OPERATOR_BIN, ROOT, SIM_BIN, SIM_TOKEN, Kube, Process, free_port, tool, wait_until

DOCS = [ROOT / "README.md", ROOT / "docs" / "deploy.md", ROOT / "deploy" / "helm" / "certpush-operator" / "README.md"]
MARKER = re.compile(r"^\s*<!-- doc-test: ([a-z0-9-]+) -->$")
CHANGES_A_CLUSTER = re.compile(
    r"\b(kubectl|oc)\b.*\b(apply|create|patch|label|annotate|delete|replace|edit|scale|set|rollout|drain|cordon|taint)\b"
    r"|\bhelm\b.*\b(install|upgrade|uninstall|rollback)\b"
    r"|\bmake image\b|\b(docker|podman) build\b|\bbuildah (bud|build)\b"
)
# Languages of blocks read as shell; a block without one is read as shell too.
SHELL = {"", "sh", "bash", "shell", "console", "shell-session", "zsh"}
IMAGE = "registry.example.com/certpush-operator:0.1.0"
CRD_NAME = "certificatepushes.scm.certpush.dev"


def blocks() -> list[tuple[str, int, str | None, str, str]]:
    """(file, line, marker, language, text) of every fenced block in the docs."""
    out = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            # Fences may be indented (inside a list item); the block's lines lose that indent.
            # Any info string after the language (```sh title=x) still opens a block.
            fence = re.match(r"^(\s*)(?:```|~~~)([\w-]*)[^`]*$", lines[i])
            if not fence:
                i += 1
                continue
            indent = fence.group(1)
            closer = lines[i].strip()[:3]
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(closer))
            marker = MARKER.match(lines[i - 1]) if i > 0 else None
            text = "".join(line.removeprefix(indent) + "\n" for line in lines[i + 1 : end])
            out.append((str(path.relative_to(ROOT)), i + 1, marker.group(1) if marker else None, fence.group(2), text))
            i = end + 1
    return out


def block(name: str) -> str:
    """The block marked `name`; a name used in both files must mark the same text."""
    texts = {text for _, _, marker, _, text in blocks() if marker == name}
    assert len(texts) == 1, f"doc-test {name!r}: expected one text, found {len(texts)}"
    return texts.pop()


def test_every_command_that_changes_a_cluster_is_tested():
    """A new install step in the docs without a test fails here, so no documented path goes unexercised."""
    untested = [
        f"{file}:{line}"
        for file, line, marker, lang, text in blocks()
        # Continuation lines are joined first, so `kubectl -n web \` + `apply ...` reads as one command.
        if lang in SHELL and marker is None and CHANGES_A_CLUSTER.search(text.replace("\\\n", " "))
    ]
    assert not untested, f"shell blocks that change a cluster without a <!-- doc-test: NAME --> marker: {untested}"
    used = {marker for _, _, marker, _, _ in blocks() if marker}
    tested = set(re.findall(r'(?:block|run)\("([a-z0-9-]+)"', Path(__file__).read_text()))
    assert used <= tested, f"markers no test runs: {sorted(used - tested)}"


class Cluster:
    """A fresh control plane, with the docs' commands run against it as its admin."""

    def __init__(self, tmp: Path) -> None:
        # Everything that can fail comes before the control plane starts, so a failure leaves nothing running.
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        (bin_dir / "helm").symlink_to(tool("CERTPUSH_HELM3_BIN"))
        (bin_dir / "certpush-operator").symlink_to(OPERATOR_BIN)
        # The docs' relative paths (deploy/..., ../deploy/manifests from an overlay next to them) resolve in `work`.
        self.work = tmp / "work"
        self.work.mkdir()
        for entry in ("deploy", "crds", "Makefile", "scripts", "Dockerfile", "Cargo.toml", "Cargo.lock", "src"):
            (self.work / entry).symlink_to(ROOT / entry)
        self.env = {
            **os.environ,
            "KUBECONFIG": str(tmp / "cp" / "admin.kubeconfig"),
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "HELM_CACHE_HOME": str(tmp / "helm-cache"),
            "HELM_CONFIG_HOME": str(tmp / "helm-config"),
            "HELM_DATA_HOME": str(tmp / "helm-data"),
            "SCM_ACCESS_KEY": "DOCSTESTACCESSKEY0001",
            "SCM_SECRET_KEY": "docs-test-secret-key-0123456789abcdef0123",
        }
        self.dir = tmp / "cp"
        self.kube = Kube(str(self.dir / "admin.kubeconfig"))
        script = ROOT / "tests" / "e2e" / "control-plane.sh"
        started = subprocess.run(["bash", str(script), "start", str(self.dir)], capture_output=True, text=True)
        assert started.returncode == 0, started.stderr

    def run(self, name: str) -> str:
        """Runs the doc block `name` with bash -euo pipefail; its output on success."""
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block(name)],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, f"doc-test {name} failed:\n{proc.stdout}{proc.stderr}"
        return proc.stdout

    def helm_release(self, release: str, namespace: str) -> dict:
        proc = subprocess.run(
            ["helm", "status", release, "-n", namespace, "-o", "json"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(proc.stdout)

    def stop(self) -> None:
        subprocess.run(["bash", str(ROOT / "tests/e2e/control-plane.sh"), "stop", str(self.dir)], capture_output=True)


@pytest.fixture
def cluster(tmp_path: Path):
    c = Cluster(tmp_path)
    yield c
    c.stop()


def test_helm_install_and_a_first_certificatepush(cluster):
    cluster.run("helm-install")
    kube = cluster.kube
    assert cluster.helm_release("certpush-operator", "certpush-system")["info"]["status"] == "deployed"
    ns = kube.get("namespace", "certpush-system")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = kube.get("deployment", "certpush-operator", "certpush-system")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE

    cluster.run("first-push")
    push = kube.get("certificatepush", "www-example-cdn", "web")
    assert push["spec"]["credentialsRef"]["name"] == "scm-credentials"
    secret = kube.get("secret", "scm-credentials", "web")
    assert set(secret["data"]) == {"accessKey", "secretKey"}

    # docs/deploy.md "Uninstall" with Helm (no operator runs here, and this object has no finalizer).
    cluster.run("uninstall-pushes")
    assert kube.get("certificatepush", "www-example-cdn", "web") is None
    cluster.run("uninstall-helm")
    assert kube.get("deployment", "certpush-operator", "certpush-system") is None
    assert kube.get("crd", CRD_NAME) is not None, "helm uninstall must keep the CRD (crds.keep)"
    cluster.run("uninstall-crd")
    assert kube.get("crd", CRD_NAME) is None
    assert "deletionTimestamp" in kube.get("namespace", "certpush-system")["metadata"]


def test_plain_manifests_then_the_move_to_helm_keeps_everything(cluster):
    kube = cluster.kube
    overlay = cluster.work / "my-overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(block("kustomize-overlay"))
    cluster.run("manifests-install")
    deployment = kube.get("deployment", "certpush-operator", "certpush-system")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE

    cluster.run("first-push")
    # The status the operator would have written; it must survive the move untouched.
    status = {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Pushed",
                "message": "pushed",
                "lastTransitionTime": "2026-11-25T10:00:00Z",
                "observedGeneration": 1,
            }
        ],
    }
    kube.run(
        "-n", "web", "patch", "certificatepush", "www-example-cdn", "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    before = {
        "namespace": kube.get("namespace", "certpush-system")["metadata"]["uid"],
        "crd": kube.get("crd", CRD_NAME)["metadata"]["uid"],
        "push": kube.get("certificatepush", "www-example-cdn", "web"),
    }
    plain = [
        o
        for directory in ("deploy/manifests", "deploy/manifests/crd")
        for o in yaml.safe_load_all(kube.run("kustomize", str(ROOT / directory)).stdout)
        if o
    ]
    key = lambda o: (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))  # noqa: E731
    uids = {key(o): kube.get(*key(o))["metadata"]["uid"] for o in plain}

    cluster.run("migrate-to-helm")

    assert cluster.helm_release("certpush-operator", "certpush-system")["info"]["status"] == "deployed"
    ns = kube.get("namespace", "certpush-system")
    assert ns["metadata"]["uid"] == before["namespace"] and "deletionTimestamp" not in ns["metadata"]
    assert kube.get("crd", CRD_NAME)["metadata"]["uid"] == before["crd"]
    push = kube.get("certificatepush", "www-example-cdn", "web")
    assert push["metadata"]["uid"] == before["push"]["metadata"]["uid"]
    assert push["status"] == before["push"]["status"] == status
    for obj in plain:
        kind, name, namespace = key(obj)
        live = kube.get(kind, name, namespace)
        assert live is not None and live["metadata"]["uid"] == uids[key(obj)], f"{kind}/{name} was replaced"
        annotations = live["metadata"].get("annotations", {})
        if kind == "Namespace":
            assert "meta.helm.sh/release-name" not in annotations, "the release must not own its namespace"
        else:
            assert annotations.get("meta.helm.sh/release-name") == "certpush-operator", f"{kind}/{name}"
    deployment = kube.get("deployment", "certpush-operator", "certpush-system")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE


def test_the_overlay_for_kubernetes_before_1_30_leaves_out_the_admission_policy_only(tmp_path):
    """docs/deploy.md's patches for 1.28 and 1.29 (which do not serve the policy's API), added to the documented
    overlay, drop the admission policy and its binding, and nothing else."""
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")

    def objects(kustomization: str) -> set[tuple[str, str]]:
        overlay = tmp_path / "my-overlay"
        overlay.mkdir(exist_ok=True)
        (overlay / "kustomization.yaml").write_text(kustomization)
        out = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True).stdout
        return {(o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(out) if o}

    name = "certpush-operator-secret-references"
    everything = objects(block("kustomize-overlay"))
    assert {("ValidatingAdmissionPolicy", name), ("ValidatingAdmissionPolicyBinding", name)} <= everything
    before_1_30 = objects(block("kustomize-overlay") + block("kustomize-overlay-before-1-30"))
    assert everything - before_1_30 == {("ValidatingAdmissionPolicy", name), ("ValidatingAdmissionPolicyBinding", name)}


def test_argocd_cm_patch_adds_the_health_check_and_keeps_argocds_settings(cluster):
    kube = cluster.kube
    kube.run("create", "namespace", "argocd")
    # argocd-cm as an Argo CD install leaves it: its label, and settings of its own.
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "argocd-cm",
                "namespace": "argocd",
                "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
            },
            "data": {"url": "https://argocd.example.com", "admin.enabled": "false"},
        }
    )
    cluster.run("argocd-cm-patch")
    cm = kube.get("configmap", "argocd-cm", "argocd")
    assert cm["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd"
    lua = (ROOT / "deploy/gitops/argocd/scm.certpush.dev/CertificatePush/health.lua").read_text()
    assert cm["data"] == {
        "url": "https://argocd.example.com",
        "admin.enabled": "false",
        "resource.customizations.health.scm.certpush.dev_CertificatePush": lua,
    }


def engine() -> str | None:
    """The first container engine that answers, as scripts/image.sh picks it."""
    for name, probe in (("docker", ["docker", "info"]), ("podman", ["podman", "info"]), ("buildah", ["buildah", "info"])):
        if shutil.which(name) and subprocess.run(probe, capture_output=True).returncode == 0:
            return name
    return None


def test_image_builds_and_runs_where_an_engine_answers(tmp_path):
    found = engine()
    if found is None:
        pytest.skip("no container engine answers (docker/podman/buildah info failed): the image is not built here")
    dockerfile = (ROOT / "Dockerfile").read_text()
    rust = re.search(r"^ARG RUST_VERSION=(\S+)", dockerfile, re.M).group(1)
    bases = [b.replace("${RUST_VERSION}", rust) for b in re.findall(r"^FROM (\S+)", dockerfile, re.M)]
    runner = "podman" if found == "buildah" else found
    if not shutil.which(runner):
        pytest.skip(f"{found} builds images but cannot run them, and {runner} is not installed")
    missing = [b for b in bases if subprocess.run([runner, "image", "inspect", b], capture_output=True).returncode]
    if missing:
        pytest.skip(f"base images {missing} are not in the local {found} store, and tests never pull")
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block("image-build")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    help_ = subprocess.run([runner, "run", "--rm", IMAGE, "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "certpush-operator" in help_.stdout, help_.stdout + help_.stderr
    crd = subprocess.run([runner, "run", "--rm", IMAGE, "crd"], capture_output=True, text=True)
    assert crd.stdout == CRD_OUTPUT


def test_running_outside_the_cluster_with_make_run(cluster):
    """`make run CLUSTER=1` runs against the kubeconfig's cluster: it asks which SCM site, refuses clearly without the
    CRD, and after the README's install block starts with the site's endpoint and gets ready."""
    env = {k: v for k, v in cluster.env.items() if k not in ("SCM_ENDPOINT", "SCM_REGION", "CERTPUSH_DEMO")}
    env["CLUSTER"] = "1"
    args = ["bash", str(ROOT / "scripts" / "run.sh"), "--metrics-addr", "127.0.0.1:0"]
    unsaid = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert unsaid.returncode == 1 and "SCM_REGION=cn-north-4" in unsaid.stderr, unsaid.stdout + unsaid.stderr
    env["SCM_REGION"] = "cn-north-4"
    refused = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "CRD is not installed" in refused.stderr and "crd | kubectl apply --server-side" in refused.stderr

    cluster.run("run-outside")
    log = cluster.work / "run.log"
    with open(log, "w") as out:
        # Its own session, so stopping it reaches cargo's child, the operator.
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until("the operator to serve", lambda: "serving /healthz" in log.read_text(), timeout=180)
        text = log.read_text()
        assert "SCM: the site of region cn-north-4" in text, text
        assert "https://scm.cn-north-4.myhuaweicloud.com" in text, text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # With the operator deployed in the cluster, a second one would push everything again: it refuses.
    # (deploy/manifests/namespace/namespace.yaml, applied by the block above, created the namespace.)
    cluster.kube.run("-n", "certpush-system", "create", "deployment", "certpush-operator", "--image=example.invalid/x")
    cluster.kube.run("-n", "certpush-system", "label", "deployment", "certpush-operator",
                     "app.kubernetes.io/name=certpush-operator")  # fmt: skip
    refused = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "already deployed in context" in refused.stderr and "certpush-system/certpush-operator" in refused.stderr


def test_namespace_scope_install_reads_only_its_namespace(cluster):
    cluster.run("namespace-scope")
    kube = cluster.kube
    assert cluster.helm_release("certpush-operator", "team-a")["info"]["status"] == "deployed"
    user = "system:serviceaccount:team-a:certpush-operator"
    kube.run("create", "namespace", "team-b")
    assert kube.can_i(user, "list", "secrets", "team-a")
    assert kube.can_i(user, "patch", "certificatepushes/status", "team-a")
    assert not kube.can_i(user, "list", "secrets", "team-b")
    assert not kube.can_i(user, "list", "certificatepushes", "team-b")


def test_uninstall_in_the_safe_order_leaves_nothing_behind(cluster, tmp_path):
    """docs/deploy.md "Uninstall" on a plain install: the CertificatePushes go first while the operator runs (the
    import of one with deletionPolicy: Delete is deleted from SCM), then the operator without the CRD or the
    Namespace, and the CRD last; a finalizer an operator that is gone left behind is cleared, naming what it leaves."""
    kube = cluster.kube
    overlay = cluster.work / "my-overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(block("kustomize-overlay"))
    cluster.run("manifests-install")
    kube.run("create", "namespace", "web")
    kube.run("-n", "web", "create", "secret", "generic", "scm-credentials", f"--from-literal=token={SIM_TOKEN}")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "90",
         "-subj", "/CN=www.example.com", "-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    kube.run("-n", "web", "create", "secret", "tls", "www-example-tls",
             f"--cert={tmp_path / 'tls.crt'}", f"--key={tmp_path / 'tls.key'}")  # fmt: skip
    examples = ROOT / "deploy" / "examples"
    kube.run("-n", "web", "apply", "-f", str(examples / "push-cdn.yaml"), "-f", str(examples / "push-imported.yaml"))

    port = free_port()
    sim = Process([str(SIM_BIN), "--port", str(port), "--token", SIM_TOKEN], tmp_path / "scm-sim.log")
    sim_url = f"http://127.0.0.1:{port}"
    operator = None
    try:
        wait_until("scm-sim to listen", lambda: f"listening on {sim_url}" in sim.output(), timeout=15)
        operator = Process(
            [str(OPERATOR_BIN), "run", f"--scm-endpoint={sim_url}", "--allow-insecure-endpoint",
             "--metrics-addr=127.0.0.1:0", "--digest-key-namespace=certpush-system"],
            tmp_path / "operator.log", {**cluster.env, "RUST_LOG": "info"},
        )  # fmt: skip
        imported = wait_until(
            "the import to be pushed",
            lambda: (s := kube.get("certificatepush", "www-example-imported", "web").get("status", {})).get("lastPushTime")
            and s["certificateId"],
            timeout=60,
        )
        cluster.run("uninstall-pushes")
        assert kube.run("get", "certificatepushes", "-A", "-o", "name").stdout == ""
        calls = json.loads(subprocess.run(["curl", "-sf", f"{sim_url}/sim/calls"], capture_output=True, check=True).stdout)
        deletes = [(c["path"], c["status"]) for c in calls if c["method"] == "DELETE"]
        assert deletes == [(f"/v3/scm/certificates/{imported}", 204)], f"{deletes}\n{operator.output()}"
    finally:
        for process in (operator, sim):
            if process:
                process.stop()

    # The operator is gone: an object with the finalizer (one it would have cleaned up) stays Terminating.
    kube.apply({
        "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "CertificatePush",
        "metadata": {"name": "stuck", "namespace": "web",
                     "finalizers": ["scm.certpush.dev/delete-imported-certificates"]},
        "spec": {"sourceSecretRef": {"name": "www-example-tls"}, "targetService": "ELB",
                 "targetProject": "ap-southeast-1", "credentialsRef": {"name": "scm-credentials"},
                 "deletionPolicy": "Delete"},
    })  # fmt: skip
    kube.run("-n", "web", "patch", "certificatepush", "stuck", "--subresource=status", "--type=merge",
             "-p", json.dumps({"status": {"certificateId": "scs1700000000001"}}))  # fmt: skip
    kube.run("-n", "web", "delete", "certificatepush", "stuck", "--wait=false")

    cluster.run("uninstall-manifests")
    assert kube.get("deployment", "certpush-operator", "certpush-system") is None
    assert kube.get("clusterrole", "certpush-operator") is None
    assert kube.get("crd", CRD_NAME) is not None, "deleting the operator's kustomization deleted the CRD"
    assert "deletionTimestamp" not in kube.get("namespace", "certpush-system")["metadata"]
    assert "deletionTimestamp" in kube.get("certificatepush", "stuck", "web")["metadata"]

    out = cluster.run("clear-finalizers")
    assert "web/stuck leaves in SCM: scs1700000000001" in out, out
    assert kube.get("certificatepush", "stuck", "web") is None

    cluster.run("uninstall-crd")
    assert kube.get("crd", CRD_NAME) is None


def test_release_quickstart_installs_the_published_chart(cluster, tmp_path):
    """The README's quickstart from a release, run as written against an OCI registry serving the chart packaged and
    pushed as .github/workflows/release.yml does. ghcr.io is out of reach here, so a local Distribution registry
    (tests/tools/build.sh) serves it over TLS, with only the registry host of the block rewritten; the control
    plane's serving certificate (for 127.0.0.1) is the registry's, trusted through SSL_CERT_FILE. No Pod runs on
    the control plane: what is checked is what the API server holds."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    app_version = re.search(r'^version = "(.+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
    port = free_port()
    registry_host = f"127.0.0.1:{port}"
    config = tmp_path / "registry.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "log": {"level": "info"},
                "storage": {"filesystem": {"rootdirectory": str(tmp_path / "registry")}},
                "http": {
                    "addr": registry_host,
                    "secret": "doc-test",
                    "tls": {"certificate": str(cluster.dir / "serving.crt"), "key": str(cluster.dir / "serving.key")},
                },
            }
        )
    )
    registry = Process([str(tool("CERTPUSH_REGISTRY_BIN")), "serve", str(config)], tmp_path / "registry.log")
    env = {**cluster.env, "SSL_CERT_FILE": str(cluster.dir / "ca.crt")}

    def helm(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(["helm", *args], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}{proc.stderr}\n{registry.output()}"
        return proc

    try:
        listening = f"listening on {registry_host}, tls"
        wait_until("the registry to listen", lambda: listening in registry.output(), timeout=15)
        # As the release workflow's chart job: package with the tag's version, push to <registry>/<owner>/charts.
        dist = tmp_path / "dist"
        helm("package", str(CHART), "--app-version", app_version, "--destination", str(dist))
        helm("push", str(dist / f"certpush-operator-{chart['version']}.tgz"), f"oci://{registry_host}/certpush/charts")

        text = block("release-quickstart")
        published = f"oci://ghcr.io/certpush/charts/certpush-operator --version {chart['version']}"
        assert published in text.replace("\\\n", " "), text
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", text.replace("oci://ghcr.io/", f"oci://{registry_host}/")],
            cwd=cluster.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, f"doc-test release-quickstart failed:\n{proc.stdout}{proc.stderr}"
        assert f"Pulled: {registry_host}/certpush/charts/certpush-operator:{chart['version']}" in proc.stderr
    finally:
        registry.stop()

    assert cluster.helm_release("certpush-operator", "certpush-system")["info"]["status"] == "deployed"
    listed = subprocess.run(
        ["helm", "list", "-n", "certpush-system", "-o", "json"], env=env, capture_output=True, text=True, check=True
    )
    [release] = json.loads(listed.stdout)
    assert (release["chart"], release["app_version"]) == (f"certpush-operator-{chart['version']}", app_version)
    kube = cluster.kube
    assert kube.get("crd", CRD_NAME) is not None
    deployment = kube.get("deployment", "certpush-operator", "certpush-system")
    # The image the release workflow publishes for this version.
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/certpush/certpush-operator:{app_version}", image
    secret = kube.get("secret", "scm-credentials", "default")
    assert set(secret["data"]) == {"accessKey", "secretKey"}
    push = kube.get("certificatepush", "www-example-cdn", "default")
    assert push is not None, "the CertificatePush was not created"
    assert push["spec"]["targetService"] == "CDN" and push["spec"]["credentialsRef"]["name"] == "scm-credentials"
