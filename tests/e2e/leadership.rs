//! Leadership and disruption: two replicas with leader election and failover, a leader cut off from the API server
//! while its reconciles wait for SCM tokens, a leader whose renewals land late, chaos faults with the operator
//! killed halfway, and a restart of the API server itself.

use std::time::Duration;

use certpush_operator::crd::{CertificatePush, TargetService};
use certpush_operator::status::TRUE;
use kube::Api;
use scm_sim::{Sim, SimConfig};

use crate::harness::*;

/// Two replicas with leader election: one leads and pushes, the standby pushes nothing; after the leader is
/// SIGKILLed the standby takes over within the lease duration, and after a SIGTERM (the leader releases the
/// Lease) at once; every CertificatePush is pushed exactly once across all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn two_replicas_elect_one_leader_and_fail_over_without_duplicate_pushes() {
    let client = admin().await;
    let ns = namespace(&client, "leader").await;
    let sim = start_sim().await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let lease = format!("lease-{ns}");
    let args = fast_election(&lease);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let leads = format!("leader_election_master_status{{name=\"{lease}\"}} 1");
    let stands_by = format!("leader_election_master_status{{name=\"{lease}\"}} 0");
    let mut a = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &args).await;
    a.wait_metric(&leads, T).await;
    let mut b = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &args).await;
    b.wait_probe("/readyz", 200).await;

    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    create_numbered(&client, &ns, "p", 0..4).await;
    wait_numbered_pushed(&api, "p", 0..4, T).await;
    assert!(b.metrics().await.contains(&stands_by), "b stands by");
    assert!(!b.logs().contains("pushing certificate"), "the standby sent nothing");

    // The leader dies without releasing the Lease: the standby waits out the lease duration.
    let killed = std::time::Instant::now();
    a.kill().await;
    b.wait_metric(&leads, Duration::from_secs(15)).await;
    println!(
        "failover after SIGKILL took {:?} (lease duration 3 s)",
        killed.elapsed()
    );
    create_numbered(&client, &ns, "p", 4..8).await;
    wait_numbered_pushed(&api, "p", 4..8, T).await;

    // A graceful stop releases the Lease: a new standby takes over without waiting for it to expire.
    let c = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &args).await;
    c.wait_metric(&stands_by, T).await;
    let terminated = std::time::Instant::now();
    let status = b.terminate().await;
    assert!(status.success(), "graceful exit: {status:?}");
    assert!(b.logs().contains("released the leader election Lease"), "{}", b.logs());
    c.wait_metric(&leads, Duration::from_secs(15)).await;
    println!("failover after SIGTERM took {:?}", terminated.elapsed());
    create_numbered(&client, &ns, "p", 8..12).await;
    wait_numbered_pushed(&api, "p", 8..12, T).await;

    assert_eq!(
        pushed_projects(&sim.successful_pushes()),
        numbered("p", 12),
        "each CertificatePush pushed exactly once"
    );
    assert_eq!(sim.pushes().len(), 12, "no attempt was duplicated either");
}

