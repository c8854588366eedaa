//! Deploying the certificate pushed onto the resources of spec.deploy: the I/O around [`deployments`]' decisions.
//! An unanswered deploy is checked with deployed-resources first; the resources still due are recorded in status,
//! then sent in one request; what SCM answered per resource is recorded after it.

use kube::Api;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::Context;
use super::fence::{Settled, fenced};
use super::import::settle_deletions;
use super::persist::{in_use_unknown, publish, record, save};
use crate::Error;
use crate::account::Access;
use crate::crd::{CertificatePush, CertificatePushStatus, DeployResource};
use crate::policy::{deletions, deployments, in_use};
use crate::scm::PushFailure;
use crate::scm::wire::{DeployRequest, DeployTarget};

/// Sends what the object owes besides a push: its deploys first, then the deletes due (a certificate a resource
/// still holds is not due).
pub(super) async fn settle_owed(
    ctx: &Context,
    cp: &CertificatePush,
    api: &Api<CertificatePush>,
    current: &CertificatePushStatus,
    access: &Access,
    now: jiff::Timestamp,
) -> Result<Settled, Error> {
    let mut status = current.clone();
    if deployments::owed_now(&cp.spec, &status, now) {
        match settle_deploys(ctx, cp, api, &status, access, now).await? {
            Settled::Done(settled) => status = *settled,
            other => return Ok(other),
        }
    }
    if in_use_due(ctx, cp, &status, now) {
        match refresh_in_use(ctx, cp, api, &status, access, now).await? {
            Settled::Done(settled) => status = *settled,
            other => return Ok(other),
        }
    }
    if deletions::due(&status, now).is_empty() {
        return Ok(Settled::Done(Box::new(status)));
    }
    settle_deletions(ctx, cp, api, &status, access, now).await
}

/// Whether the object owes work besides a push now: a deploy, a look at where its certificate is in use, a delete.
pub(super) fn owed_now(
    ctx: &Context,
    cp: &CertificatePush,
    status: &CertificatePushStatus,
    now: jiff::Timestamp,
) -> bool {
    deployments::owed_now(&cp.spec, status, now)
        || in_use_due(ctx, cp, status, now)
        || !deletions::due(status, now).is_empty()
}

/// Whether status.inUse is due a refresh at `now`, counting from this process's last ask that changed nothing.
fn in_use_due(ctx: &Context, cp: &CertificatePush, status: &CertificatePushStatus, now: jiff::Timestamp) -> bool {
    let asked = ctx.memory.in_use_asked(&uid(cp));
    in_use::due(&cp.spec, status, ctx.in_use_refresh, now, asked)
}

/// Asks SCM where the certificate pushed is deployed (in a batch with other objects of the same credential) and
/// records it in status.inUse.
async fn refresh_in_use(
    ctx: &Context,
    cp: &CertificatePush,
    api: &Api<CertificatePush>,
    current: &CertificatePushStatus,
    access: &Access,
    now: jiff::Timestamp,
) -> Result<Settled, Error> {
    let Some(certificate) = current.pushed.as_ref().map(|p| p.certificate_id.clone()) else {
        return Ok(Settled::Done(Box::new(current.clone())));
    };
    let new = match ctx.in_use.lookup(&access.scm, &access.credentials, &certificate).await {
        Ok(resources) => in_use::checked(current, &certificate, Ok(&resources), now),
        Err(f) if fenced(ctx, &f) => return Ok(Settled::Fenced),
        Err(f) if let Some(wait) = f.deferred_for() => return Ok(Settled::Deferred(wait)),
        Err(f) => {
            if f.in_use_unknown() {
                in_use_unknown(ctx, cp, &f);
            } else {
                warn!(error = %f.error_message, "could not ask SCM where the certificate is deployed");
            }
            in_use::checked(current, &certificate, Err(&f.error_message), now)
        }
    };
    if new == *current {
        // Nothing new: no write; the next refresh counts from this ask.
        ctx.memory.asked_in_use(&uid(cp), now);
        return Ok(Settled::Done(Box::new(new)));
    }
    let saved = record(ctx, cp, api, current, new).await?;
    Ok(Settled::Done(Box::new(saved)))
}

fn uid(cp: &CertificatePush) -> String {
    kube::ResourceExt::uid(cp).unwrap_or_default()
}

