//! `spec.deploy`: after each push (a renewal included) SCM's deploy replaces the certificate the listed resources
//! hold. Each resource gets each certificate once (every deploy is billed), a resource that fails is retried alone,
//! a lost answer is checked rather than deployed again, and the certificate a renewal replaced is not deleted while a
//! resource still serves it.

use std::time::Duration;

use certpush_operator::crd::{CertificatePush, CertificatePushSpec, DeploySpec};
use certpush_operator::status::{FALSE, TRUE};
use kube::ResourceExt;

use crate::harness::*;
use crate::import::{TestCa, import_spec, imports_in, put_tls_secret, token_and_first_leaf};

const RESOURCES: [&str; 3] = ["elb-cert-1", "elb-cert-2", "elb-cert-3"];

/// An import of Secret `web-tls` to ELB, deployed onto the three ELB certificates of [`RESOURCES`].
fn deploying_spec() -> CertificatePushSpec {
    CertificatePushSpec {
        deploy: Some(DeploySpec::ids(&RESOURCES)),
        ..import_spec("web-tls")
    }
}

fn deploy_calls(sim: &scm_sim::Sim) -> Vec<scm_sim::Call> {
    sim.calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/deploy"))
        .collect()
}

/// The resources one deploy request named.
fn named(call: &scm_sim::Call) -> Vec<String> {
    call.body["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect()
}

fn holding(cp: &CertificatePush, certificate: &str) -> usize {
    status(cp)
        .deployments
        .iter()
        .filter(|d| d.certificate_id.as_deref() == Some(certificate))
        .count()
}

/// A push, then a deploy to every resource; one resource fails and is retried alone; a renewal is deployed to each
/// once more, and the certificate it replaced stays in SCM until no resource serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn every_resource_gets_each_certificate_once_and_a_failed_one_is_retried_alone() {
    let client = admin().await;
    let ns = namespace(&client, "deploy").await;
    let sim = start_sim().await;
    let op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let ca = TestCa::new();
    let (crt, key, _) = ca.leaf();
    put_tls_secret(&client, &ns, "web-tls", &crt, &key).await;
    sim.fail_deploy("elb-cert-2", "ELB.8902", 1);
    let api = create_push(&client, &ns, "web", deploying_spec()).await;

    let cp = wait_for(&api, "web", T, "DeployFailed on elb-cert-2", |cp| {
        ready_is(cp, FALSE, "DeployFailed")
    })
    .await;
    let first = status(&cp).pushed_certificate_id.expect("pushed");
    let (_, message) = ready_message(&cp);
    assert!(message.contains("elb-cert-2 (ELB.8902)"), "{message}");
    assert_eq!(condition(&cp, "Deployed"), Some((FALSE.into(), "DeployFailed".into())));
    assert_eq!(holding(&cp, &first), 2);
    wait_event(&client, &ns, "web", "Warning", "DeployFailed").await;

    let cp = wait_for(&api, "web", T, "Ready=True Deployed", |cp| {
        ready_is(cp, TRUE, "Deployed")
    })
    .await;
    assert_eq!(holding(&cp, &first), 3);
    let calls = deploy_calls(&sim);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(named(&calls[1]), ["elb-cert-2"], "the failed resource alone");
    for resource in RESOURCES {
        assert_eq!(
            sim.deploy_count(&first, resource),
            1,
            "{resource} deployed (and billed) once"
        );
    }

    // A renewal whose deploy fails on one resource: the replaced certificate still serves there, so it is not
    // deleted until that resource holds the new one.
    let before_renewal = sim.calls().len();
    sim.fail_deploy("elb-cert-3", "ELB.8902", 1);
    let (crt2, key2, _) = ca.leaf();
    put_tls_secret(&client, &ns, "web-tls", &crt2, &key2).await;
    let cp = wait_for(&api, "web", T, "the renewal's deploy failed on elb-cert-3", |cp| {
        ready_is(cp, FALSE, "DeployFailed") && status(cp).pushed_certificate_id.as_deref() != Some(first.as_str())
    })
    .await;
    let second = status(&cp).pushed_certificate_id.expect("pushed");
    assert!(
        imports_in(&sim).contains(&first),
        "deleted while elb-cert-3 still serves it"
    );
    assert!(status(&cp).pending_deletions.iter().any(|d| d.certificate_id == first));
    let cp = wait_for(&api, "web", T, "renewal deployed and the old one deleted", |cp| {
        ready_is(cp, TRUE, "Deployed") && status(cp).pending_deletions.is_empty()
    })
    .await;
    assert_eq!(holding(&cp, &second), 3);
    for resource in RESOURCES {
        assert_eq!(sim.deploy_count(&second, resource), 1, "{resource}: the renewal once");
        assert_eq!(
            sim.deploy_count(&first, resource),
            1,
            "{resource}: the first certificate never again"
        );
    }
    assert_eq!(imports_in(&sim), std::slice::from_ref(&second));
    let bound: Vec<String> = sim
        .deployments()
        .into_iter()
        .filter(|d| d.certificate_id == second)
        .map(|d| d.resource)
        .collect();
    assert_eq!(bound.len(), 3, "{:#?}", sim.deployments());
    // The requests of the renewal: import, push, deploy (3 resources, one failed), the failed one alone, the in-use
    // check before the delete, the delete.
    let renewal: Vec<String> = sim.calls()[before_renewal..]
        .iter()
        .map(|c| format!("{} {}", c.method, c.path.rsplit('/').next().unwrap_or_default()))
        .collect();
    eprintln!("requests of the renewal: {renewal:?}");
    assert_eq!(renewal.len(), 6, "{renewal:?}");
    assert_no_secret_leak(&ns, &op, &[key.trim(), key2.trim()]).await;
}

