//! The reconciler: reads a CertificatePush and its Secret, decides (policy), pushes (scm), records (status).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::Error;
use crate::cli::RunArgs;
use crate::crd::{CertificatePush, CertificatePushStatus};
use crate::metrics::Metrics;
use crate::policy::{self, Cause, Observed, Step};
use crate::scm::{
    Credentials, CredentialsError, FailureKind, PushFailure, PushOutcome, PushRequest, ScmClient, Transport,
};
use crate::server;
use crate::status::{self, Attempt, Notice, Reason};

/// Field manager of every status write (server-side apply).
pub const FIELD_MANAGER: &str = "certpush-operator";

/// Shared state of all reconciles.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// SCM client for the configured endpoint.
    pub scm: ScmClient,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Statuses of successful pushes that could not be saved yet, by UID: saved before anything else is
    /// done with the object, so a lost status write never turns into a second push.
    unsaved: Mutex<HashMap<String, CertificatePushStatus>>,
    /// Consecutive reconcile errors by UID, for error_policy's backoff.
    errors: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context for the given clients.
    pub fn new(client: Client, scm: ScmClient, metrics: Arc<Metrics>) -> Self {
        let instance = std::env::var("POD_NAME")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok());
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance,
            },
        );
        Self {
            client,
            scm,
            recorder,
            metrics,
            unsaved: Mutex::default(),
            errors: Mutex::default(),
        }
    }
}

/// Brings one CertificatePush to its desired state: at most one SCM push, then its status.
pub async fn reconcile(cp: Arc<CertificatePush>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = cp.uid().unwrap_or_default();
    let result = reconcile_inner(&cp, &ctx).await;
    if result.is_ok() {
        lock(&ctx.errors).remove(&uid);
    }
    result
}

async fn reconcile_inner(cached: &CertificatePush, ctx: &Context) -> Result<Action, Error> {
    let ns = cached.namespace().ok_or(Error::MissingNamespace)?;
    let name = cached.name_any();
    let uid = cached.uid().unwrap_or_default();
    let now = Timestamp::now();

    // Most reconciles (resyncs, unrelated updates, waiting retries) are settled by the cached object alone
    // and cost no API call. A stall is not: only the Secret's current version tells whether it is over.
    if let Some(current) = &cached.status
        && status::ready(current).is_some()
        && !lock(&ctx.unsaved).contains_key(&uid)
    {
        let step = decide(cached, current, current.credentials_resource_version.as_deref(), now);
        if step != Step::Stalled
            && let ControlFlow::Break(action) = settle(step, &ctx.metrics)
        {
            return Ok(action);
        }
    }

    // Anything that writes starts from a fresh read: the cache can lag this operator's own last status
    // write (a Secret event may arrive first), and deciding on it would push the same generation twice.
    let api: Api<CertificatePush> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cp) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    if cp.uid().as_deref() != Some(uid.as_str()) {
        // Deleted and recreated under the same name; the new object gets its own reconcile.
        return Ok(Action::await_change());
    }
    let generation = cp.metadata.generation.unwrap_or(0);
    let mut current = cp.status.clone().unwrap_or_default();

    let unsaved = lock(&ctx.unsaved).remove(&uid);
    if let Some(saved) = unsaved {
        if let Err(e) = save(&api, &name, &current, &saved).await {
            lock(&ctx.unsaved).insert(uid, saved);
            return Err(e);
        }
        current = saved;
    }
    if status::ready(&current).is_none() {
        let pending = status::pending(&current, generation, now);
        save(&api, &name, &current, &pending).await?;
        current = pending;
    }

    // Only a stall or a push needs the Secret, so decide first with its recorded version and skip the GET
    // for objects that are up to date or waiting.
    let step = decide(&cp, &current, current.credentials_resource_version.as_deref(), now);
    let (step, secret) = match step {
        Step::UpToDate | Step::WaitForRetry(_) => (step, None),
        Step::Stalled | Step::Push(_) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            let secret = secrets.get_opt(&cp.spec.credentials_ref.name).await?;
            let version = secret.as_ref().and_then(|s| s.metadata.resource_version.as_deref());
            (decide(&cp, &current, version, now), secret)
        }
    };
    let cause = match settle(step, &ctx.metrics) {
        ControlFlow::Break(action) => return Ok(action),
        ControlFlow::Continue(cause) => cause,
    };
    let attempt = Attempt {
        generation,
        push_request: cp.push_request(),
        credentials_version: secret.as_ref().and_then(|s| s.metadata.resource_version.as_deref()),
        now,
    };
    push(&cp, ctx, &api, &current, secret.as_ref(), &attempt, cause).await
}

