//! Reconciles against a mocked API server (every request recorded and answered by the test) and, where SCM is
//! called, the SCM simulator over HTTP.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{reflector, watcher};
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use serde_json::json;

use super::persist::{record, save_after_request};
use super::{Context, FIELD_MANAGER, reconcile};
use crate::crd::{CertificatePush, CertificatePushSpec, CertificatePushStatus, TargetService};
use crate::events::EventQueue;
use crate::leader::Leadership;
use crate::metrics::{self, Metrics};
use crate::scm::{FailureKind, PushFailure, ScmClient};
use crate::status::{self, Attempt};
use scm_sim::{Sim, SimConfig};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const ENDPOINT: &str = "http://127.0.0.1:9/";
const PATH: &str = "/apis/scm.certpush.dev/v1alpha1/namespaces/ns/certificatepushes/one";

/// A CertificatePush of `certificateId` to WAF in cn-north-4 with credentials in Secret `secret`.
pub(crate) fn cp(ns: &str, name: &str, secret: &str) -> CertificatePush {
    let mut spec = CertificatePushSpec::example();
    spec.credentials_ref.as_mut().expect("the example has one").name = secret.into();
    let mut cp = CertificatePush::new(name, spec);
    cp.metadata.namespace = Some(ns.into());
    cp
}

type ApiServer = tower_test::mock::Handle<http::Request<kube::client::Body>, http::Response<kube::client::Body>>;

/// A context whose Kubernetes client is a mocked API server and whose SCM endpoint is `scm`.
fn mocked_context(scm: &str) -> (Arc<Context>, ApiServer) {
    let (ctx, server, _) = mocked_context_with_metrics(scm);
    (ctx, server)
}

/// [`mocked_context`] with the registry its metrics are in.
fn mocked_context_with_metrics(scm: &str) -> (Arc<Context>, ApiServer, Registry) {
    context_leading(scm, Leadership::always())
}

/// A context as [`mocked_context`] makes it, acting under `leadership`, with the registry of its metrics.
fn context_leading(scm: &str, leadership: Leadership) -> (Arc<Context>, ApiServer, Registry) {
    crate::install_crypto_provider();
    let (service, handle) = tower_test::mock::pair();
    let client = Client::new(service, "default");
    let scm = ScmClient::new(scm, None).unwrap();
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: None,
    };
    let events = EventQueue::start(Recorder::new(client.clone(), reporter));
    let ctx = Context::new(client, scm, events, metrics, leadership);
    (Arc::new(ctx), handle, registry)
}

fn json_response(status: u16, body: serde_json::Value) -> http::Response<kube::client::Body> {
    http::Response::builder()
        .status(status)
        .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn api_status(code: u16, reason: &str) -> serde_json::Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": format!("{reason} from the test")})
}

type Requests = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// Serves the mocked API server in the background: `answer` gets "METHOD path" and the JSON body of each
/// request; every request is recorded. A reconcile never waits on a test that forgot to answer.
fn serve(
    mut server: ApiServer,
    answer: impl Fn(&str, &serde_json::Value) -> (u16, serde_json::Value) + Send + 'static,
) -> Requests {
    let seen: Requests = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Some((request, reply)) = server.next_request().await {
            let what = format!("{} {}", request.method(), request.uri().path());
            let body = request.into_body().collect_bytes().await.unwrap();
            let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            let (code, value) = answer(&what, &body);
            lock(&record).push((what, body));
            reply.send_response(json_response(code, value));
        }
    });
    seen
}

fn paths(seen: &Requests) -> Vec<String> {
    lock(seen).iter().map(|(p, _)| p.clone()).collect()
}

fn attempt(generation: i64) -> Attempt<'static> {
    Attempt {
        generation,
        push_request: None,
        credentials_digest: Some("sha256:1"),
        endpoint: ENDPOINT,
        target: "x",
        now: "2026-01-01T00:00:00Z".parse().unwrap(),
    }
}

