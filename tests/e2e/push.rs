//! Pushing: admission of the CRD's schema, the happy path, a quiet steady state, re-push requests, transient
//! faults and their backoff, Secret churn during first pushes, the Pending condition of a slow push, and periodic
//! resyncs that cost nothing.

use std::time::Duration;

use certpush_operator::crd::{CertificatePush, CertificatePushSpec, TargetService};
use certpush_operator::status::{self, FALSE, TRUE};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use scm_sim::{Fault, FaultAction, Sim};
use serde_json::json;

use crate::harness::*;

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
        ("64-char project", with("targetProject", json!("p".repeat(64)))),
        ("project with a space", with("targetProject", json!("cn north 4"))),
        ("Secret name with /", with("credentialsRef", json!({"name": "a/b"}))),
        (
            "token key with /",
            with("credentialsRef", json!({"name": "scm", "tokenKey": "a/b"})),
        ),
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
                        s.message.contains("set exactly one of certificateId"),
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
        "metadata": {"name": "good"}, "spec": with("targetProject", json!("p".repeat(63))),
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
    // The expiry SCM gives for the certificate pushed, read once, is in status and in the expiry gauge.
    let not_after = st
        .pushed
        .as_ref()
        .and_then(|p| p.not_after.clone())
        .expect("status.pushed.notAfter");
    let expiry = certpush_operator::status::parse_time(&not_after).expect("an RFC 3339 time");
    assert!(expiry > jiff::Timestamp::now(), "{not_after}");
    let shows: Vec<_> = sim.calls().into_iter().filter(|c| c.method == "GET").collect();
    assert_eq!(shows.len(), 1, "one ShowCertificate per push: {shows:#?}");
    let series = format!(
        "certpush_certificate_expiration_timestamp_seconds{{namespace=\"{ns}\",name=\"waf\"}} {}",
        expiry.as_second()
    );
    op.wait_metric(&series, T).await;

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
    let resources = format!("certpush_resources{{namespace=\"{ns}\",ready=\"True\",reason=\"Pushed\"}} 1");
    for line in [
        "certpush_scm_requests_total{operation=\"push\",code=\"204\",error_code=\"\"} 1",
        "controller_runtime_reconcile_total{controller=\"certificatepush\",result=\"success\"}",
        "controller_runtime_max_concurrent_reconciles{controller=\"certificatepush\"} 64",
        resources.as_str(),
        "leader_election_master_status{name=\"certpush-operator\"} 1",
        "certpush_build_info{version=",
        "process_resident_memory_bytes ",
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
    // The push and the one ShowCertificate that reads its expiry.
    assert_eq!(sim.calls().len(), 2, "no SCM calls at steady state: {:#?}", sim.calls());
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

/// The periodic resync looks at every object again with nothing changed: each is reconciled, and the up-to-date
/// objects cost no SCM request and no status write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_resync_of_pushed_objects_sends_and_writes_nothing() {
    const N: usize = 5;
    let client = admin().await;
    let ns = namespace(&client, "resync").await;
    let sim = start_sim().await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let op = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &["--resync-period", "2s"]).await;
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    create_numbered(&client, &ns, "r", 0..N).await;
    wait_numbered_pushed(&api, "r", 0..N, T).await;
    let versions = |list: kube::core::ObjectList<CertificatePush>| -> Vec<Option<String>> {
        list.items.into_iter().map(|cp| cp.metadata.resource_version).collect()
    };
    let before = versions(api.list(&Default::default()).await.unwrap());
    let calls = sim.calls().len();

    // Nothing edits the objects from here on: only resyncs reconcile them, two rounds of N at least.
    let unchanged = op.reconciles("unchanged").await;
    let started = std::time::Instant::now();
    op.wait_reconciles("unchanged", unchanged + 2 * N as u64).await;
    println!(
        "{} reconciles by resync in {:?} (period 2 s)",
        op.reconciles("unchanged").await - unchanged,
        started.elapsed()
    );
    assert_eq!(sim.calls().len(), calls, "a resync sends nothing to SCM");
    assert_eq!(
        versions(api.list(&Default::default()).await.unwrap()),
        before,
        "a resync writes no status"
    );
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

