//! HTTP serving: an axum router for the SCM and `/sim/` admin APIs behind a thin hyper connection loop.
//!
//! The loop exists only because axum's own `serve` always answers: the `drop` and `drop_after_push` faults need a
//! connection closed without a response, so a handler marks its response with [`DropConnection`] and the loop turns
//! that into a connection error.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use super::signature::{self, Received};
use super::wire::{ErrorBody, ImportRequest, ImportResponse, ListResponse, PushRequest};
use super::{Call, Fault, FaultAction, Shared};

/// Larger bodies are refused; real imports (certificate + chain + key) are a few tens of KiB.
const MAX_BODY_BYTES: usize = 1 << 20;

const SERVICES: [&str; 3] = ["CDN", "WAF", "ELB"];

/// Returned to hyper to make it close the connection without writing a response.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
struct DroppedByFault;

/// Response extension asking the connection loop to close the connection instead of answering.
#[derive(Clone, Copy)]
struct DropConnection;

/// Request extension: the id this request is answered with (`X-Request-Id`, and in gateway error bodies).
#[derive(Clone)]
struct RequestId(String);

/// Request extension: who the request claims to come from, with signatures already checked.
#[derive(Clone)]
enum Caller {
    /// `X-Auth-Token`, if sent.
    Token(Option<String>),
    /// An `SDK-HMAC-SHA256` signed request: the verified access key id, or why the signature was refused.
    Signed(Result<String, String>),
}

/// Response extension: what the [`Call`] record needs from a handler's answer.
#[derive(Clone, Default)]
struct Recorded {
    error_code: Option<String>,
    /// Certificate id from the path, or the one an import created.
    certificate_id: Option<String>,
}

/// Accepts connections until shutdown is signalled, then closes the listener.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    stopped: watch::Sender<bool>,
) {
    let app = router(shared);
    let connection_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            _ = stop_requested(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Small JSON responses on keep-alive connections would otherwise wait on Nagle.
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, app.clone(), connection_shutdown.clone()));
                }
                Err(error) => {
                    // Typically fd exhaustion; back off instead of spinning.
                    tracing::warn!(%error, "scm-sim accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    stopped.send_replace(true);
}

/// Resolves once shutdown is signalled (or the handle side is gone).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`, so it must not outlive this function.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve_connection(stream: tokio::net::TcpStream, app: Router, mut shutdown: watch::Receiver<bool>) {
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        // Processing runs in its own task so that a client giving up mid-delay does not cancel it:
        // like a real server, the push still takes effect and is recorded with what was answered.
        let task = tokio::spawn(app.clone().oneshot(request.map(Body::new)));
        async move {
            match task.await {
                Ok(Ok(response)) if response.extensions().get::<DropConnection>().is_some() => Err(DroppedByFault),
                Ok(Ok(response)) => Ok(response),
                Ok(Err(infallible)) => match infallible {},
                Err(error) => {
                    tracing::error!(%error, "scm-sim handler failed");
                    Ok(
                        SimReply::scm_error(StatusCode::INTERNAL_SERVER_ERROR, "SCM.0001", "Internal server error.")
                            .into_response(),
                    )
                }
            }
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "scm-sim connection ended with an error");
            }
        }
        _ = stop_requested(&mut shutdown) => {}
    }
}

/// The SCM API (recorded, delayed by the configured latency) and the unrecorded `/sim/` admin API.
fn router(shared: Arc<Shared>) -> Router {
    let scm = Router::new()
        .route("/v3/scm/certificates", get(list))
        .route("/v3/scm/certificates/import", post(import))
        .route("/v3/scm/certificates/{id}", get(show).delete(delete))
        .route("/v3/scm/certificates/{id}/push", post(push))
        // The API gateway answers a wrong path and a wrong method alike.
        .fallback(api_not_found)
        .method_not_allowed_fallback(api_not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), record))
        .with_state(Arc::clone(&shared));
    let admin = Router::new()
        .route(
            "/healthz",
            get(|| async { SimReply::json(StatusCode::OK, &json!({"status": "ok"})) }),
        )
        .route("/calls", get(admin_calls))
        .route("/faults", post(admin_fault))
        .route("/reset", post(admin_reset))
        .route("/tokens", put(admin_tokens))
        .route("/access-keys", put(admin_access_keys))
        .route("/certificates", post(admin_certificate))
        .fallback(admin_not_found)
        .method_not_allowed_fallback(admin_not_found)
        .with_state(shared);
    Router::new().nest("/sim", admin).merge(scm)
}

