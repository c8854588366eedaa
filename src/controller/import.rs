//! The certificate of a source TLS Secret in SCM: found (recorded, or an earlier import found by its deterministic
//! name), else imported; and the imports a renewal supersedes, owed a delete in status and deleted.

use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use super::Context;
use super::fence::{Settled, fenced};
use super::persist::{in_use_unknown, publish, record};
use crate::Error;
use crate::account::Access;
use crate::crd::{CertificatePush, CertificatePushStatus, ImportIntent};
use crate::policy::deletions;
use crate::scm::wire::ImportRequest;
use crate::scm::{FoundImport, PushFailure};
use crate::source::{self, ClusterName, Source};
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

/// The import `cp` of the cluster `cluster` sends for the certificate in `source`: its deterministic name and the
/// certificate. The cluster is in the name, so that a search for an earlier import never finds another cluster's.
fn intent(cp: &CertificatePush, cluster: &ClusterName, source: &Source) -> ImportIntent {
    let fingerprint = source.tls.fingerprint.clone();
    let name = source::import_name(
        cluster,
        &cp.namespace().unwrap_or_default(),
        &cp.name_any(),
        &fingerprint,
    );
    ImportIntent { name, fingerprint }
}

/// What an attempt must do before it may import the certificate in `source`.
#[derive(Debug, PartialEq)]
pub(super) enum BeforeImport {
    /// Nothing: the certificate is imported already, so no import request is sent.
    Nothing,
    /// An earlier attempt recorded this import and no answer: SCM may hold it, so it is searched for first.
    Search,
    /// Save this status, which records the import about to be sent, then import without a search.
    Record(Box<CertificatePushStatus>),
}

/// Decides how an import of the cluster `cluster` starts from `current`. Pure.
pub(super) fn before_import(
    cp: &CertificatePush,
    cluster: &ClusterName,
    current: &CertificatePushStatus,
    source: &Source,
) -> BeforeImport {
    // The recorded ID is this certificate's (importing() keeps it for the same fingerprint only).
    let same_certificate = current.source_fingerprint.as_deref() == Some(source.tls.fingerprint.as_str());
    if same_certificate && current.certificate_id.is_some() {
        return BeforeImport::Nothing;
    }
    let intent = intent(cp, cluster, source);
    if current.import_intent.as_ref() == Some(&intent) {
        return BeforeImport::Search;
    }
    BeforeImport::Record(Box::new(CertificatePushStatus {
        import_intent: Some(intent),
        ..current.clone()
    }))
}

/// The SCM ID of the certificate in `source`, with the status that records it: the ID already recorded, or, when
/// `search` (an earlier attempt's import got no recorded answer), that of the earlier import found by its name, or
/// a new import. The private key travels only in the import request.
pub(super) async fn imported(
    cp: &CertificatePush,
    cluster: &ClusterName,
    access: &Access,
    current: &CertificatePushStatus,
    source: &Source,
    search: bool,
) -> Result<(CertificatePushStatus, String), PushFailure> {
    let mut working = importing(current, source, cp.spec.retain_superseded());
    if let Some(id) = &working.certificate_id {
        return Ok((working.clone(), id.clone()));
    }
    let name = intent(cp, cluster, source).name;
    let found = match search {
        true => access.scm.find_import(&access.credentials, &name).await?,
        false => None,
    };
    // A name is only a name: what SCM holds under it is reused only if its list entry agrees with the source.
    let reusable = match found {
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
                enterprise_project_id: access.enterprise_project_id.clone(),
            };
            let id = access.scm.import(&access.credentials, &request).await?;
            info!(certificate_id = %id, fingerprint = %tls.fingerprint, "imported the certificate into SCM");
            id
        }
    };
    // An import owed a delete that is the certificate again (the Secret went back to it) is in use once more.
    working.pending_deletions.retain(|d| d.certificate_id != id);
    working.certificate_id = Some(id.clone());
    working.import_intent = None;
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

/// Sends the deletes owed in `current` that are due, and saves what came of them (importPolicy.retainSuperseded
/// drops them unsent). A delete that fails is announced (Warning Event `SupersededNotDeleted`) and retried with
/// backoff; it never blocks a push. A delete the account's rate limit held back is no failure: it stays due, and the
/// object comes back when the limit lets it leave.
pub(super) async fn settle_deletions(
    ctx: &Context,
    cp: &CertificatePush,
    api: &Api<CertificatePush>,
    current: &CertificatePushStatus,
    access: &Access,
    now: jiff::Timestamp,
) -> Result<Settled, Error> {
    let mut new = current.clone();
    if cp.spec.retain_superseded() {
        new = deletions::retained(current);
    }
    let mut deferred = None;
    let due = deletions::due(&new, now);
    // SCM is asked where each is deployed first: one still in use anywhere (deployed by hand, by another tool, or on
    // a resource this object no longer lists) is kept and looked at again later.
    let ids: Vec<&str> = due.iter().map(String::as_str).collect();
    let in_use = if ids.is_empty() {
        Default::default()
    } else {
        match access.scm.deployed_resources(&access.credentials, &ids, None).await {
            Ok(in_use) => in_use,
            Err(failure) if fenced(ctx, &failure) => return Ok(Settled::Fenced),
            Err(failure) if let Some(wait) = failure.deferred_for() => return Ok(Settled::Deferred(wait)),
            Err(failure) => {
                let failure = PushFailure {
                    error_message: format!(
                        "could not ask SCM where it is deployed, so it is not deleted: {}",
                        failure.error_message
                    ),
                    ..failure
                };
                let unknown = failure.in_use_unknown();
                if unknown {
                    in_use_unknown(ctx, cp, &failure);
                }
                for id in &ids {
                    new = deletions::failed(&new, id, &failure.error_message, now, rand::random());
                    if !unknown {
                        superseded_not_deleted(ctx, cp, id, &failure, &new);
                    }
                }
                record(ctx, cp, api, current, new.clone()).await?;
                return Ok(Settled::Done(Box::new(new)));
            }
        }
    };
    for id in ids {
        if let Some(resources) = in_use.get(id).filter(|r| !r.is_empty()) {
            let names: Vec<String> = resources.iter().map(ToString::to_string).collect();
            let why = format!("in use: deployed on {}", names.join(", "));
            let announce = deletions::last_error(&new, id) != Some(why.as_str());
            new = deletions::in_use(&new, id, &why, now, rand::random());
            if announce {
                warn!(certificate_id = %id, resources = %names.join(", "), "superseded certificate still in use; kept");
                let note = format!(
                    "Kept superseded certificate {id} in SCM: it is still deployed on {}; checked again later",
                    names.join(", ")
                );
                publish(ctx, cp, EventType::Warning, "SupersededInUse", note, "Delete");
            }
            continue;
        }
        match access.scm.delete(&access.credentials, id).await {
            Ok(()) => {
                info!(certificate_id = %id, "deleted the superseded certificate from SCM");
                new = deletions::deleted(&new, id);
            }
            Err(failure) if fenced(ctx, &failure) => return Ok(Settled::Fenced),
            Err(failure) if let Some(wait) = failure.deferred_for() => {
                // The others would meet the same full queue.
                deferred = Some(wait);
                break;
            }
            Err(failure) => {
                new = deletions::failed(&new, id, &failure.error_message, now, rand::random());
                superseded_not_deleted(ctx, cp, id, &failure, &new);
            }
        }
    }
    if new != *current {
        record(ctx, cp, api, current, new.clone()).await?;
    }
    Ok(match deferred {
        Some(wait) => Settled::Deferred(wait),
        None => Settled::Done(Box::new(new)),
    })
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