/// Defect: one token bucket served every account and waiting reconciles held the controller's workers, so one object
/// of team B (its own account) waited behind team A's hundreds. Each account has its own bucket, and a busy account
/// holds at most a few workers while the rest of its objects come back later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn one_teams_backlog_does_not_hold_up_another_teams_account() {
    let client = admin().await;
    let ns = namespace(&client, "fair").await;
    let sim = start_sim().await;
    let team_b = GOOD_TOKEN.replace("7d1c", "7d1b");
    sim.set_tokens(vec![GOOD_TOKEN.into(), team_b.clone()]);
    put_secret(&client, &ns, "scm-a", GOOD_TOKEN).await;
    put_secret(&client, &ns, "scm-b", &team_b).await;
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    for i in 0..300 {
        let name = format!("a-{i}");
        create_push(&client, &ns, &name, spec(CERT, TargetService::Waf, &name, "scm-a")).await;
    }
    let qps = ["--scm-qps", "5", "--scm-burst", "1"];
    let op = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &qps).await;
    // Team A's backlog is draining at 5 a second (a minute's worth); then team B's one object arrives.
    op.wait_reconciles("pushed", 10).await;
    let started = std::time::Instant::now();
    create_push(&client, &ns, "b", spec(CERT, TargetService::Waf, "b", "scm-b")).await;
    wait_for(&api, "b", T, "team B Ready", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let b_ready = started.elapsed();
    let a_pushed = sim.successful_pushes().len() - 1;
    eprintln!("team B Ready {b_ready:?} after its create, while team A had {a_pushed} of 300 pushed");
    assert!(a_pushed < 300, "team A is still draining");
    assert!(b_ready < Duration::from_secs(5), "team B waited {b_ready:?}");
}

/// `targetProjects`: one batch push to every region; a region SCM fails is retried alone, a region added later is
/// pushed alone, and Ready needs every region. Each region's copy ID is in status.targets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn several_regions_are_batch_pushed_and_a_failed_one_is_retried_alone() {
    let client = admin().await;
    let ns = namespace(&client, "regions").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    sim.fail_region("la-south-2");
    let api = create_push(
        &client,
        &ns,
        "multi",
        regions(&["cn-north-4", "la-south-2", "ap-southeast-1"]),
    )
    .await;
    let cp = wait_for(&api, "multi", T, "Retrying on la-south-2", |cp| {
        ready_is(cp, FALSE, "Retrying")
    })
    .await;
    let (_, message) = ready_message(&cp);
    assert!(
        message.contains(&format!("la-south-2 ({})", scm_sim::REGION_BUSY)),
        "{message}"
    );
    let held: Vec<String> = status(&cp)
        .targets
        .iter()
        .filter(|t| t.certificate_id.as_deref() == Some(CERT))
        .map(|t| t.project.clone())
        .collect();
    assert_eq!(held, ["cn-north-4", "ap-southeast-1"]);
    assert!(
        status(&cp)
            .targets
            .iter()
            .all(|t| t.certificate_id.is_none() || t.target_certificate_id.is_some())
    );

    sim.heal_region("la-south-2");
    let cp = wait_for(&api, "multi", Duration::from_secs(60), "Ready=True", |cp| {
        ready_is(cp, TRUE, "Pushed")
    })
    .await;
    assert_eq!(status(&cp).targets.len(), 3);
    let batches: Vec<Vec<String>> = sim
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/batch-push"))
        .map(|c| {
            c.body["target_projects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(batches.first().map(Vec::len), Some(3), "{batches:?}");
    assert!(
        batches[1..].iter().all(|b| b == &["la-south-2"]),
        "only the failed region again: {batches:?}"
    );
    let copies = sim.copies();
    for region in ["cn-north-4", "la-south-2", "ap-southeast-1"] {
        assert_eq!(
            copies.iter().filter(|c| c.project == region).count(),
            1,
            "{region} pushed once: {copies:#?}"
        );
    }

    // A region added later is pushed alone.
    api.patch(
        "multi",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"targetProjects": ["cn-north-4", "la-south-2", "ap-southeast-1", "cn-east-3"]}})),
    )
    .await
    .unwrap();
    let cp = wait_for(&api, "multi", T, "the new region pushed", |cp| {
        ready_is(cp, TRUE, "Pushed") && status(cp).targets.len() == 4
    })
    .await;
    assert!(
        status(&cp)
            .targets
            .iter()
            .all(|t| t.certificate_id.as_deref() == Some(CERT))
    );
    let last = sim
        .calls()
        .into_iter()
        .rfind(|c| c.path.ends_with("/batch-push"))
        .unwrap();
    assert_eq!(last.body["target_projects"], json!(["cn-east-3"]));
    assert_eq!(sim.copies().len(), 4);
    assert!(sim.pushes().is_empty(), "no single push");

    // A region dropped from the list: nothing to send, and it leaves status.targets.
    let pushed_at = status(&cp).last_push_time;
    let calls = sim.calls().len();
    api.patch(
        "multi",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"targetProjects": ["cn-north-4", "ap-southeast-1", "cn-east-3"]}})),
    )
    .await
    .unwrap();
    let cp = wait_for(&api, "multi", T, "the dropped region gone from status", |cp| {
        status(cp).targets.len() == 3 && status(cp).observed_generation == cp.metadata.generation
    })
    .await;
    assert!(ready_is(&cp, TRUE, "Pushed"));
    assert_eq!(status(&cp).last_push_time, pushed_at, "nothing pushed");
    assert_eq!(sim.calls().len(), calls, "{:#?}", sim.calls());
}

