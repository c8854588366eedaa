//! The scale benchmark (`bash scripts/bench.sh`; docs/benchmarks.md has the method and results). It prints numbers;
//! it asserts only what must hold at any speed: exactly one successful push per object, and a quiet steady state.
//!
//! Setup: the real control plane from `tests/e2e/control-plane.sh`, scm-sim with 20 ms latency, the operator's
//! release build (`CERTPUSH_OPERATOR_BIN`) as the restricted ServiceAccount user. For each N in `BENCH_N` (default
//! "1000 5000"): N CertificatePushes created before the operator starts, then N more created while another one
//! runs. Operator API requests are counted from kube-apiserver's own `apiserver_request_total` by verb and
//! resource (the benchmark itself only creates and lists, so the GETs, status PATCHes and Event POSTs are the
//! operator's).
//!
//! With `BENCH_COMPARE=go,kopf` (the default) the same runs are made first with peers doing the same job, on the same
//! API server and scm-sim, each run in its own namespace: a controller-runtime operator (tests/bench/go-peer,
//! `CERTPUSH_GO_PEER_BIN`, as the restricted user) and a kopf one (tests/bench/kopf_operator.py, run by
//! `BENCH_KOPF_PYTHON -m kopf run`, as the admin user); then peer/ours ratios are printed. Times are read from a watch
//! of the objects, as `kubectl get -w` shows them, until the last one is Ready=True.

#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use certpush_operator::crd::{CertificatePush, TargetService};
use futures::StreamExt;
use harness::*;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use scm_sim::{Sim, SimConfig};

const LATENCY: Duration = Duration::from_millis(20);
/// The operator's default `--concurrency`, and the parallelism of the write-ceiling measurement.
const CONCURRENCY: u32 = 64;

/// kube-apiserver's /metrics text.
async fn apiserver_metrics(client: &kube::Client) -> String {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    client.request_text(request).await.expect("kube-apiserver /metrics")
}

/// Sums `apiserver_request_total` by (verb, resource, subresource).
async fn api_requests(client: &kube::Client) -> HashMap<(String, String, String), f64> {
    api_sums(&apiserver_metrics(client).await, "apiserver_request_total")
}

/// Sums a metric of kube-apiserver's /metrics `text` by (verb, resource, subresource).
fn api_sums(text: &str, metric: &str) -> HashMap<(String, String, String), f64> {
    let mut sums = HashMap::new();
    let prefix = format!("{metric}{{");
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        let (labels, value) = line.rsplit_once(' ').unwrap();
        let labels = &labels[prefix.len()..labels.len() - 1];
        let get = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        *sums
            .entry((get("verb"), get("resource"), get("subresource")))
            .or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    sums
}

/// The operator's requests between two snapshots: (reads, status writes, all writes).
fn operator_requests(
    before: &HashMap<(String, String, String), f64>,
    after: &HashMap<(String, String, String), f64>,
) -> (f64, f64, f64) {
    let delta = |verb: &str, resource: &str, sub: &str| {
        let key = (verb.to_owned(), resource.to_owned(), sub.to_owned());
        after.get(&key).copied().unwrap_or(0.0) - before.get(&key).copied().unwrap_or(0.0)
    };
    let reads = delta("GET", "certificatepushes", "") + delta("GET", "secrets", "");
    // Server-side apply is counted as verb APPLY.
    let status_writes = delta("APPLY", "certificatepushes", "status") + delta("PATCH", "certificatepushes", "status");
    let writes = status_writes
        + delta("POST", "events", "")
        + delta("PATCH", "events", "")
        + delta("PATCH", "certificatepushes", "");
    (reads, status_writes, writes)
}

/// The kind of an operator's request, e.g. "PATCH certificatepushes/status", for a counter key of kube-apiserver's
/// metrics; None for what the benchmark itself sends (creates, lists, watches) and for other resources.
fn operator_kind((verb, resource, sub): &(String, String, String)) -> Option<String> {
    let ours = ["certificatepushes", "secrets", "events"].contains(&resource.as_str())
        && !matches!(verb.as_str(), "LIST" | "WATCH")
        && !(verb == "POST" && resource == "certificatepushes");
    let sub = if sub.is_empty() {
        String::new()
    } else {
        format!("/{sub}")
    };
    ours.then(|| format!("{verb} {resource}{sub}"))
}