fn pushed_object() -> (CertificatePush, CertificatePushStatus) {
    let mut obj = cp("ns", "one", "scm");
    obj.metadata.uid = Some("uid-1".into());
    obj.metadata.generation = Some(3);
    let a = attempt(3);
    let pending = status::pending(&Default::default(), 3, a.now);
    obj.status = Some(pending.clone());
    let mut pushed = status::pushed(&pending, &a, 204, Some("r".into()));
    // As the operator records a push: what went where.
    pushed.pushed = Some(crate::crd::PushedTarget {
        deploy_only: false,
        certificate_id: "scs1554192131150".into(),
        target_service: TargetService::Waf,
        target_project: "cn-north-4".into(),
        generation: 3,
        not_after: None,
    });
    (obj, pushed)
}

fn with_status(obj: &CertificatePush, status: &CertificatePushStatus) -> serde_json::Value {
    let mut o = obj.clone();
    o.status = Some(status.clone());
    serde_json::to_value(&o).unwrap()
}

fn secret(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "scm", "namespace": "ns", "resourceVersion": "5"},
           "data": {"token": base64::engine::general_purpose::STANDARD.encode(token)}})
}

/// The credential the Secret [`secret`] of a good token holds, as `obj` reads it with `ctx`'s client.
fn credentials_of(ctx: &Context, obj: &CertificatePush) -> crate::account::Access {
    let token = "unit-good-token-0000000000000000000000000000000";
    let secret = serde_json::from_value(secret(token)).unwrap();
    let reference = obj.spec.credentials_ref.as_ref().unwrap();
    crate::account::Access {
        scm: ctx.scm.clone(),
        credentials: crate::scm::Credentials::from_secret(Some(&secret), reference).unwrap(),
        enterprise_project_id: None,
    }
}

const BAD_TOKEN: &str = "unit-bad-token-00000000000000000000000000000000";

#[tokio::test]
async fn status_write_after_push_is_retried_not_the_push() {
    let (ctx, server) = mocked_context(ENDPOINT);
    let (obj, pushed) = pushed_object();
    let old = obj.status.clone().unwrap();
    let api: Api<CertificatePush> = Api::namespaced(ctx.client.clone(), "ns");
    let echo = serde_json::to_value(&obj).unwrap();
    let writes = std::sync::atomic::AtomicUsize::new(0);
    let seen = serve(server, move |_, body| {
        assert_eq!(body["status"]["pushedGeneration"], 3);
        match writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => (500, api_status(500, "InternalError")),
            _ => (200, echo.clone()),
        }
    });
    save_after_request(&ctx, &api, &obj, &old, &pushed)
        .await
        .expect("second write succeeds");
    assert_eq!(paths(&seen), vec![format!("PATCH {PATH}/status"); 2]);
}

/// Defect: a status write was unconditional, so a deposed leader's late write (its push answered after the fence
/// closed) erased what the new leader had written since (pendingDeletions, deployments, targets). Every write now
/// names the resourceVersion this reconcile read or wrote last; a 409 means another write came first: it is not
/// retried against the same version, the status is kept in memory, and the next reconcile decides from a fresh read.
#[tokio::test]
async fn a_status_write_is_conditional_and_a_conflict_is_kept_not_retried() {
    let (ctx, server) = mocked_context(ENDPOINT);
    let (mut obj, pushed) = pushed_object();
    obj.metadata.resource_version = Some("41".into());
    let old = obj.status.clone().unwrap();
    let api = api_for(&ctx);
    let mut echo = serde_json::to_value(&obj).unwrap();
    echo["metadata"]["resourceVersion"] = json!("42");
    let seen = serve(server, move |_, body| {
        match body["metadata"]["resourceVersion"].as_str() {
            Some("41") => (200, echo.clone()),
            _ => (409, api_status(409, "Conflict")),
        }
    });
    record(&ctx, &obj, &api, &old, pushed.clone())
        .await
        .expect("written on top of the version read");
    assert_eq!(lock(&seen)[0].1["metadata"]["resourceVersion"], "41");
    assert_eq!(
        ctx.versions.get("uid-1").as_deref(),
        Some("42"),
        "the next write builds on this one"
    );
    // Another writer came first: the version this reconcile holds is stale.
    ctx.versions.set("uid-1", Some("40".into()));
    lock(&seen).clear();
    let mut newer = pushed.clone();
    newer.request_id = Some("r2".into());
    let started = Instant::now();
    let refused = record(&ctx, &obj, &api, &pushed, newer).await;
    assert!(refused.is_err(), "a conflict fails the reconcile");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "not retried against the same version"
    );
    let writes: Vec<String> = paths(&seen).into_iter().filter(|p| p.ends_with("/status")).collect();
    assert_eq!(writes, [format!("PATCH {PATH}/status")]);
    assert_eq!(ctx.remembered(), 1, "kept in memory, written after a fresh read");
    // The version lives only as long as its reconcile.
    ctx.versions.set("uid-1", None);
    assert_eq!(ctx.versions.len(), 0);
}