/// Defect: two installations (cluster and namespace scope, or two teams) both pushed every object they saw. Each
/// handles only the objects that name it in spec.controllerName (those naming none belong to the default name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn two_installations_never_push_the_same_object() {
    let client = admin().await;
    let ns = namespace(&client, "two-installs").await;
    let sim = start_sim().await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let default = Operator::start(&ns, &sim, "info").await;
    let team_b = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &["--controller-name", "team-b"]).await;
    let api = create_push(
        &client,
        &ns,
        "unnamed",
        spec(CERT, TargetService::Waf, "cn-north-4", "scm"),
    )
    .await;
    let named = CertificatePushSpec {
        controller_name: Some("team-b".into()),
        ..spec(CERT, TargetService::Waf, "cn-east-3", "scm")
    };
    create_push(&client, &ns, "named", named).await;
    for name in ["unnamed", "named"] {
        wait_for(&api, name, T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    }
    assert_eq!(
        sim.successful_pushes().len(),
        2,
        "each object pushed once: {:#?}",
        sim.calls()
    );
    assert_eq!(
        (default.reconciles("pushed").await, team_b.reconciles("pushed").await),
        (1, 1)
    );
    assert!(default.reconciles("ignored").await >= 1 && team_b.reconciles("ignored").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn several_namespaces_are_watched_with_a_role_in_each_and_nothing_else() {
    let client = admin().await;
    let (team_a, team_b, other) = (
        namespace(&client, "multi-a").await,
        namespace(&client, "multi-b").await,
        namespace(&client, "multi-other").await,
    );
    let sim = start_sim().await;
    // An identity with the operator's rights in team-a and team-b only (the chart's scope: namespaces binds a Role
    // in each): an `Api::all` watch would be forbidden, so the operator must watch each namespace on its own.
    let user = format!("e2e-multi-ns-{team_a}");
    for ns in [&team_a, &team_b] {
        bind(ns, "ClusterRole", "certpush-operator", &user).await;
        // The namespaced Role reads the Secrets of its namespace; the shipped ClusterRole reads none.
        bind(ns, "ClusterRole", ALL_SECRETS_ROLE, &user).await;
    }
    bind(OPERATOR_NAMESPACE, "Role", "certpush-operator-digest-key", &user).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = impersonating_kubeconfig(&user, dir.path());
    for ns in [&team_a, &team_b, &other] {
        put_secret(&client, ns, "scm", GOOD_TOKEN).await;
        create_push(&client, ns, "www", spec(CERT, TargetService::Waf, "cn-north-4", "scm")).await;
    }
    let op = Operator::start_custom(&team_a, &sim, kubeconfig, &["--namespace", &team_b]).await;
    for ns in [&team_a, &team_b] {
        let api: Api<CertificatePush> = Api::namespaced(client.clone(), ns);
        wait_for(&api, "www", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    }
    // Both namespaces are in the one cache the controller and the metrics read.
    for ns in [&team_a, &team_b] {
        op.wait_metric(
            &format!("certpush_resources{{namespace=\"{ns}\",ready=\"True\",reason=\"Pushed\"}} 1"),
            T,
        )
        .await;
    }
    // A later change in either namespace is still seen (the other's watch did not drop it from the cache).
    let api_b: Api<CertificatePush> = Api::namespaced(client.clone(), &team_b);
    api_b
        .patch(
            "www",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"targetProject": "cn-east-3"}})),
        )
        .await
        .unwrap();
    wait_for(&api_b, "www", T, "pushed to cn-east-3", |cp| {
        ready_is(cp, TRUE, "Pushed") && status(cp).observed_generation == Some(2)
    })
    .await;
    assert_eq!(sim.successful_pushes().len(), 3, "{:#?}", sim.calls());
    let untouched: Api<CertificatePush> = Api::namespaced(client.clone(), &other);
    assert!(
        untouched.get("www").await.unwrap().status.is_none(),
        "a namespace not watched was reconciled"
    );
    assert!(!op.logs().contains(&format!("{other}/www")), "{}", op.logs());
}

