//! One attempt: import the source certificate if SCM does not hold it yet, push, and record what happened; or, when
//! nothing can be sent (spec, source Secret, access), record why.

use std::time::Duration;

use jiff::Timestamp;
use kube::Api;
use kube::runtime::controller::Action;
use tracing::{info, warn};

use super::deploy;
use super::fence::{Settled, fenced};
use super::import::{BeforeImport, before_import, imported, importing};
use super::persist::{Progress, record, record_not_sent, save};
use super::{Context, ReadCredentials, standby};
use crate::Error;
use crate::account::{Access, Problem};
use crate::crd::{CertificatePush, CertificatePushSpec, CertificatePushStatus, PushedTarget, RegionTarget};
use crate::policy::{self, Cause, deletions, in_use, targets};
use crate::scm::verdicts;
use crate::scm::{FailureKind, PushFailure, PushOutcome, PushRequest, rejected};
use crate::source::Source;
use crate::status::{self, Attempt, Reason};

/// The object an attempt is about: as read fresh, its API, and the status it starts from.
#[derive(Clone, Copy)]
pub(super) struct Reconciling<'a> {
    /// The object.
    pub cp: &'a CertificatePush,
    /// Its namespace's API, for status writes.
    pub api: &'a Api<CertificatePush>,
    /// The status the attempt starts from (saved, or Pending not written yet).
    pub current: &'a CertificatePushStatus,
    /// When the reconcile started.
    pub now: jiff::Timestamp,
}

impl<'a> Reconciling<'a> {
    /// `cp`, in `api`, starting from `current` at `now`.
    pub fn new(
        cp: &'a CertificatePush,
        api: &'a Api<CertificatePush>,
        current: &'a CertificatePushStatus,
        now: Timestamp,
    ) -> Self {
        Self { cp, api, current, now }
    }

    /// The facts every status transition of this attempt records.
    /// `endpoint` is where this object's requests go (its account's, or the operator's).
    fn attempt(&self, endpoint: &'a str, credentials_digest: Option<&'a str>, target: &'a str) -> Attempt<'a> {
        Attempt {
            generation: self.cp.metadata.generation.unwrap_or(0),
            push_request: self.cp.push_request(),
            credentials_digest,
            endpoint,
            target,
            now: self.now,
        }
    }
}

/// What is pushed where, for status messages and logs.
fn target(spec: &CertificatePushSpec, certificate: &str) -> String {
    format!(
        "certificate {certificate} to {} in {}",
        spec.target_service,
        spec.projects().join(", ")
    )
}

/// Imports the source certificate if SCM does not hold it yet, pushes, and records what happened.
pub(super) async fn push(
    ctx: &Context,
    obj: Reconciling<'_>,
    read: ReadCredentials,
    source: Option<Source>,
    cause: Cause,
    mut progress: Progress,
) -> Result<Action, Error> {
    let Reconciling { cp, current, .. } = obj;
    let spec = &cp.spec;
    let planned = match (&source, &spec.certificate_id) {
        (Some(source), _) => target(spec, &format!("from Secret {:?}", source.secret.name)),
        (None, id) => target(spec, id.as_deref().unwrap_or_default()),
    };
    let endpoint = ctx.accounts.endpoint(cp);
    let attempt = obj.attempt(&endpoint, read.digest.as_deref(), &planned);
    // A human asked for this push: a credential SCM refused earlier is tried once more.
    if let (Cause::Requested, Some(digest)) = (cause, &read.digest) {
        ctx.scm.retry_refused(digest);
    }
    let access = match read.credentials {
        Ok(access) => access,
        Err(e) => return credentials_problem(ctx, obj, &attempt, &e).await,
    };
    // Checked again before SCM is called (and by the SCM client before each request leaves): leadership may have
    // ended during the reads above.
    if !ctx.leadership.leads() {
        return Ok(standby(ctx));
    }
    // An import is recorded in status before it is sent, so a crash or a lost answer is searched for, and only then.
    let before = source
        .as_ref()
        .map(|s| before_import(cp, &ctx.cluster_name, current, s));
    let search = before == Some(BeforeImport::Search);
    let intended;
    let obj = match before {
        Some(BeforeImport::Record(with_intent)) => {
            intended = save(ctx, obj.api, cp, current, &with_intent).await?;
            // The status written is as good as Pending.
            progress = Progress::default();
            Reconciling::new(cp, obj.api, &intended, obj.now)
        }
        _ => obj,
    };
    let current = obj.current;
    let (working, certificate_id) = match &source {
        None => (current.clone(), spec.certificate_id.clone().unwrap_or_default()),
        Some(source) => match progress
            .around(ctx, imported(cp, &ctx.cluster_name, &access, current, source, search))
            .await
        {
            Ok(imported) => imported,
            Err(failure) => {
                let import = FailedImport {
                    source,
                    search,
                    attempt: &attempt,
                };
                return import_failed(ctx, obj, &access, read.digest.as_deref(), import, failure).await;
            }
        },
    };
    let pushed_target = target(spec, &certificate_id);
    let attempt = Attempt {
        target: &pushed_target,
        ..attempt
    };
    let sending = Sending {
        certificate_id: &certificate_id,
        cause,
        working: &working,
        imported: source.is_some(),
    };
    let (not_after, outcome, targets) = expiry_and_send(ctx, cp, current, &access, sending, &mut progress).await;
    if deposed(ctx, &outcome) {
        return Ok(standby(ctx));
    }
    if let Some(wait) = deferred(&outcome) {
        // Nothing was pushed; only an import made on the way is worth a write.
        if working != *current {
            record(ctx, cp, obj.api, current, working).await?;
        }
        ctx.metrics.reconciled("deferred");
        return Ok(Action::requeue(wait));
    }
    let answered = Answered {
        working: &working,
        certificate_id: &certificate_id,
        not_after,
        targets,
        imported: source.is_some(),
    };
    let (new, action) = recorded(cp, current, answered, &answered_at(&attempt), &outcome);
    log_outcome("push", &outcome, &new);
    ctx.metrics.reconciled(result(spec, &outcome));
    finish(ctx, obj, &access, read.digest.as_deref(), new, action).await
}

/// The reconcile result a push attempt counts as.
fn result(spec: &CertificatePushSpec, outcome: &PushOutcome) -> &'static str {
    match outcome {
        _ if !spec.pushes() => "unchanged",
        PushOutcome::Pushed { .. } => "pushed",
        PushOutcome::Failed(_) => "push_failed",
    }
}

