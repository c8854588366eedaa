//! The decisions of `policy::next_step` and `look_again` across the states a status can be in.
use super::*;
use crate::scm::{FailureKind, PushFailure};
use crate::status::{Attempt, Reason};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const NOW: &str = "2026-01-01T00:00:00Z";
pub(super) const ENDPOINT: &str = "https://scm.cn-north-4.myhuaweicloud.com/";

fn observe<'a>(status: &'a CertificatePushStatus, generation: i64, digest: Option<&'a str>) -> Observed<'a> {
    Observed {
        generation,
        push_request: None,
        status,
        credentials_digest: digest,
        endpoint: ENDPOINT,
        source_fingerprint: None,
        destination: None,
        min_repush_interval: Duration::ZERO,
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
        outcome_unknown: false,
    }
}

/// An attempt at `generation` with the credential whose digest is `digest`.
pub(super) fn attempt(generation: i64, digest: &'static str) -> Attempt<'static> {
    Attempt {
        generation,
        push_request: None,
        credentials_digest: Some(digest),
        endpoint: ENDPOINT,
        target: "x",
        now: t(NOW),
    }
}

fn requested(generation: i64, digest: &'static str, request: &'static str) -> Attempt<'static> {
    Attempt {
        push_request: Some(request),
        ..attempt(generation, digest)
    }
}

/// The status after a failure recorded the way the controller records it.
fn after(
    old: &CertificatePushStatus,
    a: &Attempt,
    kind: FailureKind,
    next_retry: Option<&str>,
) -> CertificatePushStatus {
    let n = failed_attempts(old, a.generation);
    status::failed(old, a, &failure(kind), n, next_retry.map(t))
}

#[test]
fn new_object_pushes_and_pushed_generation_is_up_to_date() {
    let fresh = status::pending(&Default::default(), 1, t(NOW));
    assert_eq!(
        next_step(&observe(&fresh, 1, Some("d1"))),
        Step::Push(Cause::NewGeneration)
    );
    let done = status::pushed(&fresh, &attempt(1, "d1"), 204, None);
    assert_eq!(next_step(&observe(&done, 1, Some("d1"))), Step::UpToDate);
    // A new credential after success is no reason to push again.
    assert_eq!(next_step(&observe(&done, 1, Some("d2"))), Step::UpToDate);
    assert_eq!(
        next_step(&observe(&done, 2, Some("d1"))),
        Step::Push(Cause::NewGeneration)
    );
}

/// The status as the controller builds it for an import of certificate `fp` with SCM ID `id`.
fn imported(old: &CertificatePushStatus, fp: &str, id: &str) -> CertificatePushStatus {
    let mut s = old.clone();
    if s.source_fingerprint.as_deref() != Some(fp) {
        s.certificate_id = None;
    }
    s.source_fingerprint = Some(fp.into());
    s.certificate_id = Some(id.into());
    s
}

fn with_source<'a>(o: Observed<'a>, fp: &'a str) -> Observed<'a> {
    Observed {
        source_fingerprint: Some(fp),
        ..o
    }
}

#[test]
fn an_imported_certificate_is_pushed_once_and_each_renewal_once_more() {
    let fresh = status::pending(&Default::default(), 1, t(NOW));
    assert_eq!(
        next_step(&with_source(observe(&fresh, 1, Some("d1")), "fpA")),
        Step::Push(Cause::NewGeneration)
    );
    let a = status::pushed(&imported(&fresh, "fpA", "scsA"), &attempt(1, "d1"), 204, None);
    assert_eq!(a.pushed_certificate_id.as_deref(), Some("scsA"));
    assert_eq!(
        next_step(&with_source(observe(&a, 1, Some("d1")), "fpA")),
        Step::UpToDate
    );
    // Renewal: same generation, new certificate in the Secret.
    assert_eq!(
        next_step(&with_source(observe(&a, 1, Some("d1")), "fpB")),
        Step::Push(Cause::NewCertificate)
    );
    // Imported but not pushed yet (the push is still to come): not up to date.
    let b_imported = imported(&a, "fpB", "scsB");
    assert_eq!(
        next_step(&with_source(observe(&b_imported, 1, Some("d1")), "fpB")),
        Step::Push(Cause::NewCertificate)
    );
    let b = status::pushed(&b_imported, &attempt(1, "d1"), 204, None);
    assert_eq!(
        next_step(&with_source(observe(&b, 1, Some("d1")), "fpB")),
        Step::UpToDate
    );
    // A certificateId spec ignores all of this.
    assert_eq!(next_step(&observe(&b, 1, Some("d1"))), Step::UpToDate);
}

