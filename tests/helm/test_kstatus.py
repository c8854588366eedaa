"""Flux health of CertificatePush: kstatus' verdict on the Argo CD fixtures and on live objects.

Flux's kustomize-controller judges the health of objects it applies (`spec.wait`, `spec.healthChecks`)
with kstatus, the Go package sigs.k8s.io/cli-utils/pkg/kstatus. `kstatus()` below runs that library itself
(tests/tools/kstatus, built from its Go module by tests/tools/build.sh) on the object.

The rule cases pin down the behaviour the operator's conditions rely on, as the library's README documents
it: deletion is Terminating; `observedGeneration` other than `generation` is InProgress; `Reconciling=True`
is InProgress and `Stalled=True` Failed; the `Ready` condition as a fallback; otherwise Current.

The fixture test checks the verdict on every Argo CD health fixture against the table in
docs/deploy.md ("## GitOps health"). The live test runs the real operator (with the chart's
namespace-scope RBAC, impersonated as in test_install.py) and scm-sim on the test control plane,
records every version of its CertificatePushes with a watch, and checks what Flux would have seen.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import CRD_SOURCE, ROOT, Kube, Process, container, tool, wait_until
from test_install import CRD, CRD_NAME, fresh_certificate_push, ready_condition, run_operator

HEALTH_DIR = ROOT / "deploy" / "gitops" / "argocd" / "scm.certpush.dev" / "CertificatePush"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

# --- kstatus itself ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KStatus:
    status: str  # InProgress, Failed, Current or Terminating
    message: str


def kstatus(obj: dict) -> KStatus:
    """kstatus' verdict on one object, computed by the library (sigs.k8s.io/cli-utils/pkg/kstatus/status)."""
    out = subprocess.run(
        [str(tool("CERTPUSH_KSTATUS_BIN"))], input=json.dumps([obj]), capture_output=True, text=True, check=True
    )
    verdict = json.loads(out.stdout)[0]
    return KStatus(verdict["status"], verdict["message"])


def cr(generation: int = 1, observed: int | None = None, conditions: list | None = None, **metadata) -> dict:
    obj: dict = {"apiVersion": "scm.certpush.dev/v1alpha1", "kind": "CertificatePush"}
    obj["metadata"] = {"name": "x", "generation": generation, **metadata}
    if observed is not None or conditions is not None:
        obj["status"] = {"conditions": conditions or []}
        if observed is not None:
            obj["status"]["observedGeneration"] = observed
    return obj


def cond(type_: str, status: str) -> dict:
    return {"type": type_, "status": status, "reason": "R", "message": "m"}


# One object per documented rule, and for the order between the rules.
RULE_CASES = {
    "deletion beats everything": (
        cr(2, 1, [cond("Stalled", "True")], deletionTimestamp="2025-11-23T09:00:00Z"),
        "Terminating",
    ),
    "generation lag beats Stalled": (cr(2, 1, [cond("Stalled", "True")]), "InProgress"),
    "generation lag beats Ready=True": (cr(2, 1, [cond("Ready", "True")]), "InProgress"),
    "observedGeneration ahead is also a mismatch": (cr(1, 2, [cond("Ready", "True")]), "InProgress"),
    "no observedGeneration skips the generation check": (cr(5, None, [cond("Ready", "True")]), "Current"),
    "Reconciling=True": (cr(1, 1, [cond("Ready", "True"), cond("Reconciling", "True")]), "InProgress"),
    "Stalled=True beats Ready": (cr(1, 1, [cond("Ready", "True"), cond("Stalled", "True")]), "Failed"),
    "the first of Reconciling/Stalled decides": (
        cr(1, 1, [cond("Stalled", "True"), cond("Reconciling", "True")]),
        "Failed",
    ),
    "Reconciling=False and Stalled=False are normal": (
        cr(1, 1, [cond("Reconciling", "False"), cond("Stalled", "False")]),
        "Current",
    ),
    "Ready=False fallback": (cr(1, 1, [cond("Ready", "False")]), "InProgress"),
    "Ready=Unknown fallback": (cr(1, 1, [cond("Ready", "Unknown")]), "InProgress"),
    "no status": (cr(1), "Current"),
    "unknown conditions only": (cr(1, 1, [cond("Synced", "False")]), "Current"),
}


@pytest.mark.parametrize("case", sorted(RULE_CASES))
def test_kstatus_rules(case):
    obj, expected = RULE_CASES[case]
    assert kstatus(obj).status == expected


# --- the Argo CD fixtures against docs/deploy.md's table -----------------------------------------------

# Per fixture: the table row (its "State" cell) that describes it, and kstatus' verdict on it.
FIXTURES = {
    "no-status.yaml": ("No status yet", "Current"),
    "stale-generation.yaml": ("Spec changed, not yet seen (`observedGeneration` < `generation`)", "InProgress"),
    "pending.yaml": ("Push pending", "InProgress"),
    "retrying.yaml": ("Transient failure, retry scheduled", "InProgress"),
    "stalled.yaml": ("Failure that needs a human (bad token, unknown certificate, rejected push)", "Failed"),
    "healthy.yaml": ("Pushed", "Current"),
    "ready-false.yaml": ("Ready=False without Stalled or Reconciling (never written by this operator)", "InProgress"),
    "ready-unknown.yaml": ("Ready=Unknown without Reconciling (never written by this operator)", "InProgress"),
    "stale-condition.yaml": (
        "Ready from an older generation, `status.observedGeneration` current (never written by this operator)",
        "Current",
    ),
}


