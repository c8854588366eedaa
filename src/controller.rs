//! The reconciler: reads a CertificatePush and its Secret, decides (policy), pushes (scm), records (status).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::Error;
use crate::cli::RunArgs;
use crate::crd::{
    CLEANUP_FINALIZER, CertificatePush, CertificatePushSpec, CertificatePushStatus, CertificateSource,
    SourceSecretStatus,
};
use crate::events::EventQueue;
use crate::leader::{Election, Leadership};
use crate::metrics::Metrics;
use crate::policy::{self, Cause, Observed, Step};
use crate::scm::wire::{ImportRequest, ImportResponse, ListResponse};
use crate::scm::{
    Credentials, CredentialsError, FailureKind, PushFailure, PushOutcome, PushRequest, ScmClient, Transport,
    classify_as,
};
use crate::server::{self, WatchHealth};
use crate::source::{self, TlsSource};
use crate::status::{self, Attempt, Notice, Reason};

/// Field manager of every status write (server-side apply).
pub const FIELD_MANAGER: &str = "certpush-operator";

/// Shared state of all reconciles.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// SCM client for the configured endpoint.
    pub scm: ScmClient,
    /// Posts Events beside the reconciles: a reconcile is not held for an API round trip that changes nothing it
    /// decides; shutdown waits for the queue.
    events: EventQueue,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Whether this replica may act (always, without leader election).
    pub leadership: Leadership,
    /// Statuses recorded after an SCM request (success or refusal) that could not be saved yet, by UID. They are
    /// saved before anything else is done with the object, so a lost status write never turns into a second
    /// push, nor into re-sending a credential SCM just refused.
    unsaved: Mutex<HashMap<String, CertificatePushStatus>>,
    /// Consecutive reconcile errors by UID, for error_policy's backoff.
    errors: Mutex<HashMap<String, u32>>,
    /// Failed attempts to delete a deleted object's imported certificates, by UID; bounded by
    /// [`MAX_CLEANUP_ATTEMPTS`].
    cleanups: Mutex<HashMap<String, u32>>,
    /// UIDs of status-less objects whose first push this process started from the cache; any later reconcile of
    /// them reads the object fresh, since the cache may lag the status this process wrote.
    seen: Mutex<std::collections::HashSet<String>>,
}

/// Attempts to delete imported certificates before the finalizer lets a deleted object go (5 s doubling: about a
/// minute in all).
pub const MAX_CLEANUP_ATTEMPTS: u32 = 5;

impl Context {
    /// A context for the given clients; `leadership` decides whether this replica acts.
    pub fn new(client: Client, scm: ScmClient, metrics: Arc<Metrics>, leadership: Leadership) -> Self {
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
            events: EventQueue::start(recorder),
            metrics,
            leadership,
            unsaved: Mutex::default(),
            errors: Mutex::default(),
            cleanups: Mutex::default(),
            seen: Mutex::default(),
        }
    }

    /// Drops what is kept in memory about a deleted object.
    pub fn forget(&self, uid: &str) {
        lock(&self.unsaved).remove(uid);
        lock(&self.errors).remove(uid);
        lock(&self.cleanups).remove(uid);
        lock(&self.seen).remove(uid);
    }

    /// Drops what is kept in memory about objects that no longer exist (deleted while the watch was down).
    fn forget_all_but(&self, live: &Store<CertificatePush>) {
        let uids: std::collections::HashSet<String> = live.state().iter().filter_map(|cp| cp.uid()).collect();
        lock(&self.unsaved).retain(|uid, _| uids.contains(uid));
        lock(&self.errors).retain(|uid, _| uids.contains(uid));
        lock(&self.cleanups).retain(|uid, _| uids.contains(uid));
        lock(&self.seen).retain(|uid| uids.contains(uid));
    }

    /// How many objects have something kept in memory (unsaved statuses, error counts).
    pub fn remembered(&self) -> usize {
        lock(&self.unsaved).len() + lock(&self.errors).len()
    }
}

/// Brings one CertificatePush to its desired state: at most one SCM push, then its status.
pub async fn reconcile(cp: Arc<CertificatePush>, ctx: Arc<Context>) -> Result<Action, Error> {
    use tracing::Instrument as _;
    let uid = cp.uid().unwrap_or_default();
    // One span per reconcile: every log line of it (SCM request ids included) carries the object and this id.
    let span = tracing::info_span!(
        "reconcile",
        object = %format!("{}/{}", cp.namespace().unwrap_or_default(), cp.name_any()),
        reconcile_id = %format!("{:016x}", rand::random::<u64>()),
    );
    let workers = ctx.metrics.workers();
    workers.inc();
    let started = Instant::now();
    let result = reconcile_inner(&cp, &ctx).instrument(span).await;
    workers.dec();
    let outcome = match &result {
        Err(_) => "error",
        Ok(action) if *action == Action::await_change() => "success",
        Ok(_) => "requeue_after",
    };
    ctx.metrics.reconcile_finished(outcome, started.elapsed().as_secs_f64());
    if result.is_ok() {
        lock(&ctx.errors).remove(&uid);
    }
    result
}