/// Defect: any new generation was pushed again, so pointing credentialsRef at another Secret or toggling
/// deletionPolicy added a second copy to the service (and on CDN, which refuses a repeat, stalled the object).
#[test]
fn a_spec_edit_that_keeps_what_is_pushed_where_pushes_nothing() {
    let pending = status::pending(&Default::default(), 1, t(NOW));
    let mut pushed = status::pushed(&pending, &attempt(1, "d1"), 204, None);
    pushed.pushed = Some(crate::crd::PushedTarget {
        deploy_only: false,
        certificate_id: "scs1554192131150".into(),
        target_service: TargetService::Waf,
        target_project: "cn-north-4".into(),
        generation: 1,
        not_after: None,
    });
    let to = |certificate_id, target_service, target_project| Destination {
        certificate_id: Some(certificate_id),
        target_service,
        target_project,
        pushes: true,
    };
    let at = |status, generation, destination| Observed {
        destination: Some(destination),
        ..observe(status, generation, Some("d1"))
    };
    let same = to("scs1554192131150", TargetService::Waf, "cn-north-4");
    assert_eq!(next_step(&at(&pushed, 2, same)), Step::UpToDate);
    for other in [
        to("scs0000000000002", TargetService::Waf, "cn-north-4"),
        to("scs1554192131150", TargetService::Cdn, "cn-north-4"),
        to("scs1554192131150", TargetService::Waf, "cn-east-3"),
        to("scs1554192131150", TargetService::Waf, "cn-east-3,cn-north-4"),
        // pushPolicy Never after a push (or Always after deploying only) is work of its own.
        Destination { pushes: false, ..same },
    ] {
        assert_eq!(
            next_step(&at(&pushed, 2, other)),
            Step::Push(Cause::NewGeneration),
            "{other:?}"
        );
    }
    // Regions dropped from targetProjects: the others hold it already.
    let mut several = pushed.clone();
    several.pushed.as_mut().unwrap().target_project = "cn-east-3,cn-north-4".into();
    assert_eq!(next_step(&at(&several, 2, same)), Step::UpToDate);
    let requested = Observed {
        push_request: Some("again"),
        ..at(&pushed, 2, same)
    };
    assert_eq!(next_step(&requested), Step::Push(Cause::Requested));
    // A status from before `pushed` existed counts as pushed for the generation it names.
    let old = CertificatePushStatus {
        pushed: None,
        ..pushed.clone()
    };
    assert_eq!(next_step(&at(&old, 1, same)), Step::UpToDate);
    assert_eq!(next_step(&at(&old, 2, same)), Step::Push(Cause::NewGeneration));
}

/// Defect: a source Secret deleted and re-created with the pushed certificate was pushed again.
#[test]
fn a_source_back_with_the_pushed_certificate_is_not_pushed_again() {
    let pending = status::pending(&Default::default(), 1, t(NOW));
    let pushed = status::pushed(&imported(&pending, "fp1", "id1"), &attempt(1, "d1"), 204, None);
    let missing = status::not_sent(&pushed, &attempt(1, "d1"), Reason::InvalidSource, "source Secret gone");
    assert_eq!(
        next_step(&with_source(observe(&missing, 1, Some("d1")), "fp1")),
        Step::AlreadyPushed
    );
    // Another certificate is new work, and so is a spec change or a request.
    assert_eq!(
        next_step(&with_source(observe(&missing, 1, Some("d1")), "fp2")),
        Step::Push(Cause::NewCertificate)
    );
    assert_eq!(
        next_step(&with_source(observe(&missing, 2, Some("d1")), "fp1")),
        Step::Push(Cause::NewGeneration)
    );
    let requested = Observed {
        push_request: Some("again"),
        ..with_source(observe(&missing, 1, Some("d1")), "fp1")
    };
    assert_eq!(next_step(&requested), Step::Push(Cause::Requested));
    // Never pushed: the Secret's return is a push.
    let never = status::not_sent(
        &imported(&pending, "fp1", "id1"),
        &attempt(1, "d1"),
        Reason::InvalidSource,
        "source Secret gone",
    );
    assert_eq!(
        next_step(&with_source(observe(&never, 1, Some("d1")), "fp1")),
        Step::Push(Cause::CredentialsChanged)
    );
}