/// Defect: a 404 or 422 on the status write was retried for ~6 s and then parked in memory forever.
#[tokio::test]
async fn status_writes_that_cannot_succeed_are_not_retried_and_do_not_wedge() {
    // 404: the object was deleted during the push; nothing is kept.
    let (ctx, server) = mocked_context(ENDPOINT);
    let (obj, pushed) = pushed_object();
    let old = obj.status.clone().unwrap();
    let api: Api<CertificatePush> = Api::namespaced(ctx.client.clone(), "ns");
    let seen = serve(server, |_, _| (404, api_status(404, "NotFound")));
    for _ in 0..3 {
        ctx.memory.count_error("uid-1");
    }
    let started = Instant::now();
    record(&ctx, &obj, &api, &old, pushed.clone())
        .await
        .expect("a deleted object is not an error");
    assert!(started.elapsed() < Duration::from_secs(1), "no retry loop");
    assert_eq!(paths(&seen), [format!("PATCH {PATH}/status")]);
    assert_eq!(ctx.remembered(), 0, "nothing is kept for a deleted object");

    // 422: the API server will never take this status. It is logged, counted and announced, and kept in
    // memory as the truth, so a later reconcile neither fails nor pushes again.
    let (ctx, server, registry) = mocked_context_with_metrics(ENDPOINT);
    let stored = serde_json::to_value(&obj).unwrap();
    let seen = serve(server, move |what, _| match what {
        w if w.ends_with("/status") => (422, api_status(422, "Invalid")),
        w if w.starts_with("GET") => (200, stored.clone()),
        _ => (201, json!({})),
    });
    record(&ctx, &obj, &api_for(&ctx), &old, pushed.clone())
        .await
        .expect("an invalid status is not a reconcile error");
    ctx.events.flush().await;
    assert_eq!(
        paths(&seen),
        [
            format!("PATCH {PATH}/status"),
            "POST /apis/events.k8s.io/v1/namespaces/ns/events".to_string()
        ]
    );
    assert!(
        lock(&seen)[1].1["note"]
            .as_str()
            .unwrap()
            .contains("Invalid from the test"),
        "the Event carries the API server's message"
    );
    assert!(metrics::encode(&registry).contains("certpush_status_write_failures_total{reason=\"invalid\"} 1"));
    lock(&seen).clear();
    let action = reconcile(Arc::new(obj), ctx.clone())
        .await
        .expect("the kept status does not wedge the object");
    assert_eq!(action, Action::await_change());
    let p = paths(&seen);
    assert_eq!(p[..2], [format!("GET {PATH}"), format!("PATCH {PATH}/status")]);
    assert!(
        !p.iter().any(|p| p.contains("/secrets/")),
        "decided on the kept (pushed) status: no push in the making: {p:?}"
    );
    // Deletion forgets it.
    ctx.memory.forget("uid-1");
    assert_eq!(ctx.remembered(), 0);
}

fn api_for(ctx: &Context) -> Api<CertificatePush> {
    Api::namespaced(ctx.client.clone(), "ns")
}

