//! HTTP serving, routing and the SCM and admin handlers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, http};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Call, Fault, FaultAction, Shared};

/// Larger bodies are refused; real imports (certificate + chain + key) are a few tens of KiB.
const MAX_BODY_BYTES: usize = 1 << 20;

const SERVICES: [&str; 3] = ["CDN", "WAF", "ELB"];

/// Returned to hyper to make it close the connection without writing a response.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
struct DroppedByFault;

type Body = Full<Bytes>;

/// Accepts connections until shutdown is signalled, then closes the listener.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    stopped: watch::Sender<bool>,
) {
    let connection_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            _ = stop_requested(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Small JSON responses on keep-alive connections would otherwise wait on Nagle.
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, Arc::clone(&shared), connection_shutdown.clone()));
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

async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let service = service_fn(move |request| handle(Arc::clone(&shared), request));
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

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Body>, DroppedByFault> {
    let at_ms = u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let request_id = format!("{:032x}", rand::random::<u128>());
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Some(collected.to_bytes()),
        Err(error) => {
            tracing::debug!(%error, "scm-sim could not read a request body");
            None
        }
    };
    // Processing runs in its own task so that a client giving up mid-delay does not cancel it:
    // like a real server, the push still takes effect and is recorded with what was answered.
    let task = tokio::spawn(process(shared, parts, body, request_id.clone(), at_ms));
    match task.await {
        Ok(Some(response)) => Ok(response),
        Ok(None) => Err(DroppedByFault),
        Err(error) => {
            tracing::error!(%error, "scm-sim handler failed");
            let reply = SimReply::scm_error(StatusCode::INTERNAL_SERVER_ERROR, "SCM.0001", "Internal server error.");
            Ok(reply.into_response(&request_id))
        }
    }
}

/// Routes one request; `None` means drop the connection.
async fn process(
    shared: Arc<Shared>,
    parts: http::request::Parts,
    body: Option<Bytes>,
    request_id: String,
    at_ms: u64,
) -> Option<Response<Body>> {
    let path = parts.uri.path().to_owned();
    if path.starts_with("/sim/") {
        let reply = match &body {
            Some(body) => admin(&shared, &parts, body, &request_id),
            None => body_unreadable(),
        };
        let status = reply.status.as_u16();
        tracing::debug!(method = %parts.method, %path, status, "scm-sim admin request");
        return Some(reply.into_response(&request_id));
    }

    let route = Route::parse(&parts.method, &path);
    let token = parts.headers.get("x-auth-token").and_then(|v| v.to_str().ok());
    let mut call = Call {
        method: parts.method.to_string(),
        path: path.clone(),
        certificate_id: route.certificate_id().map(str::to_owned),
        content_type: parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        token_sha256: parts
            .headers
            .get("x-auth-token")
            .map(|v| hex::encode(Sha256::digest(v.as_bytes()))),
        body: body.as_deref().map_or(Value::Null, |body| recorded_body(&route, body)),
        status: 0,
        error_code: None,
        request_id: request_id.clone(),
        at_ms,
    };

    let latency = shared.state().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let outcome = match (route, body.as_deref()) {
        // Too large or cut off: no handler can make sense of it.
        (_, None) => Some(body_unreadable()),
        (Route::Push(id), Some(body)) => push(&shared, id, token, body, &request_id).await,
        (Route::List, Some(_)) => Some(list(&shared, token, parts.uri.query(), &request_id)),
        (Route::Show(id), Some(_)) => Some(show(&shared, id, token, &request_id)),
        (Route::Import, Some(body)) => {
            let reply = import(&shared, token, body, &request_id);
            if let Some(id) = &reply.created {
                call.certificate_id = Some(id.clone());
            }
            Some(reply)
        }
        (Route::Unknown, Some(_)) => Some(api_not_found(&request_id)),
    };

    if let Some(reply) = &outcome {
        call.status = reply.status.as_u16();
        call.error_code = reply.error_code.clone();
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
    outcome.map(|reply| reply.into_response(&request_id))
}

/// The SCM endpoints, with the certificate id where the path has one.
enum Route<'a> {
    Push(&'a str),
    List,
    Show(&'a str),
    Import,
    Unknown,
}

impl<'a> Route<'a> {
    fn parse(method: &Method, path: &'a str) -> Self {
        let Some(rest) = path.strip_prefix("/v3/scm/certificates") else {
            return Route::Unknown;
        };
        if rest.is_empty() {
            return if method == Method::GET {
                Route::List
            } else {
                Route::Unknown
            };
        }
        let Some(rest) = rest.strip_prefix('/') else {
            return Route::Unknown;
        };
        let segments: Vec<&str> = rest.split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::POST, ["import"]) => Route::Import,
            (&Method::GET, [id]) if *id != "import" => Route::Show(id),
            (&Method::POST, [id, "push"]) => Route::Push(id),
            _ => Route::Unknown,
        }
    }

    fn certificate_id(&self) -> Option<&'a str> {
        match self {
            Route::Push(id) | Route::Show(id) => Some(id),
            _ => None,
        }
    }
}

