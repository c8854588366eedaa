//! A token bucket per SCM account in front of every request (push, list, show, import, delete), adapting to
//! throttling.
//!
//! SCM's own limits are not published, and Huawei's gateway answers 429 `APIGW.0308` when an account exceeds them,
//! so each account (access key, or token) has its own bucket of `--scm-qps`/`--scm-burst`. A 429 halves that
//! account's rate (at most once a second, so one burst of 429s counts once); each later answer that is not a 429
//! adds one request per second back, at most once every [`RECOVERY_STEP`], up to `--scm-qps`. A changed rate starts
//! with an empty bucket, never a fresh burst. The object that got the 429 also backs off on its own schedule.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::DefaultClock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// How often the rate may grow back after throttling.
pub const RECOVERY_STEP: Duration = Duration::from_secs(5);
/// How long one halving covers: 429s within it are the same burst.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(1);

/// What an answer tells the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// 429: the gateway throttled us.
    Throttled,
    /// Any other answer.
    Answered,
}

/// The rate after `signal`, or None to keep it. Pure: `since_change` is the time since the rate last changed.
pub fn next_rate(current: u32, max: u32, signal: Signal, since_change: Duration) -> Option<u32> {
    match signal {
        Signal::Throttled if since_change >= THROTTLE_WINDOW && current > 1 => Some((current / 2).max(1)),
        Signal::Answered if since_change >= RECOVERY_STEP && current < max => Some(current + 1),
        _ => None,
    }
}

/// One token bucket per SCM account (an access key, or a token), so one team's traffic or 429s never slow another's;
/// clones share the buckets.
#[derive(Clone)]
pub struct Limiter {
    accounts: Arc<Mutex<HashMap<String, State>>>,
    max: u32,
    burst: NonZeroU32,
}

/// `n`, or 1 for 0: a bucket needs at least one token per second and per burst.
fn at_least_one(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

struct State {
    /// The rate and burst this bucket was made for: a limiter of another configuration (an account's edited
    /// rateLimit) starts the account over at its own.
    configured: (u32, NonZeroU32),
    qps: u32,
    bucket: Arc<DefaultDirectRateLimiter>,
    changed: Instant,
    /// Requests of this account waiting for a token inside the client, each holding a reconcile worker.
    waiting: u32,
    /// The tenants (namespaces) with requests of this account waiting or deferred: they share its places and rate.
    tenants: HashMap<String, Tenant>,
}

/// One tenant's share of an account.
#[derive(Default)]
struct Tenant {
    /// Its requests waiting for a token.
    waiting: u32,
    /// The slot of its last request deferred: its next one deferred comes back after it.
    deferred_until: Option<Instant>,
}

tokio::task_local! {
    /// The tenant (namespace) on whose behalf the current task sends SCM requests.
    static TENANT: String;
}

/// Runs `work` on behalf of `tenant`: the SCM requests it sends share their account's rate fairly with other tenants.
pub async fn as_tenant<F: std::future::Future>(tenant: String, work: F) -> F::Output {
    TENANT.scope(tenant, work).await
}

/// The tenant of the current task; requests sent outside [`as_tenant`] share one anonymous tenant.
pub fn current_tenant() -> String {
    TENANT.try_with(Clone::clone).unwrap_or_default()
}

/// Most requests of one account that wait for a token at once; the others are deferred, so a busy account holds at
/// most this many of the controller's workers and every other account finds free ones.
pub const MAX_WAITING: u32 = 8;

/// A place among the requests of an account that wait for a token; given back when dropped.
pub struct Waiting {
    limiter: Limiter,
    account: String,
    tenant: String,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.limiter.with(&self.account, |s| {
            s.waiting = s.waiting.saturating_sub(1);
            if let Some(tenant) = s.tenants.get_mut(&self.tenant) {
                tenant.waiting = tenant.waiting.saturating_sub(1);
            }
        });
    }
}

/// A bucket of `qps` per second; `full` gives it its burst, otherwise it starts empty.
fn bucket(qps: u32, burst: NonZeroU32, full: bool) -> Arc<DefaultDirectRateLimiter> {
    let bucket = RateLimiter::direct(Quota::per_second(at_least_one(qps)).allow_burst(burst));
    if !full {
        // A new rate is no reason for a new burst: the bucket starts empty and fills at the new rate.
        let _ = bucket.check_n(burst);
    }
    Arc::new(bucket)
}

impl Limiter {
    /// Buckets of `qps` requests per second with bursts of `burst` (each at least 1), one per account.
    pub fn new(qps: u32, burst: u32) -> Self {
        let (qps, burst) = (at_least_one(qps), at_least_one(burst));
        Self {
            accounts: Arc::default(),
            max: qps.get(),
            burst,
        }
    }

