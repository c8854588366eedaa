//! The HTTP client for the SCM certificate API: the one [`ScmClient::call`] every request passes, and push and batch
//! push; the import, list, show and delete that importing a TLS Secret needs are in [`super::certificates`], deploy
//! and deployed-resources in [`super::deploy`]. Each typed call sends one request through [`ScmClient::call`], which takes a rate-limit token,
//! signs, records the metrics and logs Huawei's request id, and then decodes what the answer means.

use std::error::Error as _;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url, redirect};
use serde_json::json;

use super::auth::{Credentials, DOMAIN_ID, DigestKey, PROJECT_ID};
use super::iam::{Iam, Scoped};
use super::limit::{Limiter, Signal, current_tenant};
use super::metrics::ScmMetrics;
use super::outcome::{
    FailureKind, PushFailure, PushOutcome, Pushed, ScmResponse, Transport, answer, classify, classify_as, clip_field,
    parse_retry_after,
};
use super::verdicts::{Admission, Verdicts, finding};
use super::wire::{BatchPushRequest, BatchPushResponse, DeployRequest, DeployedResourcesRequest, ImportRequest};
use crate::crd::TargetService;

/// Huawei's Chinese-mainland SCM endpoint, the default.
pub const DEFAULT_ENDPOINT: &str = "https://scm.cn-north-4.myhuaweicloud.com";
/// Longest wait for a TCP/TLS connection (or the request timeout, if shorter).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a whole request, body included, unless `--scm-timeout` says otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this much of a response body is read; error bodies are small.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why the SCM client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not an http(s) base URL.
    #[error("invalid --scm-endpoint {0:?}: {1}")]
    Endpoint(String, String),
    /// The extra CA file could not be used.
    #[error("invalid --scm-ca-file: {0}")]
    Ca(String),
    /// reqwest refused the configuration.
    #[error("building the SCM HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// One push: which certificate goes where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRequest {
    certificate_id: String,
    target_service: TargetService,
    target_project: String,
}

impl PushRequest {
    /// Validates the certificate ID again (it becomes a URL path segment), in case the CRD schema was bypassed.
    pub fn new(certificate_id: &str, target_service: TargetService, target_project: &str) -> Result<Self, String> {
        check_certificate_id(certificate_id)?;
        Ok(Self {
            certificate_id: certificate_id.to_string(),
            target_service,
            target_project: target_project.to_string(),
        })
    }
}

/// One SCM request, as [`ScmClient::call`] sends it.
#[derive(Debug, Clone, Copy)]
pub enum Call<'a> {
    /// `POST /v3/scm/certificates/{id}/push` (204).
    Push(&'a PushRequest),
    /// `POST /v3/scm/certificates/import` (200 with the new ID).
    Import(&'a ImportRequest),
    /// `GET /v3/scm/certificates?content=&status=UPLOAD&sort_key=certUpdateTime&sort_dir=DESC` (200, one page of
    /// up to [`LIST_PAGE_SIZE`]).
    List {
        /// What the names or domains must contain (an endpoint that predates `content` ignores it).
        keyword: &'a str,
        /// How many matching certificates come before this page.
        offset: u64,
    },
    /// `GET /v3/scm/certificates/{id}` (200 with the certificate's details).
    Show {
        /// The certificate to describe.
        certificate_id: &'a str,
    },
    /// `DELETE /v3/scm/certificates/{id}` (204).
    Delete {
        /// The certificate to delete.
        certificate_id: &'a str,
    },
    /// `POST /v3/scm/certificates/{id}/deploy` (200 with the resources that failed).
    Deploy {
        /// The certificate to deploy.
        certificate_id: &'a str,
        /// Where.
        request: &'a DeployRequest,
    },
    /// `POST /v3/scm/deployed-resources` (200 with where each certificate is deployed).
    DeployedResources(&'a DeployedResourcesRequest),
    /// `POST /v3/scm/certificates/{id}/batch-push` (200 with a result per region).
    BatchPush {
        /// The certificate to push.
        certificate_id: &'a str,
        /// Where.
        request: &'a BatchPushRequest,
    },
}

impl Call<'_> {
    /// The `operation` label of the metrics and logs.
    pub fn operation(&self) -> &'static str {
        match self {
            Call::Push(_) => "push",
            Call::Import(_) => "import",
            Call::List { .. } => "list",
            Call::Show { .. } => "show",
            Call::Delete { .. } => "delete",
            Call::Deploy { .. } => "deploy",
            Call::DeployedResources(_) => "deployed_resources",
            Call::BatchPush { .. } => "batch_push",
        }
    }
}

