"""The Argo CD health check, run by Argo CD's own Lua VM against its upstream-style fixtures.

Argo CD runs a health check configured in argocd-cm in gopher-lua (Lua 5.1) with only the package, base and
table libraries, the object as the global `obj`, and a one-second deadline; the script returns a table with
`status` and `message`. tests/tools/argocd-health does exactly that with github.com/yuin/gopher-lua and Argo
CD's health_test.yaml format.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, tool

HEALTH_DIR = ROOT / "deploy" / "gitops" / "argocd" / "scm.certpush.dev" / "CertificatePush"
HEALTH_LUA = HEALTH_DIR / "health.lua"
HEALTH_TESTS = HEALTH_DIR / "health_test.yaml"
CASES = yaml.safe_load(HEALTH_TESTS.read_text())["tests"]


def run_health(script: Path, tests: Path) -> dict[str, dict]:
    """inputPath -> {expected, actual, error} for every case of `tests`, evaluated by gopher-lua."""
    out = subprocess.run(
        [str(tool("CERTPUSH_ARGOCD_HEALTH_BIN")), str(script), str(tests)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {r["inputPath"]: r for r in json.loads(out.stdout)}


@pytest.fixture(scope="module")
def results() -> dict[str, dict]:
    return run_health(HEALTH_LUA, HEALTH_TESTS)


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_fixture(results, case):
    result = results[case["inputPath"]]
    assert result.get("error") is None, result["error"]
    assert result["actual"] == case["healthStatus"]


def test_the_harness_has_teeth(tmp_path):
    """A script using a library Argo CD does not open for argocd-cm scripts fails here too, and a wrong
    verdict is reported as such: the harness is not a rubber stamp."""
    uses_string = tmp_path / "health.lua"
    uses_string.write_text('local hs = {}\nhs.status = string.upper("healthy")\nreturn hs\n')
    result = run_health(uses_string, HEALTH_TESTS)[CASES[0]["inputPath"]]
    assert "string" in result["error"], result
    always_healthy = tmp_path / "always.lua"
    always_healthy.write_text('return {status = "Healthy", message = ""}\n')
    results = run_health(always_healthy, HEALTH_TESTS)
    assert any(r["actual"] != r["expected"] for r in results.values())


def test_every_fixture_is_tested_and_every_status_covered():
    used = {c["inputPath"] for c in CASES}
    on_disk = {f"testdata/{p.name}" for p in (HEALTH_DIR / "testdata").glob("*.yaml")}
    assert used == on_disk
    assert {c["healthStatus"]["status"] for c in CASES} == {"Healthy", "Progressing", "Degraded"}


@pytest.mark.parametrize(
    "path, keys",
    [("argocd-cm-patch.yaml", ["data"]), ("argo-cd-values.yaml", ["configs", "cm"])],
)
def test_shipped_argocd_cm_forms_carry_the_script_verbatim(path, keys):
    """The argocd-cm patch and the argo-cd chart values must carry health.lua verbatim, or users install a stale
    check. (tests/helm/test_docs.py applies the patch to a real API server.)"""
    doc = yaml.safe_load((HEALTH_DIR.parents[1] / path).read_text())
    for key in keys:
        doc = doc[key]
    assert doc == {"resource.customizations.health.scm.certpush.dev_CertificatePush": HEALTH_LUA.read_text()}


def test_docs_show_no_whole_argocd_cm():
    """Applying a copy of argocd-cm replaces Argo CD's own settings; the docs patch one key instead."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    for block in re.findall(r"```yaml\n(.*?)```", doc, re.S):
        assert "name: argocd-cm" not in block, block
