//! The reconciler: reads a CertificatePush and its Secret, decides ([`crate::policy`]), pushes ([`crate::scm`]),
//! records ([`crate::status`]).
//!
//! One job per file: this one holds the shared [`Context`] and the reconcile flow; [`push`] sends (importing the
//! source certificate first, [`import`]); [`persist`] saves statuses and posts Events; [`cleanup`] runs the
//! finalizer; [`memory`] is what is kept between reconciles; [`run`] sets up the watches and the Controller.

mod accounts;
mod cleanup;
mod deploy;
mod expiry;
mod fence;
mod import;
mod memory;
mod persist;
mod push;
mod run;
mod secrets;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use tracing::warn;

pub use cleanup::MAX_CLEANUP_ATTEMPTS;
pub use run::{referrers, run};

use crate::Error;
use crate::account::{Access, Accounts, Problem};
use crate::crd::{CertificatePush, CertificatePushStatus, CertificateSource};
use crate::events::EventQueue;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::policy::{self, Cause, Destination, Observed, Step, deletions};
use crate::scm::ScmClient;
use crate::source::{Source, SourceError, TlsSource};
use crate::status::{self, Reason};
use memory::Memory;
use persist::{Progress, Written};

/// Field manager of every status write (server-side apply), and the reporting controller of every Event.
pub const FIELD_MANAGER: &str = "certpush-operator";

/// Shared state of all reconciles.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// SCM client for the configured endpoint.
    pub scm: ScmClient,
    /// Which account (endpoint, credentials Secret, limits) each object pushes with.
    accounts: Accounts,
    /// Posts Events beside the reconciles: a reconcile is not held for an API round trip that changes nothing it
    /// decides; shutdown waits for the queue.
    events: EventQueue,
    /// The controller's metrics.
    pub metrics: Arc<Metrics>,
    /// Whether this replica may act (always, without leader election).
    pub leadership: Leadership,
    /// What is kept about each object between reconciles.
    memory: Memory,
    /// The resourceVersion each reconcile in flight writes on top of.
    versions: memory::Versions,
    /// Secret reads, shared by the reconciles waiting for the same Secret, and limited in number: a Secret may be
    /// up to 1 MiB, and 64 reconciles must not all hold a copy together.
    secret_reads: secrets::SecretReads,
    /// `--min-repush-interval`.
    min_repush_interval: std::time::Duration,
    /// `--in-use-refresh` (zero: status.inUse is not kept).
    in_use_refresh: std::time::Duration,
    /// Gathers the deployed-resources questions of many objects into few requests.
    in_use: crate::scm::batch::InUseBatcher,
    /// The expiry of each certificate pushed by ID, read once and shared.
    expiries: expiry::Expiries,
    /// `--controller-name`: only objects whose spec.controllerName is this (or, for the default, absent) are handled.
    controller_name: String,
    /// `--cluster-name`: part of every import's name, so that operators of several clusters sharing an SCM account
    /// never find (and later delete) each other's imports.
    cluster_name: crate::source::ClusterName,
}

impl Context {
    /// A context for the given clients; `leadership` decides whether this replica acts.
    pub fn new(
        client: Client,
        scm: ScmClient,
        events: EventQueue,
        metrics: Arc<Metrics>,
        leadership: Leadership,
    ) -> Self {
        let accounts = Accounts::new(
            kube::runtime::reflector::store().0,
            kube::runtime::reflector::store().0,
            "default".to_owned(),
            scm.clone(),
            false,
        );
        Self {
            client,
            scm,
            accounts,
            events,
            metrics,
            leadership,
            memory: Memory::default(),
            versions: Default::default(),
            secret_reads: Default::default(),
            min_repush_interval: policy::MIN_REPUSH_INTERVAL,
            in_use_refresh: std::time::Duration::ZERO,
            in_use: Default::default(),
            expiries: Default::default(),
            controller_name: crate::crd::DEFAULT_CONTROLLER_NAME.to_owned(),
            cluster_name: Default::default(),
        }
    }

    /// Resolves spec.accountRef with `accounts` (by default no account exists).
    pub fn with_accounts(mut self, accounts: Accounts) -> Self {
        self.accounts = accounts;
        self
    }

