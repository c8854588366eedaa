"""The release pipeline (.github/workflows/release.yml) and CI (ci.yml), as far as this machine can test them.

Checked here: both workflows pass actionlint (built from its Go module by tests/tools/build.sh; it runs shellcheck
on the `run:` scripts where shellcheck is installed, as on GitHub's runners); the release workflow's tag check runs
and refuses a tag that is not Cargo.toml's version or Chart.yaml's appVersion; the names it publishes are the ones
the chart's values.yaml, the README's quickstart and docs/release.md use; the chart packaged as the workflow packages
it (same Helm version) holds exactly the chart's files and shows and renders what the chart directory does; the
image build context resolves for every platform the workflow builds; and `make image` passes `--platform`.
Not checked (no registry credentials, no OIDC token, no container engine here): pushing, signing and the
multi-arch build itself; docs/release.md says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import CHART, CRD_SOURCES, ROOT, tool
from test_helm3 import helm3
from test_image import docker_context

WORKFLOWS = ROOT / ".github" / "workflows"
RELEASE = WORKFLOWS / "release.yml"
CI = WORKFLOWS / "ci.yml"
CARGO_VERSION = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
# With the repository owner `certpush`, the names release.yml publishes (what values.yaml and the README use).
OWNER = "certpush"
IMAGE = f"ghcr.io/{OWNER}/certpush-operator"
CHARTS = f"oci://ghcr.io/{OWNER}/charts"
# Rust target triples of the platforms the release builds.
TRIPLES = {"linux/amd64": "x86_64-unknown-linux-gnu", "linux/arm64": "aarch64-unknown-linux-gnu"}


def workflow(path: Path) -> dict:
    """The workflow as YAML. PyYAML reads the `on:` key as the boolean True (YAML 1.1); it is renamed back."""
    doc = yaml.safe_load(path.read_text())
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def uses(job: dict) -> list[str]:
    """The actions a job uses, without their versions."""
    return [s["uses"].split("@")[0] for s in steps(job) if "uses" in s]


def step(job: dict, action: str) -> dict:
    found = [s for s in steps(job) if s.get("uses", "").split("@")[0] == action]
    assert len(found) == 1, f"expected one step using {action}, got {len(found)}"
    return found[0]


def actionlint(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(tool("CERTPUSH_ACTIONLINT_BIN")), "-no-color", *args], cwd=cwd, capture_output=True, text=True
    )


# --- actionlint ---------------------------------------------------------------------------------------


def test_workflows_pass_actionlint():
    """actionlint checks the syntax, the expressions and their types (`needs.<job>.outputs.<name>` must exist), the
    inputs of the popular actions, and the `run:` scripts with shellcheck where it is installed."""
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {p.name for p in files} >= {"release.yml", "ci.yml"}, files
    proc = actionlint(*[str(p.relative_to(ROOT)) for p in files])
    assert proc.returncode == 0, f"actionlint found problems:\n{proc.stdout}{proc.stderr}"


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    """The test above can fail: a workflow with an undefined job output, an unknown permission and an action input
    that does not exist is refused, each mistake named."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        """\
on:
  push:
    tags: ["v*"]
permissions:
  packagez: write
jobs:
  a:
    runs-on: ubuntu-latest
    outputs:
      version: ${{ steps.v.outputs.version }}
    steps:
      - id: v
        run: echo "version=1" >> "$GITHUB_OUTPUT"
  b:
    needs: a
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
        with:
          persist-credential: false
      - run: echo "${{ needs.a.outputs.tag }}"
