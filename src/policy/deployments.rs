//! Deploying the certificate pushed onto the resources `spec.deploy` names. Each resource gets each certificate
//! once (Huawei bills every deploy): a deploy is recorded in status before it is sent, so a crash or a lost answer
//! is checked against SCM's record of where the certificate is deployed before anything is sent again; a resource
//! SCM reports failed is retried alone, with the push backoff.
//!
//! The states of one resource, for the certificate wanted (`W`, the one pushed to the spec's destination):
//! - holds `W` (`certificateId == W`): done; a renewal changes `W` and makes it fresh again;
//! - fresh (`checkedCertificateId != W`, no intent): nothing is known about `W` there (a first deploy, a renewal, a
//!   re-created object, a resource listed again, another object deploying `W` there): SCM's deployed-resources
//!   (free) is asked before anything is sent; failures counted for an earlier certificate are dropped;
//! - due (`checkedCertificateId == W`, no intent, no retry scheduled later than now): SCM said it does not hold `W`;
//! - sent (`deployingCertificateId == W`): its answer is not recorded (lost, 502/504, a crash): SCM is asked before
//!   anything else;
//! - failed (`nextAttemptTime` later than now): due again then (a failed check: asked again then).
//!
//! A deployed-resources answer that is unknown (a region SCM could not read) settles nothing: every resource asked
//! about keeps or gains its intent and backs off, so it is never read as "not deployed".

use std::time::Duration;

use jiff::Timestamp;

use super::retry::{backoff, ceil_to_second, until};
use crate::crd::{CertificatePushSpec, CertificatePushStatus, DeployResource, Deployment};
use crate::time;

/// The certificate the resources should hold: the one pushed to the spec's service and project. None before that
/// push, so a stalled push to a new destination never deploys the old destination's certificate.
pub fn wanted<'a>(spec: &CertificatePushSpec, status: &'a CertificatePushStatus) -> Option<&'a str> {
    let pushed = status.pushed.as_ref()?;
    let here = pushed.target_service == spec.target_service
        && pushed.target_project == spec.target_project
        && spec
            .certificate_id
            .as_ref()
            .is_none_or(|id| *id == pushed.certificate_id);
    here.then_some(pushed.certificate_id.as_str())
}

fn resources(spec: &CertificatePushSpec) -> &[DeployResource] {
    spec.deploy.as_ref().map_or(&[], |d| d.resources.as_slice())
}

/// The status with one entry per resource of the spec, in its order: a new resource gets an empty entry, a removed
/// one's entry goes (SCM has no un-deploy; what it holds stays). A fresh entry drops the failures counted for an
/// earlier certificate: a renewal's deploys start with no backoff, message or attempt count.
pub fn aligned(spec: &CertificatePushSpec, status: &CertificatePushStatus) -> CertificatePushStatus {
    let w = wanted(spec, status);
    let deployments = resources(spec)
        .iter()
        .map(|r| {
            let mut d = status
                .deployments
                .iter()
                .find(|d| d.resource == r.key())
                .cloned()
                .unwrap_or_else(|| Deployment {
                    resource: r.key().to_owned(),
                    ..Deployment::default()
                });
            if let Some(w) = w
                && is_fresh(&d, w)
            {
                d.checked_certificate_id = None;
                d.failure_info = None;
                d.failed_attempts = None;
                d.next_attempt_time = None;
            }
            d
        })
        .collect();
    CertificatePushStatus {
        deployments,
        ..status.clone()
    }
}

fn entry<'a>(status: &'a CertificatePushStatus, key: &str) -> Option<&'a Deployment> {
    status.deployments.iter().find(|d| d.resource == key)
}

fn holds(status: &CertificatePushStatus, key: &str, certificate: &str) -> bool {
    entry(status, key).is_some_and(|d| d.certificate_id.as_deref() == Some(certificate))
}

/// Whether nothing is known about `w` on the resource of `d`: it does not hold `w`, no deploy of `w` awaits its
/// answer, and SCM was not asked about `w` there.
fn is_fresh(d: &Deployment, w: &str) -> bool {
    d.certificate_id.as_deref() != Some(w)
        && d.deploying_certificate_id.as_deref() != Some(w)
        && d.checked_certificate_id.as_deref() != Some(w)
}

/// What is known about the wanted certificate on one resource that does not hold it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    /// Nothing: SCM is asked first.
    Fresh,
    /// A deploy of it was sent with no answer recorded: SCM is asked first.
    Sent,
    /// SCM said it does not hold it: deployed when not backing off.
    NotHeld,
}

