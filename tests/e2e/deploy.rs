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
    // The requests of the renewal: import, push, the check of where the new certificate already is, deploy (3
    // resources, one failed), the failed one alone, the in-use check before the delete, the delete.
    let renewal: Vec<String> = sim.calls()[before_renewal..]
        .iter()
        .map(|c| format!("{} {}", c.method, c.path.rsplit('/').next().unwrap_or_default()))
        .collect();
    eprintln!("requests of the renewal: {renewal:?}");
    assert_eq!(renewal.len(), 7, "{renewal:?}");
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
    assert_eq!(
        checks, 2,
        "asked before the first deploy, and the lost answer checked once"
    );
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
    // Once before the first deploy (is it there already?), once after the push for status.inUse.
    assert_eq!(asked(), 2);

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
    assert_eq!(
        asked(),
        3,
        "asked again after the push (the resource holds it: no check before a deploy)"
    );
    assert_eq!(status(&cp).in_use.unwrap().resources.len(), 2);
    drop(op);
}

/// `certificateId` pushed to ELB and deployed onto `resources`.
fn elb_deploy_spec(resources: &[&str]) -> CertificatePushSpec {
    CertificatePushSpec {
        deploy: Some(DeploySpec::ids(resources)),
        ..spec(CERT, certpush_operator::crd::TargetService::Elb, "cn-north-4", "scm")
    }
}

/// One deploy request was sent, and each of `resources` got the certificate (and was billed) once.
fn deployed_once(sim: &scm_sim::Sim, resources: &[&str]) {
    assert_eq!(calls_to(sim, "/deploy"), 1, "{:#?}", sim.calls());
    for resource in resources {
        assert_eq!(sim.deploy_count(CERT, resource), 1, "{resource} billed once");
    }
}

fn calls_to(sim: &scm_sim::Sim, suffix: &str) -> usize {
    sim.calls().iter().filter(|c| c.path.ends_with(suffix)).count()
}

/// Defect: the status written between the push and its deploy (the deploy's intent, saved with a plain write) said
/// Ready=True `Pushed` while the deploy was in flight, then flipped to `DeployFailed`: `kubectl wait`, Argo CD and
/// kstatus reported success before anything served. Every status write now settles its conditions from the whole
/// status, so Ready is never True before Deployed is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn ready_is_never_true_before_the_deploy_lands() {
    let client = admin().await;
    let ns = namespace(&client, "deploy-ready").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    // A slow deploy (3 s) that fails on the resource, then succeeds on its retry.
    sim.inject_deploy(scm_sim::Fault {
        certificate_id: None,
        times: 1,
        action: scm_sim::FaultAction::Delay { ms: 3000 },
    });
    sim.fail_deploy("elb-cert-1", "ELB.8902", 1);
    let api = create_push(&client, &ns, "slow", elb_deploy_spec(&["elb-cert-1"])).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let cp = api.get("slow").await.unwrap();
        let ready = condition(&cp, "Ready");
        let deployed = condition(&cp, "Deployed");
        if seen.last() != Some(&ready) {
            seen.push(ready.clone());
        }
        if deployed.as_ref().is_some_and(|(s, _)| s == TRUE) {
            assert_eq!(ready, Some((TRUE.into(), "Deployed".into())));
            break;
        }
        assert!(
            ready.as_ref().is_none_or(|(s, _)| s != TRUE),
            "Ready=True before the deploy landed: {ready:?}, Deployed {deployed:?}; seen {seen:?}"
        );
        assert!(std::time::Instant::now() < deadline, "never deployed; seen {seen:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("Ready as polled: {seen:?}");
    assert!(
        seen.iter()
            .any(|r| r.as_ref().is_some_and(|(_, reason)| reason == "DeployFailed")),
        "the failed deploy was seen: {seen:?}"
    );
    assert_eq!(sim.deploy_count(CERT, "elb-cert-1"), 1);
}

/// Defects: a deploy answered 504 by the gateway (`APIGW.0201`: it had landed) was sent, and billed, again; and
/// SCM's `is_error` (a region it could not read) was dropped, so an unreadable region counted as "not deployed".
/// Now the 504 is an unknown outcome, checked with deployed-resources; an answer with an unreadable region is
/// unknown too (Warning `InUseUnknown` naming it), so nothing is deployed until SCM can say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_504_after_the_deploy_landed_and_an_unreadable_region_never_deploy_twice() {
    let client = admin().await;
    let ns = namespace(&client, "deploy-504").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    sim.inject_deploy(scm_sim::Fault {
        certificate_id: None,
        times: 1,
        action: scm_sim::FaultAction::LandThenGatewayTimeout { ms: 0 },
    });
    let api = create_push(&client, &ns, "gw", elb_deploy_spec(&["elb-cert-1", "elb-cert-2"])).await;
    wait_for(&api, "gw", T, "the deploy answered 504", |cp| {
        status(cp)
            .deployments
            .iter()
            .any(|d| d.failure_info.as_deref().is_some_and(|f| f.contains("504")))
    })
    .await;
    // While the gateway's answer is being checked, SCM cannot read the region.
    sim.fail_region_read("cn-north-4");
    let events = wait_event(&client, &ns, "gw", "Warning", "InUseUnknown").await;
    assert!(
        events
            .iter()
            .any(|(_, r, n)| r == "InUseUnknown" && n.contains("ELB in cn-north-4")),
        "{events:?}"
    );
    let cp = api.get("gw").await.unwrap();
    assert!(ready_is(&cp, FALSE, "DeployFailed"), "{:?}", cp.status);
    assert_eq!(calls_to(&sim, "/deploy"), 1, "not deployed again while unknown");
    sim.heal_region_read("cn-north-4");
    wait_for(&api, "gw", Duration::from_secs(60), "Ready=True Deployed", |cp| {
        ready_is(cp, TRUE, "Deployed")
    })
    .await;
    deployed_once(&sim, &["elb-cert-1", "elb-cert-2"]);
}

