//! Saving status and announcing it: the server-side apply of the status subresource, the retry of a write that
//! follows an SCM request, the memory of statuses that could not be saved, and the Events that follow a saved one.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use super::{Context, FIELD_MANAGER};
use crate::Error;
use crate::crd::{CertificatePush, CertificatePushStatus};
use crate::status::{self, Notice};

/// How long an SCM request may run before the Pending status is written.
const PENDING_AFTER: Duration = Duration::from_secs(1);

/// A Pending status not written yet: it is written only when an SCM request is still running after
/// [`PENDING_AFTER`], so clients (kstatus, `kubectl wait`) see the object is being worked on during a slow push,
/// while a quick one costs no extra write. It always lands before the outcome: both are written by this reconcile,
/// in order.
#[derive(Default)]
pub(super) struct Progress {
    write: Option<(
        Api<CertificatePush>,
        CertificatePush,
        CertificatePushStatus,
        CertificatePushStatus,
    )>,
}

impl Progress {
    /// Writes `pending` over `saved` if a request run through [`Progress::around`] turns out slow.
    pub(super) fn new(
        api: &Api<CertificatePush>,
        cp: &CertificatePush,
        saved: &CertificatePushStatus,
        pending: &CertificatePushStatus,
    ) -> Self {
        Self {
            write: Some((api.clone(), cp.clone(), saved.clone(), pending.clone())),
        }
    }

    /// Runs `request`, writing the Pending status once if it takes longer than [`PENDING_AFTER`].
    pub(super) async fn around<T>(&mut self, ctx: &Context, request: impl std::future::Future<Output = T>) -> T {
        let Some((api, cp, saved, pending)) = &self.write else {
            return request.await;
        };
        futures::pin_mut!(request);
        tokio::select! {
            done = &mut request => return done,
            () = tokio::time::sleep(PENDING_AFTER) => {}
        }
        // Best effort: the outcome write that follows carries the whole status anyway.
        if let Err(e) = save(ctx, api, cp, saved, pending).await {
            warn!(error = %e, "writing the Pending status failed");
        }
        self.write = None;
        request.await
    }
}

/// Saves the status that follows an SCM request. Losing it could mean pushing twice or re-sending a refused
/// credential, so the write is retried here rather than the whole reconcile, and a status that still cannot be
/// saved is kept in memory and saved before anything else happens to the object. Returns the status as written
/// (its conditions settled by [`status::settled`]).
pub(super) async fn record(
    ctx: &Context,
    cp: &CertificatePush,
    api: &Api<CertificatePush>,
    old: &CertificatePushStatus,
    new: CertificatePushStatus,
) -> Result<CertificatePushStatus, Error> {
    let new = status::settled(&cp.spec, new, jiff::Timestamp::now());
    let written = save_after_request(ctx, api, cp, old, &new).await;
    if keep_unless_saved(ctx, cp, &new, written).await? == Written::Saved {
        notify(ctx, cp, old, &new);
    }
    Ok(new)
}

/// Saves `new`, the status of an attempt stopped before any request, with its Event. Not kept in memory when the
/// write fails: nothing was sent, so the next reconcile decides the same again.
pub(super) async fn record_not_sent(
    ctx: &Context,
    api: &Api<CertificatePush>,
    cp: &CertificatePush,
    current: &CertificatePushStatus,
    new: CertificatePushStatus,
) -> Result<(), Error> {
    let new = save(ctx, api, cp, current, &new).await?;
    notify(ctx, cp, current, &new);
    Ok(())
}

/// What became of a status write that follows an SCM request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Written {
    /// The API server has it.
    Saved,
    /// The object was deleted meanwhile: there is nothing left to record the outcome on.
    Gone,
    /// The API server refused it as invalid (422); it stays the truth in memory, so nothing is pushed twice.
    KeptInMemory,
}

/// Settles the result of writing `status`, the one place that decides what a failed write means: a 404 forgets
/// the object; a 422 is announced and `status` kept in memory; any other error keeps it in memory and fails the
/// reconcile, so it is saved before anything else happens to the object.
pub(super) async fn keep_unless_saved(
    ctx: &Context,
    cp: &CertificatePush,
    status: &CertificatePushStatus,
    written: Result<(), Error>,
) -> Result<Written, Error> {
    let uid = cp.uid().unwrap_or_default();
    match written {
        Ok(()) => Ok(Written::Saved),
        Err(e) if api_code(&e) == Some(404) => {
            ctx.memory.forget(&uid);
            Ok(Written::Gone)
        }
        Err(e) if api_code(&e) == Some(422) => {
            status_write_rejected(ctx, cp, &e);
            ctx.memory.keep_unsaved(&uid, status.clone());
            Ok(Written::KeptInMemory)
        }
        Err(e) => {
            ctx.memory.keep_unsaved(&uid, status.clone());
            Err(e)
        }
    }
}

