//! What SCM said about each credential, shared by every object and every request. Huawei's gateway locks an access
//! key for 5 minutes after more than five signature failures, so a credential SCM refused is never sent again until
//! it changes, whichever object or request (push, import, delete, cleanup) would send it; the first use of a
//! credential not proven yet is single-flight, so eight objects sharing a wrong key cost one failure, not eight; and
//! a locked key waits out its lock.
//!
//! States of one credential (by digest) and what moves them:
//!
//! ```text
//! Unproven ──answer that is not a refusal──> Proven ──401 / gateway 403──> Refused (until the credential changes,
//!    │  (one probe at a time; others wait)     │                              or a human asks for a push again)
//!    ├──401 / gateway 403───────> Refused     └──"AK reached the limit"──> Locked ──lock over──> Unproven
//!    ├──"AK reached the limit"──> Locked
//!    └──no answer────────────────> Unproven (the next waiter probes)
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::outcome::{FailureKind, PushFailure};

/// How long Huawei's gateway locks an access key after too many signature failures.
pub const AK_LOCK: Duration = Duration::from_secs(300);

/// What the credentials of this process were told, by digest.
#[derive(Default, Clone)]
pub struct Verdicts(Arc<Mutex<HashMap<String, Entry>>>);

#[derive(Default)]
struct Entry {
    state: State,
    /// A request with this credential is out as the probe of an unproven one.
    probing: bool,
    /// Bumped whenever a probe ends, to wake the requests waiting for its verdict.
    settled: Option<watch::Sender<u64>>,
}

#[derive(Default, Clone)]
enum State {
    #[default]
    Unproven,
    Proven,
    /// The failure every later request with this credential is answered with, without being sent.
    Refused(PushFailure),
    /// Not sent before `until`.
    Locked {
        until: Instant,
        failure: PushFailure,
    },
}

/// Whether a request may leave.
pub enum Admission {
    /// Send it, then report its answer to this ticket.
    Send(Ticket),
    /// Do not send it: this is the answer.
    Withhold(PushFailure),
}

/// The right to send one request with a credential; reports what SCM answered. A probe that is dropped without an
/// answer (its reconcile was cancelled) lets the next waiter probe.
pub struct Ticket {
    verdicts: Verdicts,
    digest: String,
    probe: bool,
}

/// What an answer says about the credential that sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// SCM accepted the credential (whatever it said about the request).
    Accepted,
    /// SCM refused the credential itself: it must not be sent again.
    Refused(PushFailure),
    /// The access key is locked for a while.
    Locked(PushFailure),
    /// No answer: nothing is known.
    Unknown,
}

impl Verdicts {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a request with the credential `digest` may leave, or says why it must not.
    pub async fn admit(&self, digest: &str) -> Admission {
        loop {
            let mut waiting = {
                let mut map = self.map();
                let entry = map.entry(digest.to_owned()).or_default();
                match &entry.state {
                    State::Proven => return Admission::Send(self.ticket(digest, false)),
                    State::Refused(failure) => return Admission::Withhold(failure.clone()),
                    State::Locked { until, failure } if *until > Instant::now() => {
                        let left = until.saturating_duration_since(Instant::now());
                        let failure = PushFailure {
                            retry_after: Some(left),
                            ..failure.clone()
                        };
                        return Admission::Withhold(failure);
                    }
                    State::Unproven | State::Locked { .. } if !entry.probing => {
                        entry.state = State::Unproven;
                        entry.probing = true;
                        return Admission::Send(self.ticket(digest, true));
                    }
                    State::Unproven | State::Locked { .. } => {
                        entry.settled.get_or_insert_with(|| watch::channel(0).0).subscribe()
                    }
                }
            };
            // Subscribed under the lock, so a probe ending after it is never missed.
            if waiting.changed().await.is_err() {
                // The entry was replaced (forgotten): look again.
                continue;
            }
        }
    }

    fn ticket(&self, digest: &str, probe: bool) -> Ticket {
        Ticket {
            verdicts: self.clone(),
            digest: digest.to_owned(),
            probe,
        }
    }

    /// Forgets what SCM said about `digest`: a human asked for a push again (the re-push annotation), so the next
    /// request with it is sent, as a probe.
    pub fn forget(&self, digest: &str) {
        let mut map = self.map();
        if let Some(entry) = map.get_mut(digest)
            && matches!(entry.state, State::Refused(_))
        {
            entry.state = State::Unproven;
        }
    }