/// A first push costs the Secret GET, the status write and the Event, not a GET of the object; any later
/// reconcile of the same object reads it fresh, so a cache that lags this process's own write pushes nothing.
#[tokio::test]
async fn first_sight_skips_the_object_get_and_later_reconciles_read_fresh() {
    const TOKEN: &str = "unit-good-token-0000000000000000000000000000000";
    let sim = Sim::start(
        SimConfig {
            tokens: vec![TOKEN.into()],
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let (ctx, server) = mocked_context(&sim.url());
    let mut obj = cp("ns", "one", "scm");
    obj.metadata.uid = Some("uid-1".into());
    obj.metadata.generation = Some(1);
    let written: Arc<Mutex<serde_json::Value>> = Arc::new(Mutex::new(serde_json::to_value(&obj).unwrap()));
    let store = written.clone();
    let seen = serve(server, move |what, body| match what {
        w if w.ends_with("/secrets/scm") => (200, secret(TOKEN)),
        w if w.ends_with("/status") => {
            let mut o = lock(&store).clone();
            o["status"] = body["status"].clone();
            *lock(&store) = o.clone();
            (200, o)
        }
        w if w.starts_with("GET") => (200, lock(&store).clone()),
        _ => (201, json!({})),
    });
    // The cache still shows the object without status, as it was created.
    let stale = Arc::new(obj);
    reconcile(stale.clone(), ctx.clone()).await.expect("pushed");
    let first: Vec<String> = paths(&seen).into_iter().filter(|p| !p.contains("/events")).collect();
    assert_eq!(
        first,
        [
            "GET /api/v1/namespaces/ns/secrets/scm".to_owned(),
            format!("PATCH {PATH}/status")
        ]
    );
    assert_eq!(sim.successful_pushes().len(), 1);
    // A Secret event brings the same stale cached object back: it is read fresh, and nothing is pushed.
    ctx.events.flush().await;
    lock(&seen).clear();
    let action = reconcile(stale, ctx).await.expect("up to date");
    assert_eq!(action, Action::await_change());
    assert_eq!(paths(&seen), [format!("GET {PATH}")]);
    assert_eq!(sim.pushes().len(), 1);
}

/// Defect: a 401 whose status write failed was re-sent on the next reconcile, a second later.
#[tokio::test]
async fn a_refused_credential_is_not_resent_when_its_status_could_not_be_saved() {
    let sim = Sim::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (ctx, server) = mocked_context(&sim.url());
    let mut obj = cp("ns", "one", "scm");
    obj.metadata.uid = Some("uid-1".into());
    obj.metadata.generation = Some(1);
    obj.status = Some(status::pending(&Default::default(), 1, Timestamp::now()));
    let stored = serde_json::to_value(&obj).unwrap();
    // The operator may not write status (RBAC without certificatepushes/status) until `allow` is set.
    let allow = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let allowed = allow.clone();
    let seen = serve(server, move |what, body| match what {
        w if w.ends_with("/secrets/scm") => (200, secret(BAD_TOKEN)),
        w if w.ends_with("/status") && allowed.load(std::sync::atomic::Ordering::SeqCst) => {
            let mut o = stored.clone();
            o["status"] = body["status"].clone();
            (200, o)
        }
        w if w.ends_with("/status") => (403, api_status(403, "Forbidden")),
        w if w.starts_with("GET") => (200, stored.clone()),
        _ => (201, json!({})),
    });
    let obj = Arc::new(obj);
    assert!(
        reconcile(obj.clone(), ctx.clone()).await.is_err(),
        "the status write failed"
    );
    // The first request (reading the certificate's expiry before the push) was refused, so the push was not sent.
    assert_eq!(sim.calls().len(), 1);
    assert_eq!(sim.calls()[0].status, 401);
    // Status still forbidden: nothing new may be sent.
    assert!(reconcile(obj.clone(), ctx.clone()).await.is_err());
    assert_eq!(sim.calls().len(), 1, "the rejected token was sent again");
    // Status allowed: the kept 401 is saved first, and the object stays stalled.
    allow.store(true, std::sync::atomic::Ordering::SeqCst);
    let action = reconcile(obj.clone(), ctx.clone()).await.expect("saved");
    assert_eq!(action, Action::await_change());
    assert_eq!(sim.calls().len(), 1, "the rejected token was sent again");
    let saved = lock(&seen)
        .iter()
        .rev()
        .find(|(p, _)| p.ends_with("/status"))
        .map(|(_, b)| b.clone())
        .unwrap();
    assert_eq!(saved["status"]["conditions"][0]["reason"], "Unauthorized");
    assert_eq!(ctx.remembered(), 0);
}

#[tokio::test]
async fn unsaved_push_is_saved_first_and_nothing_is_pushed_again() {
    let (ctx, server) = mocked_context(ENDPOINT);
    let (obj, pushed) = pushed_object();
    ctx.memory.keep_unsaved("uid-1", pushed.clone());
    let echo = with_status(&obj, &pushed);
    let stored = serde_json::to_value(&obj).unwrap();
    let seen = serve(server, move |what, _| {
        if what.starts_with("GET") {
            (200, stored.clone())
        } else {
            (200, echo.clone())
        }
    });
    let action = reconcile(Arc::new(obj), ctx.clone()).await.expect("reconcile succeeds");
    assert_eq!(action, Action::await_change());
    // Anything further (a Secret GET before a push) would be a second push in the making.
    assert_eq!(paths(&seen), [format!("GET {PATH}"), format!("PATCH {PATH}/status")]);
    assert_eq!(ctx.remembered(), 0);
}

#[tokio::test]
async fn stale_cache_after_a_push_does_not_push_again() {
    // The reflector still holds the object as it was before this operator's own status write (a Secret
    // event triggered the reconcile first); the API server already has pushedGeneration.
    let (ctx, server) = mocked_context(ENDPOINT);
    let (stale, pushed) = pushed_object();
    // A Secret GET would be the first step of a second push.
    assert_eq!(
        reconcile_stale(ctx, server, stale, &pushed).await,
        [format!("GET {PATH}")]
    );
}

/// Reconciles `stale`, as the cache holds it, while the API server holds it with `pushed`; the requests it made.
async fn reconcile_stale(
    ctx: Arc<Context>,
    server: ApiServer,
    stale: CertificatePush,
    pushed: &CertificatePushStatus,
) -> Vec<String> {
    let stored = with_status(&stale, pushed);
    let seen = serve(server, move |_, _| (200, stored.clone()));
    let action = reconcile(Arc::new(stale), ctx).await.expect("reconcile succeeds");
    assert_eq!(action, Action::await_change());
    paths(&seen)
}

#[tokio::test]
async fn stalled_object_rechecks_its_secret() {
    // A rotated Secret ends a 401 stall only if the reconcile it triggers looks at the Secret.
    let (ctx, server) = mocked_context(ENDPOINT);
    let (mut obj, _) = pushed_object();
    let pending = obj.status.clone().unwrap();
    let failure = PushFailure {
        kind: FailureKind::Unauthorized,
        http_status: Some(401),
        error_code: Some("APIGW.0301".into()),
        error_message: "Incorrect IAM authentication information".into(),
        request_id: None,
        retry_after: None,
        outcome_unknown: false,
    };
    obj.status = Some(status::failed(&pending, &attempt(3), &failure, 1, None));
    let stored = serde_json::to_value(&obj).unwrap();
    let seen = serve(server, move |what, _| match what {
        w if w.ends_with("/secrets/scm") => (404, api_status(404, "NotFound")),
        _ => (200, stored.clone()),
    });
    let action = reconcile(Arc::new(obj), ctx).await.expect("reconcile succeeds");
    assert_eq!(action, Action::await_change());
    assert_eq!(
        paths(&seen)[..3],
        [
            format!("GET {PATH}"),
            "GET /api/v1/namespaces/ns/secrets/scm".to_string(),
            format!("PATCH {PATH}/status"),
        ]
    );
    // The Secret is gone now: the status says so.
    let sent = lock(&seen)[2].1.clone();
    assert_eq!(sent["status"]["conditions"][0]["reason"], "CredentialsNotFound");
}

#[tokio::test]
async fn steady_state_costs_no_api_call() {
    let (ctx, server) = mocked_context(ENDPOINT);
    let (mut obj, pushed) = pushed_object();
    obj.status = Some(pushed);
    // Every request is answered (with an error), so a regression that makes one fails instead of hanging.
    let seen = serve(server, |_, _| (500, api_status(500, "InternalError")));
    let action = tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(obj), ctx))
        .await
        .expect("reconcile returns")
        .expect("reconcile succeeds");
    assert_eq!(action, Action::await_change());
    assert_eq!(paths(&seen), Vec::<String>::new());
}

