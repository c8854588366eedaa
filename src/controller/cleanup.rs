//! The cleanup finalizer: present while an object with `deletionPolicy: Delete` may have imports in SCM, and the
//! bounded deletion of those imports when the object is deleted.

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::warn;

use super::fence::fenced;
use super::persist::{in_use_unknown, publish};
use super::{Context, standby};
use crate::Error;
use crate::account::Access;
use crate::crd::{CLEANUP_FINALIZER, CertificatePush, CertificatePushStatus};
use crate::policy;

/// Attempts to delete imported certificates before the finalizer lets a deleted object go (5 s doubling: about a
/// minute in all).
pub const MAX_CLEANUP_ATTEMPTS: u32 = 5;

/// Whether `cp` needs the cleanup finalizer: deletionPolicy Delete and something imported to delete, now (a
/// sourceSecretRef spec) or left over (the imports of a former sourceSecretRef spec, owed a delete).
pub(super) fn wants_finalizer(cp: &CertificatePush) -> bool {
    let imported = cp.status.as_ref().is_some_and(|s| !owned_imports(s).is_empty());
    cp.spec.deletes_imports() || (cp.spec.deletes() && imported)
}

/// Whether `cp` carries the cleanup finalizer.
pub(super) fn has_finalizer(cp: &CertificatePush) -> bool {
    cp.finalizers().iter().any(|f| f == CLEANUP_FINALIZER)
}

/// Adds or removes the cleanup finalizer, keeping any other; the resourceVersion makes a concurrent change fail the
/// write (and the reconcile, which is retried) instead of being overwritten.
pub(super) async fn set_finalizer(
    api: &Api<CertificatePush>,
    cp: &CertificatePush,
    present: bool,
) -> Result<Option<String>, Error> {
    let mut finalizers: Vec<String> = cp
        .finalizers()
        .iter()
        .filter(|f| *f != CLEANUP_FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(CLEANUP_FINALIZER.to_owned());
    }
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": cp.resource_version()}});
    let patched = api
        .patch(&cp.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(patched.resource_version())
}

/// A CertificatePush with deletionPolicy Delete is being deleted: delete what it imported from SCM, then let it go.
/// Bounded: without usable credentials, or after [`MAX_CLEANUP_ATTEMPTS`] failed attempts, a Warning Event names
/// what is left in SCM and the finalizer is removed anyway, so deletion is never blocked for long.
pub(super) async fn cleanup(cached: &CertificatePush, ctx: &Context) -> Result<Action, Error> {
    if !has_finalizer(cached) {
        return Ok(Action::await_change());
    }
    let ns = cached.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<CertificatePush> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cp) = api.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let uid = cp.uid().unwrap_or_default();
    // A status that could not be saved is newer than the saved one: it may name an import the saved one does not.
    let st = ctx
        .memory
        .unsaved(&uid)
        .or_else(|| cp.status.clone())
        .unwrap_or_default();
    let imported = if cp.spec.deletes() {
        owned_imports(&st)
    } else {
        Vec::new()
    };
    if !imported.is_empty() {
        match super::ReadCredentials::read(ctx, &cp).await?.credentials {
            Err(problem) => {
                let note = format!(
                    "Left {} in SCM: no usable credentials to delete it ({problem}); delete it in the SCM console",
                    imported.join(", ")
                );
                publish(ctx, &cp, EventType::Warning, "CleanupSkipped", note, "Delete");
            }
            Ok(access) => {
                if let Some(retry) = delete_imports(ctx, &cp, &access, &imported).await {
                    return Ok(retry);
                }
            }
        }
    }
    set_finalizer(&api, &cp, false).await?;
    ctx.memory.forget(&uid);
    Ok(Action::await_change())
}

/// Every certificate in SCM this object imported, each once: the deletes still owed, the one the status is about
/// and the one serving.
fn owned_imports(st: &CertificatePushStatus) -> Vec<String> {
    let owed = st.pending_deletions.iter().map(|d| d.certificate_id.clone());
    let mut ids: Vec<String> = owed
        .chain(st.certificate_id.clone())
        .chain(st.pushed_certificate_id.clone())
        .collect();
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    ids
}