/// What a push attempt sends.
struct Sending<'a> {
    certificate_id: &'a str,
    cause: Cause,
    /// The status it pushes from (an import made on the way included).
    working: &'a CertificatePushStatus,
    /// Whether the certificate came from the source Secret (its expiry is known from it).
    imported: bool,
}

/// Reads the expiry of a certificate in SCM if it is not known, then pushes (unless pushPolicy Never): the expiry,
/// the outcome and, with targetProjects, what the batch push did in each region (recorded whatever the outcome).
async fn expiry_and_send(
    ctx: &Context,
    cp: &CertificatePush,
    current: &CertificatePushStatus,
    access: &Access,
    sending: Sending<'_>,
    progress: &mut Progress,
) -> (Option<String>, PushOutcome, Option<Vec<RegionTarget>>) {
    let Sending {
        certificate_id,
        cause,
        working,
        imported,
    } = sending;
    // The expiry of a certificate in SCM is read before the push, never between the push and its status write:
    // that write must follow the push as closely as possible (a takeover in between would push again).
    let expiry_read = match imported {
        true => Ok(working.not_after.clone()),
        false => match known_expiry(current, certificate_id) {
            Some(known) => Ok(Some(known)),
            None => progress.around(ctx, expiry(ctx, access, certificate_id)).await,
        },
    };
    match expiry_read {
        // SCM refused the credential itself: that answer is the push's (it would be refused the same way).
        Err(refusal) => (None, PushOutcome::Failed(refusal), None),
        // pushPolicy Never: nothing is pushed; the certificate becomes the one to deploy, as after a push.
        Ok(not_after) if !cp.spec.pushes() => {
            let deploy_only = PushOutcome::Pushed {
                http_status: 0,
                request_id: None,
            };
            (not_after, deploy_only, None)
        }
        Ok(not_after) => {
            let (outcome, regions) = progress
                .around(ctx, send(cp, access, certificate_id, cause, working))
                .await;
            if let PushOutcome::Failed(f) = &outcome
                && matches!(f.kind, FailureKind::CertificateNotFound | FailureKind::Rejected)
            {
                // What SCM holds under this ID may have changed: its expiry is read again.
                ctx.expiries.forget(certificate_id);
            }
            (not_after, outcome, regions)
        }
    }
}

