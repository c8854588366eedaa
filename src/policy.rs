//! When to push: the decision from spec, status, the credential in the Secret and the endpoint, and the retry backoff.
//!
//! The rule that matters most: push once per generation. Anything already recorded in status
//! (`pushedGeneration`, a stall, a scheduled retry) survives restarts and resyncs, so neither causes a push.
//! The second: a request SCM refused is not sent again until something that could change the answer changed.

use std::time::Duration;

use jiff::Timestamp;

use kube::runtime::controller::Action;

use crate::crd::{CertificatePushSpec, CertificatePushStatus, TargetService};
use crate::scm;
use crate::status::{self, Lift};

pub mod deletions;
pub mod deployments;
pub mod in_use;
mod retry;
pub mod targets;
pub use retry::{
    BACKOFF_BASE, BACKOFF_CAP, after_attempt, backoff, ceil_to_second, error_delay, failed_attempts, until,
};

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
    /// The source Secret holds again the certificate already pushed for this generation (it was deleted or broken,
    /// and is back): Ready again, with nothing sent.
    AlreadyPushed,
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
    /// The credential in the Secret changed since a failure it may have caused (or could not be read).
    CredentialsChanged,
    /// The operator talks to another SCM endpoint than the one a stall was blamed on.
    EndpointChanged,
    /// The source TLS Secret holds a certificate that has not been imported and pushed (a renewal).
    NewCertificate,
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
    /// Digest of the credential now in the Secret, None when none can be read.
    pub credentials_digest: Option<&'a str>,
    /// The SCM endpoint the operator talks to now.
    pub endpoint: &'a str,
    /// Fingerprint of the certificate now in the source TLS Secret; None for a certificateId spec.
    pub source_fingerprint: Option<&'a str>,
    /// Where the spec asks the certificate to go; None judges by generation alone.
    pub destination: Option<Destination<'a>>,
    /// The shortest time between an attempt and a push the re-push annotation asks for (`--min-repush-interval`).
    pub min_repush_interval: Duration,
    /// Now.
    pub now: Timestamp,
}

/// `action`, or sooner when a delete or a deploy attempt is scheduled before it. `retry` is the delay of a scheduled
/// push retry; an `action` without one waits for a change, which owed work must not.
pub fn look_again(
    spec: &CertificatePushSpec,
    action: Action,
    retry: Option<Duration>,
    status: &CertificatePushStatus,
    now: Timestamp,
) -> Action {
    let action = deletions::look_again(action, retry, status, now);
    let Some(deploy) = deployments::next_scheduled(spec, status, now) else {
        return action;
    };
    if action == Action::await_change() {
        return Action::requeue(deploy);
    }
    let known = [retry, deletions::next_scheduled(status, now), Some(deploy)];
    match (retry, known[1]) {
        (None, None) => action,
        _ => Action::requeue(known.into_iter().flatten().min().unwrap_or(deploy)),
    }
}

/// Default of `--min-repush-interval`.
pub const MIN_REPUSH_INTERVAL: Duration = Duration::from_secs(30);

/// What the spec asks to push where: a push is needed when this differs from `status.pushed`, not on any spec edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination<'a> {
    /// spec.certificateId; None for a sourceSecretRef spec, whose certificate is judged by its fingerprint.
    pub certificate_id: Option<&'a str>,
    /// spec.targetService.
    pub target_service: TargetService,
    /// spec.targetProject.
    pub target_project: &'a str,
    /// Whether the spec pushes (pushPolicy Always) rather than only deploys.
    pub pushes: bool,
}

