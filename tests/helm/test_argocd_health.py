"""The Argo CD health check, run by real Lua interpreters against its upstream-style fixtures.

Argo CD runs health.lua with gopher-lua (Lua 5.1): the object is the global `obj`, the script returns a
table with `status` and `message`. Lua 5.1 is the dialect that matters; 5.4 guards against relying on
5.1-only behaviour.
"""

from __future__ import annotations

import re
from pathlib import Path

import lupa.lua51
import lupa.lua54
import pytest
import yaml

from conftest import ROOT

HEALTH_DIR = ROOT / "deploy" / "gitops" / "argocd" / "scm.certpush.dev" / "CertificatePush"
HEALTH_LUA = HEALTH_DIR / "health.lua"
CASES = yaml.safe_load((HEALTH_DIR / "health_test.yaml").read_text())["tests"]
RUNTIMES = {"lua5.1": lupa.lua51.LuaRuntime, "lua5.4": lupa.lua54.LuaRuntime}


def to_lua(lua, value):
    """JSON-like Python data as Lua tables (lists 1-based), as Argo CD hands the object to Lua."""
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([to_lua(lua, v) for v in value])
    return value


def health(runtime: str, obj: dict) -> dict:
    lua = RUNTIMES[runtime](unpack_returned_tuples=True)
    lua.globals().obj = to_lua(lua, obj)
    result = lua.execute(HEALTH_LUA.read_text())
    return dict(result.items())


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_fixture(runtime, case):
    obj = yaml.safe_load((HEALTH_DIR / case["inputPath"]).read_text())
    assert health(runtime, obj) == case["healthStatus"]


def test_every_fixture_is_tested_and_every_status_covered():
    used = {c["inputPath"] for c in CASES}
    on_disk = {f"testdata/{p.name}" for p in (HEALTH_DIR / "testdata").glob("*.yaml")}
    assert used == on_disk
    assert {c["healthStatus"]["status"] for c in CASES} == {"Healthy", "Progressing", "Degraded"}


def test_docs_snippet_is_the_shipped_script():
    """docs/deploy.md's argocd-cm snippet must carry health.lua verbatim, or users copy a stale check."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "argocd-cm" in b]
    assert len(blocks) == 1, "expected one argocd-cm snippet in docs/deploy.md"
    configmap = blocks[0]
    assert (configmap["kind"], configmap["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    key = "resource.customizations.health.scm.certpush.dev_CertificatePush"
    assert configmap["data"][key] == HEALTH_LUA.read_text()