/// A leader cut off from the API server (not from SCM) while its reconciles queue for rate-limit tokens
/// (`--scm-qps 1`, SCM answering in 1.5 s): it sends no SCM request later than its renew deadline after the cut,
/// and the standby takes over and brings every object to Ready, pushing again only what the cut-off leader had
/// pushed without being able to record it. Each replica has its own simulator, so every request is attributed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_leader_cut_off_from_the_api_server_stops_sending_within_its_renew_deadline() {
    const N: usize = 20;
    const DEADLINE_MS: u64 = 2000;
    const SCM_DELAY_MS: u64 = 1500;
    let client = admin().await;
    let ns = namespace(&client, "cutoff").await;
    let (sim_a, sim_b) = (start_sim().await, start_sim().await);
    sim_a.inject(scm_sim::Fault {
        certificate_id: None,
        times: 1000,
        action: scm_sim::FaultAction::Delay { ms: SCM_DELAY_MS },
    });
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let lease = format!("lease-{ns}");
    let args = fenced_at_one_per_second(&lease);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let leads = format!("leader_election_master_status{{name=\"{lease}\"}} 1");
    let stands_by = format!("leader_election_master_status{{name=\"{lease}\"}} 0");
    let (a, proxy, _dir) = leader_behind_proxy(&ns, &sim_a, &args, &leads).await;
    let b = Operator::start_custom(&ns, &sim_b, restricted_kubeconfig(), &args).await;
    b.wait_metric(&stands_by, T).await;

    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    create_numbered(&client, &ns, "c", 0..N).await;
    // Cut once a few pushes were answered: most reconciles are then waiting for a token, one push is in flight.
    let some_pushed = async {
        while sim_a.successful_pushes().len() < 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(T, some_pushed).await.expect("the leader pushes");
    proxy.sever();
    let (cut, cut_ms) = (std::time::Instant::now(), sim_a.elapsed_ms());
    assert!(sim_b.calls().is_empty(), "the standby sent nothing before the cut");

    a.wait_metric(&stands_by, Duration::from_secs(10)).await;
    b.wait_metric(&leads, Duration::from_secs(15)).await;
    let took_over = cut.elapsed();
    wait_numbered_pushed(&api, "c", 0..N, Duration::from_secs(60)).await;
    let converged = cut.elapsed();

    // Every push the cut-off leader did not send was stopped by its fence (not sent) or deferred by the rate limit
    // (a deferred object comes back as a standby and sends nothing); wait until all N are accounted for and none
    // waits for a token any more, so a request it would send late cannot be missed.
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let stopped = loop {
        let metrics = a.metrics().await;
        let (stopped, deferred, waiting) = fence_accounts(&metrics);
        if stopped + deferred + sim_a.pushes().len() >= N && waiting == 0 {
            break stopped;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cut-off leader accounted for {} of {N} pushes",
            stopped + sim_a.pushes().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let a_pushes = sim_a.pushes();
    let after_cut: Vec<u64> = a_pushes
        .iter()
        .filter(|c| c.at_ms > cut_ms)
        .map(|c| c.at_ms - cut_ms)
        .collect();
    let latest = after_cut.iter().max().copied();
    let by_a: std::collections::BTreeMap<String, u64> = a_pushes
        .iter()
        .filter(|c| c.status == 204)
        .map(|c| {
            (
                c.body["target_project"].as_str().unwrap_or_default().to_owned(),
                c.at_ms,
            )
        })
        .collect();
    let b_projects = pushed_projects(&sim_b.successful_pushes());
    let duplicates: Vec<(&String, i64)> = b_projects
        .iter()
        .filter_map(|p| by_a.get(p).map(|at| (p, *at as i64 - cut_ms as i64)))
        .collect();
    println!(
        "cut-off leader: {} pushes before the cut, {} after it (ms after the cut: {after_cut:?}; renew deadline \
         {DEADLINE_MS} ms), {stopped} stopped by the fence; standby leading {took_over:?} and all {N} Ready \
         {converged:?} after the cut; {} pushed by both (leader's push at ms relative to the cut: {duplicates:?})",
        a_pushes.len() - after_cut.len(),
        after_cut.len(),
        duplicates.len()
    );
    // Arrival at the simulator follows the send by well under 100 ms on loopback.
    assert!(
        latest.is_none_or(|ms| ms <= DEADLINE_MS + 100),
        "the cut-off leader sent a push {latest:?} ms after the cut, past its renew deadline ({DEADLINE_MS} ms)"
    );
    // Pushed by both only when the leader's push was answered too late for its status write: in flight at the
    // cut (sent up to one SCM delay before it) or sent inside the fence after it.
    for (project, at) in &duplicates {
        assert!(
            *at >= -((SCM_DELAY_MS + 1000) as i64),
            "{project} pushed by both, though the leader pushed it {at} ms before the cut"
        );
    }
    let mut all: Vec<String> = by_a.keys().cloned().chain(b_projects.iter().cloned()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all, numbered("c", N), "every object pushed");
    assert_eq!(
        b_projects.len() + by_a.len() - duplicates.len(),
        N,
        "each object pushed once, but for the duplicates above"
    );
}

/// A leader whose link to the API server turns slow (1.5 s each way, so each renewal is confirmed 3 s after it was
/// sent, past the 2 s renew deadline) sends an SCM request only within the renew deadline of a renewal it sent:
/// the Lease promises the others no more than that (renewTime, written at the send, plus the lease duration).
/// Confirming a renewal when its late echo arrives would open the fence for up to another deadline after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_leader_on_a_slow_link_acts_only_within_its_renew_deadline_of_a_renewal_it_sent() {
    use futures::StreamExt as _;
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::runtime::{WatchStreamExt as _, watcher};
    const N: usize = 20;
    const DEADLINE_MS: i64 = 2000;
    let client = admin().await;
    let ns = namespace(&client, "slowlink").await;
    let sim = start_sim().await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let lease = format!("lease-{ns}");
    let args = fenced_at_one_per_second(&lease);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let leads = format!("leader_election_master_status{{name=\"{lease}\"}} 1");
    let (op, proxy, _dir) = leader_behind_proxy(&ns, &sim, &args, &leads).await;

    // Every renewTime the Lease shows, with its holder, as the test's own (fast) watch sees them.
    let renewals: std::sync::Arc<std::sync::Mutex<Vec<(String, i64)>>> = Default::default();
    let seen = renewals.clone();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "certpush-system");
    let selector = format!("metadata.name={lease}");
    let watch = tokio::spawn(async move {
        let stream = watcher::watcher(leases, watcher::Config::default().fields(&selector)).applied_objects();
        futures::pin_mut!(stream);
        while let Some(Ok(lease)) = stream.next().await {
            let spec = lease.spec.unwrap_or_default();
            if let (Some(holder), Some(renew)) = (spec.holder_identity, spec.renew_time) {
                seen.lock().unwrap().push((holder, renew.0.as_millisecond()));
            }
        }
    });
    let holder = loop {
        if let Some((holder, _)) = renewals.lock().unwrap().first().cloned() {
            break holder;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    create_numbered(&client, &ns, "s", 0..N).await;
    let some_pushed = async {
        while sim.successful_pushes().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(T, some_pushed).await.expect("the leader pushes");
    proxy.delay(Duration::from_millis(1500));
    // The simulator's clock, on the wall clock the renewTimes are written in (same host).
    let now_ms = || jiff::Timestamp::now().as_millisecond();
    let sim_started_ms = now_ms() - sim.elapsed_ms() as i64;
    let slowed_ms = now_ms();

    // Each reconcile ends in a push, in a request the fence stopped (not sent), or deferred by the rate limit, and
    // none waits for a token any more.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let stopped = loop {
        let (stopped, deferred, waiting) = fence_accounts(&op.metrics().await);
        if stopped + deferred + sim.pushes().len() >= N && waiting == 0 {
            break stopped;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {N} pushes accounted for",
            stopped + sim.pushes().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    watch.abort();

    let own: Vec<i64> = renewals
        .lock()
        .unwrap()
        .iter()
        .filter(|(h, _)| *h == holder)
        .map(|(_, at)| *at)
        .collect();
    // A push arriving at `at` was sent under the fence only if a renewal sent (renewTime) less than the renew
    // deadline before it exists; 50 ms of slack for the two clocks and the loopback.
    let mut outside = Vec::new();
    let mut after_slowing = Vec::new();
    for call in sim.pushes() {
        let at = sim_started_ms + call.at_ms as i64;
        let covering = own.iter().filter(|r| **r <= at + 50).max();
        if at > slowed_ms {
            after_slowing.push((at - slowed_ms, covering.map(|r| at - r)));
        }
        if covering.is_none_or(|r| at - r >= DEADLINE_MS + 50) {
            outside.push((call.body["target_project"].clone(), covering.map(|r| at - r)));
        }
    }
    println!(
        "slow link: {} renewals by the leader; {} pushes before slowing the link, {} after it \
         (ms after slowing, ms since the leader's latest renewal: {after_slowing:?}), {stopped} stopped by the fence",
        own.len(),
        sim.pushes().len() - after_slowing.len(),
        after_slowing.len()
    );
    assert!(
        outside.is_empty(),
        "pushes sent more than the renew deadline after the leader's latest renewal (project, ms since it): \
         {outside:?}"
    );
}

/// A retry that comes due while the fence is closed (renewals landing late) is dropped; when renewals land in time
/// again the fence reopens and everything is reconciled, so the object is pushed at once rather than at the next
/// resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_retry_dropped_while_the_fence_was_closed_runs_when_it_reopens() {
    let client = admin().await;
    let ns = namespace(&client, "reopen").await;
    let sim = start_sim().await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let (op, proxy, _dir, [_, stands_by]) = fast_leader_behind_proxy(&ns, &sim).await;

    // The first push fails; its retry is due 4-6 s later (5 s backoff, 20% jitter).
    sim.inject(scm_sim::Fault {
        certificate_id: None,
        times: 1,
        action: scm_sim::FaultAction::Error {
            status: 503,
            error_code: "APIGW.0613".into(),
            error_msg: "busy".into(),
        },
    });
    let api = create_push(&client, &ns, "r", spec(CERT, TargetService::Waf, "r", "scm")).await;
    let failed = wait_for(&api, "r", T, "the failed push recorded", |cp| {
        status(cp).next_retry_time.is_some()
    })
    .await;
    let retry: jiff::Timestamp = status(&failed).next_retry_time.unwrap().parse().unwrap();
    // Renewals now land 3 s after they were sent, past the 2 s deadline: the fence closes before the retry.
    proxy.delay(Duration::from_millis(1500));
    op.wait_metric(&stands_by, Duration::from_secs(10)).await;
    assert!(
        jiff::Timestamp::now() < retry,
        "the fence closed before the retry was due"
    );
    // Until the retry has come due (and a second more): it finds the fence closed.
    while jiff::Timestamp::now() < retry + jiff::SignedDuration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    op.wait_reconciles("standby", 1).await;
    assert_eq!(sim.pushes().len(), 1, "the retry was dropped, not sent");

    proxy.delay(Duration::ZERO);
    let fast = std::time::Instant::now();
    wait_for(&api, "r", Duration::from_secs(20), "Ready=True", |cp| {
        ready_is(cp, TRUE, "Pushed")
    })
    .await;
    println!(
        "pushed {:?} after renewals landed in time again (resync period 10 min)",
        fast.elapsed()
    );
    assert_eq!(sim.successful_pushes().len(), 1);
}

/// Chaos: 200 objects against an SCM that fails 30% of push calls (503, 429, resets, 1.5 s answers, and gateway
/// timeouts slower than the operator's `--scm-timeout`), with the operator SIGKILLed and restarted halfway. Every object ends Ready; each target got exactly one answered
/// successful push except pushes in flight at the kill; and each object's attempts kept to the backoff schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn chaos_faults_and_a_killed_operator_still_end_with_one_push_each() {
    use futures::StreamExt as _;
    const N: usize = 200;
    let client = admin().await;
    let ns = namespace(&client, "chaos").await;
    let config = SimConfig {
        tokens: vec![GOOD_TOKEN.into()],
        chaos: Some(scm_sim::Chaos {
            rate: 0.3,
            max_in_a_row: 3,
            slow_ms: 1500,
            stall_ms: 4000,
        }),
        ..SimConfig::default()
    };
    let sim = Sim::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    // Slow answers (1.5 s) come within the timeout; gateway timeouts (4 s, never forwarded) do not.
    // 16 at once bounds the pushes in flight at the kill, which may be sent twice.
    let args = [
        "--scm-qps",
        "1000",
        "--scm-burst",
        "100",
        "--scm-timeout",
        "3s",
        "--concurrency",
        "16",
    ];
    let mut op = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &args).await;
    futures::stream::iter(0..N)
        .for_each_concurrent(16, |i| {
            let client = client.clone();
            let ns = ns.clone();
            async move {
                create_push(
                    &client,
                    &ns,
                    &format!("c{i}"),
                    spec(CERT, TargetService::Elb, &format!("c{i}"), "scm"),
                )
                .await;
            }
        })
        .await;

    // Kill the operator once about half the objects are pushed, then start a new one.
    let half = async {
        while sim.successful_pushes().len() < N / 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), half)
        .await
        .expect("half pushed");
    op.kill().await;
    // On the simulator's clock: calls are recorded when answered, so the last record can predate the kill.
    let killed_at_ms = sim.elapsed_ms();
    let _op = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &args).await;

    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let list = api.list(&Default::default()).await.unwrap();
        let ready = list.items.iter().filter(|cp| ready_is(cp, TRUE, "Pushed")).count();
        if ready == N {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ready} of {N} Ready");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let mut by_target: std::collections::BTreeMap<String, Vec<scm_sim::Call>> = Default::default();
    for call in sim.pushes() {
        let target = call.body["target_project"].as_str().unwrap_or_default().to_owned();
        by_target.entry(target).or_default().push(call);
    }
    assert_eq!(by_target.len(), N);
    // In order of arrival (the simulator records in order of answer, and slow answers come late).
    for calls in by_target.values_mut() {
        calls.sort_by_key(|c| c.at_ms);
    }
    let faulted = sim.pushes().iter().filter(|c| c.status != 204).count();
    // About 12 of the ~60 faults are gateway timeouts; none at all would mean the timeout path went untested.
    let timed_out = sim.pushes().iter().filter(|c| c.status == 504).count();
    assert!(timed_out > 0, "no gateway timeout among {faulted} faults");
    let mut doubles = 0;
    for (target, calls) in &by_target {
        let successes = calls.iter().filter(|c| c.status == 204).count();
        assert!(successes >= 1, "{target}: {calls:#?}");
        doubles += successes - 1;
        // Backoff: the k-th retry comes at least 0.8 x 5 s x 2^(k-1) after the attempt before it (20% jitter).
        // The new operator counts from what the old one recorded, so counting afresh after the kill is a lower
        // bound; an attempt in flight at the kill may be repeated at once.
        for segment in [
            calls.iter().filter(|c| c.at_ms <= killed_at_ms).collect::<Vec<_>>(),
            calls.iter().filter(|c| c.at_ms > killed_at_ms).collect::<Vec<_>>(),
        ] {
            for (k, pair) in segment.windows(2).enumerate() {
                let gap = pair[1].at_ms.saturating_sub(pair[0].at_ms);
                let floor = 4000 * (1 << k.min(6)) as u64;
                assert!(
                    gap >= floor,
                    "{target}: retry {} after {gap} ms (operator killed at {killed_at_ms} ms): {calls:#?}",
                    k + 1
                );
            }
        }
    }
    println!(
        "{} push calls for {N} objects, {faulted} faulted ({timed_out} timed out); {doubles} second successful pushes",
        sim.pushes().len()
    );
    // Only pushes in flight when the operator was killed may have been answered twice.
    assert!(
        doubles <= 16,
        "{doubles} objects pushed twice; at most the 16 in flight at the kill may be"
    );
}