/// Binds `kind` `role` to `user` in `ns`.
async fn bind(ns: &str, kind: &str, role: &str, user: &str) {
    let binding = format!("--{}={role}", kind.to_lowercase());
    let (ok, out) = kubectl(&[
        "-n",
        ns,
        "create",
        "rolebinding",
        &format!("{user}-{role}"),
        &binding,
        "--user",
        user,
    ])
    .await;
    assert!(ok, "{out}");
}

/// Defect: every push attempt of a certificateId object read the certificate's expiry first (GET
/// /certificates/{id}): two SCM requests per push, again on every retry, for each object naming the same
/// certificate. The expiry is now read once per certificate, shared and cached; a retry reads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn the_expiry_of_a_certificate_is_read_once_for_every_object_and_retry() {
    let client = admin().await;
    let ns = namespace(&client, "expiry-once").await;
    let sim = start_sim().await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    // The first two pushes fail with a transient gateway error: each is retried.
    sim.inject(Fault {
        certificate_id: Some(CERT.into()),
        times: 2,
        action: FaultAction::Error {
            status: 503,
            error_code: "APIGW.0613".into(),
            error_msg: "Service unavailable".into(),
        },
    });
    let _op = Operator::start(&ns, &sim, "info").await;
    for i in 0..6 {
        let name = format!("e{i}");
        create_push(&client, &ns, &name, spec(CERT, TargetService::Waf, &name, "scm")).await;
    }
    for i in 0..6 {
        let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
        let cp = wait_for(&api, &format!("e{i}"), Duration::from_secs(60), "Ready=True", |cp| {
            ready_is(cp, TRUE, "Pushed")
        })
        .await;
        assert!(
            status(&cp).pushed.and_then(|p| p.not_after).is_some(),
            "the expiry is known to every object"
        );
    }
    let reads = sim
        .calls()
        .iter()
        .filter(|c| c.method == "GET" && c.path.ends_with(&format!("/certificates/{CERT}")))
        .count();
    let pushes = sim.pushes().len();
    eprintln!("6 objects, 2 failed attempts: {reads} expiry read(s), {pushes} push(es)");
    assert_eq!(reads, 1, "{:#?}", sim.calls());
    assert_eq!(pushes, 8);
}