/// Defect: the in-memory maps kept entries of deleted objects forever.
#[tokio::test]
async fn memory_of_deleted_objects_is_dropped() {
    let (ctx, _server) = mocked_context(ENDPOINT);
    let (obj, pushed) = pushed_object();
    let mut other = obj.clone();
    other.metadata.uid = Some("uid-2".into());
    other.metadata.name = Some("two".into());
    for uid in ["uid-1", "uid-2", "uid-gone"] {
        ctx.memory.keep_unsaved(uid, pushed.clone());
        ctx.memory.count_error(uid);
    }
    // A watch Delete event.
    ctx.forget(&obj);
    assert_eq!(ctx.remembered(), 4);
    // A re-list after the watch was down: only objects that still exist are remembered.
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitApply(other));
    writer.apply_watcher_event(&watcher::Event::InitDone);
    ctx.forget_all_but(&store);
    assert_eq!(ctx.remembered(), 2);
    assert!(ctx.memory.has_unsaved("uid-2") && ctx.memory.errors("uid-2") == 1);
}

/// Defect: a source certificate whose notBefore was ahead was InvalidSource with no requeue, so it waited for the
/// next change of the Secret. It is NotYetValid, due at notBefore plus the clock-skew margin, and requeued.
#[tokio::test]
async fn a_certificate_not_valid_yet_is_looked_at_again_when_it_is() {
    let (ctx, server) = mocked_context(ENDPOINT);
    let mut obj = cp("ns", "one", "scm");
    obj.spec.certificate_id = None;
    obj.spec.source_secret_ref = Some(crate::crd::SourceSecretRef { name: "web-tls".into() });
    obj.metadata.uid = Some("uid-1".into());
    obj.metadata.generation = Some(1);
    let valid_from = Timestamp::from_second(Timestamp::now().as_second() + 60).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["www.example.com".to_owned()]).unwrap();
    params.not_before = time::OffsetDateTime::from_unix_timestamp(valid_from.as_second()).unwrap();
    params.not_after = params.not_before + time::Duration::days(90);
    let crt = params.self_signed(&key).unwrap().pem();
    let tls = {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-tls", "namespace": "ns"},
               "type": "kubernetes.io/tls", "data": {"tls.crt": b64(&crt), "tls.key": b64(&key.serialize_pem())}})
    };
    let stored = serde_json::to_value(&obj).unwrap();
    let seen = serve(server, move |what, body| match what {
        w if w.ends_with("/secrets/web-tls") => (200, tls.clone()),
        w if w.ends_with("/status") => {
            let mut o = stored.clone();
            o["status"] = body["status"].clone();
            (200, o)
        }
        _ => (200, stored.clone()),
    });
    let action = reconcile(Arc::new(obj), ctx).await.expect("reconcile succeeds");
    assert_ne!(action, Action::await_change(), "looked at again without a change");
    let saved = lock(&seen)
        .iter()
        .find(|(p, _)| p.ends_with("/status"))
        .map(|(_, b)| b["status"].clone())
        .expect("a status write");
    assert_eq!(saved["conditions"][0]["reason"], "NotYetValid");
    let due = status::format_time(valid_from + super::push::CLOCK_SKEW_MARGIN);
    assert_eq!(saved["nextRetryTime"], due.as_str());
    assert!(
        saved["conditions"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not valid before") && m.contains(&due)),
        "{saved}"
    );
    assert!(
        !paths(&seen).iter().any(|p| p.contains("/secrets/scm")),
        "the credentials are not even read"
    );
}