/// Defect: a first deploy was sent without asking where the certificate already is, so a re-created object
/// (`kubectl replace --force`, an Argo CD replace, a restore without status), a resource listed again, or a second
/// object naming the same resource deployed (and billed) it again. SCM's deployed-resources (free) is asked first,
/// in one request for all resources of the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_recreated_object_or_a_resource_listed_again_is_not_deployed_twice() {
    let client = admin().await;
    let ns = namespace(&client, "deploy-again").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    // SCM names a deployed resource "ID:name" here (the SDK's description of resource_id): it still matches.
    sim.set_resource_id_with_name(true);
    let api = create_push(&client, &ns, "web", elb_deploy_spec(&["elb-cert-1", "elb-cert-2"])).await;
    wait_for(&api, "web", T, "Ready=True Deployed", |cp| {
        ready_is(cp, TRUE, "Deployed")
    })
    .await;
    assert_eq!(calls_to(&sim, "/deploy"), 1);

    // Re-created under the same name, with no status.
    api.delete("web", &Default::default()).await.unwrap();
    crate::import::wait_gone(&api, "web").await;
    let api = create_push(&client, &ns, "web", elb_deploy_spec(&["elb-cert-1", "elb-cert-2"])).await;
    wait_for(&api, "web", T, "Ready=True Deployed again", |cp| {
        ready_is(cp, TRUE, "Deployed")
    })
    .await;
    // A second object naming one of the same resources.
    let other = create_push(&client, &ns, "other", elb_deploy_spec(&["elb-cert-2"])).await;
    wait_for(&other, "other", T, "Ready=True Deployed", |cp| {
        ready_is(cp, TRUE, "Deployed")
    })
    .await;
    // A resource dropped from the spec and listed again.
    let set = |resources: &[&str]| serde_json::json!({"spec": {"deploy": {"resources": resources.iter().map(|r| serde_json::json!({"id": r})).collect::<Vec<_>>()}}});
    let patch = |value| async {
        api.patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(value),
        )
        .await
        .unwrap()
    };
    patch(set(&["elb-cert-1"])).await;
    wait_for(&api, "web", T, "one resource left", |cp| {
        status(cp).deployments.len() == 1
    })
    .await;
    patch(set(&["elb-cert-1", "elb-cert-2"])).await;
    let cp = wait_for(&api, "web", T, "both deployed again", |cp| {
        status(cp).deployments.len() == 2 && ready_is(cp, TRUE, "Deployed")
    })
    .await;
    assert!(
        status(&cp)
            .deployments
            .iter()
            .all(|d| d.certificate_id.as_deref() == Some(CERT))
    );
    deployed_once(&sim, &["elb-cert-1", "elb-cert-2"]);
}

/// WAF deploys name their enterprise project (SCM refuses them without it): the API server refuses the object
/// with a message that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_waf_deploy_without_its_enterprise_project_is_refused_on_apply() {
    let client = admin().await;
    let ns = namespace(&client, "deploy-waf").await;
    let api: kube::Api<CertificatePush> = kube::Api::namespaced(client.clone(), &ns);
    let waf = |enterprise_project: Option<&str>| {
        let mut resource = serde_json::json!({"id": "waf-cert-1", "type": "premium"});
        if let Some(ep) = enterprise_project {
            resource["enterpriseProjectId"] = ep.into();
        }
        serde_json::json!({
            "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "CertificatePush", "metadata": {"name": "waf"},
            "spec": {"certificateId": CERT, "targetService": "WAF", "targetProject": "cn-north-4",
                     "credentialsRef": {"name": "scm"}, "deploy": {"resources": [resource]}},
        })
    };
    let params = kube::api::PatchParams::apply("e2e");
    let refused = api
        .patch("waf", &params, &kube::api::Patch::Apply(waf(None)))
        .await
        .expect_err("refused without enterpriseProjectId");
    assert!(refused.to_string().contains("enterpriseProjectId"), "{refused}");
    api.patch("waf", &params, &kube::api::Patch::Apply(waf(Some("0"))))
        .await
        .expect("accepted with the default enterprise project");
}