// The three paths through a reconcile:
//
//   cached object ──(up to date, or waiting for a retry)──────────────────────────────> done, no API call
//        │
//        └─ fresh GET ── save an unsaved status first ──(up to date / waiting)─────────> done, no Secret read
//                              │
//                              └─ GET Secret ── decide with its credential ──(stalled)──> done
//                                                   └─(push)── send ── record status ──> done
//
// Only the last path can write a push, and it always starts from the fresh GET: the cache can lag this
// operator's own status write.
async fn reconcile_inner(cached: &CertificatePush, ctx: &Context) -> Result<Action, Error> {
    // A standby keeps its cache warm and does nothing else; it reconciles everything once it leads.
    if !ctx.leadership.leads() {
        ctx.metrics.reconciled("standby");
        return Ok(Action::await_change());
    }
    let ns = cached.namespace().ok_or(Error::MissingNamespace)?;
    let name = cached.name_any();
    let uid = cached.uid().unwrap_or_default();
    let now = Timestamp::now();
    let endpoint = ctx.scm.endpoint().as_str();

    // Most reconciles (resyncs, unrelated updates, waiting retries) are settled by the cached object alone
    // and cost no API call. A stall is not: only the Secret's current credential tells whether it is over.
    if cached.metadata.deletion_timestamp.is_some() {
        return cleanup(cached, ctx).await;
    }
    let not_after = cached
        .status
        .as_ref()
        .and_then(|s| s.not_after.as_deref())
        .and_then(status::parse_time);
    ctx.metrics.certificate_expires(&ns, &name, not_after);

    // An imported certificate is judged by the source Secret's content, which the cache does not hold.
    if let Some(current) = &cached.status
        && status::ready(current).is_some()
        && matches!(cached.spec.source(), Ok(CertificateSource::Id(_)))
        && !lock(&ctx.unsaved).contains_key(&uid)
    {
        let step = decide(
            cached,
            current,
            current.credentials_digest.as_deref(),
            endpoint,
            now,
            None,
        );
        if let Some(action) = settle_without_secret(step, &ctx.metrics) {
            return Ok(action);
        }
    }

    // Anything that writes starts from a fresh read: the cache can lag this operator's own last status
    // write (a Secret event may arrive first), and deciding on it would push the same generation twice. The
    // one exception is an object without any status that this process has never worked on: no write of
    // this process can be missing from the cache, and a restart starts from a consistent list, so the
    // cached object is as good as a fresh one and the GET (a quarter of a first push's API requests) is saved.
    let api: Api<CertificatePush> = Api::namespaced(ctx.client.clone(), &ns);
    let first_sight = cached.status.is_none() && lock(&ctx.seen).insert(uid.clone());
    let cp = if first_sight {
        cached.clone()
    } else {
        let Some(cp) = api.get_opt(&name).await? else {
            ctx.forget(&uid);
            return Ok(Action::await_change());
        };
        cp
    };
    if cp.uid().as_deref() != Some(uid.as_str()) {
        // Deleted and recreated under the same name; the new object gets its own reconcile.
        ctx.forget(&uid);
        return Ok(Action::await_change());
    }
    // The finalizer is there before anything is imported, so every import is covered.
    if cp.spec.deletes_imports() != has_finalizer(&cp) {
        set_finalizer(&api, &cp, cp.spec.deletes_imports()).await?;
    }
    let generation = cp.metadata.generation.unwrap_or(0);
    let mut current = cp.status.clone().unwrap_or_default();

    let unsaved = lock(&ctx.unsaved).remove(&uid);
    if let Some(kept) = unsaved {
        let written = save(&api, &name, &current, &kept).await;
        if keep_unless_saved(ctx, &cp, &kept, written).await? == Written::Gone {
            return Ok(Action::await_change());
        }
        current = kept;
    }
    // First sight: the Pending status is only written if the first SCM request is slow (see `Progress`), so a
    // quick push costs two writes (its status and its Event), not three.
    let mut progress = Progress::default();
    if status::ready(&current).is_none() {
        let pending = status::pending(&current, generation, now);
        progress = Progress::new(&api, &name, &current, &pending);
        current = pending;
    }

    // What to push: a certificate in SCM, or the one in the source TLS Secret, checked before anything is sent.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let source = match cp.spec.source() {
        Ok(CertificateSource::Id(_)) => None,
        Ok(CertificateSource::Secret(secret_name)) => {
            let secret = secrets.get_opt(secret_name).await?;
            match TlsSource::from_secret(secret.as_ref(), secret_name, now) {
                Ok(tls) => Some(Source::new(tls, secret_name, secret.as_ref())),
                Err(message) => return not_sent(ctx, &api, &cp, &current, Reason::InvalidSource, &message, now).await,
            }
        }
        Err(message) => return not_sent(ctx, &api, &cp, &current, Reason::InvalidSpec, &message, now).await,
    };
    let fingerprint = source.as_ref().map(|s| s.tls.fingerprint.as_str());

    // Only a stall or a push needs the credentials, so decide first with the recorded credential and skip the GET
    // for objects that are up to date or waiting.
    let step = decide(
        &cp,
        &current,
        current.credentials_digest.as_deref(),
        endpoint,
        now,
        fingerprint,
    );
    if let Some(action) = settle_without_secret(step, &ctx.metrics) {
        return Ok(action);
    }
    let secret = secrets.get_opt(&cp.spec.credentials_ref.name).await?;
    let read = ReadCredentials::from_secret(secret.as_ref(), &cp);
    let cause = match settle(
        decide(&cp, &current, read.digest.as_deref(), endpoint, now, fingerprint),
        &ctx.metrics,
    ) {
        ControlFlow::Break(action) => return Ok(action),
        ControlFlow::Continue(cause) => cause,
    };
    push(&cp, ctx, &api, &current, read, source, cause, now, progress).await
}

/// A Pending status not written yet: it is written only when an SCM request is still running after
/// [`PENDING_AFTER`], so clients (kstatus, `kubectl wait`) see the object is being worked on during a slow push,
/// while a quick one costs no extra write. It always lands before the outcome: both are written by this reconcile,
/// in order.
#[derive(Default)]
struct Progress {
    write: Option<(
        Api<CertificatePush>,
        String,
        CertificatePushStatus,
        CertificatePushStatus,
    )>,
}

/// How long an SCM request may run before the Pending status is written.
const PENDING_AFTER: Duration = Duration::from_secs(1);

impl Progress {
    fn new(
        api: &Api<CertificatePush>,
        name: &str,
        saved: &CertificatePushStatus,
        pending: &CertificatePushStatus,
    ) -> Self {
        Self {
            write: Some((api.clone(), name.to_owned(), saved.clone(), pending.clone())),
        }
    }

    /// Runs `request`, writing the Pending status once if it takes longer than [`PENDING_AFTER`].
    async fn around<T>(&mut self, request: impl std::future::Future<Output = T>) -> T {
        let Some((api, name, saved, pending)) = &self.write else {
            return request.await;
        };
        futures::pin_mut!(request);
        tokio::select! {
            done = &mut request => return done,
            () = tokio::time::sleep(PENDING_AFTER) => {}
        }
        // Best effort: the outcome write that follows carries the whole status anyway.
        if let Err(e) = save(api, name, saved, pending).await {
            warn!(name = %name, error = %e, "writing the Pending status failed");
        }
        self.write = None;
        request.await
    }
}

/// The certificate read from a source TLS Secret, with the Secret's identity for status.
struct Source {
    tls: TlsSource,
    secret: SourceSecretStatus,
}

