"""The chart under the Helm 3 CLI most users run (helm.sh/helm/v3, built by tests/tools/build.sh), besides the
Helm 4 engine the other tests use: lint, template (the same objects as Helm 4 renders), and on the test
control plane install of the previous chart version, upgrade to the working tree, and uninstall with the
CRD kept (`crds.keep`)."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from conftest import CHART, PREVIOUS_CHART, tool
from test_install import CRD_NAME, adopt_crd, operator_args

RELEASE = "h3-certpush-operator"  # contains the chart name, so objects are named exactly this
NAMESPACE = "certpush-helm3"


def helm3(*args: str, kubeconfig: str | None = None) -> str:
    command = [str(tool("CERTPUSH_HELM3_BIN")), *args]
    if kubeconfig:
        command += ["--kubeconfig", kubeconfig]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def test_helm3_is_helm3():
    assert helm3("version", "--short").startswith("v3.")
    # Built like a Helm release: its default Kubernetes version is a current one, not 1.20.
    assert "Kubernetes v1.20" not in helm3("template", "x", str(CHART), "--debug")


def test_install_below_the_oldest_supported_kubernetes_is_refused():
    floor = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    minor = int(floor.removeprefix(">=1.").split(".")[0])
    helm3("template", "x", str(CHART), "--kube-version", f"1.{minor}.0")
    proc = subprocess.run(
        [str(tool("CERTPUSH_HELM3_BIN")), "template", "x", str(CHART), "--kube-version", f"1.{minor - 1}.9"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and f"requires kubeVersion: {floor}" in proc.stderr, proc.stderr


def test_lint_is_clean():
    out = helm3("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out, out


@pytest.mark.parametrize("values", [{}, {"scope": "namespace", "podDisruptionBudget": {"enabled": True}}])
def test_template_renders_what_helm4_renders(render, tmp_path, values):
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    out = helm3("template", "certpush-operator", str(CHART), "-n", "certpush-system", "-f", str(values_file))
    helm3_objects = [doc for doc in yaml.safe_load_all(out) if doc]

    def key(o):
        return (o["kind"], o["metadata"]["name"])

    assert sorted(helm3_objects, key=key) == sorted(render(values), key=key)


def test_install_upgrade_and_uninstall_keep_the_crd(kube):
    kube.ensure_namespace(NAMESPACE)
    helm3("uninstall", RELEASE, "-n", NAMESPACE, "--ignore-not-found", kubeconfig=kube.kubeconfig)
    adopt_crd(kube, RELEASE, NAMESPACE)
    # On a fresh control plane the release creates the CRD; after other tests it adopts theirs.
    existing = kube.get("crd", CRD_NAME)

    helm3("install", RELEASE, str(PREVIOUS_CHART), "-n", NAMESPACE, kubeconfig=kube.kubeconfig)
    crd_uid = kube.get("crd", CRD_NAME)["metadata"]["uid"]
    assert existing is None or existing["metadata"]["uid"] == crd_uid, "the install replaced the CRD"
    [listed] = json.loads(helm3("list", "-n", NAMESPACE, "-o", "json", kubeconfig=kube.kubeconfig))
    assert (listed["status"], listed["chart"]) == ("deployed", "certpush-operator-0.1.0")
    # The previous chart predates the health flags: the upgrade below really changes the Deployment.
    assert not any(a.startswith("--unready-after-seconds") for a in operator_args(kube, RELEASE, NAMESPACE))

    helm3("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--set", "concurrency=4", kubeconfig=kube.kubeconfig)
    status = json.loads(helm3("status", RELEASE, "-n", NAMESPACE, "-o", "json", kubeconfig=kube.kubeconfig))
    assert (status["info"]["status"], status["version"]) == ("deployed", 2)
    args = operator_args(kube, RELEASE, NAMESPACE)
    assert "--concurrency=4" in args and "--unready-after-seconds=60" in args

    helm3("uninstall", RELEASE, "-n", NAMESPACE, kubeconfig=kube.kubeconfig)
    assert kube.get("deployment.apps", RELEASE, NAMESPACE) is None
    crd = kube.get("crd", CRD_NAME)
    assert crd is not None and crd["metadata"]["uid"] == crd_uid, "crds.keep must keep the CRD"
