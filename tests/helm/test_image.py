"""The container image, as far as it can be checked without a Docker engine.

What is checked: the Dockerfile's runtime contract against the chart (user, entrypoint, arguments,
base image), that the Docker build context holds everything the build needs, and that the release
binary, built with the Dockerfile's cargo command by run.sh, runs without a cluster and only needs
libraries the distroless cc-debian12 base ships. What is not: building or running the image itself.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import CRD_OUTPUT, RELEASE_BIN, ROOT, container

DOCKERFILE = (ROOT / "Dockerfile").read_text()
# Final stage base: glibc 2.36 (Debian 12), libgcc_s, CA certificates; nothing else.
DISTROLESS = "gcr.io/distroless/cc-debian12:nonroot"
DISTROLESS_GLIBC = (2, 36)
DISTROLESS_LIBS = {
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions(DOCKERFILE)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


@pytest.fixture(scope="module")
def release_bin() -> Path:
    assert RELEASE_BIN.is_file(), (
        f"{RELEASE_BIN} is missing: run the tests with `bash tests/helm/run.sh`, which builds it with "
        "the Dockerfile's `cargo build --release --locked --bin certpush-operator`"
    )
    return RELEASE_BIN


# --- the Dockerfile against the chart ----------------------------------------------------------------


DIGEST = re.compile(r"@sha256:[0-9a-f]{64}( |$)")


def test_every_base_image_is_pinned_by_digest():
    """A tag can be moved to other bytes; a digest cannot. Every FROM names its image by digest."""
    froms = [a for word, a in instructions(DOCKERFILE) if word == "FROM"]
    assert froms and all(DIGEST.search(a) for a in froms), froms


def test_final_stage_is_distroless_nonroot():
    stage = final_stage()
    word, image = stage[0]
    assert word == "FROM" and image.startswith(f"{DISTROLESS}@sha256:"), image
    assert ("USER", "65532:65532") in stage


def test_user_and_entrypoint_match_the_chart(render):
    stage = dict(final_stage())
    uid, gid = (int(x) for x in stage["USER"].split(":"))
    objects = render()
    pod = objects.one("Deployment")["spec"]["template"]["spec"]
    c = container(objects)
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
    assert (c["securityContext"]["runAsUser"], c["securityContext"]["runAsGroup"]) == (uid, gid)
    # The chart sets no command, so the image's ENTRYPOINT runs, with the chart's args replacing CMD.
    assert json.loads(stage["ENTRYPOINT"]) == ["/certpush-operator"]
    assert "command" not in c
    assert json.loads(stage["CMD"]) == ["run"] == c["args"][:1]
    assert stage["EXPOSE"] == str(c["ports"][0]["containerPort"])
    assert ("COPY", "--from=builder /out/certpush-operator /certpush-operator") in final_stage()


def test_builder_matches_the_runtime_and_the_crate():
    steps = instructions(DOCKERFILE)
    args = dict(a.split("=", 1) for word, a in steps if word == "ARG" and "=" in a)
    builder = next(a for word, a in steps if word == "FROM")
    # bookworm = Debian 12
    assert builder.startswith("docker.io/library/rust:${RUST_VERSION}-bookworm@sha256:") and builder.endswith(" AS builder")
    rust = tuple(int(x) for x in args["RUST_VERSION"].split("."))
    msrv = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["rust-version"]
    assert rust >= tuple(int(x) for x in msrv.split(".")), "the builder's Rust is older than rust-version"
    # The same command run.sh uses to build the binary the tests below run.
    assert "cargo build --release --locked --bin certpush-operator" in DOCKERFILE
    assert "cargo build --quiet --locked --release --bin certpush-operator" in (ROOT / "tests/helm/run.sh").read_text()


def docker_context() -> list[str]:
    """Files of the repository that .dockerignore lets into the build context (git-tracked or not)."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    kept = []
    for path in files:
        included = True
        for pattern in patterns:  # last match wins, as in Docker
            negate = pattern.startswith("!")
            pat = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
                included = negate
        if included:
            kept.append(path)
    return kept


def test_build_context_holds_what_the_build_needs(tmp_path):
    context = docker_context()
    assert {"Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"} <= set(context)
    assert not [p for p in context if p.startswith(("target/", "tests/", "deploy/", ".git"))]
    # The manifest and lockfile resolve from the context alone, unchanged (`--locked`), for the one
    # target the image is built for (other platforms' crates are never downloaded here).
    for path in context:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    proc = subprocess.run(
        ["cargo", "metadata", "--locked", "--offline", "--format-version", "1"]
        + ["--filter-platform", "x86_64-unknown-linux-gnu"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


# --- the release binary ------------------------------------------------------------------------------


def test_release_binary_needs_only_what_distroless_cc_ships(release_bin):
    dynamic = subprocess.run(["readelf", "-d", str(release_bin)], capture_output=True, text=True, check=True).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic))
    assert needed and needed <= DISTROLESS_LIBS, needed - DISTROLESS_LIBS
    symbols = subprocess.run(["objdump", "-T", str(release_bin)], capture_output=True, text=True, check=True).stdout
    newest = max(tuple(int(x) for x in v.split(".")) for v in re.findall(r"GLIBC_(\d+\.\d+(?:\.\d+)?)", symbols))
    assert newest[:2] <= DISTROLESS_GLIBC, f"needs GLIBC_{newest}, distroless cc-debian12 has 2.36"


def test_release_binary_help_and_version(release_bin):
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]
    version = subprocess.run([str(release_bin), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.strip() == f"certpush-operator {cargo['version']}"
    top = subprocess.run([str(release_bin), "--help"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^\s+run\s", top, re.M) and re.search(r"^\s+crd\s", top, re.M)
    run_help = subprocess.run([str(release_bin), "run", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--scm-endpoint", "--scm-ca-file", "--namespace", "--concurrency", "--log-format", "--metrics-addr"):
        assert flag in run_help


def test_release_binary_prints_the_crd_without_a_cluster(release_bin, tmp_path):
    proc = subprocess.run(
        [str(release_bin), "crd"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},  # no kubeconfig anywhere
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == CRD_OUTPUT
    assert [d["kind"] for d in yaml.safe_load_all(proc.stdout)] == ["CustomResourceDefinition"] * 3


def test_release_binary_run_fails_cleanly_without_a_cluster(release_bin, tmp_path):
    """No in-cluster env and no kubeconfig: a clear error and exit 1, not a panic or a hang."""
    proc = subprocess.run(
        [str(release_bin), "run", "--metrics-addr", "127.0.0.1:0", "--log-format", "json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=30,
    )
    assert proc.returncode == 1
    assert "panicked" not in proc.stderr
    last = json.loads(proc.stderr.strip().splitlines()[-1])
    assert last["level"] == "ERROR" and "Failed to infer configuration" in last["error"]
