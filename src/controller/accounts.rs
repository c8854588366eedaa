//! The status of SCMAccounts and ClusterSCMAccounts: Ready (the credentials Secret is there and usable, or SCM
//! refused the credential) and how many CertificatePushes use each. No SCM request is ever made for it: a wrong
//! key must not cost a lockout just to be shown.
//!
//! Accounts are few, so one loop recomputes all of them whenever an account, a Secret or a CertificatePush changes
//! (and every minute), and writes only the statuses that differ.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;
use tracing::warn;

use super::{Context, FIELD_MANAGER};
use crate::account::Problem;
use crate::crd::{
    AccountKind, AccountRef, AccountSettings, AccountStatus, CertificatePush, ClusterSCMAccount, Condition, SCMAccount,
};
use crate::status::{self, Reason};

/// The reason of an account's Ready=True.
pub const CREDENTIALS_FOUND: &str = "CredentialsFound";
/// How often statuses are recomputed without a change seen (a refusal recorded by a push, for example).
const PERIOD: Duration = Duration::from_secs(60);
/// Changes arriving together are handled in one pass.
const SETTLE: Duration = Duration::from_millis(200);

/// What an account's Ready condition says: status, reason, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// True or False.
    pub status: &'static str,
    /// CredentialsFound, or why not.
    pub reason: String,
    /// For humans; never credential material.
    pub message: String,
}

/// Ready from what is known without asking SCM: whether the Secret holds a usable credential, and whether a push
/// with that very credential (at this endpoint) was refused, as `refused` tells.
pub fn readiness(credentials: Result<String, Problem>, refused: impl Fn(&str) -> Option<String>) -> Readiness {
    match credentials {
        Err(problem) => Readiness {
            status: status::FALSE,
            reason: problem.reason().to_string(),
            message: problem.to_string(),
        },
        Ok(digest) => match refused(&digest) {
            Some(message) => Readiness {
                status: status::FALSE,
                reason: Reason::Unauthorized.to_string(),
                message: format!(
                    "SCM refused this credential ({message}); it is not sent again until the Secret's credential or \
                     the account's endpoint changes"
                ),
            },
            None => Readiness {
                status: status::TRUE,
                reason: CREDENTIALS_FOUND.to_owned(),
                message: "the credentials Secret holds one usable credential (not checked with SCM until a push uses \
                          it)"
                .to_owned(),
            },
        },
    }
}

/// The message of an object that SCM refused with the credential `digest`, if any uses it.
fn refusal(users: &[Arc<CertificatePush>], digest: &str) -> Option<String> {
    users.iter().find_map(|cp| {
        let st = cp.status.as_ref()?;
        let refused =
            status::ready_reason(st) == Some(Reason::Unauthorized) && st.credentials_digest.as_deref() == Some(digest);
        refused.then(|| status::ready(st).map(|c| c.message.clone()).unwrap_or_default())
    })
}

/// Recomputes every account's status on each `changed` notification (and every [`PERIOD`]) until the process
/// ends; only the leader writes.
pub async fn keep_status(
    ctx: Arc<Context>,
    namespaced: Store<SCMAccount>,
    cluster: Store<ClusterSCMAccount>,
    pushes: Store<CertificatePush>,
    changed: Arc<Notify>,
) {
    loop {
        let _ = tokio::time::timeout(PERIOD, changed.notified()).await;
        tokio::time::sleep(SETTLE).await;
        if !ctx.leadership.leads() {
            continue;
        }
        let all = pushes.state();
        for account in namespaced.state() {
            let ns = account.namespace().unwrap_or_default();
            let api: Api<SCMAccount> = Api::namespaced(ctx.client.clone(), &ns);
            let place = Place {
                kind: AccountKind::Namespaced,
                users_in: Some(&ns),
                secrets_in: &ns,
            };
            refresh(
                &ctx,
                &api,
                account.as_ref(),
                &account.spec.account,
                &account.status,
                place,
                &all,
            )
            .await;
        }
        for account in cluster.state() {
            let api: Api<ClusterSCMAccount> = Api::all(ctx.client.clone());
            let place = Place {
                kind: AccountKind::Cluster,
                users_in: None,
                secrets_in: ctx.accounts.cluster_namespace(),
            };
            refresh(
                &ctx,
                &api,
                account.as_ref(),
                &account.spec.account,
                &account.status,
                place,
                &all,
            )
            .await;
        }
    }
}

/// Where an account's users and Secret are.
struct Place<'a> {
    kind: AccountKind,
    /// The namespace of the CertificatePushes that may use it (None: any).
    users_in: Option<&'a str>,
    /// The namespace of its credentials Secret.
    secrets_in: &'a str,
}

/// Writes the status `account` should have now, if it differs.
async fn refresh<K>(
    ctx: &Context,
    api: &Api<K>,
    account: &K,
    settings: &AccountSettings,
    status: &Option<AccountStatus>,
    place: Place<'_>,
    all: &[Arc<CertificatePush>],
) where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let reference = AccountRef {
        kind: place.kind,
        name: account.name_any(),
    };
    let users = users(all, &reference, place.users_in);
    let current = status.clone().unwrap_or_default();
    let generation = account.meta().generation;
    let new = compute(
        ctx,
        &reference,
        settings,
        place.secrets_in,
        &users,
        generation,
        &current,
    )
    .await;
    write(api, &reference.name, &current, new).await;
}

