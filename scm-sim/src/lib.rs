//! Fake Huawei Cloud SCM API served over real HTTP, for integration tests and the local demo.
//!
//! The simulator answers the certificate endpoints the operator uses (push, list with `content`, show, import,
//! delete) and the deploy side of SCM (batch push, deploy, deployed resources)
//! with the status codes and error bodies of the real service, records every request as a
//! [`Call`], and lets a test queue [`Fault`]s that change how the next push calls are answered.
//! The same controls are exposed over HTTP under `/sim/`, without auth, so the `scm-sim` binary can
//! be driven from scripts: `GET /sim/calls`, `POST /sim/faults` (a [`Fault`] as JSON, e.g.
//! `{"action":"error","status":500,"error_code":"SCM.0001","error_msg":"boom","times":2}`),
//! `POST /sim/reset`, `PUT /sim/tokens` (JSON array), `PUT /sim/access-keys` (JSON object of AK to SK), `POST /sim/certificates` (`{"id":"..."}`),
//! `PUT /sim/list-mode` (`{"ignore_content":true}`, see [`SimConfig::list_ignores_content`]), `PUT /sim/domains` (JSON
//! object of AK to domain id, see [`Sim::set_domain`]), `PUT /sim/iam` (`{"answer":"unauthorized"}`, see
//! [`Sim::set_iam_answer`]) and `GET /sim/healthz`;
//! for the deploy side `GET /sim/deployments` ([`Deployment`]s), `GET /sim/copies` ([`Copy`]s),
//! `POST /sim/deploy-failures` (`{"resource":"...","failure_info":"ELB.8902","times":1}`, see [`Sim::fail_deploy`]),
//! `POST /sim/failing-regions` (`{"region":"..."}`, see [`Sim::fail_region`]), `POST /sim/in-use`
//! (`{"certificate_id":"...","service":"ELB","region":"...","resource_id":"..."}`, see [`Sim::mark_in_use`]),
//! `POST /sim/unreadable-regions` and `DELETE /sim/unreadable-regions` (`{"region":"..."}`, see
//! [`Sim::fail_region_read`] and [`Sim::heal_region_read`]) and `PUT /sim/resource-id-mode` (`{"with_name":true}`, see
//! [`Sim::set_resource_id_with_name`]).
//!
//! The list honours `limit`, `offset`, `status` and `sort_key`/`sort_dir` (`certUpdateTime` is creation order here,
//! since nothing is ever updated); without `sort_key` and `sort_dir` it answers in creation order, not in SCM's
//! default (`certUpdateTime`, `DESC`), which older tests rely on.
//!
//! Deploy (`POST /v3/scm/certificates/{id}/deploy`) binds target resources (ELB and WAF certificate ids, CDN
//! domains) to a certificate and bills every successful one ([`Sim::deployments`], [`Sim::deploy_count`]); it
//! answers 200 with a `failure_list` even when resources failed. Batch push
//! (`POST /v3/scm/certificates/{id}/batch-push`) answers per region with the id of the copy created in the target
//! service ([`Sim::copies`]). `POST /v3/scm/deployed-resources` reports the bindings per certificate; a region SCM
//! cannot read ([`Sim::fail_region_read`]) is reported with `is_error` and without its bindings.
//!
//! IAM's `GET /v3/auth/domains` ([`IAM_DOMAINS_PATH`]) is served too, on the same address, as Huawei's SDKs call it
//! to learn the account (domain) id of an access key that came without one: it checks the AK/SK signature like any
//! call and answers `{"domains": [{"id": ..., "name": ..., "enabled": true, ...}]}` with that key's domain id
//! ([`Sim::domain_of`]), or what [`Sim::set_iam_answer`] says. It is recorded like the SCM calls
//! ([`Call::is_iam_domains`]).
//!
//! An AK/SK-signed SCM request that carries neither `X-Domain-Id` nor `X-Project-Id` is refused with 401
//! `APIGW.0301` ([`UNSCOPED_MESSAGE`]): Huawei's SDKs never send one (they ask IAM first), and which answer the real
//! gateway gives is not documented, so this is the simulator's choice of a refusal a client cannot mistake for
//! success. It does not count as a signature failure towards the key's lock. The value of the header is not checked
//! against the key's domain (recorded in [`Call::domain_id`] / [`Call::project_id`] for tests to check).
//!
//! Secrets are kept out of everything observable: calls carry only a SHA-256 of the
//! `X-Auth-Token` or of the access key id, imported private keys are redacted from recorded bodies and never retained,
//! and nothing here logs a token or a key.