    /// Runs `f` on the state of `account`, made (full, at the configured rate) on first use.
    fn with<T>(&self, account: &str, f: impl FnOnce(&mut State) -> T) -> T {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if accounts
            .get(account)
            .is_some_and(|s| s.configured != (self.max, self.burst))
        {
            // Not a fresh burst: the new rate starts empty, as after a 429.
            let state = accounts.get_mut(account).expect("checked above");
            state.configured = (self.max, self.burst);
            state.qps = self.max;
            state.bucket = bucket(self.max, self.burst, false);
            state.changed = Instant::now();
        }
        let state = accounts.entry(account.to_owned()).or_insert_with(|| State {
            configured: (self.max, self.burst),
            qps: self.max,
            bucket: bucket(self.max, self.burst, true),
            // As if the rate had been set long ago: the first 429 must count.
            changed: Instant::now().checked_sub(RECOVERY_STEP).unwrap_or_else(Instant::now),
            waiting: 0,
            tenants: HashMap::new(),
        });
        f(state)
    }

    /// A place among the requests of `account` waiting for a token, or how long to come back after. The places are
    /// shared fairly between the tenants (namespaces) with requests waiting or deferred: each may hold its share of
    /// [`MAX_WAITING`], and its deferred requests come back spaced so that every tenant gets its turn at the
    /// account's rate, behind those waiting and those deferred before, plus up to one slot of `jitter` (uniform in
    /// [0, 1)). One namespace with thousands of objects therefore cannot starve another with one.
    pub fn enter(&self, account: &str, tenant: &str, jitter: f64) -> Result<Waiting, Duration> {
        self.with(account, |s| {
            let now = Instant::now();
            s.tenants
                .retain(|_, t| t.waiting > 0 || t.deferred_until.is_some_and(|at| at > now));
            let known = s.tenants.contains_key(tenant);
            let active = u32::try_from(s.tenants.len() + usize::from(!known))
                .unwrap_or(u32::MAX)
                .max(1);
            let share = (MAX_WAITING / active).max(1);
            let waiting = s.waiting;
            let mine = s.tenants.entry(tenant.to_owned()).or_default();
            if waiting < MAX_WAITING && mine.waiting < share {
                mine.waiting += 1;
                s.waiting += 1;
                return Ok(());
            }
            // Each deferred request gets its tenant's next slot, so it comes back about when its turn is, once,
            // instead of all of them retrying every few seconds; tenants' slots interleave.
            let interval = Duration::from_secs_f64(1.0 / f64::from(s.qps.max(1)));
            let turn = interval * active;
            let after_waiting = now + turn * mine.waiting;
            let end = mine
                .deferred_until
                .filter(|at| *at > after_waiting)
                .unwrap_or(after_waiting)
                + turn;
            mine.deferred_until = Some(end);
            Err(end - now + interval.mul_f64(jitter.clamp(0.0, 1.0)))
        })?;
        Ok(Waiting {
            limiter: self.clone(),
            account: account.to_owned(),
            tenant: tenant.to_owned(),
        })
    }

    /// Takes a token of `account` if one is there; otherwise says how long until one is.
    pub fn try_acquire(&self, account: &str) -> Result<(), Duration> {
        let bucket = self.with(account, |s| Arc::clone(&s.bucket));
        bucket
            .check()
            .map_err(|not_until| not_until.wait_time_from(governor::clock::Clock::now(&DefaultClock::default())))
    }

    /// Adapts the rate of `account` to an answer.
    pub fn observe(&self, account: &str, signal: Signal) {
        self.with(account, |state| {
            if let Some(qps) = next_rate(state.qps, self.max, signal, state.changed.elapsed()) {
                if signal == Signal::Throttled {
                    tracing::warn!(
                        qps,
                        "SCM throttled a request (429); lowering this account's request rate"
                    );
                }
                state.qps = qps;
                state.bucket = bucket(qps, self.burst, false);
                state.changed = Instant::now();
            }
        });
    }

    /// The current rate of `account` in requests per second.
    pub fn qps(&self, account: &str) -> u32 {
        self.with(account, |s| s.qps)
    }

    /// The configured rate of each account.
    pub fn max_qps(&self) -> u32 {
        self.max
    }