"""
    )
    proc = actionlint(str(broken), cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert 'unknown permission scope "packagez"' in out, out
    assert 'input "persist-credential" is not defined in action "actions/checkout@v5"' in out, out
    assert 'property "tag" is not defined' in out, out


def test_actionlint_is_the_pinned_version():
    version = re.search(r"ACTIONLINT_VERSION:-([\d.]+)", (ROOT / "tests/tools/build.sh").read_text()).group(1)
    proc = actionlint("-version")
    assert proc.stdout.splitlines()[0] == f"v{version}", proc.stdout


# --- release.yml ---------------------------------------------------------------------------------------


def version_step() -> tuple[str, dict]:
    """The `run:` script of the tag check and the environment the workflow gives it."""
    doc = workflow(RELEASE)
    [script] = [s["run"] for s in steps(doc["jobs"]["check"]) if s.get("id") == "version"]
    return script, doc["env"]


def run_version_step(tmp_path: Path, tag: str, owner: str = "CertPush", cwd: Path = ROOT) -> tuple[int, str, dict]:
    script, wf_env = version_step()
    output = tmp_path / "github_output"
    output.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "GITHUB_REF_NAME": tag,
        "GITHUB_REPOSITORY_OWNER": owner,
        "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
        "GITHUB_OUTPUT": str(output),
        **wf_env,
    }
    # As GitHub runs `shell: bash`.
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return proc.returncode, proc.stdout + proc.stderr, outputs


def test_release_runs_on_version_tags_with_no_default_permissions():
    doc = workflow(RELEASE)
    assert doc["on"] == {"push": {"tags": ["v*"]}}
    assert doc["permissions"] == {}, "every job must ask for its own permissions"
    assert doc["concurrency"]["cancel-in-progress"] is False, "a half-published release must not be cancelled"


def test_each_release_job_has_least_privilege():
    """Only the image job can sign (id-token) and only it and the chart job can push packages; only the release job
    writes the repository (the GitHub release)."""
    jobs = workflow(RELEASE)["jobs"]
    granted = {name: job.get("permissions") for name, job in jobs.items()}
    assert granted == {
        "check": {"contents": "read"},
        "image": {"contents": "read", "packages": "write", "id-token": "write"},
        "chart": {"contents": "read", "packages": "write"},
        "release": {"contents": "write"},
    }
    for name, job in jobs.items():
        assert "timeout-minutes" in job, f"job {name} has no timeout"
        checkout = step(job, "actions/checkout")
        assert checkout["with"]["persist-credentials"] is False, f"job {name} leaves the token in .git/config"


def test_tag_check_accepts_the_crate_version_and_names_lowercase(tmp_path):
    code, out, outputs = run_version_step(tmp_path, f"v{CARGO_VERSION}")
    assert code == 0, out
    assert outputs == {
        "version": CARGO_VERSION,
        "chart-version": CHART_META["version"],
        "image": IMAGE,  # GITHUB_REPOSITORY_OWNER is CertPush: OCI names must be lowercase
        "charts": CHARTS,
        "commit": "0123456789ab",
    }


@pytest.mark.parametrize("tag", ["v9.9.9", CARGO_VERSION, f"v{CARGO_VERSION}-rc.1"])
def test_tag_check_refuses_a_tag_that_is_not_the_crate_version(tmp_path, tag):
    code, out, outputs = run_version_step(tmp_path, tag)
    assert code == 1, f"tag {tag} was accepted:\n{out}"
    assert "does not match Cargo.toml version" in out, out
    assert outputs == {}, "nothing may be published for a refused tag"


def test_tag_check_refuses_a_chart_whose_app_version_lags(tmp_path):
    """A release whose chart still defaults to the previous image must not be published."""
    repo = tmp_path / "repo"
    chart = repo / "deploy" / "helm" / "certpush-operator"
    chart.mkdir(parents=True)
    shutil.copy(ROOT / "Cargo.toml", repo / "Cargo.toml")
    text = (CHART / "Chart.yaml").read_text()
    assert f'appVersion: "{CARGO_VERSION}"' in text
    (chart / "Chart.yaml").write_text(text.replace(f'appVersion: "{CARGO_VERSION}"', 'appVersion: "0.0.1"'))
    code, out, _ = run_version_step(tmp_path, f"v{CARGO_VERSION}", cwd=repo)
    assert code == 1 and "does not match Chart.yaml appVersion 0.0.1" in out, out


def test_image_job_builds_both_platforms_signs_and_attests_an_sbom():
    job = workflow(RELEASE)["jobs"]["image"]
    assert uses(job)[:5] == [
        "actions/checkout",
        "docker/setup-qemu-action",
        "docker/setup-buildx-action",
        "docker/login-action",
        "docker/metadata-action",
    ]
    login = step(job, "docker/login-action")["with"]
    assert login == {
        "registry": "ghcr.io",
        "username": "${{ github.actor }}",
        "password": "${{ secrets.GITHUB_TOKEN }}",
    }
    build = step(job, "docker/build-push-action")
    assert build["id"] == "build"
    with_ = build["with"]
    assert with_["platforms"].split(",") == list(TRIPLES)
    assert with_["push"] is True and with_["sbom"] is True and with_["provenance"] == "mode=max"
    # The Dockerfile's build argument, as scripts/image.sh passes it.
    assert with_["build-args"].strip() == "CERTPUSH_COMMIT=${{ needs.check.outputs.commit }}"
    assert "ARG CERTPUSH_COMMIT=" in (ROOT / "Dockerfile").read_text()
    assert step(job, "docker/metadata-action")["with"]["images"] == "${{ needs.check.outputs.image }}"
    # Sign and attest the digest that was pushed (a tag can move), after the push.
    runs = [s.get("run", "") for s in steps(job)]
    sign = next(i for i, r in enumerate(runs) if r.startswith("cosign sign "))
    attest = next(i for i, r in enumerate(runs) if r.startswith("cosign attest "))
    assert runs[sign] == 'cosign sign --yes "${IMAGE}@${DIGEST}"'
    assert "--type spdxjson --predicate certpush-operator.spdx.json" in runs[attest]
    assert steps(job)[sign]["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"
    assert job["env"]["IMAGE"] == "${{ needs.check.outputs.image }}"
    order = uses(job)
    assert (
        order.index("docker/build-push-action")
        < order.index("sigstore/cosign-installer")
        < order.index("anchore/sbom-action")
    )
    assert sign < attest and steps(job).index(build) < sign


def test_chart_job_packages_with_the_tested_helm_and_pushes_to_the_oci_charts():
    doc = workflow(RELEASE)
    job = doc["jobs"]["chart"]
    assert job["needs"] == ["check", "image"], "the chart must not be published before its image"
    helm_version = re.search(r"HELM3_VERSION:-([\d.]+)", (ROOT / "tests/tools/build.sh").read_text()).group(1)
    assert doc["env"]["HELM_VERSION"] == f"v{helm_version}", "package with the Helm these tests package with"
    assert step(job, "azure/setup-helm")["with"]["version"] == "${{ env.HELM_VERSION }}"
    assert doc["env"]["CHART_DIR"] == str(CHART.relative_to(ROOT))
    script = "\n".join(s.get("run", "") for s in steps(job))
    assert 'helm package "${CHART_DIR}" --app-version "${VERSION}" --destination dist' in script
    assert 'helm push "dist/certpush-operator-${CHART_VERSION}.tgz" "${CHARTS}"' in script
    assert job["env"]["CHARTS"] == "${{ needs.check.outputs.charts }}"


def test_release_job_attaches_the_crd_chart_and_sbom():
    job = workflow(RELEASE)["jobs"]["release"]
    assert job["needs"] == ["check", "image", "chart"]
    files = step(job, "softprops/action-gh-release")["with"]["files"].split()
    crds = [str(p.relative_to(ROOT)) for p in CRD_SOURCES]
    assert files == [*crds, "dist/certpush-operator-*.tgz", "dist/certpush-operator.spdx.json"]
    assert all(p.is_file() for p in CRD_SOURCES)


def test_published_names_agree_with_values_readme_and_release_docs(tmp_path):
    """With owner `certpush`, the workflow publishes the image the chart defaults to and the chart the README's
    quickstart installs, at the versions they name; docs/release.md verifies that same image."""
    _, _, outputs = run_version_step(tmp_path, f"v{CARGO_VERSION}", owner=OWNER)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == outputs["image"] == IMAGE
    assert values["image"]["tag"] == "", "the default tag must be the chart's appVersion, the released image's tag"
    assert CHART_META["appVersion"] == CARGO_VERSION

    from test_docs import block

    quickstart = block("release-quickstart")
    install = re.search(r"helm install certpush-operator (\S+) --version (\S+)", quickstart)
    assert install, quickstart
    assert install.groups() == (f"{outputs['charts']}/{CHART_META['name']}", CHART_META["version"])
    assert "image." not in quickstart, "the quickstart runs the chart's default image, the released one"
    release_md = (ROOT / "docs" / "release.md").read_text()
    assert f"cosign verify {IMAGE}:{CARGO_VERSION}" in release_md
    assert "--certificate-oidc-issuer https://token.actions.githubusercontent.com" in release_md


def test_build_context_resolves_for_every_platform_the_release_builds(tmp_path):
    """Each platform compiles in its own builder stage (QEMU for arm64) with `--locked`: the lockfile must resolve
    for its target from the build context alone."""
    platforms = workflow(RELEASE)["jobs"]["image"]
    platforms = step(platforms, "docker/build-push-action")["with"]["platforms"].split(",")
    for path in docker_context():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    for platform in platforms:
        proc = subprocess.run(
            ["cargo", "metadata", "--locked", "--format-version", "1", "--filter-platform", TRIPLES[platform]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, f"{platform}: {proc.stderr}"


# --- ci.yml --------------------------------------------------------------------------------------------


def test_ci_runs_make_test_on_main_with_the_toolchains_it_needs():
    doc = workflow(CI)
    assert doc["on"] == {"push": {"branches": ["main"]}, "pull_request": {"branches": ["main"]}}
    assert doc["permissions"] == {"contents": "read"}
    [job] = doc["jobs"].values()
    assert job["timeout-minutes"] <= 120
    assert steps(job)[-1] == {"run": "make test"}, "CI runs exactly the README's test command"
    # Go for the tools built from Go modules (build.sh and control-plane.sh need >= 1.26).
    assert step(job, "actions/setup-go")["with"]["go-version"] == "1.26"
    assert "Go >= 1.26" in (ROOT / "tests/tools/build.sh").read_text()
    # Rust: the Dockerfile's RUST_VERSION, with the components `make test` runs.
    rust = next(s["run"] for s in steps(job) if "rustup" in s.get("run", ""))
    assert "sed -n 's/^ARG RUST_VERSION=//p' Dockerfile" in rust and "rustfmt,clippy" in rust
    caches = [s["with"] for s in steps(job) if s.get("uses", "").startswith("actions/cache@")]
    assert any(c["path"] == "~/.cache/certpush-operator" for c in caches), caches
    assert any("target" in c["path"].split() for c in caches), caches


# --- the packaged chart --------------------------------------------------------------------------------


def chart_files(chart_dir: Path) -> set[str]:
    """The chart's files as the repository has them (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "."],
        cwd=chart_dir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {p for p in listed if (chart_dir / p).is_file()}


