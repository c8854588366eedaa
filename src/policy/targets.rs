//! The regions a push goes to, one record per region for both forms (`targetProject` is a list of one): which
//! regions a push still owes, and the status after SCM's answer. With `targetProjects` the push is one batch push; a
//! region that failed is sent again alone (the push backoff decides when), a region added later is sent alone, and a
//! region that holds the certificate is never sent it again, whichever form pushed it there (a switch between
//! `targetProject` and `targetProjects` pushes only the regions that lack it).

use jiff::Timestamp;

use crate::crd::{CertificatePushSpec, CertificatePushStatus, RegionTarget};
use crate::scm::RegionResult;
use crate::time;

/// One entry per region of the spec, in its order (a removed region's entry goes: SCM has no un-push).
pub fn aligned(spec: &CertificatePushSpec, status: &CertificatePushStatus) -> Vec<RegionTarget> {
    spec.projects()
        .into_iter()
        .map(|p| {
            status
                .targets
                .iter()
                .find(|t| t.project == p)
                .cloned()
                .unwrap_or_else(|| RegionTarget {
                    project: p.to_owned(),
                    ..RegionTarget::default()
                })
        })
        .collect()
}

/// Whether `region` holds `certificate` in the spec's service: its record says so, or the last successful push
/// (of either form, statuses from before the per-region record included) sent it there.
fn holds(spec: &CertificatePushSpec, status: &CertificatePushStatus, region: &str, certificate: &str) -> bool {
    let pushed = status.pushed.as_ref();
    let same_service = pushed.is_none_or(|p| p.target_service == spec.target_service);
    let recorded = status
        .targets
        .iter()
        .any(|t| t.project == region && t.certificate_id.as_deref() == Some(certificate));
    let pushed_there = pushed.is_some_and(|p| {
        !p.deploy_only && p.certificate_id == certificate && p.target_project.split(',').any(|r| r == region)
    });
    same_service && (recorded || pushed_there)
}

/// The regions that do not hold `certificate` yet.
pub fn due<'a>(spec: &'a CertificatePushSpec, status: &CertificatePushStatus, certificate: &str) -> Vec<&'a str> {
    spec.projects()
        .into_iter()
        .filter(|p| !holds(spec, status, p, certificate))
        .collect()
}

/// The targets after a push of `certificate` to every region of the spec succeeded (the single-region form).
pub fn pushed(
    spec: &CertificatePushSpec,
    status: &CertificatePushStatus,
    certificate: &str,
    now: Timestamp,
) -> Vec<RegionTarget> {
    aligned(spec, status)
        .into_iter()
        .map(|t| RegionTarget {
            project: t.project,
            certificate_id: Some(certificate.to_owned()),
            push_time: Some(time::format_time(now)),
            ..RegionTarget::default()
        })
        .collect()
}

/// Whether SCM's message for a region says a retry cannot help: the region is unknown to it, or the request is
/// invalid for it. Any other message (a busy or failing backend) is retried with backoff.
pub fn refused_for_good(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["invalid", "not support", "not exist", "does not exist", "not found"]
        .iter()
        .any(|words| message.contains(words))
}

