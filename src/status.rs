//! Status and conditions: the new status for each thing that can happen to a CertificatePush.
//!
//! Everything here is pure so the transitions can be unit-tested. Timestamps come in as arguments and
//! `lastTransitionTime` only moves when a condition's status changes, so an unchanged outcome produces a
//! byte-identical status and no write.

use jiff::Timestamp;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{CertificatePushStatus, Condition, PushedTarget};
use crate::scm::PushFailure;

mod deploy;
mod reason;
pub use deploy::{DEPLOYED, settled};
pub use reason::{Lift, Reason};

/// metav1.Condition status: the condition holds.
pub const TRUE: &str = "True";
/// metav1.Condition status: the condition does not hold.
pub const FALSE: &str = "False";
/// metav1.Condition status: not known yet.
pub const UNKNOWN: &str = "Unknown";

/// Summary condition, always present.
pub const READY: &str = "Ready";
/// Present (True) only while a failure needs a human.
pub const STALLED: &str = "Stalled";
/// Present (True) only while a push is pending or a retry is scheduled.
pub const RECONCILING: &str = "Reconciling";

pub use crate::time::{format_time, parse_time};

/// The Ready condition, if present.
pub fn ready(status: &CertificatePushStatus) -> Option<&Condition> {
    status.conditions.iter().find(|c| c.type_ == READY)
}

/// The Ready reason, if present and known.
pub fn ready_reason(status: &CertificatePushStatus) -> Option<Reason> {
    ready(status).and_then(|c| Reason::parse(&c.reason))
}

/// Facts about the attempt that every transition records.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// metadata.generation of the object.
    pub generation: i64,
    /// The re-push annotation's value at this attempt.
    pub push_request: Option<&'a str>,
    /// Digest of the credential read for this attempt, None when none could be read.
    pub credentials_digest: Option<&'a str>,
    /// The SCM endpoint the operator talks to.
    pub endpoint: &'a str,
    /// What is pushed where, for messages: "certificate X to WAF in cn-north-4".
    pub target: &'a str,
    /// Now.
    pub now: Timestamp,
}

/// The `notAfter` of the certificate serving: `pushed.notAfter`, or, in a status written before `pushed` existed,
/// `notAfter` when the imported certificate it describes is the one pushed. Never a renewal still being imported or
/// pushed.
pub fn serving_not_after(s: &CertificatePushStatus) -> Option<&str> {
    match &s.pushed {
        Some(pushed) => pushed.not_after.as_deref(),
        None if s.certificate_id.is_some() && s.pushed_certificate_id == s.certificate_id => s.not_after.as_deref(),
        None => None,
    }
}

/// First sight: Ready Unknown/Pending and Reconciling True, so clients see the operator is alive.
pub fn pending(old: &CertificatePushStatus, generation: i64, now: Timestamp) -> CertificatePushStatus {
    let mut status = old.clone();
    status.observed_generation = Some(generation);
    status.conditions = conditions(
        &old.conditions,
        &[
            (READY, UNKNOWN, Reason::Pending, "Waiting for the first push".into()),
            (RECONCILING, TRUE, Reason::Pending, "A push is pending".into()),
        ],
        generation,
        now,
    );
    status
}

