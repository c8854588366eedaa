//! Imports a renewal superseded, owed a delete: recorded in status before the delete is sent and retried with
//! backoff until SCM confirms (204 or 404), so a failed status write, a crash or a shutdown between the push and the
//! delete never leaves one in SCM for good.

use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;

use super::retry::{backoff, ceil_to_second, until};
use crate::crd::{CertificatePushStatus, PendingDeletion};
use crate::status::{self, Lift};
use crate::time;

/// The status after `pushed`, a certificate already in SCM (spec.certificateId), replaced the imports of a former
/// sourceSecretRef spec: with deletionPolicy Delete, what it imported is owed a delete like a renewal's superseded
/// import (never while in use: each is asked about first), and the import fields go; with Retain they stay in SCM
/// and in status.
pub fn source_dropped(status: &mut CertificatePushStatus, pushed: &str, delete: bool) {
    if !delete {
        return;
    }
    let imported: Vec<String> = [status.pushed_certificate_id.take(), status.certificate_id.take()]
        .into_iter()
        .flatten()
        .filter(|id| id != pushed)
        .collect();
    for id in imported {
        owe(status, &id);
    }
    status.source_fingerprint = None;
    status.source_secret = None;
    status.not_after = None;
    status.import_intent = None;
}

/// Records that `certificate_id` is owed a delete, unless it is the certificate the status is about or the one
/// serving (never delete a certificate in use), or already recorded.
pub fn owe(status: &mut CertificatePushStatus, certificate_id: &str) {
    let in_use = [&status.certificate_id, &status.pushed_certificate_id]
        .into_iter()
        .any(|id| id.as_deref() == Some(certificate_id));
    let listed = status
        .pending_deletions
        .iter()
        .any(|d| d.certificate_id == certificate_id);
    if !in_use && !listed {
        status.pending_deletions.push(PendingDeletion {
            certificate_id: certificate_id.to_owned(),
            failed_attempts: None,
            next_attempt_time: None,
            last_error: None,
        });
    }
}

/// The IDs whose delete is due at `now`. One a resource of spec.deploy still holds (or is being deployed) waits:
/// a renewal's deploy that failed leaves the old certificate serving there.
pub fn due(status: &CertificatePushStatus, now: Timestamp) -> Vec<String> {
    status
        .pending_deletions
        .iter()
        .filter(|d| attempt_at(d).is_none_or(|at| at <= now))
        .filter(|d| !deployed(status, &d.certificate_id))
        .map(|d| d.certificate_id.clone())
        .collect()
}

/// Whether a resource of spec.deploy holds `certificate_id`, or may (its deploy's answer is not recorded).
fn deployed(status: &CertificatePushStatus, certificate_id: &str) -> bool {
    status.deployments.iter().any(|d| {
        d.certificate_id.as_deref() == Some(certificate_id)
            || d.deploying_certificate_id.as_deref() == Some(certificate_id)
    })
}

/// How long until the next scheduled delete attempt. One due now is not counted: it was either sent by this
/// reconcile or could not be (no usable credential), and then only a change of the Secret can help, so counting it
/// would requeue at once, in a loop.
pub fn next_scheduled(status: &CertificatePushStatus, now: Timestamp) -> Option<Duration> {
    let times = status
        .pending_deletions
        .iter()
        .filter_map(attempt_at)
        .filter(|at| *at > now);
    times.min().map(|at| until(now, at))
}

fn attempt_at(d: &PendingDeletion) -> Option<Timestamp> {
    d.next_attempt_time.as_deref().and_then(time::parse_time)
}

/// Whether a delete may be sent with the credential whose digest is `digest`: not while SCM's refusal of that same
/// credential is what the object stalls on (Huawei locks a key after repeated authentication failures).
pub fn may_send(status: &CertificatePushStatus, digest: Option<&str>) -> bool {
    let refused = status::ready_reason(status).is_some_and(|r| r.lift() == Lift::CredentialChange);
    !(refused && digest == status.credentials_digest.as_deref())
}

/// The status after SCM confirmed `certificate_id` deleted (204 or 404).
pub fn deleted(status: &CertificatePushStatus, certificate_id: &str) -> CertificatePushStatus {
    let mut status = status.clone();
    status.pending_deletions.retain(|d| d.certificate_id != certificate_id);
    status
}