/// Certificates per list page: the largest `limit` SCM accepts (10, 20 or 50).
pub const LIST_PAGE_SIZE: u64 = 50;
/// What a batch push did in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionResult {
    /// The region.
    pub project: String,
    /// The copy's ID in the target service; None when the push there failed.
    pub copy_id: Option<String>,
    /// SCM's message ("success", or why not).
    pub message: String,
}

/// Certificate IDs become URL path segments, so only SCM's own form (16 letters or digits) is accepted.
pub fn check_certificate_id(certificate_id: &str) -> Result<(), String> {
    if certificate_id.len() != 16 || !certificate_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("certificateId {certificate_id:?} is not 16 letters or digits"));
    }
    Ok(())
}

/// Default of `--scm-qps`: requests per second to SCM for each account (access key or token).
pub const DEFAULT_QPS: u32 = 10;
/// Default of `--scm-burst`.
pub const DEFAULT_BURST: u32 = 20;

/// Talks to one SCM endpoint; the endpoint comes only from operator configuration, never from a resource.
#[derive(Clone)]
pub struct ScmClient {
    http: reqwest::Client,
    endpoint: Url,
    limiter: Limiter,
    pub(super) metrics: ScmMetrics,
    /// Set on shutdown: requests still waiting for a rate-limit token are then not sent.
    stopping: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    /// Asked right before each request leaves, after its rate-limit wait: whether this replica may still send
    /// (the leader election fence); always yes without one.
    gate: Option<Gate>,
    /// What SCM said about each credential: refused ones are not sent again, unproven ones probed one at a time.
    verdicts: Verdicts,
    /// Keys [`ScmClient::digest`], the name verdicts and status know a credential by.
    digest_key: std::sync::Arc<DigestKey>,
    /// Whether [`ScmClient::digest`] covers the endpoint: so for an account's client, whose endpoint is the
    /// account's to change, a credential refused at one endpoint is a new one at another.
    endpoint_in_digest: bool,
    /// Where access keys without a scope learn their account id ([`super::iam`]), and what they learnt.
    pub(super) iam: Iam,
}

/// Whether a request may leave now.
pub type Gate = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

impl std::fmt::Debug for ScmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScmClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("qps", &self.limiter.max_qps())
            .finish_non_exhaustive()
    }
}

impl ScmClient {
    /// Builds a client for `endpoint`, trusting `extra_ca_pem` in addition to the system roots.
    pub fn new(endpoint: &str, extra_ca_pem: Option<&[u8]>) -> Result<Self, ClientError> {
        Self::with_timeout(endpoint, extra_ca_pem, REQUEST_TIMEOUT)
    }