/// A push succeeded: record it and clear every trace of earlier failures.
pub fn pushed(
    old: &CertificatePushStatus,
    attempt: &Attempt,
    http_status: u16,
    request_id: Option<String>,
) -> CertificatePushStatus {
    let now = format_time(attempt.now);
    let message = format!("Pushed {} (HTTP {http_status})", attempt.target);
    CertificatePushStatus {
        observed_generation: Some(attempt.generation),
        conditions: conditions(
            &old.conditions,
            &[(READY, TRUE, Reason::Pushed, message)],
            attempt.generation,
            attempt.now,
        ),
        http_status: Some(i32::from(http_status)),
        error_code: None,
        error_message: None,
        request_id,
        last_push_time: Some(now.clone()),
        last_attempt_time: Some(now),
        failed_attempts: None,
        next_retry_time: None,
        pushed_generation: Some(attempt.generation),
        last_handled_push_request: handled_request(old, attempt),
        pending_push_request: None,
        credentials_digest: attempt.credentials_digest.map(str::to_string),
        scm_endpoint: Some(attempt.endpoint.to_string()),
        outcome_unknown_time: None,
        // What was imported stays; in import mode, the certificate just pushed is the imported one.
        certificate_id: old.certificate_id.clone(),
        source_fingerprint: old.source_fingerprint.clone(),
        not_after: old.not_after.clone(),
        source_secret: old.source_secret.clone(),
        pushed_certificate_id: old.certificate_id.clone(),
        // What was pushed where is recorded by the caller, who knows the spec.
        pushed: old.pushed.clone(),
        pending_deletions: old.pending_deletions.clone(),
        deployments: old.deployments.clone(),
        targets: old.targets.clone(),
        in_use: old.in_use.clone(),
        import_intent: old.import_intent.clone(),
    }
}

/// A push failed. `next_retry` is set for transient failures only.
pub fn failed(
    old: &CertificatePushStatus,
    attempt: &Attempt,
    failure: &PushFailure,
    failed_attempts: i32,
    next_retry: Option<Timestamp>,
) -> CertificatePushStatus {
    let reason = Reason::from(failure.kind);
    // An unanswered attempt of this same push (same generation) may have landed; a new generation is new work.
    let earlier_unknown = old
        .outcome_unknown_time
        .clone()
        .filter(|_| old.observed_generation == Some(attempt.generation));
    let outcome_unknown_time = earlier_unknown
        .clone()
        .or_else(|| failure.outcome_unknown.then(|| format_time(attempt.now)));
    let mut detail = failure.describe();
    if failure.outcome_unknown {
        detail.push_str(" (the request was sent and no answer came back, so the push may have landed)");
    }
    if let Some(at) = earlier_unknown.filter(|_| !failure.kind.is_transient()) {
        detail.push_str(&format!(
            ". An earlier attempt at {at} got no answer and may have landed: check whether {} is already in \
             that service's certificate list (console or API) before pushing again",
            attempt.target
        ));
    }
    let mut message = match next_retry {
        Some(at) => format!("{detail}; retry {failed_attempts} at {}", format_time(at)),
        None => format!("{detail}; {}", stall_hint(reason)),
    };
    // An account of another Huawei Cloud site is unknown at this site's endpoint: it looks like a bad key or a
    // missing certificate.
    if matches!(reason, Reason::Unauthorized | Reason::CertificateNotFound) {
        message.push_str(&format!(
            ". The operator talks to {}: an account of another Huawei Cloud site needs --scm-region (cn-north-4 \
             Chinese mainland, ap-southeast-1 international, eu-west-101 Europe, my-kualalumpur-1)",
            attempt.endpoint
        ));
    }
    let mut status = with_problem(old, attempt, reason, message);
    status.http_status = failure.http_status.map(i32::from);
    status.error_code = failure.error_code.clone();
    status.error_message = Some(failure.error_message.clone());
    status.request_id = failure.request_id.clone();
    status.last_attempt_time = Some(format_time(attempt.now));
    status.failed_attempts = Some(failed_attempts);
    status.next_retry_time = next_retry.map(format_time);
    status.scm_endpoint = Some(attempt.endpoint.to_string());
    status.outcome_unknown_time = outcome_unknown_time;
    status
}

/// What a human does to end a stall of this reason.
fn stall_hint(reason: Reason) -> &'static str {
    match reason.lift() {
        Lift::CredentialChange => {
            "fix the cause, then put a new credential in the Secret, change the spec or set a new push-requested-at annotation"
        }
        // An access key IAM did not tell the account of: the fix is in the Secret, read again on every change.
        Lift::SecretChange => {
            "fix the Secret (it is read again whenever it changes), change the spec or set a new push-requested-at \
             annotation"
        }
        _ => "fix the cause, then change the spec or set a new push-requested-at annotation",
    }
}

