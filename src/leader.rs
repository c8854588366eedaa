//! Leader election: with `--leader-elect`, only the holder of a `coordination.k8s.io/v1` Lease reconciles.
//!
//! `kube-lease-manager` runs the protocol: it takes a free or expired Lease with server-side apply (so two replicas
//! cannot both take it), renews it every retry period, and releases it on shutdown. On top of that, this module
//! fences: it watches the Lease and lets this replica act only while the Lease names it **and** a renewal of its own
//! has been confirmed (by the watch or by the renewal's answer) that was *sent* less than the renew deadline ago.
//! Counting from the send, not from when the confirmation arrived, keeps the fence inside what the Lease promises
//! the others (the lease duration counts from renewTime, written just before the send): a renewal that lands late
//! does not stretch it. A leader cut off from the API server therefore stops by itself within the renew deadline
//! (10 s by default) of its last renewal, before any other replica may take the Lease (after the lease duration,
//! 15 s), so two replicas never push at once. The standby keeps its watches and cache warm and is ready; it only
//! skips reconciles.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tracing::{info, warn};

/// Leader election settings.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// This replica's identity in the Lease (the Pod name in a cluster).
    pub identity: String,
    /// How long a Lease stays valid after its last renewal: how long others wait before taking it.
    pub lease_duration: Duration,
    /// How long the leader acts without seeing its renewal land; shorter than the lease duration.
    pub renew_deadline: Duration,
    /// How often the Lease is renewed or, by a standby, tried.
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// Checks the ordering that makes the fence work: retry period < renew deadline < lease duration, whole seconds.
    pub fn validate(&self) -> Result<(), String> {
        let whole = |d: Duration| d.subsec_nanos() == 0 && d.as_secs() > 0;
        if !(whole(self.lease_duration) && whole(self.renew_deadline) && whole(self.retry_period)) {
            return Err("leader election durations must be whole seconds of at least 1s".into());
        }
        if !(self.retry_period < self.renew_deadline && self.renew_deadline < self.lease_duration) {
            return Err(format!(
                "leader election needs retry period ({:?}) < renew deadline ({:?}) < lease duration ({:?})",
                self.retry_period, self.renew_deadline, self.lease_duration
            ));
        }
        Ok(())
    }
}

/// Whether this replica may act now; cloned into every reconcile.
#[derive(Clone, Default)]
pub struct Leadership {
    /// None without leader election: always leads.
    fence: Option<Arc<Fence>>,
}

/// What this replica last saw of the Lease, and the renewals it sent.
struct Fence {
    identity: String,
    renew_deadline: Duration,
    seen: Mutex<Seen>,
    /// Counts the times the fence opened (closed, then a renewal of this replica confirmed).
    openings: watch::Sender<u64>,
}

#[derive(Default)]
struct Seen {
    holder: Option<String>,
    /// When the latest confirmed renewal by this replica was sent (local monotonic clock).
    confirmed_at: Option<Instant>,
    /// The renewTimes of the last renewals this replica sent, each with when it was sent; oldest first.
    sent: VecDeque<(Timestamp, Instant)>,
    /// The Lease's leaseTransitions the last time the fence was seen open.
    transitions_open: Option<i32>,
    /// Whether the last opening continued the term before it: no other replica took the Lease in between.
    continued: bool,
}

/// Whether a fence reopening on a Lease with `transitions` continues the term it had while open before
/// (`transitions_open`), pure: the same holder (the fence only opens for this replica) and no transition in between,
/// so no other replica held the Lease and nothing this replica kept can be older than what a leader wrote.
pub fn continues_term(transitions_open: Option<i32>, transitions: Option<i32>) -> bool {
    transitions_open.is_some() && transitions_open == transitions
}

/// How many sent renewals are remembered: a confirmation older than these has long expired anyway.
const SENT_KEPT: usize = 16;

/// The fence, pure: `identity` may act at `now` while the Lease names it and its latest confirmed renewal was sent
/// less than `renew_deadline` ago.
pub fn may_lead(
    identity: &str,
    holder: Option<&str>,
    confirmed_at: Option<Instant>,
    renew_deadline: Duration,
    now: Instant,
) -> bool {
    holder == Some(identity) && confirmed_at.is_some_and(|at| now.saturating_duration_since(at) < renew_deadline)
}

