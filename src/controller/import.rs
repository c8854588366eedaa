//! The certificate of a source TLS Secret in SCM: found (recorded, or an earlier import found by its deterministic
//! name), else imported; and the imports a renewal supersedes, deleted.

use kube::ResourceExt;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::Context;
use super::persist::publish;
use crate::crd::{CertificatePush, CertificatePushStatus};
use crate::scm::wire::ImportRequest;
use crate::scm::{Credentials, FoundImport, PushFailure};
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
    // A name is only a name: what SCM holds under it is reused only if its list entry agrees with the source.
    let reusable = match ctx.scm.find_import(credentials, &name).await? {
        Some(found) if !same_certificate(&found, source.tls.not_after, &source.tls.domains) => {
            warn!(
                certificate_id = %found.id,
                expire_time = ?found.expire_time,
                domain = ?found.domain,
                "the certificate SCM holds under this import's name is not this one; importing anew"
            );
            None
        }
        found => found,
    };
    let id = match reusable {
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

/// How far SCM's expiry of an earlier import may be from the source's `notAfter` and still be the same: SCM writes
/// times without a zone, so the one it means (UTC or the site's local time) shifts them by up to 14 hours.
const EXPIRY_SLACK: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// Whether an earlier import found by name holds the source certificate (`not_after`, `domains`: its common name
/// and DNS names), as far as the list entry tells: a fact SCM did not give cannot tell them apart, so it agrees.
pub(super) fn same_certificate(found: &FoundImport, not_after: jiff::Timestamp, domains: &[String]) -> bool {
    let expiry_agrees = found
        .expire_time
        .is_none_or(|expires| expires.duration_since(not_after).abs() <= EXPIRY_SLACK);
    let domain_agrees = found
        .domain
        .as_deref()
        .is_none_or(|domain| domains.is_empty() || domains.iter().any(|d| d.eq_ignore_ascii_case(domain)));
    expiry_agrees && domain_agrees
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

#[cfg(test)]
mod tests {
    use super::*;

    fn found(expire_time: Option<&str>, domain: Option<&str>) -> FoundImport {
        FoundImport {
            id: "scs1700000000001".into(),
            expire_time: expire_time.map(|t| t.parse().unwrap()),
            domain: domain.map(str::to_owned),
        }
    }

    #[test]
    fn an_import_is_the_same_certificate_unless_its_expiry_or_domain_says_otherwise() {
        let not_after: jiff::Timestamp = "2026-04-01T00:00:00Z".parse().unwrap();
        let domains = ["web".to_owned(), "www.example.com".to_owned()];
        let same = |f: &FoundImport| same_certificate(f, not_after, &domains);
        assert!(same(&found(Some("2026-04-01T00:00:00Z"), Some("www.example.com"))));
        // SCM's zoneless time read as UTC while it meant Beijing time, and a domain in other case.
        assert!(same(&found(Some("2026-03-31T16:00:00Z"), Some("WWW.example.com"))));
        assert!(same(&found(None, None)), "nothing to tell them apart");
        assert!(same(&found(None, Some("web"))));
        assert!(
            !same(&found(Some("2027-04-01T00:00:00Z"), Some("www.example.com"))),
            "a renewal"
        );
        assert!(!same(&found(Some("2026-04-03T00:00:00Z"), None)));
        assert!(!same(&found(None, Some("api.example.com"))));
        assert!(same_certificate(&found(None, Some("api.example.com")), not_after, &[]));
    }
}