def package(chart_dir: Path, dest: Path) -> Path:
    """`helm package` as the release workflow's chart job runs it."""
    out = helm3("package", str(chart_dir), "--app-version", CARGO_VERSION, "--destination", str(dest))
    tgz = dest / f"{CHART_META['name']}-{CHART_META['version']}.tgz"
    assert tgz.is_file(), out
    return tgz


def members(tgz: Path) -> dict[str, bytes]:
    with tarfile.open(tgz) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> Path:
    return package(CHART, tmp_path_factory.mktemp("dist"))


def test_package_holds_exactly_the_chart_files(packaged):
    files = members(packaged)
    prefix = f"{CHART_META['name']}/"
    assert all(name.startswith(prefix) for name in files), sorted(files)
    assert {name.removeprefix(prefix) for name in files} == chart_files(CHART)
    for name, data in files.items():
        if name != f"{prefix}Chart.yaml":  # helm rewrites Chart.yaml
            assert data == (CHART / name.removeprefix(prefix)).read_bytes(), f"{name} differs from the chart's"


def test_helmignore_keeps_editor_files_caches_and_packages_out(tmp_path):
    """Whatever a working copy accumulates next to the chart stays out of the published package."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    expected = chart_files(CHART)
    junk = [
        "values.yaml.swp",
        "templates/deployment.yaml~",
        "templates/#rbac.yaml#",
        "templates/rbac.yaml.orig",
        ".DS_Store",
        ".vscode/settings.json",
        ".idea/workspace.xml",
        "__pycache__/x.cpython-311.pyc",
        ".git/HEAD",
        "certpush-operator-0.0.1.tgz",
    ]
    for name in junk:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_text("junk\n")
    tgz = package(copy, tmp_path / "dist")
    got = {name.split("/", 1)[1] for name in members(tgz)}
    assert got == expected, f"junk in the package: {sorted(got - expected)}; missing: {sorted(expected - got)}"


def test_packaged_chart_metadata(packaged):
    shown = yaml.safe_load(helm3("show", "chart", str(packaged)))
    assert (shown["name"], shown["version"], shown["appVersion"]) == (
        "certpush-operator",
        CHART_META["version"],
        CARGO_VERSION,
    )
    assert shown == CHART_META, "helm package changed Chart.yaml beyond its formatting"
    assert "0 chart(s) failed" in helm3("lint", "--strict", str(packaged))


def test_packaged_values_readme_and_crds(packaged):
    values = (CHART / "values.yaml").read_text()
    assert members(packaged)["certpush-operator/values.yaml"] == values.encode()
    shown = helm3("show", "values", str(packaged))
    assert shown.rstrip("\n") == values.rstrip("\n")
    assert helm3("show", "readme", str(packaged)).rstrip("\n") == (CHART / "README.md").read_text().rstrip("\n")
    # The CRD is a template (so `crds.enabled`/`crds.keep` apply), not a crds/ file: `helm show crds` has nothing,
    # and the rendered CRD is the one the release attaches.
    assert helm3("show", "crds", str(packaged)).strip() == ""
    rendered = [d for d in yaml.safe_load_all(helm3("template", "x", str(packaged), "-n", "certpush-system")) if d]
    crds = {d["metadata"]["name"]: d["spec"] for d in rendered if d["kind"] == "CustomResourceDefinition"}
    sources = [yaml.safe_load(p.read_text()) for p in CRD_SOURCES]
    assert crds == {s["metadata"]["name"]: s["spec"] for s in sources}


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--set", "scope=namespace", "--set", "podDisruptionBudget.enabled=true"]
        + ["--set", "networkPolicy.enabled=true"],
        ["--set", "metrics.serviceMonitor.enabled=true", "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"],
    ],
)
def test_packaged_chart_renders_what_the_chart_directory_renders(packaged, args):
    def template(chart: Path) -> str:
        return helm3("template", "certpush-operator", str(chart), "-n", "certpush-system", *args)

    from_package, from_dir = template(packaged), template(CHART)
    assert from_package == from_dir
    assert len([d for d in yaml.safe_load_all(from_package) if d]) > 5


# --- make image --platform -----------------------------------------------------------------------------


ENGINES = ["docker", "podman", "buildah"]


def fake_engines(tmp_path: Path, answering: str) -> tuple[Path, Path]:
    """A bin directory where `answering` records its arguments and answers `info`, and the engines image.sh tries
    before it fail `info` (so a real engine on this machine is never used)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "argv"
    for engine in ENGINES[: ENGINES.index(answering) + 1]:
        script = bin_dir / engine
        if engine == answering:
            script.write_text(
                f'#!/bin/sh\n[ "$1" = info ] && exit 0\nprintf "%s\\n" "$@" > {record}\nexit 0\n'
            )
        else:
            script.write_text("#!/bin/sh\nexit 1\n")
        script.chmod(0o755)
    return bin_dir, record