/// The operator's requests per object between two snapshots, by verb and resource (those of the objects, their
/// Secrets and Events, less the benchmark's own creates and lists), e.g. "GET secrets 1.00, PATCH
/// certificatepushes/status 1.00".
fn requests_by_kind(
    before: &HashMap<(String, String, String), f64>,
    after: &HashMap<(String, String, String), f64>,
    n: usize,
) -> String {
    let mut kinds: Vec<String> = after
        .iter()
        .filter_map(|(key, value)| {
            let delta = value - before.get(key).copied().unwrap_or(0.0);
            let kind = operator_kind(key)?;
            (delta > 0.0).then(|| format!("{kind} {:.2}", delta / n as f64))
        })
        .collect();
    kinds.sort();
    kinds.join(", ")
}

/// `apiserver_request_duration_seconds` sums and counts, for [`server_latency`].
async fn server_latency_sums(client: &kube::Client) -> [HashMap<(String, String, String), f64>; 2] {
    let text = apiserver_metrics(client).await;
    [
        api_sums(&text, "apiserver_request_duration_seconds_sum"),
        api_sums(&text, "apiserver_request_duration_seconds_count"),
    ]
}

/// The API server's mean time per request of the kinds an operator sends (Secret GETs, status writes, Event POSTs)
/// between two snapshots: where a contender's writes cost the server more, e.g. "APPLY certificatepushes/status
/// 12.3 ms".
fn server_latency(
    before: &[HashMap<(String, String, String), f64>; 2],
    after: &[HashMap<(String, String, String), f64>; 2],
) -> String {
    let delta = |i: usize, key: &(String, String, String)| {
        after[i].get(key).copied().unwrap_or(0.0) - before[i].get(key).copied().unwrap_or(0.0)
    };
    let mut kinds: Vec<String> = after[1]
        .keys()
        .filter_map(|key| {
            let count = delta(1, key);
            let kind = operator_kind(key)?;
            (count >= 1.0).then(|| format!("{kind} {:.1} ms", delta(0, key) / count * 1000.0))
        })
        .collect();
    kinds.sort();
    kinds.join(", ")
}

/// Where this operator's time went, from its own metrics: the mean time of a reconcile and how busy its slots were
/// over the run (reconcile time over `--concurrency` x the run), then the mean time the operator waited for each
/// kind of API request (connection wait included) and SCM request. Read after the run, so it covers the whole run.
async fn breakdown(op: &Operator, seconds: f64) -> String {
    let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", op.metrics_port))
        .await
        .expect("the operator's /metrics")
        .text()
        .await
        .unwrap_or_default();
    // (metric, labels) -> value, for the _sum and _count lines.
    let value = |name: &str, suffix: &str| -> Vec<(String, f64)> {
        let prefix = format!("{name}_{suffix}");
        text.lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|rest| {
                let (labels, value) = rest.rsplit_once(' ')?;
                Some((labels.to_owned(), value.parse().ok()?))
            })
            .collect()
    };
    let means = |name: &str| -> Vec<String> {
        let counts = value(name, "count");
        value(name, "sum")
            .into_iter()
            .filter_map(|(labels, sum)| {
                let count = counts.iter().find(|(l, _)| *l == labels)?.1;
                let labels = labels.trim_matches(|c| c == '{' || c == '}').replace('"', "");
                (count > 0.0).then(|| format!("{labels} {:.1} ms x{count:.0}", sum / count * 1000.0))
            })
            .collect()
    };
    let reconcile_sum: f64 = value("controller_runtime_reconcile_time_seconds", "sum")
        .iter()
        .map(|(_, v)| v)
        .sum();
    let reconciles: f64 = value("controller_runtime_reconcile_time_seconds", "count")
        .iter()
        .map(|(_, v)| v)
        .sum();
    format!(
        "reconciles {reconciles:.0}, mean {:.1} ms, slots busy {:.0}% | API (client side) {} | SCM {}",
        reconcile_sum / reconciles.max(1.0) * 1000.0,
        reconcile_sum / (seconds * f64::from(our_concurrency())) * 100.0,
        means("rest_client_request_duration_seconds").join(", "),
        means("certpush_scm_request_duration_seconds").join(", "),
    )
}

/// Peak resident memory (MiB) and CPU seconds of a process, from /proc.
fn rss_and_cpu(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of /proc/pid/stat, 12 and 13 after the command; 100 ticks a second.
    (hwm_kib / 1024.0, (ticks(11) + ticks(12)) / 100.0)
}