    /// Honours a re-push annotation at most once per `interval` for each object (`--min-repush-interval`).
    pub fn with_min_repush_interval(mut self, interval: std::time::Duration) -> Self {
        self.min_repush_interval = interval;
        self
    }

    /// Handles only the objects that name `name` in spec.controllerName (or name none, for the default name).
    pub fn with_controller_name(mut self, name: &str) -> Self {
        self.controller_name = name.to_owned();
        self
    }

    /// Names imports as the cluster `name`'s (`--cluster-name`; none by default).
    pub fn with_cluster_name(mut self, name: crate::source::ClusterName) -> Self {
        self.cluster_name = name;
        self
    }

    /// Keeps status.inUse, asking SCM again at most this often (and after each push); zero turns it off.
    pub fn with_in_use_refresh(mut self, refresh: std::time::Duration) -> Self {
        self.in_use_refresh = refresh;
        self
    }

    /// Drops what is kept in memory about a deleted object.
    pub fn forget(&self, cp: &CertificatePush) {
        self.memory.forget(&cp.uid().unwrap_or_default());
    }

    /// Drops what is kept about objects that no longer exist (deleted while the watch was down).
    pub fn forget_all_but(&self, live: &Store<CertificatePush>) {
        let uids: HashSet<String> = live.state().iter().filter_map(|cp| cp.uid()).collect();
        self.memory.retain(&uids);
        self.expiries.prune();
    }

    /// This replica starts leading (again). After a real change of leader what it kept from an earlier term may be
    /// older than what the leader in between wrote, so it is dropped, and every object is decided from the API
    /// server's state. When the fence reopens on the same term (no other replica took the Lease), the outcomes kept
    /// because their status write failed are the newest truth: they are kept and written first, not pushed again.
    pub fn start_leading(&self) {
        if !self.leadership.continued_term() {
            self.memory.clear();
        }
    }

    /// How many unsaved statuses and error counts are kept in memory, over all objects.
    pub fn remembered(&self) -> usize {
        self.memory.remembered()
    }

    /// Asks the policy what `cp` needs and settles every step that needs no push, counting it in the metrics.
    fn decide(
        &self,
        cp: &CertificatePush,
        status: &CertificatePushStatus,
        credential: Credential,
        source_fingerprint: Option<&str>,
        now: Timestamp,
    ) -> Verdict {
        let generation = cp.metadata.generation.unwrap_or(0);
        let projects = cp.spec.destination_projects();
        let endpoint = self.accounts.endpoint(cp);
        let step = {
            let credentials_digest = match &credential {
                Credential::Recorded => status.credentials_digest.as_deref(),
                Credential::Read(read) => read.digest.as_deref(),
            };
            policy::next_step(&Observed {
                generation,
                push_request: cp.push_request(),
                status,
                credentials_digest,
                endpoint: &endpoint,
                source_fingerprint,
                destination: Some(Destination {
                    certificate_id: cp.spec.certificate_id.as_deref(),
                    target_service: cp.spec.target_service,
                    target_project: &projects,
                    pushes: cp.spec.pushes(),
                }),
                min_repush_interval: self.min_repush_interval,
                now,
            })
        };
        // Deploys and deletes owed and due are sent before anything but a push (which sends them after itself),
        // with the Secret's credential unless SCM refused that very one.
        let owed_now = !matches!(step, Step::Push(_)) && deploy::owed_now(self, cp, status, now);
        let credential = match credential {
            c if !owed_now => c,
            Credential::Recorded => return Verdict::ReadSecret,
            Credential::Read(read)
                if read.credentials.is_ok() && deletions::may_send(status, read.digest.as_deref()) =>
            {
                return Verdict::Settle(*read);
            }
            unusable => unusable,
        };
        let mut retry = None;
        let (result, action) = match (step, credential) {
            // A spec edit that keeps what was pushed where, or a status from before `pushed` existed.
            (Step::UpToDate, _)
                if status.observed_generation != Some(generation)
                    || (status.pushed.is_none() && status.pushed_generation == Some(generation)) =>
            {
                return Verdict::Observe;
            }
            (Step::UpToDate, _) => ("unchanged", Action::await_change()),
            (Step::AlreadyPushed, _) => return Verdict::AlreadyPushed,
            (Step::WaitForRetry(delay), _) => {
                retry = Some(delay);
                ("waiting", Action::requeue(delay))
            }
            // Only the Secret's current credential tells whether a stall is over, or what a push would send.
            (Step::Stalled | Step::Push(_), Credential::Recorded) => return Verdict::ReadSecret,
            (Step::Stalled, Credential::Read(_)) => ("stalled", Action::await_change()),
            (Step::Push(cause), Credential::Read(read)) => return Verdict::Push(cause, *read),
        };
        self.metrics.reconciled(result);
        Verdict::Done(policy::look_again(&cp.spec, action, retry, status, now))
    }
}