/// An import that failed: what it was about.
struct FailedImport<'a> {
    source: &'a Source,
    /// Whether it searched SCM for an earlier import (an intent recorded by an earlier attempt).
    search: bool,
    attempt: &'a Attempt<'a>,
}

/// Records an import that failed, unless the fence or the rate limit stopped it (nothing to record then).
async fn import_failed(
    ctx: &Context,
    obj: Reconciling<'_>,
    access: &Access,
    digest: Option<&str>,
    import: FailedImport<'_>,
    failure: PushFailure,
) -> Result<Action, Error> {
    let (cp, current) = (obj.cp, obj.current);
    let outcome = PushOutcome::Failed(failure);
    if deposed(ctx, &outcome) {
        return Ok(standby(ctx));
    }
    if let Some(wait) = deferred(&outcome) {
        // The import recorded by this attempt never left: without its intent, the next attempt imports instead of
        // listing SCM for it first.
        if !import.search && current.import_intent.is_some() {
            let unsent = CertificatePushStatus {
                import_intent: None,
                ..current.clone()
            };
            save(ctx, obj.api, cp, current, &unsent).await?;
        }
        ctx.metrics.reconciled("deferred");
        return Ok(Action::requeue(wait));
    }
    let started = importing(current, import.source, cp.spec.retain_superseded());
    let answered = answered_at(import.attempt);
    let (new, action) = policy::after_attempt(&started, &answered, &outcome, rand::random());
    log_outcome("import", &outcome, &new);
    ctx.metrics.reconciled("import_failed");
    finish(ctx, obj, access, digest, new, action).await
}

/// What a push attempt has to record besides its outcome.
struct Answered<'a> {
    /// The status it pushed from (an import made on the way included).
    working: &'a CertificatePushStatus,
    certificate_id: &'a str,
    /// The expiry of the certificate pushed, when known.
    not_after: Option<String>,
    /// With targetProjects, what the batch push did in each region.
    targets: Option<Vec<RegionTarget>>,
    /// Whether the certificate came from the source Secret.
    imported: bool,
}

/// The status a push attempt leaves, and when to look again. Pure.
fn recorded(
    cp: &CertificatePush,
    current: &CertificatePushStatus,
    answered: Answered<'_>,
    attempt: &Attempt<'_>,
    outcome: &PushOutcome,
) -> (CertificatePushStatus, Action) {
    let spec = &cp.spec;
    let certificate_id = answered.certificate_id;
    let (mut new, action) = policy::after_attempt(answered.working, attempt, outcome, rand::random::<f64>());
    match answered.targets {
        Some(targets) => new.targets = targets,
        None if spec.pushes() && matches!(outcome, PushOutcome::Pushed { .. }) => {
            new.targets = targets::pushed(spec, answered.working, certificate_id, attempt.now);
        }
        None => {}
    }
    if !spec.pushes() {
        // No request was sent: no push time, HTTP status or request id to record.
        new.last_push_time = current.last_push_time.clone();
        new.http_status = None;
        new.request_id = None;
    }
    if let PushOutcome::Pushed { .. } = outcome {
        new.pushed = Some(pushed_to(cp, certificate_id, answered.not_after));
        in_use::after_push(&mut new);
        // The certificate this one replaces serves nobody once the renewal is in the target service.
        let superseded = current
            .pushed_certificate_id
            .as_deref()
            .filter(|_| answered.imported && !spec.retain_superseded());
        if let Some(old) = superseded {
            deletions::owe(&mut new, old);
        }
        if !answered.imported {
            deletions::source_dropped(&mut new, certificate_id, spec.deletes());
        }
    }
    (new, action)
}

