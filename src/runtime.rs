//! The process wiring, built once from the `run` flags ([`crate::cli::RunArgs::runtime`]): the Kubernetes and SCM
//! clients, the metrics registry and the admin server that serves it, leader election, the Event queue and the one
//! shutdown signal. [`crate::controller::run`] takes it and only sets up the watches and the Controller.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PartialObjectMeta};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::cli::RunArgs;
use crate::controller::FIELD_MANAGER;
use crate::crd::{CertificatePush, ClusterSCMAccount, SCMAccount};
use crate::events::EventQueue;
use crate::leader::{Election, Leadership};
use crate::metrics::{self, CacheMetrics, Metrics};
use crate::scm::auth::DigestKey;
use crate::scm::{ScmClient, ScmMetrics};
use crate::server::{self, WatchHealth};

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// No Kubernetes client could be configured.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// CertificatePushes could not be listed at startup.
    #[error("cannot list CertificatePushes or SCMAccounts ({source}); {}", startup_hint(source))]
    CrdUnavailable {
        /// The failed list call.
        #[source]
        source: kube::Error,
    },
    /// The SCM client configuration is invalid.
    #[error(transparent)]
    ScmClient(#[from] crate::scm::client::ClientError),
    /// An `http://` endpoint without --allow-insecure-endpoint.
    #[error(
        "{flag} {endpoint} is plain http: credentials and private keys would cross the network unencrypted; use \
         https, or pass --allow-insecure-endpoint (chart: scm.allowInsecureEndpoint) for a local simulator"
    )]
    InsecureEndpoint {
        /// The flag that named it: --scm-endpoint or --iam-endpoint.
        flag: &'static str,
        /// The endpoint.
        endpoint: String,
    },
    /// --iam-endpoint is not an http(s) base URL.
    #[error("invalid --iam-endpoint {0:?}: {1}")]
    IamEndpoint(String, String),
    /// The extra CA file could not be read.
    #[error("reading --scm-ca-file {path:?}: {source}")]
    CaFile {
        /// The path given.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The health and metrics endpoint could not be served.
    #[error("serving --metrics-addr: {0}")]
    Server(#[source] std::io::Error),
    /// The leader election flags do not nest (retry period < renew deadline < lease duration).
    #[error("{0}")]
    LeaderConfig(String),
    /// The credentials digest key Secret could not be read, created or used.
    #[error(
        "credentials digest key Secret {namespace}/{name}: {reason} (--digest-key-secret, --digest-key-namespace; the \
         operator needs get and create on Secrets there, or an existing Secret it may get)"
    )]
    DigestKey {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// Leader election could not start or failed.
    #[error("leader election: {0}")]
    LeaderElection(#[from] kube_lease_manager::LeaseManagerError),
}

/// What to check when the startup list fails: a 404 is a missing CRD, a 401/403 is credentials or RBAC,
/// anything else is the connection to the API server.
fn startup_hint(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) if s.code == 404 => {
            "a CRD is not installed: `certpush-operator crd | kubectl apply --server-side -f -`"
        }
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => {
            "the operator's identity may not list certificatepushes or scmaccounts (scm.certpush.dev): check its \
             credentials and RBAC"
        }
        _ => "the Kubernetes API server is unreachable or unhealthy: check KUBECONFIG or the in-cluster configuration",
    }
}

