//! Shared accounts: a ClusterSCMAccount serves the namespaces its conditions allow and no other, an SCMAccount
//! serves its own namespace, each account talks to its own endpoint at its own rate, an account that appears later
//! is waited for, and a key change in an account's Secret re-sends a refused push once. Every operator here watches
//! all namespaces under the shipped RBAC, with a controller name of its own so it leaves other tests' objects alone.

use std::time::{Duration, Instant};

use certpush_operator::crd::{
    AccountKind, AccountRef, AccountStatus, CertificatePush, CertificatePushSpec, ClusterSCMAccount, SCMAccount,
    TargetService,
};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use scm_sim::Sim;
use serde_json::json;

use crate::harness::*;

/// A spec pushing `cert` to WAF in `project` with the account `reference`, handled by the operator named `controller`.
fn with_account(cert: &str, project: &str, reference: AccountRef, controller: &str) -> CertificatePushSpec {
    let mut spec = spec(cert, TargetService::Waf, project, "unused");
    spec.credentials_ref = None;
    spec.account_ref = Some(reference);
    spec.controller_name = Some(controller.to_owned());
    spec
}

fn cluster_account(name: &str) -> AccountRef {
    AccountRef {
        kind: AccountKind::Cluster,
        name: name.to_owned(),
    }
}

fn account(name: &str) -> AccountRef {
    AccountRef {
        kind: AccountKind::Namespaced,
        name: name.to_owned(),
    }
}