def run_image(tmp_path: Path, engine: str, command: list[str], platform: str | None) -> list[str]:
    bin_dir, record = fake_engines(tmp_path, engine)
    env = {k: v for k, v in os.environ.items() if k not in ("PLATFORM", "IMAGE")}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    if platform is not None:
        env["PLATFORM"] = platform
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert record.is_file(), f"{engine} was not run:\n{proc.stdout}{proc.stderr}"
    return record.read_text().splitlines()


def platform_of(argv: list[str]) -> str:
    assert argv.count("--platform") == 1, argv
    return argv[argv.index("--platform") + 1]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("platform", [None, "linux/arm64"])
def test_image_script_passes_the_platform(tmp_path, engine, platform):
    argv = run_image(tmp_path, engine, ["bash", "scripts/image.sh", "example.com/certpush-operator:1"], platform)
    assert argv[0] == ("bud" if engine == "buildah" else "build"), argv
    assert platform_of(argv) == (platform or "linux/amd64")
    assert argv[-3:] == ["-t", "example.com/certpush-operator:1", "."]


@pytest.mark.parametrize(
    ("make_args", "env_platform", "expected"),
    [
        ([], None, "linux/amd64"),
        (["PLATFORM=linux/arm64"], None, "linux/arm64"),
        ([], "linux/arm64", "linux/arm64"),
    ],
)
def test_make_image_passes_the_platform(tmp_path, make_args, env_platform, expected):
    make = ["make", "--no-print-directory", "image", "IMAGE=x/op:2", *make_args]
    argv = run_image(tmp_path, "docker", make, env_platform)
    assert platform_of(argv) == expected
    assert argv[-3:] == ["-t", "x/op:2", "."]