/// The CertificatePushes that name `reference` (in `namespace`, for a namespaced account).
fn users(all: &[Arc<CertificatePush>], reference: &AccountRef, namespace: Option<&str>) -> Vec<Arc<CertificatePush>> {
    all.iter()
        .filter(|cp| cp.spec.account_ref.as_ref() == Some(reference))
        .filter(|cp| namespace.is_none() || cp.namespace().as_deref() == namespace)
        .cloned()
        .collect()
}

/// The status an account should have now.
async fn compute(
    ctx: &Context,
    reference: &AccountRef,
    settings: &AccountSettings,
    secret_namespace: &str,
    users: &[Arc<CertificatePush>],
    generation: Option<i64>,
    current: &AccountStatus,
) -> Option<AccountStatus> {
    let digest = match ctx.accounts.settled(reference, settings, secret_namespace.to_owned()) {
        Err(problem) => Err(problem),
        Ok(resolved) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), secret_namespace);
            // Unknown is not "missing": a failed read leaves the status as it is.
            let secret = match secrets.get_opt(&settings.credentials_ref.name).await {
                Ok(secret) => secret,
                Err(e) => {
                    warn!(namespace = secret_namespace, error = %e, "could not read an account's Secret");
                    return None;
                }
            };
            resolved.access(secret.as_ref()).map(|access| access.digest())
        }
    };
    let ready = readiness(digest, |d| refusal(users, d));
    Some(next_status(current, &ready, generation, users.len(), Timestamp::now()))
}

/// `current` with `ready` and the count; the transition time moves only when the status does.
pub fn next_status(
    current: &AccountStatus,
    ready: &Readiness,
    generation: Option<i64>,
    used_by: usize,
    now: Timestamp,
) -> AccountStatus {
    let old = current.conditions.iter().find(|c| c.type_ == "Ready");
    let since = match old {
        Some(c) if c.status == ready.status => c.last_transition_time.clone(),
        _ => k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
    };
    AccountStatus {
        observed_generation: generation,
        conditions: vec![Condition {
            type_: "Ready".to_owned(),
            status: ready.status.to_owned(),
            reason: ready.reason.clone(),
            message: ready.message.clone(),
            observed_generation: generation,
            last_transition_time: since,
        }],
        used_by: Some(i64::try_from(used_by).unwrap_or(i64::MAX)),
    }
}

/// Writes `new` unless it is what the account already shows.
async fn write<K>(api: &Api<K>, name: &str, current: &AccountStatus, new: Option<AccountStatus>)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(new) = new.filter(|n| n != current) else {
        return;
    };
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    if let Err(e) = api
        .patch_status(name, &params, &Patch::Merge(json!({ "status": new })))
        .await
    {
        warn!(account = name, error = %e, "could not write an account's status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scm::CredentialsError;

    #[test]
    fn ready_says_why_not_and_never_asks_scm() {
        let missing = readiness(
            Err(Problem::Credentials(CredentialsError::NotFound(
                "Secret \"scm\" not found".into(),
            ))),
            |_| None,
        );
        assert_eq!(
            (missing.status, missing.reason.as_str()),
            ("False", "CredentialsNotFound")
        );
        let good = readiness(Ok("d1".into()), |_| None);
        assert_eq!((good.status, good.reason.as_str()), ("True", CREDENTIALS_FOUND));
        let refused = readiness(Ok("d1".into()), |d| (d == "d1").then(|| "APIGW.0301".to_owned()));
        assert_eq!((refused.status, refused.reason.as_str()), ("False", "Unauthorized"));
        assert!(refused.message.contains("APIGW.0301"), "{}", refused.message);
        // A refusal of another credential (the one before a rotation) says nothing about this one.
        let rotated = readiness(Ok("d2".into()), |d| (d == "d1").then(|| "APIGW.0301".to_owned()));
        assert_eq!(rotated.status, "True");
    }

    #[test]
    fn the_transition_time_moves_only_with_the_status() {
        let t0: Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-12-07T01:00:00Z".parse().unwrap();
        let good = readiness(Ok("d1".into()), |_| None);
        let first = next_status(&AccountStatus::default(), &good, Some(1), 2, t0);
        let again = next_status(&first, &good, Some(2), 3, t1);
        assert_eq!(again.conditions[0].last_transition_time.0, t0);
        assert_eq!((again.observed_generation, again.used_by), (Some(2), Some(3)));
        let bad = readiness(Err(Problem::InvalidAccount("x".into())), |_| None);
        let down = next_status(&again, &bad, Some(2), 3, t1);
        assert_eq!(down.conditions[0].last_transition_time.0, t1);
        assert_eq!(down.conditions[0].reason, "InvalidAccount");
    }
}