/// A control plane of a test's own (so restarting its API server disturbs no other test), stopped on drop.
struct OwnControlPlane {
    dir: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

impl OwnControlPlane {
    fn script() -> String {
        format!("{ROOT}/tests/e2e/control-plane.sh")
    }

    async fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cp");
        let out = tokio::process::Command::new("bash")
            .args([Self::script().as_str(), "start", dir.to_str().unwrap()])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Self { dir, _tmp: tmp }
    }

    fn kubeconfig(&self, who: &str) -> std::path::PathBuf {
        self.dir.join(format!("{who}.kubeconfig"))
    }

    async fn kubectl(&self, args: &[&str]) {
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig("admin"))
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    async fn restart_apiserver(&self) {
        let out = tokio::process::Command::new("bash")
            .args([Self::script().as_str(), "restart-apiserver", self.dir.to_str().unwrap()])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for OwnControlPlane {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .args([Self::script().as_str(), "stop", self.dir.to_str().unwrap()])
            .output();
    }
}

/// The API server restarted mid-run: the operator recovers by itself (no restart of its own), and every object,
/// including those created after the restart, ends Ready with exactly one push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn the_operator_recovers_from_an_api_server_restart() {
    let cp = OwnControlPlane::start().await;
    // What the shared control plane gets: the CRDs, the operator's namespace and RBAC, the suite's Secret grant.
    install(&cp.kubeconfig("admin")).await;
    cp.kubectl(&["create", "namespace", "restart"]).await;
    let client = client_for(&cp.kubeconfig("admin")).await;
    put_secret(&client, "restart", "scm", GOOD_TOKEN).await;
    let sim = start_sim().await;
    let op = Operator::start_custom("restart", &sim, cp.kubeconfig("restricted"), &[]).await;
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), "restart");
    create_numbered(&client, "restart", "r", 0..10).await;
    wait_numbered_pushed(&api, "r", 0..10, T).await;

    let restarted = std::time::Instant::now();
    cp.restart_apiserver().await;
    // A fresh client: the point is the operator's, whose connections died with the old process.
    let client = client_for(&cp.kubeconfig("admin")).await;
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), "restart");
    create_numbered(&client, "restart", "r", 10..20).await;
    wait_numbered_pushed(&api, "r", 10..20, Duration::from_secs(90)).await;
    println!(
        "objects created after the API server restart were pushed within {:?}",
        restarted.elapsed()
    );
    assert_eq!(
        pushed_projects(&sim.successful_pushes()),
        numbered("r", 20),
        "each object pushed exactly once"
    );
    op.wait_probe("/healthz", 200).await;
}