/// Account settings on `endpoint` with the Secret `secret`, plus `extra` fields.
fn settings(endpoint: &str, secret: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({"endpoint": endpoint, "credentialsRef": {"name": secret}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

async fn create_cluster_account(client: &Client, name: &str, spec: serde_json::Value) -> Api<ClusterSCMAccount> {
    let api: Api<ClusterSCMAccount> = Api::all(client.clone());
    let object = serde_json::from_value(json!({
        "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "ClusterSCMAccount",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &object)
        .await
        .expect("create ClusterSCMAccount");
    api
}

async fn create_account(client: &Client, ns: &str, name: &str, spec: serde_json::Value) -> Api<SCMAccount> {
    let api: Api<SCMAccount> = Api::namespaced(client.clone(), ns);
    let object = serde_json::from_value(json!({
        "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "SCMAccount",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &object)
        .await
        .expect("create SCMAccount");
    api
}

/// Waits until the account's status passes `check`.
async fn wait_account<K>(api: &Api<K>, name: &str, what: &str, check: impl Fn(&AccountStatus) -> bool) -> AccountStatus
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    let deadline = Instant::now() + T;
    loop {
        let object = api.get(name).await.expect("get account");
        let status: AccountStatus = serde_json::to_value(&object)
            .ok()
            .and_then(|v| serde_json::from_value(v["status"].clone()).ok())
            .unwrap_or_default();
        if check(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: timed out waiting for {what}; status: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn account_ready(status: &AccountStatus) -> Option<(String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Pushes to `project` the simulator received.
fn pushes_to(sim: &Sim, project: &str) -> usize {
    sim.pushes()
        .iter()
        .filter(|c| c.body["target_project"] == project)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_cluster_account_serves_the_namespaces_it_allows_and_no_other() {
    let client = admin().await;
    let ops = namespace(&client, "acct-ops").await;
    let team_a = namespace(&client, "acct-team-a").await;
    let team_b = namespace(&client, "acct-team-b").await;
    let sim = start_sim().await;
    let controller = format!("c-{ops}");
    let op = Operator::start_all_namespaces(
        &sim,
        &["--controller-name", &controller, "--cluster-resource-namespace", &ops],
    )
    .await;
    // The platform team's Secret lives beside the operator; the application namespaces hold none.
    put_secret(&client, &ops, "platform-scm", GOOD_TOKEN).await;
    let name = format!("shared-{ops}");
    let accounts = create_cluster_account(
        &client,
        &name,
        json!({"endpoint": sim.url(), "credentialsRef": {"name": "platform-scm"},
               "conditions": [{"namespaces": [team_a]}]}),
    )
    .await;

    let a = create_push(
        &client,
        &team_a,
        "web",
        with_account(CERT, "proj-a", cluster_account(&name), &controller),
    )
    .await;
    let b = create_push(
        &client,
        &team_b,
        "web",
        with_account(CERT, "proj-b", cluster_account(&name), &controller),
    )
    .await;
    wait_for(&a, "web", T, "Ready=True", |cp| ready_is(cp, "True", "Pushed")).await;
    let refused = wait_for(&b, "web", T, "AccountNotAllowed", |cp| {
        ready_is(cp, "False", "AccountNotAllowed")
    })
    .await;
    let (_, message) = ready_message(&refused);
    assert!(message.contains(&name) && message.contains(&team_b), "{message}");
    assert_eq!(pushes_to(&sim, "proj-a"), 1);
    assert_eq!(
        pushes_to(&sim, "proj-b"),
        0,
        "nothing is sent for a namespace the account does not allow"
    );
    let shown = wait_account(&accounts, &name, "Ready with one user", |s| {
        account_ready(s) == Some(("True".into(), "CredentialsFound".into())) && s.used_by == Some(2)
    })
    .await;
    assert_eq!(shown.observed_generation, Some(1));

    // An SCMAccount of team-b's own serves team-b.
    put_secret(&client, &team_b, "team-scm", GOOD_TOKEN).await;
    create_account(&client, &team_b, "own", settings(&sim.url(), "team-scm", json!({}))).await;
    create_push(
        &client,
        &team_b,
        "own",
        with_account(CERT, "proj-b-own", account("own"), &controller),
    )
    .await;
    wait_for(&b, "own", T, "Ready=True", |cp| ready_is(cp, "True", "Pushed")).await;
    assert_eq!(pushes_to(&sim, "proj-b"), 0);

    // Allowing team-b by label takes effect without a restart: the refused object is pushed, once.
    let label = json!({"metadata": {"labels": {"scm-access": "shared"}}});
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .patch(&team_b, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    let allow = json!({"spec": {"conditions": [{"namespaces": [team_a]},
                                               {"namespaceSelector": {"matchLabels": {"scm-access": "shared"}}}]}});
    accounts
        .patch(&name, &PatchParams::default(), &Patch::Merge(&allow))
        .await
        .unwrap();
    wait_for(&b, "web", T, "Ready=True", |cp| ready_is(cp, "True", "Pushed")).await;
    assert_eq!(pushes_to(&sim, "proj-b"), 1);
    assert_no_secret_leak(&team_b, &op, &[GOOD_TOKEN]).await;
    accounts.delete(&name, &DeleteParams::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn an_account_named_before_it_exists_is_waited_for_and_one_field_of_two_is_refused() {
    let client = admin().await;
    let ns = namespace(&client, "acct-later").await;
    let sim = start_sim().await;
    let controller = format!("c-{ns}");
    let _op = Operator::start_all_namespaces(&sim, &["--controller-name", &controller]).await;
    let api = create_push(
        &client,
        &ns,
        "web",
        with_account(CERT, "proj-later", account("later"), &controller),
    )
    .await;
    let waiting = wait_for(&api, "web", T, "AccountNotFound", |cp| {
        ready_is(cp, "False", "AccountNotFound")
    })
    .await;
    assert!(
        ready_message(&waiting).1.contains("\"later\""),
        "{:?}",
        ready_message(&waiting)
    );
    assert!(
        sim.calls().is_empty(),
        "nothing is sent without an account: {:?}",
        sim.calls()
    );

    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    create_account(&client, &ns, "later", settings(&sim.url(), "scm", json!({}))).await;
    wait_for(&api, "web", T, "Ready=True", |cp| ready_is(cp, "True", "Pushed")).await;
    assert_eq!(pushes_to(&sim, "proj-later"), 1);

    // Exactly one of credentialsRef and accountRef, refused by the API server with a message that says so.
    let mut both = with_account(CERT, "proj-both", account("later"), &controller);
    both.credentials_ref = spec(CERT, TargetService::Waf, "x", "scm").credentials_ref;
    let refused = api
        .create(&PostParams::default(), &CertificatePush::new("both", both))
        .await
        .expect_err("both is refused");
    let said = refused.to_string();
    assert!(
        said.contains("set exactly one of credentialsRef") && said.contains("accountRef"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn two_accounts_on_two_endpoints_get_their_own_requests_at_their_own_rates() {
    let client = admin().await;
    let ns = namespace(&client, "acct-two").await;
    let (slow_sim, fast_sim) = (start_sim().await, start_sim().await);
    let controller = format!("c-{ns}");
    let _op = Operator::start_all_namespaces(&slow_sim, &["--controller-name", &controller]).await;
    // One token at two sites: still two accounts' traffic, each at its own rate.
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    create_account(
        &client,
        &ns,
        "slow",
        settings(&slow_sim.url(), "scm", json!({"rateLimit": {"qps": 1, "burst": 1}})),
    )
    .await;
    create_account(&client, &ns, "fast", settings(&fast_sim.url(), "scm", json!({}))).await;
    let n = 6;
    for i in 0..n {
        create_push(
            &client,
            &ns,
            &format!("slow{i}"),
            with_account(CERT, &format!("slow{i}"), account("slow"), &controller),
        )
        .await;
        create_push(
            &client,
            &ns,
            &format!("fast{i}"),
            with_account(CERT, &format!("fast{i}"), account("fast"), &controller),
        )
        .await;
    }
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    wait_numbered_pushed(&api, "fast", 0..n, T).await;
    let fast_done = started.elapsed();
    let slow_ready = |cps: &[CertificatePush]| cps.iter().filter(|cp| ready_is(cp, "True", "Pushed")).count();
    let listed = api.list(&Default::default()).await.unwrap().items;
    let slow: Vec<CertificatePush> = listed
        .into_iter()
        .filter(|cp| cp.metadata.name.as_deref().unwrap_or("").starts_with("slow"))
        .collect();
    assert!(
        slow_ready(&slow) < n,
        "the slow account (1 request/s, 7 requests) cannot be done when the fast one is ({fast_done:?})"
    );
    wait_numbered_pushed(&api, "slow", 0..n, Duration::from_secs(60)).await;
    for i in 0..n {
        assert_eq!(pushes_to(&slow_sim, &format!("slow{i}")), 1);
        assert_eq!(pushes_to(&fast_sim, &format!("fast{i}")), 1);
        assert_eq!(
            pushes_to(&slow_sim, &format!("fast{i}")),
            0,
            "each account's requests go to its own endpoint"
        );
        assert_eq!(pushes_to(&fast_sim, &format!("slow{i}")), 0);
    }
    // At 1 request per second with a burst of 1, the slow account's requests are spaced by about a second.
    let mut at: Vec<u64> = slow_sim.calls().iter().map(|c| c.at_ms).collect();
    at.sort_unstable();
    let span = at.last().unwrap() - at.first().unwrap();
    assert!(
        span >= 1000 * (at.len() as u64 - 2),
        "{} requests in {span} ms",
        at.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_key_change_in_an_accounts_secret_resends_a_refused_push_once() {
    let client = admin().await;
    let ns = namespace(&client, "acct-key").await;
    let sim = start_sim().await;
    let controller = format!("c-{ns}");
    let _op = Operator::start_all_namespaces(&sim, &["--controller-name", &controller]).await;
    put_secret(&client, &ns, "scm", BAD_TOKEN).await;
    let accounts = create_account(&client, &ns, "team", settings(&sim.url(), "scm", json!({}))).await;
    let api = create_push(
        &client,
        &ns,
        "web",
        with_account(CERT, "proj-key", account("team"), &controller),
    )
    .await;
    let other = create_push(
        &client,
        &ns,
        "api",
        with_account(OTHER_CERT, "proj-key2", account("team"), &controller),
    )
    .await;
    wait_for(&api, "web", T, "Unauthorized", |cp| {
        ready_is(cp, "False", "Unauthorized")
    })
    .await;
    wait_for(&other, "api", T, "Unauthorized", |cp| {
        ready_is(cp, "False", "Unauthorized")
    })
    .await;
    let refused_calls = sim.calls().len();
    assert!(
        refused_calls <= 2,
        "a refused credential is not sent again: {:?}",
        sim.calls()
    );
    wait_account(&accounts, "team", "Unauthorized", |s| {
        account_ready(s) == Some(("False".into(), "Unauthorized".into()))
    })
    .await;

    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    wait_for(&api, "web", T, "Ready=True", |cp| ready_is(cp, "True", "Pushed")).await;
    wait_for(&other, "api", T, "Ready=True", |cp| ready_is(cp, "True", "Pushed")).await;
    // The bad key was refused on the read before the push; the new key pushes each object once.
    assert_eq!(pushes_to(&sim, "proj-key"), 1);
    assert_eq!(pushes_to(&sim, "proj-key2"), 1);
    assert_eq!(sim.pushes().len(), sim.successful_pushes().len(), "{:?}", sim.pushes());
    wait_account(&accounts, "team", "Ready", |s| {
        account_ready(s) == Some(("True".into(), "CredentialsFound".into()))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_secret_of_another_purpose_is_never_used_as_credentials() {
    let client = admin().await;
    let ns = namespace(&client, "acct-type").await;
    let sim = start_sim().await;
    let op = Operator::start(&ns, &sim, "info").await;
    // A TLS Secret (what cert-manager writes) whose data also happens to hold a token.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let tls = serde_json::from_value(json!({
        "metadata": {"name": "web-tls"}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "x", "tls.key": "y", "token": GOOD_TOKEN},
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &tls).await.unwrap();
    let api = create_push(
        &client,
        &ns,
        "web",
        spec(CERT, TargetService::Waf, "proj-type", "web-tls"),
    )
    .await;
    let refused = wait_for(&api, "web", T, "InvalidCredentials", |cp| {
        ready_is(cp, "False", "InvalidCredentials")
    })
    .await;
    assert!(
        ready_message(&refused).1.contains("kubernetes.io/tls"),
        "{:?}",
        ready_message(&refused)
    );
    assert!(sim.calls().is_empty(), "{:?}", sim.calls());
    let (ok, shown) = kubectl(&["get", "cpush,events.events.k8s.io", "-n", &ns, "-o", "yaml"]).await;
    assert!(ok && !shown.contains(GOOD_TOKEN), "{shown}");
    assert!(!op.logs().contains(GOOD_TOKEN));
}

/// An account whose Secret holds an access key without domainId learns it from the account's iamEndpoint once, and
/// an account's domainId replaces the Secret's (no IAM question at all); every SCM request carries the scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn an_accounts_access_key_gets_its_scope_from_the_account_or_its_iam() {
    let client = admin().await;
    let ns = namespace(&client, "acct-iam").await;
    let sim = start_sim().await;
    let controller = format!("c-{ns}");
    let _op = Operator::start_all_namespaces(&sim, &["--controller-name", &controller]).await;
    let unscoped = [
        ("accessKey", scm_sim::DEMO_ACCESS_KEY),
        ("secretKey", scm_sim::DEMO_SECRET_KEY),
    ];
    put_secret_data(&client, &ns, "keys", &unscoped).await;
    let learnt = scm_sim::default_domain_id(scm_sim::DEMO_ACCESS_KEY);
    create_account(
        &client,
        &ns,
        "asks",
        settings(&sim.url(), "keys", json!({"iamEndpoint": sim.url()})),
    )
    .await;
    create_account(
        &client,
        &ns,
        "told",
        settings(&sim.url(), "keys", json!({"domainId": learnt})),
    )
    .await;
    let api = create_push(
        &client,
        &ns,
        "asks",
        with_account(CERT, "proj-asks", account("asks"), &controller),
    )
    .await;
    wait_for(&api, "asks", T, "Ready=True", |cp| ready_is(cp, "True", "Pushed")).await;
    assert_eq!(sim.iam_calls().len(), 1, "{:#?}", sim.iam_calls());
    create_push(
        &client,
        &ns,
        "told",
        with_account(CERT, "proj-told", account("told"), &controller),
    )
    .await;
    wait_for(&api, "told", T, "Ready=True", |cp| ready_is(cp, "True", "Pushed")).await;
    assert_eq!(sim.iam_calls().len(), 1, "the account's domainId needs no question");
    let scm: Vec<_> = sim.calls().into_iter().filter(|c| !c.is_iam_domains()).collect();
    assert!(!scm.is_empty());
    for call in scm {
        assert_eq!(call.domain_id.as_deref(), Some(learnt.as_str()), "{call:?}");
    }
}

/// The default install's RBAC: the operator reads Secrets only in its own namespace (--secret-namespace, what the
/// chart passes), where ClusterSCMAccounts keep theirs. Under an identity with exactly the shipped ClusterRole and a
/// Role there, a team pushes through a ClusterSCMAccount, and an object naming a Secret of its own namespace is told
/// why it is not read, with nothing sent; the operator stays ready (it watches no Secret it may not read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn the_default_rbac_reads_secrets_only_in_the_operators_namespace() {
    let client = admin().await;
    let ops = namespace(&client, "acct-rbac-ops").await;
    let team = namespace(&client, "acct-rbac-team").await;
    let sim = start_sim().await;
    let user = format!("system:serviceaccount:{ops}:narrow");
    let rbac = format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "narrow-{ops}"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: certpush-operator}}
subjects: [{{kind: User, name: "{user}"}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: secrets, namespace: "{ops}"}}
rules: [{{apiGroups: [""], resources: [secrets], verbs: [get, list, watch, create]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: secrets, namespace: "{ops}"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: secrets}}
subjects: [{{kind: User, name: "{user}"}}]
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rbac.yaml");
    std::fs::write(&file, rbac).unwrap();
    let (ok, out) = kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    // The shipped ClusterRole itself grants no Secret anywhere.
    let (_, can) = kubectl(&["auth", "can-i", "get", "secrets", "-n", &team, "--as", &user]).await;
    assert_eq!(can.trim(), "no", "the default ClusterRole reads no Secret of the teams");

    let controller = format!("c-{ops}");
    let kubeconfig = impersonating_kubeconfig(&user, dir.path());
    let op = Operator::start_all_namespaces_as(
        &sim,
        kubeconfig,
        &[
            "--controller-name",
            &controller,
            "--cluster-resource-namespace",
            &ops,
            "--secret-namespace",
            &ops,
            "--digest-key-namespace",
            &ops,
        ],
    )
    .await;
    put_secret(&client, &ops, "platform-scm", GOOD_TOKEN).await;
    put_secret(&client, &team, "own", GOOD_TOKEN).await;
    let name = format!("narrow-{ops}");
    let accounts = create_cluster_account(
        &client,
        &name,
        json!({"endpoint": sim.url(), "credentialsRef": {"name": "platform-scm"}, "conditions": [{"namespaces": [team]}]}),
    )
    .await;
    let api = create_push(
        &client,
        &team,
        "shared",
        with_account(CERT, "proj-narrow", cluster_account(&name), &controller),
    )
    .await;
    wait_for(&api, "shared", T, "Ready=True", |cp| ready_is(cp, "True", "Pushed")).await;
    let mut own = spec(CERT, TargetService::Waf, "proj-own", "own");
    own.controller_name = Some(controller.clone());
    create_push(&client, &team, "own", own).await;
    let refused = wait_for(&api, "own", T, "CredentialsNotFound", |cp| {
        ready_is(cp, "False", "CredentialsNotFound")
    })
    .await;
    let (_, message) = ready_message(&refused);
    assert!(
        message.contains("--secret-namespace") && message.contains(&team),
        "{message}"
    );
    assert_eq!(pushes_to(&sim, "proj-own"), 0);
    op.wait_probe("/readyz", 200).await;
    // The API server's refusal text (a port number may contain "403").
    assert!(
        !op.logs().contains("is forbidden"),
        "no request the identity may not make: {}",
        op.logs()
    );
    accounts.delete(&name, &DeleteParams::default()).await.unwrap();
}

/// An account moved to another endpoint (the right site) lifts an Unauthorized stall of its objects by itself: the
/// credential refused at one endpoint is a new one at another. Before accounts, that took an annotation on every
/// object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn moving_an_account_to_another_endpoint_lifts_its_unauthorized_stall() {
    let client = admin().await;
    let ns = namespace(&client, "acct-move").await;
    // The wrong site knows no such token; the right one does.
    let wrong = Sim::start(
        scm_sim::SimConfig {
            tokens: Vec::new(),
            ..scm_sim::SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let right = start_sim().await;
    let controller = format!("c-{ns}");
    let _op = Operator::start_all_namespaces(&wrong, &["--controller-name", &controller]).await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let accounts = create_account(&client, &ns, "team", settings(&wrong.url(), "scm", json!({}))).await;
    let api = create_push(
        &client,
        &ns,
        "web",
        with_account(CERT, "proj-move", account("team"), &controller),
    )
    .await;
    wait_for(&api, "web", T, "Unauthorized", |cp| {
        ready_is(cp, "False", "Unauthorized")
    })
    .await;
    assert_eq!(wrong.calls().len(), 1, "{:?}", wrong.calls());

    let moved = json!({"spec": {"endpoint": right.url()}});
    accounts
        .patch("team", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .unwrap();
    wait_for(&api, "web", T, "Ready=True", |cp| ready_is(cp, "True", "Pushed")).await;
    assert_eq!(pushes_to(&right, "proj-move"), 1);
    assert_eq!(wrong.calls().len(), 1, "nothing more to the wrong site");
}