/// What a Lease naming `holder` confirms, pure: the send instant `sent_at` of the renewal whose renewTime it shows,
/// when that renewal is this replica's (`identity`) and was sent after the one confirmed so far (`confirmed_at`).
/// A renewTime this replica did not send (a Lease from before it started, or taken by another) confirms nothing,
/// and a late or repeated delivery of an older renewal never moves the fence forward.
pub fn confirmed_since(
    identity: &str,
    holder: Option<&str>,
    sent_at: Option<Instant>,
    confirmed_at: Option<Instant>,
) -> Option<Instant> {
    match sent_at {
        Some(sent) if holder == Some(identity) => Some(confirmed_at.map_or(sent, |at| at.max(sent))),
        _ => confirmed_at,
    }
}

impl Leadership {
    /// No leader election: this replica always acts.
    pub fn always() -> Self {
        Self::default()
    }

    /// Whether leadership is elected (and can change hands) rather than always held.
    pub fn is_elected(&self) -> bool {
        self.fence.is_some()
    }

    fn elected(identity: &str, renew_deadline: Duration) -> Self {
        Self {
            fence: Some(Arc::new(Fence {
                identity: identity.into(),
                renew_deadline,
                seen: Mutex::default(),
                openings: watch::Sender::new(0),
            })),
        }
    }

    /// An elected leadership whose renewal was just seen, for tests of what only elected replicas do.
    #[cfg(test)]
    pub(crate) fn elected_and_leading() -> Self {
        let leadership = Self::elected("me", Duration::from_secs(3600));
        let fence = leadership.fence.as_ref().expect("elected");
        let mut seen = fence.seen.lock().expect("not poisoned");
        seen.holder = Some("me".into());
        seen.confirmed_at = Some(Instant::now());
        drop(seen);
        leadership
    }

    /// Whether this replica may reconcile and send requests to SCM now.
    pub fn leads(&self) -> bool {
        self.leads_at(Instant::now())
    }

    fn leads_at(&self, now: Instant) -> bool {
        match &self.fence {
            None => true,
            Some(fence) => {
                let seen = fence.seen.lock().unwrap_or_else(|p| p.into_inner());
                fence.open(&seen, now)
            }
        }
    }

    /// Changes each time the fence opens: on election and on every reopening after a gap (renewals stalled,
    /// then landed again). Never changes without leader election.
    pub fn openings(&self) -> watch::Receiver<u64> {
        match &self.fence {
            Some(fence) => fence.openings.subscribe(),
            None => watch::Sender::new(0).subscribe(),
        }
    }

    /// Whether the last opening of the fence continued this replica's term (no other replica took the Lease in
    /// between), so what it kept in memory is still the newest truth; false on election and without a fence.
    pub fn continued_term(&self) -> bool {
        self.fence.as_ref().is_some_and(|fence| {
            let seen = fence.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.continued
        })
    }

    /// Notes that a renewal writing `renew_time` leaves at `at`.
    fn sending(&self, renew_time: Timestamp, at: Instant) {
        let Some(fence) = &self.fence else { return };
        let mut seen = fence.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.sent.len() == SENT_KEPT {
            seen.sent.pop_front();
        }
        seen.sent.push_back((renew_time, at));
    }

    /// Records a Lease as the watch or a renewal's answer delivered it.
    fn observe(&self, lease: &Lease) {
        self.observe_at(lease, Instant::now());
    }

    fn observe_at(&self, lease: &Lease, now: Instant) {
        let Some(fence) = &self.fence else { return };
        let spec = lease.spec.as_ref();
        let holder = spec.and_then(|s| s.holder_identity.clone());
        let renew_time = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
        let transitions = spec.map(|s| s.lease_transitions.unwrap_or(0));
        let mut seen = fence.seen.lock().unwrap_or_else(|p| p.into_inner());
        let was_open = fence.open(&seen, now);
        let sent_at = renew_time.and_then(|r| seen.sent.iter().find(|(t, _)| *t == r).map(|(_, at)| *at));
        seen.confirmed_at = confirmed_since(&fence.identity, holder.as_deref(), sent_at, seen.confirmed_at);
        seen.holder = holder;
        let open = fence.open(&seen, now);
        let reopened = !was_open && open;
        if reopened {
            seen.continued = continues_term(seen.transitions_open, transitions);
        }
        if open {
            seen.transitions_open = transitions;
        }
        if reopened {
            fence.openings.send_modify(|n| *n += 1);
        }
    }
}

impl Fence {
    fn open(&self, seen: &Seen, now: Instant) -> bool {
        may_lead(
            &self.identity,
            seen.holder.as_deref(),
            seen.confirmed_at,
            self.renew_deadline,
            now,
        )
    }
}