/// Decides what to do. Pure: the same inputs always give the same step.
pub fn next_step(o: &Observed) -> Step {
    let s = o.status;
    let new_request = o.push_request.is_some() && o.push_request != s.last_handled_push_request.as_deref();
    // A re-push annotation changed in a loop is honoured at most once per --min-repush-interval.
    let requested = || match too_soon(o) {
        Some(wait) => Step::WaitForRetry(wait),
        None => Step::Push(Cause::Requested),
    };
    // A new request bypasses backoff and stalls, except the request whose own retries are being backed off.
    if new_request && o.push_request != s.pending_push_request.as_deref() {
        return requested();
    }
    // The certificate in the source Secret is the one the status is about (always so for a certificateId spec).
    let same_certificate = o
        .source_fingerprint
        .is_none_or(|fp| s.source_fingerprint.as_deref() == Some(fp));
    // The failure of the last attempt, if that attempt was at this generation and this certificate (a spec change
    // or a renewal is new work).
    let failure = status::ready_reason(s)
        .filter(|r| r.lift() != Lift::None && s.observed_generation == Some(o.generation) && same_certificate);
    let Some(reason) = failure else {
        // An imported certificate counts as pushed once its own push succeeded.
        let certificate_pushed = o.source_fingerprint.is_none() || (same_certificate && import_pushed(s));
        return if new_request {
            requested()
        } else if !pushed_here(o) {
            Step::Push(Cause::NewGeneration)
        } else if certificate_pushed {
            Step::UpToDate
        } else {
            Step::Push(Cause::NewCertificate)
        };
    };
    match reason.lift() {
        Lift::None => Step::UpToDate,
        Lift::Backoff => {
            let due = s.next_retry_time.as_deref().and_then(status::parse_time);
            match due {
                Some(at) if at > o.now => Step::WaitForRetry(until(o.now, at)),
                _ => Step::Push(Cause::RetryDue),
            }
        }
        // The source was missing or broken after its certificate was pushed: its return is not new work.
        Lift::SecretChange if reason == status::Reason::InvalidSource && pushed_this_certificate(o) => {
            Step::AlreadyPushed
        }
        // A credential that was read and tried (IAM could not tell an access key's account) is recorded with its
        // digest: the same one again would only fail again, and each attempt rewrites the status (a loop).
        Lift::SecretChange
            if reason == status::Reason::InvalidCredentials
                && s.credentials_digest.is_some()
                && o.credentials_digest == s.credentials_digest.as_deref() =>
        {
            Step::Stalled
        }
        // Nothing was sent, so re-reading the Secret on every change costs SCM nothing.
        Lift::SecretChange => Step::Push(Cause::CredentialsChanged),
        // SCM refused this credential: only a different one may change the answer (Huawei locks keys after
        // repeated authentication failures, so the same one is never re-sent).
        Lift::CredentialChange if o.credentials_digest != s.credentials_digest.as_deref() => {
            Step::Push(Cause::CredentialsChanged)
        }
        Lift::SpecChange if blames_endpoint(s) && s.scm_endpoint.as_deref() != Some(o.endpoint) => {
            Step::Push(Cause::EndpointChanged)
        }
        Lift::CredentialChange | Lift::SpecChange => Step::Stalled,
    }
}

/// How long until a requested push may go, when the last attempt was less than the minimum re-push interval ago.
fn too_soon(o: &Observed) -> Option<Duration> {
    let last = o.status.last_attempt_time.as_deref().and_then(status::parse_time)?;
    let allowed = last.checked_add(o.min_repush_interval).ok()?;
    (allowed > o.now).then(|| until(o.now, allowed))
}

/// Whether what this generation asks for was pushed: at this generation, or to the same destination by an earlier
/// one (an edit of credentialsRef, deletionPolicy or importPolicy is no reason to push).
fn pushed_here(o: &Observed) -> bool {
    o.status.pushed_generation == Some(o.generation) || pushed_to_destination(o)
}

/// Whether the last successful push sent the spec's certificate to the spec's service and project.
fn pushed_to_destination(o: &Observed) -> bool {
    let (Some(d), Some(p)) = (o.destination, o.status.pushed.as_ref()) else {
        return false;
    };
    // Every region asked for holds it: a region dropped from targetProjects is no reason to push.
    let pushed_projects: Vec<&str> = p.target_project.split(',').collect();
    p.target_service == d.target_service
        && d.target_project.split(',').all(|r| pushed_projects.contains(&r))
        && p.deploy_only != d.pushes
        && d.certificate_id.is_none_or(|id| p.certificate_id == id)
}

/// Whether the certificate now in the source Secret is the one pushed for what this generation asks.
fn pushed_this_certificate(o: &Observed) -> bool {
    let s = o.status;
    o.source_fingerprint.is_some()
        && s.source_fingerprint.as_deref() == o.source_fingerprint
        && import_pushed(s)
        && pushed_here(o)
}

/// Whether the certificate the status records as imported is the one whose push succeeded.
fn import_pushed(s: &CertificatePushStatus) -> bool {
    s.certificate_id.is_some() && s.pushed_certificate_id == s.certificate_id
}

/// Whether the recorded failure says the endpoint, not the push, was wrong.
fn blames_endpoint(s: &CertificatePushStatus) -> bool {
    let http_status = s.http_status.and_then(|c| u16::try_from(c).ok());
    scm::blames_endpoint(http_status, s.error_code.as_deref())
}

#[cfg(test)]
mod tests;
