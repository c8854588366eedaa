//! When to push: the decision from spec, status and the Secret's version, and the retry backoff.
//!
//! The rule that matters most: push once per generation. Anything already recorded in status
//! (`pushedGeneration`, a stall, a scheduled retry) survives restarts and resyncs, so neither causes a push.

use std::time::Duration;

use jiff::Timestamp;

use crate::crd::CertificatePushStatus;
use crate::status::{self, Reason};

/// First retry delay after a transient failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest delay between retries.
pub const BACKOFF_CAP: Duration = Duration::from_secs(600);

/// What the observed object needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This generation was pushed and no re-push was asked for.
    UpToDate,
    /// Send a push now.
    Push(Cause),
    /// A transient failure's retry is not due yet.
    WaitForRetry(Duration),
    /// A failure needs a human and nothing relevant changed since.
    Stalled,
}

/// Why a push is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// This generation has not been pushed.
    NewGeneration,
    /// The re-push annotation has a new value.
    Requested,
    /// A scheduled retry is due.
    RetryDue,
    /// The credentials Secret changed since the last failure.
    CredentialsChanged,
}

/// The inputs of the decision.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// metadata.generation.
    pub generation: i64,
    /// The re-push annotation's value.
    pub push_request: Option<&'a str>,
    /// Current status.
    pub status: &'a CertificatePushStatus,
    /// resourceVersion of the credentials Secret, None when it does not exist.
    pub credentials_version: Option<&'a str>,
    /// Now.
    pub now: Timestamp,
}

/// Decides what to do. Pure: the same inputs always give the same step.
pub fn next_step(o: &Observed) -> Step {
    let s = o.status;
    if o.push_request.is_some() && o.push_request != s.last_handled_push_request.as_deref() {
        return Step::Push(Cause::Requested);
    }
    if s.pushed_generation == Some(o.generation) {
        return Step::UpToDate;
    }
    // Failures recorded for an older generation do not hold back the new spec.
    let failed_this_generation = s.failed_attempts.unwrap_or(0) > 0 && s.observed_generation == Some(o.generation);
    if !failed_this_generation {
        return Step::Push(Cause::NewGeneration);
    }
    match status::ready_reason(s) {
        Some(Reason::Retrying) => {
            let due = s.next_retry_time.as_deref().and_then(status::parse_time);
            match due {
                Some(at) if at > o.now => {
                    Step::WaitForRetry(Duration::from_secs((at - o.now).get_seconds().max(1) as u64))
                }
                _ => Step::Push(Cause::RetryDue),
            }
        }
        // SCM already said no to this exact request: only a changed Secret may change the answer.
        Some(r) if r.came_from_scm() => {
            if o.credentials_version != s.credentials_resource_version.as_deref() {
                Step::Push(Cause::CredentialsChanged)
            } else {
                Step::Stalled
            }
        }
        // Credential problems are found before any request, so re-checking them costs nothing.
        _ => Step::Push(Cause::CredentialsChanged),
    }
}

/// Consecutive failures including this one, counted within one generation.
pub fn failed_attempts(status: &CertificatePushStatus, generation: i64) -> i32 {
    if status.observed_generation == Some(generation) && status.pushed_generation != Some(generation) {
        status.failed_attempts.unwrap_or(0).saturating_add(1)
    } else {
        1
    }
}

