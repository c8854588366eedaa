//! One token bucket in front of SCM for every request (push, list, import, delete), adapting to throttling.
//!
//! SCM's own limits are not published, and Huawei's gateway answers 429 `APIGW.0308` when a caller exceeds them. A
//! 429 halves the rate for everyone (at most once a second, so one burst of 429s counts once); each later answer that
//! is not a 429 adds one request per second back, at most once every [`RECOVERY_STEP`], up to `--scm-qps`. The
//! object that got the 429 also backs off on its own schedule, so one failing object cannot starve the others.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// The shared bucket; clones share it.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Mutex<State>>,
    max: u32,
    burst: NonZeroU32,
}

/// `n`, or 1 for 0: a bucket needs at least one token per second and per burst.
fn at_least_one(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

struct State {
    qps: u32,
    bucket: Arc<DefaultDirectRateLimiter>,
    changed: Instant,
}

fn bucket(qps: u32, burst: NonZeroU32) -> Arc<DefaultDirectRateLimiter> {
    Arc::new(RateLimiter::direct(
        Quota::per_second(at_least_one(qps)).allow_burst(burst),
    ))
}

impl Limiter {
    /// A bucket of `qps` requests per second with bursts of `burst` (each at least 1).
    pub fn new(qps: u32, burst: u32) -> Self {
        let (qps, burst) = (at_least_one(qps), at_least_one(burst));
        Self {
            inner: Arc::new(Mutex::new(State {
                qps: qps.get(),
                bucket: bucket(qps.get(), burst),
                // As if the rate had been set long ago: the first 429 must count.
                changed: Instant::now().checked_sub(RECOVERY_STEP).unwrap_or_else(Instant::now),
            })),
            max: qps.get(),
            burst,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let bucket = Arc::clone(&self.state().bucket);
        bucket.until_ready().await;
    }

    /// Adapts the rate to an answer.
    pub fn observe(&self, signal: Signal) {
        let mut state = self.state();
        if let Some(qps) = next_rate(state.qps, self.max, signal, state.changed.elapsed()) {
            if signal == Signal::Throttled {
                tracing::warn!(qps, "SCM throttled a request (429); lowering the request rate");
            }
            state.qps = qps;
            state.bucket = bucket(qps, self.burst);
            state.changed = Instant::now();
        }
    }

    /// The current rate in requests per second.
    pub fn qps(&self) -> u32 {
        self.state().qps
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

    #[tokio::test]
    async fn the_bucket_spaces_requests_and_a_429_lowers_the_rate() {
        let limiter = Limiter::new(20, 1);
        let started = std::time::Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // 1 immediately, then 4 more at 20/s: at least 200 ms in all.
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );
        limiter.observe(Signal::Throttled);
        assert_eq!(limiter.qps(), 10);
        limiter.observe(Signal::Throttled);
        assert_eq!(limiter.qps(), 10, "the same burst counts once");
    }
}