/// Defect: after a spec edit that kept the destination (credentialsRef pointed at another Secret), a source
/// Secret deleted and re-created with the pushed certificate was pushed again, because "already pushed" asked
/// for the push's own generation.
#[test]
fn a_source_back_after_a_kept_destination_edit_is_not_pushed_again() {
    let pending = status::pending(&Default::default(), 1, t(NOW));
    let mut pushed = status::pushed(&imported(&pending, "fp1", "id1"), &attempt(1, "d1"), 204, None);
    pushed.pushed = Some(crate::crd::PushedTarget {
        deploy_only: false,
        certificate_id: "id1".into(),
        target_service: TargetService::Waf,
        target_project: "cn-north-4".into(),
        generation: 1,
        not_after: None,
    });
    let here = Destination {
        certificate_id: None,
        target_service: TargetService::Waf,
        target_project: "cn-north-4",
        pushes: true,
    };
    let edited = status::observed(&pushed, 2, pushed.pushed.clone().unwrap());
    let missing = status::not_sent(&edited, &attempt(2, "d1"), Reason::InvalidSource, "source Secret gone");
    let back = Observed {
        destination: Some(here),
        ..with_source(observe(&missing, 2, Some("d1")), "fp1")
    };
    assert_eq!(next_step(&back), Step::AlreadyPushed);
    let elsewhere = Observed {
        destination: Some(Destination {
            target_project: "cn-east-3",
            ..here
        }),
        ..back
    };
    assert_eq!(next_step(&elsewhere), Step::Push(Cause::CredentialsChanged));
}

/// Defect: a re-push annotation changed in a loop (a misbehaving script, a GitOps tool fighting another) pushed on
/// every change.
#[test]
fn a_requested_push_waits_out_the_minimum_interval_since_the_last_attempt() {
    let pending = status::pending(&Default::default(), 1, t(NOW));
    let pushed = status::pushed(&pending, &attempt(1, "d1"), 204, None);
    let at = |now: &str| Observed {
        push_request: Some("again"),
        min_repush_interval: MIN_REPUSH_INTERVAL,
        now: t(now),
        ..observe(&pushed, 1, Some("d1"))
    };
    assert_eq!(
        next_step(&at("2026-01-01T00:00:10Z")),
        Step::WaitForRetry(Duration::from_secs(20))
    );
    assert_eq!(next_step(&at("2026-01-01T00:00:30Z")), Step::Push(Cause::Requested));
    // A first push is never held back.
    let first = Observed {
        push_request: Some("again"),
        min_repush_interval: MIN_REPUSH_INTERVAL,
        ..observe(&pending, 1, Some("d1"))
    };
    assert_eq!(next_step(&first), Step::Push(Cause::Requested));
}

#[test]
fn a_status_written_before_imports_existed_stays_up_to_date() {
    // The status of a pushed certificateId object as the previous release wrote it: no import fields.
    let old: CertificatePushStatus = serde_json::from_value(serde_json::json!({
        "observedGeneration": 3,
        "pushedGeneration": 3,
        "httpStatus": 204,
        "credentialsDigest": "sha256:00",
        "conditions": [{"type": "Ready", "status": "True", "reason": "Pushed", "message": "m",
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 3}],
    }))
    .unwrap();
    assert_eq!(next_step(&observe(&old, 3, Some("sha256:00"))), Step::UpToDate);
}

