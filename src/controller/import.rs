//! The certificate of a source TLS Secret in SCM: found (recorded, or an earlier import found by its deterministic
//! name), else imported; and the imports a renewal supersedes, owed a delete in status and deleted.

use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use super::Context;
use super::persist::{publish, record};
use super::push::fenced;
use crate::Error;
use crate::crd::{CertificatePush, CertificatePushStatus};
use crate::policy::deletions;
use crate::scm::wire::ImportRequest;
use crate::scm::{Credentials, PushFailure};
use crate::source::{self, Source};
use crate::status;

/// The status as it is about the certificate in `source`: a different certificate (a renewal) starts afresh, with
/// no SCM ID and no failures counted yet, and an import of the one before that was never pushed is owed a delete
/// (it serves nobody), unless `retain` (importPolicy.retainSuperseded) keeps it.
pub(super) fn importing(current: &CertificatePushStatus, source: &Source, retain: bool) -> CertificatePushStatus {
    let mut status = current.clone();
    if current.source_fingerprint.as_deref() != Some(source.tls.fingerprint.as_str()) {
        status.certificate_id = None;
        status.failed_attempts = None;
        status.next_retry_time = None;
        status.outcome_unknown_time = None;
        if let Some(unpushed) = current.certificate_id.as_deref().filter(|_| !retain) {
            deletions::owe(&mut status, unpushed);
        }
    }
    status.source_fingerprint = Some(source.tls.fingerprint.clone());
    status.not_after = Some(status::format_time(source.tls.not_after));
    status.source_secret = Some(source.secret.clone());
    status
}

/// The SCM ID of the certificate in `source`, with the status that records it: the ID already recorded, or that
/// of an earlier import found by its deterministic name (a crash between import and status write), or a new
/// import. The private key travels only in the import request.
pub(super) async fn imported(
    cp: &CertificatePush,
    ctx: &Context,
    credentials: &Credentials,
    current: &CertificatePushStatus,
    source: &Source,
) -> Result<(CertificatePushStatus, String), PushFailure> {
    let mut working = importing(current, source, cp.spec.retain_superseded());
    if let Some(id) = &working.certificate_id {
        return Ok((working.clone(), id.clone()));
    }
    let name = source::import_name(
        &cp.namespace().unwrap_or_default(),
        &cp.name_any(),
        &source.tls.fingerprint,
    );
    let id = match ctx.scm.find_import(credentials, &name).await? {
        Some(id) => {
            info!(certificate_id = %id, "reusing the earlier import of this certificate");
            id
        }
        None => {
            let tls = &source.tls;
            let request = ImportRequest {
                name,
                certificate: tls.certificate.clone(),
                certificate_chain: (!tls.chain.is_empty()).then(|| tls.chain.clone()),
                private_key: tls.private_key_pem(),
            };
            let id = ctx.scm.import(credentials, &request).await?;
            info!(certificate_id = %id, fingerprint = %tls.fingerprint, "imported the certificate into SCM");
            id
        }
    };
    // An import owed a delete that is the certificate again (the Secret went back to it) is in use once more.
    working.pending_deletions.retain(|d| d.certificate_id != id);
    working.certificate_id = Some(id.clone());
    Ok((working, id))
}

/// Sends the deletes owed in `current` that are due, and saves what came of them (importPolicy.retainSuperseded
/// drops them unsent). A delete that fails is announced (Warning Event `SupersededNotDeleted`) and retried with
/// backoff; it never blocks a push. None when this replica stopped leading meanwhile: nothing is recorded then.
pub(super) async fn settle_deletions(
    ctx: &Context,
    cp: &CertificatePush,
    api: &Api<CertificatePush>,
    current: &CertificatePushStatus,
    credentials: &Credentials,
    now: jiff::Timestamp,
) -> Result<Option<CertificatePushStatus>, Error> {
    let mut new = current.clone();
    if cp.spec.retain_superseded() {
        new = deletions::retained(current);
    }
    for id in deletions::due(&new, now) {
        match ctx.scm.delete(credentials, &id).await {
            Ok(()) => {
                info!(certificate_id = %id, "deleted the superseded certificate from SCM");
                new = deletions::deleted(&new, &id);
            }
            Err(failure) if fenced(ctx, &failure) => return Ok(None),
            Err(failure) => {
                new = deletions::failed(&new, &id, &failure.error_message, now, rand::random());
                superseded_not_deleted(ctx, cp, &id, &failure, &new);
            }
        }
    }
    record(ctx, cp, api, current, new.clone()).await?;
    Ok(Some(new))
}

/// Announces a failed delete of a superseded import and when it is tried again.
fn superseded_not_deleted(
    ctx: &Context,
    cp: &CertificatePush,
    certificate_id: &str,
    failure: &PushFailure,
    new: &CertificatePushStatus,
) {
    let next = new
        .pending_deletions
        .iter()
        .find(|d| d.certificate_id == certificate_id)
        .and_then(|d| d.next_attempt_time.as_deref())
        .unwrap_or("later");
    warn!(certificate_id, error = %failure.error_message, next_attempt = next, "could not delete the superseded certificate from SCM");
    let note = format!(
        "Could not delete superseded certificate {certificate_id} from SCM ({}); retrying at {next}. Set \
         spec.importPolicy.retainSuperseded to keep such certificates",
        failure.error_message
    );
    publish(ctx, cp, EventType::Warning, "SupersededNotDeleted", note, "Delete");
}