/// Something local (credentials, spec, source Secret) stops the attempt before any request; the SCM response
/// fields are left as they were.
pub fn not_sent(
    old: &CertificatePushStatus,
    attempt: &Attempt,
    reason: Reason,
    message: &str,
) -> CertificatePushStatus {
    let mut status = with_problem(old, attempt, reason, message.to_string());
    status.next_retry_time = None;
    status
}

/// A spec edit that keeps what was pushed where (or the first look at a status written before `pushed` existed):
/// the status now describes `generation`, with `pushed` recorded (its regions narrowed to the spec's), and nothing
/// is sent.
pub fn observed(old: &CertificatePushStatus, generation: i64, pushed: PushedTarget) -> CertificatePushStatus {
    let mut status = old.clone();
    status.observed_generation = Some(generation);
    for condition in &mut status.conditions {
        condition.observed_generation = Some(generation);
    }
    match &mut status.pushed {
        // The destination is within what was pushed (that is why nothing is sent): the regions that matter now are
        // the spec's, so a switch from targetProjects to targetProject deploys to the region it names.
        Some(old) => old.target_project = pushed.target_project,
        None => status.pushed = Some(pushed),
    }
    status
}

/// The source certificate is right but not valid yet: nothing is sent, and the attempt is due again at `due`.
pub fn not_yet_valid(
    old: &CertificatePushStatus,
    attempt: &Attempt,
    message: &str,
    due: Timestamp,
) -> CertificatePushStatus {
    let mut status = with_problem(old, attempt, Reason::NotYetValid, message.to_string());
    status.next_retry_time = Some(format_time(due));
    status
}

/// The source Secret holds again the certificate already pushed (it was deleted or broken, and is back): Ready again,
/// with nothing sent and no new push recorded.
pub fn already_pushed(old: &CertificatePushStatus, attempt: &Attempt) -> CertificatePushStatus {
    let message = format!(
        "Pushed {} earlier; the source Secret holds that certificate again, so nothing was sent",
        attempt.target
    );
    let mut status = old.clone();
    status.observed_generation = Some(attempt.generation);
    status.conditions = conditions(
        &old.conditions,
        &[(READY, TRUE, Reason::Pushed, message)],
        attempt.generation,
        attempt.now,
    );
    status.error_code = None;
    status.error_message = None;
    status.failed_attempts = None;
    status.next_retry_time = None;
    status
}

/// The request value a finished attempt has handled: the annotation's value when it succeeded or stalled.
fn handled_request(old: &CertificatePushStatus, attempt: &Attempt) -> Option<String> {
    attempt
        .push_request
        .map(str::to_string)
        .or(old.last_handled_push_request.clone())
}

fn with_problem(
    old: &CertificatePushStatus,
    attempt: &Attempt,
    reason: Reason,
    message: String,
) -> CertificatePushStatus {
    let mut wanted = vec![(READY, FALSE, reason, message.clone())];
    if reason.stalls() {
        wanted.push((STALLED, TRUE, reason, message));
    } else {
        wanted.push((RECONCILING, TRUE, reason, message));
    }
    let mut status = old.clone();
    status.observed_generation = Some(attempt.generation);
    status.conditions = conditions(&old.conditions, &wanted, attempt.generation, attempt.now);
    status.credentials_digest = attempt.credentials_digest.map(str::to_string);
    if reason.stalls() {
        // A stall answers the request: the next new value asks again.
        status.last_handled_push_request = handled_request(old, attempt);
        status.pending_push_request = None;
    } else {
        // A transient failure does not: the request stays pending and is retried with backoff.
        status.pending_push_request = attempt
            .push_request
            .filter(|r| Some(*r) != old.last_handled_push_request.as_deref())
            .map(str::to_string);
    }
    status
}

/// An Event to publish for a status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// Event reason: Pushed or PushFailed.
    pub reason: &'static str,
    /// Event note: the Ready message.
    pub note: String,
}