/// Defect: the re-push annotation on a targetProjects object recorded a push (lastPushTime, Event "Pushed") without
/// sending anything, since every region already held the certificate. A re-push sends to every listed region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_repush_of_several_regions_sends_to_every_region() {
    let client = admin().await;
    let ns = namespace(&client, "regions-repush").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let api = create_push(&client, &ns, "multi", regions(&["cn-north-4", "ap-southeast-1"])).await;
    wait_for(&api, "multi", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    assert_eq!(batch_pushes(&sim).len(), 1);
    let annotate = json!({"metadata": {"annotations": {"scm.certpush.dev/push-requested-at": "2026-12-07T09:00:00Z"}}});
    api.patch("multi", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    wait_for(&api, "multi", T, "the request handled", |cp| {
        status(cp).last_handled_push_request.as_deref() == Some("2026-12-07T09:00:00Z") && ready_is(cp, TRUE, "Pushed")
    })
    .await;
    let sent = batch_pushes(&sim);
    assert_eq!(sent.len(), 2, "the re-push was sent: {sent:?}");
    assert_eq!(sent[1], json!(["cn-north-4", "ap-southeast-1"]));
}

/// Defects: `targetProject` -> `targetProjects` pushed the region that already held the certificate again (two
/// ELB/WAF copies; CDN refuses and the object retried forever), and `targetProjects` -> `targetProject` plus
/// `spec.deploy` wedged in `Deploying` with no request (status.pushed kept the joined list). One per-region record
/// serves both forms: a switch pushes only regions that lack the certificate, and deploy works after any switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn switching_between_one_and_several_regions_pushes_only_what_lacks_it_and_deploys() {
    let client = admin().await;
    let ns = namespace(&client, "regions-switch").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let api = create_push(&client, &ns, "sw", spec(CERT, TargetService::Elb, "cn-north-4", "scm")).await;
    wait_for(&api, "sw", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    assert_eq!(sim.successful_pushes().len(), 1);
    // The whole spec is replaced, as `kubectl apply` of an edited manifest would.
    let apply = |spec: serde_json::Value| {
        let api = api.clone();
        async move {
            let mut cp = api.get("sw").await.unwrap();
            cp.spec = serde_json::from_value(spec).unwrap();
            api.replace("sw", &PostParams::default(), &cp)
                .await
                .unwrap()
                .metadata
                .generation
        }
    };
    let base = json!({"certificateId": CERT, "targetService": "ELB", "credentialsRef": {"name": "scm"}});
    let with = |extra: serde_json::Value| {
        let mut s = base.clone();
        s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        s
    };
    let api2: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    let settled = |generation: Option<i64>, reason: &'static str| {
        let api2 = api2.clone();
        async move {
            wait_for(&api2, "sw", T, reason, |cp| {
                status(cp).observed_generation == generation && ready_is(cp, TRUE, reason)
            })
            .await
        }
    };

    let generation = apply(with(json!({"targetProjects": ["cn-north-4", "ap-southeast-1"]}))).await;
    settled(generation, "Pushed").await;
    assert_eq!(
        batch_pushes(&sim),
        [json!(["ap-southeast-1"])],
        "only the region that lacked it"
    );
    assert_eq!(sim.successful_pushes().len(), 1, "cn-north-4 not pushed again");

    let generation = apply(with(
        json!({"targetProject": "ap-southeast-1", "deploy": {"resources": [{"id": "elb-cert-1"}]}}),
    ))
    .await;
    let cp = settled(generation, "Deployed").await;
    assert_eq!(status(&cp).pushed.unwrap().target_project, "ap-southeast-1");
    assert_eq!(sim.deploy_count(CERT, "elb-cert-1"), 1);
    assert_eq!(batch_pushes(&sim).len(), 1, "nothing pushed again");
    assert_eq!(sim.successful_pushes().len(), 1);
}