mod server;

pub use server::REGION_BUSY;
mod signature;
mod state;
mod wire;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::state::State;

/// Token accepted by a default-configured simulator; 64 characters like a short IAM token.
pub const DEMO_TOKEN: &str = "demo-token-a4df78471d51f8d2180c0836ad5058f9f000624eda9be9fa251dd";

/// Access key id (AK) accepted by a default-configured simulator, with [`DEMO_SECRET_KEY`].
pub const DEMO_ACCESS_KEY: &str = "DEMOACCESSKEY0000001";

/// Secret access key (SK) of [`DEMO_ACCESS_KEY`].
pub const DEMO_SECRET_KEY: &str = "demoSecretKeyNotSecret00000000000000000";

/// Path of IAM's "list the domains this credential may access" (`KeystoneListAuthDomains`).
pub const IAM_DOMAINS_PATH: &str = "/v3/auth/domains";

/// `error_msg` (after the gateway's prefix) of the 401 for an AK/SK-signed SCM request without a scope header.
pub const UNSCOPED_MESSAGE: &str = "Incorrect IAM authentication information: the AK/SK request carries neither \
                                    X-Domain-Id nor X-Project-Id";

/// The domain (account) id the simulator's IAM reports for `access_key` unless [`Sim::set_domain`] says otherwise:
/// 32 hex digits like Huawei's account ids, the same for the same key in every run.
pub fn default_domain_id(access_key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("scm-sim domain of {access_key}"));
    hex::encode(&digest[..16])
}

/// How the simulator's IAM answers `GET /v3/auth/domains` for a correctly signed request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IamAnswer {
    /// 200 with the key's domain ([`Sim::domain_of`]).
    #[default]
    Domains,
    /// 401 `APIGW.0301`, as for a key IAM does not accept.
    Unauthorized,
    /// 403 in Keystone's error shape (`{"error": {"code": 403, ...}}`), as for a user that may not read its domain.
    Forbidden,
    /// 200 with an empty `domains` list (Huawei's SDK then asks STS; the operator does not).
    Empty,
}

/// Certificate ids a default-configured simulator knows (real SCM ids are `scs` + 13 digits).
pub const DEMO_CERTIFICATES: &[&str] = &["scs1554192131150", "scs1481110651012", "scs1590053258704"];

/// Initial behaviour of a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Tokens that authenticate; anything else gets 401 `APIGW.0301`.
    pub tokens: Vec<String>,
    /// Tokens that authenticate but are not authorized (403 `APIGW.0302`); they need not also be in `tokens`.
    pub forbidden_tokens: Vec<String>,
    /// Access key pairs (AK, SK) whose `SDK-HMAC-SHA256` signatures are accepted; a bad signature gets 401
    /// `APIGW.0301`, and more than five failures in a row lock the AK for five minutes, as on the real gateway.
    pub access_keys: Vec<(String, String)>,
    /// Certificate ids that exist; others get 404 `SCM.0021`.
    pub certificates: Vec<String>,
    /// Extra delay before every SCM API request is answered.
    pub latency: Duration,
    /// Answer 400 `SCM.0028` when a (certificate, service, project) was already pushed successfully.
    pub reject_duplicate_push: bool,
    /// Random faults on push calls (after queued [`Fault`]s), for chaos tests.
    pub chaos: Option<Chaos>,
    /// List certificates like an endpoint that predates the `content` keyword: it is ignored, so a filtered list
    /// answers with every certificate of the account (paged by `limit`/`offset` as usual).
    pub list_ignores_content: bool,
}