/// The status after a failed delete of `certificate_id`: the next attempt backs off like a push retry (5 s doubling
/// to 10 min, jittered). `jitter` is uniform in [0, 1).
pub fn failed(
    status: &CertificatePushStatus,
    certificate_id: &str,
    error: &str,
    now: Timestamp,
    jitter: f64,
) -> CertificatePushStatus {
    let mut status = status.clone();
    if let Some(d) = owed_mut(&mut status, certificate_id) {
        let attempts = d.failed_attempts.unwrap_or(0).saturating_add(1);
        let next = now
            .checked_add(backoff(attempts, None, jitter))
            .map(ceil_to_second)
            .ok();
        d.failed_attempts = Some(attempts);
        d.next_attempt_time = next.map(time::format_time);
        d.last_error = Some(error.to_owned());
    }
    status
}

/// The status after SCM said `certificate_id` is still deployed somewhere (`why` names where): kept, and asked about
/// again after the longest backoff; not a failed attempt.
pub fn in_use(
    status: &CertificatePushStatus,
    certificate_id: &str,
    why: &str,
    now: Timestamp,
    jitter: f64,
) -> CertificatePushStatus {
    let mut status = status.clone();
    if let Some(d) = owed_mut(&mut status, certificate_id) {
        let next = now
            .checked_add(backoff(i32::MAX, None, jitter))
            .map(ceil_to_second)
            .ok();
        d.next_attempt_time = next.map(time::format_time);
        d.last_error = Some(why.to_owned());
    }
    status
}

fn owed_mut<'a>(status: &'a mut CertificatePushStatus, certificate_id: &str) -> Option<&'a mut PendingDeletion> {
    status
        .pending_deletions
        .iter_mut()
        .find(|d| d.certificate_id == certificate_id)
}

/// Why the last attempt to delete `certificate_id` did not delete it, if one did not.
pub fn last_error<'a>(status: &'a CertificatePushStatus, certificate_id: &str) -> Option<&'a str> {
    status
        .pending_deletions
        .iter()
        .find(|d| d.certificate_id == certificate_id)
        .and_then(|d| d.last_error.as_deref())
}

/// Drops every owed delete without sending it: importPolicy.retainSuperseded asks to keep such certificates.
pub fn retained(status: &CertificatePushStatus) -> CertificatePushStatus {
    CertificatePushStatus {
        pending_deletions: Vec::new(),
        ..status.clone()
    }
}

/// `action`, or sooner when a delete attempt is scheduled before it. The delay of a scheduled retry is `retry`; an `action`
/// without one waits for a change, which an owed delete must not.
pub fn look_again(action: Action, retry: Option<Duration>, status: &CertificatePushStatus, now: Timestamp) -> Action {
    match (next_scheduled(status, now), retry) {
        (None, _) => action,
        (Some(d), Some(r)) => Action::requeue(d.min(r)),
        (Some(d), None) if action == Action::await_change() => Action::requeue(d),
        // A requeue whose delay this function was not told: the next reconcile looks at the deletes again.
        (Some(_), None) => action,
    }
}

#[cfg(test)]
mod tests {
    /// Defect: switching sourceSecretRef -> certificateId left the imports in SCM even with deletionPolicy Delete
    /// (and dropped the finalizer that would have deleted them).
    #[test]
    fn a_dropped_source_owes_its_imports_a_delete_under_delete_only() {
        let imported = CertificatePushStatus {
            certificate_id: Some("scsNEW".into()),
            pushed_certificate_id: Some("scsOLD".into()),
            source_fingerprint: Some("f".into()),
            ..Default::default()
        };
        let mut kept = imported.clone();
        source_dropped(&mut kept, "scs1554192131150", false);
        assert_eq!(kept, imported, "Retain: they stay");
        let mut dropped = imported;
        source_dropped(&mut dropped, "scs1554192131150", true);
        let owed: Vec<&str> = dropped
            .pending_deletions
            .iter()
            .map(|d| d.certificate_id.as_str())
            .collect();
        assert_eq!(owed, ["scsOLD", "scsNEW"]);
        assert_eq!(
            (
                dropped.certificate_id,
                dropped.pushed_certificate_id,
                dropped.source_fingerprint
            ),
            (None, None, None)
        );
    }

    use super::*;

    #[test]
    fn a_certificate_in_use_elsewhere_is_asked_about_again_later_without_counting_a_failure() {
        let mut s = serving("c2");
        owe(&mut s, "c1");
        let s = in_use(&s, "c1", "in use: deployed on ELB e9 in cn-north-4", t(NOW), 0.5);
        let d = &s.pending_deletions[0];
        assert_eq!(d.failed_attempts, None);
        assert_eq!(last_error(&s, "c1"), Some("in use: deployed on ELB e9 in cn-north-4"));
        assert!(due(&s, t(NOW)).is_empty());
        assert_eq!(next_scheduled(&s, t(NOW)), Some(Duration::from_secs(600)));
    }