    /// A limiter sharing these buckets that gives the accounts it is used for `qps` and `burst` instead; an account
    /// used with a new configuration starts over at it, with an empty bucket.
    pub fn with_rate(&self, qps: u32, burst: u32) -> Self {
        Self {
            accounts: Arc::clone(&self.accounts),
            max: at_least_one(qps).get(),
            burst: at_least_one(burst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn throttling_halves_once_per_window_and_answers_recover_one_step_at_a_time() {
        assert_eq!(next_rate(10, 10, Signal::Throttled, S(2)), Some(5));
        assert_eq!(
            next_rate(5, 10, Signal::Throttled, Duration::from_millis(200)),
            None,
            "same burst"
        );
        assert_eq!(next_rate(1, 10, Signal::Throttled, S(2)), None, "never below 1/s");
        assert_eq!(next_rate(3, 10, Signal::Throttled, S(2)), Some(1));
        assert_eq!(
            next_rate(5, 10, Signal::Answered, S(4)),
            None,
            "too soon after the last change"
        );
        assert_eq!(next_rate(5, 10, Signal::Answered, S(5)), Some(6));
        assert_eq!(
            next_rate(10, 10, Signal::Answered, S(60)),
            None,
            "never above --scm-qps"
        );
    }

    async fn acquire(limiter: &Limiter, account: &str) {
        while let Err(wait) = limiter.try_acquire(account) {
            tokio::time::sleep(wait).await;
        }
    }

    #[tokio::test]
    async fn the_bucket_spaces_requests_and_a_429_lowers_the_rate() {
        let limiter = Limiter::new(20, 1);
        let started = std::time::Instant::now();
        for _ in 0..5 {
            acquire(&limiter, "a").await;
        }
        // 1 immediately, then 4 more at 20/s: at least 200 ms in all.
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );
        limiter.observe("a", Signal::Throttled);
        assert_eq!(limiter.qps("a"), 10);
        limiter.observe("a", Signal::Throttled);
        assert_eq!(limiter.qps("a"), 10, "the same burst counts once");
    }

    /// Defects: one bucket served every account, so one team's traffic (or its 429s) slowed every other; and each
    /// rate change made a new, full bucket, granting a fresh burst on every halving and every recovery step.
    #[test]
    fn accounts_have_their_own_buckets_and_a_rate_change_grants_no_burst() {
        let limiter = Limiter::new(10, 5);
        for _ in 0..5 {
            assert!(limiter.try_acquire("team-a").is_ok());
        }
        assert!(limiter.try_acquire("team-a").is_err(), "team A's burst is spent");
        assert!(limiter.try_acquire("team-b").is_ok(), "team B has its own bucket");
        limiter.observe("team-b", Signal::Throttled);
        assert_eq!(
            (limiter.qps("team-b"), limiter.qps("team-a")),
            (5, 10),
            "a 429 slows only its account"
        );
        let wait = limiter
            .try_acquire("team-b")
            .expect_err("no fresh burst after the halving");
        assert!(wait <= Duration::from_millis(200), "{wait:?}");
    }

    /// An account's rateLimit replaces the process's for that account only; an edit of it starts the account over
    /// at the new rate, with no fresh burst.
    #[test]
    fn an_accounts_own_rate_applies_to_it_alone_and_an_edit_takes_effect() {
        let process = Limiter::new(10, 20);
        let account = process.with_rate(1, 1);
        assert!(account.try_acquire("acct").is_ok());
        assert!(account.try_acquire("acct").is_err(), "a burst of one");
        assert_eq!((account.qps("acct"), process.qps("other")), (1, 10));
        for _ in 0..20 {
            assert!(
                process.try_acquire("other").is_ok(),
                "the process's own burst is untouched"
            );
        }
        let edited = process.with_rate(50, 50);
        assert_eq!(edited.qps("acct"), 50, "the edit applies without a restart");
        assert!(
            edited.try_acquire("acct").is_err(),
            "a new rate starts empty: no fresh burst"
        );
    }

    #[test]
    fn a_busy_account_holds_at_most_max_waiting_workers() {
        let limiter = Limiter::new(2, 1);
        let places: Vec<Waiting> = (0..MAX_WAITING)
            .map(|_| limiter.enter("a", "ns", 0.0).unwrap())
            .collect();
        let Err(later) = limiter.enter("a", "ns", 0.0) else {
            panic!("a ninth request of one account waits too")
        };
        // Eight waiting at 2/s: the ninth is back in 4.5 s, the tenth after it.
        let ms = |d: Duration| (d.as_secs_f64() * 1000.0).round() as u64;
        assert!((4499..=4500).contains(&ms(later)), "{later:?}");
        let next = limiter.enter("a", "ns", 0.0).err().unwrap();
        assert!((4999..=5000).contains(&ms(next)), "{next:?}");
        assert!(limiter.enter("b", "ns", 0.0).is_ok(), "another account is not held up");
        drop(places);
        assert!(limiter.enter("a", "ns", 0.0).is_ok());
    }

    /// Defect: within one account, whoever asked first got the places and the rate, so one namespace with thousands
    /// of objects starved another with one.
    #[test]
    fn namespaces_sharing_an_account_take_turns() {
        let limiter = Limiter::new(5, 1);
        let mut busy: Vec<Waiting> = (0..MAX_WAITING)
            .map(|_| limiter.enter("acct", "team-a", 0.0).unwrap())
            .collect();
        assert!(limiter.enter("acct", "team-a", 0.0).is_err());
        // Team B's one request is not queued behind team A's backlog: it comes back after one turn of two tenants.
        let Err(back) = limiter.enter("acct", "team-b", 0.0) else {
            panic!("no place was free")
        };
        assert!(back <= Duration::from_millis(401), "{back:?}");
        // Two of A's requests got their tokens: B gets a place, and A, over its half share, does not.
        busy.truncate(MAX_WAITING as usize - 2);
        assert!(limiter.enter("acct", "team-b", 0.0).is_ok());
        assert!(limiter.enter("acct", "team-a", 0.0).is_err());
    }
}