/// Defect: with leader election, a status-less object in the cache was pushed without a fresh read, although the
/// replica that led before may have pushed it and written a status this cache had not seen yet.
#[tokio::test]
async fn an_elected_leader_reads_a_status_less_object_fresh_before_pushing() {
    let (ctx, server, _) = context_leading(ENDPOINT, Leadership::elected_and_leading());
    let (mut stale, pushed) = pushed_object();
    stale.status = None;
    // A Secret GET would be the first step of a second push.
    assert_eq!(
        reconcile_stale(ctx, server, stale, &pushed).await,
        [format!("GET {PATH}")]
    );
}

/// Defect: a replica that led again kept statuses and counts from its earlier term in memory, and saved such a
/// status over what the leader in between had written.
#[tokio::test]
async fn leading_again_starts_from_the_api_server_state() {
    let (ctx, server) = mocked_context(ENDPOINT);
    let (obj, pushed) = pushed_object();
    ctx.memory.keep_unsaved("uid-1", pushed.clone());
    ctx.memory.count_error("uid-1");
    ctx.start_leading();
    assert_eq!(ctx.remembered(), 0);
    let stored = with_status(&obj, &pushed);
    let seen = serve(server, move |_, _| (200, stored.clone()));
    reconcile(Arc::new(obj), ctx).await.expect("reconcile succeeds");
    assert!(
        !paths(&seen).iter().any(|p| p.ends_with("/status")),
        "nothing from the earlier term is written: {:?}",
        paths(&seen)
    );
}