/// `client` for the Lease manager, noting in `leadership` when each write of the Lease's renewTime is sent, and
/// handing the written Lease of each answer to the fence like a watch event (so a renewal confirms even while the
/// watch lags).
fn recording_client(client: Client, leadership: Leadership, lease_path: String) -> Client {
    let default_namespace = client.default_namespace().to_owned();
    let service = tower::service_fn(move |request: http::Request<Body>| {
        let (client, leadership) = (client.clone(), leadership.clone());
        let renewal = request.method() == http::Method::PATCH && request.uri().path() == lease_path;
        async move {
            if !renewal {
                return client.send(request).await;
            }
            let (parts, body) = request.into_parts();
            let body = body.collect_bytes().await?;
            if let Some(renew_time) = written_renew_time(&body) {
                leadership.sending(renew_time, Instant::now());
            }
            let response = client.send(http::Request::from_parts(parts, Body::from(body))).await?;
            if !response.status().is_success() {
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let body = body.collect_bytes().await?;
            if let Ok(lease) = serde_json::from_slice::<Lease>(&body) {
                leadership.observe(&lease);
            }
            Ok(http::Response::from_parts(parts, Body::from(body)))
        }
    });
    Client::new(service, default_namespace)
}

/// The renewTime a Lease patch writes, if it writes one.
fn written_renew_time(patch: &[u8]) -> Option<Timestamp> {
    let patch: serde_json::Value = serde_json::from_slice(patch).ok()?;
    let renew_time = patch.get("spec")?.get("renewTime")?.clone();
    serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>(renew_time)
        .ok()
        .map(|t| t.0)
}

/// A running election: its fence, a channel that follows whether this replica leads, and what shutdown needs to
/// release the Lease.
pub struct Election {
    /// The fence reconciles consult.
    pub leadership: Leadership,
    /// True while this replica leads (sampled every half retry period, for the metric; reconciles ask the fence).
    pub leading: watch::Receiver<bool>,
    lock: watch::Receiver<bool>,
    manager: tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Election {
    /// Joins the election for `config`'s Lease (creating it if needed) and starts the fence.
    pub async fn start(client: Client, config: &LeaderConfig) -> Result<Self, LeaseManagerError> {
        let leadership = Leadership::elected(&config.identity, config.renew_deadline);
        let lease_path = format!(
            "/apis/coordination.k8s.io/v1/namespaces/{}/leases/{}",
            config.lease_namespace, config.lease_name
        );
        let recording = recording_client(client.clone(), leadership.clone(), lease_path);
        let manager = LeaseManagerBuilder::new(recording, &config.lease_name)
            .with_namespace(&config.lease_namespace)
            .with_identity(&config.identity)
            .with_duration(config.lease_duration.as_secs())
            // Renew one retry period after each renewal, well inside the renew deadline.
            .with_grace((config.lease_duration - config.retry_period).as_secs())
            .with_field_manager(format!("certpush-operator-{}", config.identity))
            .build()
            .await?;
        let (lock, manager) = manager.watch().await;
        let (leading_tx, leading) = watch::channel(false);

        let leases: Api<Lease> = Api::namespaced(client, &config.lease_namespace);
        let watched = leadership.clone();
        let selector = format!("metadata.name={}", config.lease_name);
        let watch_lease = tokio::spawn(async move {
            let stream = watcher::watcher(leases, watcher::Config::default().fields(&selector))
                .default_backoff()
                .applied_objects();
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(lease) => watched.observe(&lease),
                    Err(e) => warn!(error = %e, "watching the leader election Lease failed"),
                }
            }
        });

        // The fence also closes by itself when renewals stop arriving, so it is checked on a clock too.
        let ticking = leadership.clone();
        let (name, period) = (config.lease_name.clone(), config.retry_period / 2);
        let tick = tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            loop {
                interval.tick().await;
                let now = ticking.leads();
                if leading_tx.send_if_modified(|was| std::mem::replace(was, now) != now) {
                    info!(lease = %name, leading = now, "leadership changed");
                }
                if leading_tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Self {
            leadership,
            leading,
            lock,
            manager,
            tasks: vec![watch_lease, tick],
        })
    }

    /// Gives the Lease up (so a standby takes over at once instead of after the lease duration), waiting at most
    /// `timeout`.
    pub async fn release(self, timeout: Duration) {
        for task in &self.tasks {
            task.abort();
        }
        // Dropping the last receiver tells the manager to release the Lease and stop.
        drop(self.lock);
        match tokio::time::timeout(timeout, self.manager).await {
            Ok(Ok(Ok(_))) => info!("released the leader election Lease"),
            Ok(Ok(Err(e))) => warn!(error = %e, "releasing the leader election Lease failed"),
            Ok(Err(e)) => warn!(error = %e, "the leader election task failed"),
            Err(_) => warn!("releasing the leader election Lease timed out; it expires by itself"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(duration: u64, deadline: u64, retry: u64) -> LeaderConfig {
        LeaderConfig {
            lease_name: "certpush-operator".into(),
            lease_namespace: "certpush-system".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(duration),
            renew_deadline: Duration::from_secs(deadline),
            retry_period: Duration::from_secs(retry),
        }
    }

    #[test]
    fn durations_must_nest_so_the_fence_closes_before_others_may_take_over() {
        assert!(config(15, 10, 2).validate().is_ok());
        assert!(config(10, 10, 2).validate().is_err(), "renew deadline must be shorter");
        assert!(
            config(15, 10, 10).validate().is_err(),
            "retry must be shorter than the deadline"
        );
        let mut sub_second = config(15, 10, 2);
        sub_second.retry_period = Duration::from_millis(500);
        assert!(sub_second.validate().is_err());
    }

    #[test]
    fn only_the_named_holder_with_a_recent_renewal_leads() {
        let deadline = Duration::from_secs(10);
        let t0 = Instant::now();
        let later = |s| t0 + Duration::from_secs(s);
        assert!(may_lead("a", Some("a"), Some(t0), deadline, later(9)));
        assert!(
            !may_lead("a", Some("a"), Some(t0), deadline, later(10)),
            "renewals stopped landing"
        );
        assert!(
            !may_lead("a", Some("b"), Some(t0), deadline, later(1)),
            "another holder"
        );
        assert!(!may_lead("a", None, Some(t0), deadline, later(1)));
        assert!(!may_lead("a", Some("a"), None, deadline, later(1)), "never confirmed");
    }

    fn lease(holder: &str, renew: &str) -> Lease {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "certpush-operator"},
            "spec": {"holderIdentity": holder, "renewTime": renew},
        }))
        .unwrap()
    }

    fn at(renew: &str) -> Timestamp {
        renew.parse().unwrap()
    }

    const R0: &str = "2026-11-25T10:00:00.000000Z";
    const R1: &str = "2026-11-25T10:00:02.000000Z";
    const R2: &str = "2026-11-25T10:00:04.000000Z";

    #[test]
    fn a_renewal_counts_from_when_it_was_sent_not_from_when_it_was_seen() {
        let leadership = Leadership::elected("a", Duration::from_secs(10));
        let t0 = Instant::now();
        let later = |ms| t0 + Duration::from_millis(ms);
        leadership.sending(at(R0), t0);
        // The renewal lands, or its confirmation arrives, 8 s after it was sent.
        leadership.observe_at(&lease("a", R0), later(8_000));
        assert!(leadership.leads_at(later(9_000)));
        // The Lease promises the others only renewTime + lease duration; the fence ends a renew deadline after
        // the send, not after the late delivery (which would have kept it open until 18 s).
        assert!(!leadership.leads_at(later(10_000)));
        assert!(!leadership.leads_at(later(17_000)));
    }

    #[test]
    fn only_renewals_this_replica_sent_confirm_and_late_old_ones_never_extend() {
        let leadership = Leadership::elected("a", Duration::from_secs(10));
        let t0 = Instant::now();
        let later = |ms| t0 + Duration::from_millis(ms);
        leadership.observe_at(&lease("a", R0), t0);
        assert!(
            !leadership.leads_at(t0),
            "a renewTime this process never sent (a Lease from before it) proves nothing"
        );
        leadership.sending(at(R1), later(1_000));
        leadership.sending(at(R2), later(3_000));
        leadership.observe_at(&lease("a", R2), later(3_100));
        leadership.observe_at(&lease("a", R1), later(3_200));
        assert!(
            leadership.leads_at(later(12_900)),
            "the older renewal, delivered late, does not move the fence back"
        );
        assert!(!leadership.leads_at(later(13_000)));
        leadership.observe_at(&lease("b", R2), later(4_000));
        assert!(!leadership.leads_at(later(4_000)), "another replica took the Lease");
        assert!(Leadership::always().leads());
    }

    #[test]
    fn confirmation_is_the_send_of_the_newest_own_renewal() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(confirmed_since("a", Some("a"), Some(t1), None), Some(t1));
        assert_eq!(confirmed_since("a", Some("a"), Some(t0), Some(t1)), Some(t1));
        assert_eq!(confirmed_since("a", Some("a"), Some(t1), Some(t0)), Some(t1));
        assert_eq!(confirmed_since("a", Some("b"), Some(t1), Some(t0)), Some(t0));
        assert_eq!(confirmed_since("a", Some("a"), None, Some(t0)), Some(t0));
    }

    #[test]
    fn the_fence_counts_each_opening_once_including_reopening_after_a_gap() {
        let leadership = Leadership::elected("a", Duration::from_secs(10));
        let openings = leadership.openings();
        let t0 = Instant::now();
        let later = |ms| t0 + Duration::from_millis(ms);
        leadership.sending(at(R0), t0);
        leadership.observe_at(&lease("a", R0), later(100));
        assert_eq!(*openings.borrow(), 1, "elected");
        leadership.sending(at(R1), later(2_000));
        leadership.observe_at(&lease("a", R1), later(2_100));
        leadership.observe_at(&lease("a", R1), later(2_200));
        assert_eq!(*openings.borrow(), 1, "renewals while open are no new opening");
        // Renewals stalled past the deadline (closed from 12 s), then one landed again.
        leadership.sending(at(R2), later(13_000));
        leadership.observe_at(&lease("a", R2), later(13_100));
        assert_eq!(*openings.borrow(), 2, "reopened after a gap");
        leadership.observe_at(&lease("b", R2), later(14_000));
        leadership.observe_at(&lease("a", R2), later(14_100));
        assert_eq!(
            *openings.borrow(),
            3,
            "the Lease named another replica in between: closed, then open again"
        );
        assert_eq!(*Leadership::always().openings().borrow(), 0);
    }

    fn lease_with(holder: &str, renew: &str, transitions: i32) -> Lease {
        let mut lease = lease(holder, renew);
        lease.spec.as_mut().unwrap().lease_transitions = Some(transitions);
        lease
    }

    /// Defect: every reopening of the fence dropped the statuses kept in memory after a failed write, though no
    /// other replica had taken the Lease: the object was decided from the API server's older state and pushed again.
    #[test]
    fn a_reopening_with_no_transition_in_between_continues_the_term() {
        assert!(continues_term(Some(3), Some(3)));
        assert!(!continues_term(Some(3), Some(4)), "another replica held it");
        assert!(!continues_term(None, Some(0)), "a first election");
        let leadership = Leadership::elected("a", Duration::from_secs(10));
        let t0 = Instant::now();
        let later = |ms| t0 + Duration::from_millis(ms);
        leadership.sending(at(R0), t0);
        leadership.observe_at(&lease_with("a", R0, 1), later(100));
        assert!(!leadership.continued_term(), "elected: nothing to continue");
        // Renewals stalled past the deadline, then one landed: still holder, still transition 1.
        leadership.sending(at(R1), later(13_000));
        leadership.observe_at(&lease_with("a", R1, 1), later(13_100));
        assert!(leadership.leads_at(later(13_200)) && leadership.continued_term());
        // Another replica took it and this one took it back: a real change of leader.
        leadership.observe_at(&lease_with("b", R1, 2), later(14_000));
        leadership.sending(at(R2), later(15_000));
        leadership.observe_at(&lease_with("a", R2, 3), later(15_100));
        assert!(leadership.leads_at(later(15_200)) && !leadership.continued_term());
        assert!(!Leadership::always().continued_term());
    }

    /// The Lease manager's renewal, through the recording client: its send is noted and its answer confirms.
    #[tokio::test]
    async fn a_renewal_answered_by_the_api_server_confirms_from_its_send() {
        let (service, mut server) = tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
        let leadership = Leadership::elected("a", Duration::from_secs(10));
        let path = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l".to_owned();
        let client = recording_client(Client::new(service, "ns"), leadership.clone(), path);
        let leases: Api<Lease> = Api::namespaced(client, "ns");
        let before = Instant::now();
        let patch = serde_json::json!({"spec": {"renewTime": R1}});
        let renew = tokio::spawn(async move {
            leases
                .patch("l", &Default::default(), &kube::api::Patch::Strategic(patch))
                .await
        });
        let (request, respond) = server.next_request().await.expect("the renewal is sent");
        assert_eq!(request.method(), http::Method::PATCH);
        let sent = leadership.fence.as_ref().unwrap().seen.lock().unwrap().sent.clone();
        assert_eq!(sent.len(), 1, "noted before the answer");
        assert_eq!(sent[0].0, at(R1));
        assert!(sent[0].1 >= before);
        assert!(!leadership.leads(), "not confirmed before the answer");
        let answer = serde_json::to_vec(&lease("a", R1)).unwrap();
        respond.send_response(http::Response::builder().status(200).body(Body::from(answer)).unwrap());
        renew.await.unwrap().expect("the manager gets the Lease back");
        assert!(leadership.leads());
        assert!(!leadership.leads_at(sent[0].1 + Duration::from_secs(10)));
    }
}