/// Saves the status an attempt left, then sends the deletes it owes (recorded first, so a crash or a failed write
/// in between loses none), unless SCM refused this credential. Ends with when to look again.
async fn finish(
    ctx: &Context,
    obj: Reconciling<'_>,
    access: &Access,
    digest: Option<&str>,
    new: CertificatePushStatus,
    action: Action,
) -> Result<Action, Error> {
    let Reconciling { cp, api, current, now } = obj;
    let mut saved = record(ctx, cp, api, current, new).await?;
    let retry = saved
        .next_retry_time
        .as_deref()
        .and_then(status::parse_time)
        .map(|at| policy::until(now, at));
    if deploy::owed_now(ctx, cp, &saved, now) && deletions::may_send(&saved, digest) {
        match deploy::settle_owed(ctx, cp, api, &saved, access, now).await? {
            Settled::Done(settled) => saved = *settled,
            // The push is recorded; the deletes come back when the rate limit lets them leave.
            Settled::Deferred(wait) => return Ok(Action::requeue(wait)),
            Settled::Fenced => return Ok(standby(ctx)),
        }
    }
    Ok(policy::look_again(&cp.spec, action, retry, &saved, now))
}

/// Why nothing can be sent for the spec or its source Secret.
pub(super) enum Refusal {
    /// The spec or the source is wrong: a change of the object or the Secret brings it back.
    Invalid(Reason, String),
    /// The source certificate is right but not valid before the given time; looked at again then.
    NotYetValid(String, Timestamp),
}

/// Added to a certificate's `notBefore` before it is imported: SCM (and the target service) may check it with a
/// clock a little behind this one.
pub const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(10);

/// Whether `outcome` is a request the leadership fence kept from leaving, on a replica that no longer leads: it is
/// not recorded, so a deposed leader never writes its status over the new leader's.
fn deposed(ctx: &Context, outcome: &PushOutcome) -> bool {
    matches!(outcome, PushOutcome::Failed(f) if fenced(ctx, f))
}

/// `attempt` as of now, when its answer came: a request may have waited for a rate-limit token after the reconcile
/// started, and its retry backoff counts from when it was sent and answered, not from before.
fn answered_at<'a>(attempt: &Attempt<'a>) -> Attempt<'a> {
    Attempt {
        now: Timestamp::now().max(attempt.now),
        ..*attempt
    }
}

/// How long until the account's rate limit lets the request of `outcome` leave, when that is why it was not sent:
/// the object comes back then, with no status written (a deferral is not a failure).
fn deferred(outcome: &PushOutcome) -> Option<Duration> {
    match outcome {
        PushOutcome::Failed(f) => f.deferred_for(),
        PushOutcome::Pushed { .. } => None,
    }
}

/// Nothing can be sent (spec or source Secret): the status says why, and a change brings the object back, or, for a
/// certificate not valid yet, the time it becomes valid.
pub(super) async fn refuse(ctx: &Context, obj: Reconciling<'_>, refusal: Refusal) -> Result<Action, Error> {
    // The credential was not involved; what is recorded about it stays.
    let endpoint = ctx.accounts.endpoint(obj.cp);
    let attempt = obj.attempt(&endpoint, obj.current.credentials_digest.as_deref(), "");
    let (new, action, result) = match refusal {
        Refusal::Invalid(reason, message) => (
            status::not_sent(obj.current, &attempt, reason, &message),
            Action::await_change(),
            "invalid",
        ),
        Refusal::NotYetValid(message, valid_from) => {
            // Whole seconds in status, rounded up like every due time: never looked at before it is valid.
            let due = policy::ceil_to_second(valid_from + CLOCK_SKEW_MARGIN);
            let message = format!("{message}; it is imported and pushed at {due}");
            let new = status::not_yet_valid(obj.current, &attempt, &message, due);
            (new, Action::requeue(policy::until(obj.now, due)), "waiting")
        }
    };
    record_not_sent(ctx, obj.api, obj.cp, obj.current, new).await?;
    ctx.metrics.reconciled(result);
    Ok(action)
}

/// The expiry status already records for `certificate_id` (pushed before, to any destination), so it is not asked
/// again.
fn known_expiry(current: &CertificatePushStatus, certificate_id: &str) -> Option<String> {
    let pushed = current.pushed.as_ref().filter(|p| p.certificate_id == certificate_id)?;
    pushed.not_after.clone()
}