/// Defect: a spec edit that kept what was pushed where (here credentialsRef) pushed again. Now it writes only the new
/// observedGeneration, without reading the Secret.
#[tokio::test]
async fn a_spec_edit_that_keeps_the_destination_only_moves_observed_generation() {
    let (ctx, server) = mocked_context(ENDPOINT);
    let (mut obj, pushed) = pushed_object();
    obj.metadata.generation = Some(4);
    obj.spec.credentials_ref.as_mut().unwrap().name = "scm-rotated".into();
    obj.status = Some(pushed);
    let stored = serde_json::to_value(&obj).unwrap();
    let seen = serve(server, move |_, _| (200, stored.clone()));
    let action = reconcile(Arc::new(obj), ctx).await.expect("reconcile succeeds");
    assert_eq!(action, Action::await_change());
    assert_eq!(paths(&seen), [format!("GET {PATH}"), format!("PATCH {PATH}/status")]);
    let written = lock(&seen)[1].1["status"].clone();
    assert_eq!(written["observedGeneration"], 4);
    assert_eq!(written["conditions"][0]["observedGeneration"], 4);
    assert_eq!(written["conditions"][0]["reason"], "Pushed");
    assert_eq!(written["pushedGeneration"], 3);
}

/// A status written before `pushed` existed gets it recorded (from the spec it was pushed for) the first time it is
/// seen, with nothing sent, so later edits are judged by what was pushed where.
#[tokio::test]
async fn a_status_from_before_pushed_existed_records_it_once() {
    let (ctx, server) = mocked_context(ENDPOINT);
    let (mut obj, mut pushed) = pushed_object();
    pushed.pushed = None;
    obj.status = Some(pushed);
    let stored = serde_json::to_value(&obj).unwrap();
    let seen = serve(server, move |_, _| (200, stored.clone()));
    reconcile(Arc::new(obj), ctx).await.expect("reconcile succeeds");
    assert_eq!(paths(&seen), [format!("GET {PATH}"), format!("PATCH {PATH}/status")]);
    let written = lock(&seen)[1].1["status"]["pushed"].clone();
    assert_eq!(
        written,
        json!({"certificateId": "scs1554192131150", "targetService": "WAF", "targetProject": "cn-north-4", "generation": 3})
    );
}