/// Which credential a decision is made with.
enum Credential {
    /// The one recorded in status: enough to settle objects that are up to date or waiting, without a Secret read.
    Recorded,
    /// The one now in the Secret (boxed: it holds its account's client).
    Read(Box<ReadCredentials>),
}

/// What the reconcile does after a decision.
enum Verdict {
    /// Nothing to send: end with this action.
    Done(Action),
    /// Read the Secret and decide again with its credential.
    ReadSecret,
    /// Nothing to send, but the status must say the source is back with the certificate already pushed.
    AlreadyPushed,
    /// Nothing to send, but the status must describe this generation (a spec edit that keeps what was pushed where).
    Observe,
    /// Push, for this cause, with the credential read.
    Push(Cause, ReadCredentials),
    /// Send the deploys and deletes owed and due (with this usable credential), then decide again.
    Settle(ReadCredentials),
}

/// The credentials read for one reconcile (from the object's Secret or its account's), with the digest the policy
/// compares and the status records, computed once.
struct ReadCredentials {
    credentials: Result<Access, Problem>,
    digest: Option<String>,
}

impl ReadCredentials {
    /// Resolves `cp`'s account and reads the credentials Secret it names.
    async fn read(ctx: &Context, cp: &CertificatePush) -> Result<Self, Error> {
        let credentials = match ctx.accounts.resolve(cp, &Api::all(ctx.client.clone())).await? {
            Ok(resolved) => {
                let read = ctx
                    .secret_reads
                    .get(&ctx.client, &resolved.secret_namespace, &resolved.credentials_ref.name)
                    .await?;
                resolved.access(read.secret.as_ref())
            }
            Err(problem) => Err(problem),
        };
        let digest = credentials.as_ref().ok().map(Access::digest);
        Ok(Self { credentials, digest })
    }
}