    /// [`ScmClient::new`] with a request timeout of `timeout` instead of [`REQUEST_TIMEOUT`].
    pub fn with_timeout(endpoint: &str, extra_ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Self, ClientError> {
        let endpoint = parse_endpoint(endpoint)?;
        if endpoint.scheme() == "http" {
            tracing::warn!(%endpoint, "SCM endpoint uses plain http; tokens travel unencrypted (use only for simulators)");
        }
        let mut builder = reqwest::Client::builder()
            // Shorter than the whole request, so that an unreachable endpoint is reported as a failed connect
            // (nothing sent) rather than a timeout (may have landed).
            .connect_timeout(CONNECT_TIMEOUT.min(timeout / 2))
            .timeout(timeout)
            // A redirect could carry the token to another host; SCM never redirects.
            .redirect(redirect::Policy::none())
            .user_agent(concat!("certpush-operator/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| ClientError::Ca(e.to_string()))?;
            if certs.is_empty() {
                return Err(ClientError::Ca("no PEM certificate found".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        Ok(Self {
            http: builder.build().map_err(ClientError::Build)?,
            endpoint,
            limiter: Limiter::new(DEFAULT_QPS, DEFAULT_BURST),
            metrics: ScmMetrics::default(),
            stopping: std::sync::Arc::new(tokio::sync::watch::Sender::new(false)),
            gate: None,
            verdicts: Verdicts::default(),
            digest_key: std::sync::Arc::new(DigestKey::random()),
            endpoint_in_digest: false,
            iam: Iam::default(),
        })
    }

    /// This client for an account's `endpoint`, `rate` (qps, burst; None: this client's) and `iam` endpoint (None:
    /// the site's, or --iam-endpoint for the operator's own endpoint): the same connections, refusal memory,
    /// buckets, domain ids learnt, metrics and fence.
    pub fn for_account(&self, endpoint: &str, rate: Option<(u32, u32)>, iam: Option<Url>) -> Result<Self, ClientError> {
        let mut account = self.clone();
        account.endpoint = parse_endpoint(endpoint)?;
        // --iam-endpoint belongs to --scm-endpoint's site: another site's account asks its own IAM.
        if iam.is_some() || account.endpoint != self.endpoint {
            account.iam = account.iam.at(iam);
        }
        if let Some((qps, burst)) = rate {
            account.limiter = self.limiter.with_rate(qps, burst);
        }
        account.endpoint_in_digest = true;
        Ok(account)
    }

    /// Limits requests to `qps` per second (bursts of `burst`; both at least 1) across every clone of this client.
    pub fn with_rate_limit(mut self, qps: u32, burst: u32) -> Self {
        self.limiter = Limiter::new(qps, burst);
        self
    }

    /// Names credentials by digests under `key` (this installation's, from its Secret) instead of a key of this
    /// process only, so digests recorded in status stay the same across restarts and replicas.
    pub fn with_digest_key(mut self, key: DigestKey) -> Self {
        self.digest_key = std::sync::Arc::new(key);
        self
    }

    /// The digest that verdicts and `status.credentialsDigest` know `credentials` by.
    pub fn digest(&self, credentials: &Credentials) -> String {
        let endpoint = self.endpoint_in_digest.then(|| self.endpoint.as_str());
        credentials.digest_at(&self.digest_key, endpoint)
    }

    /// Counts every request in `metrics` (registered by the caller) instead of unserved series.
    pub fn with_metrics(mut self, metrics: ScmMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sends a request only while `gate` says yes, asked after the rate-limit wait, right before the request leaves:
    /// a replica whose leadership ended while a reconcile waited for a token sends nothing.
    pub fn with_gate(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// From now on, requests still waiting for a rate-limit token (and any later one) are not sent; those already
    /// sent finish. For shutdown: the reconciles it waits for then end without waiting for tokens.
    pub fn stop_sending(&self) {
        self.stopping.send_replace(true);
    }

    /// Whether [`ScmClient::stop_sending`] was called: a request not sent since is cut short by shutdown, no failure.
    pub fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// The request rate now allowed for the account of `credentials` (lower than `--scm-qps` after throttling).
    pub fn qps(&self, credentials: &Credentials) -> u32 {
        self.limiter.qps(&self.bucket(credentials))
    }

    /// Takes every waiting place of the account of `credentials`, as a crowd of its other requests would: until
    /// they are dropped, its next request is deferred.
    #[cfg(test)]
    pub(crate) fn fill_waiting_places(&self, credentials: &Credentials) -> Vec<super::limit::Waiting> {
        let account = self.bucket(credentials);
        (0..super::limit::MAX_WAITING)
            .filter_map(|_| self.limiter.enter(&account, &current_tenant(), 0.0).ok())
            .collect()
    }

    /// The rate-limit bucket of `credentials`: its SCM account, at this endpoint for an account's client (the same
    /// key at two sites is two accounts' traffic).
    fn bucket(&self, credentials: &Credentials) -> String {
        match self.endpoint_in_digest {
            true => format!("{}@{}", credentials.account(), self.endpoint),
            false => credentials.account(),
        }
    }

    /// The base URL requests go to.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Sends one push and says what its answer means. Never retries by itself: retry policy belongs to the
    /// controller, which persists it.
    pub async fn push(&self, credentials: &Credentials, request: &PushRequest) -> Result<Pushed, PushFailure> {
        match classify(&self.call(credentials, Call::Push(request)).await) {
            PushOutcome::Pushed {
                http_status,
                request_id,
            } => Ok(Pushed {
                http_status,
                request_id,
            }),
            PushOutcome::Failed(failure) => Err(failure),
        }
    }

    /// Pushes a certificate to several regions of one service at once: per region, the copy's ID in the target
    /// service, or SCM's message when the push there failed (SCM answers 200 with a result per region), and the
    /// answer's request id; or why the whole request failed.
    pub async fn batch_push(
        &self,
        credentials: &Credentials,
        certificate_id: &str,
        service: TargetService,
        projects: &[&str],
    ) -> Result<(Vec<RegionResult>, Option<String>), PushFailure> {
        let request = BatchPushRequest {
            target_projects: projects.iter().map(|p| (*p).to_owned()).collect(),
            target_service: service.to_string(),
        };
        let transport = self
            .call(
                credentials,
                Call::BatchPush {
                    certificate_id,
                    request: &request,
                },
            )
            .await;
        let request_id = match &transport {
            Transport::Answered(reply) => reply.request_id.clone(),
            _ => None,
        };
        let answered: BatchPushResponse = answer(transport, 200, "batch-push")?;
        let field = |text: &str| credentials.redact(&clip_field(text));
        let results = answered
            .results
            .iter()
            .map(|r| RegionResult {
                project: field(&r.project_name),
                copy_id: Some(field(&r.cert_id)).filter(|id| !id.is_empty()),
                message: field(&r.message),
            })
            .collect();
        Ok((results, request_id))
    }

    /// Sends one request and returns what came back, undecoded: the one place every SCM request passes, so the
    /// metrics and the log line with Huawei's request id are recorded once for each.
    pub async fn call(&self, credentials: &Credentials, call: Call<'_>) -> Transport {
        let operation = call.operation();
        let started = Instant::now();
        let ticket = match self.verdicts.admit(&self.digest(credentials)).await {
            Admission::Send(ticket) => ticket,
            Admission::Withhold(failure) => {
                let transport = Transport::Withheld(Box::new(failure));
                self.metrics.record(operation, &transport, 0.0);
                return transport;
            }
        };
        // A 403 to a read of where certificates are deployed is about that one IAM action
        // (scm:cert:listDeployedResources), not the credential: pushes with it still go out.
        let one_action = matches!(call, Call::DeployedResources(_));
        // An access key without a scope is signed with the account id IAM tells; when IAM does not, that is the
        // answer, and what it says of the credential.
        let (transport, told) = match self.scoped(credentials).await {
            Scoped::AsIs => (self.dispatch(credentials, call).await, None),
            Scoped::Domain(scoped) => (self.dispatch(&scoped, call).await, None),
            Scoped::Unresolved { transport, finding } => (transport, Some(finding)),
        };
        let failure = match &transport {
            Transport::Answered(reply) if (200..300).contains(&reply.status) => None,
            // Not a success, whatever the call expected (0 matches no status): only what it says of the credential
            // matters here.
            other => match classify_as(other, 0) {
                PushOutcome::Failed(failure) => Some(failure),
                PushOutcome::Pushed { .. } => None,
            },
        };
        let answered = matches!(transport, Transport::Answered(_));
        let found = match (told, failure.as_ref()) {
            (Some(told), _) => told,
            (None, Some(f)) if one_action && f.kind == FailureKind::Forbidden => finding(None, answered),
            (None, f) => finding(f, answered),
        };
        ticket.settle(&found);
        self.metrics
            .record(operation, &transport, started.elapsed().as_secs_f64());
        if let Transport::Answered(reply) = &transport {
            // Huawei support asks for this id; every SCM answer is in the log with it.
            tracing::info!(
                operation,
                http_status = reply.status,
                request_id = reply.request_id.as_deref().unwrap_or("-"),
                "SCM answered"
            );
        }
        transport
    }

    /// Forgets that SCM refused the credential with `digest`: a human asked for a push again, so the next request
    /// with it is sent.
    pub fn retry_refused(&self, digest: &str) {
        self.verdicts.forget(digest);
    }

    /// Builds and sends the request for `call`.
    async fn dispatch(&self, credentials: &Credentials, call: Call<'_>) -> Transport {
        match call {
            Call::Push(request) => {
                let body = json!({
                    "target_project": request.target_project,
                    "target_service": request.target_service,
                });
                let path = ["certificates", &request.certificate_id, "push"];
                self.send(credentials, Method::POST, &path, &[], Some(body.to_string()))
                    .await
            }
            Call::Import(request) => match serde_json::to_string(request) {
                Ok(body) => {
                    self.send(credentials, Method::POST, &["certificates", "import"], &[], Some(body))
                        .await
                }
                Err(e) => Transport::NotSent(format!("could not encode the import request: {e}")),
            },
            Call::List { keyword, offset } => {
                let (limit, offset) = (LIST_PAGE_SIZE.to_string(), offset.to_string());
                // Only uploads can be earlier imports; the newest first, since a lost import is a recent one (an
                // upload's update time is its upload time).
                let query = [
                    ("content", keyword),
                    ("status", "UPLOAD"),
                    ("sort_key", "certUpdateTime"),
                    ("sort_dir", "DESC"),
                    ("limit", limit.as_str()),
                    ("offset", offset.as_str()),
                ];
                self.send(credentials, Method::GET, &["certificates"], &query, None)
                    .await
            }
            Call::Show { certificate_id } => match check_certificate_id(certificate_id) {
                Ok(()) => {
                    let path = ["certificates", certificate_id];
                    self.send(credentials, Method::GET, &path, &[], None).await
                }
                Err(message) => Transport::NotSent(message),
            },
            Call::Delete { certificate_id } => match check_certificate_id(certificate_id) {
                Ok(()) => {
                    let path = ["certificates", certificate_id];
                    self.send(credentials, Method::DELETE, &path, &[], None).await
                }
                Err(message) => Transport::NotSent(message),
            },
            Call::Deploy {
                certificate_id,
                request,
            } => self.post_action(credentials, certificate_id, "deploy", request).await,
            Call::BatchPush {
                certificate_id,
                request,
            } => {
                self.post_action(credentials, certificate_id, "batch-push", request)
                    .await
            }
            Call::DeployedResources(request) => match serde_json::to_string(request) {
                Ok(body) => {
                    self.send(credentials, Method::POST, &["deployed-resources"], &[], Some(body))
                        .await
                }
                Err(e) => Transport::NotSent(format!("could not encode the deployed-resources request: {e}")),
            },
        }
    }

    /// POSTs `request` as JSON to `certificates/{certificate_id}/{action}`, unless the ID or the body cannot make a
    /// valid request.
    async fn post_action<T: serde::Serialize>(
        &self,
        credentials: &Credentials,
        certificate_id: &str,
        action: &str,
        request: &T,
    ) -> Transport {
        match (check_certificate_id(certificate_id), serde_json::to_string(request)) {
            (Ok(()), Ok(body)) => {
                let path = ["certificates", certificate_id, action];
                self.send(credentials, Method::POST, &path, &[], Some(body)).await
            }
            (Err(message), _) => Transport::NotSent(message),
            (_, Err(e)) => Transport::NotSent(format!("could not encode the {action} request: {e}")),
        }
    }

    /// Sends one request under `/v3/scm/` and reads the answer; the credentials are applied last, to the finished
    /// request.
    async fn send(
        &self,
        credentials: &Credentials,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<String>,
    ) -> Transport {
        // Huawei's SDKs never send an access key request to SCM without X-Domain-Id or X-Project-Id; `call` resolves
        // the domain first, so reaching this is a bug, and the gateway would refuse the request anyway.
        if credentials.needs_domain() {
            return Transport::NotSent(format!(
                "not sent: an access key request to SCM needs {DOMAIN_ID} or {PROJECT_ID}, and none was resolved"
            ));
        }
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .expect("endpoint was checked to be a base URL")
            .pop_if_empty()
            .extend(["v3", "scm"])
            .extend(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.send_to(credentials, method, url, body, "SCM").await
    }

    /// Sends one request to `url` (of SCM, or of `service`: IAM) through the rate limit and the gate, signed last,
    /// and reads the answer.
    pub(super) async fn send_to(
        &self,
        credentials: &Credentials,
        method: Method,
        url: Url,
        body: Option<String>,
        service: &str,
    ) -> Transport {
        let mut builder = self
            .http
            .request(method, url)
            // Huawei answers in Chinese unless asked otherwise; status messages should be readable.
            .header("X-Language", "en-us");
        if let Some(body) = body {
            builder = builder.header("Content-Type", "application/json").body(body);
        }
        let mut request = match builder.build() {
            Ok(request) => request,
            Err(e) => return Transport::NotSent(describe(&e, service)),
        };
        // The token is taken before signing: the signature carries a time that must not age in the queue. A few
        // requests of an account wait here; the rest end the call, so their reconciles free their workers for other
        // accounts and come back when it is about their turn.
        let account = self.bucket(credentials);
        let waiting = match self.limiter.enter(&account, &current_tenant(), rand::random()) {
            Ok(waiting) => (waiting, self.metrics.waiting()),
            Err(later) => return Transport::Deferred(later),
        };
        let mut stopping = self.stopping.subscribe();
        while let Err(wait) = self.limiter.try_acquire(&account) {
            tokio::select! {
                biased;
                _ = stopping.wait_for(|stop| *stop) => {
                    return Transport::NotSent("the operator is shutting down; the request was not sent".into());
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
        drop(waiting);
        if self.gate.as_ref().is_some_and(|may_send| !may_send()) {
            return Transport::NotSent(
                "this replica no longer leads (leader election); the request was not sent".into(),
            );
        }
        // Signed last, over the finished request: the signature covers its exact URL, headers and body bytes.
        credentials.authorize(&mut request, jiff::Timestamp::now());
        let response = match self.http.execute(request).await {
            Ok(r) => r,
            // Only a failed connect proves nothing was sent; after that the request may have reached SCM.
            Err(e) if e.is_connect() || e.is_builder() => return Transport::NotSent(describe(&e, service)),
            Err(e) => return Transport::NoAnswer(describe(&e, service)),
        };
        let status = response.status();
        self.limiter.observe(
            &account,
            if status == StatusCode::TOO_MANY_REQUESTS {
                Signal::Throttled
            } else {
                Signal::Answered
            },
        );
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("x-request-id");
        let clock_skew = header("date").and_then(|date| skew_from(&date, jiff::Timestamp::now()));
        let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v, jiff::Timestamp::now()));
        let body = if status == StatusCode::NO_CONTENT {
            Vec::new()
        } else {
            read_capped(response).await
        };
        let body = redact_body(credentials, &body);
        let request_id = request_id.map(|id| credentials.redact(&id));
        Transport::Answered(ScmResponse {
            status: status.as_u16(),
            request_id,
            retry_after,
            body,
            clock_skew,
        })
    }
}

/// `body` with every copy of a secret of `credentials` replaced: in each string of a JSON answer after decoding (a
/// token echoed JSON-escaped, `\u0074...`, is a copy too), else in the text read leniently (an answer that is not
/// UTF-8 is not let through unredacted).
fn redact_body(credentials: &Credentials, body: &[u8]) -> Vec<u8> {
    fn redact_strings(value: &mut serde_json::Value, credentials: &Credentials) {
        match value {
            serde_json::Value::String(s) => *s = credentials.redact(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| redact_strings(v, credentials)),
            serde_json::Value::Object(map) => {
                let redacted: serde_json::Map<String, serde_json::Value> = std::mem::take(map)
                    .into_iter()
                    .map(|(k, mut v)| {
                        redact_strings(&mut v, credentials);
                        (credentials.redact(&k), v)
                    })
                    .collect();
                *map = redacted;
            }
            _ => {}
        }
    }
    if body.is_empty() {
        return Vec::new();
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut value) => {
            redact_strings(&mut value, credentials);
            serde_json::to_vec(&value).unwrap_or_default()
        }
        Err(_) => credentials.redact(&String::from_utf8_lossy(body)).into_bytes(),
    }
}

/// How far `now` is ahead of the time in an HTTP `Date` header (whole seconds; a header not understood is none).
fn skew_from(date: &str, now: jiff::Timestamp) -> Option<jiff::SignedDuration> {
    let theirs = jiff::fmt::rfc2822::parse(date).ok()?.timestamp();
    Some(jiff::SignedDuration::from_secs(now.as_second() - theirs.as_second()))
}

pub(super) fn parse_endpoint(raw: &str) -> Result<Url, ClientError> {
    let err = |m: &str| ClientError::Endpoint(raw.to_string(), m.to_string());
    let url = Url::parse(raw.trim()).map_err(|e| err(&e.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(err("scheme must be https (or http for a simulator)"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(err("not a base URL"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(err("must not carry a query, fragment or user info"));
    }
    Ok(url)
}

/// Reads at most MAX_BODY_BYTES; a body cut short by the network still yields what arrived.
async fn read_capped(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_BODY_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    body
}

/// Describes a transport error of a request to `service` by kind and cause, without the URL's query or any header.
fn describe(e: &reqwest::Error, service: &str) -> String {
    let what = if e.is_connect() {
        format!("could not connect to {service} (nothing was sent)")
    } else if e.is_timeout() {
        format!("request to {service} timed out without an answer")
    } else {
        format!("request to {service} failed without an answer")
    };
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    if causes.is_empty() {
        what
    } else {
        format!("{what}: {}", causes.join(": "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;

    #[test]
    fn clock_skew_is_read_from_the_date_header() {
        let now: jiff::Timestamp = "2026-12-06T05:20:00Z".parse().unwrap();
        let skew = |date| skew_from(date, now).map(|s| s.as_secs());
        assert_eq!(skew("Sun, 06 Dec 2026 05:00:00 GMT"), Some(1200));
        assert_eq!(skew("Sun, 06 Dec 2026 05:21:30 GMT"), Some(-90));
        assert_eq!(skew("yesterday"), None);
    }

    /// An account's client names a credential by where it is sent too, so moving an account to another endpoint
    /// lifts a refusal of that credential at the old one; the operator's own client keeps the digests recorded
    /// before accounts existed.
    #[test]
    fn an_accounts_digest_covers_its_endpoint_and_the_operators_does_not() {
        crate::install_crypto_provider();
        let base = ScmClient::new("https://scm.cn-north-4.myhuaweicloud.com", None).unwrap();
        let token = Secret {
            data: Some([("token".to_owned(), k8s_openapi::ByteString(vec![b'x'; 40]))].into()),
            ..Secret::default()
        };
        let reference = crate::crd::CredentialsRef {
            name: "scm".into(),
            token_key: "token".into(),
        };
        let credentials = Credentials::from_secret(Some(&token), &reference).unwrap();
        let iam: Url = "https://iam.example/".parse().unwrap();
        let base = base.with_iam_endpoint(iam.clone());
        let cn = base
            .for_account("https://scm.cn-north-4.myhuaweicloud.com", None, None)
            .unwrap();
        let ap = base
            .for_account("https://scm.ap-southeast-1.myhuaweicloud.com", Some((1, 1)), None)
            .unwrap();
        let own = base
            .for_account("https://scm.ap-southeast-1.myhuaweicloud.com", None, Some(iam.clone()))
            .unwrap();
        assert_eq!(base.digest(&credentials), credentials.digest(&base.digest_key));
        assert_ne!(cn.digest(&credentials), ap.digest(&credentials));
        assert_ne!(cn.digest(&credentials), base.digest(&credentials));
        assert_ne!(
            cn.bucket(&credentials),
            ap.bucket(&credentials),
            "two sites, two buckets"
        );
        assert_eq!(ap.endpoint().as_str(), "https://scm.ap-southeast-1.myhuaweicloud.com/");
        // --iam-endpoint belongs to the operator's own site; an account elsewhere asks its site's IAM or its own.
        assert_eq!(cn.iam_endpoint(), Some(iam.clone()));
        assert_eq!(
            ap.iam_endpoint().map(|u| u.to_string()).as_deref(),
            Some("https://iam.ap-southeast-1.myhuaweicloud.com/")
        );
        assert_eq!(own.iam_endpoint(), Some(iam));
    }

    #[test]
    fn endpoint_must_be_a_plain_http_base_url() {
        assert!(parse_endpoint("https://scm.cn-north-4.myhuaweicloud.com").is_ok());
        assert!(parse_endpoint("http://127.0.0.1:18080/").is_ok());
        for bad in [
            "ftp://x",
            "scm.example.com",
            "https://x/?a=b",
            "https://u:p@x",
            "mailto:a@b",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn push_request_rejects_path_characters() {
        assert!(PushRequest::new("scs1554192131150", TargetService::Waf, "cn-north-4").is_ok());
        for bad in ["scs155419213115/", "scs15541921311.0", "short", "scs15541921311500"] {
            assert!(
                PushRequest::new(bad, TargetService::Waf, "cn-north-4").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_ca_file_is_a_clear_error() {
        crate::install_crypto_provider();
        let e = ScmClient::new("https://scm.example.com", Some(b"not a pem")).unwrap_err();
        assert!(e.to_string().contains("--scm-ca-file"), "{e}");
    }
}