/// Random transient faults: each push call not answered by a queued [`Fault`] fails with probability `rate`, as a
/// 503 (`APIGW.0613`), a 429 (`APIGW.0308`), a connection reset before processing, an answer delayed by
/// `slow_ms` (then handled normally), or, when `stall_ms` is not 0, a [`FaultAction::GatewayTimeout`] of
/// `stall_ms` (never forwarded). At most `max_in_a_row` faults hit one (certificate, service, project) in a row,
/// so a test's duration stays bounded.
#[derive(Clone, Debug, PartialEq)]
pub struct Chaos {
    /// Probability of a fault per push call.
    pub rate: f64,
    /// Most consecutive faults for one push target.
    pub max_in_a_row: u32,
    /// Delay of the slow answers.
    pub slow_ms: u64,
    /// Hold time of the gateway timeouts; 0 leaves them out.
    pub stall_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            tokens: vec![DEMO_TOKEN.to_owned()],
            forbidden_tokens: Vec::new(),
            access_keys: vec![(DEMO_ACCESS_KEY.to_owned(), DEMO_SECRET_KEY.to_owned())],
            certificates: DEMO_CERTIFICATES.iter().map(|id| (*id).to_owned()).collect(),
            latency: Duration::ZERO,
            reject_duplicate_push: false,
            chaos: None,
            list_ignores_content: false,
        }
    }
}

/// One request the simulator received on the SCM API (admin `/sim/` requests are not recorded).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path without the query string.
    pub path: String,
    /// The raw query string, if any (SCM's queries carry no secret).
    #[serde(default)]
    pub query: Option<String>,
    /// Certificate id from the path, or the id created by an import.
    pub certificate_id: Option<String>,
    /// `Content-Type` request header, if present and valid UTF-8.
    pub content_type: Option<String>,
    /// Hex SHA-256 of the `X-Auth-Token` header; the token itself is never recorded.
    pub token_sha256: Option<String>,
    /// Hex SHA-256 of the access key id of an `SDK-HMAC-SHA256` signed request; key material is never recorded.
    #[serde(default)]
    pub access_key_sha256: Option<String>,
    /// `SignedHeaders` of a signed request, e.g. `host;x-project-id;x-sdk-date`.
    #[serde(default)]
    pub signed_headers: Option<String>,
    /// `X-Domain-Id` request header (an account id, no secret), if sent.
    #[serde(default)]
    pub domain_id: Option<String>,
    /// `X-Project-Id` request header, if sent.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Parsed JSON request body (`Null` if absent or not JSON); an import's `private_key` is `"<redacted>"`.
    pub body: serde_json::Value,
    /// Status answered, or 0 when the connection was dropped without a response.
    pub status: u16,
    /// `error_code` of the answered error body, if any.
    pub error_code: Option<String>,
    /// Value of the `X-Request-Id` response header.
    pub request_id: String,
    /// Milliseconds between simulator start and the arrival of the request.
    pub at_ms: u64,
}

impl Call {
    /// True for calls to the push endpoint.
    pub fn is_push(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/push")
    }

    /// True for calls to IAM's `GET /v3/auth/domains`.
    pub fn is_iam_domains(&self) -> bool {
        self.method == "GET" && self.path == IAM_DOMAINS_PATH
    }
}

fn default_times() -> u32 {
    1
}

/// A resource a deploy bound to a certificate: the target serves that certificate now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// SCM certificate id.
    pub certificate_id: String,
    /// `CDN`, `WAF` or `ELB`.
    pub service: String,
    /// The deploy's `project_name` (a region id for a main project); empty for CDN, a global service, and for a
    /// deploy that named no project.
    pub project: String,
    /// The target service's certificate id for ELB and WAF, the domain for CDN.
    pub resource: String,
}

/// A certificate a batch push created in a target service (single pushes are counted by
/// [`Sim::successful_pushes`] instead, as their answer names no copy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    /// SCM certificate id it was copied from.
    pub certificate_id: String,
    /// `CDN`, `WAF` or `ELB`.
    pub service: String,
    /// Region (project name) it was pushed to.
    pub project: String,
    /// Its id in the target service, as the batch push answered it (`cert_id`).
    pub copy_id: String,
}

/// A scripted misbehaviour applied to upcoming push calls before any built-in check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Only push calls for this certificate match; `None` matches any push.
    #[serde(default)]
    pub certificate_id: Option<String>,
    /// Number of matching push calls the fault is used for (defaults to 1 in JSON).
    #[serde(default = "default_times")]
    pub times: u32,
    /// What to do with a matching call.
    #[serde(flatten)]
    pub action: FaultAction,
}