/// Brings one CertificatePush to its desired state: at most one SCM push, then its status.
pub async fn reconcile(cp: Arc<CertificatePush>, ctx: Arc<Context>) -> Result<Action, Error> {
    use tracing::Instrument as _;
    // One span per reconcile: every log line of it (SCM request ids included) carries the object and this id.
    let span = tracing::info_span!(
        "reconcile",
        object = %format!("{}/{}", cp.namespace().unwrap_or_default(), cp.name_any()),
        reconcile_id = %format!("{:016x}", rand::random::<u64>()),
    );
    let workers = ctx.metrics.workers();
    workers.inc();
    let started = Instant::now();
    // Its SCM requests share their account's rate fairly with other namespaces'.
    let tenant = cp.namespace().unwrap_or_default();
    let result = crate::scm::as_tenant(tenant, reconcile_inner(&cp, &ctx).instrument(span)).await;
    ctx.versions.set(&cp.uid().unwrap_or_default(), None);
    workers.dec();
    let outcome = match &result {
        Err(_) => "error",
        Ok(action) if *action == Action::await_change() => "success",
        Ok(_) => "requeue_after",
    };
    ctx.metrics.reconcile_finished(outcome, started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.memory.clear_errors(&cp.uid().unwrap_or_default());
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
        return Ok(standby(ctx));
    }
    // Another installation's object: not a status write, not a request, not a finalizer of ours.
    if cached.spec.controller() != ctx.controller_name {
        ctx.metrics.reconciled("ignored");
        return Ok(Action::await_change());
    }
    let ns = cached.namespace().ok_or(Error::MissingNamespace)?;
    let uid = cached.uid().unwrap_or_default();
    let now = Timestamp::now();

    if cached.metadata.deletion_timestamp.is_some() {
        return cleanup::cleanup(cached, ctx).await;
    }
    // Most reconciles (resyncs, unrelated updates, waiting retries) are settled by the cached object alone and cost
    // no API call. An imported certificate is judged by the source Secret's content, which the cache does not hold.
    if let Some(current) = &cached.status
        && status::ready(current).is_some()
        && matches!(cached.spec.source(), Ok(CertificateSource::Id(_)))
        && !ctx.memory.has_unsaved(&uid)
        && cleanup::wants_finalizer(cached) == cleanup::has_finalizer(cached)
        && let Verdict::Done(action) = ctx.decide(cached, current, Credential::Recorded, None, now)
    {
        return Ok(action);
    }

    let api: Api<CertificatePush> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cp) = fresh(ctx, &api, cached, &uid).await? else {
        return Ok(Action::await_change());
    };
    ctx.versions.set(&uid, cp.resource_version());
    // The finalizer is there before anything is imported, so every import is covered.
    if cleanup::wants_finalizer(&cp) != cleanup::has_finalizer(&cp) {
        let version = cleanup::set_finalizer(&api, &cp, cleanup::wants_finalizer(&cp)).await?;
        ctx.versions.set(&uid, version);
    }
    let Some((current, progress)) = restore(ctx, &api, &cp, now).await? else {
        return Ok(Action::await_change());
    };
    let mut current = current;
    let source = match read_source(ctx, &cp, now).await? {
        Ok(source) => source,
        Err(refusal) => return push::refuse(ctx, push::Reconciling::new(&cp, &api, &current, now), refusal).await,
    };
    let fingerprint = source.as_ref().map(|s| s.tls.fingerprint.as_str());

    // Only a stall, a push or an owed delete needs the credentials, so the recorded credential decides first and
    // the Secret is read only for objects that are neither up to date nor waiting.
    let mut credential = Credential::Recorded;
    let (cause, read) = loop {
        let obj = push::Reconciling::new(&cp, &api, &current, now);
        match ctx.decide(&cp, &current, credential, fingerprint, now) {
            Verdict::Done(action) => return Ok(action),
            Verdict::Push(cause, read) => break (cause, read),
            Verdict::AlreadyPushed => return push::already_pushed(ctx, obj, source.as_ref()).await,
            Verdict::Observe => return push::observe(ctx, obj).await,
            Verdict::ReadSecret => credential = Credential::Read(Box::new(ReadCredentials::read(ctx, &cp).await?)),
            Verdict::Settle(read) => {
                if let Ok(access) = &read.credentials {
                    match deploy::settle_owed(ctx, &cp, &api, &current, access, now).await? {
                        fence::Settled::Done(settled) => current = *settled,
                        fence::Settled::Deferred(wait) => {
                            ctx.metrics.reconciled("deferred");
                            return Ok(Action::requeue(wait));
                        }
                        fence::Settled::Fenced => return Ok(standby(ctx)),
                    }
                }
                credential = Credential::Read(Box::new(read));
            }
        }
    };
    let obj = push::Reconciling::new(&cp, &api, &current, now);
    push::push(ctx, obj, read, source, cause, progress).await
}

/// The object to act on, read fresh; None when it is gone or was re-created under its name (the new object gets
/// its own reconcile).
///
/// Anything that writes starts from a fresh read: the cache can lag this operator's own last status write (a
/// Secret event may arrive first), and deciding on it would push the same generation twice. The one exception is
/// an object without any status that this process has never worked on, when no other replica can act: no write of
/// this process can be missing from the cache, and a restart starts from a consistent list, so the cached object is
/// as good as a fresh one and the GET (a quarter of a first push's API requests) is saved.
async fn fresh(
    ctx: &Context,
    api: &Api<CertificatePush>,
    cached: &CertificatePush,
    uid: &str,
) -> Result<Option<CertificatePush>, Error> {
    // With leader election, another replica may have pushed and written a status this cache has not seen yet.
    let trusted = cached.status.is_none() && !ctx.leadership.is_elected();
    let cp = if trusted && ctx.memory.first_sight(uid) {
        cached.clone()
    } else {
        match api.get_opt(&cached.name_any()).await? {
            Some(cp) => cp,
            None => {
                ctx.memory.forget(uid);
                return Ok(None);
            }
        }
    };
    if cp.uid().as_deref() != Some(uid) {
        ctx.memory.forget(uid);
        return Ok(None);
    }
    Ok(Some(cp))
}