/// The resources not holding the wanted certificate, not waiting for a scheduled retry, in state `known`.
fn ready_now<'a>(
    spec: &'a CertificatePushSpec,
    status: &CertificatePushStatus,
    now: Timestamp,
    known: &[Known],
) -> Vec<&'a DeployResource> {
    let Some(w) = wanted(spec, status) else {
        return Vec::new();
    };
    let none = Deployment::default();
    resources(spec)
        .iter()
        .filter(|r| !holds(status, r.key(), w))
        .filter(|r| {
            let d = entry(status, r.key()).unwrap_or(&none);
            let state = if d.deploying_certificate_id.as_deref() == Some(w) {
                Known::Sent
            } else if is_fresh(d, w) {
                Known::Fresh
            } else {
                Known::NotHeld
            };
            // A fresh entry's backoff is an earlier certificate's.
            let later = state != Known::Fresh && attempt_at(d).is_some_and(|at| at > now);
            !later && known.contains(&state)
        })
        .collect()
}

/// The resources SCM is asked about before anything is deployed: a deploy of the wanted certificate was sent with
/// no answer recorded (after the backoff of a failed check), or nothing is known about it there yet.
pub fn unconfirmed<'a>(
    spec: &'a CertificatePushSpec,
    status: &CertificatePushStatus,
    now: Timestamp,
) -> Vec<&'a DeployResource> {
    ready_now(spec, status, now, &[Known::Sent, Known::Fresh])
}

/// The resources to deploy the wanted certificate to now: SCM said they do not hold it, and they are not backing
/// off.
pub fn due<'a>(
    spec: &'a CertificatePushSpec,
    status: &CertificatePushStatus,
    now: Timestamp,
) -> Vec<&'a DeployResource> {
    ready_now(spec, status, now, &[Known::NotHeld])
}

fn attempt_at(d: &Deployment) -> Option<Timestamp> {
    d.next_attempt_time.as_deref().and_then(time::parse_time)
}

/// Whether there is deploy work now: a check of an unanswered deploy, or a deploy due.
pub fn owed_now(spec: &CertificatePushSpec, status: &CertificatePushStatus, now: Timestamp) -> bool {
    !unconfirmed(spec, status, now).is_empty() || !due(spec, status, now).is_empty()
}

/// Whether every resource holds the wanted certificate (true without spec.deploy).
pub fn complete(spec: &CertificatePushSpec, status: &CertificatePushStatus) -> bool {
    let Some(w) = wanted(spec, status) else {
        return resources(spec).is_empty();
    };
    resources(spec).iter().all(|r| holds(status, r.key(), w))
}

/// The resources whose last deploy failed, with why: for the Deployed condition.
pub fn failures(status: &CertificatePushStatus) -> Vec<(&str, &str)> {
    status
        .deployments
        .iter()
        .filter_map(|d| d.failure_info.as_deref().map(|f| (d.resource.as_str(), f)))
        .collect()
}

fn update(status: &CertificatePushStatus, keys: &[&str], f: impl Fn(&mut Deployment)) -> CertificatePushStatus {
    let mut status = status.clone();
    for d in status
        .deployments
        .iter_mut()
        .filter(|d| keys.contains(&d.resource.as_str()))
    {
        f(d);
    }
    status
}

/// The status to save before a deploy of `certificate` to `keys` is sent (or, after a check SCM could not answer,
/// while whether they hold it is unknown).
pub fn intend(status: &CertificatePushStatus, keys: &[&str], certificate: &str) -> CertificatePushStatus {
    update(status, keys, |d| {
        d.deploying_certificate_id = Some(certificate.to_owned());
        d.checked_certificate_id = Some(certificate.to_owned());
    })
}

/// The status after SCM said where `certificate` is deployed: each of `asked` it lists holds it; the others are due
/// (a deploy sent did not land, or a fresh one is not there yet).
pub fn confirmed(
    status: &CertificatePushStatus,
    asked: &[&str],
    held: &[String],
    certificate: &str,
    now: Timestamp,
) -> CertificatePushStatus {
    let landed: Vec<&str> = asked.iter().copied().filter(|k| held.iter().any(|h| h == k)).collect();
    let status = succeeded(status, &landed, certificate, now);
    let absent: Vec<&str> = asked.iter().copied().filter(|k| !landed.contains(k)).collect();
    update(&status, &absent, |d| {
        d.deploying_certificate_id = None;
        d.checked_certificate_id = Some(certificate.to_owned());
    })
}

