//! Access keys given without `domainId` or `projectId` (issue 29): like Huawei's SDK, the operator asks IAM
//! (`GET /v3/auth/domains`, here the simulator through `--iam-endpoint`) once per key for the account id and signs
//! every SCM request with it as `X-Domain-Id`; without an IAM endpoint, or when IAM refuses, nothing reaches SCM.

use certpush_operator::crd::{CertificatePush, TargetService};
use certpush_operator::status::{FALSE, TRUE};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::harness::*;

/// Secret "scm" with the simulator's access key pair and nothing else: no domainId, no projectId.
async fn put_unscoped_access_key(client: &kube::Client, ns: &str) {
    let entries = [
        ("accessKey", scm_sim::DEMO_ACCESS_KEY),
        ("secretKey", scm_sim::DEMO_SECRET_KEY),
    ];
    put_secret_data(client, ns, "scm", &entries).await;
}

/// The calls that reached SCM (not IAM).
fn scm_calls(sim: &scm_sim::Sim) -> Vec<scm_sim::Call> {
    sim.calls().into_iter().filter(|c| !c.is_iam_domains()).collect()
}

/// One IAM question for the key, signed with it and no scope header, whatever number of objects use the key; every
/// SCM request carries the account id IAM answered. No key material reaches logs (trace level), Events or status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn an_access_key_without_domain_id_pushes_after_one_iam_question_for_every_object() {
    let client = admin().await;
    let ns = namespace(&client, "iam-domain").await;
    let sim = start_sim().await;
    // Another account id than the default one, so the header can only come from IAM's answer.
    let account = "5e1f0c0ffee0c0ffee0c0ffee0c0ffee";
    sim.set_domain(scm_sim::DEMO_ACCESS_KEY, account);
    let op = Operator::start_with_iam(&ns, &sim, "trace").await;
    put_unscoped_access_key(&client, &ns).await;
    let api = create_push(&client, &ns, "elb", spec(CERT, TargetService::Elb, "cn-north-4", "scm")).await;
    wait_for(&api, "elb", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let iam = sim.iam_calls();
    assert_eq!(iam.len(), 1, "{iam:#?}");
    assert_eq!(
        (
            iam[0].status,
            iam[0].signed_headers.as_deref(),
            iam[0].domain_id.as_deref()
        ),
        (200, Some("host;x-sdk-date"), None),
        "IAM is asked with the key itself and no scope, as the SDK does"
    );

    // A second object with the same key: IAM is not asked again.
    create_push(
        &client,
        &ns,
        "waf",
        spec(OTHER_CERT, TargetService::Waf, "cn-north-4", "scm"),
    )
    .await;
    wait_for(&api, "waf", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    assert_eq!(sim.iam_calls().len(), 1, "{:#?}", sim.iam_calls());
    let scm = scm_calls(&sim);
    assert_eq!(sim.successful_pushes().len(), 2, "{scm:#?}");
    for call in &scm {
        assert_eq!(call.domain_id.as_deref(), Some(account), "{call:#?}");
        assert_eq!(call.signed_headers.as_deref(), Some("host;x-domain-id;x-sdk-date"));
        assert!(
            call.at_ms >= iam[0].at_ms,
            "no SCM request before IAM answered: {call:#?}"
        );
    }
    op.wait_metric(
        r#"certpush_scm_requests_total{operation="iam_domains",code="200",error_code=""} 1"#,
        T,
    )
    .await;
    assert_no_secret_leak(&ns, &op, &[scm_sim::DEMO_ACCESS_KEY, scm_sim::DEMO_SECRET_KEY]).await;
}

/// Without an IAM endpoint (the simulator's URL is no Huawei site to derive one from) the object is
/// InvalidCredentials, its message names domainId, and nothing is sent anywhere; a domainId in the Secret lifts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn without_an_iam_endpoint_an_access_key_without_domain_id_is_invalid_credentials() {
    let client = admin().await;
    let ns = namespace(&client, "iam-none").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_unscoped_access_key(&client, &ns).await;
    let api = create_push(&client, &ns, "cdn", spec(CERT, TargetService::Cdn, "cn-north-4", "scm")).await;
    let cp = wait_for(&api, "cdn", T, "InvalidCredentials", |cp| {
        ready_is(cp, FALSE, "InvalidCredentials")
    })
    .await;
    let (_, message) = ready_message(&cp);
    assert!(
        message.contains("domainId") && message.contains("--iam-endpoint"),
        "{message}"
    );
    assert!(!message.contains(scm_sim::DEMO_ACCESS_KEY) && !message.contains(scm_sim::DEMO_SECRET_KEY));
    assert!(sim.calls().is_empty(), "nothing is sent: {:#?}", sim.calls());

    // The remedy the message names: the account id in the Secret.
    let domain = scm_sim::default_domain_id(scm_sim::DEMO_ACCESS_KEY);
    put_secret_data(
        &client,
        &ns,
        "scm",
        &[
            ("accessKey", scm_sim::DEMO_ACCESS_KEY),
            ("secretKey", scm_sim::DEMO_SECRET_KEY),
            ("domainId", &domain),
        ],
    )
    .await;
    wait_for(&api, "cdn", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    assert!(sim.iam_calls().is_empty());
    let pushes = sim.successful_pushes();
    assert_eq!(pushes.len(), 1, "{pushes:#?}");
    assert_eq!(pushes[0].domain_id.as_deref(), Some(domain.as_str()));
}

/// IAM refusing the key (401) is the verdict SCM would give: no SCM request is sent, the object stalls as
/// Unauthorized with a message that names domainId, and Secret edits that keep the key ask nobody again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn iam_refusing_an_access_key_without_domain_id_sends_no_push() {
    let client = admin().await;
    let ns = namespace(&client, "iam-401").await;
    let sim = start_sim().await;
    sim.set_iam_answer(scm_sim::IamAnswer::Unauthorized);
    let op = Operator::start_with_iam(&ns, &sim, "info").await;
    put_unscoped_access_key(&client, &ns).await;
    create_numbered(&client, &ns, "refused-", 0..3).await;
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    for name in numbered("refused-", 3) {
        let cp = wait_for(&api, &name, T, "Unauthorized", |cp| ready_is(cp, FALSE, "Unauthorized")).await;
        let (_, message) = ready_message(&cp);
        assert!(message.contains("domainId"), "{message}");
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for i in 0..3 {
        op.after_reconcile("stalled", label(&secrets, "scm", &i.to_string()))
            .await;
    }
    assert_eq!(
        sim.iam_calls().len(),
        1,
        "one question for three objects: {:#?}",
        sim.iam_calls()
    );
    assert!(scm_calls(&sim).is_empty(), "no SCM request: {:#?}", scm_calls(&sim));
}
