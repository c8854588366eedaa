"""The chart, linted and rendered offline by the real Helm engine; no cluster needed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

import helm_python as helm
import pytest
import yaml

from conftest import (
    ADMISSION_POLICY_APIS,
    CHART,
    CRD_NAMES,
    CRD_SOURCE,
    CRD_SOURCES,
    DIGEST_KEY_RULES,
    LEASE_RULES,
    MONITORING_APIS,
    NAMESPACED_OPERATOR_RULES,
    OPERATOR_BIN,
    OPERATOR_RULES,
    OPERATOR_RULES_ALL_SECRETS,
    PREVIOUS_CHART,
    SECRETS_RULES,
    ROOT,
    container,
    render_raw,
    rules_of,
)

SA_USER = "system:serviceaccount:certpush-system:certpush-operator"


# --- lint and metadata -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        None,
        {
            "scope": "namespace",
            "podDisruptionBudget": {"enabled": True},
            "networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["10.0.0.1/32"]}},
            "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
            "scm": {"caBundle": {"configMapName": "scm-ca"}},
            "commonLabels": {"team": "platform"},
            "crds": {"annotations": {"argocd.argoproj.io/sync-options": "Prune=false,Delete=false"}},
            "extraArgs": ["--scm-ca-file=/tmp/ca.crt"],
            "extraEnv": [{"name": "NO_PROXY", "value": ".svc"}],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            "global": {"imagePullSecrets": ["regcred"]},
        },
    ],
    ids=["defaults", "everything-on"],
)
# The oldest Kubernetes the chart supports (what `make test-versions` runs the e2e suite on) and the current default.
@pytest.mark.parametrize("kube_version", [None, "v1.28.0"])
def test_lint_is_clean(values, kube_version):
    report = helm.lint(str(CHART), values, strict=True, kube_version=kube_version)
    assert report["errors"] == []
    # Severity 1 is "info" (only "icon is recommended"); warnings and errors fail.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_kube_version_floor_is_the_oldest_version_tested():
    """The chart's kubeVersion, the README and `make test-versions` name the same oldest Kubernetes."""
    floor = re.fullmatch(r">=(\d+\.\d+)\.0-0", yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"])
    assert floor, "kubeVersion is a plain >=X.Y.0-0 floor"
    oldest = re.search(r"versions=\$\{KUBE_VERSIONS:-(\d+\.\d+)\.\d+ ", (ROOT / "scripts" / "test-versions.sh").read_text())
    assert oldest and oldest.group(1) == floor.group(1)
    assert f"supported from {floor.group(1)}" in (ROOT / "README.md").read_text()


def test_chart_metadata_matches_the_operator(chart):
    meta = chart.metadata
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "certpush-operator"
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    # The default image tag is appVersion, so it must name the operator version this tree builds.
    assert meta["appVersion"] == cargo["version"]


# --- defaults ----------------------------------------------------------------------------------------


def test_default_objects(render):
    objects = render()
    assert objects.kinds() == sorted(
        [
            "ClusterRole",  # the operator's
            "ClusterRole",  # -edit (aggregated)
            "ClusterRole",  # -view (aggregated)
            "ClusterRoleBinding",
            "CustomResourceDefinition",  # CertificatePush
            "CustomResourceDefinition",  # SCMAccount
            "CustomResourceDefinition",  # ClusterSCMAccount
            "Deployment",
            "Role",  # the digest key Secret
            "Role",  # leader election
            "Role",  # Secrets of the release namespace (ClusterSCMAccounts')
            "RoleBinding",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    )
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"):
            assert obj["metadata"]["namespace"] == "certpush-system", obj["kind"]


def test_pod_security_restricted_by_default(render):
    objects = render()
    pod = objects.one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = container(objects)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert host not in pod
    # Nothing writable is mounted: the operator writes no files.
    assert "volumes" not in pod and "volumeMounts" not in container(objects)
    # The token is mounted only into the operator's Pod, which needs it.
    assert pod["automountServiceAccountToken"] is True
    assert objects.one("ServiceAccount")["automountServiceAccountToken"] is False


def test_probes_use_the_health_endpoints(render):
    c = container(render())
    assert c["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["livenessProbe"]["failureThreshold"] >= 3
    # The probed port is the one the operator binds.
    assert "--metrics-addr=0.0.0.0:8080" in c["args"]


def run_flags() -> set[str]:
    """Every flag `certpush-operator run` accepts, from the binary's own help."""
    help_text = subprocess.run(
        [str(OPERATOR_BIN), "run", "--help"], capture_output=True, text=True, check=True
    ).stdout
    return set(re.findall(r"^\s+(--[a-z][a-z-]+)", help_text, re.M)) - {"--help"}


def flags_in(args: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in args if a.startswith("--")}


def test_args_cover_every_run_flag(render):
    flags = run_flags()
    assert {"--scm-endpoint", "--scm-ca-file", "--namespace", "--concurrency", "--log-format", "--metrics-addr"} <= flags
    objects = render(
        {
            "scope": "namespace",
            "clusterName": "prod-eu-1",
            "scm": {
                "caBundle": {"secretName": "scm-ca"},
                "allowInsecureEndpoint": True,
                "region": "ap-southeast-1",
                "endpoint": "http://scm-sim:8080",
                "iamEndpoint": "http://scm-sim:8080",
            },
        }
    )
    args = container(objects)["args"]
    assert args[0] == "run"
    # --namespace (scope namespace) and --secret-namespace (scope cluster) exclude each other.
    cluster = container(render({"rbac": {"secretNamespaces": ["apps"]}}))["args"]
    assert "--secret-namespace=apps" in cluster and "--secret-namespace=certpush-system" in cluster
    passed = flags_in(args) | flags_in(cluster)
    assert passed == flags, "a `run` flag has no chart value (or the chart passes an unknown flag)"


# Leader election with the chart's defaults (release certpush-operator in certpush-system).
DEFAULT_LEADER_ARGS = [
    "--leader-elect",
    "--lease-name=certpush-operator",
    "--lease-namespace=certpush-system",
    "--lease-duration=15s",
    "--renew-deadline=10s",
    "--retry-period=2s",
]


def test_default_args_and_env(render):
    c = container(render())
    assert c["args"] == [
        "run",
        "--scm-qps=10",
        "--scm-burst=20",
        "--scm-timeout=30s",
        "--concurrency=64",
        "--resync-period=10m",
        "--min-repush-interval=30s",
        "--in-use-refresh=1h",
        "--controller-name=certpush-operator",
        "--digest-key-secret=certpush-operator-digest-key",
        "--digest-key-namespace=certpush-system",
        "--cluster-resource-namespace=certpush-system",
        "--secret-namespace=certpush-system",
        "--log-format=text",
        "--metrics-addr=0.0.0.0:8080",
        "--unready-after-seconds=60",
        "--unhealthy-after-seconds=600",
        *DEFAULT_LEADER_ARGS,
    ]
    env = {e["name"]: e for e in c["env"]}
    assert env["RUST_LOG"]["value"] == "info"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_scm_region_picks_the_site_and_endpoint_overrides_it(render):
    args = container(render({"scm": {"region": "eu-west-101"}}))["args"]
    assert "--scm-region=eu-west-101" in args and not any(a.startswith("--scm-endpoint") for a in args)
    with pytest.raises(helm.HelmValuesError):
        render({"scm": {"region": "cn-east-3"}})


def test_an_http_endpoint_needs_allow_insecure_endpoint(render):
    assert "--allow-insecure-endpoint" not in container(render({}))["args"]
    args = container(render({"scm": {"endpoint": "http://scm-sim:8080", "allowInsecureEndpoint": True}}))["args"]
    assert "--allow-insecure-endpoint" in args and "--scm-endpoint=http://scm-sim:8080" in args


def test_iam_endpoint_is_passed_only_when_set(render):
    assert not any(a.startswith("--iam-endpoint") for a in container(render({}))["args"])
    args = container(render({"scm": {"iamEndpoint": "https://iam.eu-west-101.myhuaweicloud.eu"}}))["args"]
    assert "--iam-endpoint=https://iam.eu-west-101.myhuaweicloud.eu" in args
    with pytest.raises(helm.HelmValuesError):
        render({"scm": {"iamEndpoint": "iam.example"}})


def test_cluster_name_becomes_the_flag_and_is_left_out_when_empty(render):
    """Issue 29: `clusterName` goes into import names. Empty (the default) passes no flag, so an upgrade keeps
    today's names; a value the operator would refuse at start is refused at install."""
    assert not any(a.startswith("--cluster-name") for a in container(render())["args"])
    assert not any(a.startswith("--cluster-name") for a in container(render({"clusterName": ""}))["args"])
    args = container(render({"clusterName": "prod-eu-1"}))["args"]
    assert "--cluster-name=prod-eu-1" in args
    assert args.index("--cluster-name=prod-eu-1") == args.index("--controller-name=certpush-operator") + 1
    for bad in ("Prod", "prod_eu", "-prod", "a-very-long-cluster-name-1"):
        with pytest.raises(helm.HelmValuesError):
            render({"clusterName": bad})


def test_resync_period_zero_turns_it_off(render):
    for off in ("0", "0s"):
        assert f"--resync-period={off}" in container(render({"resyncPeriod": off}))["args"]


def test_values_reach_the_args(render):
    c = container(
        render(
            {
                "scm": {"endpoint": "https://scm.ap-southeast-1.myhuaweicloud.com", "qps": 50, "burst": 5, "timeout": "1m30s"},
                "concurrency": 4,
                "resyncPeriod": "1h30m",
                "minRepushInterval": "2m",
                "logFormat": "json",
                "logLevel": "debug,kube=info",
                "metrics": {"bindAddress": "::", "port": 9090},
                "health": {"unreadyAfterSeconds": 30, "unhealthyAfterSeconds": 300},
                "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
                "leaderElection": {"leaseName": "cp-lease", "leaseDuration": "30s", "renewDeadline": "20s", "retryPeriod": "5s"},
            }
        )
    )
    assert c["args"][1:] == [
        "--scm-endpoint=https://scm.ap-southeast-1.myhuaweicloud.com",
        "--scm-qps=50",
        "--scm-burst=5",
        "--scm-timeout=1m30s",
        "--concurrency=4",
        "--resync-period=1h30m",
        "--min-repush-interval=2m",
        "--in-use-refresh=1h",
        "--controller-name=certpush-operator",
        "--digest-key-secret=certpush-operator-digest-key",
        "--digest-key-namespace=certpush-system",
        "--cluster-resource-namespace=certpush-system",
        "--secret-namespace=certpush-system",
        "--log-format=json",
        "--metrics-addr=[::]:9090",
        "--unready-after-seconds=30",
        "--unhealthy-after-seconds=300",
        "--leader-elect",
        "--lease-name=cp-lease",
        "--lease-namespace=certpush-system",
        "--lease-duration=30s",
        "--renew-deadline=20s",
        "--retry-period=5s",
    ]
    assert c["ports"][0]["containerPort"] == 9090
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in c["env"]
    assert {"name": "RUST_LOG", "value": "debug,kube=info"} in c["env"]


def test_leader_election_is_on_and_rolls_one_pod_at_a_time(render):
    objects = render()
    spec = objects.one("Deployment")["spec"]
    assert spec["replicas"] == 1
    # The new Pod stands by until the old one releases the Lease.
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == 60
    c = container(objects)
    for arg in DEFAULT_LEADER_ARGS:
        assert arg in c["args"], arg
    namespace_env = {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    assert namespace_env in c["env"]
    assert render({"replicaCount": 3}).one("Deployment")["spec"]["replicas"] == 3


def test_without_leader_election_one_recreated_replica(render):
    objects = render({"leaderElection": {"enabled": False}})
    spec = objects.one("Deployment")["spec"]
    assert spec["strategy"] == {"type": "Recreate"}
    assert not any(a.startswith("--lease") or a == "--leader-elect" for a in container(objects)["args"])
    assert sorted(r["metadata"]["name"] for r in objects.all("Role")) == [
        "certpush-operator-digest-key",
        "certpush-operator-secrets",
    ]
    with pytest.raises(helm.HelmRenderError, match="needs leaderElection.enabled"):
        render({"leaderElection": {"enabled": False}, "replicaCount": 2})


def test_resources_have_requests(render):
    resources = container(render())["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "memory" in resources["limits"]


def test_image_reference(render, chart):
    app_version = chart.metadata["appVersion"]
    assert container(render())["image"] == f"ghcr.io/certpush/certpush-operator:{app_version}"
    assert container(render())["imagePullPolicy"] == "IfNotPresent"
    assert container(render({"image": {"repository": "r.example/op", "tag": "1.2.3"}}))["image"] == "r.example/op:1.2.3"
    digest = "sha256:" + "ab" * 32
    assert container(render({"image": {"digest": digest}}))["image"] == f"ghcr.io/certpush/certpush-operator@{digest}"


def test_scheduling_and_pod_metadata_values(render):
    values = {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
        ],
        "priorityClassName": "system-cluster-critical",
        "podLabels": {"team": "platform"},
        "podAnnotations": {"example.com/scrape": "true"},
        "imagePullSecrets": [{"name": "regcred"}],
    }
    objects = render(values)
    template = objects.one("Deployment")["spec"]["template"]
    pod = template["spec"]
    for key in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints", "priorityClassName", "imagePullSecrets"):
        assert pod[key] == values[key], key
    assert template["metadata"]["labels"]["team"] == "platform"
    assert template["metadata"]["annotations"] == {"example.com/scrape": "true"}
    assert objects.one("ServiceAccount")["imagePullSecrets"] == [{"name": "regcred"}]


def test_scm_ca_bundle_is_mounted_read_only(render):
    objects = render({"scm": {"caBundle": {"configMapName": "corp-ca", "key": "bundle.pem"}}})
    c = container(objects)
    pod = objects.one("Deployment")["spec"]["template"]["spec"]
    assert "--scm-ca-file=/etc/certpush/scm-ca/bundle.pem" in c["args"]
    assert c["volumeMounts"] == [{"name": "scm-ca", "mountPath": "/etc/certpush/scm-ca", "readOnly": True}]
    assert pod["volumes"] == [
        {"name": "scm-ca", "configMap": {"name": "corp-ca", "items": [{"key": "bundle.pem", "path": "bundle.pem"}]}}
    ]
    secret = render({"scm": {"caBundle": {"secretName": "corp-ca"}}}).one("Deployment")["spec"]["template"]["spec"]
    assert secret["volumes"][0]["secret"] == {"secretName": "corp-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    with pytest.raises(helm.HelmRenderError, match="either configMapName or secretName"):
        render({"scm": {"caBundle": {"configMapName": "a", "secretName": "b"}}})


def test_metrics_service(render):
    objects = render()
    svc = objects.one("Service", "certpush-operator-metrics")
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    pod_labels = objects.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert "Service" not in render({"metrics": {"service": {"enabled": False}}}).kinds()


# --- RBAC --------------------------------------------------------------------------------------------


def test_rbac_cluster_scope(render):
    objects = render()
    role = objects.one("ClusterRole", "certpush-operator")
    assert rules_of(role) == OPERATOR_RULES
    binding = objects.one("ClusterRoleBinding", "certpush-operator")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "certpush-operator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "certpush-operator", "namespace": "certpush-system"}]
    # The only namespaced RBAC is the leader election Lease's and the digest key's, in the release namespace.
    lease_role = objects.one("Role", "certpush-operator-leader-election")
    assert lease_role["metadata"]["namespace"] == "certpush-system"
    assert rules_of(lease_role) == LEASE_RULES
    lease_binding = objects.one("RoleBinding", "certpush-operator-leader-election")
    assert lease_binding["subjects"] == binding["subjects"]
    assert sorted(r["metadata"]["name"] for r in objects.all("Role")) == [
        "certpush-operator-digest-key",
        "certpush-operator-leader-election",
        "certpush-operator-secrets",
    ]
    assert not any(a.startswith("--namespace") for a in container(objects)["args"])
    # Secrets are read in the release namespace only (ClusterSCMAccounts'), and the operator is told so.
    secrets = objects.one("Role", "certpush-operator-secrets")
    assert secrets["metadata"]["namespace"] == "certpush-system" and rules_of(secrets) == SECRETS_RULES
    assert [a for a in container(objects)["args"] if a.startswith("--secret-namespace")] == [
        "--secret-namespace=certpush-system"
    ]


def test_rbac_secret_namespaces_add_a_role_each_or_everything(render):
    """Issue 29: the default install reads no Secret outside its namespace; rbac.secretNamespaces lists the
    namespaces whose Secrets credentialsRef/sourceSecretRef may use, and ["*"] is the cluster-wide shape."""
    listed = render({"rbac": {"secretNamespaces": ["team-b", "team-a"]}})
    placed = sorted(r["metadata"]["namespace"] for r in listed.all("Role") if r["metadata"]["name"] == "certpush-operator-secrets")
    assert placed == ["certpush-system", "team-a", "team-b"]
    bound = sorted(b["metadata"]["namespace"] for b in listed.all("RoleBinding") if b["metadata"]["name"] == "certpush-operator-secrets")
    assert bound == placed
    assert [a for a in container(listed)["args"] if a.startswith("--secret-namespace")] == [
        "--secret-namespace=certpush-system",
        "--secret-namespace=team-a",
        "--secret-namespace=team-b",
    ]
    assert rules_of(listed.one("ClusterRole", "certpush-operator")) == OPERATOR_RULES
    everything = render({"rbac": {"secretNamespaces": ["*"]}})
    assert rules_of(everything.one("ClusterRole", "certpush-operator")) == OPERATOR_RULES_ALL_SECRETS
    assert not any(r["metadata"]["name"] == "certpush-operator-secrets" for r in everything.all("Role"))
    assert not any(a.startswith("--secret-namespace") for a in container(everything)["args"])
    for bad in (["Team"], ["team-a", "team-a"], "team-a"):
        with pytest.raises(helm.HelmValuesError):
            render({"rbac": {"secretNamespaces": bad}})


def test_rbac_never_writes_secrets_or_anything_else(render):
    for values in (None, {"scope": "namespace"}):
        objects = render(values)
        for role in objects.all("ClusterRole") + objects.all("Role"):
            for groups, resources, verbs in rules_of(role):
                assert "*" not in groups + resources + verbs, role["metadata"]["name"]
                if "secrets" in resources and not role["metadata"]["name"].endswith("-digest-key"):
                    assert verbs == ["get", "list", "watch"], role["metadata"]["name"]
        # The operator writes status by server-side apply only: PATCH, never PUT (src/controller/persist.rs).
        operator_role = [r for r in objects.all("ClusterRole") + objects.all("Role") if r["metadata"]["name"] == "certpush-operator"]
        assert [verbs for _, res, verbs in rules_of(operator_role[0]) if "certificatepushes/status" in res] == [["patch"]]


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
def test_digest_key_secret_is_read_by_name_and_created_only_when_not_brought(render, scope):
    objects = render({"scope": scope, "watchNamespace": "apps"}, name="cp", namespace="ops")
    role = objects.one("Role", "cp-certpush-operator-digest-key")
    assert role["metadata"]["namespace"] == "ops"
    assert rules_of(role) == DIGEST_KEY_RULES
    assert role["rules"][0]["resourceNames"] == ["cp-certpush-operator-digest-key"]
    assert "resourceNames" not in role["rules"][1]
    binding = objects.one("RoleBinding", "cp-certpush-operator-digest-key")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cp-certpush-operator", "namespace": "ops"}]
    args = container(objects)["args"]
    assert "--digest-key-secret=cp-certpush-operator-digest-key" in args
    assert "--digest-key-namespace=ops" in args

    # A Secret the user brings (e.g. sealed in Git): read by its name, and no create permission at all.
    objects = render({"scope": scope, "digestKey": {"existingSecret": "my-key"}}, name="cp", namespace="ops")
    role = objects.one("Role", "cp-certpush-operator-digest-key")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["my-key"], "verbs": ["get"]}]
    assert "--digest-key-secret=my-key" in container(objects)["args"]
    for other in objects.all("ClusterRole") + objects.all("Role"):
        for _, resources, verbs in rules_of(other):
            assert not ("secrets" in resources and "create" in verbs), other["metadata"]["name"]


@pytest.mark.parametrize("watch_namespace", ["", "apps"])
def test_rbac_namespace_scope(render, watch_namespace):
    objects = render({"scope": "namespace", "watchNamespace": watch_namespace}, name="cp", namespace="ops")
    watched = watch_namespace or "ops"
    role = objects.one("Role", "cp-certpush-operator")
    assert role["metadata"]["namespace"] == watched
    assert rules_of(role) == NAMESPACED_OPERATOR_RULES
    binding = objects.one("RoleBinding", "cp-certpush-operator")
    assert binding["metadata"]["namespace"] == watched
    assert binding["roleRef"]["kind"] == "Role"
    # The ServiceAccount stays in the release namespace.
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cp-certpush-operator", "namespace": "ops"}]
    assert f"--namespace={watched}" in container(objects)["args"]
    # Nothing cluster-wide: not the operator's rights, and by default not the aggregated user roles either.
    assert objects.all("ClusterRole") == [] and objects.all("ClusterRoleBinding") == []
    asked = render({"scope": "namespace", "rbac": {"aggregateClusterRoles": True}}, name="cp", namespace="ops")
    assert sorted(r["metadata"]["name"] for r in asked.all("ClusterRole")) == [
        "cp-certpush-operator-edit",
        "cp-certpush-operator-view",
    ]


def test_rbac_namespaces_scope_has_a_role_in_each_watched_namespace(render):
    objects = render(
        {"scope": "namespaces", "watchNamespaces": ["team-a", "team-b"]}, name="cp", namespace="ops"
    )
    for kind in ("Role", "RoleBinding"):
        placed = sorted(o["metadata"]["namespace"] for o in objects.all(kind) if o["metadata"]["name"] == "cp-certpush-operator")
        assert placed == ["team-a", "team-b"], kind
    for role in (o for o in objects.all("Role") if o["metadata"]["name"] == "cp-certpush-operator"):
        assert rules_of(role) == NAMESPACED_OPERATOR_RULES
    for binding in (o for o in objects.all("RoleBinding") if o["metadata"]["name"] == "cp-certpush-operator"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cp-certpush-operator", "namespace": "ops"}]
    args = container(objects)["args"]
    assert [a for a in args if a.startswith("--namespace=")] == ["--namespace=team-a", "--namespace=team-b"]
    assert objects.all("ClusterRole") == [] and objects.all("ClusterRoleBinding") == []


def test_namespaces_scope_without_namespaces_fails_clearly(chart):
    with pytest.raises(helm.HelmRenderError, match="scope: namespaces needs watchNamespaces"):
        chart.render({"scope": "namespaces"}, name="cp", namespace="ops", is_install=True)
    with pytest.raises(helm.HelmValuesError):
        chart.render({"scope": "namespaces", "watchNamespaces": ["Team_A"]}, name="cp", namespace="ops", is_install=True)
    with pytest.raises(helm.HelmValuesError, match="equal"):
        chart.render({"scope": "namespaces", "watchNamespaces": ["a", "a"]}, name="cp", namespace="ops", is_install=True)


def test_aggregated_user_roles(render):
    objects = render()
    edit = objects.one("ClusterRole", "certpush-operator-edit")
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert rules_of(edit) == [
        (
            ["scm.certpush.dev"],
            ["certificatepushes"],
            ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"],
        )
    ]
    view = objects.one("ClusterRole", "certpush-operator-view")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-edit" not in view["metadata"]["labels"]
    assert rules_of(view) == [
        (["scm.certpush.dev"], ["certificatepushes", "certificatepushes/status"], ["get", "list", "watch"])
    ]
    off = render({"rbac": {"aggregateClusterRoles": False}})
    assert [r["metadata"]["name"] for r in off.all("ClusterRole")] == ["certpush-operator"]


def test_rbac_create_false_renders_no_rbac(render):
    objects = render({"rbac": {"create": False, "aggregateClusterRoles": False}})
    assert not {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} & set(objects.kinds())


def test_existing_service_account(render):
    objects = render({"serviceAccount": {"create": False, "name": "byo"}})
    assert objects.all("ServiceAccount") == []
    assert objects.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "byo"
    assert objects.one("ClusterRoleBinding")["subjects"][0]["name"] == "byo"
    with pytest.raises(helm.HelmRenderError, match="serviceAccount.name is required"):
        render({"serviceAccount": {"create": False}})


# --- CRD ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", CRD_SOURCES, ids=lambda p: p.name)
def test_crd_is_identical_to_crds_dir(render, source):
    crd = yaml.safe_load(source.read_text())
    rendered = render().one("CustomResourceDefinition", crd["metadata"]["name"])
    meta = rendered["metadata"]
    assert meta["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert set(meta["labels"]) == {
        "helm.sh/chart",
        "app.kubernetes.io/name",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/managed-by",
    }
    stripped = {**rendered, "metadata": {k: v for k, v in meta.items() if k not in ("labels", "annotations")}}
    assert stripped == crd


def test_crd_switches(render):
    for name in CRD_NAMES:
        assert "annotations" not in render({"crds": {"keep": False}}).one("CustomResourceDefinition", name)["metadata"]
    assert render({"crds": {"enabled": False}}).all("CustomResourceDefinition") == []


# --- schema ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"leaderElection": {"leaseDuration": "15"}}, "/leaderElection/leaseDuration"),
        ({"leaderElection": {"enable": True}}, "'enable' not allowed"),
        ({"replicaCont": 1}, "'replicaCont' not allowed"),
        ({"image": {"tagg": "1.0"}}, "'tagg' not allowed"),
        ({"securityContext": {"runAsUsr": 0}}, "'runAsUsr' not allowed"),
        ({"securityContext": {"capabilities": {"dorp": ["ALL"]}}}, "'dorp' not allowed"),
        ({"podSecurityContext": {"seccompProfile": {"typ": "RuntimeDefault"}}}, "'typ' not allowed"),
        ({"metrics": {"serviceMonitor": {"intreval": "1m"}}}, "'intreval' not allowed"),
        ({"networkPolicy": {"apiServer": {"cidr": ["10.0.0.1/32"]}}}, "'cidr' not allowed"),
        ({"networkPolicy": {"dns": {"to": [{"podSelektor": {}}]}}}, "'podSelektor' not allowed"),
        ({"livenessProbe": {"periodSecond": 5}}, "'periodSecond' not allowed"),
        ({"scope": "namespaced"}, "/scope"),
        ({"logFormat": "xml"}, "/logFormat"),
        ({"concurrency": 0}, "/concurrency"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
        ({"podDisruptionBudget": {"minAvailable": "half"}}, "/podDisruptionBudget/minAvailable"),
        ({"networkPolicy": {"scm": {"cidrs": ["scm.example.com"]}}}, "/networkPolicy/scm/cidrs/0"),
        ({"networkPolicy": {"dns": {"ports": [{"port": 53, "protocl": "UDP"}]}}}, "'protocl' not allowed"),
        ({"networkPolicy": {"dns": {"ports": [{"port": 53, "protocol": "udp"}]}}}, "/networkPolicy/dns/ports/0/protocol"),
        ({"scm": {"timeout": "30"}}, "/scm/timeout"),
        ({"scm": {"timeout": "0s"}}, "/scm/timeout"),
        ({"scm": {"timeout": "0m0s"}}, "/scm/timeout"),
        ({"resyncPeriod": "10"}, "/resyncPeriod"),
        ({"minRepushInterval": "30"}, "/minRepushInterval"),
        ({"resyncPeriod": 600}, "/resyncPeriod"),
        ({"resyncPeriod": "-1m"}, "/resyncPeriod"),
        # The operator refuses an in-use refresh under a minute at start; the chart refuses it at install.
        ({"inUseRefresh": "10s"}, "/inUseRefresh"),
        ({"extraArgs": "--foo"}, "/extraArgs"),
        ({"extraEnv": [{"name": "A", "vaule": "1"}]}, "'vaule' not allowed"),
        ({"volumes": [{"name": "tmp", "emptydir": {}}]}, "'emptydir' not allowed"),
        ({"volumeMounts": [{"name": "tmp"}]}, "/volumeMounts/0"),
        ({"volumeMounts": [{"name": "tmp", "mountPath": "/tmp", "readonly": True}]}, "'readonly' not allowed"),
        ({"commonLabels": {"team": 1}}, "/commonLabels/team"),
        ({"deploymentAnnotations": {"a": True}}, "/deploymentAnnotations/a"),
        ({"serviceAccount": {"label": {}}}, "'label' not allowed"),
        ({"revisionHistoryLimit": -1}, "/revisionHistoryLimit"),
        ({"crds": {"annotation": {}}}, "'annotation' not allowed"),
        ({"admissionPolicy": {"enabled": "true"}}, "/admissionPolicy/enabled"),
        ({"admissionPolicy": {"enable": True}}, "'enable' not allowed"),
        ({"imagePullSecrets": [{"nmae": "regcred"}]}, "/imagePullSecrets/0"),
        ({"global": {"imagePullSecrets": [{"nmae": "regcred"}]}}, "/global/imagePullSecrets/0"),
        ({"global": {"imagePullSecrets": [""]}}, "/global/imagePullSecrets/0"),
        ({"metrics": {"serviceMonitor": {"relabelings": [{"action": "rename"}]}}}, "/metrics/serviceMonitor/relabelings/0/action"),
        ({"metrics": {"serviceMonitor": {"metricRelabelings": [{"sourcelabels": []}]}}}, "'sourcelabels' not allowed"),
        ({"metrics": {"serviceMonitor": {"annotation": {}}}}, "'annotation' not allowed"),
        ({"metrics": {"prometheusRule": {"enable": True}}}, "'enable' not allowed"),
        ({"metrics": {"prometheusRule": {"alerts": {"pushFailing": {"enabled": False}}}}}, "'pushFailing' not allowed"),
        ({"metrics": {"prometheusRule": {"alerts": {"resourcesStalled": {"for": "15 minutes"}}}}}, "/metrics/prometheusRule/alerts/resourcesStalled/for"),
        ({"metrics": {"prometheusRule": {"alerts": {"certificateExpiringSoon": {"days": 0}}}}}, "/metrics/prometheusRule/alerts/certificateExpiringSoon/days"),
        ({"metrics": {"prometheusRule": {"alerts": {"resourcesStalled": {"days": 3}}}}}, "'days' not allowed"),
        ({"metrics": {"prometheusRule": {"additionalRules": [{"alert": "X"}]}}}, "/metrics/prometheusRule/additionalRules/0"),
        ({"metrics": {"prometheusRule": {"additionalRules": [{"alert": "X", "expr": "up", "labls": {}}]}}}, "'labls' not allowed"),
    ],
)
def test_schema_rejects(chart, values, error):
    with pytest.raises(helm.HelmValuesError) as raised:
        chart.validate_schema(values)
    assert error in str(raised.value)
    # An install renders through the same validation.
    with pytest.raises(helm.HelmError):
        chart.render(values, name="x", namespace="y")


def test_schema_accepts_defaults_and_documented_settings(chart):
    chart.validate_schema(None)
    chart.validate_schema(
        {
            "replicaCount": 0,
            "scope": "namespace",
            "watchNamespace": "apps",
            "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"},
            "securityContext": {"runAsUser": None},  # e.g. OpenShift assigns the UID
            "resources": {"requests": {"cpu": 0.05, "memory": "64Mi"}},
        }
    )
    # Helm passes an umbrella chart's globals to every subchart: keys other charts read must pass.
    chart.validate_schema({"global": {"imagePullSecrets": ["regcred", {"name": "mirror"}], "storageClass": "fast"}})
    chart.validate_schema({"imagePullSecrets": ["regcred", {"name": "mirror"}]})
    chart.validate_schema(
        {
            "metrics": {
                "prometheusRule": {
                    "enabled": True,
                    "alerts": {"pushesFailing": {"for": "1h30m"}},
                    "additionalRules": [{"alert": "X", "expr": "up == 0", "for": "5m", "labels": {"severity": "info"}}],
                },
                "serviceMonitor": {"relabelings": [{"action": "labeldrop", "regex": "pod"}]},
            },
            "networkPolicy": {"dns": {"ports": [{"port": "dns", "protocol": "UDP"}]}},
        }
    )


def test_null_removes_a_security_default(render):
    """`runAsUser: null` (e.g. for OpenShift's assigned UIDs) drops the field instead of failing."""
    objects = render({"securityContext": {"runAsUser": None}, "podSecurityContext": {"runAsUser": None}})
    assert "runAsUser" not in container(objects)["securityContext"]
    assert container(objects)["securityContext"]["runAsNonRoot"] is True


def test_previous_chart_fixture_is_older(chart):
    with helm.Chart.load(str(PREVIOUS_CHART)) as previous:
        assert previous.name == chart.name
        older = tuple(int(x) for x in previous.version.split("."))
        assert older < tuple(int(x) for x in chart.version.split(".")), "bump the chart version for a chart change"


def test_schema_is_closed_at_every_level():
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_objects = []

    def walk(node, path):
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(path)
            for key, child in node.items():
                walk(child, f"{path}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{path}/{i}")

    walk(schema, "")
    # `global` is shared with every chart of an umbrella release, so it must accept their keys too.
    assert open_objects == ["/properties/global"]
    # Every default value has a schema entry (the schema would reject it otherwise).
    assert set(yaml.safe_load((CHART / "values.yaml").read_text())) <= set(schema["properties"])


# --- optional objects --------------------------------------------------------------------------------


def test_optional_objects_are_off_by_default(render):
    kinds = set(render().kinds())
    assert not {"ServiceMonitor", "PodDisruptionBudget", "NetworkPolicy"} & kinds


def test_service_monitor(render):
    objects = render(
        {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}, "interval": "1m"}}},
        api_versions=MONITORING_APIS,
    )
    sm = objects.one("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "1m", "scrapeTimeout": "10s", "honorLabels": False}
    ]
    svc = objects.one("Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["certpush-system"]}
    assert sm["metadata"]["namespace"] == "certpush-system" and "annotations" not in sm["metadata"]
    # A values mistake fails whether or not the cluster serves ServiceMonitors.
    for apis in (MONITORING_APIS, None):
        with pytest.raises(helm.HelmRenderError, match="needs metrics.service.enabled"):
            render({"metrics": {"serviceMonitor": {"enabled": True}, "service": {"enabled": False}}}, api_versions=apis)


def test_service_monitor_namespace_annotations_and_relabelings(render):
    relabelings = [{"action": "replace", "targetLabel": "cluster", "replacement": "eu-1"}]
    metric_relabelings = [{"action": "drop", "sourceLabels": ["__name__"], "regex": "controller_runtime_.*"}]
    sm = render(
        {
            "metrics": {
                "serviceMonitor": {
                    "enabled": True,
                    "namespace": "monitoring",
                    "annotations": {"example.com/owner": "sre"},
                    "relabelings": relabelings,
                    "metricRelabelings": metric_relabelings,
                }
            }
        },
        api_versions=MONITORING_APIS,
    ).one("ServiceMonitor")
    assert sm["metadata"]["namespace"] == "monitoring"
    assert sm["metadata"]["annotations"] == {"example.com/owner": "sre"}
    # It still scrapes the Service in the release namespace.
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["certpush-system"]}
    [endpoint] = sm["spec"]["endpoints"]
    assert endpoint["relabelings"] == relabelings
    assert endpoint["metricRelabelings"] == metric_relabelings


