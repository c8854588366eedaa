//! The Deployed condition, and Ready as deploy makes it: a push alone is not Ready while spec.deploy names resources
//! that do not hold the certificate pushed. [`settled`] is applied to every status the controller writes (the one
//! status write, `controller::persist::save`, calls it), after the transition that produced it, so no write path
//! can say Ready while a deploy is owed or in flight.

use jiff::Timestamp;

use super::{FALSE, READY, RECONCILING, Reason, TRUE, conditions, ready_reason};
use crate::crd::{CertificatePushSpec, CertificatePushStatus, Condition};
use crate::policy::deployments;

/// Condition type: whether every resource of spec.deploy holds the certificate pushed (present only with deploy).
pub const DEPLOYED: &str = "Deployed";

/// `status` with its conditions settled from the whole status: the Deployed condition, and Ready (and
/// Reconciling) telling deploy's state while the push is done: Deployed when every resource holds the certificate pushed, DeployFailed while one failed, Deploying until
/// then. A push that is not done keeps its own Ready.
pub fn settled(spec: &CertificatePushSpec, status: CertificatePushStatus, now: Timestamp) -> CertificatePushStatus {
    let status = deployments::aligned(spec, &status);
    let push_done = ready_reason(&status).is_some_and(|r| {
        matches!(
            r,
            Reason::Pushed | Reason::Deployed | Reason::Deploying | Reason::DeployFailed
        )
    });
    let generation = status.observed_generation.unwrap_or(0);
    let Some(deploy) = spec.deploy.as_ref() else {
        // Deploy was dropped from the spec: Ready is the push's again.
        let mut status = status;
        if push_done && ready_reason(&status) != Some(Reason::Pushed) {
            let message = "Pushed; spec.deploy names no resource".to_owned();
            status.conditions = conditions(
                &status.conditions,
                &[(READY, TRUE, Reason::Pushed, message)],
                generation,
                now,
            );
        }
        status.conditions.retain(|c| c.type_ != DEPLOYED);
        return status;
    };
    let wanted = deployments::wanted(spec, &status).unwrap_or("the certificate");
    let count = deploy.resources.len();
    let failed = deployments::failures(&status);
    let (state, reason, message) = if deployments::complete(spec, &status) {
        let message = format!("Deployed {wanted} to {count} resource(s) of {}", spec.target_service);
        (TRUE, Reason::Deployed, message)
    } else if failed.is_empty() {
        let waiting: Vec<&str> = status
            .deployments
            .iter()
            .filter(|d| d.certificate_id.as_deref() != Some(wanted))
            .map(|d| d.resource.as_str())
            .collect();
        let message = format!("Deploying {wanted} to {}", waiting.join(", "));
        (FALSE, Reason::Deploying, message)
    } else {
        let list: Vec<String> = failed.iter().map(|(r, why)| format!("{r} ({why})")).collect();
        let message = format!(
            "Deploying {wanted} failed on {}; each is retried alone with backoff",
            list.join(", ")
        );
        (FALSE, Reason::DeployFailed, message)
    };
    let mut wanted_conditions: Vec<(&str, &str, Reason, String)> = Vec::new();
    if push_done {
        wanted_conditions.push((READY, state, reason, message.clone()));
        if state == FALSE {
            wanted_conditions.push((RECONCILING, TRUE, reason, message.clone()));
        }
    }
    wanted_conditions.push((DEPLOYED, state, reason, message));
    let kept: Vec<Condition> = status
        .conditions
        .iter()
        .filter(|c| !wanted_conditions.iter().any(|(t, ..)| *t == c.type_))
        // Reconciling is about deploy only while the push is done; otherwise it is the push's.
        .filter(|c| !(push_done && c.type_ == RECONCILING))
        .cloned()
        .collect();
    let mut status = status;
    let mut all = kept;
    all.extend(conditions(&status.conditions, &wanted_conditions, generation, now));
    all.sort_by_key(|c| condition_rank(&c.type_));
    status.conditions = all;
    status
}