/// Everything the controller runs on, built and checked before it starts.
pub struct Runtime {
    /// Kubernetes client.
    pub client: Client,
    /// SCM client for the configured endpoint, counting its requests in the registry.
    pub scm: ScmClient,
    /// Reconciles at once (`--concurrency`).
    pub concurrency: u16,
    /// `--min-repush-interval`.
    pub min_repush_interval: std::time::Duration,
    /// `--in-use-refresh`.
    pub in_use_refresh: std::time::Duration,
    /// `--controller-name`.
    pub controller_name: String,
    /// `--cluster-name`.
    pub cluster_name: crate::source::ClusterName,
    /// The controller's metrics.
    pub metrics: Arc<Metrics>,
    /// Posts Events beside the reconciles.
    pub events: EventQueue,
    /// Whether this replica may act (always, without leader election).
    pub leadership: Leadership,
    /// Yields each time the leadership fence opens, re-opening included (never without leader election).
    pub became_leader: BoxStream<'static, ()>,
    /// Yields every `--resync-period` while this replica leads (never with `0s`).
    pub resync: BoxStream<'static, ()>,
    /// What is watched: all namespaces, or each `--namespace` with watches of its own.
    pub scopes: Vec<Scope>,
    /// Where Secrets are watched and may be read.
    pub secret_scopes: Vec<SecretScope>,
    /// `--secret-namespace` and `--cluster-resource-namespace`: the only namespaces whose Secrets are read (None:
    /// every watched one).
    pub secret_namespaces: Option<Vec<String>>,
    /// ClusterSCMAccounts, watched when all namespaces are (a namespaced install has no cluster-wide RBAC), with
    /// the health of their watch.
    pub cluster_accounts: Option<(Api<ClusterSCMAccount>, Arc<WatchHealth>)>,
    /// `--cluster-resource-namespace`.
    pub cluster_resource_namespace: String,
    /// `--allow-insecure-endpoint`.
    pub allow_insecure_endpoint: bool,
    /// The cache of CertificatePushes (read by [`CacheMetrics`] at each scrape) and its writer.
    pub store: (Store<CertificatePush>, Writer<CertificatePush>),
    /// SIGTERM or SIGINT.
    pub shutdown: Shutdown,
    /// What shutdown drains once the Controller has stopped.
    pub drain: Drain,
}

/// One watched scope, all namespaces or one: its APIs and the health of their watches, which `/readyz` and
/// `/healthz` report. Several namespaces are several scopes, since an `Api::all` watch needs a ClusterRole.
pub struct Scope {
    /// The namespace, or None for all.
    pub namespace: Option<String>,
    /// CertificatePushes in the scope.
    pub pushes: Api<CertificatePush>,
    /// Health of the CertificatePush watch.
    pub push_health: Arc<WatchHealth>,
    /// SCMAccounts in the scope.
    pub accounts: Api<SCMAccount>,
    /// Health of the SCMAccount watch.
    pub account_health: Arc<WatchHealth>,
}

impl Scope {
    /// `namespace`'s scope, or all namespaces'.
    fn new(client: &Client, namespace: Option<String>) -> Self {
        Self {
            pushes: api_in(client, namespace.as_deref()),
            push_health: Arc::default(),
            accounts: api_in(client, namespace.as_deref()),
            account_health: Arc::default(),
            namespace,
        }
    }

    /// How the health endpoints name this scope's watch of `resource`.
    fn watch_name(&self, resource: &str) -> String {
        watch_name(self.namespace.as_deref(), resource)
    }
}

/// Where Secrets are watched (metadata only) and read: the scopes' namespaces, or only those of
/// `--secret-namespace` (and `--cluster-resource-namespace`), with the health of the watch.
pub struct SecretScope {
    /// The namespace, or None for all.
    pub namespace: Option<String>,
    /// Secrets (metadata only) there.
    pub secrets: Api<PartialObjectMeta<Secret>>,
    /// Health of the watch.
    pub health: Arc<WatchHealth>,
}

/// The API of `K` in `namespace`, or in all for None.
fn api_in<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// How the health endpoints name the watch of `resource` in `namespace` (None: all).
fn watch_name(namespace: Option<&str>, resource: &str) -> String {
    match namespace {
        Some(ns) => format!("{resource} in {ns}"),
        None => resource.to_owned(),
    }
}

