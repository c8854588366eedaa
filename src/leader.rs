//! Leader election: with `--leader-elect`, only the holder of a `coordination.k8s.io/v1` Lease reconciles.
//!
//! `kube-lease-manager` runs the protocol: it takes a free or expired Lease with server-side apply (so two replicas
//! cannot both take it), renews it every retry period, and releases it on shutdown. On top of that, this module
//! fences: it watches the Lease and lets this replica act only while the Lease names it **and** it has seen its own
//! renewal land within the renew deadline. A leader cut off from the API server therefore stops by itself after the
//! renew deadline (10 s by default), before any other replica may take the Lease (after the lease duration, 15 s),
//! so two replicas never push at once. The standby keeps its watches and cache warm and is ready; it only skips
//! reconciles.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
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

/// What this replica last saw of the Lease.
struct Fence {
    identity: String,
    renew_deadline: Duration,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    holder: Option<String>,
    renew_time: Option<String>,
    /// When a renewal by this replica was last seen (local monotonic clock).
    confirmed_at: Option<Instant>,
}

/// The fence, pure: `identity` may act at `now` while the Lease names it and its last renewal was seen less than
/// `renew_deadline` ago.
pub fn may_lead(
    identity: &str,
    holder: Option<&str>,
    confirmed_at: Option<Instant>,
    renew_deadline: Duration,
    now: Instant,
) -> bool {
    holder == Some(identity) && confirmed_at.is_some_and(|at| now.saturating_duration_since(at) < renew_deadline)
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

    /// An elected leadership whose renewal was just seen, for tests of what only elected replicas do.
    #[cfg(test)]
    pub(crate) fn elected_and_leading() -> Self {
        let fence = Fence {
            identity: "me".into(),
            renew_deadline: Duration::from_secs(3600),
            seen: Mutex::new(Seen {
                holder: Some("me".into()),
                renew_time: None,
                confirmed_at: Some(Instant::now()),
            }),
        };
        Self {
            fence: Some(Arc::new(fence)),
        }
    }

    /// Whether this replica may reconcile and send requests to SCM now.
    pub fn leads(&self) -> bool {
        match &self.fence {
            None => true,
            Some(fence) => {
                let seen = fence.seen.lock().unwrap_or_else(|p| p.into_inner());
                may_lead(
                    &fence.identity,
                    seen.holder.as_deref(),
                    seen.confirmed_at,
                    fence.renew_deadline,
                    Instant::now(),
                )
            }
        }
    }

    /// Records a Lease as the watch delivered it: a new renewTime naming this replica confirms its leadership.
    fn observe(&self, lease: &Lease) {
        let Some(fence) = &self.fence else { return };
        let spec = lease.spec.as_ref();
        let holder = spec.and_then(|s| s.holder_identity.clone());
        let renew_time = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0.to_string());
        let mut seen = fence.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Only a renewal seen now confirms: a re-list repeating an old renewTime proves nothing about the present.
        if holder.as_deref() == Some(fence.identity.as_str()) && renew_time.is_some() && renew_time != seen.renew_time {
            seen.confirmed_at = Some(Instant::now());
        }
        seen.holder = holder;
        seen.renew_time = renew_time;
    }
}

/// A running election: its fence, a channel that turns true each time this replica starts leading, and what
/// shutdown needs to release the Lease.
pub struct Election {
    /// The fence reconciles consult.
    pub leadership: Leadership,
    /// True while this replica leads (checked every retry period).
    pub leading: watch::Receiver<bool>,
    lock: watch::Receiver<bool>,
    manager: tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Election {
    /// Joins the election for `config`'s Lease (creating it if needed) and starts the fence.
    pub async fn start(client: Client, config: &LeaderConfig) -> Result<Self, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client.clone(), &config.lease_name)
            .with_namespace(&config.lease_namespace)
            .with_identity(&config.identity)
            .with_duration(config.lease_duration.as_secs())
            // Renew one retry period after each renewal, well inside the renew deadline.
            .with_grace((config.lease_duration - config.retry_period).as_secs())
            .with_field_manager(format!("certpush-operator-{}", config.identity))
            .build()
            .await?;
        let (lock, manager) = manager.watch().await;
        let leadership = Leadership {
            fence: Some(Arc::new(Fence {
                identity: config.identity.clone(),
                renew_deadline: config.renew_deadline,
                seen: Mutex::default(),
            })),
        };
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

    #[test]
    fn only_a_new_renewal_confirms() {
        let leadership = Leadership {
            fence: Some(Arc::new(Fence {
                identity: "a".into(),
                renew_deadline: Duration::from_secs(10),
                seen: Mutex::default(),
            })),
        };
        assert!(!leadership.leads());
        leadership.observe(&lease("a", "2026-11-25T10:00:00.000000Z"));
        assert!(leadership.leads());
        leadership.observe(&lease("b", "2026-11-25T10:00:20.000000Z"));
        assert!(!leadership.leads(), "another replica took the Lease");
        // The Lease names this replica again, but with a renewal already seen: it does not count as fresh.
        let fence = leadership.fence.as_ref().unwrap();
        fence.seen.lock().unwrap().confirmed_at = None;
        leadership.observe(&lease("a", "2026-11-25T10:00:20.000000Z"));
        assert!(!leadership.leads());
        assert!(Leadership::always().leads());
    }
}