def notes(chart, values=None, api_versions=None) -> str:
    return render_raw(chart, values, api_versions=api_versions)["certpush-operator/templates/NOTES.txt"]


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        ("ServiceMonitor", {"serviceMonitor": {"enabled": True}}),
        ("PrometheusRule", {"prometheusRule": {"enabled": True}}),
    ],
)
def test_monitoring_objects_are_skipped_without_the_api(render, chart, kind, values):
    """Without monitoring.coreos.com/v1 the install must not fail on an unknown kind: the object is
    skipped, and NOTES.txt says so."""
    values = {"metrics": values}
    message = f"{kind} requested but monitoring.coreos.com/v1 {kind} is not installed; skipped"
    assert kind not in render(values).kinds()
    assert message in notes(chart, values)
    # The group alone, without the kind, is not enough either.
    assert kind not in render(values, api_versions=["monitoring.coreos.com/v1"]).kinds()
    # With the API: rendered, and no such message.
    assert kind in render(values, api_versions=MONITORING_APIS).kinds()
    assert message not in notes(chart, values, api_versions=MONITORING_APIS)
    # Not requested: no message either (with the admission policy's API, whose own message is tested below).
    assert "skipped" not in notes(chart, api_versions=ADMISSION_POLICY_APIS)


POLICY_KINDS = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
POLICY_SKIPPED = "admissionPolicy requested but admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy is not served"