/// The HTTP status of a Kubernetes API error, if the API server answered.
fn api_code(e: &Error) -> Option<u16> {
    match e {
        Error::Kube(kube::Error::Api(s)) => Some(s.code),
        _ => None,
    }
}

/// A status the API server refuses as invalid (422) cannot be fixed by retrying: say so in the log, the
/// metrics and an Event, since the status itself cannot carry it.
fn status_write_rejected(ctx: &Context, cp: &CertificatePush, e: &Error) {
    warn!(error = %e, "the API server refused the status as invalid; keeping it in memory");
    ctx.metrics.status_write_failed("invalid");
    let note = format!("The API server refused the status: {e}");
    publish(ctx, cp, EventType::Warning, "StatusWriteFailed", note, "UpdateStatus");
}

/// Writes `new` when it changed, its conditions settled from the whole status first ([`status::settled`]: no write
/// can say Ready while a deploy is owed); an unchanged status is not written, so steady state costs no writes.
/// Returns the status as written.
///
/// The write is conditional on the resourceVersion this reconcile last read or wrote ([`super::memory::Versions`]):
/// a write landing after someone else's (a deposed leader's late one after the new leader's) is refused with 409
/// rather than erasing what the other wrote; the caller keeps it in memory and the next reconcile decides from a
/// fresh read.
pub(super) async fn save(
    ctx: &Context,
    api: &Api<CertificatePush>,
    cp: &CertificatePush,
    old: &CertificatePushStatus,
    new: &CertificatePushStatus,
) -> Result<CertificatePushStatus, Error> {
    let new = status::settled(&cp.spec, new.clone(), jiff::Timestamp::now());
    if *old == new {
        return Ok(new);
    }
    let uid = cp.uid().unwrap_or_default();
    let expected = ctx.versions.get(&uid).or_else(|| cp.resource_version());
    let patch = json!({
        "apiVersion": CertificatePush::api_version(&()),
        "kind": CertificatePush::kind(&()),
        "metadata": {"resourceVersion": expected},
        "status": new,
    });
    let written = api
        .patch_status(
            &cp.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.versions.set(&uid, written.resource_version());
    Ok(new)
}

/// Retries a status write for about 6 s (200 ms doubling, five retries), unless the answer says a retry cannot
/// help (the object is gone, the status is invalid, another write came first, or the operator may not write it).
pub(super) async fn save_after_request(
    ctx: &Context,
    api: &Api<CertificatePush>,
    cp: &CertificatePush,
    old: &CertificatePushStatus,
    new: &CertificatePushStatus,
) -> Result<(), Error> {
    let retries = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(5);
    (|| async { save(ctx, api, cp, old, new).await.map(drop) })
        .retry(retries)
        .sleep(tokio::time::sleep)
        // 409: another write came first (see [`save`]); retrying the same precondition cannot help.
        .when(|e| !matches!(api_code(e), Some(400..=428)))
        .notify(|e, delay| {
            warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "saving status after an SCM request failed; retrying the write, not the request");
        })
        .await
}

/// Publishes the Event for a state change, if any.
fn notify(ctx: &Context, cp: &CertificatePush, old: &CertificatePushStatus, new: &CertificatePushStatus) {
    let Some(Notice { warning, reason, note }) = status::notice(old, new) else {
        return;
    };
    let type_ = if warning { EventType::Warning } else { EventType::Normal };
    let action = if reason.starts_with("Deploy") { "Deploy" } else { "Push" };
    publish(ctx, cp, type_, reason, note, action);
}

/// Announces a deployed-resources answer SCM could not complete (Warning `InUseUnknown`, naming the region): nothing
/// is deleted or deployed on it, and it is asked again with backoff.
pub(super) fn in_use_unknown(ctx: &Context, cp: &CertificatePush, failure: &crate::scm::PushFailure) {
    warn!(error = %failure.error_message, "SCM could not say where the certificate is deployed");
    publish(
        ctx,
        cp,
        EventType::Warning,
        "InUseUnknown",
        failure.error_message.clone(),
        "Deploy",
    );
}

/// Queues an Event about `cp`; a failed post is logged, not fatal: the status holds the truth.
pub(super) fn publish(ctx: &Context, cp: &CertificatePush, type_: EventType, reason: &str, note: String, action: &str) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    ctx.events.publish(event, cp.object_ref(&()));
}