/// Defect class: a deploy whose answer is lost may have landed (and been billed). It is recorded before it is sent,
/// and a lost answer is checked with deployed-resources instead of deploying again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_deploy_whose_answer_was_lost_is_checked_not_sent_again() {
    let client = admin().await;
    let ns = namespace(&client, "deploy-lost").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    token_and_first_leaf(&client, &ns).await;
    sim.inject_deploy(scm_sim::Fault {
        certificate_id: None,
        times: 1,
        action: scm_sim::FaultAction::DropAfterPush,
    });
    let api = create_push(&client, &ns, "web", deploying_spec()).await;
    let cp = wait_for(&api, "web", Duration::from_secs(60), "Ready=True Deployed", |cp| {
        ready_is(cp, TRUE, "Deployed")
    })
    .await;
    let pushed = status(&cp).pushed_certificate_id.expect("pushed");
    assert_eq!(deploy_calls(&sim).len(), 1, "deployed once: {:#?}", sim.calls());
    let checks = sim
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/deployed-resources"))
        .count();
    assert_eq!(checks, 1, "the lost answer was checked once");
    for resource in RESOURCES {
        assert_eq!(sim.deploy_count(&pushed, resource), 1);
    }
}

/// Defect: a superseded import (or, with `deletionPolicy: Delete`, the object's imports) was deleted from SCM even
/// while deployed on a resource: bound by hand, by another tool, or by a resource the object no longer lists. SCM is
/// asked where each is deployed first; one in use is kept, announced, and looked at again later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_certificate_still_deployed_somewhere_is_never_deleted() {
    let client = admin().await;
    let ns = namespace(&client, "in-use").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    let (ca, _) = token_and_first_leaf(&client, &ns).await;
    let api = create_push(&client, &ns, "web", import_spec("web-tls")).await;
    let cp = wait_for(&api, "web", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let first = status(&cp).pushed_certificate_id.expect("pushed");
    // Someone bound it to an ELB certificate in the console.
    sim.mark_in_use(&first, "ELB", "ap-southeast-1", "bound-by-hand");

    let (crt2, key2, _) = ca.leaf();
    put_tls_secret(&client, &ns, "web-tls", &crt2, &key2).await;
    let cp = wait_for(&api, "web", T, "the superseded one kept as in use", |cp| {
        status(cp)
            .pending_deletions
            .iter()
            .any(|d| d.certificate_id == first && d.last_error.as_deref().is_some_and(|e| e.contains("bound-by-hand")))
    })
    .await;
    assert!(
        ready_is(&cp, TRUE, "Pushed"),
        "an in-use certificate does not fail the push"
    );
    let owed = &status(&cp).pending_deletions[0];
    assert_eq!(owed.failed_attempts, None, "in use is no failed attempt");
    assert!(imports_in(&sim).contains(&first));
    let events = wait_event(&client, &ns, "web", "Warning", "SupersededInUse").await;
    assert!(
        events
            .iter()
            .any(|(_, r, n)| r == "SupersededInUse" && n.contains("ELB bound-by-hand in ap-southeast-1"))
    );
    assert!(!sim.calls().iter().any(|c| c.method == "DELETE"), "nothing deleted");

    // deletionPolicy Delete: on deletion, the import in use stays in SCM and the Event says where it serves.
    let second = status(&cp).pushed_certificate_id.expect("pushed");
    sim.mark_in_use(&second, "ELB", "ap-southeast-1", "another-by-hand");
    let mut spec = import_spec("web-tls");
    spec.deletion_policy = Some(certpush_operator::crd::DeletionPolicy::Delete);
    api.patch(
        "web",
        &kube::api::PatchParams::apply("e2e").force(),
        &kube::api::Patch::Apply(serde_json::json!({
            "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "CertificatePush", "spec": spec,
        })),
    )
    .await
    .unwrap();
    wait_for(&api, "web", T, "the finalizer is on", |cp| !cp.finalizers().is_empty()).await;
    api.delete("web", &Default::default()).await.unwrap();
    crate::import::wait_gone(&api, "web").await;
    let left = imports_in(&sim);
    assert!(left.contains(&first) && left.contains(&second), "{left:?}");
    let events = events_for(&client, &ns, "web").await;
    assert!(
        events
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "CleanupSkipped" && n.contains("another-by-hand")),
        "{events:?}"
    );
}