/// Delay before retry `attempt` (1-based): 5 s doubling to 10 min, with ±20% jitter so that many objects
/// failing together do not retry together; a server's Retry-After wins when it asks for longer.
/// `jitter` is a uniform sample from [0, 1).
pub fn backoff(attempt: i32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let exp = attempt.clamp(1, 30) as u32 - 1;
    let base = BACKOFF_BASE.saturating_mul(2u32.saturating_pow(exp)).min(BACKOFF_CAP);
    let jittered = base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0)).min(BACKOFF_CAP);
    match retry_after {
        Some(ra) if ra > jittered => ra,
        _ => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scm::{FailureKind, PushFailure};
    use crate::status::Attempt;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn observe<'a>(status: &'a CertificatePushStatus, generation: i64, secret: Option<&'a str>) -> Observed<'a> {
        Observed {
            generation,
            push_request: None,
            status,
            credentials_version: secret,
            now: t(NOW),
        }
    }

    fn failure(kind: FailureKind) -> PushFailure {
        PushFailure {
            kind,
            http_status: Some(400),
            error_code: None,
            error_message: "x".into(),
            request_id: None,
            retry_after: None,
        }
    }

    fn attempt(generation: i64, secret: &'static str) -> Attempt<'static> {
        Attempt {
            generation,
            push_request: None,
            credentials_version: Some(secret),
            now: t(NOW),
        }
    }

    #[test]
    fn new_object_pushes_and_pushed_generation_is_up_to_date() {
        let fresh = status::pending(&Default::default(), 1, t(NOW));
        assert_eq!(
            next_step(&observe(&fresh, 1, Some("1"))),
            Step::Push(Cause::NewGeneration)
        );
        let done = status::pushed(&fresh, &attempt(1, "1"), 204, None, "x");
        assert_eq!(next_step(&observe(&done, 1, Some("1"))), Step::UpToDate);
        // A Secret change after success is no reason to push again.
        assert_eq!(next_step(&observe(&done, 1, Some("2"))), Step::UpToDate);
        assert_eq!(
            next_step(&observe(&done, 2, Some("1"))),
            Step::Push(Cause::NewGeneration)
        );
    }

    #[test]
    fn repush_annotation_pushes_once_per_value() {
        let done = status::pushed(&Default::default(), &attempt(1, "1"), 204, None, "x");
        let mut o = observe(&done, 1, Some("1"));
        o.push_request = Some("2026-01-01T00:00:00Z");
        assert_eq!(next_step(&o), Step::Push(Cause::Requested));
        let again = status::pushed(
            &done,
            &Attempt {
                push_request: o.push_request,
                ..attempt(1, "1")
            },
            204,
            None,
            "x",
        );
        let o2 = Observed { status: &again, ..o };
        assert_eq!(next_step(&o2), Step::UpToDate);
    }

    #[test]
    fn repush_annotation_bypasses_backoff_and_stall() {
        let waiting = status::failed(
            &Default::default(),
            &attempt(1, "1"),
            &failure(FailureKind::Transient),
            3,
            Some(t("2026-01-01T00:10:00Z")),
        );
        let mut o = observe(&waiting, 1, Some("1"));
        assert_eq!(next_step(&o), Step::WaitForRetry(Duration::from_secs(600)));
        o.push_request = Some("x");
        assert_eq!(next_step(&o), Step::Push(Cause::Requested));
    }

    #[test]
    fn transient_failure_waits_then_retries() {
        let waiting = status::failed(
            &Default::default(),
            &attempt(1, "1"),
            &failure(FailureKind::Transient),
            1,
            Some(t("2026-01-01T00:00:05Z")),
        );
        assert_eq!(
            next_step(&observe(&waiting, 1, Some("1"))),
            Step::WaitForRetry(Duration::from_secs(5))
        );
        let later = Observed {
            now: t("2026-01-01T00:00:06Z"),
            ..observe(&waiting, 1, Some("1"))
        };
        assert_eq!(next_step(&later), Step::Push(Cause::RetryDue));
        // A spec change does not wait for the old generation's backoff.
        assert_eq!(
            next_step(&observe(&waiting, 2, Some("1"))),
            Step::Push(Cause::NewGeneration)
        );
    }

    #[test]
    fn scm_refusals_stall_until_the_secret_or_spec_changes() {
        for kind in [
            FailureKind::Unauthorized,
            FailureKind::Forbidden,
            FailureKind::CertificateNotFound,
            FailureKind::Rejected,
        ] {
            let stalled = status::failed(&Default::default(), &attempt(1, "5"), &failure(kind), 1, None);
            assert_eq!(next_step(&observe(&stalled, 1, Some("5"))), Step::Stalled, "{kind:?}");
            assert_eq!(
                next_step(&observe(&stalled, 1, Some("6"))),
                Step::Push(Cause::CredentialsChanged)
            );
            assert_eq!(
                next_step(&observe(&stalled, 2, Some("5"))),
                Step::Push(Cause::NewGeneration)
            );
        }
    }

    #[test]
    fn credential_problems_are_rechecked() {
        let missing = status::credentials_problem(
            &Default::default(),
            &Attempt {
                credentials_version: None,
                ..attempt(1, "1")
            },
            Reason::CredentialsNotFound,
            "missing",
        );
        // failed_attempts is not set for credential problems, so it is a plain "not pushed yet".
        assert!(matches!(next_step(&observe(&missing, 1, None)), Step::Push(_)));
    }

    #[test]
    fn failures_count_within_a_generation() {
        let f1 = status::failed(
            &Default::default(),
            &attempt(1, "1"),
            &failure(FailureKind::Transient),
            1,
            None,
        );
        assert_eq!(failed_attempts(&f1, 1), 2);
        assert_eq!(failed_attempts(&f1, 2), 1);
        assert_eq!(failed_attempts(&Default::default(), 1), 1);
    }

    #[test]
    fn backoff_doubles_from_5s_to_a_10_minute_cap() {
        let d = |n| backoff(n, None, 0.5).as_secs();
        assert_eq!(
            [d(1), d(2), d(3), d(4), d(7), d(8), d(50)],
            [5, 10, 20, 40, 320, 600, 600]
        );
        assert_eq!(backoff(1, None, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(1, None, 0.999_999).as_secs(), 5);
        assert!(backoff(1, None, 0.999_999) > Duration::from_secs(5));
        assert_eq!(backoff(10, None, 0.99), BACKOFF_CAP);
    }

    #[test]
    fn retry_after_is_honoured_when_longer() {
        assert_eq!(backoff(1, Some(Duration::from_secs(30)), 0.5), Duration::from_secs(30));
        assert_eq!(backoff(5, Some(Duration::from_secs(1)), 0.5), Duration::from_secs(80));
    }
}