/// Defect: a delete of a superseded import that the account's rate limit deferred (its waiting places full, as when
/// many objects renew at once) was recorded as a failed delete: `failedAttempts` counted, a `SupersededNotDeleted`
/// Warning posted and the retry backed off as after an SCM error. A deferral is no attempt: nothing is written.
#[tokio::test]
async fn a_delete_the_rate_limit_deferred_is_no_failed_attempt() {
    let (ctx, server) = mocked_context(ENDPOINT);
    let (obj, pushed) = pushed_object();
    let mut owed = pushed;
    crate::policy::deletions::owe(&mut owed, "scs1700000000009");
    let api: Api<CertificatePush> = Api::namespaced(ctx.client.clone(), "ns");
    let echo = with_status(&obj, &owed);
    let seen = serve(server, move |_, _| (200, echo.clone()));
    let creds = credentials_of(&ctx, &obj);
    let _crowd = ctx.scm.fill_waiting_places(&creds.credentials);
    let now: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
    let _ = super::import::settle_deletions(&ctx, &obj, &api, &owed, &creds, now)
        .await
        .unwrap();
    // The status write is awaited inside; a failed attempt would have patched `failedAttempts` by now.
    assert_eq!(paths(&seen), Vec::<String>::new(), "{:#?}", lock(&seen));
}

/// Defect: on deletion with `deletionPolicy: Delete`, a delete the rate limit deferred counted as one of the 5
/// cleanup attempts, so a crowd of deletions could give up (CleanupAbandoned) and leave imports in SCM with no
/// request ever sent. Deferrals wait their turn and count nothing.
#[tokio::test]
async fn cleanup_deferred_by_the_rate_limit_never_gives_up() {
    let (ctx, server) = mocked_context(ENDPOINT);
    let (obj, _) = pushed_object();
    let seen = serve(server, |_, _| (200, json!({})));
    let creds = credentials_of(&ctx, &obj);
    let _crowd = ctx.scm.fill_waiting_places(&creds.credentials);
    let imports = ["scs1700000000009".to_owned()];
    for round in 0..=super::cleanup::MAX_CLEANUP_ATTEMPTS {
        let next = super::cleanup::delete_imports(&ctx, &obj, &creds, &imports).await;
        assert!(next.is_some(), "round {round}: cleanup gave up on a deferred delete");
    }
    assert_eq!(paths(&seen), Vec::<String>::new(), "no Event: nothing failed");
}

/// Defect: at startup a CertificatePush could be reconciled before the account caches were listed; its account
/// then looked absent (AccountNotFound recorded, a deleting object's imports left behind). Until every account watch
/// has listed once, resolving an account is "not known yet" (the reconcile is retried), never "not found".
#[tokio::test]
async fn an_account_is_not_missing_before_the_account_caches_are_listed() {
    let (ctx, _server) = mocked_context(ENDPOINT);
    let mut lists = ctx.accounts.expect_lists(1);
    let mut obj = cp("team", "web", "unused");
    obj.spec.credentials_ref = None;
    obj.spec.account_ref = Some(crate::crd::AccountRef {
        kind: crate::crd::AccountKind::Namespaced,
        name: "team".into(),
    });
    let namespaces = kube::Api::all(ctx.client.clone());
    let early = ctx.accounts.resolve(&obj, &namespaces).await;
    assert!(matches!(early, Err(crate::Error::NotReady(_))), "{early:?}");
    lists[0].listed();
    let listed = ctx.accounts.resolve(&obj, &namespaces).await;
    assert!(
        matches!(listed, Ok(Err(crate::account::Problem::AccountNotFound(_)))),
        "{listed:?}"
    );
    // An object with its own credentialsRef never waits for the account caches.
    let mut lists = ctx.accounts.expect_lists(1);
    let own = cp("team", "own", "scm");
    assert!(matches!(ctx.accounts.resolve(&own, &namespaces).await, Ok(Ok(_))));
    lists[0].listed();
}