impl Source {
    fn new(tls: TlsSource, name: &str, secret: Option<&Secret>) -> Self {
        let meta = secret.map(|s| &s.metadata);
        Self {
            tls,
            secret: SourceSecretStatus {
                name: name.to_owned(),
                uid: meta.and_then(|m| m.uid.clone()),
                resource_version: meta.and_then(|m| m.resource_version.clone()),
            },
        }
    }
}

/// The credentials read from the Secret for one reconcile, with the digest the policy compares and the status
/// records, computed once.
struct ReadCredentials {
    credentials: Result<Credentials, CredentialsError>,
    digest: Option<String>,
}

impl ReadCredentials {
    fn from_secret(secret: Option<&Secret>, cp: &CertificatePush) -> Self {
        let credentials = Credentials::from_secret(secret, &cp.spec.credentials_ref);
        let digest = credentials.as_ref().ok().map(Credentials::digest);
        Self { credentials, digest }
    }
}

/// The policy's step for `cp` with `status`, given the digest of the credential in the Secret.
fn decide(
    cp: &CertificatePush,
    status: &CertificatePushStatus,
    credentials_digest: Option<&str>,
    endpoint: &str,
    now: Timestamp,
    source_fingerprint: Option<&str>,
) -> Step {
    policy::next_step(&Observed {
        generation: cp.metadata.generation.unwrap_or(0),
        push_request: cp.push_request(),
        status,
        credentials_digest,
        endpoint,
        source_fingerprint,
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

/// Settles the steps that need neither the Secret nor a write: up to date, or waiting for a retry.
fn settle_without_secret(step: Step, metrics: &Metrics) -> Option<Action> {
    match step {
        Step::UpToDate | Step::WaitForRetry(_) => settle(step, metrics).break_value(),
        Step::Stalled | Step::Push(_) => None,
    }
}

/// What is pushed where, for status messages and logs.
fn target(spec: &CertificatePushSpec, certificate: &str) -> String {
    format!(
        "certificate {certificate} to {} in {}",
        spec.target_service, spec.target_project
    )
}

/// Imports the source certificate if SCM does not hold it yet, pushes, and records what happened: each step is
/// one line.
#[allow(clippy::too_many_arguments)] // The reconcile's whole state; bundling it would only rename it.
async fn push(
    cp: &CertificatePush,
    ctx: &Context,
    api: &Api<CertificatePush>,
    current: &CertificatePushStatus,
    read: ReadCredentials,
    source: Option<Source>,
    cause: Cause,
    now: Timestamp,
    mut progress: Progress,
) -> Result<Action, Error> {
    let spec = &cp.spec;
    let planned = match (&source, &spec.certificate_id) {
        (Some(source), _) => target(spec, &format!("from Secret {:?}", source.secret.name)),
        (None, id) => target(spec, id.as_deref().unwrap_or_default()),
    };
    let attempt = Attempt {
        generation: cp.metadata.generation.unwrap_or(0),
        push_request: cp.push_request(),
        credentials_digest: read.digest.as_deref(),
        endpoint: ctx.scm.endpoint().as_str(),
        target: &planned,
        now,
    };
    let credentials = match read.credentials {
        Ok(c) => c,
        Err(e) => return record_credentials_problem(cp, ctx, api, current, &attempt, &e).await,
    };
    // Checked again right before SCM is called: leadership may have ended during the reads above.
    if !ctx.leadership.leads() {
        ctx.metrics.reconciled("standby");
        return Ok(Action::await_change());
    }
    let (working, certificate_id) = match &source {
        None => (current.clone(), spec.certificate_id.clone().unwrap_or_default()),
        Some(source) => match progress.around(imported(cp, ctx, &credentials, current, source)).await {
            Ok(imported) => imported,
            Err(failure) => {
                let outcome = PushOutcome::Failed(failure);
                let (new, action) = after_attempt(&importing(current, source), &attempt, &outcome, rand::random());
                log_outcome(cp, "import", &outcome, &new);
                record(ctx, cp, api, current, new).await?;
                ctx.metrics.reconciled("import_failed");
                return Ok(action);
            }
        },
    };
    let pushed_target = target(spec, &certificate_id);
    let attempt = Attempt {
        target: &pushed_target,
        ..attempt
    };
    let outcome = progress
        .around(send(cp, ctx, &credentials, &certificate_id, cause))
        .await;
    let (new, action) = after_attempt(&working, &attempt, &outcome, rand::random::<f64>());
    log_outcome(cp, "push", &outcome, &new);
    record(ctx, cp, api, current, new).await?;
    if let (PushOutcome::Pushed { .. }, Some(_)) = (&outcome, &source) {
        // The certificate this one replaces serves nobody once the renewal is in the target service.
        let superseded = current
            .pushed_certificate_id
            .as_deref()
            .filter(|old| *old != certificate_id);
        if let Some(old) = superseded.filter(|_| !spec.retain_superseded()) {
            delete_superseded(ctx, cp, &credentials, old).await;
        }
    }
    drop(credentials);
    ctx.metrics.reconciled(match outcome {
        PushOutcome::Pushed { .. } => "pushed",
        PushOutcome::Failed(_) => "push_failed",
    });
    Ok(action)
}

/// The status as it is about the certificate in `source`: a different certificate (a renewal) starts afresh, with
/// no SCM ID and no failures counted yet.
fn importing(current: &CertificatePushStatus, source: &Source) -> CertificatePushStatus {
    let mut status = current.clone();
    if current.source_fingerprint.as_deref() != Some(source.tls.fingerprint.as_str()) {
        status.certificate_id = None;
        status.failed_attempts = None;
        status.next_retry_time = None;
        status.outcome_unknown_time = None;
    }
    status.source_fingerprint = Some(source.tls.fingerprint.clone());
    status.not_after = Some(status::format_time(source.tls.not_after));
    status.source_secret = Some(source.secret.clone());
    status
}

/// The SCM ID of the certificate in `source`, with the status that records it: the ID already recorded, or that
/// of an earlier import found by its deterministic name (a crash between import and status write), or a new
/// import. The private key travels only in the import request.
async fn imported(
    cp: &CertificatePush,
    ctx: &Context,
    credentials: &Credentials,
    current: &CertificatePushStatus,
    source: &Source,
) -> Result<(CertificatePushStatus, String), PushFailure> {
    let mut working = importing(current, source);
    if let Some(id) = &working.certificate_id {
        return Ok((working.clone(), id.clone()));
    }
    let name = source::import_name(
        &cp.namespace().unwrap_or_default(),
        &cp.name_any(),
        &source.tls.fingerprint,
    );
    let listed: ListResponse = answer(timed(ctx, "list", ctx.scm.list(credentials, &name)).await, 200, "list")?;
    let earlier = listed.certificates.into_iter().find(|c| c.name == name).map(|c| c.id);
    let id = match earlier {
        Some(id) => {
            info!(namespace = ?cp.namespace(), name = cp.name_any(), certificate_id = %id, "reusing the earlier import of this certificate");
            id
        }
        None => {
            let tls = &source.tls;
            let request = ImportRequest {
                name,
                certificate: tls.certificate.clone(),
                certificate_chain: (!tls.chain.is_empty()).then(|| tls.chain.clone()),
                private_key: tls.private_key_pem().to_owned(),
            };
            let transport = timed(ctx, "import", ctx.scm.import(credentials, &request)).await;
            drop(request);
            let created: ImportResponse = answer(transport, 200, "import")?;
            info!(namespace = ?cp.namespace(), name = cp.name_any(), certificate_id = %created.certificate_id, fingerprint = %tls.fingerprint, "imported the certificate into SCM");
            created.certificate_id
        }
    };
    crate::scm::client::check_certificate_id(&id).map_err(|message| rejected(format!("SCM answered {message}")))?;
    // An import that was never pushed (its push failed before this renewal) serves nobody.
    let unpushed = current
        .certificate_id
        .as_deref()
        .filter(|old| *old != id && current.pushed_certificate_id.as_deref() != Some(*old));
    if let Some(old) = unpushed.filter(|_| !cp.spec.retain_superseded()) {
        delete_superseded(ctx, cp, credentials, old).await;
    }
    working.certificate_id = Some(id.clone());
    Ok((working, id))
}

/// A failure found by the operator itself, before or after an SCM answer, that retrying cannot fix.
fn rejected(message: String) -> PushFailure {
    PushFailure {
        kind: FailureKind::Rejected,
        http_status: None,
        error_code: None,
        error_message: message,
        request_id: None,
        retry_after: None,
        outcome_unknown: false,
    }
}

/// The JSON body of a successful answer (status `success`), or the failure it was.
fn answer<T: serde::de::DeserializeOwned>(
    transport: Transport,
    success: u16,
    operation: &str,
) -> Result<T, PushFailure> {
    match classify_as(&transport, success) {
        PushOutcome::Failed(failure) => Err(failure),
        PushOutcome::Pushed { .. } => {
            let body = match &transport {
                Transport::Answered(reply) => reply.body.as_slice(),
                _ => &[],
            };
            serde_json::from_slice(body).map_err(|e| {
                rejected(format!(
                    "SCM answered the {operation} request with HTTP {success} and a body that is not the expected JSON ({e})"
                ))
            })
        }
    }
}

/// Deletes a certificate this operator imported and that a renewal replaced. One attempt: a failure is announced
/// (Warning Event `SupersededNotDeleted` naming the ID) and left to a human, so cleanup can never block a push.
async fn delete_superseded(ctx: &Context, cp: &CertificatePush, credentials: &Credentials, certificate_id: &str) {
    let Err(failure) = delete_from_scm(ctx, credentials, certificate_id).await else {
        info!(namespace = ?cp.namespace(), name = cp.name_any(), certificate_id, "deleted the superseded certificate from SCM");
        return;
    };
    warn!(namespace = ?cp.namespace(), name = cp.name_any(), certificate_id, error = %failure.error_message, "could not delete the superseded certificate from SCM");
    let note = format!(
        "Could not delete superseded certificate {certificate_id} from SCM ({}); delete it in the SCM console or API, \
         or set spec.importPolicy.retainSuperseded to keep such certificates",
        failure.error_message
    );
    publish(ctx, cp, EventType::Warning, "SupersededNotDeleted", note, "Delete");
}

/// Deletes one certificate from SCM; a 404 counts as done, since gone is what was wanted.
async fn delete_from_scm(ctx: &Context, credentials: &Credentials, certificate_id: &str) -> Result<(), PushFailure> {
    match classify_as(
        &timed(ctx, "delete", ctx.scm.delete(credentials, certificate_id)).await,
        204,
    ) {
        PushOutcome::Failed(f) if f.http_status != Some(404) => Err(f),
        _ => Ok(()),
    }
}

/// Nothing can be sent (spec or source Secret): the status says why, and a change brings the object back.
async fn not_sent(
    ctx: &Context,
    api: &Api<CertificatePush>,
    cp: &CertificatePush,
    current: &CertificatePushStatus,
    reason: Reason,
    message: &str,
    now: Timestamp,
) -> Result<Action, Error> {
    let attempt = Attempt {
        generation: cp.metadata.generation.unwrap_or(0),
        push_request: cp.push_request(),
        // The credential was not involved; what is recorded about it stays.
        credentials_digest: current.credentials_digest.as_deref(),
        endpoint: ctx.scm.endpoint().as_str(),
        target: "",
        now,
    };
    record_not_sent(ctx, api, cp, current, &attempt, reason, message, "invalid").await
}

/// No usable credentials: nothing is sent; the status says why, and the Secret watch brings the object back.
async fn record_credentials_problem(
    cp: &CertificatePush,
    ctx: &Context,
    api: &Api<CertificatePush>,
    current: &CertificatePushStatus,
    attempt: &Attempt<'_>,
    problem: &CredentialsError,
) -> Result<Action, Error> {
    let reason = match problem {
        CredentialsError::NotFound(_) => Reason::CredentialsNotFound,
        CredentialsError::Invalid(_) => Reason::InvalidCredentials,
    };
    record_not_sent(
        ctx,
        api,
        cp,
        current,
        attempt,
        reason,
        &problem.to_string(),
        "credentials_error",
    )
    .await
}

/// Saves the status of an attempt stopped before any request, with its Event; the next change of the object or a
/// Secret brings it back.
#[allow(clippy::too_many_arguments)] // Each is one fact of the record; a struct would only rename them.
async fn record_not_sent(
    ctx: &Context,
    api: &Api<CertificatePush>,
    cp: &CertificatePush,
    current: &CertificatePushStatus,
    attempt: &Attempt<'_>,
    reason: Reason,
    message: &str,
    result: &'static str,
) -> Result<Action, Error> {
    let new = status::not_sent(current, attempt, reason, message);
    save(api, &cp.name_any(), current, &new).await?;
    notify(ctx, cp, current, &new).await;
    ctx.metrics.reconciled(result);
    Ok(Action::await_change())
}

/// Sends one push (unless the ID cannot make a valid request) and classifies the answer.
async fn send(
    cp: &CertificatePush,
    ctx: &Context,
    credentials: &Credentials,
    certificate_id: &str,
    cause: Cause,
) -> PushOutcome {
    let spec = &cp.spec;
    let request = match PushRequest::new(certificate_id, spec.target_service, &spec.target_project) {
        Ok(request) => request,
        Err(message) => return PushOutcome::Failed(rejected(message)),
    };
    info!(namespace = ?cp.namespace(), name = cp.name_any(), ?cause, generation = cp.metadata.generation, certificate_id, "pushing certificate");
    let transport = timed(ctx, "push", ctx.scm.push(credentials, &request)).await;
    crate::scm::classify(&transport)
}

/// Awaits one SCM request and counts it in the metrics under `operation`.
async fn timed(
    ctx: &Context,
    operation: &'static str,
    request: impl std::future::Future<Output = Transport>,
) -> Transport {
    let started = Instant::now();
    let transport = request.await;
    ctx.metrics
        .scm_request(operation, &transport, started.elapsed().as_secs_f64());
    if let Transport::Answered(reply) = &transport {
        // Huawei support asks for this id; every SCM answer is in the log with it.
        info!(
            operation,
            http_status = reply.status,
            request_id = reply.request_id.as_deref().unwrap_or("-"),
            "SCM answered"
        );
    }
    transport
}

/// The status after an attempt and when to look again. Pure: `jitter` (uniform in [0, 1)) spreads retries.
fn after_attempt(
    current: &CertificatePushStatus,
    attempt: &Attempt,
    outcome: &PushOutcome,
    jitter: f64,
) -> (CertificatePushStatus, Action) {
    match outcome {
        PushOutcome::Pushed {
            http_status,
            request_id,
        } => (
            status::pushed(current, attempt, *http_status, request_id.clone()),
            Action::await_change(),
        ),
        PushOutcome::Failed(failure) => {
            let attempts = policy::failed_attempts(current, attempt.generation);
            let delay = failure
                .kind
                .is_transient()
                .then(|| policy::backoff(attempts, failure.retry_after, jitter));
            // Status keeps whole seconds, so the due time is rounded up: a retry never comes before its backoff.
            let next_retry = delay
                .and_then(|d| attempt.now.checked_add(d).ok())
                .map(policy::ceil_to_second);
            let wait = next_retry.map(|at| policy::until(attempt.now, at));
            (
                status::failed(current, attempt, failure, attempts, next_retry),
                wait.map_or_else(Action::await_change, Action::requeue),
            )
        }
    }
}

fn log_outcome(cp: &CertificatePush, operation: &str, outcome: &PushOutcome, new: &CertificatePushStatus) {
    match outcome {
        PushOutcome::Pushed { http_status, .. } => {
            info!(namespace = ?cp.namespace(), name = cp.name_any(), http_status, "pushed certificate");
        }
        PushOutcome::Failed(failure) => warn!(
            namespace = ?cp.namespace(),
            name = cp.name_any(),
            operation,
            http_status = failure.http_status,
            error_code = failure.error_code.as_deref(),
            error_message = failure.error_message,
            outcome_unknown = failure.outcome_unknown,
            attempts = new.failed_attempts,
            next_retry = new.next_retry_time.as_deref(),
            "{operation} failed"
        ),
    }
}

/// Saves the status that follows an SCM request. Losing it could mean pushing twice or re-sending a refused
/// credential, so the write is retried here rather than the whole reconcile, and a status that still cannot be
/// saved is kept in memory and saved before anything else happens to the object.
async fn record(
    ctx: &Context,
    cp: &CertificatePush,
    api: &Api<CertificatePush>,
    old: &CertificatePushStatus,
    new: CertificatePushStatus,
) -> Result<(), Error> {
    let written = save_after_request(api, &cp.name_any(), old, &new).await;
    if keep_unless_saved(ctx, cp, &new, written).await? == Written::Saved {
        notify(ctx, cp, old, &new).await;
    }
    Ok(())
}

/// What became of a status write that follows an SCM request.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    /// The API server has it.
    Saved,
    /// The object was deleted meanwhile: there is nothing left to record the outcome on.
    Gone,
    /// The API server refused it as invalid (422); it stays the truth in memory, so nothing is pushed twice.
    KeptInMemory,
}

/// Settles the result of writing `status`, the one place that decides what a failed write means: a 404 forgets
/// the object; a 422 is announced and `status` kept in memory; any other error keeps it in memory and fails the
/// reconcile, so it is saved before anything else happens to the object.
async fn keep_unless_saved(
    ctx: &Context,
    cp: &CertificatePush,
    status: &CertificatePushStatus,
    written: Result<(), Error>,
) -> Result<Written, Error> {
    let uid = cp.uid().unwrap_or_default();
    match written {
        Ok(()) => Ok(Written::Saved),
        Err(e) if api_code(&e) == Some(404) => {
            ctx.forget(&uid);
            Ok(Written::Gone)
        }
        Err(e) if api_code(&e) == Some(422) => {
            status_write_rejected(ctx, cp, &e).await;
            lock(&ctx.unsaved).insert(uid, status.clone());
            Ok(Written::KeptInMemory)
        }
        Err(e) => {
            lock(&ctx.unsaved).insert(uid, status.clone());
            Err(e)
        }
    }
}

/// The HTTP status of a Kubernetes API error, if the API server answered.
fn api_code(e: &Error) -> Option<u16> {
    match e {
        Error::Kube(kube::Error::Api(s)) => Some(s.code),
        _ => None,
    }
}

/// A status the API server refuses as invalid (422) cannot be fixed by retrying: say so in the log, the
/// metrics and an Event, since the status itself cannot carry it.
async fn status_write_rejected(ctx: &Context, cp: &CertificatePush, e: &Error) {
    warn!(namespace = ?cp.namespace(), name = cp.name_any(), error = %e, "the API server refused the status as invalid; keeping it in memory");
    ctx.metrics.status_write_failed("invalid");
    let note = format!("The API server refused the status: {e}");
    publish(ctx, cp, EventType::Warning, "StatusWriteFailed", note, "UpdateStatus");
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

/// Retries a status write for about 6 s (200 ms doubling, five retries), unless the answer says a retry cannot
/// help (the object is gone, the status is invalid, or the operator may not write it).
async fn save_after_request(
    api: &Api<CertificatePush>,
    name: &str,
    old: &CertificatePushStatus,
    new: &CertificatePushStatus,
) -> Result<(), Error> {
    let retries = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(5);
    (|| save(api, name, old, new))
        .retry(retries)
        .sleep(tokio::time::sleep)
        .when(|e| !matches!(api_code(e), Some(400..=408 | 410..=428)))
        .notify(|e, delay| {
            warn!(name, error = %e, retry_in_ms = delay.as_millis() as u64, "saving status after an SCM request failed; retrying the write, not the request");
        })
        .await
}

/// Publishes the Event for a state change, if any. A failed publish is logged, not fatal: the status holds the truth.
async fn notify(ctx: &Context, cp: &CertificatePush, old: &CertificatePushStatus, new: &CertificatePushStatus) {
    let Some(Notice { warning, reason, note }) = status::notice(old, new) else {
        return;
    };
    let type_ = if warning { EventType::Warning } else { EventType::Normal };
    publish(ctx, cp, type_, reason, note, "Push");
}

fn has_finalizer(cp: &CertificatePush) -> bool {
    cp.finalizers().iter().any(|f| f == CLEANUP_FINALIZER)
}

/// Adds or removes the cleanup finalizer, keeping any other; the resourceVersion makes a concurrent change fail the
/// write (and the reconcile, which is retried) instead of being overwritten.
async fn set_finalizer(api: &Api<CertificatePush>, cp: &CertificatePush, present: bool) -> Result<(), Error> {
    let mut finalizers: Vec<String> = cp
        .finalizers()
        .iter()
        .filter(|f| *f != CLEANUP_FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(CLEANUP_FINALIZER.to_owned());
    }
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": cp.resource_version()}});
    api.patch(&cp.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// A CertificatePush with deletionPolicy Delete is being deleted: delete what it imported from SCM, then let it go.
/// Bounded: without usable credentials, or after [`MAX_CLEANUP_ATTEMPTS`] failed attempts, a Warning Event names
/// what is left in SCM and the finalizer is removed anyway, so deletion is never blocked for long.
async fn cleanup(cached: &CertificatePush, ctx: &Context) -> Result<Action, Error> {
    if !has_finalizer(cached) {
        return Ok(Action::await_change());
    }
    let ns = cached.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<CertificatePush> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cp) = api.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let uid = cp.uid().unwrap_or_default();
    let st = cp.status.clone().unwrap_or_default();
    let mut imported: Vec<String> = [st.certificate_id, st.pushed_certificate_id]
        .into_iter()
        .flatten()
        .collect();
    imported.dedup();
    if !cp.spec.deletes_imports() {
        imported.clear();
    }
    if !imported.is_empty() {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let secret = secrets.get_opt(&cp.spec.credentials_ref.name).await?;
        match Credentials::from_secret(secret.as_ref(), &cp.spec.credentials_ref) {
            Err(problem) => {
                let note = format!(
                    "Left {} in SCM: no usable credentials to delete it ({problem}); delete it in the SCM console",
                    imported.join(", ")
                );
                publish(ctx, &cp, EventType::Warning, "CleanupSkipped", note, "Delete");
            }
            Ok(credentials) => {
                if let Some(retry) = delete_imports(ctx, &cp, &credentials, &imported).await {
                    return Ok(retry);
                }
            }
        }
    }
    set_finalizer(&api, &cp, false).await?;
    ctx.forget(&uid);
    Ok(Action::await_change())
}

/// Deletes `imported` from SCM; `Some(requeue)` while failed attempts stay under the bound, `None` when done or
/// given up (each announced by an Event).
async fn delete_imports(
    ctx: &Context,
    cp: &CertificatePush,
    credentials: &Credentials,
    imported: &[String],
) -> Option<Action> {
    let mut left = Vec::new();
    let mut last_error = String::new();
    for id in imported {
        if let Err(failure) = delete_from_scm(ctx, credentials, id).await {
            left.push(id.clone());
            last_error = failure.error_message;
        }
    }
    if left.is_empty() {
        let note = format!("Deleted imported certificate {} from SCM", imported.join(", "));
        publish(ctx, cp, EventType::Normal, "ImportsDeleted", note, "Delete");
        return None;
    }
    let attempts = count_failure(&ctx.cleanups, cp);
    if attempts < MAX_CLEANUP_ATTEMPTS {
        warn!(namespace = ?cp.namespace(), name = cp.name_any(), attempts, error = %last_error, "deleting imported certificates failed; retrying");
        // The push backoff without its jitter: 5 s doubling.
        let attempt = i32::try_from(attempts).unwrap_or(i32::MAX);
        return Some(Action::requeue(policy::backoff(attempt, None, 0.5)));
    }
    let note = format!(
        "Gave up deleting {} from SCM after {attempts} attempts ({last_error}); the CertificatePush is released, \
         delete the certificate in the SCM console",
        left.join(", ")
    );
    publish(ctx, cp, EventType::Warning, "CleanupAbandoned", note, "Delete");
    None
}

/// Publishes an Event about `cp`; a failed publish is logged, not fatal: the status holds the truth.
fn publish(ctx: &Context, cp: &CertificatePush, type_: EventType, reason: &str, note: String, action: &str) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    ctx.events.publish(event, cp.object_ref(&()));
}

/// Requeues failed reconciles (Kubernetes API errors) with a per-object exponential backoff: 1 s to 5 min.
pub fn error_policy(cp: Arc<CertificatePush>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = count_failure(&ctx.errors, &cp);
    let delay = error_delay(failures);
    warn!(namespace = ?cp.namespace(), name = cp.name_any(), error = %error, failures, retry_in_seconds = delay.as_secs(), "reconcile failed");
    ctx.metrics.reconciled("error");
    Action::requeue(delay)
}

/// The delay after the `failures`-th consecutive reconcile error: 1 s doubling to 5 min.
fn error_delay(failures: u32) -> Duration {
    const CAP: Duration = Duration::from_secs(300);
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(CAP)
        .without_max_times()
        .build()
        .nth(failures.saturating_sub(1) as usize)
        .unwrap_or(CAP)
}

/// Objects in the cache by the Ready condition's (status, reason), for `certpush_resources`.
fn resource_counts(store: &Store<CertificatePush>) -> Vec<((String, String), i64)> {
    let mut counts: HashMap<(String, String), i64> = HashMap::new();
    for cp in store.state() {
        let key = cp
            .status
            .as_ref()
            .and_then(status::ready)
            .map_or_else(Default::default, |c| (c.status.clone(), c.reason.clone()));
        *counts.entry(key).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// The CertificatePushes in `candidates` that reference the Secret `secret_name` in `secret_ns`, as credentials or
/// as the source of the certificate.
pub fn referrers<'a>(
    candidates: impl IntoIterator<Item = &'a CertificatePush>,
    secret_ns: Option<&str>,
    secret_name: &str,
) -> Vec<ObjectRef<CertificatePush>> {
    candidates
        .into_iter()
        .filter(|cp| {
            let spec = &cp.spec;
            let names_it = spec.credentials_ref.name == secret_name
                || spec.source_secret_ref.as_ref().is_some_and(|s| s.name == secret_name);
            cp.namespace().as_deref() == secret_ns && names_it
        })
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
    let scm = ScmClient::with_timeout(&args.scm_endpoint, ca.as_deref(), args.scm_timeout)?
        .with_rate_limit(args.scm_qps, args.scm_burst);
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
    let push_watch = Arc::new(WatchHealth::default());
    let secret_watch = Arc::new(WatchHealth::default());
    let health = server::Health {
        watches: vec![
            ("certificatepushes", push_watch.clone()),
            ("secrets", secret_watch.clone()),
        ],
        metrics: metrics.clone(),
        unready_after: Duration::from_secs(args.unready_after_seconds),
        unhealthy_after: Duration::from_secs(args.unhealthy_after_seconds),
    };
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(Error::Server)?;
    // The bound address, also when port 0 asked the system for a free one.
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving /healthz, /readyz and /metrics");
    }
    tokio::spawn(async move {
        if let Err(e) = server::serve(listener, health).await {
            warn!(error = %e, "health and metrics server stopped");
        }
    });

    let election = match args.leader_config() {
        Some(config) => {
            config.validate().map_err(Error::LeaderConfig)?;
            info!(lease = %config.lease_name, namespace = %config.lease_namespace, identity = %config.identity, "joining leader election");
            Some(Election::start(client.clone(), &config).await?)
        }
        None => None,
    };
    let leadership = election
        .as_ref()
        .map_or_else(Leadership::always, |e| e.leadership.clone());
    // Each time this replica starts leading, every object is reconciled: as a standby it skipped them all.
    let became_leader = match &election {
        Some(e) => {
            metrics.leading(&args.lease_name, false);
            let metrics = metrics.clone();
            let lease = args.lease_name.clone();
            futures::stream::unfold(e.leading.clone(), move |mut leading| {
                let (metrics, lease) = (metrics.clone(), lease.clone());
                async move {
                    loop {
                        leading.changed().await.ok()?;
                        let now = *leading.borrow_and_update();
                        metrics.leading(&lease, now);
                        if now {
                            return Some(((), leading));
                        }
                    }
                }
            })
            .boxed()
        }
        None => {
            metrics.leading(&args.lease_name, true);
            futures::stream::pending().boxed()
        }
    };
    // Readiness follows the watch streams themselves. Store::wait_until_ready cannot be used here: its
    // oneshot keeps one waker, so a second waiter can leave the controller itself waiting.
    let (store, writer) = reflector::store();
    metrics.max_concurrent_reconciles(args.concurrency);
    let counted = store.clone();
    metrics.count_resources_with(Box::new(move || resource_counts(&counted)));
    let ctx = Arc::new(Context::new(client, scm, metrics, leadership));
    let events = ctx.events.clone();
    // On SIGTERM/SIGINT (as the controller's own shutdown below hears them) reconciles waiting for an SCM rate-limit
    // token send nothing and end, so shutdown waits only for requests already sent, well within the grace period.
    let stopping = ctx.scm.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutting down: SCM requests not yet sent are dropped");
        stopping.stop_sending();
    });
    let forgetting = (ctx.clone(), store.clone());
    // No per-stream backoff: the controller backs off its merged trigger stream on any watch error (kube's
    // DefaultBackoff, 0.8 s doubling to 30 s), and a second backoff here would only slow recovery.
    // managedFields are dropped from the cache: the operator never reads them, and they are most of an object's
    // size (about half the operator's memory at 5,000 objects).
    let watched = watcher::watcher(pushes, watcher::Config::default()).modify(|cp| {
        cp.managed_fields_mut().clear();
    });
    let trigger = reflector::reflector(writer, watched)
        .inspect(move |event| {
            push_watch.observe(event);
            let (ctx, store) = &forgetting;
            match event {
                Ok(watcher::Event::Delete(cp)) => {
                    ctx.forget(&cp.uid().unwrap_or_default());
                    let ns = cp.namespace().unwrap_or_default();
                    ctx.metrics.certificate_expires(&ns, &cp.name_any(), None);
                }
                // After a re-list, objects deleted while the watch was down are simply absent.
                Ok(watcher::Event::InitDone) => {
                    ctx.forget_all_but(store);
                    ctx.metrics.forget_objects();
                }
                _ => {}
            }
        })
        .applied_objects();
    let secret_trigger = watcher::watcher(secrets, watcher::Config::default())
        .inspect(move |event| secret_watch.observe(event))
        .touched_objects();
    let controller = Controller::for_stream(trigger, store.clone());
    controller
        .watches_stream(secret_trigger, move |secret: PartialObjectMeta<Secret>| {
            let state = store.state();
            referrers(
                state.iter().map(|cp| cp.as_ref()),
                secret.metadata.namespace.as_deref(),
                &secret.name_any(),
            )
        })
        .with_config(controller::Config::default().concurrency(args.concurrency))
        .reconcile_all_on(became_leader)
        // SIGTERM: take no new work, let reconciles in flight (and their status writes) finish.
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
    // The last statuses' Events, bounded like the rest of the shutdown.
    if tokio::time::timeout(Duration::from_secs(5), events.flush())
        .await
        .is_err()
    {
        warn!("some Events were not sent before shutdown");
    }
    if let Some(election) = election {
        // Released at once, a standby takes over now instead of after the lease duration.
        election.release(Duration::from_secs(5)).await;
    }
    Ok(())
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// One more consecutive failure of `cp` in `counts`; returns the new count.
fn count_failure(counts: &Mutex<HashMap<String, u32>>, cp: &CertificatePush) -> u32 {
    let mut counts = lock(counts);
    let n = counts.entry(cp.uid().unwrap_or_default()).or_insert(0);
    *n = n.saturating_add(1);
    *n
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps inconsistent, so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CertificatePushSpec, CredentialsRef, TargetService};
    use scm_sim::{Sim, SimConfig};

    const ENDPOINT: &str = "http://127.0.0.1:9/";
    const PATH: &str = "/apis/scm.certpush.dev/v1alpha1/namespaces/ns/certificatepushes/one";

    fn cp(ns: &str, name: &str, secret: &str) -> CertificatePush {
        let mut cp = CertificatePush::new(
            name,
            CertificatePushSpec {
                certificate_id: Some("scs1554192131150".into()),
                source_secret_ref: None,
                import_policy: None,
                deletion_policy: None,
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

    /// A context whose Kubernetes client is a mocked API server and whose SCM endpoint is `scm`.
    fn mocked_context(scm: &str) -> (Arc<Context>, ApiServer) {
        crate::install_crypto_provider();
        let (service, handle) = tower_test::mock::pair();
        let client = Client::new(service, "default");
        let scm = ScmClient::new(scm, None).unwrap();
        (
            Arc::new(Context::new(
                client,
                scm,
                Arc::new(Metrics::default()),
                Leadership::always(),
            )),
            handle,
        )
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
        (obj, status::pushed(&pending, &a, 204, Some("r".into())))
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
        save_after_request(&api, "one", &old, &pushed)
            .await
            .expect("second write succeeds");
        assert_eq!(paths(&seen), vec![format!("PATCH {PATH}/status"); 2]);
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
        lock(&ctx.errors).insert("uid-1".into(), 3);
        let started = Instant::now();
        record(&ctx, &obj, &api, &old, pushed.clone())
            .await
            .expect("a deleted object is not an error");
        assert!(started.elapsed() < Duration::from_secs(1), "no retry loop");
        assert_eq!(paths(&seen), [format!("PATCH {PATH}/status")]);
        assert_eq!(ctx.remembered(), 0, "nothing is kept for a deleted object");

        // 422: the API server will never take this status. It is logged, counted and announced, and kept in
        // memory as the truth, so a later reconcile neither fails nor pushes again.
        let (ctx, server) = mocked_context(ENDPOINT);
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
        assert!(
            ctx.metrics
                .encode()
                .contains("certpush_status_write_failures_total{reason=\"invalid\"} 1")
        );
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
        ctx.forget("uid-1");
        assert_eq!(ctx.remembered(), 0);
    }

    fn api_for(ctx: &Context) -> Api<CertificatePush> {
        Api::namespaced(ctx.client.clone(), "ns")
    }

    /// Defect: status keeps whole seconds, and the due time was truncated, so a retry could come up to a second
    /// before its backoff (the chaos test saw 3.07 s after a failure whose backoff was at least 4 s).
    #[test]
    fn a_retry_is_never_due_before_its_backoff() {
        let failure = PushFailure {
            kind: FailureKind::Transient,
            http_status: Some(503),
            error_code: Some("APIGW.0613".into()),
            error_message: "unavailable".into(),
            request_id: None,
            retry_after: None,
            outcome_unknown: false,
        };
        for now in [
            "2026-01-01T00:00:00.950Z",
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.001Z",
        ] {
            let now: Timestamp = now.parse().unwrap();
            let attempt = Attempt { now, ..attempt(3) };
            for jitter in [0.0, 0.5, 0.999] {
                let (new, action) = after_attempt(
                    &Default::default(),
                    &attempt,
                    &PushOutcome::Failed(failure.clone()),
                    jitter,
                );
                let backoff = policy::backoff(1, None, jitter);
                let due = status::parse_time(new.next_retry_time.as_deref().unwrap()).unwrap();
                assert!(
                    policy::until(now, due) >= backoff,
                    "{now} + {backoff:?} is due at {due}"
                );
                assert_eq!(action, Action::requeue(policy::until(now, due)));
                let seen = policy::next_step(&Observed {
                    generation: 3,
                    push_request: None,
                    status: &new,
                    credentials_digest: Some("sha256:1"),
                    endpoint: ENDPOINT,
                    source_fingerprint: None,
                    now,
                });
                assert!(matches!(seen, Step::WaitForRetry(d) if d >= backoff), "{seen:?}");
            }
        }
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
        assert_eq!(sim.pushes().len(), 1);
        assert_eq!(sim.pushes()[0].status, 401);
        // Status still forbidden: nothing new may be sent.
        assert!(reconcile(obj.clone(), ctx.clone()).await.is_err());
        assert_eq!(sim.pushes().len(), 1, "the rejected token was sent again");
        // Status allowed: the kept 401 is saved first, and the object stays stalled.
        allow.store(true, std::sync::atomic::Ordering::SeqCst);
        let action = reconcile(obj.clone(), ctx.clone()).await.expect("saved");
        assert_eq!(action, Action::await_change());
        assert_eq!(sim.pushes().len(), 1, "the rejected token was sent again");
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
        lock(&ctx.unsaved).insert("uid-1".into(), pushed.clone());
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
        let stored = with_status(&stale, &pushed);
        let seen = serve(server, move |_, _| (200, stored.clone()));
        let action = reconcile(Arc::new(stale), ctx).await.expect("reconcile succeeds");
        assert_eq!(action, Action::await_change());
        // A Secret GET would be the first step of a second push.
        assert_eq!(paths(&seen), [format!("GET {PATH}")]);
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
            lock(&ctx.unsaved).insert(uid.into(), pushed.clone());
            lock(&ctx.errors).insert(uid.into(), 1);
        }
        // A watch Delete event.
        ctx.forget("uid-1");
        assert_eq!(ctx.remembered(), 4);
        // A re-list after the watch was down: only objects that still exist are remembered.
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(other));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        ctx.forget_all_but(&store);
        assert_eq!(ctx.remembered(), 2);
        assert!(lock(&ctx.unsaved).contains_key("uid-2") && lock(&ctx.errors).contains_key("uid-2"));
    }

    #[test]
    fn reconcile_errors_back_off_from_1s_to_5min() {
        let secs: Vec<u64> = [1, 2, 3, 4, 9, 10, 50].map(|n| error_delay(n).as_secs()).to_vec();
        assert_eq!(secs, [1, 2, 4, 8, 256, 300, 300]);
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
