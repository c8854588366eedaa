//! Shared pieces of the end-to-end suite: the real API server from `control-plane.sh`, the operator binary
//! as a child process, the SCM simulator in-process, and polling helpers.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use certpush_operator::crd::{
    CertificatePush, CertificatePushSpec, CertificatePushStatus, CredentialsRef, TargetService,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use scm_sim::{Sim, SimConfig};
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// How long a test waits for a state it expects, unless it says otherwise.
pub const T: Duration = Duration::from_secs(30);
/// The tokens the simulator accepts in these tests.
pub const GOOD_TOKEN: &str = "e2e-good-token-7d1c0b5e9a4f4b2c8e6d3a1f0b9c8d7e";
/// A well-formed token the simulator rejects (401).
pub const BAD_TOKEN: &str = "e2e-bad-token-0000000000000000000000000000000000";
/// A token the simulator knows but refuses (403).
pub const FORBIDDEN_TOKEN: &str = "e2e-forbidden-token-1111111111111111111111111111";
pub const CERT: &str = "scs1554192131150";
/// Another certificate scm-sim knows by default.
pub const OTHER_CERT: &str = "scs1481110651012";

fn env_path(var: &str) -> PathBuf {
    PathBuf::from(std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the e2e suite through `make test` (it starts the control plane)")
    }))
}

/// The namespace of the operator's own objects in deploy/manifests (its Lease, its digest key Secret).
pub const OPERATOR_NAMESPACE: &str = "certpush-system";

pub fn admin_kubeconfig() -> PathBuf {
    env_path("CERTPUSH_ADMIN_KUBECONFIG")
}

pub fn restricted_kubeconfig() -> PathBuf {
    env_path("CERTPUSH_RESTRICTED_KUBECONFIG")
}

/// A copy of the admin kubeconfig, written into `dir`, whose requests impersonate `user`: the API server authorizes
/// them against exactly that user's RBAC.
pub fn impersonating_kubeconfig(user: &str, dir: &Path) -> PathBuf {
    let mut kc = Kubeconfig::read_from(admin_kubeconfig()).expect("readable kubeconfig");
    for entry in &mut kc.auth_infos {
        entry.auth_info.as_mut().expect("a user").impersonate = Some(user.to_owned());
    }
    let path = dir.join("impersonating.kubeconfig");
    // JSON is YAML: every kubeconfig reader takes it.
    std::fs::write(&path, serde_json::to_string(&kc).unwrap()).unwrap();
    path
}

pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("readable kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("valid kubeconfig");
    Client::try_from(config).expect("client")
}

pub async fn admin() -> Client {
    certpush_operator::install_crypto_provider();
    client_for(&admin_kubeconfig()).await
}

/// Runs kubectl as the admin and returns (success, stdout+stderr).
pub async fn kubectl(args: &[&str]) -> (bool, String) {
    kubectl_at(&admin_kubeconfig(), args).await
}

