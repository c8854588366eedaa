//! The certificate of a source TLS Secret in SCM: found (recorded, or an earlier import found by its deterministic
//! name), else imported; and the imports a renewal supersedes, deleted.

use kube::ResourceExt;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::Context;
use super::persist::publish;
use crate::crd::{CertificatePush, CertificatePushStatus};
use crate::scm::wire::ImportRequest;
use crate::scm::{Credentials, PushFailure};
use crate::source::{self, Source};
use crate::status;

/// The status as it is about the certificate in `source`: a different certificate (a renewal) starts afresh, with
/// no SCM ID and no failures counted yet.
pub(super) fn importing(current: &CertificatePushStatus, source: &Source) -> CertificatePushStatus {
    let mut status = current.clone();
    if current.source_fingerprint.as_deref() != Some(source.tls.fingerprint.as_str()) {
        status.certificate_id = None;
        status.failed_attempts = None;
        status.next_retry_time = None;
        status.outcome_unknown_time = None;
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
    let mut working = importing(current, source);
    if let Some(id) = &working.certificate_id {
        return Ok((working.clone(), id.clone()));
    }
    let name = source::import_name(
        &cp.namespace().unwrap_or_default(),
        &cp.name_any(),
        &source.tls.fingerprint,
    );
    let id = match ctx.scm.find_import(credentials, &name).await? {
        Some(found) => {
            info!(certificate_id = %found.id, "reusing the earlier import of this certificate");
            found.id
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
    // An import that was never pushed (its push failed before this renewal) serves nobody.
    let unpushed = current
        .certificate_id
        .as_deref()
        .filter(|old| *old != id && current.pushed_certificate_id.as_deref() != Some(*old));
    if let Some(old) = unpushed.filter(|_| !cp.spec.retain_superseded()) {
        delete_superseded(ctx, cp, credentials, old).await;
    }
    working.certificate_id = Some(id.clone());
    Ok((working, id))
}

/// Deletes a certificate this operator imported and that a renewal replaced. One attempt: a failure is announced
/// (Warning Event `SupersededNotDeleted` naming the ID) and left to a human, so cleanup can never block a push.
pub(super) async fn delete_superseded(
    ctx: &Context,
    cp: &CertificatePush,
    credentials: &Credentials,
    certificate_id: &str,
) {
    let Err(failure) = ctx.scm.delete(credentials, certificate_id).await else {
        info!(certificate_id, "deleted the superseded certificate from SCM");
        return;
    };
    warn!(certificate_id, error = %failure.error_message, "could not delete the superseded certificate from SCM");
    let note = format!(
        "Could not delete superseded certificate {certificate_id} from SCM ({}); delete it in the SCM console or API, \
         or set spec.importPolicy.retainSuperseded to keep such certificates",
        failure.error_message
    );
    publish(ctx, cp, EventType::Warning, "SupersededNotDeleted", note, "Delete");
}