/// From an operator's metrics: pushes its fence stopped, pushes its rate limit deferred, and requests waiting for a
/// token now.
fn fence_accounts(metrics: &str) -> (usize, usize, usize) {
    let value = |prefix: &str| -> usize {
        metrics
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .filter_map(|rest| rest.rsplit(' ').next())
            .map(|v| v.trim().parse::<f64>().unwrap() as usize)
            .sum()
    };
    // An attempt ends at its expiry read (operation show) when that is stopped or deferred, or at its push; or,
    // when it waited for another attempt's expiry read of the same certificate that the fence stopped, without a
    // request of its own (standby).
    let both = |code: &str| {
        ["push", "show"]
            .iter()
            .map(|op| {
                value(&format!(
                    "certpush_scm_requests_total{{operation=\"{op}\",code=\"{code}\",error_code=\"\"}} "
                ))
            })
            .sum::<usize>()
    };
    let standby = value("certpush_reconciles_total{result=\"standby\"} ");
    // Settled: no request waits for a token and no reconcile is still running.
    let busy = value("certpush_scm_requests_waiting ") + value("controller_runtime_active_workers{");
    (both("not_sent") + standby, both("deferred"), busy)
}

/// A replica started with `args` whose link to the API server runs through a proxy the test can slow down or sever,
/// once it leads (`leads`, its metric line); with the proxy and the directory of its kubeconfig, which must outlive it.
async fn leader_behind_proxy(
    ns: &str,
    sim: &scm_sim::Sim,
    args: &[&str],
    leads: &str,
) -> (Operator, TcpProxy, tempfile::TempDir) {
    let restricted = restricted_kubeconfig();
    let proxy = TcpProxy::start(TcpProxy::api_server_of(&restricted)).await;
    let dir = tempfile::tempdir().unwrap();
    let op = Operator::start_custom(ns, sim, proxy.kubeconfig(&restricted, dir.path()), args).await;
    op.wait_metric(leads, T).await;
    (op, proxy, dir)
}