/// `pushPolicy: Never` deploys without adding a copy to the service's certificate list; switching to `Always`
/// pushes once and deploys nothing again (the resource already holds the certificate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn deploy_only_adds_no_copy_and_switching_to_always_pushes_once() {
    let client = admin().await;
    let ns = namespace(&client, "deploy-only").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let spec = CertificatePushSpec {
        push_policy: Some(certpush_operator::crd::PushPolicy::Never),
        deploy: Some(DeploySpec::ids(&["elb-cert-1"])),
        ..spec(CERT, certpush_operator::crd::TargetService::Elb, "cn-north-4", "scm")
    };
    let api = create_push(&client, &ns, "only", spec).await;
    let cp = wait_for(&api, "only", T, "Ready=True Deployed", |cp| {
        ready_is(cp, TRUE, "Deployed")
    })
    .await;
    assert!(sim.pushes().is_empty(), "nothing pushed: {:#?}", sim.calls());
    assert_eq!(sim.deploy_count(CERT, "elb-cert-1"), 1);
    let st = status(&cp);
    assert_eq!((st.last_push_time, st.http_status), (None, None), "no push to report");
    assert!(st.pushed.is_some_and(|p| p.deploy_only));

    api.patch(
        "only",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"spec": {"pushPolicy": "Always"}})),
    )
    .await
    .unwrap();
    let cp = wait_for(&api, "only", T, "pushed as well", |cp| {
        ready_is(cp, TRUE, "Deployed") && status(cp).last_push_time.is_some()
    })
    .await;
    assert_eq!(sim.successful_pushes().len(), 1);
    assert_eq!(sim.deploy_count(CERT, "elb-cert-1"), 1, "not deployed again");
    assert!(status(&cp).pushed.is_some_and(|p| !p.deploy_only));
}

/// status.inUse says where SCM has the certificate pushed deployed, in every service: the resources this object
/// deployed to and one bound by hand; it is asked again after each push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn in_use_lists_every_resource_holding_the_certificate() {
    let client = admin().await;
    let ns = namespace(&client, "in-use-status").await;
    let sim = start_sim().await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    sim.mark_in_use(CERT, "WAF", "cn-north-4", "waf-by-hand");
    let op = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &["--in-use-refresh", "1h"]).await;
    let spec = CertificatePushSpec {
        deploy: Some(DeploySpec::ids(&["elb-cert-1"])),
        ..spec(CERT, certpush_operator::crd::TargetService::Elb, "cn-north-4", "scm")
    };
    let api = create_push(&client, &ns, "seen", spec).await;
    let cp = wait_for(&api, "seen", T, "inUse recorded", |cp| {
        ready_is(cp, TRUE, "Deployed") && status(cp).in_use.is_some()
    })
    .await;
    let in_use = status(&cp).in_use.unwrap();
    assert_eq!(in_use.certificate_id, CERT);
    let mut seen: Vec<String> = in_use
        .resources
        .iter()
        .map(|r| format!("{} {} {}", r.service, r.region, r.resource))
        .collect();
    seen.sort();
    assert_eq!(seen, ["ELB cn-north-4 elb-cert-1", "WAF cn-north-4 waf-by-hand"]);
    let asked = || {
        sim.calls()
            .into_iter()
            .filter(|c| c.path.ends_with("/deployed-resources"))
            .count()
    };
    assert_eq!(asked(), 1);

    // A re-push asks again; a resync within the hour does not.
    let annotate = serde_json::json!({"metadata": {"annotations": {"scm.certpush.dev/push-requested-at": "2026-12-06T09:00:00Z"}}});
    api.patch(
        "seen",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&annotate),
    )
    .await
    .unwrap();
    let cp = wait_for(&api, "seen", T, "pushed again", |cp| {
        status(cp).last_handled_push_request.is_some() && status(cp).in_use.is_some()
    })
    .await;
    assert_eq!(asked(), 2, "asked again after the push");
    assert_eq!(status(&cp).in_use.unwrap().resources.len(), 2);
    drop(op);
}