async fn create_all(client: &kube::Client, ns: &str, n: usize) {
    futures::stream::iter(0..n)
        .for_each_concurrent(32, |i| async move {
            let spec = spec(CERT, TargetService::Waf, &format!("p{i}"), "scm");
            let api: Api<CertificatePush> = Api::namespaced(client.clone(), ns);
            api.create(&PostParams::default(), &CertificatePush::new(&format!("cp-{i}"), spec))
                .await
                .expect("create");
        })
        .await;
}

/// Watches `ns` as `kubectl get -w` would and returns the instant the last of `n` objects turned Ready=True. The
/// watch starts before the clock does, so its initial list is not part of the time measured.
fn ready_clock(client: &kube::Client, ns: &str, n: usize) -> tokio::task::JoinHandle<Instant> {
    use kube::runtime::watcher;
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), ns);
    let ns = ns.to_owned();
    tokio::spawn(async move {
        let mut ready = std::collections::HashSet::new();
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Some(event) = events.next().await {
            let (watcher::Event::Apply(cp) | watcher::Event::InitApply(cp)) = event.expect("watch CertificatePushes")
            else {
                continue;
            };
            let name = cp.metadata.name.clone().unwrap_or_default();
            if ready_is(&cp, certpush_operator::status::TRUE, "Pushed") {
                ready.insert(name);
            } else {
                ready.remove(&name);
            }
            if ready.len() == n {
                return Instant::now();
            }
        }
        panic!("the watch of {ns} ended");
    })
}

/// How a status is written: what the ceiling is measured with.
#[derive(Clone, Copy, Debug)]
enum StatusWrite {
    /// A forced server-side apply (this operator before issue 33).
    Apply,
    /// A JSON patch replacing the whole status (this operator now).
    JsonPatch,
    /// A JSON merge patch (the controller-runtime and kopf peers).
    MergePatch,
}

/// The API server's status-write ceiling on this machine: writes of `n` objects' status, CONCURRENCY at a time, the
/// way `how` writes them. The status is the size and shape of a pushed object's (`round` makes each pass differ).
async fn status_write_ceiling(client: &kube::Client, ns: &str, n: usize, how: StatusWrite, round: usize) -> f64 {
    let started = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(CONCURRENCY as usize, |i| async move {
            let api: Api<CertificatePush> = Api::namespaced(client.clone(), ns);
            let name = format!("cp-{i}");
            let at = format!("2026-12-07T10:{:02}:{:02}Z", round % 60, i % 60);
            let status = serde_json::json!({
                "observedGeneration": 1, "pushedGeneration": 1, "httpStatus": 204,
                "requestId": format!("ceiling-{round}-{i}"), "lastAttemptTime": at, "lastPushTime": at,
                "credentialsDigest": format!("sha256:{:064x}", round * 100_000 + i),
                "pushed": {"certificateId": CERT, "targetService": "WAF", "targetProject": format!("p{i}"),
                    "generation": 1},
                "conditions": [{"type": "Ready", "status": "True", "reason": "Pushed", "observedGeneration": 1,
                    "lastTransitionTime": at, "message": format!("Pushed {CERT} to WAF in p{i}")}],
            });
            let written = match how {
                StatusWrite::Apply => {
                    let patch = serde_json::json!({
                        "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "CertificatePush", "status": status,
                    });
                    api.patch_status(&name, &PatchParams::apply("bench").force(), &Patch::Apply(&patch))
                        .await
                }
                StatusWrite::JsonPatch => {
                    // Without this operator's resourceVersion condition, which needs a read first and costs the
                    // server nothing more (it compares the version it loads anyway).
                    let patch = serde_json::json!([{"op": "add", "path": "/status", "value": status}]);
                    let patch = Patch::Json::<()>(serde_json::from_value(patch).unwrap());
                    api.patch_status(&name, &PatchParams::default(), &patch).await
                }
                StatusWrite::MergePatch => {
                    api.patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(serde_json::json!({"status": status})),
                    )
                    .await
                }
            };
            written.expect("status write");
        })
        .await;
    n as f64 / started.elapsed().as_secs_f64()
}