fn succeeded(
    status: &CertificatePushStatus,
    keys: &[&str],
    certificate: &str,
    now: Timestamp,
) -> CertificatePushStatus {
    update(status, keys, |d| {
        *d = Deployment {
            resource: d.resource.clone(),
            certificate_id: Some(certificate.to_owned()),
            deploy_time: Some(time::format_time(now)),
            ..Deployment::default()
        }
    })
}

/// The status after SCM answered a deploy of `certificate` to `sent`: each resource in `failed` (with the target
/// service's failure_info) backs off, the others hold the certificate.
pub fn answered(
    status: &CertificatePushStatus,
    sent: &[&str],
    certificate: &str,
    failed: &[(String, String)],
    now: Timestamp,
    jitter: f64,
) -> CertificatePushStatus {
    let ok: Vec<&str> = sent
        .iter()
        .copied()
        .filter(|k| !failed.iter().any(|(r, _)| r == k))
        .collect();
    let mut status = succeeded(status, &ok, certificate, now);
    for (resource, info) in failed.iter().filter(|(r, _)| sent.contains(&r.as_str())) {
        status = backed_off(&status, &[resource.as_str()], info, None, now, jitter);
    }
    update(&status, sent, |d| d.deploying_certificate_id = None)
}

/// The status after a deploy request to `sent` failed as a whole (no answer, 5xx, a refused credential): each backs
/// off, `retry_after` at least. An answer that may have landed keeps its intent, so SCM is asked first next time.
pub fn request_failed(
    status: &CertificatePushStatus,
    sent: &[&str],
    error: &str,
    may_have_landed: bool,
    retry_after: Option<Duration>,
    now: Timestamp,
    jitter: f64,
) -> CertificatePushStatus {
    let status = backed_off(status, sent, error, retry_after, now, jitter);
    if may_have_landed {
        status
    } else {
        update(&status, sent, |d| d.deploying_certificate_id = None)
    }
}

fn backed_off(
    status: &CertificatePushStatus,
    keys: &[&str],
    why: &str,
    retry_after: Option<Duration>,
    now: Timestamp,
    jitter: f64,
) -> CertificatePushStatus {
    update(status, keys, |d| {
        let attempts = d.failed_attempts.unwrap_or(0).saturating_add(1);
        let next = now
            .checked_add(backoff(attempts, retry_after, jitter))
            .map(ceil_to_second)
            .ok();
        d.failed_attempts = Some(attempts);
        d.next_attempt_time = next.map(time::format_time);
        d.failure_info = Some(why.to_owned());
    })
}