/// A replica with [`fast_election`] behind a proxy ([`leader_behind_proxy`]), once it leads; with its metric lines
/// for leading and standing by.
async fn fast_leader_behind_proxy(
    ns: &str,
    sim: &scm_sim::Sim,
) -> (Operator, TcpProxy, tempfile::TempDir, [String; 2]) {
    let lease = format!("lease-{ns}");
    let args = fast_election(&lease);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let status = |n: u8| format!("leader_election_master_status{{name=\"{lease}\"}} {n}");
    let (op, proxy, dir) = leader_behind_proxy(ns, sim, &args, &status(1)).await;
    (op, proxy, dir, [status(1), status(0)])
}

/// Creates `name`, whose push SCM answers after `answer_after_ms` (more than 2 s), and while it is in flight cuts the
/// leader (`op` behind
/// `proxy`) off from the API server until it stands by (its metric line `stands_by`).
async fn cut_off_with_a_push_in_flight(
    client: &kube::Client,
    ns: &str,
    sim: &scm_sim::Sim,
    (op, proxy, stands_by): (&Operator, &TcpProxy, &str),
    name: &str,
    answer_after_ms: u64,
) -> Api<CertificatePush> {
    sim.inject(scm_sim::Fault {
        certificate_id: None,
        times: 1,
        action: scm_sim::FaultAction::Delay { ms: answer_after_ms },
    });
    let api = create_push(client, ns, name, spec(CERT, TargetService::Waf, name, "scm")).await;
    // The simulator records a call when it answers; a push still running after 1 s shows as Pending.
    wait_for(&api, name, T, "Pending while the push is in flight", |cp| {
        ready_is(cp, "Unknown", "Pending")
    })
    .await;
    assert!(sim.pushes().is_empty(), "the push was answered before the cut");
    proxy.outage(true);
    op.wait_metric(stands_by, Duration::from_secs(10)).await;
    api
}

