//! The scale benchmark (`bash scripts/bench.sh`; docs/benchmarks.md has the method and results). It prints numbers;
//! it asserts only what must hold at any speed: exactly one successful push per object, and a quiet steady state.
//!
//! Setup: the real control plane from `tests/e2e/control-plane.sh`, scm-sim with 20 ms latency, the operator's
//! release build (`CERTPUSH_OPERATOR_BIN`) as the restricted ServiceAccount user. For each N in `BENCH_N` (default
//! "1000 5000"): N CertificatePushes created before the operator starts, then N more created while another one
//! runs. Operator API requests are counted from kube-apiserver's own `apiserver_request_total` by verb and
//! resource (the benchmark itself only creates and lists, so the GETs, status PATCHes and Event POSTs are the
//! operator's).

#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use certpush_operator::crd::{CertificatePush, TargetService};
use futures::StreamExt;
use harness::*;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use scm_sim::{Sim, SimConfig};

const LATENCY: Duration = Duration::from_millis(20);
const CONCURRENCY: u32 = 16;

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

struct Run {
    label: String,
    n: usize,
    seconds: f64,
    pushes: usize,
    reads: f64,
    status_writes: f64,
    writes: f64,
    rss: f64,
    cpu: f64,
}

async fn run(client: &kube::Client, sim: &Sim, n: usize, before_start: bool) -> (Run, Operator) {
    let ns = namespace(client, if before_start { "bench-pre" } else { "bench-live" }).await;
    put_secret(client, &ns, "scm", GOOD_TOKEN).await;
    sim.reset();
    let extra = ["--scm-qps", "100000", "--scm-burst", "1000"];
    let (op, started) = if before_start {
        create_all(client, &ns, n).await;
        let before = api_requests(client).await;
        let started = Instant::now();
        let op = Operator::start_custom(&ns, sim, restricted_kubeconfig(), &extra).await;
        println!(
            "N={n:<5} operator ready (watches synced) after {:.2} s",
            started.elapsed().as_secs_f64()
        );
        ((op, before), started)
    } else {
        let op = Operator::start_custom(&ns, sim, restricted_kubeconfig(), &extra).await;
        let before = api_requests(client).await;
        let started = Instant::now();
        create_all(client, &ns, n).await;
        ((op, before), started)
    };
    let (op, before) = op;
    all_ready(client, sim, &ns, n).await;
    let seconds = started.elapsed().as_secs_f64();
    let after = api_requests(client).await;
    let (reads, status_writes, writes) = operator_requests(&before, &after);
    let (rss, cpu) = rss_and_cpu(op.pid());
    let pushes = sim.successful_pushes().len();
    let label = if before_start {
        "created before start"
    } else {
        "created while running"
    };
    (
        Run {
            label: label.to_owned(),
            n,
            seconds,
            pushes,
            reads,
            status_writes,
            writes,
            rss,
            cpu,
        },
        op,
    )
}

fn report(r: &Run, ceiling: f64) {
    let per = |x: f64| x / r.n as f64;
    let by_latency = r.n as f64 * LATENCY.as_secs_f64() / f64::from(CONCURRENCY);
    let by_writes = r.n as f64 * per(r.writes) / ceiling;
    let ideal = by_latency.max(by_writes);
    println!(
        "N={:<5} {:<22} ready in {:>6.2} s | pushes/object {:.2} | API reads/object {:.2}, status writes/object {:.2}, \
         writes/object {:.2} | peak RSS {:.1} MiB | CPU {:.2} s | ideal {:.2} s (N*latency/concurrency {:.2} s, \
         N*writes/ceiling {:.2} s) | ratio {:.2}",
        r.n,
        r.label,
        r.seconds,
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

    for &n in &sizes {
        let (pre, op) = run(&client, &sim, n, true).await;
        report(&pre, ceiling);
        assert_eq!(pre.pushes, n, "exactly one successful push per object");
        // Steady state: nothing changes, so nothing may be sent or written.
        let before = api_requests(&client).await;
        let calls = sim.calls().len();
        tokio::time::sleep(Duration::from_secs(steady)).await;
        let (reads, _, writes) = operator_requests(&before, &api_requests(&client).await);
        let (rss, _) = rss_and_cpu(op.pid());
        let scm = sim.calls().len() - calls;
        println!(
            "N={n:<5} steady state for {steady} s: SCM calls {scm}, API reads {reads:.0}, API writes {writes:.0}, \
             peak RSS {rss:.1} MiB"
        );
        assert_eq!((scm, writes as u64), (0, 0), "a quiet steady state");
        drop(op);

        let (live, op) = run(&client, &sim, n, false).await;
        report(&live, ceiling);
        assert_eq!(live.pushes, n, "exactly one successful push per object");
        drop(op);
    }
}
