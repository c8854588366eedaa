//! The SCM certificate API: push, list, show, import and delete, with the IAM checks and error answers of the real
//! service.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::Value;

use super::record::{Caller, RequestId};
use super::reply::{SimReply, not_an_api};
use crate::signature;
use crate::wire::{ImportRequest, ImportResponse, ListResponse, PushRequest};
use crate::{FaultAction, Shared};

/// The push targets SCM supports; anything else, case included, is 400 `SCM.0030`.
const SERVICES: [&str; 3] = ["CDN", "WAF", "ELB"];

/// A fault's status; [`crate::Sim::inject`] takes any number, and one HTTP cannot carry is answered as 500.
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

/// Any other path or method on the SCM API, answered by the gateway.
pub(super) async fn not_found(Extension(request_id): Extension<RequestId>) -> SimReply {
    not_an_api(&request_id)
}

/// SCM's 404 for an id it does not hold (`SCM.0021`).
fn certificate_not_found() -> SimReply {
    SimReply::scm_error(StatusCode::NOT_FOUND, "SCM.0021", "certificate not exist")
}

/// `POST /v3/scm/certificates/{id}/push`: queued faults first, then the real checks.
pub(super) async fn push(
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
    let apply = || apply_push(&shared, &id, &caller, request.as_ref(), &request_id);
    with_fault(fault, &request_id, apply).await.about(&id)
}

/// Answers as the queued `fault` says, calling `apply` (the call handled for real) where the fault lets it land:
/// after a `Delay`, or before a `DropAfterPush` loses the answer.
async fn with_fault(fault: Option<FaultAction>, request_id: &RequestId, apply: impl FnOnce() -> SimReply) -> SimReply {
    match fault {
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
                SimReply::gateway_error(status, &error_code, &error_msg, request_id)
            } else {
                SimReply::scm_error(status, &error_code, &error_msg)
            }
        }
        Some(FaultAction::Drop) => SimReply::dropped(),
        Some(FaultAction::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            apply()
        }
        Some(FaultAction::GatewayTimeout { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            SimReply::gateway_error(
                StatusCode::GATEWAY_TIMEOUT,
                "APIGW.0201",
                "Backend timeout.",
                request_id,
            )
        }
        Some(FaultAction::DropAfterPush) => {
            // The call lands; only the answer is lost.
            let _ = apply();
            SimReply::dropped()
        }
        None => apply(),
    }
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

/// The `status` values the list accepts besides `ALL` (SCM's documented set).
const LIST_STATUSES: [&str; 12] = [
    "PAID",
    "ISSUED",
    "CHECKING",
    "CANCELCHECKING",
    "UNPASSED",
    "EXPIRED",
    "REVOKING",
    "REVOKED",
    "UPLOAD",
    "CHECKING_ORG",
    "ISSUING",
    "SUPPLEMENTCHECKING",
];

/// What a list request asks for, read from its query.
struct ListQuery {
    limit: usize,
    offset: usize,
    content: Option<String>,
    status: Option<String>,
    sort_key: Option<String>,
    sort_dir: Option<String>,
}

impl ListQuery {
    /// `None` for a value SCM would refuse with `SCM.0005`.
    fn parse(query: &str) -> Option<Self> {
        let mut parsed = Self {
            limit: 10,
            offset: 0,
            content: None,
            status: None,
            sort_key: None,
            sort_dir: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let text = || String::from_utf8_lossy(&signature::unescape(value, true)).into_owned();
            match name {
                "limit" => parsed.limit = value.parse().ok()?,
                "offset" => parsed.offset = value.parse().ok()?,
                "content" => parsed.content = Some(text()),
                "status" => parsed.status = Some(text()),
                "sort_key" => parsed.sort_key = Some(text()),
                "sort_dir" => parsed.sort_dir = Some(text()),
                _ => {}
            }
        }
        let status_ok = parsed
            .status
            .as_deref()
            .is_none_or(|s| s == "ALL" || LIST_STATUSES.contains(&s));
        let key_ok = parsed
            .sort_key
            .as_deref()
            .is_none_or(|k| matches!(k, "certExpiredTime" | "certStatus" | "certUpdateTime"));
        let dir_ok = parsed.sort_dir.as_deref().is_none_or(|d| matches!(d, "ASC" | "DESC"));
        ((1..=50).contains(&parsed.limit) && status_ok && key_ok && dir_ok).then_some(parsed)
    }
}