    fn settle(&self, digest: &str, probe: bool, finding: &Finding) {
        let mut map = self.map();
        let entry = map.entry(digest.to_owned()).or_default();
        match finding {
            Finding::Accepted => entry.state = State::Proven,
            Finding::Refused(failure) => entry.state = State::Refused(withheld(failure)),
            Finding::Locked(failure) => {
                let until = Instant::now() + failure.retry_after.unwrap_or(AK_LOCK);
                entry.state = State::Locked {
                    until,
                    failure: withheld(failure),
                };
            }
            Finding::Unknown => {}
        }
        if probe {
            entry.probing = false;
            if let Some(settled) = &entry.settled {
                settled.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}

impl Ticket {
    /// Records what the answer to the request said about the credential.
    pub fn settle(mut self, finding: &Finding) {
        self.verdicts.settle(&self.digest, self.probe, finding);
        self.probe = false;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.probe {
            self.verdicts.settle(&self.digest, true, &Finding::Unknown);
        }
    }
}

/// The failure a request withheld because of `failure` is answered with: the same kind and code (so the object
/// stalls or waits the same way), no HTTP status or request id (nothing was sent), and a message that says so.
fn withheld(failure: &PushFailure) -> PushFailure {
    let message = match failure.kind {
        FailureKind::Locked => format!(
            "not sent: SCM locked this access key after repeated signature failures ({}); it is tried again once \
             the lock is over",
            failure.error_message
        ),
        _ => format!(
            "not sent: SCM refused this credential for an earlier request ({}); put a new credential in the \
             Secret, or set a new push-requested-at annotation to try it again",
            failure.error_message
        ),
    };
    PushFailure {
        http_status: None,
        request_id: None,
        error_message: message,
        outcome_unknown: false,
        ..failure.clone()
    }
}

/// What the failure (or success) of a request says about its credential.
pub fn finding(failure: Option<&PushFailure>, answered: bool) -> Finding {
    let Some(f) = failure else {
        return Finding::Accepted;
    };
    match f.kind {
        FailureKind::Locked => Finding::Locked(f.clone()),
        FailureKind::Unauthorized => Finding::Refused(f.clone()),
        // IAM would not say which account an access key without domainId belongs to: no request with it can be
        // sent until the Secret names one (or a human asks again).
        FailureKind::InvalidCredentials => Finding::Refused(f.clone()),
        // The gateway's 403s are about the identity (IAM user, app, region), not one certificate.
        FailureKind::Forbidden if f.error_code.as_deref().is_some_and(|c| c.contains("APIGW")) => {
            Finding::Refused(f.clone())
        }
        _ if answered => Finding::Accepted,
        _ => Finding::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(kind: FailureKind, status: u16, code: &str) -> PushFailure {
        PushFailure {
            kind,
            http_status: Some(status),
            error_code: Some(code.into()),
            error_message: "Incorrect IAM authentication information".into(),
            request_id: Some("r1".into()),
            retry_after: None,
            outcome_unknown: false,
        }
    }

    fn sent(admission: Admission) -> Ticket {
        match admission {
            Admission::Send(ticket) => ticket,
            Admission::Withhold(f) => panic!("withheld: {f:?}"),
        }
    }

    #[tokio::test]
    async fn an_unproven_credential_is_probed_once_and_a_refusal_holds_back_everyone() {
        let verdicts = Verdicts::default();
        let probe = sent(verdicts.admit("d1").await);
        // A second request with d1 waits for the probe's verdict.
        let waiter = {
            let verdicts = verdicts.clone();
            tokio::spawn(async move {
                match verdicts.admit("d1").await {
                    Admission::Withhold(f) => f,
                    Admission::Send(_) => panic!("sent a refused credential"),
                }
            })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "the second request waits for the first one's verdict"
        );
        // Another credential is not held up.
        sent(verdicts.admit("d2").await).settle(&Finding::Accepted);
        let refusal = failure(FailureKind::Unauthorized, 401, "APIGW.0301");
        probe.settle(&finding(Some(&refusal), true));
        let withheld = waiter.await.unwrap();
        assert_eq!(withheld.kind, FailureKind::Unauthorized);
        assert_eq!((withheld.http_status, withheld.request_id.as_deref()), (None, None));
        assert!(
            withheld.error_message.starts_with("not sent"),
            "{}",
            withheld.error_message
        );
        // Proven credentials flow freely; a human's request lets a refused one be tried again.
        let _ = sent(verdicts.admit("d2").await);
        let _ = sent(verdicts.admit("d2").await);
        verdicts.forget("d1");
        let _ = sent(verdicts.admit("d1").await);
    }

    #[tokio::test]
    async fn a_probe_without_an_answer_hands_over_to_the_next_request() {
        let verdicts = Verdicts::default();
        let probe = sent(verdicts.admit("d1").await);
        let next = {
            let verdicts = verdicts.clone();
            tokio::spawn(async move { matches!(verdicts.admit("d1").await, Admission::Send(_)) })
        };
        tokio::task::yield_now().await;
        drop(probe);
        assert!(next.await.unwrap(), "the next request probes");
    }

    #[tokio::test]
    async fn a_locked_key_waits_out_its_lock() {
        let verdicts = Verdicts::default();
        let locked = PushFailure {
            kind: FailureKind::Locked,
            retry_after: Some(Duration::from_millis(50)),
            ..failure(FailureKind::Locked, 401, "APIGW.0301")
        };
        sent(verdicts.admit("d1").await).settle(&finding(Some(&locked), true));
        let Admission::Withhold(f) = verdicts.admit("d1").await else {
            panic!("sent during the lock")
        };
        assert_eq!(f.kind, FailureKind::Locked);
        assert!(f.retry_after.is_some_and(|d| d <= Duration::from_millis(50)));
        tokio::time::sleep(Duration::from_millis(60)).await;
        let _ = sent(verdicts.admit("d1").await);
    }

    #[test]
    fn only_refusals_of_the_credential_itself_are_remembered() {
        let f = |kind, status, code| finding(Some(&failure(kind, status, code)), true);
        assert!(matches!(
            f(FailureKind::Unauthorized, 401, "APIGW.0307"),
            Finding::Refused(_)
        ));
        assert!(matches!(
            f(FailureKind::Forbidden, 403, "APIGW.0302"),
            Finding::Refused(_)
        ));
        // SCM's own 403 is about one certificate, and a 404 or a 500 says the credential worked.
        assert_eq!(f(FailureKind::Forbidden, 403, "SCM.0403"), Finding::Accepted);
        assert_eq!(f(FailureKind::CertificateNotFound, 404, "SCM.0021"), Finding::Accepted);
        assert_eq!(finding(None, true), Finding::Accepted);
        let no_answer = PushFailure {
            http_status: None,
            ..failure(FailureKind::Transient, 0, "")
        };
        assert_eq!(finding(Some(&no_answer), false), Finding::Unknown);
    }
}
