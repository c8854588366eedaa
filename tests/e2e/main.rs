//! End-to-end suite: a real kube-apiserver + etcd (tests/e2e/control-plane.sh), the real operator binary
//! running with only its shipped RBAC, and the SCM simulator over HTTP.
//!
//! These tests are `#[ignore]`d so plain `cargo test` stays hermetic; `make test` starts the control plane
//! and runs them with `--include-ignored`.

mod harness;

use std::time::Duration;

use certpush_operator::crd::{CertificatePush, TargetService};
use certpush_operator::status::{self, FALSE, TRUE};
use harness::*;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use scm_sim::{Fault, FaultAction, Sim, SimConfig};
use serde_json::json;
use sha2::{Digest, Sha256};

const T: Duration = Duration::from_secs(30);

fn sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn admission_rejects_invalid_specs() {
    let client = admin().await;
    let ns = namespace(&client, "admission").await;
    let ar = ApiResource::erase::<CertificatePush>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let valid = json!({"certificateId": CERT, "targetService": "WAF", "targetProject": "cn-north-4", "credentialsRef": {"name": "scm"}});
    let with = |field: &str, value: serde_json::Value| {
        let mut s = valid.clone();
        if value.is_null() {
            s.as_object_mut().unwrap().remove(field);
        } else {
            s[field] = value;
        }
        s
    };
    let cases = [
        ("15-char id", with("certificateId", json!("scs155419213115"))),
        ("17-char id", with("certificateId", json!("scs15541921311500"))),
        ("id with /", with("certificateId", json!("scs155419213/150"))),
        ("id with .", with("certificateId", json!("scs155419213.150"))),
        ("lowercase service", with("targetService", json!("waf"))),
        ("unknown service", with("targetService", json!("SLB"))),
        ("empty project", with("targetProject", json!(""))),
        ("256-char project", with("targetProject", json!("p".repeat(256)))),
        (
            "missing credentialsRef",
            with("credentialsRef", serde_json::Value::Null),
        ),
        (
            "neither certificateId nor sourceSecretRef",
            with("certificateId", serde_json::Value::Null),
        ),
        (
            "both certificateId and sourceSecretRef",
            with("sourceSecretRef", json!({"name": "web-tls"})),
        ),
        ("empty sourceSecretRef name", {
            let mut s = with("certificateId", serde_json::Value::Null);
            s["sourceSecretRef"] = json!({"name": ""});
            s
        }),
    ];
    for (i, (what, spec)) in cases.iter().enumerate() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "CertificatePush",
            "metadata": {"name": format!("bad-{i}")}, "spec": spec,
        }))
        .unwrap();
        match api.create(&PostParams::default(), &obj).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422, "{what}: {s:?}");
                if what.contains("certificateId and") || what.contains("nor") {
                    assert!(
                        s.message.contains("one and only one schema (oneOf)"),
                        "{what}: {}",
                        s.message
                    );
                }
            }
            other => panic!("{what}: the API server accepted an invalid object: {other:?}"),
        }
    }
    // The same template is accepted when valid, so the rejections above are about the fields.
    let ok: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "CertificatePush",
        "metadata": {"name": "good"}, "spec": with("targetProject", json!("p".repeat(255))),
    }))
    .unwrap();
    let created = api
        .create(&PostParams::default(), &ok)
        .await
        .expect("valid object accepted");
    assert_eq!(
        created.data["spec"]["credentialsRef"]["tokenKey"], "token",
        "schema default applied"
    );
    let mut import = with("certificateId", serde_json::Value::Null);
    import["sourceSecretRef"] = json!({"name": "web-tls"});
    import["importPolicy"] = json!({"retainSuperseded": true});
    let ok: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "CertificatePush",
        "metadata": {"name": "import"}, "spec": import,
    }))
    .unwrap();
    api.create(&PostParams::default(), &ok)
        .await
        .expect("an import spec is accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn happy_path_pushes_once_and_reports_ready() {
    let client = admin().await;
    let ns = namespace(&client, "happy").await;
    let sim = start_sim().await;
    let op = Operator::start(&ns, &sim, "trace").await;
    put_secret(&client, &ns, "scm", &format!("  {GOOD_TOKEN}\n")).await;
    let api = create_push(&client, &ns, "waf", spec(CERT, TargetService::Waf, "cn-north-4", "scm")).await;

    let (ok, out) = kubectl(&["wait", "-n", &ns, "--for=condition=Ready", "cpush/waf", "--timeout=30s"]).await;
    assert!(ok, "kubectl wait: {out}\n{}", op.logs());
    let cp = wait_for(&api, "waf", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let st = status(&cp);
    assert_eq!(st.http_status, Some(204));
    assert_eq!(st.observed_generation, cp.metadata.generation);
    assert_eq!(st.pushed_generation, cp.metadata.generation);
    assert!(st.last_push_time.is_some() && st.request_id.is_some());
    assert_eq!((st.error_code, st.error_message), (None, None));
    assert_eq!(condition(&cp, "Stalled"), None);
    assert_eq!(condition(&cp, "Reconciling"), None);

    let pushes = sim.pushes();
    assert_eq!(pushes.len(), 1, "exactly one push: {pushes:#?}");
    let p = &pushes[0];
    assert_eq!(
        (p.method.as_str(), p.path.as_str()),
        ("POST", "/v3/scm/certificates/scs1554192131150/push")
    );
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        p.token_sha256.as_deref(),
        Some(sha256(GOOD_TOKEN).as_str()),
        "trimmed token sent"
    );
    assert_eq!(p.body, json!({"target_project": "cn-north-4", "target_service": "WAF"}));
    assert_eq!(p.status, 204);
    assert_eq!(st.request_id.as_deref(), Some(p.request_id.as_str()));

    wait_event(&client, &ns, "waf", "Normal", "Pushed").await;

    let (ok, out) = kubectl(&["get", "cpush", "-n", &ns, "-o", "wide"]).await;
    assert!(
        ok && out.contains("WAF") && out.contains("Pushed") && out.contains("cn-north-4"),
        "{out}"
    );
    let metrics = op.metrics().await;
    for line in [
        "certpush_scm_requests_total{operation=\"push\",code=\"204\",error_code=\"\"} 1",
        "controller_runtime_reconcile_total{controller=\"certificatepush\",result=\"success\"}",
        "controller_runtime_max_concurrent_reconciles{controller=\"certificatepush\"} 64",
        "certpush_resources{ready=\"True\",reason=\"Pushed\"} 1",
        "leader_election_master_status{name=\"certpush-operator\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    // Every SCM answer is logged with Huawei's request id, inside the reconcile's span.
    assert!(
        op.logs().contains(&format!("\"request_id\":\"{}\"", p.request_id)),
        "{}",
        op.logs()
    );
    assert_no_secret_leak(&ns, &op, &[GOOD_TOKEN]).await;
}

/// The token must not appear in logs (even at trace level), Events or status, in plain or base64 form.
async fn assert_no_secret_leak(ns: &str, op: &Operator, tokens: &[&str]) {
    use base64::Engine as _;
    let logs = op.logs();
    assert!(logs.len() > 1000, "trace logs were captured ({} bytes)", logs.len());
    // Events and status are checked through what the API server returns for them.
    let (ok, objects) = kubectl(&["get", "cpush,events.events.k8s.io", "-n", ns, "-o", "yaml"]).await;
    assert!(ok && objects.contains("Pushed"), "{objects}");
    for token in tokens {
        let b64 = base64::engine::general_purpose::STANDARD.encode(token);
        for (place, text) in [("logs", &logs), ("events and status", &objects)] {
            assert!(!text.contains(token), "token found in {place}");
            assert!(!text.contains(&b64), "base64 token found in {place}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn each_failure_class_is_reported_and_stalls() {
    let client = admin().await;
    let ns = namespace(&client, "failures").await;
    let sim = start_sim().await;
    sim.add_certificate("scs1000000000028");
    sim.inject(Fault {
        certificate_id: Some("scs1000000000028".into()),
        times: 100,
        action: FaultAction::Error {
            status: 400,
            error_code: "SCM.0028".into(),
            error_msg: "Push cert error".into(),
        },
    });
    let op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "good", GOOD_TOKEN).await;
    put_secret(&client, &ns, "bad", BAD_TOKEN).await;
    put_secret(&client, &ns, "forbidden", FORBIDDEN_TOKEN).await;
    put_secret(&client, &ns, "short", "too-short").await;

    // (name, certificate, secret, reason, expected error code, expected error message, SCM calls)
    let cases = [
        ("missing-secret", CERT, "nope", "CredentialsNotFound", None, None, 0),
        ("short-token", CERT, "short", "InvalidCredentials", None, None, 0),
        (
            "unauthorized",
            CERT,
            "bad",
            "Unauthorized",
            Some("APIGW.0301"),
            Some("Incorrect IAM authentication"),
            1,
        ),
        (
            "forbidden",
            CERT,
            "forbidden",
            "Forbidden",
            Some("APIGW.0302"),
            Some("not authorized"),
            1,
        ),
        (
            "no-cert",
            "scs9999999999999",
            "good",
            "CertificateNotFound",
            Some("SCM.0021"),
            Some("certificate not exist"),
            1,
        ),
        (
            "rejected",
            "scs1000000000028",
            "good",
            "PushRejected",
            Some("SCM.0028"),
            Some("Push cert error"),
            1,
        ),
    ];
    for (name, cert, secret, ..) in &cases {
        create_push(
            &client,
            &ns,
            name,
            spec(cert, TargetService::Elb, "ap-southeast-1", secret),
        )
        .await;
    }
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    for (name, _, _, reason, code, msg, _) in &cases {
        let cp = wait_for(&api, name, T, reason, |cp| ready_is(cp, FALSE, reason)).await;
        let st = status(&cp);
        assert_eq!(
            condition(&cp, "Stalled"),
            Some((TRUE.into(), reason.to_string())),
            "{name}"
        );
        assert_eq!(condition(&cp, "Reconciling"), None, "{name}");
        assert_eq!(st.error_code.as_deref(), *code, "{name}");
        if let Some(m) = msg {
            assert!(st.error_message.as_deref().unwrap_or("").contains(m), "{name}: {st:?}");
        }
        assert_eq!(st.next_retry_time, None, "{name}: no automatic retry");
        wait_event(&client, &ns, name, "Warning", "PushFailed").await;
    }
    // Stalled means stalled: looking again (a label edit triggers a reconcile) sends nothing. The metrics prove
    // the operator did look: SCM refusals settle as "stalled", credential problems are re-read ("credentials_error").
    let (stalled, rechecked) = (op.reconciles("stalled").await, op.reconciles("credentials_error").await);
    for (name, ..) in &cases {
        label(&api, name, "look-again").await;
    }
    op.wait_reconciles("stalled", stalled + 4).await;
    op.wait_reconciles("credentials_error", rechecked + 2).await;
    for (name, cert, secret, _, _, _, calls) in &cases {
        let token = match *secret {
            "good" => Some(GOOD_TOKEN),
            "bad" => Some(BAD_TOKEN),
            "forbidden" => Some(FORBIDDEN_TOKEN),
            "short" => Some("too-short"),
            _ => None,
        };
        let n = sim
            .pushes()
            .iter()
            .filter(|c| c.certificate_id.as_deref() == Some(*cert) && c.token_sha256 == token.map(sha256))
            .count();
        assert_eq!(n, *calls, "{name}: SCM calls for {cert} with the {secret} Secret");
        let events = events_for(&client, &ns, name).await;
        assert_eq!(
            events.iter().filter(|(_, r, _)| r == "PushFailed").count(),
            1,
            "{name}: one Warning per state"
        );
    }
    assert!(op.logs().contains("push failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn token_rotation_recovers_from_401_without_restart() {
    let client = admin().await;
    let ns = namespace(&client, "rotation").await;
    let sim = start_sim().await;
    let op = Operator::start(&ns, &sim, "trace").await;
    put_secret(&client, &ns, "scm", BAD_TOKEN).await;
    let api = create_push(&client, &ns, "cdn", spec(CERT, TargetService::Cdn, "cn-north-4", "scm")).await;
    wait_for(&api, "cdn", T, "Unauthorized", |cp| ready_is(cp, FALSE, "Unauthorized")).await;

    let rotated = std::time::Instant::now();
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let cp = wait_for(
        &api,
        "cdn",
        Duration::from_secs(10),
        "Ready=True after rotation",
        |cp| ready_is(cp, TRUE, "Pushed"),
    )
    .await;
    println!("recovered {:?} after the token rotation", rotated.elapsed());
    assert_eq!(condition(&cp, "Stalled"), None);
    let pushes = sim.pushes();
    assert_eq!(pushes.len(), 2, "{pushes:#?}");
    assert_eq!(pushes[0].token_sha256.as_deref(), Some(sha256(BAD_TOKEN).as_str()));
    assert_eq!(pushes[1].token_sha256.as_deref(), Some(sha256(GOOD_TOKEN).as_str()));
    assert_no_secret_leak(&ns, &op, &[GOOD_TOKEN, BAD_TOKEN]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn steady_state_is_quiet_and_restarts_do_not_repush() {
    let client = admin().await;
    let ns = namespace(&client, "steady").await;
    let sim = start_sim().await;
    let mut op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let api = create_push(&client, &ns, "elb", spec(CERT, TargetService::Elb, "cn-north-4", "scm")).await;
    let cp = wait_for(&api, "elb", T, "Ready", |cp| ready_is(cp, TRUE, "Pushed")).await;

    // Looking again at steady state costs no SCM call and no status write (the resourceVersion does not move).
    let rv = cp.metadata.resource_version.clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    op.after_reconcile("unchanged", label(&secrets, "scm", "1")).await;
    assert_eq!(sim.calls().len(), 1, "no SCM calls at steady state");
    assert_eq!(
        api.get("elb").await.unwrap().metadata.resource_version,
        rv,
        "no writes at steady state"
    );

    // A hard restart re-lists everything (the new process reconciles the object) but pushes nothing.
    op = op.restart(&ns, &sim, "info").await;
    op.wait_reconciles("unchanged", 1).await;
    assert_eq!(sim.pushes().len(), 1, "restart must not push again");
    assert_eq!(
        api.get("elb").await.unwrap().metadata.resource_version,
        rv,
        "restart must not write status"
    );

    // Unrelated edits (labels) do not push; a new credential does not push an up-to-date object.
    op.after_reconcile("unchanged", label(&api, "elb", "edge")).await;
    let rotated = GOOD_TOKEN.replace("7d1c", "7d1d");
    sim.set_tokens(vec![GOOD_TOKEN.into(), rotated.clone()]);
    op.after_reconcile("unchanged", put_secret(&client, &ns, "scm", &rotated))
        .await;
    assert_eq!(sim.pushes().len(), 1, "label edit or Secret change must not push");

    // A spec change pushes exactly once more.
    let change = json!({"spec": {"targetProject": "cn-east-3"}});
    let before = api.get("elb").await.unwrap().metadata.generation.unwrap();
    api.patch("elb", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    let cp = wait_for(&api, "elb", T, "new generation pushed", |cp| {
        status(cp).pushed_generation == Some(before + 1) && ready_is(cp, TRUE, "Pushed")
    })
    .await;
    op.after_reconcile("unchanged", label(&api, "elb", "after-spec-change"))
        .await;
    let pushes = sim.pushes();
    assert_eq!(pushes.len(), 2, "{pushes:#?}");
    assert_eq!(pushes[1].body["target_project"], "cn-east-3");
    assert_eq!(status(&cp).observed_generation, Some(before + 1));
    drop(op);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn repush_annotation_pushes_again_once() {
    let client = admin().await;
    let ns = namespace(&client, "repush").await;
    let sim = start_sim().await;
    let op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let api = create_push(&client, &ns, "waf", spec(CERT, TargetService::Waf, "cn-north-4", "scm")).await;
    wait_for(&api, "waf", T, "Ready", |cp| ready_is(cp, TRUE, "Pushed")).await;

    let annotate = json!({"metadata": {"annotations": {"scm.certpush.dev/push-requested-at": "2026-11-23T10:00:00Z"}}});
    api.patch("waf", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    wait_for(&api, "waf", T, "request handled", |cp| {
        status(cp).last_handled_push_request.as_deref() == Some("2026-11-23T10:00:00Z")
    })
    .await;
    op.after_reconcile("unchanged", label(&api, "waf", "after-repush"))
        .await;
    assert_eq!(
        sim.successful_pushes().len(),
        2,
        "one more push for the annotation, and only one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn transient_faults_end_in_one_successful_push() {
    let client = admin().await;
    let ns = namespace(&client, "transient").await;
    let sim = start_sim().await;
    let fault = |action| Fault {
        certificate_id: None,
        times: 1,
        action,
    };
    sim.inject(fault(FaultAction::Error {
        status: 503,
        error_code: "APIGW.0613".into(),
        error_msg: "IAM unavailable".into(),
    }));
    sim.inject(fault(FaultAction::Respond {
        status: 429,
        body: String::new(),
        retry_after: Some(1),
    }));
    sim.inject(fault(FaultAction::Drop));
    let op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let api = create_push(
        &client,
        &ns,
        "waf",
        spec(CERT, TargetService::Waf, "eu-west-101", "scm"),
    )
    .await;

    let cp = wait_for(&api, "waf", T, "Retrying", |cp| ready_is(cp, FALSE, "Retrying")).await;
    let st = status(&cp);
    assert_eq!(condition(&cp, "Reconciling"), Some((TRUE.into(), "Retrying".into())));
    assert_eq!(condition(&cp, "Stalled"), None);
    assert_eq!(
        (st.http_status, st.error_code.as_deref()),
        (Some(503), Some("APIGW.0613"))
    );
    assert_eq!(st.failed_attempts, Some(1));
    assert!(st.next_retry_time.is_some());

    // Backoff 5 s, 10 s, 20 s (±20%) before the fourth attempt succeeds.
    let cp = wait_for(&api, "waf", Duration::from_secs(90), "Ready after faults", |cp| {
        ready_is(cp, TRUE, "Pushed")
    })
    .await;
    let st = status(&cp);
    assert_eq!(
        (st.failed_attempts, st.next_retry_time, st.error_code),
        (None, None, None)
    );
    let pushes = sim.pushes();
    let statuses: Vec<u16> = pushes.iter().map(|p| p.status).collect();
    assert_eq!(statuses, [503, 429, 0, 204], "{pushes:#?}");
    let gaps: Vec<u64> = pushes.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
    assert!(
        gaps[0] >= 3_500 && gaps[1] >= 7_500 && gaps[2] >= 15_500,
        "backoff gaps {gaps:?} ms"
    );
    assert_eq!(sim.successful_pushes().len(), 1);
    let events = events_for(&client, &ns, "waf").await;
    assert_eq!(
        events.iter().filter(|(_, r, _)| r == "PushFailed").count(),
        1,
        "one Warning, not one per retry"
    );
    let metrics = op.metrics().await;
    assert!(
        metrics.contains("certpush_scm_requests_total{operation=\"push\",code=\"outcome_unknown\",error_code=\"\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn secret_churn_during_first_pushes_pushes_each_generation_once() {
    // Every Secret update re-triggers all its referrers, often before the watch has delivered the status
    // write of the push that just finished: the operator must not push those generations again.
    const N: usize = 8;
    let client = admin().await;
    let ns = namespace(&client, "churn").await;
    let sim = start_sim().await;
    // Slow pushes widen the window between a push and the cache seeing its status write.
    sim.inject(Fault {
        certificate_id: None,
        times: N as u32,
        action: FaultAction::Delay { ms: 300 },
    });
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let op = Operator::start(&ns, &sim, "debug").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let churn = tokio::spawn(async move {
        for i in 0..60 {
            let patch = json!({"metadata": {"labels": {"churn": i.to_string()}}});
            secrets
                .patch("scm", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("label the Secret");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut apis = Vec::new();
    for i in 0..N {
        let project = format!("churn-{i}");
        apis.push(create_push(&client, &ns, &project, spec(CERT, TargetService::Cdn, &project, "scm")).await);
    }
    for (i, api) in apis.iter().enumerate() {
        wait_for(api, &format!("churn-{i}"), T, "Ready=True", |cp| {
            ready_is(cp, TRUE, "Pushed")
        })
        .await;
    }
    churn.await.unwrap();
    // One more Secret edit reconciles every referrer again; only then are the pushes counted.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let before = op.reconciles("unchanged").await;
    label(&secrets, "scm", "done").await;
    op.wait_reconciles("unchanged", before + N as u64).await;

    assert_eq!(
        pushed_projects(&sim.pushes()),
        numbered("churn-", N),
        "one push per object\n{}",
        op.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn shipped_rbac_is_least_privilege() {
    let _ = admin().await;
    install_once().await;
    let sa = "system:serviceaccount:certpush-system:certpush-operator";
    let can = |verb: &'static str, resource: &'static str| async move {
        let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
        let sub = format!("--subresource={sub}");
        let mut args = vec!["auth", "can-i", verb, resource, "--as", sa, "-n", "default"];
        if sub.len() > "--subresource=".len() {
            args.push(&sub);
        }
        let (_, out) = kubectl(&args).await;
        out.trim().starts_with("yes")
    };
    for (verb, res) in [
        ("watch", "certificatepushes.scm.certpush.dev"),
        ("patch", "certificatepushes.scm.certpush.dev/status"),
        // The finalizer of deletionPolicy: Delete.
        ("patch", "certificatepushes.scm.certpush.dev"),
        ("get", "secrets"),
        ("create", "events.events.k8s.io"),
    ] {
        assert!(can(verb, res).await, "needs {verb} {res}");
    }
    for (verb, res) in [
        ("create", "secrets"),
        ("update", "secrets"),
        ("update", "certificatepushes.scm.certpush.dev"),
        ("delete", "certificatepushes.scm.certpush.dev"),
        ("get", "configmaps"),
        ("create", "pods"),
    ] {
        assert!(!can(verb, res).await, "must not {verb} {res}");
    }
}

const REQUEST: &str = "scm.certpush.dev/push-requested-at";

async fn request_push(api: &Api<CertificatePush>, name: &str, value: &str) {
    let annotate = json!({"metadata": {"annotations": {REQUEST: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
}

/// A pushed object, its API and the simulator: the start of every re-push case.
async fn pushed(client: &kube::Client, prefix: &str) -> (String, Sim, Operator, Api<CertificatePush>) {
    let ns = namespace(client, prefix).await;
    let sim = start_sim().await;
    let op = Operator::start(&ns, &sim, "info").await;
    put_secret(client, &ns, "scm", GOOD_TOKEN).await;
    let api = create_push(client, &ns, "waf", spec(CERT, TargetService::Waf, "cn-north-4", "scm")).await;
    wait_for(&api, "waf", T, "Ready", |cp| ready_is(cp, TRUE, "Pushed")).await;
    (ns, sim, op, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn failed_repush_is_retried_with_backoff_until_it_succeeds() {
    let client = admin().await;
    let (_ns, sim, _op, api) = pushed(&client, "repush-retry").await;
    // Every push fails transiently until the faults are cleared.
    sim.inject(Fault {
        certificate_id: None,
        times: 1000,
        action: FaultAction::Error {
            status: 503,
            error_code: "APIGW.0613".into(),
            error_msg: "IAM unavailable".into(),
        },
    });
    request_push(&api, "waf", "r1").await;
    // Retried on its own: a second failed attempt arrives after the first backoff (5 s ± 20%).
    let cp = wait_for(&api, "waf", T, "a retried re-push", |cp| {
        status(cp).failed_attempts >= Some(2)
    })
    .await;
    let st = status(&cp);
    assert!(ready_is(&cp, FALSE, "Retrying"), "{st:?}");
    assert_eq!(st.pending_push_request.as_deref(), Some("r1"));
    assert_ne!(
        st.last_handled_push_request.as_deref(),
        Some("r1"),
        "not handled while failing"
    );
    assert_eq!(sim.pushes().iter().filter(|c| c.status == 503).count(), 2);

    sim.clear_faults();
    let cp = wait_for(&api, "waf", Duration::from_secs(60), "Ready after the faults", |cp| {
        ready_is(cp, TRUE, "Pushed")
    })
    .await;
    let st = status(&cp);
    assert_eq!(st.last_handled_push_request.as_deref(), Some("r1"));
    assert_eq!((st.pending_push_request, st.failed_attempts), (None, None));
    assert_eq!(sim.successful_pushes().len(), 2, "exactly one more successful push");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn repush_with_an_expired_token_recovers_when_the_token_is_rotated() {
    let client = admin().await;
    let (ns, sim, _op, api) = pushed(&client, "repush-rotate").await;
    // The token in the Secret expires; only a new one is accepted.
    let fresh = GOOD_TOKEN.replace("7d1c", "9e2f");
    sim.set_tokens(vec![fresh.clone()]);
    request_push(&api, "waf", "r1").await;
    wait_for(&api, "waf", T, "Unauthorized", |cp| {
        ready_is(cp, FALSE, "Unauthorized") && condition(cp, "Stalled") == Some((TRUE.into(), "Unauthorized".into()))
    })
    .await;
    let rotated = std::time::Instant::now();
    put_secret(&client, &ns, "scm", &fresh).await;
    let cp = wait_for(&api, "waf", Duration::from_secs(10), "Ready after the rotation", |cp| {
        ready_is(cp, TRUE, "Pushed")
    })
    .await;
    println!("re-push recovered {:?} after the token rotation", rotated.elapsed());
    assert_eq!(condition(&cp, "Stalled"), None);
    assert_eq!(status(&cp).last_handled_push_request.as_deref(), Some("r1"));
    let tokens: Vec<Option<String>> = sim.pushes().into_iter().map(|c| c.token_sha256).collect();
    assert_eq!(
        tokens,
        [Some(sha256(GOOD_TOKEN)), Some(sha256(GOOD_TOKEN)), Some(sha256(&fresh))],
        "the expired token was sent once for the re-push"
    );
}

/// AK/SK from the Secret sign the push (checked by the simulator's own verifier); no key material reaches logs at
/// trace level, Events or status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn an_access_key_pair_signs_the_push() {
    let client = admin().await;
    let ns = namespace(&client, "aksk").await;
    let sim = start_sim().await;
    let op = Operator::start(&ns, &sim, "trace").await;
    let project = "0123456789abcdef0123456789abcdef";
    put_secret_data(
        &client,
        &ns,
        "scm",
        &[
            ("accessKey", scm_sim::DEMO_ACCESS_KEY),
            ("secretKey", scm_sim::DEMO_SECRET_KEY),
            ("projectId", project),
        ],
    )
    .await;
    let api = create_push(&client, &ns, "elb", spec(CERT, TargetService::Elb, "cn-north-4", "scm")).await;
    wait_for(&api, "elb", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let pushes = sim.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:#?}");
    assert_eq!(pushes[0].status, 204);
    assert_eq!(pushes[0].token_sha256, None);
    assert_eq!(
        pushes[0].signed_headers.as_deref(),
        Some("host;x-project-id;x-sdk-date")
    );
    assert_eq!(
        pushes[0].access_key_sha256.as_deref(),
        Some(sha256(scm_sim::DEMO_ACCESS_KEY).as_str())
    );
    assert_no_secret_leak(&ns, &op, &[scm_sim::DEMO_ACCESS_KEY, scm_sim::DEMO_SECRET_KEY]).await;
}

/// A Secret with both kinds sends nothing; a wrong secret key is sent once, stalls as Unauthorized, and is not
/// sent again on Secret edits that keep it (the gateway locks a key after repeated failures); the right key lifts
/// the stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_wrong_secret_key_stalls_and_is_not_resent_until_the_key_changes() {
    let client = admin().await;
    let ns = namespace(&client, "aksk-stall").await;
    let sim = start_sim().await;
    let op = Operator::start(&ns, &sim, "info").await;
    let ak = scm_sim::DEMO_ACCESS_KEY;
    put_secret_data(
        &client,
        &ns,
        "scm",
        &[("token", GOOD_TOKEN), ("accessKey", ak), ("secretKey", "wrong")],
    )
    .await;
    let api = create_push(&client, &ns, "waf", spec(CERT, TargetService::Waf, "cn-north-4", "scm")).await;
    let cp = wait_for(&api, "waf", T, "InvalidCredentials", |cp| {
        ready_is(cp, FALSE, "InvalidCredentials")
    })
    .await;
    let (_, message) = ready_message(&cp);
    assert!(
        message.contains("both") && message.contains("\"accessKey\""),
        "{message}"
    );
    assert!(sim.calls().is_empty(), "nothing is sent: {:#?}", sim.calls());

    put_secret_data(
        &client,
        &ns,
        "scm",
        &[("accessKey", ak), ("secretKey", "not-the-secret-key")],
    )
    .await;
    wait_for(&api, "waf", T, "Unauthorized", |cp| ready_is(cp, FALSE, "Unauthorized")).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for i in 0..6 {
        op.after_reconcile("stalled", label(&secrets, "scm", &i.to_string()))
            .await;
    }
    let pushes = sim.pushes();
    assert_eq!(pushes.len(), 1, "the refused key was sent once: {pushes:#?}");
    assert_eq!(pushes[0].error_code.as_deref(), Some("APIGW.0301"));

    put_secret_data(
        &client,
        &ns,
        "scm",
        &[("accessKey", ak), ("secretKey", scm_sim::DEMO_SECRET_KEY)],
    )
    .await;
    wait_for(&api, "waf", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let statuses: Vec<u16> = sim.pushes().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [401, 204]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn secret_edits_that_keep_the_credential_do_not_resend_a_rejected_one() {
    let client = admin().await;
    let ns = namespace(&client, "stall-labels").await;
    let sim = start_sim().await;
    let op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", BAD_TOKEN).await;
    let api = create_push(&client, &ns, "cdn", spec(CERT, TargetService::Cdn, "cn-north-4", "scm")).await;
    let cp = wait_for(&api, "cdn", T, "Unauthorized", |cp| ready_is(cp, FALSE, "Unauthorized")).await;
    // Ten edits of the Secret's metadata: each is seen (the operator reconciles the stalled object again) and
    // none re-sends the token SCM refused.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for i in 0..10 {
        op.after_reconcile("stalled", label(&secrets, "scm", &i.to_string()))
            .await;
    }
    assert_eq!(sim.pushes().len(), 1, "{:#?}", sim.pushes());
    assert!(status(&cp).credentials_digest.is_some_and(|d| d.starts_with("sha256:")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn an_unanswered_push_is_reported_and_a_refused_retry_says_it_may_have_landed() {
    let client = admin().await;
    let ns = namespace(&client, "unknown-outcome").await;
    // CDN accepts a certificate once: a repeat of a push that landed is refused.
    let sim = Sim::start(
        SimConfig {
            tokens: vec![GOOD_TOKEN.into()],
            reject_duplicate_push: true,
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::DropAfterPush,
    });
    let op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let api = create_push(&client, &ns, "cdn", spec(CERT, TargetService::Cdn, "cn-north-4", "scm")).await;
    let cp = wait_for(&api, "cdn", T, "Retrying with an unknown outcome", |cp| {
        ready_is(cp, FALSE, "Retrying")
    })
    .await;
    let st = status(&cp);
    assert!(st.outcome_unknown_time.is_some(), "{st:?}");
    let (_, message) = ready_message(&cp);
    assert!(message.contains("may have landed"), "{message}");
    assert!(
        op.metrics()
            .await
            .contains("certpush_scm_requests_total{operation=\"push\",code=\"outcome_unknown\",error_code=\"\"} 1")
    );
    // The retry is refused as a duplicate: the status says why that may be, not a bare PushRejected.
    let cp = wait_for(&api, "cdn", T, "PushRejected", |cp| ready_is(cp, FALSE, "PushRejected")).await;
    let (_, message) = ready_message(&cp);
    assert!(
        message.contains("got no answer and may have landed")
            && message.contains("certificate scs1554192131150 to CDN in cn-north-4"),
        "{message}"
    );
    assert_eq!(status(&cp).error_code.as_deref(), Some("SCM.0028"));
    let statuses: Vec<u16> = sim.pushes().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [0, 400]);
}

fn ready_message(cp: &CertificatePush) -> (String, String) {
    let c = status(cp)
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    (c.reason, c.message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_wrong_endpoint_stalls_and_lifts_when_the_operator_runs_with_the_right_one() {
    let client = admin().await;
    let ns = namespace(&client, "endpoint").await;
    let sim = start_sim().await;
    // A proxy or portal that answers 200 is not SCM: no Pushed.
    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Respond {
            status: 200,
            body: r#"{"message":"success"}"#.into(),
            retry_after: None,
        },
    });
    let op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let api = create_push(
        &client,
        &ns,
        "ok200",
        spec(CERT, TargetService::Elb, "cn-north-4", "scm"),
    )
    .await;
    let cp = wait_for(&api, "ok200", T, "PushRejected for a 200", |cp| {
        ready_is(cp, FALSE, "PushRejected")
    })
    .await;
    let (_, message) = ready_message(&cp);
    assert!(
        message.contains("HTTP 204, not 200") && message.contains("--scm-endpoint"),
        "{message}"
    );
    assert_eq!(status(&cp).pushed_generation, None);

    // A wrong path prefix: the gateway answers 404 APIGW.0101.
    let wrong = format!("{}/wrong-prefix", sim.url());
    let op = op.restart_with_endpoint(&ns, &wrong, "info").await;
    let other = create_push(
        &client,
        &ns,
        "path",
        spec(CERT, TargetService::Waf, "cn-north-4", "scm"),
    )
    .await;
    let cp = wait_for(&other, "path", T, "PushRejected for a wrong path", |cp| {
        ready_is(cp, FALSE, "PushRejected")
    })
    .await;
    assert_eq!(status(&cp).error_code.as_deref(), Some("APIGW.0101"));
    // Fixing the flag and restarting lifts both stalls without touching the objects.
    let _op = op.restart(&ns, &sim, "info").await;
    for name in ["ok200", "path"] {
        wait_for(&api, name, T, "Ready after the endpoint was fixed", |cp| {
            ready_is(cp, TRUE, "Pushed")
        })
        .await;
    }
    assert_eq!(sim.successful_pushes().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn readiness_and_liveness_follow_the_watches_through_an_outage() {
    let client = admin().await;
    let ns = namespace(&client, "readiness").await;
    let sim = start_sim().await;
    let proxy = CuttableProxy::start(&restricted_kubeconfig()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = proxy.kubeconfig(&restricted_kubeconfig(), dir.path());
    let op = Operator::start_custom(
        &ns,
        &sim,
        kubeconfig,
        &["--unready-after-seconds", "2", "--unhealthy-after-seconds", "4"],
    )
    .await;
    assert_eq!(op.wait_probe("/healthz", 200).await, "ok");

    // The API server goes away: not ready after 2 s of failing watches, not live after 4 s.
    proxy.cut();
    let body = op.wait_probe("/readyz", 503).await;
    assert!(body.contains("watch failing for"), "{body}");
    let body = op.wait_probe("/healthz", 503).await;
    assert!(body.contains("watch failing for"), "{body}");

    // It comes back. The operator either recovers on its own (ready again), or, where the client is still stuck
    // (kube's requests over fresh connections were seen to hang here after an outage, until kube's 295 s read
    // timeout), it keeps failing /healthz so that the kubelet restarts it: it never looks healthy while wedged.
    proxy.restore().await;
    let restored = std::time::Instant::now();
    // CERTPUSH_OUTAGE_WAIT_SECONDS lengthens the wait, to measure how long the client takes to recover alone.
    let wait = std::env::var("CERTPUSH_OUTAGE_WAIT_SECONDS").map_or(30, |v| v.parse().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(wait);
    let recovered = loop {
        let probe = |path: &'static str| {
            let url = format!("http://127.0.0.1:{}{path}", op.metrics_port);
            async move { reqwest::get(url).await.map(|r| r.status().as_u16()).unwrap_or(0) }
        };
        if probe("/readyz").await == 200 {
            break true;
        }
        assert_eq!(probe("/healthz").await, 503, "not ready, yet claims to be live");
        if std::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "watches recovered without a restart: {recovered} (after {:?})",
        restored.elapsed()
    );
    // Either way (recovered, or restarted as the kubelet would) the operator pushes a new object.
    let op = if recovered {
        op
    } else {
        op.restart(&ns, &sim, "info").await
    };
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let api = create_push(&client, &ns, "waf", spec(CERT, TargetService::Waf, "cn-north-4", "scm")).await;
    wait_for(&api, "waf", T, "Ready after the outage", |cp| {
        ready_is(cp, TRUE, "Pushed")
    })
    .await;
    drop(op);
}

/// A CA and a way to issue leaves valid from yesterday for 90 days, as cert-manager would renew them.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "e2e test CA");
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// (tls.crt with the chain, tls.key, SHA-256 of the leaf's DER).
    fn leaf(&self) -> (String, String, String) {
        let day = |offset: i64| {
            let d = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_hours(24 * offset))
                .unwrap()
                .to_zoned(jiff::tz::TimeZone::UTC)
                .date();
            rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
        };
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["www.example.com".to_owned()]).unwrap();
        params.not_before = day(-1);
        params.not_after = day(90);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            format!("{}{}", cert.pem(), self.pem),
            key.serialize_pem(),
            sha256_bytes(cert.der()),
        )
    }
}

fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn put_tls_secret(client: &kube::Client, ns: &str, name: &str, crt: &str, key: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": crt, "tls.key": key},
    }))
    .unwrap();
    api.patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(&secret))
        .await
        .expect("apply TLS Secret");
}

fn import_spec(secret: &str) -> certpush_operator::crd::CertificatePushSpec {
    certpush_operator::crd::CertificatePushSpec {
        certificate_id: None,
        source_secret_ref: Some(certpush_operator::crd::SourceSecretRef { name: secret.into() }),
        ..spec(CERT, TargetService::Elb, "ap-southeast-1", "scm")
    }
}

/// The whole import flow: a TLS Secret is imported and pushed once; edits that keep the certificate do nothing;
/// a renewal is imported and pushed exactly once more and the superseded import is deleted from SCM; the private
/// key never reaches logs, Events or status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_tls_secret_is_imported_and_pushed_and_each_renewal_once_more() {
    let client = admin().await;
    let ns = namespace(&client, "import").await;
    let sim = start_sim().await;
    let op = Operator::start(&ns, &sim, "trace").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let ca = TestCa::new();
    let (crt, key, fp) = ca.leaf();
    put_tls_secret(&client, &ns, "web-tls", &crt, &key).await;
    let api = create_push(&client, &ns, "web", import_spec("web-tls")).await;
    let cp = wait_for(&api, "web", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;

    let st = status(&cp);
    let first = st.certificate_id.clone().expect("status.certificateId");
    assert_eq!(st.source_fingerprint.as_deref(), Some(fp.as_str()));
    assert_eq!(st.pushed_certificate_id.as_deref(), Some(first.as_str()));
    assert!(st.not_after.is_some() && st.source_secret.as_ref().is_some_and(|s| s.name == "web-tls"));
    let name = certpush_operator::source::import_name(&ns, "web", &fp);
    assert_eq!(sim.certificates().last(), Some(&(first.clone(), name)));
    let methods: Vec<(String, u16)> = sim.calls().iter().map(|c| (c.method.clone(), c.status)).collect();
    assert_eq!(
        methods,
        [("GET".into(), 200), ("POST".into(), 200), ("POST".into(), 204)],
        "list, import, push: {:#?}",
        sim.calls()
    );
    assert_eq!(sim.pushes()[0].certificate_id.as_deref(), Some(first.as_str()));
    let import_call = &sim.calls()[1];
    assert_eq!(import_call.body["private_key"], "<redacted>");
    assert!(
        import_call.body["certificate_chain"]
            .as_str()
            .is_some_and(|c| c.contains("BEGIN CERTIFICATE"))
    );

    // Edits of the Secret that keep the certificate import and push nothing.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for i in 0..3 {
        op.after_reconcile("unchanged", label(&secrets, "web-tls", &i.to_string()))
            .await;
    }
    assert_eq!(sim.calls().len(), 3, "{:#?}", sim.calls());

    // Renewal: a new key and certificate in the same Secret.
    let (crt2, key2, fp2) = ca.leaf();
    put_tls_secret(&client, &ns, "web-tls", &crt2, &key2).await;
    let cp = wait_for(&api, "web", T, "the renewal pushed", |cp| {
        ready_is(cp, TRUE, "Pushed") && status(cp).source_fingerprint.as_deref() == Some(fp2.as_str())
    })
    .await;
    let second = status(&cp).certificate_id.expect("new certificateId");
    assert_ne!(second, first);
    assert_eq!(status(&cp).pushed_certificate_id.as_deref(), Some(second.as_str()));
    let wait_deleted = async {
        while sim.certificates().iter().any(|(id, _)| *id == first) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(T, wait_deleted)
        .await
        .expect("the superseded import is deleted");
    let pushed: Vec<Option<String>> = sim.successful_pushes().into_iter().map(|c| c.certificate_id).collect();
    assert_eq!(
        pushed,
        [Some(first.clone()), Some(second.clone())],
        "each certificate pushed once"
    );
    let imports = sim.calls().iter().filter(|c| c.path.ends_with("/import")).count();
    assert_eq!(imports, 2);
    // The expiry gauge follows status.notAfter of the renewed certificate.
    let not_after = status::parse_time(status(&cp).not_after.as_deref().unwrap()).unwrap();
    let series = format!(
        "certpush_certificate_expiration_timestamp_seconds{{namespace=\"{ns}\",name=\"web\"}} {}",
        not_after.as_second()
    );
    let deadline = std::time::Instant::now() + T;
    while !op.metrics().await.contains(&series) {
        assert!(
            std::time::Instant::now() < deadline,
            "{series} not in\n{}",
            op.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let key_lines: Vec<&str> = [key.as_str(), key2.as_str()]
        .iter()
        .flat_map(|k| k.lines().filter(|l| !l.starts_with("-----")))
        .collect();
    let mut secrets_to_hide = vec![key.trim(), key2.trim()];
    secrets_to_hide.extend(key_lines);
    assert_no_secret_leak(&ns, &op, &secrets_to_hide).await;
}

/// A Secret whose key does not belong to its certificate is InvalidSource and sends nothing to SCM; fixing the
/// Secret imports and pushes. An import that already exists under the deterministic name (a crash between
/// import and status write) is reused, not imported again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_mismatched_key_is_invalid_source_and_an_earlier_import_is_reused() {
    let client = admin().await;
    let ns = namespace(&client, "import-bad").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let ca = TestCa::new();
    let (crt, key, fp) = ca.leaf();
    let (_, other_key, _) = ca.leaf();
    put_tls_secret(&client, &ns, "web-tls", &crt, &other_key).await;
    let api = create_push(&client, &ns, "web", import_spec("web-tls")).await;
    let cp = wait_for(&api, "web", T, "InvalidSource", |cp| {
        ready_is(cp, FALSE, "InvalidSource")
    })
    .await;
    let (_, message) = ready_message(&cp);
    assert!(message.contains("does not belong"), "{message}");
    assert!(condition(&cp, "Stalled").is_some());
    assert!(sim.calls().is_empty(), "nothing sent: {:#?}", sim.calls());

    // Simulate an import whose status write was lost: it is in SCM under the deterministic name.
    let scm = certpush_operator::scm::ScmClient::new(&sim.url(), None).unwrap();
    let token = certpush_operator::scm::Credentials::from_secret(
        Some(&serde_json::from_value(json!({"data": {"token": base64_of(GOOD_TOKEN)}})).unwrap()),
        &spec(CERT, TargetService::Elb, "p", "scm").credentials_ref,
    )
    .unwrap();
    let source = certpush_operator::source::parse(crt.as_bytes(), key.as_bytes(), jiff::Timestamp::now()).unwrap();
    let request = certpush_operator::scm::wire::ImportRequest {
        name: certpush_operator::source::import_name(&ns, "web", &fp),
        certificate: source.certificate.clone(),
        certificate_chain: Some(source.chain.clone()),
        private_key: source.private_key_pem().to_owned(),
    };
    assert!(matches!(
        certpush_operator::scm::classify_as(&scm.import(&token, &request).await, 200),
        certpush_operator::scm::PushOutcome::Pushed { .. }
    ));
    let earlier = sim.certificates().last().unwrap().0.clone();
    sim.reset();

    put_tls_secret(&client, &ns, "web-tls", &crt, &key).await;
    let cp = wait_for(&api, "web", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    assert_eq!(status(&cp).certificate_id.as_deref(), Some(earlier.as_str()));
    let paths: Vec<String> = sim.calls().iter().map(|c| format!("{} {}", c.method, c.path)).collect();
    assert_eq!(
        paths,
        [
            "GET /v3/scm/certificates".to_owned(),
            format!("POST /v3/scm/certificates/{earlier}/push")
        ],
        "found by name, not imported again"
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// deletionPolicy Delete: the finalizer deletes the imported certificate from SCM, then lets the object go; without
/// usable credentials it lets go at once with a Warning Event naming what is left. Retain (the default) adds no
/// finalizer and leaves SCM alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn deletion_policy_delete_removes_the_import_and_never_blocks_deletion() {
    let client = admin().await;
    let ns = namespace(&client, "import-delete").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let ca = TestCa::new();
    let (crt, key, _) = ca.leaf();
    put_tls_secret(&client, &ns, "web-tls", &crt, &key).await;
    let deleting = || certpush_operator::crd::CertificatePushSpec {
        deletion_policy: Some(certpush_operator::crd::DeletionPolicy::Delete),
        ..import_spec("web-tls")
    };
    let api = create_push(&client, &ns, "cleaned", deleting()).await;
    let retained = create_push(&client, &ns, "kept", import_spec("web-tls")).await;
    let cp = wait_for(&api, "cleaned", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let kept = wait_for(&retained, "kept", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    assert_eq!(
        cp.metadata.finalizers.as_deref(),
        Some(&[certpush_operator::crd::CLEANUP_FINALIZER.to_owned()][..])
    );
    assert_eq!(kept.metadata.finalizers, None, "Retain adds no finalizer");
    let id = status(&cp).certificate_id.unwrap();
    let kept_id = status(&kept).certificate_id.unwrap();

    api.delete("cleaned", &Default::default()).await.unwrap();
    wait_gone(&api, "cleaned").await;
    let ids: Vec<String> = sim.certificates().into_iter().map(|(id, _)| id).collect();
    assert!(!ids.contains(&id), "the import is deleted from SCM");
    assert!(ids.contains(&kept_id));
    retained.delete("kept", &Default::default()).await.unwrap();
    wait_gone(&retained, "kept").await;
    assert!(
        sim.certificates().iter().any(|(i, _)| *i == kept_id),
        "Retain leaves SCM alone"
    );

    // Without credentials the finalizer still lets go, and says what is left.
    let api = create_push(&client, &ns, "orphan", deleting()).await;
    let cp = wait_for(&api, "orphan", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let orphan = status(&cp).certificate_id.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets.delete("scm", &Default::default()).await.unwrap();
    api.delete("orphan", &Default::default()).await.unwrap();
    wait_gone(&api, "orphan").await;
    assert!(sim.certificates().iter().any(|(i, _)| *i == orphan));
    let events = events_for(&client, &ns, "orphan").await;
    assert!(
        events
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "CleanupSkipped" && n.contains(&orphan)),
        "{events:?}"
    );
}

async fn wait_gone(api: &Api<CertificatePush>, name: &str) {
    let deadline = std::time::Instant::now() + T;
    while api.get_opt(name).await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} was not released by its finalizer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two replicas with leader election: one leads and pushes, the standby pushes nothing; after the leader is
/// SIGKILLed the standby takes over within the lease duration, and after a SIGTERM (the leader releases the
/// Lease) at once; every CertificatePush is pushed exactly once across all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn two_replicas_elect_one_leader_and_fail_over_without_duplicate_pushes() {
    let client = admin().await;
    let ns = namespace(&client, "leader").await;
    let sim = start_sim().await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let lease = format!("lease-{ns}");
    let args = [
        "--leader-elect",
        "--lease-namespace",
        "certpush-system",
        "--lease-name",
        lease.as_str(),
        "--lease-duration",
        "3s",
        "--renew-deadline",
        "2s",
        "--retry-period",
        "1s",
    ];
    let leads = format!("leader_election_master_status{{name=\"{lease}\"}} 1");
    let stands_by = format!("leader_election_master_status{{name=\"{lease}\"}} 0");
    let mut a = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &args).await;
    a.wait_metric(&leads, T).await;
    let mut b = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &args).await;
    b.wait_probe("/readyz", 200).await;

    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    create_numbered(&client, &ns, "p", 0..4).await;
    wait_numbered_pushed(&api, "p", 0..4, T).await;
    assert!(b.metrics().await.contains(&stands_by), "b stands by");
    assert!(!b.logs().contains("pushing certificate"), "the standby sent nothing");

    // The leader dies without releasing the Lease: the standby waits out the lease duration.
    let killed = std::time::Instant::now();
    a.kill().await;
    b.wait_metric(&leads, Duration::from_secs(15)).await;
    println!(
        "failover after SIGKILL took {:?} (lease duration 3 s)",
        killed.elapsed()
    );
    create_numbered(&client, &ns, "p", 4..8).await;
    wait_numbered_pushed(&api, "p", 4..8, T).await;

    // A graceful stop releases the Lease: a new standby takes over without waiting for it to expire.
    let c = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &args).await;
    c.wait_metric(&stands_by, T).await;
    let terminated = std::time::Instant::now();
    let status = b.terminate().await;
    assert!(status.success(), "graceful exit: {status:?}");
    assert!(b.logs().contains("released the leader election Lease"), "{}", b.logs());
    c.wait_metric(&leads, Duration::from_secs(15)).await;
    println!("failover after SIGTERM took {:?}", terminated.elapsed());
    create_numbered(&client, &ns, "p", 8..12).await;
    wait_numbered_pushed(&api, "p", 8..12, T).await;

    assert_eq!(
        pushed_projects(&sim.successful_pushes()),
        numbered("p", 12),
        "each CertificatePush pushed exactly once"
    );
    assert_eq!(sim.pushes().len(), 12, "no attempt was duplicated either");
}

/// The versions of one CertificatePush a watch sees until `done` holds for one of them.
async fn versions_until(
    api: &Api<CertificatePush>,
    name: &str,
    done: impl Fn(&CertificatePush) -> bool,
) -> Vec<CertificatePush> {
    use futures::StreamExt as _;
    use kube::runtime::{WatchStreamExt as _, watcher};
    let stream = watcher::watcher(
        api.clone(),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .applied_objects();
    futures::pin_mut!(stream);
    let mut seen = Vec::new();
    let collect = async {
        while let Some(Ok(cp)) = stream.next().await {
            let finished = done(&cp);
            seen.push(cp);
            if finished {
                return;
            }
        }
    };
    tokio::time::timeout(T, collect)
        .await
        .expect("the watch saw the final version");
    seen
}

/// A quick push costs one status write (no separate Pending write before it); a push still running after 1 s
/// shows Ready=Unknown/Pending first, so clients see the object is being worked on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn pending_is_written_only_while_a_push_is_slow() {
    let client = admin().await;
    let ns = namespace(&client, "pending").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    let pushed = |cp: &CertificatePush| ready_is(cp, TRUE, "Pushed");
    let is_pending = |cp: &CertificatePush| status::ready_reason(&status(cp)) == Some(status::Reason::Pending);

    create_push(&client, &ns, "quick", spec(CERT, TargetService::Waf, "p1", "scm")).await;
    let quick = versions_until(&api, "quick", pushed).await;
    assert!(!quick.iter().any(is_pending), "no Pending write before a quick push");
    let with_status = quick.iter().filter(|cp| cp.status.is_some()).count();
    assert_eq!(
        with_status,
        1,
        "one status write: {:#?}",
        quick.iter().map(|c| &c.status).collect::<Vec<_>>()
    );

    sim.inject(Fault {
        certificate_id: Some(OTHER_CERT.into()),
        times: 1,
        action: FaultAction::Delay { ms: 2500 },
    });
    create_push(&client, &ns, "slow", spec(OTHER_CERT, TargetService::Waf, "p1", "scm")).await;
    let slow = versions_until(&api, "slow", pushed).await;
    let first_pending = slow
        .iter()
        .position(is_pending)
        .expect("Pending shown during the slow push");
    let first_pushed = slow.iter().position(pushed).unwrap();
    assert!(first_pending < first_pushed);
    assert_eq!(sim.successful_pushes().len(), 2);
}

/// Chaos: 200 objects against an SCM that fails 30% of push calls (503, 429, resets, 1.5 s answers, and gateway
/// timeouts slower than the operator's `--scm-timeout`), with the operator SIGKILLed and restarted halfway. Every object ends Ready; each target got exactly one answered
/// successful push except pushes in flight at the kill; and each object's attempts kept to the backoff schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn chaos_faults_and_a_killed_operator_still_end_with_one_push_each() {
    use futures::StreamExt as _;
    const N: usize = 200;
    let client = admin().await;
    let ns = namespace(&client, "chaos").await;
    let config = SimConfig {
        tokens: vec![GOOD_TOKEN.into()],
        chaos: Some(scm_sim::Chaos {
            rate: 0.3,
            max_in_a_row: 3,
            slow_ms: 1500,
            stall_ms: 4000,
        }),
        ..SimConfig::default()
    };
    let sim = Sim::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    // Slow answers (1.5 s) come within the timeout; gateway timeouts (4 s, never forwarded) do not.
    // 16 at once bounds the pushes in flight at the kill, which may be sent twice.
    let args = [
        "--scm-qps",
        "1000",
        "--scm-burst",
        "100",
        "--scm-timeout",
        "3s",
        "--concurrency",
        "16",
    ];
    let mut op = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &args).await;
    futures::stream::iter(0..N)
        .for_each_concurrent(16, |i| {
            let client = client.clone();
            let ns = ns.clone();
            async move {
                create_push(
                    &client,
                    &ns,
                    &format!("c{i}"),
                    spec(CERT, TargetService::Elb, &format!("c{i}"), "scm"),
                )
                .await;
            }
        })
        .await;

    // Kill the operator once about half the objects are pushed, then start a new one.
    let half = async {
        while sim.successful_pushes().len() < N / 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), half)
        .await
        .expect("half pushed");
    op.kill().await;
    // On the simulator's clock: calls are recorded when answered, so the last record can predate the kill.
    let killed_at_ms = sim.elapsed_ms();
    let _op = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &args).await;

    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let list = api.list(&Default::default()).await.unwrap();
        let ready = list.items.iter().filter(|cp| ready_is(cp, TRUE, "Pushed")).count();
        if ready == N {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ready} of {N} Ready");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let mut by_target: std::collections::BTreeMap<String, Vec<scm_sim::Call>> = Default::default();
    for call in sim.pushes() {
        let target = call.body["target_project"].as_str().unwrap_or_default().to_owned();
        by_target.entry(target).or_default().push(call);
    }
    assert_eq!(by_target.len(), N);
    // In order of arrival (the simulator records in order of answer, and slow answers come late).
    for calls in by_target.values_mut() {
        calls.sort_by_key(|c| c.at_ms);
    }
    let faulted = sim.pushes().iter().filter(|c| c.status != 204).count();
    // About 12 of the ~60 faults are gateway timeouts; none at all would mean the timeout path went untested.
    let timed_out = sim.pushes().iter().filter(|c| c.status == 504).count();
    assert!(timed_out > 0, "no gateway timeout among {faulted} faults");
    let mut doubles = 0;
    for (target, calls) in &by_target {
        let successes = calls.iter().filter(|c| c.status == 204).count();
        assert!(successes >= 1, "{target}: {calls:#?}");
        doubles += successes - 1;
        // Backoff: the k-th retry comes at least 0.8 x 5 s x 2^(k-1) after the attempt before it (20% jitter).
        // The new operator counts from what the old one recorded, so counting afresh after the kill is a lower
        // bound; an attempt in flight at the kill may be repeated at once.
        for segment in [
            calls.iter().filter(|c| c.at_ms <= killed_at_ms).collect::<Vec<_>>(),
            calls.iter().filter(|c| c.at_ms > killed_at_ms).collect::<Vec<_>>(),
        ] {
            for (k, pair) in segment.windows(2).enumerate() {
                let gap = pair[1].at_ms.saturating_sub(pair[0].at_ms);
                let floor = 4000 * (1 << k.min(6)) as u64;
                assert!(
                    gap >= floor,
                    "{target}: retry {} after {gap} ms (operator killed at {killed_at_ms} ms): {calls:#?}",
                    k + 1
                );
            }
        }
    }
    println!(
        "{} push calls for {N} objects, {faulted} faulted ({timed_out} timed out); {doubles} second successful pushes",
        sim.pushes().len()
    );
    // Only pushes in flight when the operator was killed may have been answered twice.
    assert!(
        doubles <= 16,
        "{doubles} objects pushed twice; at most the 16 in flight at the kill may be"
    );
}

/// A control plane of a test's own (so restarting its API server disturbs no other test), stopped on drop.
struct OwnControlPlane {
    dir: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

impl OwnControlPlane {
    fn script() -> String {
        format!("{ROOT}/tests/e2e/control-plane.sh")
    }

    async fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cp");
        let out = tokio::process::Command::new("bash")
            .args([Self::script().as_str(), "start", dir.to_str().unwrap()])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Self { dir, _tmp: tmp }
    }

    fn kubeconfig(&self, who: &str) -> std::path::PathBuf {
        self.dir.join(format!("{who}.kubeconfig"))
    }

    async fn kubectl(&self, args: &[&str]) {
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig("admin"))
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    async fn restart_apiserver(&self) {
        let out = tokio::process::Command::new("bash")
            .args([Self::script().as_str(), "restart-apiserver", self.dir.to_str().unwrap()])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for OwnControlPlane {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .args([Self::script().as_str(), "stop", self.dir.to_str().unwrap()])
            .output();
    }
}

/// The API server restarted mid-run: the operator recovers by itself (no restart of its own), and every object,
/// including those created after the restart, ends Ready with exactly one push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn the_operator_recovers_from_an_api_server_restart() {
    let cp = OwnControlPlane::start().await;
    cp.kubectl(&[
        "apply",
        "--server-side",
        "-f",
        &format!("{ROOT}/crds/certificatepush.yaml"),
    ])
    .await;
    cp.kubectl(&[
        "apply",
        "--server-side",
        "-f",
        &format!("{ROOT}/deploy/manifests/rbac.yaml"),
    ])
    .await;
    cp.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/certificatepushes.scm.certpush.dev",
        "--timeout=60s",
    ])
    .await;
    cp.kubectl(&["create", "namespace", "restart"]).await;
    let client = client_for(&cp.kubeconfig("admin")).await;
    put_secret(&client, "restart", "scm", GOOD_TOKEN).await;
    let sim = start_sim().await;
    let op = Operator::start_custom("restart", &sim, cp.kubeconfig("restricted"), &[]).await;
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), "restart");
    create_numbered(&client, "restart", "r", 0..10).await;
    wait_numbered_pushed(&api, "r", 0..10, T).await;

    let restarted = std::time::Instant::now();
    cp.restart_apiserver().await;
    // A fresh client: the point is the operator's, whose connections died with the old process.
    let client = client_for(&cp.kubeconfig("admin")).await;
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), "restart");
    create_numbered(&client, "restart", "r", 10..20).await;
    wait_numbered_pushed(&api, "r", 10..20, Duration::from_secs(90)).await;
    println!(
        "objects created after the API server restart were pushed within {:?}",
        restarted.elapsed()
    );
    assert_eq!(
        pushed_projects(&sim.successful_pushes()),
        numbered("r", 20),
        "each object pushed exactly once"
    );
    op.wait_probe("/healthz", 200).await;
}