/// Runs kubectl with `kubeconfig` and returns (success, stdout+stderr).
pub async fn kubectl_at(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The ClusterRole of [`ALL_SECRETS_GRANT`], for tests that bind it in one namespace.
#[allow(dead_code)] // Used by the e2e suite, not the benchmark that shares this file.
pub const ALL_SECRETS_ROLE: &str = "certpush-operator-e2e-all-secrets";

/// What `rbac.secretNamespaces: ["*"]` adds for the operator's ServiceAccount: every Secret read-only.
const ALL_SECRETS_GRANT: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: certpush-operator-e2e-all-secrets
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: certpush-operator-e2e-all-secrets
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: certpush-operator-e2e-all-secrets
subjects:
  - kind: ServiceAccount
    name: certpush-operator
    namespace: certpush-system
"#;

/// Whether the API server serves admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy (Kubernetes 1.30+), which
/// deploy/manifests/admission-policy.yaml needs; 1.28 and 1.29 serve that group version for webhooks only.
pub async fn serves_admission_policies(client: &Client) -> bool {
    let resources = client
        .list_api_group_resources("admissionregistration.k8s.io/v1")
        .await
        .expect("admissionregistration.k8s.io/v1 resources");
    resources
        .resources
        .iter()
        .any(|r| r.name == "validatingadmissionpolicies")
}

/// Installs the CRD from crds/ and the operator's shipped RBAC once per test process, and on 1.30+ the shipped
/// admission policy, as `kubectl apply -k deploy/manifests` does there: every test then shows the operator's own
/// writes (its finalizer patches) pass it.
pub async fn install_once() {
    static DONE: OnceLock<()> = OnceLock::new();
    if DONE.get().is_some() {
        return;
    }
    install(&admin_kubeconfig()).await;
    let _ = DONE.set(());
}

/// Installs the CRD from crds/, the operator's namespace and its shipped RBAC into the cluster `kubeconfig` (as
/// its admin) names, and waits until the CRD is served.
pub async fn install(kubeconfig: &Path) {
    // The directory applies every CRD (CertificatePush and the two account kinds).
    let mut files = vec![format!("{ROOT}/crds/")];
    // Another build (CERTPUSH_OPERATOR_BIN) runs against its own CRDs, applied over these.
    if let Ok(binary) = std::env::var("CERTPUSH_OPERATOR_BIN") {
        let out = Command::new(binary).arg("crd").output().await.expect("crd");
        let crd = std::env::temp_dir().join(format!("certpush-crd-{}.yaml", std::process::id()));
        std::fs::write(&crd, out.stdout).unwrap();
        files.push(crd.display().to_string());
    }
    files.push(format!("{ROOT}/deploy/manifests/namespace/namespace.yaml"));
    files.push(format!("{ROOT}/deploy/manifests/rbac.yaml"));
    // The suite's objects name Secrets of their own namespaces (credentialsRef, sourceSecretRef): what the chart's
    // rbac.secretNamespaces ["*"] grants. The shipped default reads Secrets only in the operator's namespace; the
    // accounts tests prove that shape under an identity of its own.
    let grant = std::env::temp_dir().join(format!("certpush-e2e-secrets-{}.yaml", std::process::id()));
    std::fs::write(&grant, ALL_SECRETS_GRANT).unwrap();
    files.push(grant.display().to_string());
    if serves_admission_policies(&client_for(kubeconfig).await).await {
        files.push(format!("{ROOT}/deploy/manifests/admission-policy.yaml"));
    }
    for file in &files {
        let (ok, out) = kubectl_at(kubeconfig, &["apply", "--server-side", "--force-conflicts", "-f", file]).await;
        assert!(ok, "applying {file}: {out}");
    }
    let (ok, out) = kubectl_at(
        kubeconfig,
        &[
            "wait",
            "--for=condition=Established",
            "crd/certificatepushes.scm.certpush.dev",
            "crd/scmaccounts.scm.certpush.dev",
            "crd/clusterscmaccounts.scm.certpush.dev",
            "--timeout=60s",
        ],
    )
    .await;
    assert!(ok, "CRD not established: {out}");
}

/// A control plane of a test's own (`control-plane.sh start` in a temporary directory): another cluster, for a test
/// of two clusters. Stopped when dropped.
#[allow(dead_code)] // Used by the e2e suite, not the benchmark that shares this file.
pub struct ControlPlane {
    dir: tempfile::TempDir,
}

#[allow(dead_code)] // Used by the e2e suite, not the benchmark that shares this file.
impl ControlPlane {
    /// Starts etcd and kube-apiserver (the cached binaries the suite's control plane runs) and installs the CRD,
    /// the operator's namespace and its RBAC, as [`install_once`] does in the suite's.
    pub async fn start() -> ControlPlane {
        let cp = ControlPlane {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = Command::new("bash")
            .arg(format!("{ROOT}/tests/e2e/control-plane.sh"))
            .arg("start")
            .arg(cp.dir.path())
            .output()
            .await
            .expect("control-plane.sh runs");
        assert!(
            out.status.success(),
            "a second control plane did not start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        install(&cp.admin_kubeconfig()).await;
        cp
    }

    /// The kubeconfig of its admin.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// The kubeconfig of the user named like the operator's ServiceAccount, bound by the shipped RBAC only.
    pub fn restricted_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("restricted.kubeconfig")
    }
}

impl Drop for ControlPlane {
    /// Stops exactly the processes `start` recorded (the script removes the directory).
    fn drop(&mut self) {
        let stopped = std::process::Command::new("bash")
            .arg(format!("{ROOT}/tests/e2e/control-plane.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
        if !stopped.is_ok_and(|o| o.status.success()) {
            eprintln!("could not stop the control plane in {}", self.dir.path().display());
        }
    }
}

/// A fresh namespace per test keeps tests independent while they share one API server.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    install_once().await;
    let name = format!("{prefix}-{}", rand::random::<u32>() % 1_000_000);
    create_namespace(client, &name).await;
    name
}

/// Creates the namespace `name` as [`namespace`] does: Pod Security `restricted`.
pub async fn create_namespace(client: &Client, name: &str) {
    // Pod Security admission enforces `restricted`, as on a hardened cluster.
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }}}))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