/// Waits, once every object is Ready, until the operator's API writes stop (unchanged for 1 s, checked every 250 ms;
/// at most 60 s): kopf posts its Events in the background, after the status. Returns the last snapshot and the seconds
/// from `started` to the first snapshot that held the final count.
async fn settle(
    client: &kube::Client,
    before: &HashMap<(String, String, String), f64>,
    started: Instant,
) -> (HashMap<(String, String, String), f64>, f64) {
    let mut last = api_requests(client).await;
    let mut last_writes = operator_requests(before, &last).2;
    let mut changed_at = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut unchanged = 0;
    while unchanged < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = api_requests(client).await;
        let writes = operator_requests(before, &now).2;
        if writes == last_writes {
            unchanged += 1;
        } else {
            unchanged = 0;
            changed_at = started.elapsed().as_secs_f64();
        }
        (last, last_writes) = (now, writes);
    }
    (last, changed_at)
}

/// The operator's `--concurrency`: `BENCH_CONCURRENCY`, by default 64 (the operator's default).
fn our_concurrency() -> u32 {
    std::env::var("BENCH_CONCURRENCY")
        .map(|c| c.parse().expect("BENCH_CONCURRENCY is a number"))
        .unwrap_or(CONCURRENCY)
}

/// The flags the benchmark gives this operator beyond the defaults users get, with why (printed with the results).
fn our_flags() -> Vec<(String, &'static str)> {
    let mut flags = vec![
        (
            "--scm-qps 100000 --scm-burst 1000".to_owned(),
            "the default 10 requests/s would make SCM's rate limit, not the operator, the measure",
        ),
        (
            "ALLOW_INSECURE_ENDPOINT=true".to_owned(),
            "scm-sim speaks plain http on loopback",
        ),
    ];
    if our_concurrency() != CONCURRENCY {
        flags.push((format!("--concurrency {}", our_concurrency()), "BENCH_CONCURRENCY"));
    }
    flags
}

/// The operator under measurement.
#[derive(Clone, Copy, PartialEq)]
enum Contender {
    /// This operator's release build, as the restricted ServiceAccount user.
    Ours,
    /// tests/bench/go-peer, a controller-runtime operator (`CERTPUSH_GO_PEER_BIN`), as the restricted user.
    Go,
    /// tests/bench/kopf_operator.py under kopf, as the admin user.
    Kopf,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Ours => "certpush",
            Contender::Go => "go-peer",
            Contender::Kopf => "kopf",
        }
    }

    /// Concurrent pushes, for the ideal time: ours and the Go peer run with `--concurrency 64` (or
    /// `BENCH_CONCURRENCY`); kopf's is unbounded.
    fn concurrency(self, n: usize) -> f64 {
        match self {
            Contender::Ours | Contender::Go => f64::from(our_concurrency()),
            Contender::Kopf => n as f64,
        }
    }

    /// Starts the operator on `ns`. Ours and the Go peer return once /readyz answers (their caches synced); kopf
    /// has no such probe, so `wait_watching` proves it is watching.
    async fn start(self, ns: &str, sim: &Sim) -> Running {
        let concurrency = our_concurrency().to_string();
        match self {
            Contender::Ours => {
                let extra = [
                    "--scm-qps",
                    "100000",
                    "--scm-burst",
                    "1000",
                    "--concurrency",
                    &concurrency,
                ];
                Running::Ours(Operator::start_defaults(ns, sim, restricted_kubeconfig(), &extra).await)
            }
            Contender::Go => Running::Peer(Peer::start_go(ns, sim, &concurrency).await),
            Contender::Kopf => Running::Peer(Peer::start_kopf(ns, sim)),
        }
    }
}

/// A peer operator (the Go one or kopf), a child process killed on drop.
struct Peer {
    name: &'static str,
    child: tokio::process::Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Peer {
    fn spawn(name: &'static str, mut command: tokio::process::Command) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdout(std::process::Stdio::from(file.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Peer {
            name,
            child,
            log,
            _dir: dir,
        }
    }