/// When the certificate `certificate_id` expires, as SCM tells it: known for objects that pushed it before, else
/// read once for every object naming it ([`super::expiry::Expiries`]), so the expiry gauge covers certificateId
/// pushes too. Best effort: the push goes ahead either way. A refusal of the credential (or a locked key, a
/// certificate SCM does not hold, the fence) is the attempt's outcome, so the push is not sent after it.
async fn expiry(ctx: &Context, access: &Access, certificate_id: &str) -> Result<Option<String>, PushFailure> {
    let read = ctx.expiries.get(&access.scm, &access.credentials, certificate_id, |f| {
        ends_the_attempt(ctx, f)
    });
    Ok(read.await?.map(status::format_time))
}

/// Whether a failed read before the push ends the attempt, its failure being the push's answer too: the credential
/// was refused, the key is locked, SCM holds no such certificate, the fence closed, or the account's rate limit
/// deferred it.
fn ends_the_attempt(ctx: &Context, failure: &PushFailure) -> bool {
    let refused = !matches!(verdicts::finding(Some(failure), true), verdicts::Finding::Accepted);
    let answers_the_push = matches!(failure.kind, FailureKind::Deferred | FailureKind::CertificateNotFound);
    refused || answers_the_push || fenced(ctx, failure)
}

/// What a push of `certificate_id` (valid until `not_after`) for `cp` sends where, as status records it.
fn pushed_to(cp: &CertificatePush, certificate_id: &str, not_after: Option<String>) -> PushedTarget {
    PushedTarget {
        deploy_only: !cp.spec.pushes(),
        certificate_id: certificate_id.to_owned(),
        target_service: cp.spec.target_service,
        target_project: cp.spec.destination_projects(),
        generation: cp.metadata.generation.unwrap_or(0),
        not_after,
    }
}

/// A spec edit that keeps what was pushed where: the status describes the new generation (and records `pushed`
/// when a status from before it existed is seen), with nothing sent and no Event.
pub(super) async fn observe(ctx: &Context, obj: Reconciling<'_>) -> Result<Action, Error> {
    let current = obj.current;
    let certificate = current
        .pushed_certificate_id
        .clone()
        .or_else(|| obj.cp.spec.certificate_id.clone())
        .unwrap_or_default();
    let generation = obj.cp.metadata.generation.unwrap_or(0);
    // A status from before `pushed` existed: its notAfter is that of the certificate pushed (imported ones only).
    let not_after = current
        .not_after
        .clone()
        .filter(|_| current.pushed_certificate_id.is_some());
    let mut new = status::observed(current, generation, pushed_to(obj.cp, &certificate, not_after));
    // A region dropped from the spec leaves the list (SCM has no un-push; its copy stays).
    new.targets = targets::aligned(&obj.cp.spec, &new);
    record_not_sent(ctx, obj.api, obj.cp, current, new).await?;
    ctx.metrics.reconciled("unchanged");
    Ok(policy::look_again(
        &obj.cp.spec,
        Action::await_change(),
        None,
        current,
        obj.now,
    ))
}

/// The source Secret holds again the certificate already pushed (it was deleted or broken, and is back): the status
/// returns to Ready, recording the Secret as it is now, and nothing is sent.
pub(super) async fn already_pushed(
    ctx: &Context,
    obj: Reconciling<'_>,
    source: Option<&Source>,
) -> Result<Action, Error> {
    let certificate = obj.current.pushed_certificate_id.clone().unwrap_or_default();
    let pushed = target(&obj.cp.spec, &certificate);
    let endpoint = ctx.accounts.endpoint(obj.cp);
    let attempt = obj.attempt(&endpoint, obj.current.credentials_digest.as_deref(), &pushed);
    let retain = obj.cp.spec.retain_superseded();
    let now = match source {
        Some(source) => importing(obj.current, source, retain),
        None => obj.current.clone(),
    };
    let new = status::already_pushed(&now, &attempt);
    record_not_sent(ctx, obj.api, obj.cp, obj.current, new).await?;
    ctx.metrics.reconciled("unchanged");
    Ok(policy::look_again(
        &obj.cp.spec,
        Action::await_change(),
        None,
        obj.current,
        obj.now,
    ))
}

/// No usable account or credentials: nothing is sent; the status says why, and the Secret and account watches
/// bring the object back.
async fn credentials_problem(
    ctx: &Context,
    obj: Reconciling<'_>,
    attempt: &Attempt<'_>,
    problem: &Problem,
) -> Result<Action, Error> {
    let reason = problem.reason();
    let new = status::not_sent(obj.current, attempt, reason, &problem.to_string());
    record_not_sent(ctx, obj.api, obj.cp, obj.current, new).await?;
    ctx.metrics.reconciled("credentials_error");
    Ok(Action::await_change())
}