pub async fn start_sim() -> Sim {
    let config = SimConfig {
        tokens: vec![GOOD_TOKEN.into(), FORBIDDEN_TOKEN.into()],
        forbidden_tokens: vec![FORBIDDEN_TOKEN.into()],
        ..SimConfig::default()
    };
    Sim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sim starts")
}

/// Sets a label on an object through a merge patch: an edit that triggers a reconcile and changes no spec.
pub async fn label<K>(api: &Api<K>, name: &str, value: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({"metadata": {"labels": {"poke": value}}});
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .expect("label");
}

/// Creates or replaces a Secret holding `token` under the default key.
pub async fn put_secret(client: &Client, ns: &str, name: &str, token: &str) {
    put_secret_data(client, ns, name, &[("token", token)]).await;
}

/// Secret "scm" holding the simulator's access key with `secret_key` and the key's account id (`domainId`), so tests
/// of SCM's answers to it need no IAM.
#[allow(dead_code)] // Used by the e2e suite, not the benchmark that shares this file.
pub async fn put_access_key(client: &Client, ns: &str, secret_key: &str) {
    let domain = scm_sim::default_domain_id(scm_sim::DEMO_ACCESS_KEY);
    let entries = [
        ("accessKey", scm_sim::DEMO_ACCESS_KEY),
        ("secretKey", secret_key),
        ("domainId", domain.as_str()),
    ];
    put_secret_data(client, ns, "scm", &entries).await;
}

/// Creates or replaces a Secret whose whole data is `entries`.
pub async fn put_secret_data(client: &Client, ns: &str, name: &str, entries: &[(&str, &str)]) {
    let data: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "stringData": data,
    }))
    .unwrap();
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await.unwrap() {
        Some(_) => {
            api.replace(name, &PostParams::default(), &secret)
                .await
                .expect("replace secret");
        }
        None => {
            api.create(&PostParams::default(), &secret)
                .await
                .expect("create secret");
        }
    }
}

pub fn spec(cert: &str, service: TargetService, project: &str, secret: &str) -> CertificatePushSpec {
    CertificatePushSpec {
        controller_name: None,
        push_policy: None,
        certificate_id: Some(cert.into()),
        source_secret_ref: None,
        import_policy: None,
        deletion_policy: None,
        target_service: service,
        target_project: project.into(),
        target_projects: Vec::new(),
        credentials_ref: Some(CredentialsRef {
            name: secret.into(),
            token_key: "token".into(),
        }),
        account_ref: None,
        deploy: None,
    }
}

pub async fn create_push(client: &Client, ns: &str, name: &str, spec: CertificatePushSpec) -> Api<CertificatePush> {
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &CertificatePush::new(name, spec))
        .await
        .expect("create CertificatePush");
    api
}

/// Creates CertificatePushes `{prefix}{i}` for each i in `range`, each pushing to its own project `{prefix}{i}`, so
/// the simulator's records tell them apart.
pub async fn create_numbered(client: &Client, ns: &str, prefix: &str, range: std::ops::Range<usize>) {
    for i in range {
        let name = format!("{prefix}{i}");
        create_push(client, ns, &name, spec(CERT, TargetService::Waf, &name, "scm")).await;
    }
}