/// The policy's step for `cp` with `status`, given the credentials Secret's resourceVersion.
fn decide(
    cp: &CertificatePush,
    status: &CertificatePushStatus,
    credentials_version: Option<&str>,
    now: Timestamp,
) -> Step {
    policy::next_step(&Observed {
        generation: cp.metadata.generation.unwrap_or(0),
        push_request: cp.push_request(),
        status,
        credentials_version,
        now,
    })
}

/// A step that needs no push ends the reconcile with its action (counted in the metrics); a push goes on.
fn settle(step: Step, metrics: &Metrics) -> ControlFlow<Action, Cause> {
    let (result, action) = match step {
        Step::UpToDate => ("unchanged", Action::await_change()),
        Step::Stalled => ("stalled", Action::await_change()),
        Step::WaitForRetry(delay) => ("waiting", Action::requeue(delay)),
        Step::Push(cause) => return ControlFlow::Continue(cause),
    };
    metrics.reconciled(result);
    ControlFlow::Break(action)
}

async fn push(
    cp: &CertificatePush,
    ctx: &Context,
    api: &Api<CertificatePush>,
    current: &CertificatePushStatus,
    secret: Option<&Secret>,
    attempt: &Attempt<'_>,
    cause: Cause,
) -> Result<Action, Error> {
    let name = cp.name_any();
    let credentials = match Credentials::from_secret(secret, &cp.spec.credentials_ref) {
        Ok(c) => c,
        Err(e) => {
            let reason = match e {
                CredentialsError::NotFound(_) => Reason::CredentialsNotFound,
                CredentialsError::Invalid(_) => Reason::InvalidCredentials,
            };
            let new = status::credentials_problem(current, attempt, reason, &e.to_string());
            save(api, &name, current, &new).await?;
            notify(ctx, cp, current, &new).await;
            ctx.metrics.reconciled("credentials_error");
            // The Secret watch brings the object back when the Secret is created or fixed.
            return Ok(Action::await_change());
        }
    };
    let spec = &cp.spec;
    let outcome = match PushRequest::new(&spec.certificate_id, spec.target_service, &spec.target_project) {
        Err(message) => PushOutcome::Failed(PushFailure {
            kind: FailureKind::Rejected,
            http_status: None,
            error_code: None,
            error_message: message,
            request_id: None,
            retry_after: None,
        }),
        Ok(request) => {
            info!(namespace = ?cp.namespace(), name, ?cause, generation = attempt.generation, "pushing certificate");
            let started = Instant::now();
            let transport = ctx.scm.push(&credentials, &request).await;
            let code = match &transport {
                Transport::Reply(r) => Some(r.status),
                Transport::Failed(_) => None,
            };
            ctx.metrics.scm_request(code, started.elapsed().as_secs_f64());
            crate::scm::classify(&transport)
        }
    };
    drop(credentials);

    match outcome {
        PushOutcome::Pushed {
            http_status,
            request_id,
        } => {
            let what = format!(
                "certificate {} to {} in {}",
                spec.certificate_id,
                spec.target_service.as_str(),
                spec.target_project
            );
            let new = status::pushed(current, attempt, http_status, request_id, &what);
            if let Err(e) = save_after_push(api, &name, current, &new).await {
                lock(&ctx.unsaved).insert(cp.uid().unwrap_or_default(), new);
                return Err(e);
            }
            info!(namespace = ?cp.namespace(), name, http_status, "pushed certificate");
            notify(ctx, cp, current, &new).await;
            ctx.metrics.reconciled("pushed");
            Ok(Action::await_change())
        }
        PushOutcome::Failed(failure) => {
            let attempts = policy::failed_attempts(current, attempt.generation);
            let delay = failure
                .kind
                .is_transient()
                .then(|| policy::backoff(attempts, failure.retry_after, rand::random::<f64>()));
            let next_retry = delay.and_then(|d| attempt.now.checked_add(d).ok());
            let new = status::failed(current, attempt, &failure, attempts, next_retry);
            save(api, &name, current, &new).await?;
            warn!(
                namespace = ?cp.namespace(),
                name,
                http_status = failure.http_status,
                error_code = failure.error_code.as_deref(),
                error_message = failure.error_message,
                attempts,
                retry_in_seconds = delay.map(|d| d.as_secs()),
                "push failed"
            );
            notify(ctx, cp, current, &new).await;
            ctx.metrics.reconciled("push_failed");
            Ok(delay.map_or_else(Action::await_change, Action::requeue))
        }
    }
}