/// The Event for going from `old` to `new`: Normal `Pushed` for every successful push, Warning `PushFailed`
/// once per failure state (a new Ready reason), not once per retry.
pub fn notice(old: &CertificatePushStatus, new: &CertificatePushStatus) -> Option<Notice> {
    let now = ready(new)?;
    let before = ready(old);
    let same_state = before.is_some_and(|b| b.status == now.status && b.reason == now.reason);
    let pushed_now = new.last_push_time != old.last_push_time;
    let event = |warning, reason| {
        Some(Notice {
            warning,
            reason,
            note: now.message.clone(),
        })
    };
    // With spec.deploy, Ready tells the deploy once the push is done: one Event per deploy state, and the push's own.
    match Reason::parse(&now.reason) {
        Some(Reason::Deployed) if !same_state => return event(false, "Deployed"),
        Some(Reason::DeployFailed) if !same_state || deploy::failures_changed(old, new) => {
            return event(true, "DeployFailed");
        }
        Some(Reason::Deployed | Reason::Deploying | Reason::DeployFailed) => {
            return if pushed_now { event(false, "Pushed") } else { None };
        }
        _ => {}
    }
    if now.status == TRUE {
        return (new.last_push_time != old.last_push_time).then(|| Notice {
            warning: false,
            reason: "Pushed",
            note: now.message.clone(),
        });
    }
    (now.status == FALSE && !same_state).then(|| Notice {
        warning: true,
        reason: "PushFailed",
        note: now.message.clone(),
    })
}