#[test]
fn a_failure_counts_only_for_the_certificate_it_happened_to() {
    let a = status::pushed(
        &imported(&Default::default(), "fpA", "scsA"),
        &attempt(1, "d1"),
        204,
        None,
    );
    // The renewal's import was refused (401) with credential d1.
    let refused = after(
        &imported(&a, "fpB", "scsB"),
        &attempt(1, "d1"),
        FailureKind::Unauthorized,
        None,
    );
    assert_eq!(
        next_step(&with_source(observe(&refused, 1, Some("d1")), "fpB")),
        Step::Stalled
    );
    assert_eq!(
        next_step(&with_source(observe(&refused, 1, Some("d2")), "fpB")),
        Step::Push(Cause::CredentialsChanged)
    );
    // The next renewal is new work, like a spec change.
    assert_eq!(
        next_step(&with_source(observe(&refused, 1, Some("d1")), "fpC")),
        Step::Push(Cause::NewCertificate)
    );
    // A transient failure of the renewal's push waits for its retry.
    let waiting = after(
        &imported(&a, "fpB", "scsB"),
        &attempt(1, "d1"),
        FailureKind::Transient,
        Some("2026-01-01T00:01:00Z"),
    );
    assert_eq!(
        next_step(&with_source(observe(&waiting, 1, Some("d1")), "fpB")),
        Step::WaitForRetry(Duration::from_secs(60))
    );
}

#[test]
fn repush_annotation_pushes_once_per_value() {
    let done = status::pushed(&Default::default(), &attempt(1, "d1"), 204, None);
    let mut o = observe(&done, 1, Some("d1"));
    o.push_request = Some("2026-01-01T00:00:00Z");
    assert_eq!(next_step(&o), Step::Push(Cause::Requested));
    let again = status::pushed(&done, &requested(1, "d1", "2026-01-01T00:00:00Z"), 204, None);
    let o2 = Observed { status: &again, ..o };
    assert_eq!(next_step(&o2), Step::UpToDate);
}

#[test]
fn repush_annotation_bypasses_backoff_and_stall() {
    let waiting = after(
        &Default::default(),
        &attempt(1, "d1"),
        FailureKind::Transient,
        Some("2026-01-01T00:10:00Z"),
    );
    let mut o = observe(&waiting, 1, Some("d1"));
    assert_eq!(next_step(&o), Step::WaitForRetry(Duration::from_secs(600)));
    o.push_request = Some("x");
    assert_eq!(next_step(&o), Step::Push(Cause::Requested));
    let stalled = after(&Default::default(), &attempt(1, "d1"), FailureKind::Rejected, None);
    let o = Observed {
        push_request: Some("x"),
        ..observe(&stalled, 1, Some("d1"))
    };
    assert_eq!(next_step(&o), Step::Push(Cause::Requested));
}

/// Defect: a re-push that met a transient fault was recorded as handled and never retried.
#[test]
fn failed_repush_is_retried_with_backoff_until_it_succeeds() {
    let done = status::pushed(&Default::default(), &attempt(1, "d1"), 204, None);
    let r = requested(1, "d1", "again");
    let f1 = after(&done, &r, FailureKind::Transient, Some("2026-01-01T00:00:05Z"));
    assert_eq!(
        f1.last_handled_push_request, None,
        "a transient failure does not handle the request"
    );
    assert_eq!(f1.pending_push_request.as_deref(), Some("again"));
    let o = Observed {
        push_request: Some("again"),
        ..observe(&f1, 1, Some("d1"))
    };
    assert_eq!(
        next_step(&o),
        Step::WaitForRetry(Duration::from_secs(5)),
        "backoff holds"
    );
    let due = Observed {
        now: t("2026-01-01T00:00:06Z"),
        ..o
    };
    assert_eq!(next_step(&due), Step::Push(Cause::RetryDue));
    // The backoff grows within the re-push's own failure series.
    assert_eq!(failed_attempts(&f1, 1), 2);
    let ok = status::pushed(&f1, &r, 204, None);
    assert_eq!(ok.last_handled_push_request.as_deref(), Some("again"));
    assert_eq!(ok.pending_push_request, None);
    assert_eq!(next_step(&Observed { status: &ok, ..o }), Step::UpToDate);
}