/// This installation's credentials digest key: read from its Secret, or created there with a random key the first
/// time. Replicas starting together race to create it; the loser reads the winner's.
async fn digest_key(client: &Client, namespace: &str, name: &str) -> Result<DigestKey, StartupError> {
    let failed = |reason: String| StartupError::DigestKey {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        reason,
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read = |secret: Secret| DigestKey::from_secret(&secret).map_err(failed);
    match secrets.get_opt(name).await {
        Ok(Some(secret)) => return read(secret),
        Ok(None) => {}
        Err(e) => return Err(failed(format!("cannot read it: {e}"))),
    }
    let key = DigestKey::random();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(
                [("app.kubernetes.io/part-of", "certpush-operator")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        immutable: Some(true),
        data: Some(key.to_data()),
        ..Default::default()
    };
    let params = kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match secrets.create(&params, &secret).await {
        Ok(_) => {
            info!(%namespace, %name, "created the credentials digest key Secret");
            Ok(key)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => match secrets.get(name).await {
            Ok(secret) => read(secret),
            Err(e) => Err(failed(format!("cannot read it: {e}"))),
        },
        Err(e) => Err(failed(format!("cannot create it: {e}"))),
    }
}

/// Refuses an `http://` endpoint (of SCM, or of IAM: the same key signs both) unless it was explicitly allowed.
fn check_scheme(flag: &'static str, endpoint: &str, allow_insecure: bool) -> Result<(), StartupError> {
    // The scheme the client will use, as the URL parser reads it: it turns `http:host`, `http:/host`, `HTTP://host`
    // and a tab inside the scheme into `http://host/`, so a check of the text alone can be bypassed. An endpoint
    // that does not parse is refused by the client, with its own message.
    let scheme = reqwest::Url::parse(endpoint.trim()).map(|url| url.scheme().to_owned());
    if scheme.is_ok_and(|scheme| scheme != "https") && !allow_insecure {
        return Err(StartupError::InsecureEndpoint {
            flag,
            endpoint: endpoint.trim().to_owned(),
        });
    }
    Ok(())
}

/// The Kubernetes client: kube's layers (base URI, credentials, impersonation headers) over a connection that
/// speaks HTTP/2 when the API server offers it (kube-apiserver does), with client-go's health pings so a dead
/// connection is noticed within 45 s; every request timed by `requests`. Through a proxy, kube's own HTTP/1.1 client.
fn api_client(config: kube::Config, requests: metrics::KubeRequests) -> Result<Client, kube::Error> {
    use kube::client::ConfigExt as _;
    if config.proxy_url.is_some() {
        return Ok(kube::client::ClientBuilder::try_from(config)?
            .with_layer(&requests)
            .build());
    }
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    let mut tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = name
            .clone()
            .try_into()
            .map_err(|e| kube::Error::Service(format!("tls-server-name {name:?}: {e}").into()))?;
        tls = tls.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let connector = tls.enable_all_versions().wrap_connector(http);
    let transport = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        // client-go's ReadIdleTimeout and PingTimeout.
        .http2_keep_alive_interval(std::time::Duration::from_secs(30))
        .http2_keep_alive_timeout(std::time::Duration::from_secs(15))
        .http2_keep_alive_while_idle(true)
        .build(connector);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        // kube's answer to 429, 503 and 504: retried with backoff, as its own client does.
        .option_layer(
            config
                .default_retry
                .then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .layer(requests)
        .map_err(tower::BoxError::from)
        .service(transport);
    Ok(Client::new(service, config.default_namespace))
}

impl Runtime {
    /// Connects, checks the CRD is served, registers the metrics, starts the admin server and joins leader election.
    pub async fn build(args: RunArgs) -> Result<Self, StartupError> {
        let mut registry = Registry::default();
        // Every API request is timed by verb and resource (client-go's rest_client_* metrics).
        let config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
        let client = api_client(config, metrics::KubeRequests::register(&mut registry))?;
        let ca = match &args.scm_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|source| StartupError::CaFile {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        let metrics = Arc::new(Metrics::register(&mut registry));
        let endpoint = args.endpoint();
        check_scheme("--scm-endpoint", &endpoint, args.allow_insecure_endpoint)?;
        let mut scm = ScmClient::with_timeout(&endpoint, ca.as_deref(), args.scm_timeout)?
            .with_rate_limit(args.scm_qps, args.scm_burst)
            .with_metrics(ScmMetrics::register(registry.sub_registry_with_prefix(metrics::PREFIX)));
        if let Some(iam) = &args.iam_endpoint {
            check_scheme("--iam-endpoint", iam, args.allow_insecure_endpoint)?;
            let url = crate::scm::iam::parse_endpoint(iam).map_err(|e| StartupError::IamEndpoint(iam.clone(), e))?;
            scm = scm.with_iam_endpoint(url);
        }
        let namespaces = args.watched_namespaces();
        let scopes: Vec<Scope> = if namespaces.is_empty() {
            vec![Scope::new(&client, None)]
        } else {
            namespaces
                .iter()
                .map(|ns| Scope::new(&client, Some(ns.clone())))
                .collect()
        };
        // Fail fast with a hint instead of a controller that silently watches nothing (or misses one namespace).
        for scope in &scopes {
            if let Err(e) = scope.pushes.list(&ListParams::default().limit(1)).await {
                return Err(StartupError::CrdUnavailable { source: e });
            }
            if let Err(e) = scope.accounts.list(&ListParams::default().limit(1)).await {
                return Err(StartupError::CrdUnavailable { source: e });
            }
        }
        let scm =
            scm.with_digest_key(digest_key(&client, &args.digest_key_namespace(), &args.digest_key_secret).await?);
        let watched = if namespaces.is_empty() {
            "<all>".to_owned()
        } else {
            namespaces.join(",")
        };
        // Without an IAM endpoint, access keys given without domainId or projectId are refused (naming domainId).
        let iam_endpoint = scm.iam_endpoint().map_or_else(|| "-".to_owned(), |url| url.to_string());
        info!(endpoint = %scm.endpoint(), %iam_endpoint, namespace = %watched, concurrency = args.concurrency, "starting controller");

        let (store, writer) = reflector::store();
        registry
            .sub_registry_with_prefix(metrics::PREFIX)
            .register_collector(Box::new(CacheMetrics(store.clone())));
        metrics.max_concurrent_reconciles(args.concurrency);
        let cluster_accounts = namespaces
            .is_empty()
            .then(|| (Api::all(client.clone()), Arc::<WatchHealth>::default()));
        let secret_namespaces = args.secret_namespaces();
        let watched: Vec<Option<String>> = match &secret_namespaces {
            Some(listed) => listed.iter().map(|ns| Some(ns.clone())).collect(),
            None => scopes.iter().map(|s| s.namespace.clone()).collect(),
        };
        let secret_scopes: Vec<SecretScope> = watched
            .into_iter()
            .map(|namespace| SecretScope {
                secrets: api_in(&client, namespace.as_deref()),
                health: Arc::default(),
                namespace,
            })
            .collect();
        serve_admin(
            &args,
            &scopes,
            &secret_scopes,
            cluster_accounts.as_ref().map(|(_, h)| h),
            registry,
        )
        .await?;

        let election = match args.leader_config() {
            Some(config) => {
                config.validate().map_err(StartupError::LeaderConfig)?;
                info!(lease = %config.lease_name, namespace = %config.lease_namespace, identity = %config.identity, "joining leader election");
                Some(Election::start(client.clone(), &config).await?)
            }
            None => None,
        };
        let leadership = election
            .as_ref()
            .map_or_else(Leadership::always, |e| e.leadership.clone());
        // The fence is asked again right before each SCM request leaves, after its rate-limit wait.
        let fenced = leadership.clone();
        let scm = scm.with_gate(Arc::new(move || fenced.leads()));
        let became_leader = leadership_changes(election.as_ref(), &metrics, &args.lease_name);
        let resync = resyncs(args.resync_period, leadership.clone());
        let events = EventQueue::start(recorder(&client));
        let shutdown = Shutdown::on_signal();
        let cluster_resource_namespace = args.cluster_resource_namespace();
        Ok(Self {
            client,
            drain: Drain {
                scm: scm.clone(),
                events: events.clone(),
                election,
                shutdown: shutdown.clone(),
            },
            scm,
            concurrency: args.concurrency,
            min_repush_interval: args.min_repush_interval,
            in_use_refresh: args.in_use_refresh,
            controller_name: args.controller_name,
            cluster_name: args.cluster_name,
            metrics,
            events,
            leadership,
            became_leader,
            resync,
            scopes,
            secret_scopes,
            secret_namespaces,
            cluster_accounts,
            cluster_resource_namespace,
            allow_insecure_endpoint: args.allow_insecure_endpoint,
            store: (store, writer),
            shutdown,
        })
    }
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `--metrics-addr` in the background.
async fn serve_admin(
    args: &RunArgs,
    scopes: &[Scope],
    secret_scopes: &[SecretScope],
    cluster_accounts: Option<&Arc<WatchHealth>>,
    registry: Registry,
) -> Result<(), StartupError> {
    let health = server::Health {
        watches: scopes
            .iter()
            .flat_map(|s| {
                [
                    (s.watch_name("certificatepushes"), s.push_health.clone()),
                    (s.watch_name("scmaccounts"), s.account_health.clone()),
                ]
            })
            .chain(
                secret_scopes
                    .iter()
                    .map(|s| (watch_name(s.namespace.as_deref(), "secrets"), s.health.clone())),
            )
            .chain(cluster_accounts.map(|h| ("clusterscmaccounts".to_owned(), h.clone())))
            .collect(),
        registry: Arc::new(registry),
        unready_after: Duration::from_secs(args.unready_after_seconds),
        unhealthy_after: Duration::from_secs(args.unhealthy_after_seconds),
    };
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(StartupError::Server)?;
    tokio::spawn(async move {
        if let Err(e) = server::serve(listener, health).await {
            warn!(error = %e, "health and metrics server stopped");
        }
    });
    Ok(())
}

/// The Event recorder, naming this Pod as the reporting instance.
fn recorder(client: &Client) -> Recorder {
    let instance = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok());
    Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance,
        },
    )
}

/// Yields each time the fence opens: on election, and on every reopening after a gap (renewals stalled, or another
/// replica held the Lease in between), since retries that came due while it was closed were dropped. Keeps
/// `leader_election_master_status` current; without an election the replica always leads and nothing is yielded.
fn leadership_changes(election: Option<&Election>, metrics: &Arc<Metrics>, lease: &str) -> BoxStream<'static, ()> {
    let Some(election) = election else {
        metrics.leading(lease, true);
        return futures::stream::pending().boxed();
    };
    metrics.leading(lease, false);
    let (metrics, lease, mut leading) = (metrics.clone(), lease.to_owned(), election.leading.clone());
    tokio::spawn(async move {
        while leading.changed().await.is_ok() {
            metrics.leading(&lease, *leading.borrow_and_update());
        }
    });
    // Counted by the fence itself, so a gap shorter than the sampling of `leading` still counts; several
    // openings before the Controller asks again fold into one reconcile of everything.
    futures::stream::unfold(election.leadership.openings(), |mut openings| async move {
        openings.changed().await.ok()?;
        Some(((), openings))
    })
    .boxed()
}

/// Yields every `period` while `leadership` leads, as a backstop for a change or a retry the watches and the queue
/// missed; a standby would only skip the reconciles, so it is not asked. A `period` of zero yields nothing.
fn resyncs(period: Duration, leadership: Leadership) -> BoxStream<'static, ()> {
    if period.is_zero() {
        return futures::stream::pending().boxed();
    }
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    // After a stall (a suspended node), one resync, not a burst of them.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures::stream::unfold(interval, |mut interval| async move {
        interval.tick().await;
        Some(((), interval))
    })
    .filter(move |()| std::future::ready(leadership.leads()))
    .boxed()
}