/// The status to decide on: a status kept in memory after a failed write is saved first and becomes it; before
/// the first outcome, it is Pending (None when the object went away while saving).
///
/// The Pending status is only written if the first SCM request is slow (see [`Progress`]), so a quick push costs
/// two writes (its status and its Event), not three.
async fn restore(
    ctx: &Context,
    api: &Api<CertificatePush>,
    cp: &CertificatePush,
    now: Timestamp,
) -> Result<Option<(CertificatePushStatus, Progress)>, Error> {
    let mut current = cp.status.clone().unwrap_or_default();
    if let Some(kept) = ctx.memory.take_unsaved(&cp.uid().unwrap_or_default()) {
        let written = persist::save(ctx, api, cp, &current, &kept).await.map(drop);
        if persist::keep_unless_saved(ctx, cp, &kept, written).await? == Written::Gone {
            return Ok(None);
        }
        current = kept;
    }
    if status::ready(&current).is_some() {
        return Ok(Some((current, Progress::default())));
    }
    let pending = status::pending(&current, cp.metadata.generation.unwrap_or(0), now);
    let progress = Progress::new(api, cp, &current, &pending);
    Ok(Some((pending, progress)))
}

/// What to push: a certificate in SCM (None), or the one in the source TLS Secret, checked before anything is
/// sent; `Err` says why nothing can be sent (yet).
async fn read_source(
    ctx: &Context,
    cp: &CertificatePush,
    now: Timestamp,
) -> Result<Result<Option<Source>, push::Refusal>, Error> {
    let namespace = cp.namespace().unwrap_or_default();
    let unread = ctx.accounts.unread(&namespace);
    Ok(match cp.spec.source() {
        Ok(CertificateSource::Id(_)) => Ok(None),
        Ok(CertificateSource::Secret(secret_name)) if let Some(why) = unread => Err(push::Refusal::Invalid(
            Reason::InvalidSource,
            format!("sourceSecretRef {secret_name:?}: {why}"),
        )),
        Ok(CertificateSource::Secret(secret_name)) => {
            let read = ctx.secret_reads.get(&ctx.client, &namespace, secret_name).await?;
            let secret = read.secret.as_ref();
            match TlsSource::from_secret(secret, secret_name, now) {
                Ok(tls) => Ok(Some(Source::new(tls, secret_name, secret))),
                Err(SourceError {
                    message,
                    valid_from: Some(at),
                }) => Err(push::Refusal::NotYetValid(message, at)),
                Err(e) => Err(push::Refusal::Invalid(Reason::InvalidSource, e.message)),
            }
        }
        Err(message) => Err(push::Refusal::Invalid(Reason::InvalidSpec, message)),
    })
}

/// Ends the reconcile of a replica that does not lead: it acts again once it leads (every object is reconciled then).
fn standby(ctx: &Context) -> Action {
    ctx.metrics.reconciled("standby");
    Action::await_change()
}

/// Requeues failed reconciles (Kubernetes API errors) with a per-object exponential backoff: 1 s to 5 min.
pub fn error_policy(cp: Arc<CertificatePush>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.memory.count_error(&cp.uid().unwrap_or_default());
    let delay = policy::error_delay(failures);
    let namespace = cp.namespace().unwrap_or_default();
    warn!(%namespace, name = %cp.name_any(), error = %error, failures, retry_in_seconds = delay.as_secs(), "reconcile failed");
    ctx.metrics.reconciled("error");
    Action::requeue(delay)
}