/// Waits until `{prefix}{i}` is Ready=True/Pushed for each i in `range`.
pub async fn wait_numbered_pushed(
    api: &Api<CertificatePush>,
    prefix: &str,
    range: std::ops::Range<usize>,
    timeout: Duration,
) {
    for i in range {
        wait_for(api, &format!("{prefix}{i}"), timeout, "Ready=True", |cp| {
            ready_is(cp, "True", "Pushed")
        })
        .await;
    }
}

/// The requests about certificate `certificate_id` (the push and the expiry read before it) sent with `token`.
pub fn requests_for(sim: &Sim, certificate_id: &str, token: Option<&str>) -> Vec<scm_sim::Call> {
    let token = token.map(sha256);
    sim.calls()
        .into_iter()
        .filter(|c| c.certificate_id.as_deref() == Some(certificate_id) && c.token_sha256 == token)
        .collect()
}

/// The target projects of `calls`, sorted: with `create_numbered`, one entry per push of an object.
pub fn pushed_projects(calls: &[scm_sim::Call]) -> Vec<String> {
    let mut projects: Vec<String> = calls
        .iter()
        .map(|c| c.body["target_project"].as_str().unwrap_or_default().to_owned())
        .collect();
    projects.sort();
    projects
}

/// `{prefix}0` .. `{prefix}{n-1}`, sorted as `pushed_projects` sorts.
pub fn numbered(prefix: &str, n: usize) -> Vec<String> {
    let mut names: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    names.sort();
    names
}