def admission_policy(objects) -> tuple[dict, dict]:
    return objects.one("ValidatingAdmissionPolicy"), objects.one("ValidatingAdmissionPolicyBinding")


def test_admission_policy_needs_the_api_and_the_value(render, chart):
    """Rendered by default on a cluster serving the v1 API (1.30+); skipped, with a note saying what that means,
    where it is not served; not rendered, and no note, when turned off."""
    assert sorted(k for k in render(api_versions=ADMISSION_POLICY_APIS).kinds() if k in POLICY_KINDS) == POLICY_KINDS
    assert POLICY_SKIPPED not in notes(chart, api_versions=ADMISSION_POLICY_APIS)
    # Helm's default capabilities (`helm template` without --api-versions), and the group version alone (1.28 and
    # 1.29 serve admissionregistration.k8s.io/v1 for webhooks, without this kind).
    for apis in (None, ["admissionregistration.k8s.io/v1"]):
        assert not set(POLICY_KINDS) & set(render(api_versions=apis).kinds())
        text = notes(chart, api_versions=apis)
        assert POLICY_SKIPPED in text
        assert "may make the\noperator use every Secret in that namespace" in text
    off = {"admissionPolicy": {"enabled": False}}
    assert not set(POLICY_KINDS) & set(render(off, api_versions=ADMISSION_POLICY_APIS).kinds())
    assert POLICY_SKIPPED not in notes(chart, off)