/// Writes the status when it changed; an unchanged status is not written, so steady state costs no writes.
async fn save(
    api: &Api<CertificatePush>,
    name: &str,
    old: &CertificatePushStatus,
    new: &CertificatePushStatus,
) -> Result<(), Error> {
    if old == new {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": CertificatePush::api_version(&()),
        "kind": CertificatePush::kind(&()),
        "status": new,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// After a successful push the status write is retried here rather than the whole reconcile, because
/// a reconcile that does not see pushedGeneration would push again.
async fn save_after_push(
    api: &Api<CertificatePush>,
    name: &str,
    old: &CertificatePushStatus,
    new: &CertificatePushStatus,
) -> Result<(), Error> {
    let mut delay = Duration::from_millis(200);
    for _ in 0..5 {
        match save(api, name, old, new).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                warn!(name, error = %e, "saving status after a successful push failed; retrying the write, not the push");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    save(api, name, old, new).await
}

/// Publishes the Event for a state change, if any. A failed publish is logged, not fatal: the status holds the truth.
async fn notify(ctx: &Context, cp: &CertificatePush, old: &CertificatePushStatus, new: &CertificatePushStatus) {
    let Some(Notice { warning, reason, note }) = status::notice(old, new) else {
        return;
    };
    let event = Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.to_string(),
        note: Some(note),
        action: "Push".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cp.object_ref(&())).await {
        warn!(name = cp.name_any(), error = %e, "publishing event failed");
    }
}

/// Requeues failed reconciles (Kubernetes API errors) with a per-object exponential backoff: 1 s to 5 min.
pub fn error_policy(cp: Arc<CertificatePush>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = {
        let mut errors = lock(&ctx.errors);
        let n = errors.entry(cp.uid().unwrap_or_default()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = Duration::from_secs(1u64 << failures.clamp(1, 9).saturating_sub(1)).min(Duration::from_secs(300));
    warn!(namespace = ?cp.namespace(), name = cp.name_any(), error = %error, failures, retry_in_seconds = delay.as_secs(), "reconcile failed");
    ctx.metrics.reconciled("error");
    Action::requeue(delay)
}

/// The CertificatePushes in `candidates` that reference the Secret `secret_name` in `secret_ns`.
pub fn referrers<'a>(
    candidates: impl IntoIterator<Item = &'a CertificatePush>,
    secret_ns: Option<&str>,
    secret_name: &str,
) -> Vec<ObjectRef<CertificatePush>> {
    candidates
        .into_iter()
        .filter(|cp| cp.namespace().as_deref() == secret_ns && cp.spec.credentials_ref.name == secret_name)
        .map(ObjectRef::from)
        .collect()
}

/// Runs the controller until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> Result<(), Error> {
    let client = Client::try_default().await?;
    let ca = match &args.scm_ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|source| Error::CaFile {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let scm = ScmClient::new(&args.scm_endpoint, ca.as_deref())?;
    let (pushes, secrets): (Api<CertificatePush>, Api<PartialObjectMeta<Secret>>) = match &args.namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    // Fail fast with a hint instead of a controller that silently watches nothing.
    if let Err(e) = pushes.list(&ListParams::default().limit(1)).await {
        return Err(Error::CrdUnavailable { source: e });
    }
    info!(endpoint = %scm.endpoint(), namespace = args.namespace.as_deref().unwrap_or("<all>"), concurrency = args.concurrency, "starting controller");

    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let health = server::Health {
        ready: ready.clone(),
        metrics: metrics.clone(),
    };
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(Error::Server)?;
    tokio::spawn(async move {
        if let Err(e) = server::serve(listener, health).await {
            warn!(error = %e, "health and metrics server stopped");
        }
    });

    let ctx = Arc::new(Context::new(client, scm, metrics));
    // Readiness follows the watch stream's first complete list. Store::wait_until_ready cannot be used
    // here: its oneshot keeps one waker, so a second waiter can leave the controller itself waiting.
    let (store, writer) = reflector::store();
    let trigger = reflector::reflector(writer, watcher::watcher(pushes, watcher::Config::default()))
        .inspect(move |event| {
            if matches!(event, Ok(watcher::Event::InitDone)) && !ready.swap(true, Ordering::Relaxed) {
                info!("CertificatePush watch synced; ready");
            }
        })
        .applied_objects();
    let controller = Controller::for_stream(trigger, store.clone());
    controller
        .watches(
            secrets,
            watcher::Config::default(),
            move |secret: PartialObjectMeta<Secret>| {
                let state = store.state();
                referrers(
                    state.iter().map(|cp| cp.as_ref()),
                    secret.metadata.namespace.as_deref(),
                    &secret.name_any(),
                )
            },
        )
        .with_config(controller::Config::default().concurrency(args.concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            // Reconcile errors were already logged by error_policy; watch and queue errors are not logged elsewhere.
            if let Err(e) = result
                && !matches!(e, controller::Error::ReconcilerFailed(..))
            {
                warn!(error = %e, "controller error");
            }
        })
        .await;
    info!("controller stopped");
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps inconsistent, so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CertificatePushSpec, CredentialsRef, TargetService};

    fn cp(ns: &str, name: &str, secret: &str) -> CertificatePush {
        let mut cp = CertificatePush::new(
            name,
            CertificatePushSpec {
                certificate_id: "scs1554192131150".into(),
                target_service: TargetService::Waf,
                target_project: "cn-north-4".into(),
                credentials_ref: CredentialsRef {
                    name: secret.into(),
                    token_key: "token".into(),
                },
            },
        );
        cp.metadata.namespace = Some(ns.into());
        cp
    }

    type ApiServer = tower_test::mock::Handle<http::Request<kube::client::Body>, http::Response<kube::client::Body>>;

    /// A context whose Kubernetes client is a mocked API server and whose SCM endpoint accepts nothing.
    fn mocked_context() -> (Arc<Context>, ApiServer) {
        crate::install_crypto_provider();
        let (service, handle) = tower_test::mock::pair();
        let client = Client::new(service, "default");
        let scm = ScmClient::new("http://127.0.0.1:9", None).unwrap();
        (
            Arc::new(Context::new(client, scm, Arc::new(Metrics::default()))),
            handle,
        )
    }

    fn json_response(status: u16, body: serde_json::Value) -> http::Response<kube::client::Body> {
        http::Response::builder()
            .status(status)
            .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    }

    fn pushed_object() -> (CertificatePush, CertificatePushStatus) {
        let mut obj = cp("ns", "one", "scm");
        obj.metadata.uid = Some("uid-1".into());
        obj.metadata.generation = Some(3);
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let pending = status::pending(&Default::default(), 3, now);
        obj.status = Some(pending.clone());
        let attempt = Attempt {
            generation: 3,
            push_request: None,
            credentials_version: Some("1"),
            now,
        };
        (obj, status::pushed(&pending, &attempt, 204, Some("r".into()), "x"))
    }

    #[tokio::test]
    async fn status_write_after_push_is_retried_not_the_push() {
        let (ctx, mut server) = mocked_context();
        let (obj, pushed) = pushed_object();
        let old = obj.status.clone().unwrap();
        let api: Api<CertificatePush> = Api::namespaced(ctx.client.clone(), "ns");
        let conflict =
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 409, "reason": "Conflict"});
        let echo = serde_json::to_value(&obj).unwrap();
        let apiserver = tokio::spawn(async move {
            let mut paths = Vec::new();
            for (status, answer) in [(409, conflict), (200, echo)] {
                let (request, reply) = server.next_request().await.expect("a status write");
                paths.push(format!("{} {}", request.method(), request.uri().path()));
                let body = request.into_body().collect_bytes().await.unwrap();
                let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(sent["status"]["pushedGeneration"], 3);
                reply.send_response(json_response(status, answer));
            }
            paths
        });
        save_after_push(&api, "one", &old, &pushed)
            .await
            .expect("second write succeeds");
        let paths = apiserver.await.unwrap();
        assert_eq!(
            paths,
            vec!["PATCH /apis/scm.certpush.dev/v1alpha1/namespaces/ns/certificatepushes/one/status"; 2]
        );
    }

    #[tokio::test]
    async fn unsaved_push_is_saved_first_and_nothing_is_pushed_again() {
        let (ctx, mut server) = mocked_context();
        let (obj, pushed) = pushed_object();
        lock(&ctx.unsaved).insert("uid-1".into(), pushed.clone());
        let echo = {
            let mut o = obj.clone();
            o.status = Some(pushed.clone());
            serde_json::to_value(&o).unwrap()
        };
        let stored = serde_json::to_value(&obj).unwrap();
        let apiserver = tokio::spawn(async move {
            let (request, reply) = server.next_request().await.expect("a fresh read of the object");
            assert_eq!(request.method(), http::Method::GET);
            assert!(request.uri().path().ends_with("/certificatepushes/one"));
            reply.send_response(json_response(200, stored));
            let (request, reply) = server.next_request().await.expect("the saved status is written");
            assert_eq!(request.method(), http::Method::PATCH);
            assert!(request.uri().path().ends_with("/certificatepushes/one/status"));
            reply.send_response(json_response(200, echo));
            // Anything further (a Secret GET before a push) would be a second push in the making.
            expect_no_request(&mut server, "saving the status").await;
        });
        let action = reconcile(Arc::new(obj), ctx.clone()).await.expect("reconcile succeeds");
        assert_eq!(action, Action::await_change());
        apiserver.await.unwrap();
        assert!(lock(&ctx.unsaved).is_empty());
    }

    /// Fails the test if the mocked API server receives any request within 300 ms.
    async fn expect_no_request(server: &mut ApiServer, after: &str) {
        let more = tokio::time::timeout(Duration::from_millis(300), server.next_request()).await;
        if let Ok(Some((request, _))) = more {
            panic!("unexpected {} {} after {after}", request.method(), request.uri().path());
        }
    }

    #[tokio::test]
    async fn stale_cache_after_a_push_does_not_push_again() {
        // The reflector still holds the object as it was before this operator's own status write (a Secret
        // event triggered the reconcile first); the API server already has pushedGeneration.
        let (ctx, mut server) = mocked_context();
        let (stale, pushed) = pushed_object();
        let stored = {
            let mut o = stale.clone();
            o.status = Some(pushed);
            serde_json::to_value(&o).unwrap()
        };
        let apiserver = tokio::spawn(async move {
            let (request, reply) = server.next_request().await.expect("a fresh read of the object");
            assert_eq!(
                format!("{} {}", request.method(), request.uri().path()),
                "GET /apis/scm.certpush.dev/v1alpha1/namespaces/ns/certificatepushes/one"
            );
            reply.send_response(json_response(200, stored));
            // A Secret GET would be the first step of a second push.
            expect_no_request(&mut server, "the fresh read").await;
        });
        let action = reconcile(Arc::new(stale), ctx).await.expect("reconcile succeeds");
        assert_eq!(action, Action::await_change());
        apiserver.await.unwrap();
    }

    #[tokio::test]
    async fn stalled_object_rechecks_its_secret() {
        // A rotated Secret ends a 401 stall only if the reconcile it triggers looks at the Secret.
        let (ctx, mut server) = mocked_context();
        let (mut obj, _) = pushed_object();
        let pending = obj.status.clone().unwrap();
        let attempt = Attempt {
            generation: 3,
            push_request: None,
            credentials_version: Some("1"),
            now: "2026-01-01T00:00:00Z".parse().unwrap(),
        };
        let failure = PushFailure {
            kind: FailureKind::Unauthorized,
            http_status: Some(401),
            error_code: Some("APIGW.0301".into()),
            error_message: "Incorrect IAM authentication information".into(),
            request_id: None,
            retry_after: None,
        };
        obj.status = Some(status::failed(&pending, &attempt, &failure, 1, None));
        let stored = serde_json::to_value(&obj).unwrap();
        let not_found =
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"});
        let apiserver = tokio::spawn(async move {
            let mut seen = Vec::new();
            for answer in [json_response(200, stored.clone()), json_response(404, not_found)] {
                let (request, reply) = server.next_request().await.expect("a request");
                seen.push(format!("{} {}", request.method(), request.uri().path()));
                reply.send_response(answer);
            }
            // The Secret is gone now: the status says so.
            let (request, reply) = server.next_request().await.expect("a status write");
            seen.push(format!("{} {}", request.method(), request.uri().path()));
            let body = request.into_body().collect_bytes().await.unwrap();
            let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let ready = sent["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Ready");
            assert_eq!(ready.unwrap()["reason"], "CredentialsNotFound");
            reply.send_response(json_response(200, stored));
            seen
        });
        let action = reconcile(Arc::new(obj), ctx).await.expect("reconcile succeeds");
        assert_eq!(action, Action::await_change());
        assert_eq!(
            apiserver.await.unwrap(),
            [
                "GET /apis/scm.certpush.dev/v1alpha1/namespaces/ns/certificatepushes/one",
                "GET /api/v1/namespaces/ns/secrets/scm",
                "PATCH /apis/scm.certpush.dev/v1alpha1/namespaces/ns/certificatepushes/one/status",
            ]
        );
    }

    #[tokio::test]
    async fn steady_state_costs_no_api_call() {
        let (ctx, mut server) = mocked_context();
        let (mut obj, pushed) = pushed_object();
        obj.status = Some(pushed);
        let action = reconcile(Arc::new(obj), ctx).await.expect("reconcile succeeds");
        assert_eq!(action, Action::await_change());
        expect_no_request(&mut server, "a reconcile at steady state").await;
    }

    #[test]
    fn secret_maps_only_to_referrers_in_its_namespace() {
        let all = [
            cp("a", "one", "scm"),
            cp("a", "two", "other"),
            cp("b", "three", "scm"),
            cp("a", "four", "scm"),
        ];
        let names: Vec<String> = referrers(&all, Some("a"), "scm").into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["one", "four"]);
        assert!(referrers(&all, Some("c"), "scm").is_empty());
    }
}