/// Leader election on Lease `lease` with a 3 s lease, a 2 s renew deadline and 1 s renewals, so failover and the
/// fence play out within seconds.
fn fast_election(lease: &str) -> Vec<String> {
    let args = [
        "--leader-elect",
        "--lease-namespace",
        "certpush-system",
        "--lease-name",
        lease,
        "--lease-duration",
        "3s",
        "--renew-deadline",
        "2s",
        "--retry-period",
        "1s",
    ];
    args.map(str::to_owned).to_vec()
}

/// [`fast_election`] with SCM requests at one a second: reconciles queue for tokens while the fence is tested.
fn fenced_at_one_per_second(lease: &str) -> Vec<String> {
    let mut args = fast_election(lease);
    args.extend(["--scm-qps", "1", "--scm-burst", "1"].map(str::to_owned));
    args
}

/// Defect: when the fence reopened after an outage of the API server longer than the renew deadline, the status
/// kept in memory because its write failed (a push that landed) was dropped, though no other replica had taken the
/// Lease: the object was decided from the API server's older state and pushed again. Same holder and the same
/// leaseTransitions continue the term: the kept status is written, nothing is pushed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn an_outage_with_no_other_leader_keeps_the_unsaved_push_and_sends_it_once() {
    let client = admin().await;
    let ns = namespace(&client, "same-term").await;
    let sim = start_sim().await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let (op, proxy, _dir, [leads, stands_by]) = fast_leader_behind_proxy(&ns, &sim).await;

    // The push is answered after 3 s; the API server becomes unreachable while it is in flight.
    let api = cut_off_with_a_push_in_flight(&client, &ns, &sim, (&op, &proxy, &stands_by), "o", 3000).await;
    // The push lands; its status write fails (retried about 6 s, then kept in memory).
    op.wait_reconciles("error", 1).await;
    assert_eq!(sim.successful_pushes().len(), 1);
    proxy.outage(false);
    op.wait_metric(&leads, T).await;
    let cp = wait_for(&api, "o", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    assert!(status(&cp).last_push_time.is_some());
    // A push decided from the API server's state would have come before this Ready.
    assert_eq!(sim.pushes().len(), 1, "pushed once: {:#?}", sim.calls());
}