def test_admission_policy_checks_every_secret_reference(render):
    policy, binding = admission_policy(render(api_versions=ADMISSION_POLICY_APIS))
    spec = policy["spec"]
    assert policy["metadata"]["name"] == "certpush-operator-secret-references"
    assert spec["failurePolicy"] == "Fail"
    # The objects on CREATE and UPDATE only: not their status subresource, not DELETE, not ClusterSCMAccounts.
    assert spec["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": ["scm.certpush.dev"],
            "apiVersions": ["*"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["certificatepushes", "scmaccounts"],
        }
    ]
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    for name, field in [("credentials", "credentialsRef"), ("source", "sourceSecretRef")]:
        # Each reference is optional, and read from the object and, for UPDATE, the object before.
        assert f"has(object.spec.{field}.name) ? object.spec.{field}.name : ''" in variables[name]
        assert "oldObject != null" in variables["old" + name.capitalize()]
        assert f"? oldObject.spec.{field}.name : ''" in variables["old" + name.capitalize()]
    [credentials, source] = spec["validations"]
    # An SCMAccount moved to another site, endpoint or IAM endpoint sends its Secret anew: checked like a new name.
    for field in ("site", "endpoint", "iamEndpoint"):
        assert f"has(object.spec.{field})" in variables["destination"]
        assert f"has(oldObject.spec.{field})" in variables["oldDestination"]
    unchanged = {
        "credentials": "(variables.credentials == variables.oldCredentials"
        " && variables.destination == variables.oldDestination)",
        "source": "variables.source == variables.oldSource",
    }
    for validation, name, field in [(credentials, "credentials", "credentialsRef"), (source, "source", "sourceSecretRef")]:
        assert validation["expression"] == (
            f"variables.{name} == '' || {unchanged[name]} || authorizer.group('').resource('secrets')"
            f".namespace(request.namespace).name(variables.{name}).check('get').allowed()"
        )
        # The message names the Secret, its namespace and the field.
        message = validation["messageExpression"]
        assert f"' may not get Secret \"' + variables.{name} + '\" in namespace \"' + request.namespace" in message
        assert f"spec.{field}" in message
        assert validation["reason"] == "Forbidden"
    assert binding["metadata"]["name"] == policy["metadata"]["name"] == binding["spec"]["policyName"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    # Cluster scope: every namespace.
    assert "matchResources" not in binding["spec"]


@pytest.mark.parametrize(
    ("values", "namespaces"),
    [
        ({"scope": "namespace"}, None),  # the release namespace
        ({"scope": "namespace", "watchNamespace": "apps"}, ["apps"]),
        ({"scope": "namespaces", "watchNamespaces": ["team-a", "team-b"]}, ["team-a", "team-b"]),
    ],
)
def test_namespaced_releases_guard_their_namespaces_without_colliding(render, values, namespaces):
    """A namespaced release's policy covers the namespaces its operator reads Secrets in, and its names carry the
    release namespace, so two releases of one name in two namespaces can both be installed."""
    names = set()
    for release_ns in ("team-x", "team-y"):
        policy, binding = admission_policy(render(values, namespace=release_ns, api_versions=ADMISSION_POLICY_APIS))
        assert policy["metadata"]["name"] == f"certpush-operator-{release_ns}-secret-references"
        assert binding["spec"]["policyName"] == policy["metadata"]["name"] == binding["metadata"]["name"]
        assert binding["spec"]["matchResources"]["namespaceSelector"] == {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces or [release_ns]}
            ]
        }
        names.add(policy["metadata"]["name"])
    assert len(names) == 2