/// JSON body as recorded in a [`Call`], with the import's private key masked.
fn recorded_body(route: &Route<'_>, body: &[u8]) -> Value {
    let mut value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let (Route::Import, Some(object)) = (route, value.as_object_mut())
        && let Some(key) = object.get_mut("private_key")
    {
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
    error_code: Option<String>,
    /// Certificate id created by an import.
    created: Option<String>,
}

impl SimReply {
    fn empty(status: StatusCode) -> Self {
        Self {
            status,
            body: Bytes::new(),
            content_type: None,
            retry_after: None,
            error_code: None,
            created: None,
        }
    }

    fn json(status: StatusCode, value: &Value) -> Self {
        Self {
            body: Bytes::from(value.to_string()),
            content_type: Some("application/json"),
            ..Self::empty(status)
        }
    }

    /// SCM service errors carry no request id in the body.
    fn scm_error(status: StatusCode, code: &str, msg: &str) -> Self {
        Self {
            error_code: Some(code.to_owned()),
            ..Self::json(status, &json!({"error_code": code, "error_msg": msg}))
        }
    }

    /// API gateway errors repeat the request id in the body.
    fn gateway_error(status: StatusCode, code: &str, msg: &str, request_id: &str) -> Self {
        Self {
            error_code: Some(code.to_owned()),
            ..Self::json(
                status,
                &json!({"error_code": code, "error_msg": msg, "request_id": request_id}),
            )
        }
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
            error_code,
            ..Self::empty(status)
        }
    }

    fn into_response(self, request_id: &str) -> Response<Body> {
        let mut response = Response::new(Full::new(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(request_id) {
            headers.insert("x-request-id", value);
        }
        if let Some(content_type) = self.content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn fault_status(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// IAM checks shared by all SCM endpoints; forbidden tokens count as authenticated.
fn authorize(shared: &Shared, token: Option<&str>, request_id: &str) -> Result<(), SimReply> {
    let state = shared.state();
    match token {
        Some(token) if state.forbidden_tokens.contains(token) => Err(SimReply::gateway_error(
            StatusCode::FORBIDDEN,
            "APIGW.0302",
            "The IAM user is not authorized to access the API.",
            request_id,
        )),
        Some(token) if state.tokens.contains(token) => Ok(()),
        _ => Err(SimReply::gateway_error(
            StatusCode::UNAUTHORIZED,
            "APIGW.0301",
            "Incorrect IAM authentication information: decrypt token fail",
            request_id,
        )),
    }
}

fn api_not_found(request_id: &str) -> SimReply {
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

/// `None` means drop the connection.
async fn push(shared: &Shared, id: &str, token: Option<&str>, body: &[u8], request_id: &str) -> Option<SimReply> {
    let fault = shared.state().take_fault(id);
    match fault {
        Some(FaultAction::Respond {
            status,
            body,
            retry_after,
        }) => return Some(SimReply::raw(fault_status(status), body, retry_after)),
        Some(FaultAction::Error {
            status,
            error_code,
            error_msg,
        }) => {
            let status = fault_status(status);
            return Some(if error_code.starts_with("APIGW.") {
                SimReply::gateway_error(status, &error_code, &error_msg, request_id)
            } else {
                SimReply::scm_error(status, &error_code, &error_msg)
            });
        }
        Some(FaultAction::Drop) => return None,
        Some(FaultAction::Delay { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Some(FaultAction::DropAfterPush) | None => {}
    }
    let reply = apply_push(shared, id, token, body, request_id);
    match fault {
        Some(FaultAction::DropAfterPush) => None,
        _ => reply,
    }
}

/// A push without faults: IAM checks, then the certificate, the body and the duplicate rule.
fn apply_push(shared: &Shared, id: &str, token: Option<&str>, body: &[u8], request_id: &str) -> Option<SimReply> {
    if let Err(reply) = authorize(shared, token, request_id) {
        return Some(reply);
    }
    let mut state = shared.state();
    if state.certificate(id).is_none() {
        return Some(certificate_not_found());
    }
    let unsupported = || {
        SimReply::scm_error(
            StatusCode::BAD_REQUEST,
            "SCM.0030",
            "Certificates cannot be pushed to this service.",
        )
    };
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return Some(unsupported());
    };
    let Some(service) = request
        .get("target_service")
        .and_then(Value::as_str)
        .filter(|s| SERVICES.contains(s))
    else {
        return Some(unsupported());
    };
    let project = request
        .get("target_project")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // CDN is a global service, so only regional targets need a project.
    if service != "CDN" && project.is_empty() {
        return Some(SimReply::bad_request("Incorrect request parameter."));
    }
    let key = (id.to_owned(), service.to_owned(), project.to_owned());
    if state.reject_duplicate_push && state.pushed.contains(&key) {
        return Some(SimReply::scm_error(
            StatusCode::BAD_REQUEST,
            "SCM.0028",
            "Push cert error",
        ));
    }
    state.pushed.insert(key);
    Some(SimReply::empty(StatusCode::NO_CONTENT))
}

fn list(shared: &Shared, token: Option<&str>, query: Option<&str>, request_id: &str) -> SimReply {
    if let Err(reply) = authorize(shared, token, request_id) {
        return reply;
    }
    let mut limit = 10_usize;
    let mut offset = 0_usize;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
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
    let certificates: Vec<Value> = state
        .certificates
        .iter()
        .skip(offset)
        .take(limit)
        .map(|c| c.summary())
        .collect();
    SimReply::json(
        StatusCode::OK,
        &json!({"certificates": certificates, "total_count": state.certificates.len()}),
    )
}

fn show(shared: &Shared, id: &str, token: Option<&str>, request_id: &str) -> SimReply {
    if let Err(reply) = authorize(shared, token, request_id) {
        return reply;
    }
    match shared.state().certificate(id) {
        Some(certificate) => SimReply::json(StatusCode::OK, &certificate.detail()),
        None => certificate_not_found(),
    }
}

#[derive(Deserialize)]
struct ImportRequest {
    name: String,
    certificate: String,
    private_key: String,
    #[serde(default)]
    #[allow(dead_code)] // Accepted for API fidelity; the simulator has no use for the chain.
    certificate_chain: Option<String>,
}

fn valid_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn import(shared: &Shared, token: Option<&str>, body: &[u8], request_id: &str) -> SimReply {
    if let Err(reply) = authorize(shared, token, request_id) {
        return reply;
    }
    // The parsed request (private key included) is dropped at the end of this function.
    let Ok(request) = serde_json::from_slice::<ImportRequest>(body) else {
        return SimReply::bad_request("Incorrect request parameter.");
    };
    if !valid_name(&request.name)
        || !request
            .certificate
            .trim_start()
            .starts_with("-----BEGIN CERTIFICATE-----")
        || !request.private_key.contains("PRIVATE KEY-----")
    {
        return SimReply::bad_request("Incorrect request parameter.");
    }
    let id = shared.state().import_certificate(&request.name);
    SimReply {
        created: Some(id.clone()),
        ..SimReply::json(StatusCode::OK, &json!({"certificate_id": id}))
    }
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

/// The unauthenticated `/sim/` control API.
fn admin(shared: &Shared, parts: &http::request::Parts, body: &[u8], request_id: &str) -> SimReply {
    let result = match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/sim/healthz") => Ok(SimReply::json(StatusCode::OK, &json!({"status": "ok"}))),
        (&Method::GET, "/sim/calls") => {
            let calls = shared.state().calls.clone();
            match serde_json::to_value(calls) {
                Ok(value) => Ok(SimReply::json(StatusCode::OK, &value)),
                Err(error) => Err(admin_error(StatusCode::INTERNAL_SERVER_ERROR, error)),
            }
        }
        (&Method::POST, "/sim/faults") => parse_admin::<Fault>(body).and_then(|fault| {
            let status = match &fault.action {
                FaultAction::Respond { status, .. } | FaultAction::Error { status, .. } => Some(*status),
                FaultAction::Drop | FaultAction::DropAfterPush | FaultAction::Delay { .. } => None,
            };
            if status.is_some_and(|s| StatusCode::from_u16(s).is_err()) {
                return Err(admin_error(StatusCode::BAD_REQUEST, "invalid status"));
            }
            if fault.times == 0 {
                return Err(admin_error(StatusCode::BAD_REQUEST, "times must be at least 1"));
            }
            shared.state().faults.push_back(fault);
            Ok(SimReply::empty(StatusCode::NO_CONTENT))
        }),
        (&Method::POST, "/sim/reset") => {
            shared.state().reset();
            Ok(SimReply::empty(StatusCode::NO_CONTENT))
        }
        (&Method::PUT, "/sim/tokens") => parse_admin::<Vec<String>>(body).map(|tokens| {
            shared.state().set_tokens(tokens);
            SimReply::empty(StatusCode::NO_CONTENT)
        }),
        (&Method::POST, "/sim/certificates") => parse_admin::<NewCertificate>(body).and_then(|new| {
            if new.id.is_empty() || new.id.contains('/') {
                return Err(admin_error(StatusCode::BAD_REQUEST, "invalid certificate id"));
            }
            shared.state().add_certificate(&new.id);
            Ok(SimReply::empty(StatusCode::NO_CONTENT))
        }),
        _ => Err(api_not_found(request_id)),
    };
    result.unwrap_or_else(|reply| reply)
}