/// Defect: a re-push that stalled on a 401 stayed stalled after the token was rotated.
#[test]
fn stalled_repush_lifts_when_the_credential_changes() {
    let done = status::pushed(&Default::default(), &attempt(1, "d1"), 204, None);
    let r = requested(1, "d1", "again");
    let stalled = after(&done, &r, FailureKind::Unauthorized, None);
    assert_eq!(stalled.last_handled_push_request.as_deref(), Some("again"));
    let o = Observed {
        push_request: Some("again"),
        ..observe(&stalled, 1, Some("d1"))
    };
    assert_eq!(next_step(&o), Step::Stalled);
    let rotated = Observed {
        credentials_digest: Some("d2"),
        ..o
    };
    assert_eq!(next_step(&rotated), Step::Push(Cause::CredentialsChanged));
    // A Secret that disappeared is re-read (no request is sent without a credential).
    let gone = Observed {
        credentials_digest: None,
        ..o
    };
    assert_eq!(next_step(&gone), Step::Push(Cause::CredentialsChanged));
}

#[test]
fn transient_failure_waits_then_retries() {
    let waiting = after(
        &Default::default(),
        &attempt(1, "d1"),
        FailureKind::Transient,
        Some("2026-01-01T00:00:05Z"),
    );
    assert_eq!(
        next_step(&observe(&waiting, 1, Some("d1"))),
        Step::WaitForRetry(Duration::from_secs(5))
    );
    let later = Observed {
        now: t("2026-01-01T00:00:06Z"),
        ..observe(&waiting, 1, Some("d1"))
    };
    assert_eq!(next_step(&later), Step::Push(Cause::RetryDue));
    // A spec change does not wait for the old generation's backoff.
    assert_eq!(
        next_step(&observe(&waiting, 2, Some("d1"))),
        Step::Push(Cause::NewGeneration)
    );
}

/// Defect: any change to the Secret (a label, an annotation) lifted a credential stall.
#[test]
fn credential_refusals_lift_only_on_a_new_credential_or_spec() {
    for kind in [
        FailureKind::Unauthorized,
        FailureKind::Forbidden,
        FailureKind::CertificateNotFound,
    ] {
        let stalled = after(&Default::default(), &attempt(1, "d5"), kind, None);
        assert_eq!(stalled.credentials_digest.as_deref(), Some("d5"));
        // The same credential (whatever happened to the Secret's metadata) stays stalled.
        assert_eq!(next_step(&observe(&stalled, 1, Some("d5"))), Step::Stalled, "{kind:?}");
        assert_eq!(
            next_step(&observe(&stalled, 1, Some("d6"))),
            Step::Push(Cause::CredentialsChanged)
        );
        assert_eq!(
            next_step(&observe(&stalled, 2, Some("d5"))),
            Step::Push(Cause::NewGeneration)
        );
    }
}

/// Defect: a PushRejected stall lifted on a Secret change, although a refusal may be SCM refusing a repeat.
#[test]
fn rejected_push_lifts_only_on_spec_or_request() {
    let stalled = after(&Default::default(), &attempt(1, "d5"), FailureKind::Rejected, None);
    assert_eq!(next_step(&observe(&stalled, 1, Some("d6"))), Step::Stalled);
    assert_eq!(next_step(&observe(&stalled, 1, None)), Step::Stalled);
    let other_endpoint = Observed {
        endpoint: "https://scm.ap-southeast-1.myhuaweicloud.com/",
        ..observe(&stalled, 1, Some("d5"))
    };
    assert_eq!(next_step(&other_endpoint), Step::Stalled, "not blamed on the endpoint");
    assert_eq!(
        next_step(&observe(&stalled, 2, Some("d5"))),
        Step::Push(Cause::NewGeneration)
    );
}