def test_pod_disruption_budget(render):
    pdb = render({"podDisruptionBudget": {"enabled": True}}).one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    pdb = render({"podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}}).one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == "50%" and "maxUnavailable" not in pdb["spec"]
    with pytest.raises(helm.HelmRenderError, match="not both"):
        render({"podDisruptionBudget": {"enabled": True, "minAvailable": 1, "maxUnavailable": 1}})


# kube-dns/CoreDNS, NodeLocal DNSCache (pods, and its link-local address: it runs with hostNetwork) and
# OpenShift DNS (port 5353 behind its Service's 53).
DEFAULT_DNS_EGRESS = {
    "ports": [
        {"port": 53, "protocol": "UDP"},
        {"port": 53, "protocol": "TCP"},
        {"port": 5353, "protocol": "UDP"},
        {"port": 5353, "protocol": "TCP"},
    ],
    "to": [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "node-local-dns"}}},
        {"ipBlock": {"cidr": "169.254.20.10/32"}},
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "openshift-dns"}},
            "podSelector": {"matchLabels": {"dns.operator.openshift.io/daemonset-dns": "default"}},
        },
    ],
}


def test_network_policy_dns_peers_and_ports_are_values(render):
    custom = {"to": [{"ipBlock": {"cidr": "10.96.0.10/32"}}], "ports": [{"port": 1053, "protocol": "UDP"}]}
    dns = render({"networkPolicy": {"enabled": True, "dns": custom}}).one("NetworkPolicy")["spec"]["egress"][0]
    assert dns == custom
    # Empty peers: DNS on those ports to any address.
    dns = render({"networkPolicy": {"enabled": True, "dns": {"to": []}}}).one("NetworkPolicy")["spec"]["egress"][0]
    assert "to" not in dns and dns["ports"] == DEFAULT_DNS_EGRESS["ports"]