/// How a matching push call is answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this status and raw body (may be empty or not JSON).
    Respond {
        /// HTTP status; values `StatusCode` rejects are answered as 500.
        status: u16,
        /// Raw response body.
        #[serde(default)]
        body: String,
        /// Seconds for a `Retry-After` header.
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Answer with an SCM-style JSON error body.
    Error {
        /// HTTP status; values `StatusCode` rejects are answered as 500.
        status: u16,
        /// `error_code` field, e.g. `SCM.0001`; `APIGW.*` codes also get a `request_id` field.
        error_code: String,
        /// `error_msg` field.
        error_msg: String,
    },
    /// Close the connection without sending any response.
    Drop,
    /// Handle the call normally (the push lands), then close the connection without answering: the client
    /// cannot tell whether it landed.
    DropAfterPush,
    /// Sleep this long, then handle the call normally.
    Delay {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// The gateway holds the call this long and then answers 504 `APIGW.0201` (backend timeout) without forwarding
    /// it: nothing lands. With `ms` beyond the client's timeout, the client sees only a timeout.
    GatewayTimeout {
        /// Hold time in milliseconds.
        ms: u64,
    },
    /// Handle the call normally (it lands, and a deploy is billed), then hold the answer `ms` (0 when left out of
    /// the JSON) and answer 504 `APIGW.0201` (backend timeout): the client is told the call failed although it
    /// landed.
    LandThenGatewayTimeout {
        /// Hold time in milliseconds after the call landed.
        #[serde(default)]
        ms: u64,
    },
}

/// Handle to a running simulator; clones share the same server.
#[derive(Clone)]
pub struct Sim {
    shared: Arc<Shared>,
}

/// Server-wide state shared by the handle and the connection tasks.
struct Shared {
    addr: SocketAddr,
    started: Instant,
    state: Mutex<State>,
    shutdown: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind, still fine to serve from.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for Sim {
    // Hand-written so that debug output can never include tokens from the state.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

/// A loopback port nothing listens on right now, for tests that need a free or a closed port (the one helper the
/// operator's and the simulator's tests share).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Sim {
    /// Binds `addr` (port 0 picks a free port) and serves in a spawned task.
    pub async fn start(config: SimConfig, addr: SocketAddr) -> std::io::Result<Sim> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (stopped_tx, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            addr,
            started: Instant::now(),
            state: Mutex::new(State::new(config)),
            shutdown,
            stopped,
        });
        tokio::spawn(server::serve(listener, Arc::clone(&shared), shutdown_rx, stopped_tx));
        Ok(Sim { shared })
    }

    /// Address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Base URL for clients, e.g. `http://127.0.0.1:18080`; a wildcard bind is reached via loopback.
    pub fn url(&self) -> String {
        let addr = self.shared.addr;
        let ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, addr.port()))
    }

    /// Milliseconds since the simulator started: the clock of [`Call::at_ms`].
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.shared.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Every SCM API call in the order it was answered.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.state().calls.clone()
    }

    /// Only the push calls.
    pub fn pushes(&self) -> Vec<Call> {
        self.shared
            .state()
            .calls
            .iter()
            .filter(|c| c.is_push())
            .cloned()
            .collect()
    }

    /// Only the push calls answered 204.
    pub fn successful_pushes(&self) -> Vec<Call> {
        self.shared
            .state()
            .calls
            .iter()
            .filter(|c| c.is_push() && c.status == 204)
            .cloned()
            .collect()
    }

    /// Queues a fault behind those already queued; a fault with `times == 0` is ignored.
    pub fn inject(&self, fault: Fault) {
        if fault.times > 0 {
            self.shared.state().faults.push_back(fault);
        }
    }

    /// Queues a fault for upcoming delete calls (`certificate_id` filters by the certificate deleted). `Respond`,
    /// `Error`, `Drop` and `GatewayTimeout` answer without deleting; `Delay`, `DropAfterPush` and
    /// `LandThenGatewayTimeout` delete first.
    pub fn inject_delete(&self, fault: Fault) {
        if fault.times > 0 {
            self.shared.state().delete_faults.push_back(fault);
        }
    }

    /// Queues a fault for upcoming import calls (`certificate_id` filters by the certificate's name). `Respond`,
    /// `Error`, `Drop` and `GatewayTimeout` answer without importing; `Delay`, `DropAfterPush` and
    /// `LandThenGatewayTimeout` import first.
    pub fn inject_import(&self, fault: Fault) {
        if fault.times > 0 {
            self.shared.state().import_faults.push_back(fault);
        }
    }

    /// Queues a fault for upcoming deploy calls (`certificate_id` filters by the certificate deployed). `Respond`,
    /// `Error`, `Drop` and `GatewayTimeout` answer without deploying; `Delay`, `DropAfterPush` and
    /// `LandThenGatewayTimeout` deploy first.
    pub fn inject_deploy(&self, fault: Fault) {
        if fault.times > 0 {
            self.shared.state().deploy_faults.push_back(fault);
        }
    }

    /// Queues a fault for upcoming batch-push calls (`certificate_id` filters by the certificate pushed).
    /// `Respond`, `Error`, `Drop` and `GatewayTimeout` answer without pushing; `Delay`, `DropAfterPush` and
    /// `LandThenGatewayTimeout` push first.
    pub fn inject_batch_push(&self, fault: Fault) {
        if fault.times > 0 {
            self.shared.state().batch_push_faults.push_back(fault);
        }
    }

    /// Queues a fault for upcoming deployed-resources queries (`certificate_id` matches a query that asks about
    /// that certificate among others).
    pub fn inject_deployed_resources(&self, fault: Fault) {
        if fault.times > 0 {
            self.shared.state().deployed_resources_faults.push_back(fault);
        }
    }

    /// Makes the next `times` deploys of `resource` (an ELB or WAF certificate id, or a CDN domain) fail inside the
    /// 200 answer, as `{"resource": resource, "failure_info": failure_info}`; a failed resource is neither bound nor
    /// billed. Failures queued for the same resource are used in order; `times == 0` is ignored.
    pub fn fail_deploy(&self, resource: &str, failure_info: &str, times: u32) {
        if times > 0 {
            self.shared
                .state()
                .deploy_failures
                .push_back(state::QueuedDeployFailure {
                    resource: resource.to_owned(),
                    failure_info: failure_info.to_owned(),
                    times,
                });
        }
    }

    /// The resources bound to certificates now, by deploys or [`Sim::mark_in_use`], ordered by service, project and
    /// resource.
    pub fn deployments(&self) -> Vec<Deployment> {
        self.shared.state().deployments()
    }

    /// Successful deploys of `certificate_id` to `resource` so far, each of which SCM bills.
    pub fn deploy_count(&self, certificate_id: &str, resource: &str) -> u32 {
        self.shared
            .state()
            .deploy_counts
            .get(&(certificate_id.to_owned(), resource.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Binds a resource to a certificate as if someone had done it outside the operator (the console, another
    /// tool): deployed-resources reports it and a deploy of another certificate moves it, but nothing is billed.
    /// `region` is the project for ELB and WAF; CDN is global, so it is ignored there.
    pub fn mark_in_use(&self, certificate_id: &str, service: &str, region: &str, resource_id: &str) {
        self.shared.state().bind(certificate_id, service, region, resource_id);
    }

    /// Makes batch pushes to `region` fail for now, with a message that a retry may cure
    /// ([`REGION_BUSY`]); region names not shaped like `cn-north-4` fail for good with `"Invalid region id."`, as SCM
    /// answers for a region it does not know.
    pub fn fail_region(&self, region: &str) {
        self.shared.state().failing_regions.insert(region.to_owned());
    }

    /// Lets batch pushes to `region` succeed again after [`Sim::fail_region`].
    pub fn heal_region(&self, region: &str) {
        self.shared.state().failing_regions.remove(region);
    }

    /// Makes deployed-resources unable to read `region`: every answer lists, for each certificate asked about and
    /// each regional service asked about (ELB, WAF), the region as `{"region_id": region, "is_error": true,
    /// "resources": []}`, hides the bindings there from the lists and counts, and lists the service even when none
    /// of its resources is readable. CDN (global) is not affected.
    pub fn fail_region_read(&self, region: &str) {
        self.shared.state().unreadable_regions.insert(region.to_owned());
    }

    /// Lets deployed-resources read `region` again after [`Sim::fail_region_read`].
    pub fn heal_region_read(&self, region: &str) {
        self.shared.state().unreadable_regions.remove(region);
    }

    /// Makes deployed-resources report each `resource_id` as `"{id}:{name}"` (on) or as the bare id (off, the
    /// default); the simulator knows no names, so the name is the id, as in `resource_name`.
    pub fn set_resource_id_with_name(&self, on: bool) {
        self.shared.state().resource_id_with_name = on;
    }

    /// The certificates batch pushes created in target services, in creation order.
    pub fn copies(&self) -> Vec<Copy> {
        self.shared.state().copies.clone()
    }

    /// Drops every queued fault and deploy failure; recorded calls, earlier pushes and bindings stay.
    pub fn clear_faults(&self) {
        let mut state = self.shared.state();
        state.faults.clear();
        state.delete_faults.clear();
        state.import_faults.clear();
        state.deploy_faults.clear();
        state.batch_push_faults.clear();
        state.deployed_resources_faults.clear();
        state.deploy_failures.clear();
    }

    /// Faults not used up yet, in queue order.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.shared.state().faults.iter().cloned().collect()
    }

    /// Replaces the set of valid tokens (forbidden tokens are unchanged).
    pub fn set_tokens(&self, tokens: Vec<String>) {
        self.shared.state().set_tokens(tokens);
    }

    /// The certificates SCM holds now, as (id, name), in creation order.
    pub fn certificates(&self) -> Vec<(String, String)> {
        self.shared
            .state()
            .certificates
            .iter()
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect()
    }

    /// Replaces the accepted access key pairs (AK, SK) and forgets any lockout.
    pub fn set_access_keys(&self, keys: Vec<(String, String)>) {
        self.shared.state().set_access_keys(keys);
    }

    /// Makes IAM report `domain_id` as the domain of `access_key` (instead of [`default_domain_id`]).
    pub fn set_domain(&self, access_key: &str, domain_id: &str) {
        self.shared
            .state()
            .domains
            .insert(access_key.to_owned(), domain_id.to_owned());
    }

    /// The domain id IAM reports for `access_key`.
    pub fn domain_of(&self, access_key: &str) -> String {
        self.shared.state().domain_of(access_key)
    }

    /// How IAM answers `GET /v3/auth/domains` from now on (until [`Sim::reset`], which restores
    /// [`IamAnswer::Domains`]).
    pub fn set_iam_answer(&self, answer: IamAnswer) {
        self.shared.state().iam_answer = answer;
    }

    /// Only the calls to IAM's `GET /v3/auth/domains`.
    pub fn iam_calls(&self) -> Vec<Call> {
        self.shared
            .state()
            .calls
            .iter()
            .filter(|c| c.is_iam_domains())
            .cloned()
            .collect()
    }

    /// Switches [`SimConfig::list_ignores_content`] on or off.
    pub fn set_list_ignores_content(&self, ignore: bool) {
        self.shared.state().list_ignores_content = ignore;
    }

    /// Sets the gateway's clock `offset` ahead of the real one (negative: behind): signature times are checked
    /// against it and the `Date` header tells it.
    pub fn set_clock_offset(&self, offset: jiff::SignedDuration) {
        self.shared.state().clock_offset = offset;
    }

    /// Makes a certificate id known; adding an existing id changes nothing.
    pub fn add_certificate(&self, id: &str) {
        self.shared.state().add_certificate(id);
    }

    /// Clears recorded calls, queued faults and deploy failures, access key lockouts, the memory of earlier pushes
    /// used for duplicate rejection, bindings and their billing counters, failing and unreadable regions and copies,
    /// reports bare resource ids again, and lets IAM answer with domains again.
    pub fn reset(&self) {
        self.shared.state().reset();
    }

    /// Stops accepting and closes open connections; requests in flight get no response.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// Waits until the listener has been closed after [`Sim::shutdown`].
    pub async fn closed(&self) {
        let mut stopped = self.shared.stopped.clone();
        // An error means the server task is gone, which is just as closed.
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }
}