/// Defect: a region SCM refuses for good ("Invalid region id.": it does not know it) was batch-pushed again on every
/// backoff, every 10 minutes forever. It stalls with reason `RegionRejected` naming the region, sends nothing more,
/// and a fixed targetProjects pushes only the region that lacks the certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_region_scm_does_not_know_stalls_and_is_not_sent_again() {
    let client = admin().await;
    let ns = namespace(&client, "regions-rejected").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    // A typo: no such region.
    let api = create_push(&client, &ns, "typo", regions(&["cn-north-4", "ap-southeastt"])).await;
    let cp = wait_for(&api, "typo", T, "RegionRejected", |cp| {
        ready_is(cp, FALSE, "RegionRejected")
    })
    .await;
    let (_, message) = ready_message(&cp);
    assert!(message.contains("ap-southeastt (Invalid region id.)"), "{message}");
    assert_eq!(condition(&cp, "Stalled"), Some((TRUE.into(), "RegionRejected".into())));
    assert!(status(&cp).next_retry_time.is_none(), "no retry is scheduled");
    assert_eq!(batch_pushes(&sim).len(), 1);
    api.patch(
        "typo",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"targetProjects": ["cn-north-4", "ap-southeast-1"]}})),
    )
    .await
    .unwrap();
    wait_for(&api, "typo", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    assert_eq!(
        batch_pushes(&sim),
        [json!(["cn-north-4", "ap-southeastt"]), json!(["ap-southeast-1"])]
    );
}

/// Defect: a request still waiting for a rate-limit token when the operator shut down was recorded as a failed
/// attempt (Retrying, a failure counted, a retry backed off, a Warning Event). It was never sent: nothing is
/// recorded, and the next operator pushes each object once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_request_cut_short_by_shutdown_is_no_failure() {
    const N: usize = 6;
    let client = admin().await;
    let ns = namespace(&client, "shutdown").await;
    let sim = start_sim().await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    // One request a second: most pushes wait for a token.
    let slow = ["--scm-qps", "1", "--scm-burst", "1"];
    let mut op = Operator::start_custom(&ns, &sim, restricted_kubeconfig(), &slow).await;
    create_numbered(&client, &ns, "s", 0..N).await;
    let deadline = std::time::Instant::now() + T;
    while sim.pushes().is_empty() {
        assert!(std::time::Instant::now() < deadline, "nothing was pushed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(op.terminate().await.success());
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    let sent = sim.pushes().len();
    assert!(
        sent < N,
        "some requests were still waiting at shutdown ({sent} of {N} sent)"
    );
    for i in 0..N {
        let cp = api.get(&format!("s{i}")).await.unwrap();
        let st = status(&cp);
        assert_eq!(
            (st.failed_attempts, st.next_retry_time.as_deref()),
            (None, None),
            "s{i}: a request not sent at shutdown is no failed attempt: {st:?}"
        );
    }
    let events = events_for(&client, &ns, "s0").await;
    assert!(
        !events.iter().any(|(t, ..)| t == "Warning"),
        "no Warning for a shutdown: {events:?}"
    );
    let _op = Operator::start(&ns, &sim, "info").await;
    wait_numbered_pushed(&api, "s", 0..N, T).await;
    assert_eq!(sim.successful_pushes().len(), N, "each pushed once");
}

/// CERT pushed to ELB in `list` (spec.targetProjects).
fn regions(list: &[&str]) -> CertificatePushSpec {
    CertificatePushSpec {
        target_project: String::new(),
        target_projects: list.iter().map(|r| (*r).to_owned()).collect(),
        ..spec(CERT, TargetService::Elb, "unused", "scm")
    }
}

/// The regions of each batch push SCM received, in order.
fn batch_pushes(sim: &Sim) -> Vec<serde_json::Value> {
    sim.calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/batch-push"))
        .map(|c| c.body["target_projects"].clone())
        .collect()
}