def test_network_policy(render):
    objects = render(
        {
            "networkPolicy": {
                "enabled": True,
                "apiServer": {"cidrs": ["192.0.2.10/32"]},
                "scm": {"cidrs": ["198.51.100.0/24"]},
                "metrics": {"from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
            }
        }
    )
    spec = objects.one("NetworkPolicy")["spec"]
    assert spec["podSelector"]["matchLabels"] == objects.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [
        {
            "ports": [{"port": "metrics", "protocol": "TCP"}],
            "from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        }
    ]
    dns, api, scm = spec["egress"]
    assert dns == DEFAULT_DNS_EGRESS
    assert api == {
        "ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}],
    }
    assert scm == {"ports": [{"port": 443, "protocol": "TCP"}], "to": [{"ipBlock": {"cidr": "198.51.100.0/24"}}]}
    # Without CIDRs the egress rules still restrict ports (a NetworkPolicy cannot match DNS names).
    _, api, scm = render({"networkPolicy": {"enabled": True}}).one("NetworkPolicy")["spec"]["egress"]
    assert "to" not in api and "to" not in scm


# --- PrometheusRule ----------------------------------------------------------------------------------


def rules_by_alert(objects) -> dict[str, dict]:
    [group] = objects.one("PrometheusRule")["spec"]["groups"]
    return {r.get("alert") or r.get("record"): r for r in group["rules"]}


def metric_names_in(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:certpush|controller_runtime)_[a-z_]+|up)\{", expr))


def readme_metrics_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("- `/metrics`")
    return text[start : text.index("- Logs:", start)]


def stalling_reasons_from_readme() -> set[str]:
    """Reasons whose "pushed again" column is neither "-" nor an automatic "yes, ...": they wait for a human. The
    README table is generated from status::Reason (src/status/reason.rs), whose stalls() decides the same."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Failure reasons") :]
    table = section[section.index("\n|") : section.index("\n\n", section.index("\n|"))]
    rows = re.findall(r"^\| `([A-Za-z]+)` \| .* \| ([^|]+) \|$", table, re.M)
    reasons = {reason: again.strip() for reason, again in rows}
    assert {"Retrying", "PushRejected", "CredentialsNotFound"} <= set(reasons), "README failure table not found"
    return {r for r, again in reasons.items() if again != "-" and not again.startswith("yes")}


PROMETHEUS_RULE = {"metrics": {"prometheusRule": {"enabled": True}}}


def test_prometheus_rule_alerts(render):
    objects = render(PROMETHEUS_RULE, api_versions=MONITORING_APIS)
    rule = objects.one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "certpush-system"
    alerts = rules_by_alert(objects)
    assert sorted(alerts) == [
        "CertpushCertificateExpiringSoon",
        "CertpushCertificateExpiryCritical",
        "CertpushPushesFailing",
        "CertpushResourcesStalled",
    ]
    # Every alert is scoped to the job the chart's ServiceMonitor scrapes (the metrics Service's name).
    job = 'job="{}"'.format(objects.one("Service")["metadata"]["name"])
    for name, alert in alerts.items():
        assert job in alert["expr"], name
        assert alert["labels"]["severity"] in ("warning", "critical"), name
        assert alert["annotations"]["summary"] and alert["annotations"]["description"], name
        # Each alert's runbook is a section of docs/runbooks.md, found by the alert's name.
        base, anchor = alert["annotations"]["runbook_url"].split("#")
        assert base.endswith("/docs/runbooks.md") and anchor == name.lower(), alert["annotations"]["runbook_url"]
        assert f"\n## {name}\n" in (ROOT / "docs" / "runbooks.md").read_text(), f"no runbook section for {name}"
        # The operator's real metric names (README, /metrics).
        for metric in metric_names_in(alert["expr"]):
            assert f"`{metric}" in readme_metrics_section(), f"{name}: {metric} is not a metric the operator exports"

    failing = alerts["CertpushPushesFailing"]
    assert 'certpush_scm_requests_total{operation="push",code!="204",' in failing["expr"]
    assert failing["for"] == "15m"

    stalled = alerts["CertpushResourcesStalled"]
    assert 'certpush_resources{ready="False",' in stalled["expr"]
    regex = re.search(r'reason=~"([^"]+)"', stalled["expr"]).group(1)
    assert set(regex.split("|")) == stalling_reasons_from_readme()

    soon, critical = alerts["CertpushCertificateExpiringSoon"], alerts["CertpushCertificateExpiryCritical"]
    assert "certpush_certificate_expiration_timestamp_seconds{" in soon["expr"]
    # A deposed leader still exports the pre-renewal notAfter: the newest one counts.
    assert soon["expr"].startswith("max by (namespace, exported_namespace, name) (")
    assert soon["expr"].endswith("- time() < 14 * 86400") and soon["labels"]["severity"] == "warning"
    assert critical["expr"].endswith("- time() < 3 * 86400") and critical["labels"]["severity"] == "critical"
    # Prometheus templates reach the rule verbatim (not eaten by Helm).
    assert "{{ $labels.name }}" in soon["annotations"]["description"]


def test_grafana_dashboard_configmap(render):
    assert "ConfigMap" not in render().kinds(), "off by default"
    objects = render({"metrics": {"grafanaDashboard": {"enabled": True, "namespace": "monitoring"}}})
    cm = objects.one("ConfigMap", "certpush-operator-dashboard")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["certpush-operator.json"])
    assert dashboard["uid"] == "certpush-operator"
    assert dashboard == json.loads((CHART / "dashboards" / "certpush-operator.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    titles = " ".join(p["title"] for p in dashboard["panels"])
    for wanted in ("Reconciles", "SCM requests", "Ready reason", "days to expiry"):
        assert wanted in titles, titles
    # Every metric a panel plots is one the operator exports (README, /metrics).
    names = {m for e in exprs for m in re.findall(r"\b((?:certpush|controller_runtime|process|leader_election)_[a-z_]+)\{", e)}
    assert names, exprs
    for name in names:
        documented = re.sub(r"_(bucket|count|sum)$", "", name)
        assert f"`{documented}" in readme_metrics_section(), f"{name} is not a metric the operator exports"


def test_prometheus_rule_values(render):
    extra = {"record": "certpush:pushes:rate5m", "expr": "sum(rate(certpush_scm_requests_total[5m]))"}
    objects = render(
        {
            "metrics": {
                "prometheusRule": {
                    "enabled": True,
                    "namespace": "monitoring",
                    "labels": {"release": "prom"},
                    "annotations": {"example.com/owner": "sre"},
                    "selector": 'job="certpush",cluster="eu-1"',
                    "alertLabels": {"team": "platform"},
                    "alerts": {
                        "pushesFailing": {"for": "30m", "severity": "critical"},
                        "resourcesStalled": {"enabled": False},
                        "certificateExpiringSoon": {"days": 21},
                        "operatorAbsent": {"enabled": True},
                    },
                    "additionalRules": [extra],
                }
            }
        },
        api_versions=MONITORING_APIS,
    )
    meta = objects.one("PrometheusRule")["metadata"]
    assert meta["namespace"] == "monitoring"
    assert meta["labels"]["release"] == "prom"
    assert meta["annotations"] == {"example.com/owner": "sre"}
    alerts = rules_by_alert(objects)
    assert "CertpushResourcesStalled" not in alerts
    assert alerts["CertpushPushesFailing"]["for"] == "30m"
    assert alerts["CertpushPushesFailing"]["labels"] == {"severity": "critical", "team": "platform"}
    assert alerts["CertpushCertificateExpiringSoon"]["expr"].endswith("< 21 * 86400")
    assert alerts["CertpushOperatorAbsent"]["expr"] == 'absent(up{job="certpush",cluster="eu-1"} == 1)'
    for name, alert in alerts.items():
        if "alert" in alert:
            assert 'job="certpush",cluster="eu-1"' in alert["expr"], name
    assert alerts["certpush:pushes:rate5m"] == extra
    # Every alert off and no extra rules: no empty PrometheusRule.
    off = {k: {"enabled": False} for k in ("pushesFailing", "resourcesStalled", "certificateExpiringSoon", "certificateExpiryCritical")}
    assert render({"metrics": {"prometheusRule": {"enabled": True, "alerts": off}}}, api_versions=MONITORING_APIS).all("PrometheusRule") == []


# --- extension values (extraArgs, extraEnv, volumes, labels, annotations) ----------------------------


def test_extra_args_are_appended(render):
    # E.g. a flag the chart sets only in some configurations, pointing at a volume of your own.
    extra = ["--scm-ca-file=/etc/proxy-ca/ca.crt"]
    args = container(render({"extraArgs": extra}))["args"]
    assert args[-1:] == extra
    assert args[:-1] == container(render())["args"]
    assert flags_in(extra) <= run_flags(), "the example flags must be real `run` flags"


def test_env_and_extra_env_are_both_appended(render):
    c = container(
        render(
            {
                "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
                "extraEnv": [
                    {"name": "NO_PROXY", "value": ".svc,.cluster.local"},
                    {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                ],
            }
        )
    )
    assert [e["name"] for e in c["env"]] == ["RUST_LOG", "POD_NAME", "POD_NAMESPACE", "HTTPS_PROXY", "NO_PROXY", "FROM_SECRET"]
    assert c["env"][-1]["valueFrom"] == {"secretKeyRef": {"name": "s", "key": "k"}}


def test_extra_volumes_are_appended_to_the_ca_bundle(render):
    values = {
        "volumes": [{"name": "proxy-ca", "secret": {"secretName": "proxy-ca"}}],
        "volumeMounts": [{"name": "proxy-ca", "mountPath": "/etc/proxy-ca", "readOnly": True}],
    }
    objects = render(values)
    assert objects.one("Deployment")["spec"]["template"]["spec"]["volumes"] == values["volumes"]
    assert container(objects)["volumeMounts"] == values["volumeMounts"]
    objects = render({**values, "scm": {"caBundle": {"configMapName": "corp-ca"}}})
    assert [v["name"] for v in objects.one("Deployment")["spec"]["template"]["spec"]["volumes"]] == ["scm-ca", "proxy-ca"]
    assert [m["name"] for m in container(objects)["volumeMounts"]] == ["scm-ca", "proxy-ca"]


def test_common_labels_on_every_object(render):
    values = {
        "commonLabels": {"example.com/team": "platform", "app.kubernetes.io/name": "not-the-selector"},
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
        "podDisruptionBudget": {"enabled": True},
        "networkPolicy": {"enabled": True},
        "rbac": {"aggregateClusterRoles": True},
    }
    for scope in ("cluster", "namespace"):
        objects = render({**values, "scope": scope}, api_versions=MONITORING_APIS)
        assert {"CustomResourceDefinition", "ClusterRole", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"} <= set(objects.kinds())
        for obj in objects:
            labels = obj["metadata"]["labels"]
            assert labels["example.com/team"] == "platform", (obj["kind"], obj["metadata"]["name"])
            # The chart's own labels win: the immutable selector cannot be changed by commonLabels.
            assert labels["app.kubernetes.io/name"] == "certpush-operator", obj["kind"]
    pod_labels = render(values).one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["example.com/team"] == "platform"
    assert "example.com/team" not in render().one("Deployment")["metadata"]["labels"]


def test_pod_and_deployment_metadata(render):
    objects = render(
        {
            "podLabels": {"team": "platform", "app.kubernetes.io/instance": "other"},
            "podAnnotations": {"example.com/scrape": "true"},
            "deploymentAnnotations": {"reloader.stakater.com/auto": "true"},
            "commonLabels": {"team": "common"},
        }
    )
    deployment = objects.one("Deployment")
    assert deployment["metadata"]["annotations"] == {"reloader.stakater.com/auto": "true"}
    template = deployment["spec"]["template"]["metadata"]
    # podLabels win over commonLabels; neither over the selector labels.
    assert template["labels"]["team"] == "platform"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= template["labels"].items()
    assert template["annotations"] == {"example.com/scrape": "true"}
    assert "annotations" not in render().one("Deployment")["metadata"]


def test_service_account_labels(render):
    sa = render({"serviceAccount": {"labels": {"azure.workload.identity/use": "true"}}}).one("ServiceAccount")
    assert sa["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert sa["metadata"]["labels"]["app.kubernetes.io/name"] == "certpush-operator"


def test_node_selector_defaults_to_linux(render):
    pod = lambda values=None: render(values).one("Deployment")["spec"]["template"]["spec"]  # noqa: E731
    assert pod()["nodeSelector"] == {"kubernetes.io/os": "linux"}
    # Helm merges maps: a user key adds to the default, null removes it.
    assert pod({"nodeSelector": {"pool": "ops"}})["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "ops"}
    assert "nodeSelector" not in pod({"nodeSelector": {"kubernetes.io/os": None}})


def test_global_image_pull_secrets_are_merged(render):
    objects = render({"imagePullSecrets": [{"name": "regcred"}, "mirror"], "global": {"imagePullSecrets": ["shared", {"name": "regcred"}]}})
    expected = [{"name": "regcred"}, {"name": "mirror"}, {"name": "shared"}]
    assert objects.one("Deployment")["spec"]["template"]["spec"]["imagePullSecrets"] == expected
    assert objects.one("ServiceAccount")["imagePullSecrets"] == expected
    only_global = render({"global": {"imagePullSecrets": [{"name": "shared"}]}})
    assert only_global.one("Deployment")["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "shared"}]
    assert "imagePullSecrets" not in render().one("Deployment")["spec"]["template"]["spec"]
    assert "imagePullSecrets" not in render().one("ServiceAccount")


def test_revision_history_limit(render):
    assert render().one("Deployment")["spec"]["revisionHistoryLimit"] == 10
    assert render({"revisionHistoryLimit": 2}).one("Deployment")["spec"]["revisionHistoryLimit"] == 2


def test_crd_annotations_for_gitops(render):
    argo = {"argocd.argoproj.io/sync-options": "Prune=false,Delete=false"}
    for name in CRD_NAMES:
        crd = render({"crds": {"annotations": argo}}).one("CustomResourceDefinition", name)
        assert crd["metadata"]["annotations"] == {**argo, "helm.sh/resource-policy": "keep"}
        crd = render({"crds": {"annotations": argo, "keep": False}}).one("CustomResourceDefinition", name)
        assert crd["metadata"]["annotations"] == argo


def test_notes_warn_about_the_unpublished_default_image(chart):
    warning = "image.repository is the chart's default, ghcr.io/certpush/certpush-operator, which each release"
    text = notes(chart)
    assert warning in text and "make image IMAGE=<registry>/certpush-operator:" in text
    assert warning not in notes(chart, {"image": {"repository": "registry.example.com/certpush-operator"}})


def test_operator_writes_status_by_patch_only():
    """The RBAC grants status patch and no update: the operator must never PUT status."""
    sources = "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.rs"))
    assert "patch_status(" in sources
    assert "replace_status(" not in sources


# --- plain manifests ---------------------------------------------------------------------------------


def test_plain_manifests_are_generated_from_the_chart():
    """deploy/manifests and the chart's CRD template are what generate.py produces now."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "manifests" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def load_kustomized(directory: str = "") -> list[dict]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy" / "manifests" / directory)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_deleting_the_operators_kustomization_keeps_the_crd_and_the_namespace():
    """`kubectl delete -k deploy/manifests` must not delete every CertificatePush (the CRD) or whatever else lives
    in the operator's namespace: each has a kustomization of its own."""
    def names(directory: str) -> list[tuple[str, str]]:
        return [(o["kind"], o["metadata"]["name"]) for o in load_kustomized(directory)]

    assert not {kind for kind, _ in names("")} & {"CustomResourceDefinition", "Namespace"}, names("")
    assert sorted(names("crd")) == sorted(("CustomResourceDefinition", name) for name in CRD_NAMES)
    assert names("namespace") == [("Namespace", "certpush-system")]


def test_plain_manifests_keep_the_contract(render):
    objects = load_kustomized("crd") + load_kustomized("namespace") + load_kustomized()
    names = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    assert names == sorted(
        [
            *[("CustomResourceDefinition", name) for name in CRD_NAMES],
            ("Namespace", "certpush-system"),
            ("ServiceAccount", "certpush-operator"),
            ("ClusterRole", "certpush-operator"),
            ("ClusterRole", "certpush-operator-edit"),
            ("ClusterRole", "certpush-operator-view"),
            ("ClusterRoleBinding", "certpush-operator"),
            ("ValidatingAdmissionPolicy", "certpush-operator-secret-references"),
            ("ValidatingAdmissionPolicyBinding", "certpush-operator-secret-references"),
            ("Role", "certpush-operator-digest-key"),
            ("RoleBinding", "certpush-operator-digest-key"),
            ("Role", "certpush-operator-leader-election"),
            ("RoleBinding", "certpush-operator-leader-election"),
            ("Role", "certpush-operator-secrets"),
            ("RoleBinding", "certpush-operator-secrets"),
            ("Deployment", "certpush-operator"),
            ("Service", "certpush-operator-metrics"),
        ]
    )
    chart_objects = render()
    plain_deploy = next(o for o in objects if o["kind"] == "Deployment")
    chart_deploy = chart_objects.one("Deployment")
    assert plain_deploy["spec"]["template"]["spec"]["securityContext"] == chart_deploy["spec"]["template"]["spec"]["securityContext"]
    assert container_of(plain_deploy) == container(chart_objects)
    ns = next(o for o in objects if o["kind"] == "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for o in objects:
        assert "helm.sh/chart" not in o["metadata"].get("labels", {}), o["metadata"]["name"]


def container_of(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_rbac_yaml_is_the_chart_cluster_mode_rbac(render):
    """The e2e suite and scripts/run.sh apply deploy/manifests/rbac.yaml and run as its ServiceAccount."""
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "manifests" / "rbac.yaml").read_text()) if d]
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ServiceAccount", "certpush-operator"),
        ("ClusterRole", "certpush-operator"),
        ("ClusterRoleBinding", "certpush-operator"),
        ("Role", "certpush-operator-secrets"),
        ("Role", "certpush-operator-digest-key"),
        ("Role", "certpush-operator-leader-election"),
        ("RoleBinding", "certpush-operator-secrets"),
        ("RoleBinding", "certpush-operator-digest-key"),
        ("RoleBinding", "certpush-operator-leader-election"),
    ]
    by_kind = {d["kind"]: d for d in docs}
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    assert rules_of(roles["certpush-operator-secrets"]) == SECRETS_RULES
    assert roles["certpush-operator-secrets"]["metadata"]["namespace"] == "certpush-system"
    assert rules_of(roles["certpush-operator-leader-election"]) == LEASE_RULES
    assert rules_of(roles["certpush-operator-digest-key"]) == DIGEST_KEY_RULES
    assert rules_of(by_kind["ClusterRole"]) == OPERATOR_RULES == rules_of(render().one("ClusterRole", "certpush-operator"))
    subject = by_kind["ClusterRoleBinding"]["subjects"][0]
    assert f"system:serviceaccount:{subject['namespace']}:{subject['name']}" == SA_USER


def test_kustomize_image_override_from_the_docs(tmp_path):
    """The overlay docs/deploy.md shows for using your own image works."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                # kustomize takes bases by relative path only.
                "resources": [os.path.relpath(ROOT / "deploy" / "manifests", tmp_path)],
                "images": [
                    {
                        "name": "ghcr.io/certpush/certpush-operator",
                        "newName": "registry.example.com/certpush-operator",
                        "newTag": "0.1.0",
                    }
                ],
            }
        )
    )
    out = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    deployment = next(d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment")
    assert container_of(deployment)["image"] == "registry.example.com/certpush-operator:0.1.0"