    /// kopf running tests/bench/kopf_operator.py.
    fn start_kopf(ns: &str, sim: &Sim) -> Peer {
        let python = std::env::var("BENCH_KOPF_PYTHON")
            .expect("BENCH_KOPF_PYTHON: the python of the kopf virtualenv (scripts/bench.sh sets it)");
        let mut command = tokio::process::Command::new(python);
        command
            .args(["-m", "kopf", "run", "--standalone", "--namespace", ns])
            .arg(format!("{ROOT}/tests/bench/kopf_operator.py"))
            // kopf has no RBAC of its own in deploy/: it runs as the admin.
            .env("KUBECONFIG", admin_kubeconfig())
            .env("SCM_ENDPOINT", sim.url())
            .env("PYTHONDONTWRITEBYTECODE", "1");
        Peer::spawn("kopf", command)
    }

    /// The controller-runtime peer; returns once its /readyz answers (its cache synced), as ours does.
    async fn start_go(ns: &str, sim: &Sim, concurrency: &str) -> Peer {
        let binary = std::env::var("CERTPUSH_GO_PEER_BIN")
            .expect("CERTPUSH_GO_PEER_BIN: the Go peer (scripts/bench.sh builds it with tests/bench/go-peer/build.sh)");
        let mut command = tokio::process::Command::new(binary);
        command
            .args(["--namespace", ns, "--scm-endpoint", &sim.url()])
            .args(["--concurrency", concurrency, "--health-addr", "127.0.0.1:0"])
            // The same identity and RBAC as this operator.
            .env("KUBECONFIG", restricted_kubeconfig());
        let peer = Peer::spawn("go-peer", command);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let logs = peer.logs();
            let addr = logs.lines().find_map(|l| l.strip_prefix("health: "));
            if let Some(addr) = addr
                && reqwest::get(format!("http://{addr}/readyz"))
                    .await
                    .is_ok_and(|r| r.status().is_success())
            {
                return peer;
            }
            assert!(Instant::now() < deadline, "the Go peer did not get ready; log:\n{logs}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    /// A failing benchmark shows what the peer logged (the harness's Operator does this itself).
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(60).collect();
            eprintln!("--- last {} log lines ({}):", self.name, self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

enum Running {
    Ours(Operator),
    Peer(Peer),
}

impl Running {
    fn pid(&self) -> u32 {
        match self {
            Running::Ours(op) => op.pid(),
            Running::Peer(p) => p.child.id().expect("the peer is running"),
        }
    }

    fn logs(&self) -> String {
        match self {
            Running::Ours(op) => op.logs(),
            Running::Peer(p) => p.logs(),
        }
    }

    /// Returns once the operator handles new objects. For kopf: a canary object is created, must become Ready,
    /// and is deleted again (kopf adds no finalizer: it has no deletion handler); then the simulator is reset.
    async fn wait_watching(&self, client: &kube::Client, sim: &Sim, ns: &str) {
        if let Running::Peer(Peer { name: "kopf", .. }) = self {
            let api = create_push(client, ns, "canary", spec(CERT, TargetService::Waf, "canary", "scm")).await;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !api
                .get("canary")
                .await
                .is_ok_and(|cp| ready_is(&cp, certpush_operator::status::TRUE, "Pushed"))
            {
                assert!(
                    Instant::now() < deadline,
                    "kopf did not push a canary; log:\n{}",
                    self.logs()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            api.delete("canary", &DeleteParams::default())
                .await
                .expect("delete canary");
            while api.get_opt("canary").await.expect("get canary").is_some() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // kopf posts its Events about the canary in the background.
            tokio::time::sleep(Duration::from_secs(1)).await;
            sim.reset();
        }
    }
}

#[derive(Clone)]
struct Run {
    contender: Contender,
    label: String,
    n: usize,
    seconds: f64,
    settled: f64,
    pushes: usize,
    scm_requests: usize,
    reads: f64,
    status_writes: f64,
    writes: f64,
    by_kind: String,
    server_latency: String,
    breakdown: String,
    rss: f64,
    cpu: f64,
}

/// One measured run of `contender` on N objects in a fresh namespace, created before it starts or while it runs.
async fn run(client: &kube::Client, sim: &Sim, contender: Contender, n: usize, before_start: bool) -> (Run, Running) {
    let when = if before_start { "pre" } else { "live" };
    let ns = namespace(client, &format!("bench-{}-{when}", contender.name())).await;
    put_secret(client, &ns, "scm", GOOD_TOKEN).await;
    sim.reset();
    let (op, before, latency_before, started, clock) = if before_start {
        create_all(client, &ns, n).await;
        let clock = ready_clock(client, &ns, n);
        let (before, latency_before) = (api_requests(client).await, server_latency_sums(client).await);
        let started = Instant::now();
        let op = contender.start(&ns, sim).await;
        println!(
            "N={n:<5} {:<8} ready (cache synced) after {:.2} s",
            contender.name(),
            started.elapsed().as_secs_f64()
        );
        (op, before, latency_before, started, clock)
    } else {
        let op = contender.start(&ns, sim).await;
        op.wait_watching(client, sim, &ns).await;
        let clock = ready_clock(client, &ns, n);
        let (before, latency_before) = (api_requests(client).await, server_latency_sums(client).await);
        let started = Instant::now();
        create_all(client, &ns, n).await;
        (op, before, latency_before, started, clock)
    };
    let limit = Duration::from_secs(120 + n as u64 / 10);
    let Ok(done) = tokio::time::timeout(limit, clock).await else {
        let pushes = sim.successful_pushes().len();
        panic!(
            "{}: not all {n} objects Ready after {limit:?} ({pushes} pushed); log tail:\n{}",
            contender.name(),
            op.logs().lines().rev().take(40).collect::<Vec<_>>().join("\n")
        );
    };
    let seconds = (done.expect("the ready clock") - started).as_secs_f64();
    let (after, settled) = settle(client, &before, started).await;
    let (reads, status_writes, writes) = operator_requests(&before, &after);
    let by_kind = requests_by_kind(&before, &after, n);
    let server_latency = server_latency(&latency_before, &server_latency_sums(client).await);
    let breakdown = match &op {
        Running::Ours(ours) => breakdown(ours, seconds).await,
        Running::Peer(_) => String::new(),
    };
    let (rss, cpu) = rss_and_cpu(op.pid());
    let pushes = sim.successful_pushes().len();
    let label = if before_start {
        "created before start"
    } else {
        "created while running"
    };
    (
        Run {
            contender,
            label: label.to_owned(),
            n,
            seconds,
            settled,
            pushes,
            scm_requests: sim.calls().len(),
            reads,
            status_writes,
            writes,
            by_kind,
            server_latency,
            breakdown,
            rss,
            cpu,
        },
        op,
    )
}

fn report(r: &Run, ceiling: f64) {
    let per = |x: f64| x / r.n as f64;
    let by_latency = r.n as f64 * LATENCY.as_secs_f64() / r.contender.concurrency(r.n);
    let by_writes = r.n as f64 * per(r.writes) / ceiling;
    let ideal = by_latency.max(by_writes);
    println!(
        "N={:<5} {:<8} {:<22} ready in {:>6.2} s (writes done {:.2} s) | pushes/object {:.2}, SCM requests/object \
         {:.3} | API reads/object {:.2}, status writes/object {:.2}, writes/object {:.2} | peak RSS {:.1} MiB | CPU \
         {:.2} s | ideal {:.2} s (N*latency/concurrency {:.2} s, N*writes/ceiling {:.2} s) | ratio {:.2}",
        r.n,
        r.contender.name(),
        r.label,
        r.seconds,
        r.settled,
        r.pushes as f64 / r.n as f64,
        r.scm_requests as f64 / r.n as f64,
        per(r.reads),
        per(r.status_writes),
        per(r.writes),
        r.rss,
        r.cpu,
        ideal,
        by_latency,
        by_writes,
        r.seconds / ideal
    );
    println!(
        "N={:<5} {:<8} {:<22} API requests/object: {} | kube-apiserver time per request: {}",
        r.n,
        r.contender.name(),
        r.label,
        r.by_kind,
        r.server_latency
    );
    if !r.breakdown.is_empty() {
        println!(
            "N={:<5} {:<8} {:<22} breakdown: {}",
            r.n,
            r.contender.name(),
            r.label,
            r.breakdown
        );
    }
}

/// A peer against ours for the same N and the same way of creating: the peer's figure over ours (above 1: ours is
/// faster, leaner, cheaper).
fn compare(ours: &Run, peer: &Run) {
    let vs = |p: f64, o: f64, unit: &str| format!("{:.2}x ({p:.2} / {o:.2}{unit})", p / o);
    let per = |r: &Run, x: f64| x / r.n as f64;
    println!(
        "N={:<5} {}/certpush {:<22} time to Ready {} | until writes done {} | peak RSS {} | CPU {} | API \
         reads/object {:.2} / {:.2}, writes/object {:.2} / {:.2} | SCM requests/object {:.3} / {:.3}",
        ours.n,
        peer.contender.name(),
        ours.label,
        vs(peer.seconds, ours.seconds, " s"),
        vs(peer.settled, ours.settled, " s"),
        vs(peer.rss, ours.rss, " MiB"),
        vs(peer.cpu, ours.cpu, " s"),
        per(peer, peer.reads),
        per(ours, ours.reads),
        per(peer, peer.writes),
        per(ours, ours.writes),
        per(peer, peer.scm_requests as f64),
        per(ours, ours.scm_requests as f64),
    );
}

/// Created before start, then the steady state, then created while running: the runs of one contender for one N.
async fn measure(
    client: &kube::Client,
    sim: &Sim,
    contender: Contender,
    n: usize,
    steady: u64,
    ceiling: f64,
) -> [Run; 2] {
    let name = contender.name();
    let (pre, op) = run(client, sim, contender, n, true).await;
    report(&pre, ceiling);
    if contender == Contender::Ours {
        assert_eq!(pre.pushes, n, "exactly one successful push per object");
    }
    // Steady state: nothing changes, so nothing may be sent or written (asserted for ours; the peers' is reported).
    let before = api_requests(client).await;
    let calls = sim.calls().len();
    tokio::time::sleep(Duration::from_secs(steady)).await;
    let (reads, _, writes) = operator_requests(&before, &api_requests(client).await);
    let (rss, _) = rss_and_cpu(op.pid());
    let scm = sim.calls().len() - calls;
    println!(
        "N={n:<5} {name:<8} steady state for {steady} s: SCM calls {scm}, API reads {reads:.0}, API writes \
         {writes:.0}, peak RSS {rss:.1} MiB"
    );
    if contender == Contender::Ours {
        assert_eq!((scm, writes as u64), (0, 0), "a quiet steady state");
    }
    drop(op);

    let (live, op) = run(client, sim, contender, n, false).await;
    report(&live, ceiling);
    if contender == Contender::Ours {
        assert_eq!(live.pushes, n, "exactly one successful push per object");
    }
    drop(op);
    [pre, live]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: run `bash scripts/bench.sh`"]
async fn scale_benchmark() {
    let client = admin().await;
    install_once().await;
    let sizes: Vec<usize> = std::env::var("BENCH_N")
        .unwrap_or_else(|_| "1000 5000".into())
        .split_whitespace()
        .map(|n| n.parse().expect("BENCH_N holds numbers"))
        .collect();
    let steady: u64 = std::env::var("BENCH_STEADY_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    // The peers measured beside this operator: BENCH_COMPARE="go,kopf" by default, "none" for ours alone.
    let peers: Vec<Contender> = std::env::var("BENCH_COMPARE")
        .unwrap_or_else(|_| "go,kopf".into())
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "none")
        .map(|p| match p {
            "go" => Contender::Go,
            "kopf" => Contender::Kopf,
            other => panic!("BENCH_COMPARE: {other:?} is not a peer (go, kopf or none)"),
        })
        .collect();
    let config = SimConfig {
        tokens: vec![GOOD_TOKEN.into()],
        latency: LATENCY,
        ..SimConfig::default()
    };
    let sim = Sim::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();

    // The API server's status-write ceiling, measured on 1,000 objects nobody reconciles.
    let probe_ns = namespace(&client, "bench-ceiling").await;
    create_all(&client, &probe_ns, 1000).await;
    // Each kind twice, interleaved, so a drift of the machine weighs on all; the ideal uses this operator's kind.
    let mut rates: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 0..6 {
        let how = [StatusWrite::Apply, StatusWrite::JsonPatch, StatusWrite::MergePatch][round % 3];
        let rate = status_write_ceiling(&client, &probe_ns, 1000, how, round).await;
        rates
            .entry(match how {
                StatusWrite::Apply => "server-side apply",
                StatusWrite::JsonPatch => "JSON patch",
                StatusWrite::MergePatch => "merge patch",
            })
            .or_default()
            .push(rate);
    }
    let mut kinds: Vec<_> = rates.iter().collect();
    kinds.sort_by_key(|(kind, _)| *kind);
    for (kind, r) in kinds {
        println!(
            "kube-apiserver status-write ceiling, {kind}: {:.0} and {:.0} writes/s ({CONCURRENCY} at a time)",
            r[0], r[1]
        );
    }
    let ceiling = rates["JSON patch"].iter().sum::<f64>() / 2.0;
    println!("certpush: the defaults users get, except:");
    for (flag, why) in our_flags() {
        println!("  {flag}: {why}");
    }
    if peers.contains(&Contender::Go) {
        println!(
            "go-peer: tests/bench/go-peer (controller-runtime), --concurrency {}, client-side throttling off, as the \
             restricted ServiceAccount user",
            our_concurrency()
        );
    }
    if peers.contains(&Contender::Kopf) {
        println!(
            "kopf: tests/bench/kopf_operator.py, `python -m kopf run --standalone`, as the admin user (it has no RBAC in \
             deploy/), unbounded concurrency"
        );
    }
    if !peers.is_empty() {
        println!(
            "on the same API server and scm-sim; the peers run first for the 1st, 3rd, ... N of BENCH_N and last for \
             the others (BENCH_N=\"1000 1000\" measures both orders)"
        );
    }

    let mut comparisons = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        // Whatever the earlier runs leave behind in etcd (objects, Events) weighs on the later ones: the order
        // alternates from one N to the next, so neither side always runs on the fuller etcd.
        let peers_first = i % 2 == 0;
        let mut ours = None;
        if !peers_first {
            ours = Some(measure(&client, &sim, Contender::Ours, n, steady, ceiling).await);
        }
        let mut measured = Vec::new();
        for &peer in &peers {
            measured.push(measure(&client, &sim, peer, n, steady, ceiling).await);
        }
        let ours = match ours {
            Some(ours) => ours,
            None => measure(&client, &sim, Contender::Ours, n, steady, ceiling).await,
        };
        for peer in measured {
            comparisons.extend(ours.iter().zip(peer).map(|(o, p)| (o.clone(), p)));
        }
    }
    for (ours, peer) in &comparisons {
        compare(ours, peer);
    }
}

/// SCM requests per push under the flags users run (`--scm-qps 10`, `--in-use-refresh 1h`): for each N in
/// `BENCH_RATE_N` (default "100 1000") N plain certificateId pushes of one certificate, created before the operator
/// starts; prints the time until all are Ready against N / qps (the rate limit is what users wait on) and the SCM
/// requests per object by operation. Asserts only one successful push per object.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: run `bash scripts/bench.sh`"]
async fn requests_per_push_at_the_default_rate() {
    const QPS: f64 = 10.0;
    let client = admin().await;
    install_once().await;
    let sim = Sim::start(
        SimConfig {
            tokens: vec![GOOD_TOKEN.into()],
            latency: LATENCY,
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let sizes: Vec<usize> = std::env::var("BENCH_RATE_N")
        .unwrap_or_else(|_| "100 1000".into())
        .split_whitespace()
        .map(|n| n.parse().expect("BENCH_RATE_N holds numbers"))
        .collect();
    for n in sizes {
        let ns = namespace(&client, "bench-rate").await;
        put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
        sim.reset();
        create_all(&client, &ns, n).await;
        let clock = ready_clock(&client, &ns, n);
        let started = Instant::now();
        let op = Operator::start_defaults(&ns, &sim, restricted_kubeconfig(), &[]).await;
        let seconds = (clock.await.expect("the ready clock") - started).as_secs_f64();
        let mut by_operation: std::collections::BTreeMap<String, usize> = Default::default();
        for call in sim.calls() {
            let operation = match (call.method.as_str(), call.path.rsplit('/').next().unwrap_or_default()) {
                ("GET", id) if id.starts_with("scs") => "show".to_owned(),
                (method, last) => format!("{method} {last}"),
            };
            *by_operation.entry(operation).or_default() += 1;
        }
        let total: usize = by_operation.values().sum();
        let per: Vec<String> = by_operation
            .iter()
            .map(|(op, count)| format!("{op} {:.3}", *count as f64 / n as f64))
            .collect();
        let ideal = n as f64 / QPS;
        println!(
            "N={n:<5} default flags (--scm-qps 10): ready in {seconds:.2} s, N/qps {ideal:.1} s, ratio {:.2} | SCM \
             requests/object {:.3} ({})",
            seconds / ideal,
            total as f64 / n as f64,
            per.join(", ")
        );
        assert_eq!(
            sim.successful_pushes().len(),
            n,
            "exactly one successful push per object"
        );
        drop(op);
    }
}