/// Records every SCM API request as a [`Call`], after reading its body within the limit and waiting the latency.
async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let at_ms = u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let request_id = new_request_id();
    let (mut parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await;
    let header = |name| parts.headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let authorization = header("authorization").and_then(signature::parse_authorization);
    let caller = match (&authorization, &body) {
        (Some(authorization), Ok(body)) => {
            let received = Received {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query(),
                headers: &parts.headers,
                body,
            };
            Caller::Signed(check_signature(&shared, &received, authorization))
        }
        _ => Caller::Token(header("x-auth-token").map(str::to_owned)),
    };
    let mut call = Call {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        certificate_id: None,
        content_type: header(CONTENT_TYPE.as_str()).map(str::to_owned),
        token_sha256: parts
            .headers
            .get("x-auth-token")
            .map(|v| hex::encode(Sha256::digest(v.as_bytes()))),
        access_key_sha256: authorization
            .as_ref()
            .map(|a| hex::encode(Sha256::digest(a.access_key.as_bytes()))),
        signed_headers: authorization.as_ref().map(|a| a.signed_headers.to_owned()),
        body: body.as_deref().map_or(Value::Null, recorded_body),
        status: 0,
        error_code: None,
        request_id: request_id.clone(),
        at_ms,
    };

    let latency = shared.state().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let mut response = match body {
        Ok(body) => {
            parts.extensions.insert(RequestId(request_id.clone()));
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
        // Too large or cut off: no handler can make sense of it.
        Err(error) => {
            tracing::debug!(%error, "scm-sim could not read a request body");
            body_unreadable().into_response()
        }
    };

    if let Some(recorded) = response.extensions().get::<Recorded>() {
        call.error_code.clone_from(&recorded.error_code);
        call.certificate_id.clone_from(&recorded.certificate_id);
    }
    if response.extensions().get::<DropConnection>().is_none() {
        call.status = response.status().as_u16();
    }
    tracing::info!(
        method = %call.method,
        path = %call.path,
        status = call.status,
        error_code = call.error_code.as_deref().unwrap_or("-"),
        request_id = %call.request_id,
        "scm-sim request"
    );
    shared.state().calls.push(call);
    set_request_id(&mut response, &request_id);
    response
}

/// The gateway's AK/SK check: a known access key, not locked, with a valid signature; every check is counted.
fn check_signature(
    shared: &Shared,
    received: &Received<'_>,
    authorization: &signature::Authorization<'_>,
) -> Result<String, String> {
    let access_key = authorization.access_key;
    let mut state = shared.state();
    let Some(secret_key) = state.access_keys.get(access_key).cloned() else {
        return Err("Get secretKey failed: ak not exist".to_owned());
    };
    if state.access_key_locked(access_key) {
        return Err("AK access failed to reach the limit,forbidden".to_owned());
    }
    let verdict = signature::verify(received, authorization, &secret_key, jiff::Timestamp::now());
    state.signature_checked(access_key, verdict.is_ok());
    verdict.map(|()| access_key.to_owned()).map_err(str::to_owned)
}

fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn set_request_id(response: &mut Response, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
}

/// JSON body as recorded in a [`Call`], with any `private_key` (an import's) masked.
fn recorded_body(body: &[u8]) -> Value {
    let mut value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(key) = value.as_object_mut().and_then(|object| object.get_mut("private_key")) {
        *key = Value::String("<redacted>".to_owned());
    }
    value
}

/// A response before it is turned into HTTP, carrying what the call record needs.
struct SimReply {
    status: StatusCode,
    body: Bytes,
    content_type: Option<&'static str>,
    retry_after: Option<u64>,
    recorded: Recorded,
    /// Close the connection instead of answering.
    drop_connection: bool,
}

impl SimReply {
    fn empty(status: StatusCode) -> Self {
        Self {
            status,
            body: Bytes::new(),
            content_type: None,
            retry_after: None,
            recorded: Recorded::default(),
            drop_connection: false,
        }
    }

    /// No answer at all: the connection is closed.
    fn dropped() -> Self {
        Self {
            drop_connection: true,
            ..Self::empty(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }

    fn json(status: StatusCode, body: &impl Serialize) -> Self {
        // Bodies are JSON values and plain structs of strings and numbers, which always serialise.
        let body = serde_json::to_vec(body).expect("a JSON body serialises");
        Self {
            body: Bytes::from(body),
            content_type: Some("application/json"),
            ..Self::empty(status)
        }
    }

    fn with_error_code(mut self, code: &str) -> Self {
        self.recorded.error_code = Some(code.to_owned());
        self
    }

    /// Records which certificate the call was about.
    fn about(mut self, certificate_id: &str) -> Self {
        self.recorded.certificate_id = Some(certificate_id.to_owned());
        self
    }

    /// SCM service errors carry no request id in the body.
    fn scm_error(status: StatusCode, code: &str, msg: &str) -> Self {
        Self::error(status, code, msg, None)
    }

    /// API gateway errors repeat the request id in the body.
    fn gateway_error(status: StatusCode, code: &str, msg: &str, request_id: &RequestId) -> Self {
        Self::error(status, code, msg, Some(request_id.0.clone()))
    }

    fn error(status: StatusCode, code: &str, msg: &str, request_id: Option<String>) -> Self {
        let body = ErrorBody {
            error_code: code.to_owned(),
            error_msg: msg.to_owned(),
            request_id,
        };
        Self::json(status, &body).with_error_code(code)
    }

    fn bad_request(msg: &str) -> Self {
        Self::scm_error(StatusCode::BAD_REQUEST, "SCM.0005", msg)
    }

    /// A fault's raw body, labelled JSON only when it parses as JSON.
    fn raw(status: StatusCode, body: String, retry_after: Option<u64>) -> Self {
        let parsed: Option<Value> = serde_json::from_str(&body).ok();
        let content_type = match (&parsed, body.is_empty()) {
            (_, true) => None,
            (Some(_), false) => Some("application/json"),
            (None, false) => Some("text/plain; charset=utf-8"),
        };
        let error_code = parsed
            .as_ref()
            .and_then(|v| v.get("error_code"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Self {
            body: Bytes::from(body),
            content_type,
            retry_after,
            recorded: Recorded {
                error_code,
                certificate_id: None,
            },
            ..Self::empty(status)
        }
    }
}

impl IntoResponse for SimReply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        match self.content_type {
            Some(content_type) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            }
            None => {
                headers.remove(CONTENT_TYPE);
            }
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(self.recorded);
        if self.drop_connection {
            response.extensions_mut().insert(DropConnection);
        }
        response
    }
}

fn fault_status(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// IAM checks shared by all SCM endpoints; forbidden tokens count as authenticated.
fn authorize(shared: &Shared, caller: &Caller, request_id: &RequestId) -> Result<(), SimReply> {
    let unauthorized = |reason: &str| {
        SimReply::gateway_error(
            StatusCode::UNAUTHORIZED,
            "APIGW.0301",
            &format!("Incorrect IAM authentication information: {reason}"),
            request_id,
        )
    };
    let state = shared.state();
    match caller {
        Caller::Signed(Ok(_)) => Ok(()),
        Caller::Signed(Err(reason)) => Err(unauthorized(reason)),
        Caller::Token(Some(token)) if state.forbidden_tokens.contains(token) => Err(SimReply::gateway_error(
            StatusCode::FORBIDDEN,
            "APIGW.0302",
            "The IAM user is not authorized to access the API.",
            request_id,
        )),
        Caller::Token(Some(token)) if state.tokens.contains(token) => Ok(()),
        Caller::Token(_) => Err(unauthorized("decrypt token fail")),
    }
}

async fn api_not_found(Extension(request_id): Extension<RequestId>) -> SimReply {
    not_an_api(&request_id)
}

fn not_an_api(request_id: &RequestId) -> SimReply {
    SimReply::gateway_error(
        StatusCode::NOT_FOUND,
        "APIGW.0101",
        "The API does not exist or has not been published in the environment.",
        request_id,
    )
}

fn body_unreadable() -> SimReply {
    SimReply::scm_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "SCM.0005",
        "Incorrect request parameter.",
    )
}

fn certificate_not_found() -> SimReply {
    SimReply::scm_error(StatusCode::NOT_FOUND, "SCM.0021", "certificate not exist")
}

/// `POST /v3/scm/certificates/{id}/push`: queued faults first, then the real checks.
async fn push(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> SimReply {
    let request = PushRequest::parse(&body);
    let fault = {
        let mut state = shared.state();
        let queued = state.take_fault(&id);
        queued.or_else(|| {
            let target = request.as_ref();
            let service = target.and_then(|r| r.target_service.clone()).unwrap_or_default();
            let project = target.and_then(|r| r.target_project.clone()).unwrap_or_default();
            state.chaos_fault((id.clone(), service, project))
        })
    };
    let reply = match fault {
        Some(FaultAction::Respond {
            status,
            body,
            retry_after,
        }) => SimReply::raw(fault_status(status), body, retry_after),
        Some(FaultAction::Error {
            status,
            error_code,
            error_msg,
        }) => {
            let status = fault_status(status);
            if error_code.starts_with("APIGW.") {
                SimReply::gateway_error(status, &error_code, &error_msg, &request_id)
            } else {
                SimReply::scm_error(status, &error_code, &error_msg)
            }
        }
        Some(FaultAction::Drop) => SimReply::dropped(),
        Some(FaultAction::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            apply_push(&shared, &id, &caller, request.as_ref(), &request_id)
        }
        Some(FaultAction::GatewayTimeout { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            SimReply::gateway_error(
                StatusCode::GATEWAY_TIMEOUT,
                "APIGW.0201",
                "Backend timeout.",
                &request_id,
            )
        }
        Some(FaultAction::DropAfterPush) => {
            // The push lands; only the answer is lost.
            let _ = apply_push(&shared, &id, &caller, request.as_ref(), &request_id);
            SimReply::dropped()
        }
        None => apply_push(&shared, &id, &caller, request.as_ref(), &request_id),
    };
    reply.about(&id)
}

/// A push without faults: IAM checks, then the certificate, the body and the duplicate rule.
fn apply_push(
    shared: &Shared,
    id: &str,
    caller: &Caller,
    request: Option<&PushRequest>,
    request_id: &RequestId,
) -> SimReply {
    if let Err(reply) = authorize(shared, caller, request_id) {
        return reply;
    }
    let mut state = shared.state();
    if state.certificate(id).is_none() {
        return certificate_not_found();
    }
    let unsupported = || {
        SimReply::scm_error(
            StatusCode::BAD_REQUEST,
            "SCM.0030",
            "Certificates cannot be pushed to this service.",
        )
    };
    let Some(request) = request else {
        return unsupported();
    };
    let Some(service) = request.target_service.as_deref().filter(|s| SERVICES.contains(s)) else {
        return unsupported();
    };
    let project = request.target_project.as_deref().unwrap_or_default();
    // CDN is a global service, so only regional targets need a project.
    if service != "CDN" && project.is_empty() {
        return SimReply::bad_request("Incorrect request parameter.");
    }
    let key = (id.to_owned(), service.to_owned(), project.to_owned());
    if state.reject_duplicate_push && state.pushed.contains(&key) {
        return SimReply::scm_error(StatusCode::BAD_REQUEST, "SCM.0028", "Push cert error");
    }
    state.pushed.insert(key);
    SimReply::empty(StatusCode::NO_CONTENT)
}

/// `GET /v3/scm/certificates` with `limit`/`offset` paging.
async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> SimReply {
    if let Err(reply) = authorize(&shared, &caller, &request_id) {
        return reply;
    }
    let mut limit = 10_usize;
    let mut offset = 0_usize;
    let mut content: Option<String> = None;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "content" {
            content = Some(String::from_utf8_lossy(&signature::unescape(value, true)).into_owned());
            continue;
        }
        let target = match name {
            "limit" => &mut limit,
            "offset" => &mut offset,
            _ => continue,
        };
        match value.parse() {
            Ok(n) => *target = n,
            Err(_) => return SimReply::bad_request("Incorrect request parameter."),
        }
    }
    if !(1..=50).contains(&limit) {
        return SimReply::bad_request("Incorrect request parameter.");
    }
    let state = shared.state();
    // `content` is a keyword matched against the name and the domain.
    let matching: Vec<_> = state
        .certificates
        .iter()
        .filter(|c| {
            content
                .as_deref()
                .is_none_or(|k| c.name.contains(k) || c.domain.contains(k))
        })
        .collect();
    let certificates: Vec<Value> = matching.iter().skip(offset).take(limit).map(|c| c.summary()).collect();
    let page = ListResponse {
        certificates,
        total_count: matching.len(),
    };
    SimReply::json(StatusCode::OK, &page)
}

/// `GET /v3/scm/certificates/{id}`.
async fn show(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
) -> SimReply {
    let reply = match authorize(&shared, &caller, &request_id) {
        Err(reply) => reply,
        Ok(()) => match shared.state().certificate(&id) {
            Some(certificate) => SimReply::json(StatusCode::OK, &certificate.detail()),
            None => certificate_not_found(),
        },
    };
    reply.about(&id)
}

/// `DELETE /v3/scm/certificates/{id}`.
async fn delete(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
) -> SimReply {
    let reply = match authorize(&shared, &caller, &request_id) {
        Err(reply) => reply,
        Ok(()) if shared.state().remove_certificate(&id) => SimReply::empty(StatusCode::NO_CONTENT),
        Ok(()) => certificate_not_found(),
    };
    reply.about(&id)
}

fn valid_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `POST /v3/scm/certificates/import`.
async fn import(
    State(shared): State<Arc<Shared>>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> SimReply {
    if let Err(reply) = authorize(&shared, &caller, &request_id) {
        return reply;
    }
    // The parsed request (private key included) is dropped at the end of this function.
    let Ok(request) = serde_json::from_slice::<ImportRequest>(&body) else {
        return SimReply::bad_request("Incorrect request parameter.");
    };
    // SCM's documented field limits (characters).
    let chain = request.certificate_chain.as_deref().unwrap_or_default();
    if !valid_name(&request.name)
        || request.certificate.chars().count() > 4096
        || chain.chars().count() > 8192
        || request.private_key.chars().count() > 4096
    {
        return SimReply::bad_request("Incorrect request parameter.");
    }
    if !request
        .certificate
        .trim_start()
        .starts_with("-----BEGIN CERTIFICATE-----")
    {
        return SimReply::scm_error(
            StatusCode::BAD_REQUEST,
            "SCM.0053",
            "The certificate format is incorrect. It must start or end with a specific string.",
        );
    }
    if !request.private_key.contains("PRIVATE KEY-----") {
        return SimReply::scm_error(
            StatusCode::BAD_REQUEST,
            "SCM.0114",
            "Incorrect private key format. It must start or end with a specific string.",
        );
    }
    let id = shared.state().import_certificate(&request.name);
    let created = ImportResponse { certificate_id: id };
    SimReply::json(StatusCode::OK, &created).about(&created.certificate_id)
}

/// Body of `POST /sim/certificates`.
#[derive(Deserialize)]
struct NewCertificate {
    id: String,
}

fn admin_error(status: StatusCode, msg: impl std::fmt::Display) -> SimReply {
    SimReply::scm_error(status, "SIM.0001", &msg.to_string())
}

fn parse_admin<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, SimReply> {
    serde_json::from_slice(body).map_err(|error| admin_error(StatusCode::BAD_REQUEST, format!("invalid body: {error}")))
}

/// Any other path under `/sim/`; admin requests are not recorded as calls.
async fn admin_not_found() -> Response {
    let request_id = RequestId(new_request_id());
    let mut response = not_an_api(&request_id).into_response();
    set_request_id(&mut response, &request_id.0);
    response
}

/// `GET /sim/calls`.
async fn admin_calls(State(shared): State<Arc<Shared>>) -> SimReply {
    let calls = shared.state().calls.clone();
    match serde_json::to_value(calls) {
        Ok(value) => SimReply::json(StatusCode::OK, &value),
        Err(error) => admin_error(StatusCode::INTERNAL_SERVER_ERROR, error),
    }
}

/// `POST /sim/faults`: a [`Fault`] as JSON.
async fn admin_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    let fault = match parse_admin::<Fault>(&body) {
        Ok(fault) => fault,
        Err(reply) => return reply,
    };
    let status = match &fault.action {
        FaultAction::Respond { status, .. } | FaultAction::Error { status, .. } => Some(*status),
        FaultAction::Drop
        | FaultAction::DropAfterPush
        | FaultAction::Delay { .. }
        | FaultAction::GatewayTimeout { .. } => None,
    };
    if status.is_some_and(|s| StatusCode::from_u16(s).is_err()) {
        return admin_error(StatusCode::BAD_REQUEST, "invalid status");
    }
    if fault.times == 0 {
        return admin_error(StatusCode::BAD_REQUEST, "times must be at least 1");
    }
    shared.state().faults.push_back(fault);
    SimReply::empty(StatusCode::NO_CONTENT)
}

/// `POST /sim/reset`.
async fn admin_reset(State(shared): State<Arc<Shared>>) -> SimReply {
    shared.state().reset();
    SimReply::empty(StatusCode::NO_CONTENT)
}

/// `PUT /sim/tokens`: a JSON array of valid tokens.
async fn admin_tokens(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<Vec<String>>(&body) {
        Ok(tokens) => {
            shared.state().set_tokens(tokens);
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}

/// `PUT /sim/access-keys`: a JSON object from access key id to secret key.
async fn admin_access_keys(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<std::collections::BTreeMap<String, String>>(&body) {
        Ok(keys) => {
            shared.state().set_access_keys(keys.into_iter().collect());
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}

/// `POST /sim/certificates`: `{"id": "..."}`.
async fn admin_certificate(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<NewCertificate>(&body) {
        Ok(new) if new.id.is_empty() || new.id.contains('/') => {
            admin_error(StatusCode::BAD_REQUEST, "invalid certificate id")
        }
        Ok(new) => {
            shared.state().add_certificate(&new.id);
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}