/// The port the operator logged it serves /metrics on, reading the log after its first `skip` bytes (the log of an
/// earlier run of the same operator comes before).
async fn bound_port(log: &Path, skip: u64) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read(log).unwrap_or_default();
        let fresh = String::from_utf8_lossy(text.get(skip as usize..).unwrap_or_default()).into_owned();
        let port = fresh
            .lines()
            .filter(|l| l.contains("serving /healthz, /readyz and /metrics"))
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .and_then(|v| v["fields"]["addr"].as_str().or(v["addr"].as_str()).map(str::to_owned))
            .and_then(|addr| addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()));
        if let Some(port) = port {
            return port;
        }
        assert!(
            Instant::now() < deadline,
            "the operator logged no metrics address:\n{fresh}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The operator binary, run as a child process against one namespace.
pub struct Operator {
    child: Child,
    pub log: PathBuf,
    pub metrics_port: u16,
    _dir: tempfile::TempDir,
}

impl Operator {
    /// Starts the operator as the restricted ServiceAccount user, so only the shipped RBAC applies.
    pub async fn start(ns: &str, sim: &Sim, log_level: &str) -> Operator {
        Self::start_with_endpoint(ns, &sim.url(), log_level).await
    }

    /// Starts the operator against any SCM endpoint.
    pub async fn start_with_endpoint(ns: &str, endpoint: &str, log_level: &str) -> Operator {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("operator.log");
        Self::spawn(ns, endpoint, log_level, dir, log, restricted_kubeconfig(), &[], &[]).await
    }

    /// Starts the operator with the simulator as its IAM endpoint too (`--iam-endpoint`), where access keys given
    /// without domainId learn it.
    #[allow(dead_code)] // Used by the e2e suite, not the benchmark that shares this file.
    pub async fn start_with_iam(ns: &str, sim: &Sim, log_level: &str) -> Operator {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("operator.log");
        let iam = ["--iam-endpoint", &sim.url()];
        Self::spawn(ns, &sim.url(), log_level, dir, log, restricted_kubeconfig(), &iam, &[]).await
    }

    /// Starts the operator with its own kubeconfig and extra `run` flags.
    pub async fn start_custom(ns: &str, sim: &Sim, kubeconfig: PathBuf, extra: &[&str]) -> Operator {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("operator.log");
        Self::spawn(ns, &sim.url(), "info", dir, log, kubeconfig, extra, &[]).await
    }

    /// Starts the operator with the re-push interval and in-use refresh users get (not the suite's 0 s), plus
    /// `extra` flags: what the benchmark measures.
    #[allow(dead_code)] // Used by the benchmark, not the e2e suite that shares this file.
    pub async fn start_defaults(ns: &str, sim: &Sim, kubeconfig: PathBuf, extra: &[&str]) -> Operator {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("operator.log");
        let defaults = [("MIN_REPUSH_INTERVAL", ""), ("IN_USE_REFRESH", "")];
        Self::spawn(ns, &sim.url(), "info", dir, log, kubeconfig, extra, &defaults).await
    }

    /// Starts the operator with its own kubeconfig and extra environment: a flag given by its variable is one an
    /// older build (CERTPUSH_OPERATOR_BIN) ignores instead of refusing to start, so a test still shows what that
    /// build does.
    #[allow(dead_code)] // Used by the e2e suite, not the benchmark that shares this file.
    pub async fn start_with_env(ns: &str, sim: &Sim, kubeconfig: PathBuf, env: &[(&str, &str)]) -> Operator {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("operator.log");
        Self::spawn(ns, &sim.url(), "info", dir, log, kubeconfig, &[], env).await
    }

    /// Starts the operator watching every namespace, with extra `run` flags (pass a --controller-name of the test's
    /// own, so it leaves the other tests' objects alone).
    #[allow(dead_code)] // Used by the e2e suite, not the benchmark that shares this file.
    pub async fn start_all_namespaces(sim: &Sim, extra: &[&str]) -> Operator {
        Self::start_all_namespaces_as(sim, restricted_kubeconfig(), extra).await
    }

    /// [`Operator::start_all_namespaces`] with its own kubeconfig (another identity's RBAC).
    #[allow(dead_code)] // Used by the e2e suite, not the benchmark that shares this file.
    pub async fn start_all_namespaces_as(sim: &Sim, kubeconfig: PathBuf, extra: &[&str]) -> Operator {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("operator.log");
        Self::spawn("", &sim.url(), "info", dir, log, kubeconfig, extra, &[]).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn spawn(
        ns: &str,
        endpoint: &str,
        level: &str,
        dir: tempfile::TempDir,
        log: PathBuf,
        kubeconfig: PathBuf,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Operator {
        // Port 0: the operator binds a free port and logs it, so no other process can take it in between (picking
        // a free port here and passing it on raced with the other tests' servers).
        let logged_before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        // CERTPUSH_OPERATOR_BIN runs the suite against another build, e.g. to show a new test fails on old code.
        let binary =
            std::env::var("CERTPUSH_OPERATOR_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_certpush-operator").into());
        // An empty namespace watches them all.
        let scope: &[&str] = if ns.is_empty() { &[] } else { &["--namespace", ns] };
        let mut command = Command::new(binary);
        command
            .arg("run")
            .args(scope)
            .args(["--scm-endpoint", endpoint, "--log-format", "json"])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(extra)
            // Tests set re-push annotations back to back; a test of the interval passes the flag, which wins.
            .env("MIN_REPUSH_INTERVAL", "0s")
            // Tests count SCM requests; the status.inUse test passes --in-use-refresh, which wins.
            .env("IN_USE_REFRESH", "0s")
            // scm-sim speaks plain http on loopback.
            .env("ALLOW_INSECURE_ENDPOINT", "true")
            // Where the chart puts it: the shipped RBAC lets the operator create and read it there only.
            .env("DIGEST_KEY_NAMESPACE", OPERATOR_NAMESPACE)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", level)
            .envs(env.iter().copied().filter(|(_, v)| !v.is_empty()));
        // An empty value in `env` unsets the variable: the binary's default applies.
        for (name, _) in env.iter().filter(|(_, v)| v.is_empty()) {
            command.env_remove(name);
        }
        let child = command
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .expect("operator starts");
        let metrics_port = bound_port(&log, logged_before).await;
        let op = Operator {
            child,
            log,
            metrics_port,
            _dir: dir,
        };
        op.wait_ready().await;
        op
    }

    /// Waits for /readyz, i.e. the watches have synced.
    pub async fn wait_ready(&self) {
        self.wait_probe("/readyz", 200).await;
    }

    /// Polls a probe until it answers `want` (within 30 s); returns its body.
    pub async fn wait_probe(&self, path: &str, want: u16) -> String {
        self.wait_probe_for(path, want, Duration::from_secs(30)).await
    }

    /// Polls a probe until it answers `want`; returns its body.
    pub async fn wait_probe_for(&self, path: &str, want: u16, timeout: Duration) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.metrics_port);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().as_u16() == want
            {
                return r.text().await.unwrap_or_default();
            }
            assert!(
                Instant::now() < deadline,
                "{path} did not answer {want} in {timeout:?}; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the process (SIGKILL: the harshest restart) and starts a new one with the same log file.
    pub async fn restart(self, ns: &str, sim: &Sim, level: &str) -> Operator {
        self.restart_with_endpoint(ns, &sim.url(), level).await
    }

    /// Like `restart`, with another SCM endpoint.
    pub async fn restart_with_endpoint(mut self, ns: &str, endpoint: &str, level: &str) -> Operator {
        self.child.kill().await.unwrap();
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        Self::spawn(
            ns,
            endpoint,
            level,
            dir,
            self.log.clone(),
            restricted_kubeconfig(),
            &[],
            &[],
        )
        .await
    }

    /// The value of `certpush_reconciles_total{result=...}` now.
    pub async fn reconciles(&self, result: &str) -> u64 {
        let wanted = format!("certpush_reconciles_total{{result=\"{result}\"}} ");
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(&wanted))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    /// Waits until `certpush_reconciles_total{result}` reaches `at_least`: proof the operator looked again.
    pub async fn wait_reconciles(&self, result: &str, at_least: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = self.reconciles(result).await;
            if n >= at_least {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} reconciles with result {result}, waited for {at_least}; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `poke` (an edit that triggers a reconcile) and waits until the operator has reconciled with `result`
    /// once more than before it.
    pub async fn after_reconcile<F: std::future::Future<Output = ()>>(&self, result: &str, poke: F) {
        let before = self.reconciles(result).await;
        poke.await;
        self.wait_reconciles(result, before + 1).await;
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id, for /proc measurements.
    #[allow(dead_code)] // Used by the benchmark (tests/bench.rs), which shares this file.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGKILL: the process gets no chance to release anything.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, then waits (at most 30 s) for a graceful exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the operator exits after SIGTERM")
            .unwrap()
    }

    /// Polls /metrics until `line` appears (within `timeout`).
    pub async fn wait_metric(&self, line: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.metrics().await.contains(line) {
            assert!(
                Instant::now() < deadline,
                "no {line:?} in /metrics; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Operator {
    /// A failing test shows what the operator logged, whichever assertion failed.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(60).collect();
            eprintln!("--- last operator log lines ({}):", self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Polls until `check` passes on the object's status, or fails the test with the last status seen.
pub async fn wait_for(
    api: &Api<CertificatePush>,
    name: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&CertificatePush) -> bool,
) -> CertificatePush {
    let deadline = Instant::now() + timeout;
    loop {
        let cp = api.get(name).await.expect("get CertificatePush");
        if check(&cp) {
            return cp;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: timed out waiting for {what}; status: {:#?}",
            cp.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn status(cp: &CertificatePush) -> CertificatePushStatus {
    cp.status.clone().unwrap_or_default()
}

/// Hex SHA-256 of `s`: how the simulator records the token and access key it received.
pub fn sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// (status, reason) of a condition, if present.
pub fn condition(cp: &CertificatePush, type_: &str) -> Option<(String, String)> {
    status(cp)
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

pub fn ready_is(cp: &CertificatePush, s: &str, reason: &str) -> bool {
    condition(cp, "Ready") == Some((s.to_string(), reason.to_string()))
}

/// (reason, message) of the Ready condition.
pub fn ready_message(cp: &CertificatePush) -> (String, String) {
    let c = status(cp)
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    (c.reason, c.message)
}

/// Events about one object, as (type, reason, note).
pub async fn events_for(client: &Client, ns: &str, name: &str) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits (30 s at most) until `name` has an Event of `type_` and `reason`, and returns its Events. The operator
/// publishes an Event after the status it describes is written, so a test that saw the status must wait for it.
pub async fn wait_event(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    reason: &str,
) -> Vec<(String, String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = events_for(client, ns, name).await;
        if events.iter().any(|(t, r, _)| t == type_ && r == reason) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: no {type_} {reason} Event in {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The token must not appear in logs (even at trace level), Events or status, in plain or base64 form.
pub async fn assert_no_secret_leak(ns: &str, op: &Operator, tokens: &[&str]) {
    use base64::Engine as _;
    let logs = op.logs();
    assert!(logs.len() > 1000, "trace logs were captured ({} bytes)", logs.len());
    // Events and status are checked through what the API server returns for them.
    let (ok, objects) = kubectl(&["get", "cpush,events.events.k8s.io", "-n", ns, "-o", "yaml"]).await;
    assert!(ok && objects.contains("Pushed"), "{objects}");
    for token in tokens {
        let b64 = base64::engine::general_purpose::STANDARD.encode(token);
        for (place, text) in [("logs", &logs), ("events and status", &objects)] {
            assert!(!text.contains(token), "token found in {place}");
            assert!(!text.contains(&b64), "base64 token found in {place}");
        }
    }
}

/// A TCP proxy to `target` that a test can slow down or sever, to disturb one process's link to a server (the API
/// server) while everything else keeps its own: a delay holds every chunk that long in each direction; severing
/// closes every proxied connection and refuses new ones.
pub struct TcpProxy {
    pub addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
    delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// While true, every connection is closed and new ones are dropped at once (an outage that ends).
    down: tokio::sync::watch::Sender<bool>,
}

/// Copies `from` to `to`, each chunk held for the proxy's delay at the time it was read (order kept).
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            let delay = Duration::from_millis(delay_ms.load(std::sync::atomic::Ordering::Relaxed));
            if tx
                .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

impl TcpProxy {
    pub async fn start(target: std::net::SocketAddr) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, mut severed) = tokio::sync::watch::channel(false);
        let (down, outage) = tokio::sync::watch::channel(false);
        let delay_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let delay = delay_ms.clone();
        tokio::spawn(async move {
            loop {
                // Dropping the listener on a cut refuses new connections; a dropped proxy cuts too.
                let inbound = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((inbound, _)) => inbound,
                        Err(_) => continue,
                    },
                    _ = severed.wait_for(|cut| *cut) => return,
                };
                if *outage.borrow() {
                    continue;
                }
                let (mut severed, mut outage, delay) = (severed.clone(), outage.clone(), delay.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let ((in_read, in_write), (out_read, out_write)) = (inbound.into_split(), outbound.into_split());
                    tokio::select! {
                        _ = async {
                            tokio::join!(
                                delayed_copy(in_read, out_write, delay.clone()),
                                delayed_copy(out_read, in_write, delay),
                            )
                        } => {}
                        _ = severed.wait_for(|cut| *cut) => {}
                        _ = outage.wait_for(|down| *down) => {}
                    }
                });
            }
        });
        TcpProxy {
            addr,
            cut,
            delay_ms,
            down,
        }
    }

    /// Starts (`true`) or ends an outage: while it lasts every connection is closed and new ones are dropped.
    pub fn outage(&self, down: bool) {
        self.down.send_replace(down);
    }

    /// From now on, every chunk read is held `delay` before it is passed on, in each direction.
    pub fn delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn sever(&self) {
        self.cut.send_replace(true);
    }

    /// The address of the API server `kubeconfig` names, for a proxy to it.
    pub fn api_server_of(kubeconfig: &Path) -> std::net::SocketAddr {
        let server = Self::server(kubeconfig);
        let authority = server.trim_start_matches("https://").trim_end_matches('/');
        authority.parse().expect("the API server is an IP:port")
    }

    /// A copy of `kubeconfig`, written into `dir`, that reaches the API server through this proxy (the serving
    /// certificate names the IP, not the port, so TLS still verifies).
    pub fn kubeconfig(&self, kubeconfig: &Path, dir: &Path) -> PathBuf {
        let text = std::fs::read_to_string(kubeconfig).unwrap();
        let proxied = text.replace(&Self::server(kubeconfig), &format!("https://{}", self.addr));
        let path = dir.join("proxied.kubeconfig");
        std::fs::write(&path, proxied).unwrap();
        path
    }

    fn server(kubeconfig: &Path) -> String {
        let kc = Kubeconfig::read_from(kubeconfig).expect("readable kubeconfig");
        let cluster = kc.clusters.first().and_then(|c| c.cluster.as_ref()).expect("a cluster");
        cluster.server.clone().expect("a server URL")
    }
}