/// How long until the next scheduled deploy retry of a resource that does not hold the wanted certificate.
pub fn next_scheduled(spec: &CertificatePushSpec, status: &CertificatePushStatus, now: Timestamp) -> Option<Duration> {
    let w = wanted(spec, status)?;
    resources(spec)
        .iter()
        .filter(|r| !holds(status, r.key(), w))
        .filter_map(|r| entry(status, r.key()).and_then(attempt_at))
        .filter(|at| *at > now)
        .min()
        .map(|at| until(now, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{DeploySpec, PushedTarget, TargetService};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn elb(ids: &[&str]) -> CertificatePushSpec {
        CertificatePushSpec {
            certificate_id: None,
            source_secret_ref: Some(crate::crd::SourceSecretRef { name: "tls".into() }),
            target_service: TargetService::Elb,
            deploy: Some(DeploySpec::ids(ids)),
            ..CertificatePushSpec::example()
        }
    }

    fn pushed(spec: &CertificatePushSpec, certificate: &str) -> CertificatePushStatus {
        aligned(
            spec,
            &CertificatePushStatus {
                pushed: Some(PushedTarget {
                    deploy_only: false,
                    certificate_id: certificate.into(),
                    target_service: spec.target_service,
                    target_project: spec.target_project.clone(),
                    generation: 1,
                    not_after: None,
                }),
                ..Default::default()
            },
        )
    }

    fn keys(resources: Vec<&DeployResource>) -> Vec<&str> {
        resources.into_iter().map(DeployResource::key).collect()
    }

    #[test]
    fn nothing_is_deployed_before_the_push_to_this_destination() {
        let spec = elb(&["e1"]);
        assert!(due(&spec, &CertificatePushStatus::default(), t(NOW)).is_empty());
        let mut elsewhere = pushed(&spec, "c1");
        elsewhere.pushed.as_mut().unwrap().target_project = "ap-southeast-1".into();
        assert!(
            due(&spec, &elsewhere, t(NOW)).is_empty(),
            "the old destination's certificate"
        );
        assert!(!complete(&spec, &elsewhere));
        assert!(complete(&elb(&[]), &CertificatePushStatus::default()));
    }

    /// Asks SCM about every resource of `status` (none holds `certificate`), as the first deploy does.
    fn checked(spec: &CertificatePushSpec, status: &CertificatePushStatus, certificate: &str) -> CertificatePushStatus {
        let asked = keys(unconfirmed(spec, status, t(NOW)));
        confirmed(status, &asked, &[], certificate, t(NOW))
    }

    #[test]
    fn each_resource_gets_each_certificate_once() {
        let spec = elb(&["e1", "e2"]);
        let s = pushed(&spec, "c1");
        assert!(due(&spec, &s, t(NOW)).is_empty(), "SCM is asked first");
        assert_eq!(keys(unconfirmed(&spec, &s, t(NOW))), ["e1", "e2"]);
        let s = checked(&spec, &s, "c1");
        assert_eq!(keys(due(&spec, &s, t(NOW))), ["e1", "e2"]);
        assert!(unconfirmed(&spec, &s, t(NOW)).is_empty());
        let s = intend(&s, &["e1", "e2"], "c1");
        assert!(due(&spec, &s, t(NOW)).is_empty(), "sent: asked about, not sent again");
        assert_eq!(keys(unconfirmed(&spec, &s, t(NOW))), ["e1", "e2"]);
        let s = answered(&s, &["e1", "e2"], "c1", &[], t(NOW), 0.5);
        assert!(complete(&spec, &s) && !owed_now(&spec, &s, t(NOW)));
        assert_eq!(s.deployments[0].deploy_time.as_deref(), Some(NOW));
        // A renewal: every resource is asked about, then due for the new certificate, once.
        let mut renewed = s.clone();
        renewed.pushed.as_mut().unwrap().certificate_id = "c2".into();
        assert_eq!(keys(unconfirmed(&spec, &renewed, t(NOW))), ["e1", "e2"]);
        assert_eq!(keys(due(&spec, &checked(&spec, &renewed, "c2"), t(NOW))), ["e1", "e2"]);
        assert!(!complete(&spec, &renewed));
    }

    /// Defect: a first deploy was sent without asking, so a resource already holding the certificate (a re-created
    /// object, a resource listed again, another object deploying it there) was deployed and billed again.
    #[test]
    fn a_resource_already_holding_the_certificate_is_not_deployed_again() {
        let spec = elb(&["e1", "e2"]);
        let s = pushed(&spec, "c1");
        let asked = keys(unconfirmed(&spec, &s, t(NOW)));
        let s = confirmed(&s, &asked, &["e1".to_owned()], "c1", t(NOW));
        assert_eq!(s.deployments[0].certificate_id.as_deref(), Some("c1"));
        assert_eq!(keys(due(&spec, &s, t(NOW))), ["e2"], "only the one SCM does not list");
    }

    /// Defect: a check SCM could not answer (a region it could not read) left a first deploy's resources as they
    /// were; they must be neither deployed blind nor asked again in a hot loop.
    #[test]
    fn an_unknown_check_backs_off_and_asks_again() {
        let spec = elb(&["e1"]);
        let s = pushed(&spec, "c1");
        let unknown = request_failed(&intend(&s, &["e1"], "c1"), &["e1"], "is_error", true, None, t(NOW), 0.5);
        assert!(unconfirmed(&spec, &unknown, t(NOW)).is_empty(), "backing off");
        assert!(
            due(&spec, &unknown, t("2026-01-01T01:00:00Z")).is_empty(),
            "never sent blind"
        );
        assert_eq!(keys(unconfirmed(&spec, &unknown, t("2026-01-01T00:00:05Z"))), ["e1"]);
    }

    /// Defect: a renewal inherited the failures counted for the certificate before it (backoff, message, attempts).
    #[test]
    fn a_renewal_starts_the_deploys_afresh() {
        let spec = elb(&["e1"]);
        let s = intend(&checked(&spec, &pushed(&spec, "c1"), "c1"), &["e1"], "c1");
        let failed = answered(&s, &["e1"], "c1", &[("e1".into(), "ELB.8902".into())], t(NOW), 0.5);
        assert_eq!(failures(&failed), [("e1", "ELB.8902")]);
        let mut renewed = failed.clone();
        renewed.pushed.as_mut().unwrap().certificate_id = "c2".into();
        let renewed = aligned(&spec, &renewed);
        let d = &renewed.deployments[0];
        assert_eq!(
            (
                d.failure_info.as_deref(),
                d.failed_attempts,
                d.next_attempt_time.as_deref()
            ),
            (None, None, None)
        );
        assert!(failures(&renewed).is_empty());
        assert_eq!(
            keys(unconfirmed(&spec, &renewed, t(NOW))),
            ["e1"],
            "asked at once, no backoff"
        );
    }

    #[test]
    fn a_failed_resource_is_retried_alone_after_its_backoff() {
        let spec = elb(&["e1", "e2"]);
        let s = intend(&checked(&spec, &pushed(&spec, "c1"), "c1"), &["e1", "e2"], "c1");
        let s = answered(
            &s,
            &["e1", "e2"],
            "c1",
            &[("e2".into(), "ELB.8902".into())],
            t(NOW),
            0.5,
        );
        assert_eq!(s.deployments[0].certificate_id.as_deref(), Some("c1"));
        let failed = &s.deployments[1];
        assert_eq!(
            (failed.certificate_id.as_deref(), failed.failure_info.as_deref()),
            (None, Some("ELB.8902"))
        );
        assert_eq!(failed.deploying_certificate_id, None);
        assert!(due(&spec, &s, t(NOW)).is_empty(), "backing off");
        assert_eq!(next_scheduled(&spec, &s, t(NOW)), Some(Duration::from_secs(5)));
        assert_eq!(keys(due(&spec, &s, t("2026-01-01T00:00:05Z"))), ["e2"]);
        assert_eq!(failures(&s), [("e2", "ELB.8902")]);
        let again = answered(&s, &["e2"], "c1", &[("e2".into(), "ELB.8902".into())], t(NOW), 0.5);
        assert_eq!(again.deployments[1].failed_attempts, Some(2));
        let done = answered(&again, &["e2"], "c1", &[], t(NOW), 0.5);
        assert!(complete(&spec, &done) && failures(&done).is_empty());
    }

    #[test]
    fn a_lost_answer_is_checked_and_only_what_did_not_land_is_sent_again() {
        let spec = elb(&["e1", "e2"]);
        let sent = intend(&checked(&spec, &pushed(&spec, "c1"), "c1"), &["e1", "e2"], "c1");
        let lost = request_failed(&sent, &["e1", "e2"], "no answer", true, None, t(NOW), 0.5);
        assert!(unconfirmed(&spec, &lost, t(NOW)).is_empty(), "backing off");
        let later = t("2026-01-01T00:00:05Z");
        assert_eq!(
            keys(unconfirmed(&spec, &lost, later)),
            ["e1", "e2"],
            "may have landed: ask first"
        );
        assert!(due(&spec, &lost, later).is_empty(), "not sent again before the check");
        let checked = confirmed(&lost, &["e1", "e2"], &["e1".to_owned()], "c1", t(NOW));
        assert_eq!(checked.deployments[0].certificate_id.as_deref(), Some("c1"));
        assert!(unconfirmed(&spec, &checked, later).is_empty());
        assert_eq!(keys(due(&spec, &checked, t("2026-01-01T01:00:00Z"))), ["e2"]);
        // Nothing left the machine: no check is needed.
        let refused = request_failed(&sent, &["e1"], "401", false, None, t(NOW), 0.5);
        assert_eq!(keys(unconfirmed(&spec, &refused, later)), ["e2"]);
    }

    #[test]
    fn entries_follow_the_spec_resources() {
        let s = pushed(&elb(&["e1", "e2"]), "c1");
        let s = answered(&intend(&s, &["e1"], "c1"), &["e1"], "c1", &[], t(NOW), 0.5);
        let grown = aligned(&elb(&["e3", "e1"]), &s);
        let names: Vec<&str> = grown.deployments.iter().map(|d| d.resource.as_str()).collect();
        assert_eq!(names, ["e3", "e1"]);
        assert_eq!(grown.deployments[1].certificate_id.as_deref(), Some("c1"), "kept");
        assert_eq!(
            keys(unconfirmed(&elb(&["e3", "e1"]), &grown, t(NOW))),
            ["e3"],
            "only the new one, asked about first"
        );
    }
}