/// Defect: a wrong-endpoint stall survived fixing --scm-endpoint and restarting.
#[test]
fn wrong_endpoint_stall_lifts_when_the_endpoint_changes() {
    for (http_status, code) in [(404, Some("APIGW.0101")), (200, None)] {
        let f = PushFailure {
            http_status: Some(http_status),
            error_code: code.map(str::to_string),
            ..failure(FailureKind::Rejected)
        };
        let stalled = status::failed(&Default::default(), &attempt(1, "d1"), &f, 1, None);
        assert_eq!(stalled.scm_endpoint.as_deref(), Some(ENDPOINT));
        assert_eq!(next_step(&observe(&stalled, 1, Some("d1"))), Step::Stalled);
        let fixed = Observed {
            endpoint: "https://scm.ap-southeast-1.myhuaweicloud.com/",
            ..observe(&stalled, 1, Some("d1"))
        };
        assert_eq!(
            next_step(&fixed),
            Step::Push(Cause::EndpointChanged),
            "HTTP {http_status}"
        );
    }
}

#[test]
fn credential_problems_are_rechecked() {
    let missing = status::not_sent(
        &Default::default(),
        &Attempt {
            credentials_digest: None,
            ..attempt(1, "d1")
        },
        Reason::CredentialsNotFound,
        "missing",
    );
    assert_eq!(
        next_step(&observe(&missing, 1, None)),
        Step::Push(Cause::CredentialsChanged)
    );
    // Also after a re-push found the Secret gone: the object is not left "up to date" with Ready=False.
    let done = status::pushed(&Default::default(), &attempt(1, "d1"), 204, None);
    let gone = status::not_sent(
        &done,
        &Attempt {
            credentials_digest: None,
            ..requested(1, "d1", "again")
        },
        Reason::CredentialsNotFound,
        "missing",
    );
    let o = Observed {
        push_request: Some("again"),
        ..observe(&gone, 1, Some("d1"))
    };
    assert_eq!(next_step(&o), Step::Push(Cause::CredentialsChanged));
}

#[test]
fn failures_count_within_a_generation() {
    let f1 = after(&Default::default(), &attempt(1, "d1"), FailureKind::Transient, None);
    assert_eq!(failed_attempts(&f1, 1), 2);
    assert_eq!(failed_attempts(&f1, 2), 1);
    assert_eq!(failed_attempts(&Default::default(), 1), 1);
    let ok = status::pushed(&f1, &attempt(1, "d1"), 204, None);
    assert_eq!(failed_attempts(&ok, 1), 1, "a success starts a new series");
}

/// Defect: an access key IAM could not tell the account of was recorded as a failed attempt with reason
/// InvalidCredentials, which lifts on any read of the Secret: every reconcile pushed again, rewrote the status
/// (failedAttempts + 1) and so triggered the next reconcile, a loop of API writes. The same credential now stalls
/// until it changes; one with a different digest (or a Secret fixed into one that parses) is tried.
#[test]
fn a_tried_credential_found_invalid_stalls_until_it_changes() {
    let fresh = status::pending(&Default::default(), 1, t(NOW));
    let tried = after(&fresh, &attempt(1, "d1"), FailureKind::InvalidCredentials, None);
    assert_eq!(status::ready_reason(&tried), Some(Reason::InvalidCredentials));
    assert_eq!(next_step(&observe(&tried, 1, Some("d1"))), Step::Stalled);
    assert_eq!(
        next_step(&observe(&tried, 1, Some("d2"))),
        Step::Push(Cause::CredentialsChanged)
    );
    // A Secret that did not parse was never tried (no digest recorded): any change of it is read again.
    let unread = status::not_sent(
        &fresh,
        &Attempt {
            credentials_digest: None,
            ..attempt(1, "d1")
        },
        Reason::InvalidCredentials,
        "x",
    );
    assert_eq!(
        next_step(&observe(&unread, 1, None)),
        Step::Push(Cause::CredentialsChanged)
    );
}