/// Builds the condition list: exactly the wanted conditions, keeping `lastTransitionTime` where the status did not change.
fn conditions(
    old: &[Condition],
    wanted: &[(&str, &str, Reason, String)],
    generation: i64,
    now: Timestamp,
) -> Vec<Condition> {
    wanted
        .iter()
        .map(|(type_, status, reason, message)| {
            let since = old
                .iter()
                .find(|c| c.type_ == *type_ && c.status == *status)
                .map(|c| c.last_transition_time.clone())
                // Second precision, as the API server stores it, so a read-back status compares equal.
                .unwrap_or_else(|| Time(Timestamp::from_second(now.as_second()).unwrap_or(now)));
            Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                observed_generation: Some(generation),
                last_transition_time: since,
                reason: reason.to_string(),
                message: message.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scm::FailureKind;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn attempt(generation: i64, now: &str) -> Attempt<'static> {
        Attempt {
            generation,
            push_request: None,
            credentials_digest: Some("sha256:7"),
            endpoint: "https://scm.example.com/",
            target: "certificate scs1554192131150 to CDN in cn-north-4",
            now: t(now),
        }
    }

    fn failure(kind: FailureKind, status: u16, code: &str) -> PushFailure {
        PushFailure {
            kind,
            http_status: Some(status),
            error_code: Some(code.into()),
            error_message: "boom".into(),
            request_id: Some("r1".into()),
            retry_after: None,
            outcome_unknown: false,
        }
    }

    fn types(s: &CertificatePushStatus) -> Vec<(&str, &str, &str)> {
        s.conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect()
    }

    #[test]
    fn first_sight_is_unknown_and_reconciling() {
        let s = pending(&Default::default(), 1, t("2026-01-01T00:00:00Z"));
        assert_eq!(types(&s), [(READY, UNKNOWN, "Pending"), (RECONCILING, TRUE, "Pending")]);
        assert_eq!(s.observed_generation, Some(1));
        assert!(s.conditions.iter().all(|c| c.observed_generation == Some(1)));
    }

    #[test]
    fn success_clears_failure_fields_and_removes_stalled_and_reconciling() {
        let a = attempt(2, "2026-01-01T00:00:00Z");
        let f = failed(
            &Default::default(),
            &a,
            &failure(FailureKind::Unauthorized, 401, "APIGW.0301"),
            1,
            None,
        );
        assert_eq!(
            types(&f),
            [(READY, FALSE, "Unauthorized"), (STALLED, TRUE, "Unauthorized")]
        );
        assert_eq!(f.error_code.as_deref(), Some("APIGW.0301"));
        let message = &ready(&f).unwrap().message;
        assert!(
            message.contains("talks to https://scm.example.com/") && message.contains("--scm-region"),
            "a 401 hints at a site mismatch: {message}"
        );
        let a2 = attempt(2, "2026-01-01T00:05:00Z");
        let s = pushed(&f, &a2, 204, Some("r2".into()));
        assert_eq!(types(&s), [(READY, TRUE, "Pushed")]);
        assert_eq!(
            (s.error_code.clone(), s.error_message.clone(), s.failed_attempts),
            (None, None, None)
        );
        assert_eq!(s.pushed_generation, Some(2));
        assert_eq!(s.http_status, Some(204));
        assert_eq!(s.last_push_time.as_deref(), Some("2026-01-01T00:05:00Z"));
        assert_eq!(
            format_time(s.conditions[0].last_transition_time.0),
            "2026-01-01T00:05:00Z"
        );
    }

    #[test]
    fn transient_failure_is_reconciling_not_stalled() {
        let next = t("2026-01-01T00:00:05Z");
        let f = failed(
            &Default::default(),
            &attempt(1, "2026-01-01T00:00:00Z"),
            &failure(FailureKind::Transient, 503, "APIGW.0613"),
            1,
            Some(next),
        );
        assert_eq!(types(&f), [(READY, FALSE, "Retrying"), (RECONCILING, TRUE, "Retrying")]);
        assert_eq!(f.next_retry_time.as_deref(), Some("2026-01-01T00:00:05Z"));
        assert!(
            f.conditions[0].message.contains("retry 1 at 2026-01-01T00:00:05Z"),
            "{}",
            f.conditions[0].message
        );
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let f1 = failed(
            &Default::default(),
            &attempt(1, "2026-01-01T00:00:00Z"),
            &failure(FailureKind::Transient, 503, "X"),
            1,
            Some(t("2026-01-01T00:00:05Z")),
        );
        let f2 = failed(
            &f1,
            &attempt(1, "2026-01-01T00:00:05Z"),
            &failure(FailureKind::Rejected, 400, "SCM.0028"),
            2,
            None,
        );
        // Ready stays False, so its transition time stays; Stalled is new.
        assert_eq!(
            format_time(f2.conditions[0].last_transition_time.0),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(f2.conditions[1].type_, STALLED);
        assert_eq!(
            format_time(f2.conditions[1].last_transition_time.0),
            "2026-01-01T00:00:05Z"
        );
        assert_eq!(f2.next_retry_time, None);
    }

    #[test]
    fn same_inputs_give_an_identical_status() {
        let a = attempt(1, "2026-01-01T00:00:00Z");
        let s1 = not_sent(
            &Default::default(),
            &a,
            Reason::CredentialsNotFound,
            "Secret \"scm\" not found",
        );
        let later = attempt(1, "2026-01-01T01:00:00Z");
        let s2 = not_sent(&s1, &later, Reason::CredentialsNotFound, "Secret \"scm\" not found");
        assert_eq!(s1, s2);
    }

    #[test]
    fn push_request_is_handled_on_success_and_stall_but_not_on_a_transient_failure() {
        let a = Attempt {
            push_request: Some("now"),
            ..attempt(1, "2026-01-01T00:00:00Z")
        };
        let s = pushed(&Default::default(), &a, 204, None);
        assert_eq!(s.last_handled_push_request.as_deref(), Some("now"));
        let b = Attempt {
            push_request: Some("later"),
            ..a.clone()
        };
        let f = failed(&s, &b, &failure(FailureKind::Forbidden, 403, "APIGW.0302"), 1, None);
        assert_eq!(f.last_handled_push_request.as_deref(), Some("later"));
        assert_eq!(
            f.pushed_generation,
            Some(1),
            "a failed re-push keeps the record of the earlier success"
        );
        let r = failed(
            &s,
            &b,
            &failure(FailureKind::Transient, 503, "APIGW.0613"),
            1,
            Some(t("2026-01-01T00:00:05Z")),
        );
        assert_eq!(r.last_handled_push_request.as_deref(), Some("now"));
        assert_eq!(r.pending_push_request.as_deref(), Some("later"));
        // The annotation still holding the handled value is not a pending request.
        let c = failed(
            &s,
            &a,
            &failure(FailureKind::Transient, 503, "APIGW.0613"),
            1,
            Some(t("2026-01-01T00:00:05Z")),
        );
        assert_eq!(c.pending_push_request, None);
    }

    #[test]
    fn an_unanswered_attempt_is_remembered_and_explains_a_later_refusal() {
        let a = attempt(1, "2026-01-01T00:00:00Z");
        let unanswered = PushFailure {
            kind: FailureKind::Transient,
            http_status: None,
            error_code: None,
            error_message: "request to SCM timed out without an answer".into(),
            request_id: None,
            retry_after: None,
            outcome_unknown: true,
        };
        let u = failed(&Default::default(), &a, &unanswered, 1, Some(t("2026-01-01T00:00:05Z")));
        assert_eq!(u.outcome_unknown_time.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert!(
            u.conditions[0].message.contains("may have landed"),
            "{}",
            u.conditions[0].message
        );
        let later = attempt(1, "2026-01-01T00:00:05Z");
        let refused = failed(&u, &later, &failure(FailureKind::Rejected, 400, "SCM.0028"), 2, None);
        let m = &refused.conditions[0].message;
        assert_eq!(refused.conditions[0].reason, "PushRejected");
        assert!(
            m.contains("earlier attempt at 2026-01-01T00:00:00Z got no answer and may have landed"),
            "{m}"
        );
        assert!(m.contains("certificate scs1554192131150 to CDN in cn-north-4"), "{m}");
        assert_eq!(
            refused.outcome_unknown_time, u.outcome_unknown_time,
            "kept until success"
        );
        // A plain refusal without an earlier unanswered attempt says nothing of the kind.
        let plain = failed(
            &Default::default(),
            &a,
            &failure(FailureKind::Rejected, 400, "SCM.0028"),
            1,
            None,
        );
        assert!(!plain.conditions[0].message.contains("may have landed"));
        assert_eq!(plain.outcome_unknown_time, None);
        // A success or a new generation forgets it.
        assert_eq!(pushed(&refused, &later, 204, None).outcome_unknown_time, None);
        let next = failed(
            &refused,
            &attempt(2, "2026-01-01T00:01:00Z"),
            &failure(FailureKind::Transient, 503, "APIGW.0613"),
            1,
            Some(t("2026-01-01T00:01:05Z")),
        );
        assert_eq!(next.outcome_unknown_time, None);
    }

    #[test]
    fn events_once_per_push_and_once_per_failure_state() {
        let a = attempt(1, "2026-01-01T00:00:00Z");
        let p = pending(&Default::default(), 1, a.now);
        assert_eq!(notice(&Default::default(), &p), None);
        let transient = failure(FailureKind::Transient, 503, "APIGW.0613");
        let r1 = failed(&p, &a, &transient, 1, Some(t("2026-01-01T00:00:05Z")));
        let n = notice(&p, &r1).expect("first failure is announced");
        assert!(
            n.warning && n.reason == "PushFailed" && n.note.contains("HTTP 503 APIGW.0613"),
            "{n:?}"
        );
        let r2 = failed(
            &r1,
            &attempt(1, "2026-01-01T00:00:05Z"),
            &transient,
            2,
            Some(t("2026-01-01T00:00:15Z")),
        );
        assert_eq!(
            notice(&r1, &r2),
            None,
            "a retry in the same state is not announced again"
        );
        let stalled = failed(&r2, &a, &failure(FailureKind::Unauthorized, 401, "APIGW.0301"), 3, None);
        assert_eq!(notice(&r2, &stalled).map(|n| n.reason), Some("PushFailed"));
        let ok = pushed(&stalled, &attempt(1, "2026-01-01T00:01:00Z"), 204, None);
        assert_eq!(
            notice(&stalled, &ok).map(|n| (n.warning, n.reason)),
            Some((false, "Pushed"))
        );
        assert_eq!(notice(&ok, &ok), None);
    }
}