/// Defect: status writes were unconditional, so a deposed leader whose push was answered after its fence closed
/// wrote its status over what the new leader had written meanwhile (same field manager: pendingDeletions,
/// deployments and targets the new leader recorded were erased). Each write is now conditional on the
/// resourceVersion the reconcile read: the late write is refused (409) and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_deposed_leaders_late_write_does_not_erase_the_new_leaders() {
    const MARK: &str = "scs1700000000009";
    let client = admin().await;
    let ns = namespace(&client, "late-write").await;
    let sim = start_sim().await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let (op, proxy, _dir, [_, stands_by]) = fast_leader_behind_proxy(&ns, &sim).await;
    // The push is answered after 6 s; meanwhile the leader loses its link and its fence closes.
    let api = cut_off_with_a_push_in_flight(&client, &ns, &sim, (&op, &proxy, &stands_by), "d", 6000).await;
    let deadline = std::time::Instant::now() + T;
    // Another replica takes the Lease (for a minute) and writes the status, with the operator's field manager,
    // before the old leader's push is answered.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let lease = format!("lease-{ns}");
    let transitions = leases
        .get(&lease)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0);
    let taken = serde_json::json!({"spec": {
        "holderIdentity": "e2e-new-leader", "leaseDurationSeconds": 60, "leaseTransitions": transitions + 1,
        "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now()),
    }});
    leases
        .patch(
            &lease,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&taken),
        )
        .await
        .unwrap();
    let newer = serde_json::json!({
        "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "CertificatePush",
        "status": {"pendingDeletions": [{"certificateId": MARK}]},
    });
    api.patch_status(
        "d",
        &kube::api::PatchParams::apply("certpush-operator").force(),
        &kube::api::Patch::Apply(&newer),
    )
    .await
    .unwrap();
    let errors = op.reconciles("error").await;
    // The push is answered; the old leader's link comes back while it retries its status write.
    while sim.successful_pushes().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the push was never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.outage(false);
    // The old leader's status write arrives after the new leader's: refused, it fails its reconcile.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let kept = status(&api.get("d").await.unwrap())
            .pending_deletions
            .iter()
            .any(|d| d.certificate_id == MARK);
        assert!(
            kept,
            "the deposed leader's late write erased the new leader's pendingDeletions"
        );
        if op.reconciles("error").await > errors {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the late write never came: {}",
            op.logs().lines().rev().take(30).collect::<Vec<_>>().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(sim.successful_pushes().len(), 1);
}