/// The one shutdown signal of the process: SIGTERM or SIGINT asks for a graceful stop, a second one forces it.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<u8>);

impl Shutdown {
    /// Starts the one listener for SIGTERM and SIGINT.
    pub fn on_signal() -> Self {
        let (tx, rx) = watch::channel(0u8);
        tokio::spawn(async move {
            for _ in 0..2 {
                signal().await;
                tx.send_modify(|n| *n += 1);
            }
        });
        Self(rx)
    }

    /// Resolves once a graceful stop was asked for.
    pub fn signaled(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        self.reached(1)
    }

    /// Resolves once a second signal asked to stop at once.
    pub fn forced(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        self.reached(2)
    }

    fn reached(&self, signals: u8) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.0.clone();
        async move {
            // The listener never ends before its second signal, so the channel stays open until then.
            while *rx.borrow_and_update() < signals {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// SIGTERM or SIGINT.
async fn signal() {
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

/// What shutdown finishes once the Controller has stopped taking work.
pub struct Drain {
    scm: ScmClient,
    events: EventQueue,
    election: Option<Election>,
    shutdown: Shutdown,
}

impl Drain {
    /// Runs `controller` until it ends (a graceful stop lets reconciles in flight finish; a second signal drops
    /// them), with SCM requests still waiting for a rate-limit token dropped at the first signal; then posts the
    /// last Events and releases the Lease, each bounded.
    pub async fn run(self, controller: impl std::future::Future<Output = ()>) {
        let (scm, signaled) = (self.scm.clone(), self.shutdown.signaled());
        // Reconciles waiting for a token then send nothing and end, so shutdown waits only for requests already
        // sent, well within the grace period.
        tokio::spawn(async move {
            signaled.await;
            info!("shutting down gracefully (a second signal forces it): SCM requests not yet sent are dropped");
            scm.stop_sending();
        });
        tokio::select! {
            () = controller => info!("controller stopped"),
            () = self.shutdown.forced() => warn!("forced shutdown: reconciles in flight were dropped"),
        }
        if tokio::time::timeout(Duration::from_secs(5), self.events.flush())
            .await
            .is_err()
        {
            warn!("some Events were not sent before shutdown");
        }
        if let Some(election) = self.election {
            // Released at once, a standby takes over now instead of after the lease duration.
            election.release(Duration::from_secs(5)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defect: an http:// endpoint was accepted silently, so a typo sent credentials and keys in the clear.
    #[test]
    fn a_plain_http_endpoint_needs_to_be_allowed() {
        let refused = check_scheme("--scm-endpoint", "http://127.0.0.1:18080", false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("--allow-insecure-endpoint"), "{refused}");
        // The IAM endpoint is signed to with the same key: the same guard, naming its own flag.
        let refused = check_scheme("--iam-endpoint", "http://127.0.0.1:18080", false)
            .unwrap_err()
            .to_string();
        assert!(
            refused.starts_with("--iam-endpoint http://127.0.0.1:18080 is plain http"),
            "{refused}"
        );
        assert!(check_scheme("--scm-endpoint", "HTTP://scm.example", false).is_err());
        assert!(check_scheme("--scm-endpoint", "http://127.0.0.1:18080", true).is_ok());
        assert!(check_scheme("--scm-endpoint", "https://scm.cn-north-4.myhuaweicloud.com", false).is_ok());
        assert!(check_scheme("--scm-endpoint", "HTTPS://scm.cn-north-4.myhuaweicloud.com", false).is_ok());
    }

    /// Defect: the guard looked for the literal prefix `http://`, while the URL parser reads these spellings as
    /// `http://host/` too, so plain http got through without --allow-insecure-endpoint.
    #[test]
    fn every_spelling_of_plain_http_needs_to_be_allowed() {
        for spelling in [
            "http:scm.example",
            "http:/scm.example",
            "HTTP://scm.example",
            "ht\ttp://scm.example",
            " http://scm.example",
            "Http:\\scm.example",
        ] {
            assert_eq!(
                reqwest::Url::parse(spelling.trim())
                    .map(|u| u.scheme().to_owned())
                    .ok()
                    .as_deref(),
                Some("http"),
                "{spelling:?} is plain http to the client"
            );
            assert!(
                check_scheme("--scm-endpoint", spelling, false).is_err(),
                "{spelling:?} got through"
            );
            assert!(check_scheme("--scm-endpoint", spelling, true).is_ok());
        }
        assert!(
            check_scheme("--scm-endpoint", "ftp://scm.example", false).is_err(),
            "only https without the flag"
        );
    }

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure("x", "y").with_code(code).boxed())
    }

    #[test]
    fn startup_failure_names_what_to_fix() {
        let message = |e| StartupError::CrdUnavailable { source: e }.to_string();
        assert!(message(api_error(404)).contains("CRD is not installed"));
        assert!(message(api_error(403)).contains("RBAC"));
        assert!(message(api_error(401)).contains("credentials"));
        assert!(message(api_error(500)).contains("unreachable"));
        let io = kube::Error::Service(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
        let m = message(io);
        assert!(m.contains("unreachable") && !m.contains("CRD"), "{m}");
    }
}