def gitops_table() -> dict[str, dict[str, str]]:
    """docs/deploy.md's "## GitOps health" table: State cell -> {column header: cell}."""
    section = DEPLOY_DOC.read_text().split("\n## GitOps health\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]

    def split(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    header = split(rows[0])
    assert set(rows[1]) <= set("|- "), "the table's second line must be its separator"
    table = {}
    for line in rows[2:]:
        cells = split(line)
        assert len(cells) == len(header), line
        table[cells[0]] = dict(zip(header, cells))
    return table


def flux_cell(row: dict[str, str]) -> str:
    """The Flux column without remarks such as "(see below)"."""
    return re.sub(r"\s*\(.*\)$", "", row["Flux (kstatus)"])


def test_every_fixture_has_an_expectation():
    on_disk = {p.name for p in (HEALTH_DIR / "testdata").glob("*.yaml")}
    assert on_disk == set(FIXTURES), "add the new fixture's table row and kstatus verdict to FIXTURES"


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_fixture_kstatus(fixture):
    state, expected = FIXTURES[fixture]
    obj = yaml.safe_load((HEALTH_DIR / "testdata" / fixture).read_text())
    assert kstatus(obj).status == expected
    row = gitops_table().get(state)
    assert row is not None, f"docs/deploy.md's GitOps table has no row {state!r}"
    assert flux_cell(row) == expected


def test_table_rows_match_the_fixtures():
    """Every row of the table is backed by a fixture, and its Argo CD column by health_test.yaml."""
    table = gitops_table()
    assert set(table) == {state for state, _ in FIXTURES.values()}
    argocd = {
        Path(c["inputPath"]).name: c["healthStatus"]["status"]
        for c in yaml.safe_load((HEALTH_DIR / "health_test.yaml").read_text())["tests"]
    }
    for fixture, (state, _) in FIXTURES.items():
        assert table[state]["Argo CD (health.lua)"] == argocd[fixture], state


# --- live: the operator's own status, read back from the API server ------------------------------------

NAMESPACE = "kstatus-e2e"
PUSHED = "kstatus-pushed"
STALLED = "kstatus-stalled"
RETRYING = "kstatus-retrying"
UNKNOWN_CERTIFICATE = "scs0000000000404"  # not among scm-sim's certificates: 404 SCM.0021
FAULTY_CERTIFICATE = "scs1481110651012"  # known to scm-sim; its pushes get an injected 503


def operator_rbac_and_args(kube: Kube, render) -> tuple[str, list[str]]:
    """Applies the chart's namespace-scope ServiceAccount, Role and RoleBinding for NAMESPACE; returns
    the ServiceAccount's user name and the rendered Deployment's operator arguments."""
    values = {"scope": "namespace", "crds": {"enabled": False}, "rbac": {"aggregateClusterRoles": False}}
    objects = render(values, name="kstatus", namespace=NAMESPACE)
    # The operator's Role and, for leader election (on by default), the Lease's.
    for obj in objects.all("ServiceAccount") + objects.all("Role") + objects.all("RoleBinding"):
        kube.run("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(obj))
    account = objects.one("ServiceAccount")["metadata"]["name"]
    args = container(objects)["args"]
    assert f"--namespace={NAMESPACE}" in args
    return f"system:serviceaccount:{NAMESPACE}:{account}", args


def inject_fault(sim_url: str, fault: dict) -> None:
    request = urllib.request.Request(
        f"{sim_url}/sim/faults",
        data=json.dumps(fault).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 204


def watched(watch: Process, complete: bool = False) -> list[dict]:
    """The objects `kubectl get -w -o json` printed so far: one JSON document per version. While the
    watch runs the last document may still be being written; once it has stopped (`complete`), all
    of the output must parse."""
    text, decoder, objects, at = watch.output(), json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return objects
        try:
            obj, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            if complete:
                raise AssertionError(f"unexpected kubectl watch output:\n{text}") from None
            return objects
        objects.append(obj)


def history(versions: list[dict], name: str) -> list[str]:
    """kstatus of each version of `name`, consecutive repeats merged."""
    verdicts: list[str] = []
    for obj in versions:
        if obj["metadata"]["name"] == name:
            verdict = kstatus(obj).status
            if not verdicts or verdicts[-1] != verdict:
                verdicts.append(verdict)
    return verdicts


def reason(kube: Kube, name: str) -> tuple[str, str] | None:
    obj = kube.get("certificatepush", name, NAMESPACE)
    ready = ready_condition(obj)
    if ready is None or ready.get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    return ready["status"], ready["reason"]


def test_live_kstatus_of_operator_status(kube, render, scm_sim, tmp_path):
    kube.ensure_namespace(NAMESPACE)
    if kube.get("crd", CRD_NAME) is None:  # run alone on a fresh control plane
        kube.run("apply", "--server-side", "-f", str(CRD_SOURCE))
        kube.run("wait", "--for=condition=Established", CRD, "--timeout=60s")
    user, args = operator_rbac_and_args(kube, render)
    fresh_certificate_push(kube, NAMESPACE, PUSHED)
    fresh_certificate_push(kube, NAMESPACE, STALLED, certificate_id=UNKNOWN_CERTIFICATE)
    fresh_certificate_push(kube, NAMESPACE, RETRYING, certificate_id=FAULTY_CERTIFICATE)
    # Many more failures than retries fit into this test (the first retry is 5 s after the first push).
    inject_fault(
        scm_sim.url,
        {
            "certificate_id": FAULTY_CERTIFICATE,
            "times": 1000,
            "action": "error",
            "status": 503,
            "error_code": "APIGW.0613",
            "error_msg": "service unavailable",
        },
    )

    # Every version of the three objects from here on, as Flux's poller could see them.
    watch = Process(
        ["kubectl", "--kubeconfig", kube.kubeconfig, "get", "certificatepushes", "-n", NAMESPACE, "-w", "-o", "json"],
        tmp_path / "watch.json",
    )
    operator = None
    try:
        wait_until("the watch to list the CertificatePushes", lambda: len(watched(watch)) >= 3, timeout=15)
        operator, _ = run_operator(kube, tmp_path, user, args, scm_sim.url)

        # (a) pushed, (b) unknown certificate, (c) 503 with a retry scheduled.
        settled = {
            PUSHED: ("True", "Pushed"),
            STALLED: ("False", "CertificateNotFound"),
            RETRYING: ("False", "Retrying"),
        }
        try:
            wait_until(
                "the three CertificatePushes to settle",
                lambda: all(reason(kube, name) == want for name, want in settled.items()),
                timeout=20,
            )
        except AssertionError as e:
            raise AssertionError(f"{e}\noperator log:\n{operator.output()}") from None
        for name, expected in [(PUSHED, "Current"), (STALLED, "Failed"), (RETRYING, "InProgress")]:
            live = kube.get("certificatepush", name, NAMESPACE)
            assert kstatus(live).status == expected, (name, live["status"])
        calls = json.loads(urllib.request.urlopen(f"{scm_sim.url}/sim/calls", timeout=5).read())
        # The push, or the expiry read before it (whose 404 answers for the push of an unknown certificate).
        answers = {(c["certificate_id"], c["status"]) for c in calls if c.get("certificate_id")}
        assert (UNKNOWN_CERTIFICATE, 404) in answers and (FAULTY_CERTIFICATE, 503) in answers, answers
        assert (FAULTY_CERTIFICATE, 204) not in answers, answers

        # (d) a spec change: InProgress until the operator has pushed the new generation.
        edited = json.loads(
            kube.run(
                "patch", "certificatepush", PUSHED, "-n", NAMESPACE, "--type=merge", "-o", "json",
                "-p", json.dumps({"spec": {"targetProject": "cn-east-3"}}),
            ).stdout
        )
        generation = edited["metadata"]["generation"]
        assert generation == 2
        wait_until(
            f"{PUSHED} to be pushed for generation {generation}", lambda: reason(kube, PUSHED) == ("True", "Pushed")
        )
        final = kube.get("certificatepush", PUSHED, NAMESPACE)
        assert "cn-east-3" in ready_condition(final)["message"]
        assert kstatus(final).status == "Current"
        rv = final["metadata"]["resourceVersion"]
        wait_until(
            "the watch to see the final version",
            lambda: any(o["metadata"]["resourceVersion"] == rv for o in watched(watch)),
            timeout=10,
        )
    finally:
        if operator is not None:
            operator.stop()
        watch.stop()
    versions = watched(watch, complete=True)

    # What Flux would have seen, version by version. The first Current is the documented gap: no
    # status yet. The operator writes Ready=Unknown/Pending only when a push is still running after
    # 1 s, so these quick first attempts go straight to their outcome; after that an object is
    # Current only once pushed (the spec edit is InProgress until its push).
    assert history(versions, PUSHED) == ["Current", "InProgress", "Current"]
    assert history(versions, STALLED) == ["Current", "Failed"]
    assert history(versions, RETRYING) == ["Current", "InProgress"]
    for obj in versions:
        if kstatus(obj).status != "Current" or "status" not in obj:
            continue
        ready = ready_condition(obj)
        current = obj["metadata"]["generation"]
        assert obj["status"]["observedGeneration"] == current, obj
        assert ready["status"] == "True" and ready["observedGeneration"] == current, obj
    # The edit itself was seen as InProgress: the old status (observedGeneration 1) with generation 2.
    lagging = [
        o
        for o in versions
        if o["metadata"]["name"] == PUSHED
        and o["metadata"]["generation"] == 2
        and o["status"]["observedGeneration"] == 1
    ]
    assert lagging and all(kstatus(o).status == "InProgress" for o in lagging)