/// Sends one push (unless the ID cannot make a valid request) and says what came of it.
async fn send(
    cp: &CertificatePush,
    access: &Access,
    certificate_id: &str,
    cause: Cause,
    working: &CertificatePushStatus,
) -> (PushOutcome, Option<Vec<RegionTarget>>) {
    let spec = &cp.spec;
    if spec.batch() {
        return send_batch(cp, access, certificate_id, cause, working).await;
    }
    let request = match PushRequest::new(certificate_id, spec.target_service, &spec.target_project) {
        Ok(request) => request,
        Err(message) => return (PushOutcome::Failed(rejected(message)), None),
    };
    info!(
        ?cause,
        generation = cp.metadata.generation,
        certificate_id,
        "pushing certificate"
    );
    (access.scm.push(&access.credentials, &request).await.into(), None)
}

/// Pushes to the regions of spec.targetProjects that do not hold the certificate yet, in one batch push. It counts
/// as pushed when every region holds it; otherwise as a transient failure naming the regions, whose retry sends
/// only those.
async fn send_batch(
    cp: &CertificatePush,
    access: &Access,
    certificate_id: &str,
    cause: Cause,
    working: &CertificatePushStatus,
) -> (PushOutcome, Option<Vec<RegionTarget>>) {
    let spec = &cp.spec;
    let due = match cause {
        // Someone asked for a push: every region is sent it again, as a single-region re-push sends it again.
        Cause::Requested => spec.projects(),
        _ => targets::due(spec, working, certificate_id),
    };
    if due.is_empty() {
        // Every region holds it (a region was removed from the spec): nothing to send.
        let pushed = PushOutcome::Pushed {
            http_status: 200,
            request_id: None,
        };
        return (pushed, Some(targets::aligned(spec, working)));
    }
    info!(?cause, generation = cp.metadata.generation, certificate_id, regions = ?due, "batch-pushing certificate");
    let (results, request_id) = match access
        .scm
        .batch_push(&access.credentials, certificate_id, spec.target_service, &due)
        .await
    {
        Ok(answered) => answered,
        Err(failure) => return (PushOutcome::Failed(failure), None),
    };
    let (regions, failed) = targets::answered(spec, working, certificate_id, &due, &results, Timestamp::now());
    if failed.is_empty() {
        let pushed = PushOutcome::Pushed {
            http_status: 200,
            request_id,
        };
        return (pushed, Some(regions));
    }
    let list: Vec<String> = failed.iter().map(|(p, why)| format!("{p} ({why})")).collect();
    // A region SCM refused for good is not sent again every backoff: the spec must change.
    let (kind, message) = if failed.iter().any(|(_, why)| targets::refused_for_good(why)) {
        let message = format!("SCM refused {}; fix targetProjects", list.join(", "));
        (FailureKind::RegionRejected, message)
    } else {
        let message = format!("the batch push failed in {}; each is retried alone", list.join(", "));
        (FailureKind::Transient, message)
    };
    let failure = PushFailure {
        kind,
        http_status: Some(200),
        error_code: None,
        error_message: message,
        request_id,
        retry_after: None,
        outcome_unknown: false,
    };
    (PushOutcome::Failed(failure), Some(regions))
}

fn log_outcome(operation: &str, outcome: &PushOutcome, new: &CertificatePushStatus) {
    match outcome {
        PushOutcome::Pushed { http_status, .. } => info!(http_status, "pushed certificate"),
        PushOutcome::Failed(failure) => warn!(
            operation,
            http_status = failure.http_status,
            error_code = failure.error_code.as_deref(),
            error_message = failure.error_message,
            outcome_unknown = failure.outcome_unknown,
            attempts = new.failed_attempts,
            next_retry = new.next_retry_time.as_deref(),
            "{operation} failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_certificate_service_and_region() {
        let spec = crate::controller::tests::cp("ns", "one", "scm").spec;
        assert_eq!(
            target(&spec, "scs1554192131150"),
            "certificate scs1554192131150 to WAF in cn-north-4"
        );
    }
}