/// Whether the resources that failed, or why, differ between `old` and `new` (a new failure is announced).
pub fn failures_changed(old: &CertificatePushStatus, new: &CertificatePushStatus) -> bool {
    deployments::failures(old) != deployments::failures(new)
}

/// Ready first, as the push transitions write it; Deployed last.
fn condition_rank(type_: &str) -> u8 {
    match type_ {
        READY => 0,
        DEPLOYED => 3,
        RECONCILING => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{DeploySpec, PushedTarget, TargetService};
    use crate::status::{self, Attempt};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn spec(deploy: bool) -> CertificatePushSpec {
        CertificatePushSpec {
            target_service: TargetService::Elb,
            deploy: deploy.then(|| DeploySpec::ids(&["e1", "e2"])),
            ..CertificatePushSpec::example()
        }
    }

    fn pushed() -> CertificatePushStatus {
        let attempt = Attempt {
            generation: 1,
            push_request: None,
            credentials_digest: None,
            endpoint: "https://scm.example.com/",
            target: "x",
            now: t("2026-01-01T00:00:00Z"),
        };
        let mut s = status::pushed(&Default::default(), &attempt, 204, None);
        s.pushed = Some(PushedTarget {
            deploy_only: false,
            certificate_id: "scs1554192131150".into(),
            target_service: TargetService::Elb,
            target_project: "cn-north-4".into(),
            generation: 1,
            not_after: None,
        });
        s
    }

    fn condition<'a>(s: &'a CertificatePushStatus, type_: &str) -> Option<(&'a str, &'a str)> {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.as_str(), c.reason.as_str()))
    }

    #[test]
    fn a_push_is_ready_only_once_every_resource_holds_it() {
        let now = t("2026-01-01T00:00:01Z");
        let spec = spec(true);
        let s = settled(&spec, pushed(), now);
        assert_eq!(condition(&s, READY), Some((FALSE, "Deploying")));
        assert_eq!(condition(&s, RECONCILING), Some((TRUE, "Deploying")));
        assert_eq!(condition(&s, DEPLOYED), Some((FALSE, "Deploying")));
        let sent = deployments::intend(&s, &["e1", "e2"], "scs1554192131150");
        let failed = [("e2".to_owned(), "ELB.8902".to_owned())];
        let partial = deployments::answered(&sent, &["e1", "e2"], "scs1554192131150", &failed, now, 0.5);
        let s = settled(&spec, partial, now);
        assert_eq!(condition(&s, READY), Some((FALSE, "DeployFailed")));
        assert!(status::ready(&s).unwrap().message.contains("e2 (ELB.8902)"));
        let done = deployments::answered(&s, &["e2"], "scs1554192131150", &[], now, 0.5);
        let s = settled(&spec, done, now);
        assert_eq!(condition(&s, READY), Some((TRUE, "Deployed")));
        assert_eq!(condition(&s, DEPLOYED), Some((TRUE, "Deployed")));
        assert_eq!(condition(&s, RECONCILING), None);
        assert_eq!(
            settled(&spec, s.clone(), now),
            s,
            "idempotent: no write when nothing changed"
        );
        // Deploy dropped from the spec: Ready is the push's again.
        let s = settled(&self::spec(false), s, now);
        assert_eq!(condition(&s, READY), Some((TRUE, "Pushed")));
        assert_eq!(condition(&s, DEPLOYED), None);
        assert!(s.deployments.is_empty());
    }

    #[test]
    fn a_failed_push_keeps_its_own_ready() {
        let now = t("2026-01-01T00:00:01Z");
        let mut s = pushed();
        s.conditions[0].status = FALSE.into();
        s.conditions[0].reason = "Retrying".into();
        let s = settled(&spec(true), s, now);
        assert_eq!(condition(&s, READY), Some((FALSE, "Retrying")));
        assert_eq!(condition(&s, DEPLOYED), Some((FALSE, "Deploying")));
    }
}
