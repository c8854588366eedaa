//! The middleware in front of the SCM API, standing in for the API gateway: it gives each request an id, reads the
//! body within the limit, checks who the caller is, waits the configured latency and records the [`Call`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::reply::{DropConnection, Recorded, body_unreadable};
use crate::signature::{self, Authorization, Received};
use crate::{Call, Shared};

/// Larger bodies are refused; real imports (certificate + chain + key) are a few tens of KiB.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Request extension: the id this request is answered with (`X-Request-Id`, and in gateway error bodies).
#[derive(Clone)]
pub(super) struct RequestId(pub(super) String);

/// Request extension: who the request claims to come from, with signatures already checked.
#[derive(Clone)]
pub(super) enum Caller {
    /// `X-Auth-Token`, if sent.
    Token(Option<String>),
    /// An `SDK-HMAC-SHA256` signed request with a scope header (`X-Domain-Id` or `X-Project-Id`): the verified
    /// access key id, or why the signature was refused.
    Signed(Result<String, String>),
    /// A correctly signed request with neither scope header, by this access key id: enough for IAM, not for SCM.
    Unscoped(String),
}

/// Records every SCM API request as a [`Call`], after reading its body within the limit and waiting the latency.
pub(super) async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let at_ms = u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let request_id = new_request_id();
    let (mut parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await;
    let authorization = header(&parts.headers, "authorization").and_then(signature::parse_authorization);
    let caller = identify(&shared, &parts, authorization.as_ref(), body.as_deref().ok());
    let mut call = arrived(&parts, authorization.as_ref(), body.as_deref().ok(), &request_id, at_ms);

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

    answered(&mut call, &response);
    tracing::info!(
        method = %call.method,
        path = %call.path,
        status = call.status,
        error_code = call.error_code.as_deref().unwrap_or("-"),
        request_id = %call.request_id,
        "scm-sim request"
    );
    let mut state = shared.state();
    // The gateway's own clock, as its answers tell it (hyper would write the real time).
    let date = gateway_now(&state).strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
    state.calls.push(call);
    drop(state);
    if let Ok(value) = axum::http::HeaderValue::from_str(&date) {
        response.headers_mut().insert(axum::http::header::DATE, value);
    }
    set_request_id(&mut response, &request_id);
    response
}

/// The simulated gateway's clock: the real one moved by the configured offset.
fn gateway_now(state: &crate::state::State) -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    now.checked_add(state.clock_offset).unwrap_or(now)
}

/// A header's value, if present and valid UTF-8.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Who the request claims to come from: a signed request is judged by its signature, which covers the body, so only
/// once the body could be read; anything else by its token.
fn identify(shared: &Shared, parts: &Parts, authorization: Option<&Authorization<'_>>, body: Option<&[u8]>) -> Caller {
    match (authorization, body) {
        (Some(authorization), Some(body)) => {
            let received = Received {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query(),
                headers: &parts.headers,
                body,
            };
            match check_signature(shared, &received, authorization) {
                Ok(access_key) if !has_scope(&parts.headers) => Caller::Unscoped(access_key),
                verdict => Caller::Signed(verdict),
            }
        }
        _ => Caller::Token(header(&parts.headers, "x-auth-token").map(str::to_owned)),
    }
}

/// Whether the request names the IAM scope it acts in: a non-empty `X-Domain-Id` or `X-Project-Id`, signed or not
/// (Terraform's client sends them unsigned, and that works).
fn has_scope(headers: &HeaderMap) -> bool {
    ["x-domain-id", "x-project-id"]
        .into_iter()
        .any(|name| header(headers, name).is_some_and(|v| !v.trim().is_empty()))
}

/// The record of a request as it arrived, with only hashes of its credentials; [`answered`] completes it.
fn arrived(
    parts: &Parts,
    authorization: Option<&Authorization<'_>>,
    body: Option<&[u8]>,
    request_id: &str,
    at_ms: u64,
) -> Call {
    let sha256_hex = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
    Call {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        certificate_id: None,
        content_type: header(&parts.headers, CONTENT_TYPE.as_str()).map(str::to_owned),
        token_sha256: parts.headers.get("x-auth-token").map(|v| sha256_hex(v.as_bytes())),
        access_key_sha256: authorization.map(|a| sha256_hex(a.access_key.as_bytes())),
        signed_headers: authorization.map(|a| a.signed_headers.to_owned()),
        domain_id: header(&parts.headers, "x-domain-id").map(str::to_owned),
        project_id: header(&parts.headers, "x-project-id").map(str::to_owned),
        body: body.map_or(Value::Null, recorded_body),
        status: 0,
        error_code: None,
        request_id: request_id.to_owned(),
        at_ms,
    }
}

/// Completes a record with what the handler answered; a dropped connection keeps status 0.
fn answered(call: &mut Call, response: &Response) {
    if let Some(recorded) = response.extensions().get::<Recorded>() {
        call.error_code.clone_from(&recorded.error_code);
        call.certificate_id.clone_from(&recorded.certificate_id);
    }
    if response.extensions().get::<DropConnection>().is_none() {
        call.status = response.status().as_u16();
    }
}

/// The gateway's AK/SK check: a known access key, not locked, with a valid signature; every check is counted.
fn check_signature(
    shared: &Shared,
    received: &Received<'_>,
    authorization: &Authorization<'_>,
) -> Result<String, String> {
    let access_key = authorization.access_key;
    let mut state = shared.state();
    let Some(secret_key) = state.access_keys.get(access_key).cloned() else {
        return Err("Get secretKey failed: ak not exist".to_owned());
    };
    if state.access_key_locked(access_key) {
        return Err("AK access failed to reach the limit,forbidden".to_owned());
    }
    let now = gateway_now(&state);
    let verdict = signature::verify(received, authorization, &secret_key, now);
    state.signature_checked(access_key, verdict.is_ok());
    verdict.map(|()| access_key.to_owned()).map_err(str::to_owned)
}

/// 32 hex digits, the shape of the gateway's request ids.
pub(super) fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Sets `X-Request-Id`, which every answer carries, errors included.
pub(super) fn set_request_id(response: &mut Response, request_id: &str) {
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