    #[test]
    fn a_certificate_a_deploy_resource_still_holds_is_not_deleted() {
        let mut s = serving("c2");
        owe(&mut s, "c1");
        s.deployments = vec![crate::crd::Deployment {
            resource: "e1".into(),
            certificate_id: Some("c1".into()),
            ..Default::default()
        }];
        assert!(due(&s, t(NOW)).is_empty(), "e1 still serves c1");
        s.deployments[0].certificate_id = None;
        s.deployments[0].deploying_certificate_id = Some("c1".into());
        assert!(due(&s, t(NOW)).is_empty(), "a deploy of c1 may have landed");
        s.deployments[0].deploying_certificate_id = None;
        s.deployments[0].certificate_id = Some("c2".into());
        assert_eq!(due(&s, t(NOW)), ["c1"]);
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn serving(pushed: &str) -> CertificatePushStatus {
        CertificatePushStatus {
            certificate_id: Some(pushed.into()),
            pushed_certificate_id: Some(pushed.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_certificate_in_use_is_never_owed_a_delete_and_none_twice() {
        let mut s = serving("scsB");
        s.certificate_id = Some("scsC".into());
        owe(&mut s, "scsB");
        owe(&mut s, "scsC");
        owe(&mut s, "scsA");
        owe(&mut s, "scsA");
        let ids: Vec<_> = s.pending_deletions.iter().map(|d| d.certificate_id.as_str()).collect();
        assert_eq!(ids, ["scsA"]);
    }

    #[test]
    fn a_failed_delete_backs_off_and_a_confirmed_one_leaves_the_list() {
        let now = t(NOW);
        let mut s = serving("scsB");
        owe(&mut s, "scsA");
        owe(&mut s, "scsX");
        assert_eq!(due(&s, now), ["scsA", "scsX"]);
        // Due now and not sent (no usable credential): a Secret change brings the object back, not a hot loop.
        assert_eq!(
            look_again(Action::await_change(), None, &s, now),
            Action::await_change()
        );

        let s = failed(&s, "scsA", "HTTP 500", now, 0.5);
        let a = &s.pending_deletions[0];
        assert_eq!(a.failed_attempts, Some(1));
        assert_eq!(a.next_attempt_time.as_deref(), Some("2026-01-01T00:00:05Z"));
        assert_eq!(a.last_error.as_deref(), Some("HTTP 500"));
        assert_eq!(due(&s, now), ["scsX"]);

        let s = deleted(&s, "scsX");
        assert!(due(&s, now).is_empty());
        assert_eq!(due(&s, t("2026-01-01T00:00:05Z")), ["scsA"]);
        // The earlier of a retry and the owed delete; a status owing nothing keeps the action.
        let five = Duration::from_secs(5);
        assert_eq!(look_again(Action::await_change(), None, &s, now), Action::requeue(five));
        let retry = Some(Duration::from_secs(2));
        assert_eq!(
            look_again(Action::requeue(Duration::from_secs(2)), retry, &s, now),
            Action::requeue(Duration::from_secs(2))
        );
        let second = failed(&s, "scsA", "HTTP 500", t("2026-01-01T00:00:05Z"), 0.5);
        assert_eq!(
            second.pending_deletions[0].next_attempt_time.as_deref(),
            Some("2026-01-01T00:00:15Z")
        );
        let done = deleted(&s, "scsA");
        assert_eq!(
            look_again(Action::await_change(), None, &done, now),
            Action::await_change()
        );
        assert!(retained(&s).pending_deletions.is_empty());
    }

    #[test]
    fn a_credential_scm_refused_is_not_sent_to_delete_either() {
        use crate::scm::{FailureKind, PushFailure};
        use crate::status::Attempt;
        let attempt = Attempt {
            generation: 1,
            push_request: None,
            credentials_digest: Some("d1"),
            endpoint: "https://scm.example/",
            target: "x",
            now: t(NOW),
        };
        let refusal = PushFailure {
            kind: FailureKind::Unauthorized,
            http_status: Some(401),
            error_code: None,
            error_message: "x".into(),
            request_id: None,
            retry_after: None,
            outcome_unknown: false,
        };
        let refused = status::failed(&serving("scsB"), &attempt, &refusal, 1, None);
        assert!(!may_send(&refused, Some("d1")));
        assert!(may_send(&refused, Some("d2")));
        assert!(may_send(&serving("scsB"), Some("d1")));
    }
}
