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
//! With `BENCH_COMPARE=kopf` (scripts/bench.sh's default) the same runs are made first with a kopf (Python) operator
//! doing the same job (tests/bench/kopf_operator.py, run by `BENCH_KOPF_PYTHON -m kopf run`, as the admin user), on
//! the same API server and scm-sim, each run in its own namespace; then kopf/ours ratios are printed.

#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use certpush_operator::crd::{CertificatePush, TargetService};
use futures::StreamExt;
use harness::*;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use scm_sim::{Sim, SimConfig};

const LATENCY: Duration = Duration::from_millis(20);
/// The operator's default `--concurrency`, and the parallelism of the write-ceiling measurement.
const CONCURRENCY: u32 = 64;

/// Sums `apiserver_request_total` by (verb, resource, subresource).
async fn api_requests(client: &kube::Client) -> HashMap<(String, String, String), f64> {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.expect("kube-apiserver /metrics");
    let mut sums = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let (labels, value) = line.rsplit_once(' ').unwrap();
        let labels = &labels["apiserver_request_total{".len()..labels.len() - 1];
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
        .filter(|((verb, resource, _), _)| {
            ["certificatepushes", "secrets", "events"].contains(&resource.as_str())
                && !matches!(verb.as_str(), "LIST" | "WATCH")
                && !(verb == "POST" && resource == "certificatepushes")
        })
        .filter_map(|(key, value)| {
            let delta = value - before.get(key).copied().unwrap_or(0.0);
            let (verb, resource, sub) = key;
            let sub = if sub.is_empty() {
                String::new()
            } else {
                format!("/{sub}")
            };
            (delta > 0.0).then(|| format!("{verb} {resource}{sub} {:.2}", delta / n as f64))
        })
        .collect();
    kinds.sort();
    kinds.join(", ")
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

/// Waits until every object in `ns` is Ready=True. The simulator's count of pushes is watched first (free); only
/// then is the API server listed (every 200 ms), so the benchmark's own LISTs of thousands of objects do not
/// compete with the operator it measures.
async fn all_ready(client: &kube::Client, sim: &Sim, ns: &str, n: usize) {
    while sim.successful_pushes().len() < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), ns);
    loop {
        let list = api.list(&ListParams::default()).await.expect("list");
        let ready = list
            .items
            .iter()
            .filter(|cp| ready_is(cp, certpush_operator::status::TRUE, "Pushed"))
            .count();
        if ready == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The API server's status-write ceiling on this machine: PATCHes of `n` objects' status, CONCURRENCY at a time.
async fn status_write_ceiling(client: &kube::Client, ns: &str, n: usize) -> f64 {
    let started = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(CONCURRENCY as usize, |i| async move {
            let api: Api<CertificatePush> = Api::namespaced(client.clone(), ns);
            let patch = serde_json::json!({
                "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "CertificatePush",
                "status": {"errorMessage": format!("ceiling probe {i}")},
            });
            api.patch_status(
                &format!("cp-{i}"),
                &PatchParams::apply("bench").force(),
                &Patch::Apply(&patch),
            )
            .await
            .expect("status patch");
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

/// The operator under measurement.
#[derive(Clone, Copy, PartialEq)]
enum Contender {
    /// This operator's release build, as the restricted ServiceAccount user.
    Ours,
    /// tests/bench/kopf_operator.py under kopf, as the admin user.
    Kopf,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Ours => "certpush",
            Contender::Kopf => "kopf",
        }
    }

    /// Concurrent pushes, for the ideal time: ours runs with `--concurrency 64` (or `BENCH_CONCURRENCY`); kopf's is
    /// unbounded.
    fn concurrency(self, n: usize) -> f64 {
        match self {
            Contender::Ours => f64::from(our_concurrency()),
            Contender::Kopf => n as f64,
        }
    }

    /// Starts the operator on `ns`. Ours returns once /readyz answers (its watches synced); kopf has no such probe,
    /// so `wait_watching` proves it is watching.
    async fn start(self, ns: &str, sim: &Sim) -> Running {
        match self {
            Contender::Ours => {
                let concurrency = our_concurrency().to_string();
                let extra = [
                    "--scm-qps",
                    "100000",
                    "--scm-burst",
                    "1000",
                    "--concurrency",
                    &concurrency,
                ];
                Running::Ours(Operator::start_custom(ns, sim, restricted_kubeconfig(), &extra).await)
            }
            Contender::Kopf => Running::Kopf(Kopf::start(ns, sim)),
        }
    }
}

/// kopf running tests/bench/kopf_operator.py, a child process (killed on drop).
struct Kopf {
    child: tokio::process::Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Kopf {
    fn start(ns: &str, sim: &Sim) -> Kopf {
        let python = std::env::var("BENCH_KOPF_PYTHON")
            .expect("BENCH_KOPF_PYTHON: the python of the kopf virtualenv (scripts/bench.sh sets it)");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("kopf.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(python)
            .args(["-m", "kopf", "run", "--standalone", "--namespace", ns])
            .arg(format!("{ROOT}/tests/bench/kopf_operator.py"))
            // kopf has no RBAC of its own in deploy/: it runs as the admin.
            .env("KUBECONFIG", admin_kubeconfig())
            .env("SCM_ENDPOINT", sim.url())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdout(std::process::Stdio::from(file.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .expect("kopf starts");
        Kopf { child, log, _dir: dir }
    }
}

enum Running {
    Ours(Operator),
    Kopf(Kopf),
}

impl Running {
    fn pid(&self) -> u32 {
        match self {
            Running::Ours(op) => op.pid(),
            Running::Kopf(k) => k.child.id().expect("kopf is running"),
        }
    }

    fn logs(&self) -> String {
        match self {
            Running::Ours(op) => op.logs(),
            Running::Kopf(k) => std::fs::read_to_string(&k.log).unwrap_or_default(),
        }
    }

    /// Returns once the operator handles new objects. For kopf: a canary object is created, must become Ready,
    /// and is deleted again (kopf adds no finalizer: it has no deletion handler); then the simulator is reset.
    async fn wait_watching(&self, client: &kube::Client, sim: &Sim, ns: &str) {
        if let Running::Kopf(_) = self {
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

impl Drop for Running {
    /// A failing benchmark shows what kopf logged (the harness's Operator does this itself).
    fn drop(&mut self) {
        if let Running::Kopf(k) = self
            && std::thread::panicking()
        {
            let logs = std::fs::read_to_string(&k.log).unwrap_or_default();
            let tail: Vec<&str> = logs.lines().rev().take(60).collect();
            eprintln!("--- last kopf log lines ({}):", k.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

struct Run {
    contender: Contender,
    label: String,
    n: usize,
    seconds: f64,
    settled: f64,
    pushes: usize,
    reads: f64,
    status_writes: f64,
    writes: f64,
    by_kind: String,
    rss: f64,
    cpu: f64,
}

/// One measured run of `contender` on N objects in a fresh namespace, created before it starts or while it runs.
async fn run(client: &kube::Client, sim: &Sim, contender: Contender, n: usize, before_start: bool) -> (Run, Running) {
    let prefix = match (contender, before_start) {
        (Contender::Ours, true) => "bench-pre",
        (Contender::Ours, false) => "bench-live",
        (Contender::Kopf, true) => "bench-kopf-pre",
        (Contender::Kopf, false) => "bench-kopf-live",
    };
    let ns = namespace(client, prefix).await;
    put_secret(client, &ns, "scm", GOOD_TOKEN).await;
    sim.reset();
    let (op, before, started) = if before_start {
        create_all(client, &ns, n).await;
        let before = api_requests(client).await;
        let started = Instant::now();
        let op = contender.start(&ns, sim).await;
        if contender == Contender::Ours {
            println!(
                "N={n:<5} operator ready (watches synced) after {:.2} s",
                started.elapsed().as_secs_f64()
            );
        }
        (op, before, started)
    } else {
        let op = contender.start(&ns, sim).await;
        op.wait_watching(client, sim, &ns).await;
        let before = api_requests(client).await;
        let started = Instant::now();
        create_all(client, &ns, n).await;
        (op, before, started)
    };
    let limit = Duration::from_secs(120 + n as u64 / 10);
    if tokio::time::timeout(limit, all_ready(client, sim, &ns, n))
        .await
        .is_err()
    {
        let pushes = sim.successful_pushes().len();
        panic!(
            "{}: not all {n} objects Ready after {limit:?} ({pushes} pushed)",
            contender.name()
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let (after, settled) = settle(client, &before, started).await;
    let (reads, status_writes, writes) = operator_requests(&before, &after);
    let by_kind = requests_by_kind(&before, &after, n);
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
            reads,
            status_writes,
            writes,
            by_kind,
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
        "N={:<5} {:<8} {:<22} ready in {:>6.2} s (writes done {:.2} s) | pushes/object {:.2} | API reads/object {:.2}, status writes/object \
         {:.2}, writes/object {:.2} | peak RSS {:.1} MiB | CPU {:.2} s | ideal {:.2} s (N*latency/concurrency {:.2} s, \
         N*writes/ceiling {:.2} s) | ratio {:.2}",
        r.n,
        r.contender.name(),
        r.label,
        r.seconds,
        r.settled,
        r.pushes as f64 / r.n as f64,
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
        "N={:<5} {:<8} {:<22} API requests/object: {}",
        r.n,
        r.contender.name(),
        r.label,
        r.by_kind
    );
}

/// kopf against ours for the same N and the same way of creating: how many times faster, leaner and cheaper ours is.
fn compare(ours: &Run, kopf: &Run) {
    let vs = |k: f64, o: f64, unit: &str| format!("{:.2}x ({k:.2} / {o:.2}{unit})", k / o);
    println!(
        "N={:<5} kopf/certpush {:<22} time to Ready {} | until writes done {} | peak RSS {} | CPU {} | API \
         writes/object {:.2} / {:.2}",
        ours.n,
        ours.label,
        vs(kopf.seconds, ours.seconds, " s"),
        vs(kopf.settled, ours.settled, " s"),
        vs(kopf.rss, ours.rss, " MiB"),
        vs(kopf.cpu, ours.cpu, " s"),
        kopf.writes / kopf.n as f64,
        ours.writes / ours.n as f64,
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
    // Steady state: nothing changes, so nothing may be sent or written (asserted for ours; kopf's is reported).
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
    let compare_kopf = match std::env::var("BENCH_COMPARE").unwrap_or_default().as_str() {
        "kopf" => true,
        "" | "none" => false,
        other => panic!("BENCH_COMPARE={other}: only \"kopf\" or \"none\""),
    };
    let config = SimConfig {
        tokens: vec![GOOD_TOKEN.into()],
        latency: LATENCY,
        ..SimConfig::default()
    };
    let sim = Sim::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();

    // The API server's status-write ceiling, measured on 1,000 objects nobody reconciles.
    let probe_ns = namespace(&client, "bench-ceiling").await;
    create_all(&client, &probe_ns, 1000).await;
    let ceiling = status_write_ceiling(&client, &probe_ns, 1000).await;
    println!("kube-apiserver status-write ceiling: {ceiling:.0} writes/s ({CONCURRENCY} at a time)");
    if compare_kopf {
        println!(
            "kopf: tests/bench/kopf_operator.py, `python -m kopf run --standalone`, as the admin user (it has no RBAC in \
             deploy/), unbounded concurrency; it runs first for each N, on the same API server and scm-sim"
        );
    }

    let mut comparisons = Vec::new();
    for &n in &sizes {
        // kopf first: whatever the earlier runs leave behind in etcd (objects, Events) weighs on the later ones.
        let kopf = if compare_kopf {
            Some(measure(&client, &sim, Contender::Kopf, n, steady, ceiling).await)
        } else {
            None
        };
        let ours = measure(&client, &sim, Contender::Ours, n, steady, ceiling).await;
        if let Some(kopf) = kopf {
            comparisons.extend(ours.into_iter().zip(kopf));
        }
    }
    for (ours, kopf) in &comparisons {
        compare(ours, kopf);
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
        // The defaults, spelled out: the harness turns the in-use refresh off for the e2e suite.
        let op = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &["--in-use-refresh", "1h"]).await;
        let started = Instant::now();
        all_ready(&client, &sim, &ns, n).await;
        let seconds = started.elapsed().as_secs_f64();
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