/// Checks unanswered deploys and sends the deploys due, saving what came of them. Deploys the account's rate limit
/// held back come back when it lets them leave, with nothing counted against them.
async fn settle_deploys(
    ctx: &Context,
    cp: &CertificatePush,
    api: &Api<CertificatePush>,
    current: &CertificatePushStatus,
    access: &Access,
    now: jiff::Timestamp,
) -> Result<Settled, Error> {
    let spec = &cp.spec;
    let Some(wanted) = deployments::wanted(spec, current).map(str::to_owned) else {
        return Ok(Settled::Done(Box::new(current.clone())));
    };
    let mut saved = current.clone();
    let mut new = deployments::aligned(spec, current);

    // SCM says where the certificate is before it is deployed anywhere it may already be (free; a deploy is
    // billed): a deploy whose answer was lost, a first deploy of this certificate (a re-created object, a resource
    // listed again, another object deploying it there).
    let asked: Vec<&str> = keys(deployments::unconfirmed(spec, &new, now));
    if !asked.is_empty() {
        match access
            .scm
            .deployed_resources(&access.credentials, &[&wanted], Some(spec.target_service))
            .await
        {
            Ok(held) => {
                let held: Vec<String> = held
                    .get(&wanted)
                    .into_iter()
                    .flatten()
                    .map(|r| r.resource.clone())
                    .collect();
                info!(certificate_id = %wanted, asked = ?asked, held = ?held, "checked where the certificate is deployed");
                new = deployments::confirmed(&new, &asked, &held, &wanted, now);
            }
            Err(f) if fenced(ctx, &f) => return Ok(Settled::Fenced),
            Err(f) if let Some(wait) = f.deferred_for() => return Ok(Settled::Deferred(wait)),
            Err(f) => {
                if f.in_use_unknown() {
                    in_use_unknown(ctx, cp, &f);
                }
                // Whether they hold it is unknown: each is asked again after its backoff, never deployed blind.
                let why = format!("checking where the certificate is deployed: {}", f.error_message);
                let unknown = deployments::intend(&new, &asked, &wanted);
                new = deployments::request_failed(&unknown, &asked, &why, true, f.retry_after, now, rand::random());
            }
        }
    }

    let due: Vec<&DeployResource> = deployments::due(spec, &new, now);
    if !due.is_empty() {
        let sent = keys(due.clone());
        // Recorded before it is sent: a crash or a lost answer is checked, not deployed (and billed) twice.
        let intended = save(ctx, api, cp, &saved, &deployments::intend(&new, &sent, &wanted)).await?;
        saved = intended.clone();
        let request = DeployRequest {
            project_name: spec.target_project.clone(),
            service_name: spec.target_service.to_string(),
            resources: due.iter().map(|r| target(r, access)).collect(),
        };
        match access.scm.deploy(&access.credentials, &wanted, &request).await {
            Ok(failed) => {
                new = deployments::answered(&intended, &sent, &wanted, &failed, now, rand::random());
                if failed.is_empty() {
                    info!(certificate_id = %wanted, resources = ?sent, "deployed");
                } else {
                    warn!(certificate_id = %wanted, failed = ?failed, "SCM could not deploy to some resources");
                }
            }
            Err(f) if fenced(ctx, &f) => return Ok(Settled::Fenced),
            Err(f) if let Some(wait) = f.deferred_for() => {
                // Never sent: the intent goes, so the next attempt deploys without a check first.
                record(ctx, cp, api, &saved, new).await?;
                return Ok(Settled::Deferred(wait));
            }
            Err(f) => {
                new = failed_request(cp, ctx, &intended, &sent, &f, now);
            }
        }
    }
    if new != saved {
        record(ctx, cp, api, &saved, new.clone()).await?;
    }
    Ok(Settled::Done(Box::new(new)))
}

/// The status after a deploy request failed as a whole: a refusal of the credential is announced like a push's.
fn failed_request(
    cp: &CertificatePush,
    ctx: &Context,
    intended: &CertificatePushStatus,
    sent: &[&str],
    failure: &PushFailure,
    now: jiff::Timestamp,
) -> CertificatePushStatus {
    let why = failure.describe();
    warn!(error = %why, resources = ?sent, "the deploy request failed");
    if !failure.kind.is_transient() {
        let note = format!("Deploy to {} failed: {why}", sent.join(", "));
        publish(ctx, cp, EventType::Warning, "DeployFailed", note, "Deploy");
    }
    deployments::request_failed(
        intended,
        sent,
        &why,
        failure.may_have_landed(),
        failure.retry_after,
        now,
        rand::random(),
    )
}

fn keys(resources: Vec<&DeployResource>) -> Vec<&str> {
    resources.into_iter().map(DeployResource::key).collect()
}

/// A resource as SCM's deploy request names it. A WAF resource without an enterpriseProjectId (allowed with an
/// account) is in the account's, else in the default one ("0"); SCM needs one for WAF.
fn target(r: &DeployResource, access: &Access) -> DeployTarget {
    let enterprise_project_id = match r.waf_type {
        Some(_) => r
            .enterprise_project_id
            .clone()
            .or_else(|| access.enterprise_project_id.clone())
            .or_else(|| Some("0".to_owned())),
        None => r.enterprise_project_id.clone(),
    };
    DeployTarget {
        id: r.id.clone(),
        waf_type: r.waf_type.map(|t| crate::crd::wire_name(&t)),
        domain_name: r.domain_name.clone(),
        enterprise_project_id,
    }
}
