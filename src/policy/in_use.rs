//! When to ask SCM again where the certificate pushed is deployed (`status.inUse`): after each push, when the
//! certificate changed, and every `--in-use-refresh`; never with a refresh of 0, and only for objects whose
//! certificate's use matters to them: those that import (a superseded import is deleted only when unused) or deploy.
//! A plain certificateId push costs no such question.

use std::time::Duration;

use jiff::Timestamp;

use crate::crd::{CertificatePushSpec, CertificatePushStatus, InUseResource, InUseStatus};
use crate::scm::InUse;
use crate::time;

/// Most resources kept in status.
pub const MAX_RESOURCES: usize = 50;

/// Whether status.inUse is due a refresh at `now`; `asked` is when this process last asked and found nothing new
/// (such a refresh writes no status, so status.inUse.checkTime does not move).
pub fn due(
    spec: &CertificatePushSpec,
    status: &CertificatePushStatus,
    refresh: Duration,
    now: Timestamp,
    asked: Option<Timestamp>,
) -> bool {
    let Some(pushed) = &status.pushed else {
        return false;
    };
    if refresh.is_zero() || (spec.certificate_id.is_some() && spec.deploy.is_none()) {
        return false;
    }
    let Some(known) = &status.in_use else {
        return true;
    };
    let Some(checked) = time::parse_time(&known.check_time) else {
        return true;
    };
    let checked = asked.map_or(checked, |asked| asked.max(checked));
    known.certificate_id != pushed.certificate_id || checked.checked_add(refresh).is_ok_and(|next| next <= now)
}

/// The status after a push: what was known is dropped, so SCM is asked again right after it.
pub fn after_push(status: &mut CertificatePushStatus) {
    status.in_use = None;
}

/// The status after SCM answered where `certificate_id` is deployed (or, with `error`, could not be asked: what was
/// known stays, and the next try waits a whole refresh). An answer that changes nothing leaves the status as it was
/// (checkTime included), so a periodic refresh costs no status write; the caller keeps when it asked.
pub fn checked(
    status: &CertificatePushStatus,
    certificate_id: &str,
    answer: Result<&[InUse], &str>,
    now: Timestamp,
) -> CertificatePushStatus {
    let known = status.in_use.as_ref().filter(|u| u.certificate_id == certificate_id);
    let (resources, error) = match answer {
        Ok(resources) => (
            resources
                .iter()
                .take(MAX_RESOURCES)
                .map(|r| InUseResource {
                    service: r.service.clone(),
                    region: r.region.clone(),
                    resource: r.resource.clone(),
                })
                .collect(),
            None,
        ),
        Err(why) => (
            known.map(|u| u.resources.clone()).unwrap_or_default(),
            Some(why.to_owned()),
        ),
    };
    if known.is_some_and(|u| u.resources == resources && u.error == error) {
        return status.clone();
    }
    CertificatePushStatus {
        in_use: Some(InUseStatus {
            certificate_id: certificate_id.to_owned(),
            check_time: time::format_time(now),
            resources,
            error,
        }),
        ..status.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{PushedTarget, TargetService};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn pushed(certificate: &str, at: &str) -> CertificatePushStatus {
        CertificatePushStatus {
            last_push_time: Some(at.into()),
            pushed: Some(PushedTarget {
                certificate_id: certificate.into(),
                target_service: TargetService::Elb,
                target_project: "cn-north-4".into(),
                generation: 1,
                deploy_only: false,
                not_after: None,
            }),
            ..Default::default()
        }
    }

    /// An import: its superseded certificates are deleted only when unused.
    fn importing() -> CertificatePushSpec {
        CertificatePushSpec {
            certificate_id: None,
            source_secret_ref: Some(crate::crd::SourceSecretRef { name: "tls".into() }),
            ..CertificatePushSpec::example()
        }
    }

    /// Defect: every plain certificateId push cost a deployed-resources request after it, and every refresh.
    #[test]
    fn a_plain_certificate_id_push_is_never_asked() {
        let now = t("2026-01-01T00:00:01Z");
        let s = pushed("c1", "2026-01-01T00:00:00Z");
        let plain = CertificatePushSpec::example();
        assert!(plain.certificate_id.is_some() && plain.deploy.is_none());
        assert!(!due(&plain, &s, HOUR, now, None));
        let deploying = CertificatePushSpec {
            deploy: Some(crate::crd::DeploySpec::ids(&["e1"])),
            ..plain
        };
        assert!(due(&deploying, &s, HOUR, now, None));
    }

    #[test]
    fn asked_after_a_push_then_once_per_refresh() {
        let spec = importing();
        let s = pushed("c1", "2026-01-01T00:00:00Z");
        let now = t("2026-01-01T00:00:01Z");
        assert!(due(&spec, &s, HOUR, now, None));
        assert!(!due(&spec, &s, Duration::ZERO, now, None), "0 turns it off");
        assert!(
            !due(&spec, &CertificatePushStatus::default(), HOUR, now, None),
            "nothing pushed"
        );
        let elb = InUse {
            service: "ELB".into(),
            region: "cn-north-4".into(),
            resource: "e1".into(),
        };
        let s = checked(&s, "c1", Ok(std::slice::from_ref(&elb)), now);
        assert!(!due(&spec, &s, HOUR, t("2026-01-01T00:59:00Z"), None));
        assert!(due(&spec, &s, HOUR, t("2026-01-01T01:00:01Z"), None));
        let mut repushed = s.clone();
        after_push(&mut repushed);
        assert!(
            due(&spec, &repushed, HOUR, now, None),
            "after a push, even within the same second"
        );
        let mut renewed = s.clone();
        renewed.pushed.as_mut().unwrap().certificate_id = "c2".into();
        assert!(due(&spec, &renewed, HOUR, now, None), "another certificate");
        // A failed ask keeps what was known and waits a whole refresh.
        let failed = checked(&s, "c1", Err("403"), t("2026-01-01T01:00:02Z"));
        let known = failed.in_use.as_ref().unwrap();
        assert_eq!((known.resources.len(), known.error.as_deref()), (1, Some("403")));
        assert!(!due(&spec, &failed, HOUR, t("2026-01-01T01:30:00Z"), None));
    }

    /// Defect: every periodic refresh wrote the status (a new checkTime) though SCM's answer was the same: a status
    /// write per object per --in-use-refresh. An unchanged answer now writes nothing; the process keeps when it
    /// asked, and the next refresh counts from then.
    #[test]
    fn an_unchanged_answer_writes_nothing_and_the_next_refresh_counts_from_the_ask() {
        let spec = importing();
        let elb = InUse {
            service: "ELB".into(),
            region: "cn-north-4".into(),
            resource: "e1".into(),
        };
        let first = checked(
            &pushed("c1", "2026-01-01T00:00:00Z"),
            "c1",
            Ok(std::slice::from_ref(&elb)),
            t("2026-01-01T00:00:01Z"),
        );
        let later = t("2026-01-01T01:00:02Z");
        assert!(due(&spec, &first, HOUR, later, None));
        let again = checked(&first, "c1", Ok(std::slice::from_ref(&elb)), later);
        assert_eq!(again, first, "the same answer: no write");
        assert!(!due(&spec, &again, HOUR, later, Some(later)), "asked just now");
        assert!(due(&spec, &again, HOUR, t("2026-01-01T02:00:03Z"), Some(later)));
        let moved = checked(&first, "c1", Ok(&[]), later);
        assert_ne!(moved, first, "a change is written");
        assert_eq!(moved.in_use.unwrap().check_time, "2026-01-01T01:00:02Z");
    }
}