/// The targets after SCM answered a batch push of `certificate` to `sent`, and the regions that failed with why.
pub fn answered(
    spec: &CertificatePushSpec,
    status: &CertificatePushStatus,
    certificate: &str,
    sent: &[&str],
    results: &[RegionResult],
    now: Timestamp,
) -> (Vec<RegionTarget>, Vec<(String, String)>) {
    let mut targets = aligned(spec, status);
    let mut failed = Vec::new();
    for target in targets.iter_mut().filter(|t| sent.contains(&t.project.as_str())) {
        match results.iter().find(|r| r.project == target.project) {
            Some(RegionResult {
                copy_id: Some(copy_id),
                message,
                ..
            }) => {
                *target = RegionTarget {
                    project: target.project.clone(),
                    certificate_id: Some(certificate.to_owned()),
                    target_certificate_id: Some(copy_id.clone()),
                    message: Some(message.clone()),
                    push_time: Some(time::format_time(now)),
                };
            }
            Some(RegionResult { message, .. }) => {
                target.message = Some(message.clone());
                failed.push((target.project.clone(), message.clone()));
            }
            None => {
                let message = "SCM's answer has no result for this region".to_owned();
                target.message = Some(message.clone());
                failed.push((target.project.clone(), message));
            }
        }
    }
    (targets, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::TargetService;

    fn spec(projects: &[&str]) -> CertificatePushSpec {
        CertificatePushSpec {
            target_service: TargetService::Elb,
            target_project: String::new(),
            target_projects: projects.iter().map(|p| (*p).to_owned()).collect(),
            ..CertificatePushSpec::example()
        }
    }

    fn result(project: &str, copy: Option<&str>, message: &str) -> RegionResult {
        RegionResult {
            project: project.into(),
            copy_id: copy.map(str::to_owned),
            message: message.into(),
        }
    }

    const C: &str = "scs1554192131150";

    #[test]
    fn a_failed_region_is_sent_again_alone_and_a_new_one_alone() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let spec3 = spec(&["a-north-1", "b-north-1", "c-north-1"]);
        let empty = CertificatePushStatus::default();
        assert_eq!(due(&spec3, &empty, C), ["a-north-1", "b-north-1", "c-north-1"]);
        let results = [
            result("a-north-1", Some("copy-a"), "success"),
            result("b-north-1", None, "Invalid region id."),
            result("c-north-1", Some("copy-c"), "success"),
        ];
        let (targets, failed) = answered(&spec3, &empty, C, &due(&spec3, &empty, C), &results, now);
        assert_eq!(failed, [("b-north-1".to_owned(), "Invalid region id.".to_owned())]);
        assert_eq!(targets[0].target_certificate_id.as_deref(), Some("copy-a"));
        assert_eq!(targets[1].certificate_id, None);
        let s = CertificatePushStatus {
            targets,
            ..Default::default()
        };
        assert_eq!(due(&spec3, &s, C), ["b-north-1"], "only the failed region");
        let (targets, failed) = answered(
            &spec3,
            &s,
            C,
            &["b-north-1"],
            &[result("b-north-1", Some("copy-b"), "success")],
            now,
        );
        assert!(failed.is_empty());
        let s = CertificatePushStatus {
            targets,
            ..Default::default()
        };
        assert!(due(&spec3, &s, C).is_empty());
        let spec4 = spec(&["a-north-1", "b-north-1", "c-north-1", "d-north-1"]);
        assert_eq!(due(&spec4, &s, C), ["d-north-1"], "an added region alone");
        assert_eq!(
            due(&spec4, &s, "scs0000000000002").len(),
            4,
            "a renewal goes everywhere"
        );
        assert_eq!(
            aligned(&spec(&["c-north-1"]), &s).len(),
            1,
            "a removed region's entry goes"
        );
    }

    /// Defect: `targetProject` -> `targetProjects` pushed the region already holding the certificate again (a
    /// second ELB/WAF copy; CDN refuses a repeat and the object retried forever).
    #[test]
    fn a_switch_of_form_owes_only_the_regions_that_lack_the_certificate() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let single = CertificatePushSpec {
            target_project: "a-north-1".into(),
            ..spec(&[])
        };
        assert_eq!(due(&single, &CertificatePushStatus::default(), C), ["a-north-1"]);
        let s = CertificatePushStatus {
            targets: pushed(&single, &CertificatePushStatus::default(), C, now),
            ..Default::default()
        };
        assert_eq!(s.targets.len(), 1, "a list of one");
        let both = spec(&["a-north-1", "b-north-1"]);
        assert_eq!(due(&both, &s, C), ["b-north-1"]);
        // A status from before the per-region record: the last push says where it went.
        let legacy = CertificatePushStatus {
            pushed: Some(crate::crd::PushedTarget {
                certificate_id: C.into(),
                target_service: TargetService::Elb,
                target_project: "a-north-1".into(),
                generation: 1,
                deploy_only: false,
                not_after: None,
            }),
            ..Default::default()
        };
        assert_eq!(due(&both, &legacy, C), ["b-north-1"]);
        let mut elsewhere = legacy.clone();
        elsewhere.pushed.as_mut().unwrap().target_service = TargetService::Waf;
        assert_eq!(due(&both, &elsewhere, C).len(), 2, "another service holds nothing");
        let mut deploy_only = legacy;
        deploy_only.pushed.as_mut().unwrap().deploy_only = true;
        assert_eq!(due(&both, &deploy_only, C).len(), 2, "nothing was pushed");
    }

    #[test]
    fn an_unknown_region_is_refused_for_good_and_a_busy_one_is_retried() {
        assert!(refused_for_good("Invalid region id."));
        assert!(refused_for_good("The region does not exist."));
        assert!(refused_for_good("Service not supported in this region"));
        assert!(!refused_for_good("System busy, please try again later."));
        assert!(!refused_for_good("Push cert error"));
        assert!(!refused_for_good("SCM's answer has no result for this region"));
    }

    #[test]
    fn a_region_missing_from_the_answer_is_a_failure() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let spec2 = spec(&["a-north-1", "b-north-1"]);
        let (_, failed) = answered(
            &spec2,
            &Default::default(),
            C,
            &["a-north-1", "b-north-1"],
            &[result("a-north-1", Some("copy-a"), "success")],
            now,
        );
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, "b-north-1");
    }
}