/// `GET /v3/scm/certificates` with `limit`/`offset` paging, the `status` filter and sorting; `content` is a keyword
/// unless the simulator plays an endpoint that predates it.
pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> SimReply {
    if let Err(reply) = authorize(&shared, &caller, &request_id) {
        return reply;
    }
    let Some(query) = ListQuery::parse(query.as_deref().unwrap_or_default()) else {
        return SimReply::bad_request("Incorrect request parameter.");
    };
    let state = shared.state();
    let content = query.content.as_deref().filter(|_| !state.list_ignores_content);
    // Creation order, which stands in for the update time: nothing here is ever updated.
    let mut matching: Vec<_> = state
        .certificates
        .iter()
        .filter(|c| content.is_none_or(|k| c.name.contains(k) || c.domain.contains(k)))
        .filter(|c| query.status.as_deref().is_none_or(|s| s == "ALL" || s == c.status))
        .collect();
    if query.sort_key.is_some() || query.sort_dir.is_some() {
        match query.sort_key.as_deref().unwrap_or("certUpdateTime") {
            // The `yyyy-MM-dd HH:mm:ss.S` form sorts like the time it names.
            "certExpiredTime" => matching.sort_by(|a, b| a.not_after.cmp(&b.not_after)),
            "certStatus" => matching.sort_by_key(|c| c.status),
            _ => {}
        }
        if query.sort_dir.as_deref().unwrap_or("DESC") == "DESC" {
            matching.reverse();
        }
    }
    let certificates: Vec<Value> = matching
        .iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|c| c.summary())
        .collect();
    let page = ListResponse {
        certificates,
        total_count: matching.len(),
    };
    SimReply::json(StatusCode::OK, &page)
}

/// `GET /v3/scm/certificates/{id}`.
pub(super) async fn show(
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

/// `DELETE /v3/scm/certificates/{id}`: queued delete faults first.
pub(super) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
) -> SimReply {
    let fault = shared.state().take_delete_fault(&id);
    let apply = || match authorize(&shared, &caller, &request_id) {
        Err(reply) => reply,
        Ok(()) if shared.state().remove_certificate(&id) => SimReply::empty(StatusCode::NO_CONTENT),
        Ok(()) => certificate_not_found(),
    };
    with_fault(fault, &request_id, apply).await.about(&id)
}

/// SCM's rule for certificate names: 3 to 63 of `[A-Za-z0-9_.-]`.
fn valid_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `POST /v3/scm/certificates/import`: queued import faults first (matched by the certificate's name).
pub(super) async fn import(
    State(shared): State<Arc<Shared>>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> SimReply {
    let name = serde_json::from_slice::<ImportRequest>(&body)
        .map(|r| r.name)
        .unwrap_or_default();
    let fault = shared.state().take_import_fault(&name);
    with_fault(fault, &request_id, || {
        apply_import(&shared, &caller, &request_id, &body)
    })
    .await
}

/// An import without faults: IAM checks, SCM's field rules, then the new certificate.
fn apply_import(shared: &Shared, caller: &Caller, request_id: &RequestId, body: &[u8]) -> SimReply {
    if let Err(reply) = authorize(shared, caller, request_id) {
        return reply;
    }
    // The parsed request (private key included) is dropped at the end of this function.
    let Ok(request) = serde_json::from_slice::<ImportRequest>(body) else {
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
    let id = shared.state().import_certificate(&request.name, &request.certificate);
    let created = ImportResponse { certificate_id: id };
    SimReply::json(StatusCode::OK, &created).about(&created.certificate_id)
}