/// Deletes `imported` from SCM; `Some(requeue)` while failed attempts stay under the bound, `None` when done or
/// given up (each announced by an Event).
pub(super) async fn delete_imports(
    ctx: &Context,
    cp: &CertificatePush,
    access: &Access,
    imported: &[String],
) -> Option<Action> {
    let mut left = Vec::new();
    let mut last_error = String::new();
    // Never delete a certificate still deployed somewhere: it is left in SCM, and the Event says where it serves.
    let ids: Vec<&str> = imported.iter().map(String::as_str).collect();
    let in_use = match access.scm.deployed_resources(&access.credentials, &ids, None).await {
        Ok(in_use) => in_use,
        Err(failure) if fenced(ctx, &failure) => return Some(standby(ctx)),
        Err(failure) if let Some(wait) = failure.deferred_for() => return Some(Action::requeue(wait)),
        Err(failure) => {
            if failure.in_use_unknown() {
                in_use_unknown(ctx, cp, &failure);
            }
            left.extend(imported.iter().cloned());
            last_error = format!("could not ask SCM where they are deployed: {}", failure.error_message);
            Default::default()
        }
    };
    let mut kept = Vec::new();
    let mut deleted = Vec::new();
    let checked = left.is_empty();
    for id in imported.iter().filter(|_| checked) {
        if let Some(resources) = in_use.get(id).filter(|r| !r.is_empty()) {
            let names: Vec<String> = resources.iter().map(ToString::to_string).collect();
            kept.push(format!("{id} (deployed on {})", names.join(", ")));
            continue;
        }
        match access.scm.delete(&access.credentials, id).await {
            Ok(()) => deleted.push(id.as_str()),
            // Neither is an attempt that SCM answered: the bound on attempts does not move.
            Err(failure) if fenced(ctx, &failure) => return Some(standby(ctx)),
            Err(failure) if let Some(wait) = failure.deferred_for() => return Some(Action::requeue(wait)),
            Err(failure) => {
                left.push(id.clone());
                last_error = failure.error_message;
            }
        }
    }
    if left.is_empty() {
        if !kept.is_empty() {
            let note = format!(
                "Left {} in SCM: still in use; delete it there once nothing uses it",
                kept.join("; ")
            );
            publish(ctx, cp, EventType::Warning, "CleanupSkipped", note, "Delete");
        }
        if !deleted.is_empty() {
            let note = format!("Deleted imported certificate {} from SCM", deleted.join(", "));
            publish(ctx, cp, EventType::Normal, "ImportsDeleted", note, "Delete");
        }
        return None;
    }
    let attempts = ctx.memory.count_cleanup(&cp.uid().unwrap_or_default());
    if attempts < MAX_CLEANUP_ATTEMPTS {
        warn!(attempts, error = %last_error, "deleting imported certificates failed; retrying");
        // The push backoff without its jitter: 5 s doubling.
        let attempt = i32::try_from(attempts).unwrap_or(i32::MAX);
        return Some(Action::requeue(policy::backoff(attempt, None, 0.5)));
    }
    let note = format!(
        "Gave up deleting {} from SCM after {attempts} attempts ({last_error}); the CertificatePush is released, \
         delete the certificate in the SCM console",
        left.join(", ")
    );
    publish(ctx, cp, EventType::Warning, "CleanupAbandoned", note, "Delete");
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::PendingDeletion;

    /// Defect: the finalizer deleted only certificateId and pushedCertificateId, so an import a renewal superseded
    /// whose delete had failed stayed in SCM after the object was gone.
    #[test]
    fn cleanup_covers_the_deletes_still_owed() {
        let owed = |id: &str| PendingDeletion {
            certificate_id: id.into(),
            failed_attempts: Some(2),
            next_attempt_time: None,
            last_error: None,
        };
        let st = CertificatePushStatus {
            certificate_id: Some("scsC".into()),
            pushed_certificate_id: Some("scsB".into()),
            pending_deletions: vec![owed("scsA"), owed("scsB")],
            ..Default::default()
        };
        assert_eq!(owned_imports(&st), ["scsA", "scsB", "scsC"]);
    }
}
