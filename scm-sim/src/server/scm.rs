//! The SCM certificate API: push, batch push, deploy, deployed resources, list, show, import and delete, with the
//! IAM checks and error answers of the real service.

use std::collections::BTreeMap;
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
use crate::wire::{
    BatchPushRequest, BatchPushResponse, BatchPushResult, CertificateResources, DeployFailure, DeployRequest,
    DeployResource, DeployResponse, DeployedResourcesRequest, DeployedResourcesResponse, ImportRequest, ImportResponse,
    ListResponse, PushRequest, RegionResources, ResourceDetail, ServiceResources, object_and_service,
};
use crate::{Copy, FaultAction, Shared};

/// The push targets SCM supports; anything else, case included, is 400 `SCM.0030`.
const SERVICES: [&str; 3] = ["CDN", "WAF", "ELB"];

/// A fault's status; [`crate::Sim::inject`] takes any number, and one HTTP cannot carry is answered as 500.
fn fault_status(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// IAM checks shared by all SCM endpoints; forbidden tokens count as authenticated, and an AK/SK request needs a
/// scope header.
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
        // See the crate docs: the simulator's choice, as the gateway's answer is not documented.
        Caller::Unscoped(_) => Err(SimReply::gateway_error(
            StatusCode::UNAUTHORIZED,
            "APIGW.0301",
            crate::UNSCOPED_MESSAGE,
            request_id,
        )),
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

/// SCM's 400 for a body that names no service it can push or deploy to (`SCM.0030`).
fn unsupported_service() -> SimReply {
    SimReply::scm_error(
        StatusCode::BAD_REQUEST,
        "SCM.0030",
        "Certificates cannot be pushed to this service.",
    )
}

/// SCM's 400 for any other field it refuses (`SCM.0005`).
fn incorrect_parameter() -> SimReply {
    SimReply::bad_request("Incorrect request parameter.")
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
/// after a `Delay`, or before a `DropAfterPush` loses the answer or a `LandThenGatewayTimeout` answers 504.
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
            gateway_timeout(request_id)
        }
        Some(FaultAction::LandThenGatewayTimeout { ms }) => {
            // The call lands (and is billed); the gateway gives up on the backend's answer.
            let _ = apply();
            tokio::time::sleep(Duration::from_millis(ms)).await;
            gateway_timeout(request_id)
        }
        Some(FaultAction::DropAfterPush) => {
            // The call lands; only the answer is lost.
            let _ = apply();
            SimReply::dropped()
        }
        None => apply(),
    }
}

/// The gateway's 504 when the backend did not answer in time (`APIGW.0201`, "Backend timeout.").
fn gateway_timeout(request_id: &RequestId) -> SimReply {
    SimReply::gateway_error(
        StatusCode::GATEWAY_TIMEOUT,
        "APIGW.0201",
        "Backend timeout.",
        request_id,
    )
}

/// The message of a region [`crate::Sim::fail_region`] fails for now.
pub const REGION_BUSY: &str = "System busy, please try again later.";

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
    let Some(request) = request else {
        return unsupported_service();
    };
    let Some(service) = request.target_service.as_deref().filter(|s| SERVICES.contains(s)) else {
        return unsupported_service();
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

/// Whether `text` has between `min` and `max` characters.
fn chars_within(text: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&text.chars().count())
}

/// Whether `project` looks like a region id (`cn-north-4`, `ap-southeast-1`, `eu-west-101`): two lower-case letters,
/// one or more lower-case words, and a number, joined by `-`.
fn region_shaped(project: &str) -> bool {
    let parts: Vec<&str> = project.split('-').collect();
    let lower = |part: &&str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase());
    match parts.as_slice() {
        [area, words @ .., number] if !words.is_empty() => {
            area.len() == 2
                && lower(area)
                && words.iter().all(lower)
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// `POST /v3/scm/certificates/{id}/batch-push`: queued batch-push faults first, then the real checks.
pub(super) async fn batch_push(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> SimReply {
    let fault = shared.state().take_batch_push_fault(&id);
    let apply = || apply_batch_push(&shared, &id, &caller, &body, &request_id);
    with_fault(fault, &request_id, apply).await.about(&id)
}

/// A batch push without faults: the checks of a single push for the whole request, then one result per region,
/// in request order. A region fails inside the 200 when it is not a region SCM knows (or a test made it fail), and
/// when the simulator rejects duplicate pushes and that (certificate, service, region) was already pushed, by
/// either kind of push.
fn apply_batch_push(shared: &Shared, id: &str, caller: &Caller, body: &[u8], request_id: &RequestId) -> SimReply {
    if let Err(reply) = authorize(shared, caller, request_id) {
        return reply;
    }
    let mut state = shared.state();
    if state.certificate(id).is_none() {
        return certificate_not_found();
    }
    let Some((value, Some(service))) = object_and_service(body, "target_service") else {
        return unsupported_service();
    };
    if !SERVICES.contains(&service.as_str()) {
        return unsupported_service();
    }
    let Ok(request) = serde_json::from_value::<BatchPushRequest>(value) else {
        return incorrect_parameter();
    };
    // The same value as the one checked above, now that the body parsed.
    let service = &request.target_service;
    let projects = &request.target_projects;
    if !(1..=10).contains(&projects.len()) || !projects.iter().all(|p| chars_within(p, 1, 32)) {
        return incorrect_parameter();
    }
    let failed = |project: &str, message: &str| BatchPushResult {
        project_name: project.to_owned(),
        cert_id: String::new(),
        message: message.to_owned(),
    };
    let mut results = Vec::with_capacity(projects.len());
    for project in projects {
        if !region_shaped(project) {
            results.push(failed(project, "Invalid region id."));
            continue;
        }
        if state.failing_regions.contains(project) {
            // [UNVERIFIED] the text SCM gives a region it could not push to for now.
            results.push(failed(project, REGION_BUSY));
            continue;
        }
        let key = (id.to_owned(), service.to_owned(), project.clone());
        if state.reject_duplicate_push && state.pushed.contains(&key) {
            results.push(failed(project, "Push cert error"));
            continue;
        }
        state.pushed.insert(key);
        let copy_id = state.new_copy_id();
        state.copies.push(Copy {
            certificate_id: id.to_owned(),
            service: service.to_owned(),
            project: project.clone(),
            copy_id: copy_id.clone(),
        });
        results.push(BatchPushResult {
            project_name: project.clone(),
            cert_id: copy_id,
            message: "success".to_owned(),
        });
    }
    SimReply::json(StatusCode::OK, &BatchPushResponse { results })
}

/// `POST /v3/scm/certificates/{id}/deploy`: queued deploy faults first, then the real checks.
pub(super) async fn deploy(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> SimReply {
    let fault = shared.state().take_deploy_fault(&id);
    let apply = || apply_deploy(&shared, &id, &caller, &body, &request_id);
    with_fault(fault, &request_id, apply).await.about(&id)
}

/// A field that counts as sent: present and not empty (Terraform and the SDKs leave empty ones out).
fn sent(field: Option<&String>) -> Option<&str> {
    field.map(String::as_str).filter(|v| !v.is_empty())
}

/// Whether `resource` is fit for a deploy to `service`: the field that names it (`id` for ELB and WAF,
/// `domain_name` for CDN), WAF's `type` and `enterprise_project_id` (mandatory for WAF in Huawei's API reference;
/// `"0"` is the default enterprise project), and no field that belongs to another service; at most 63 characters
/// each.
fn valid_resource(service: &str, resource: &DeployResource) -> bool {
    let fields = [
        &resource.id,
        &resource.kind,
        &resource.domain_name,
        &resource.enterprise_project_id,
    ];
    if !fields
        .iter()
        .all(|f| f.as_deref().is_none_or(|v| chars_within(v, 0, 63)))
    {
        return false;
    }
    let id = sent(resource.id.as_ref());
    let kind = sent(resource.kind.as_ref());
    let domain = sent(resource.domain_name.as_ref());
    let enterprise_project = sent(resource.enterprise_project_id.as_ref());
    match service {
        "CDN" => domain.is_some() && kind.is_none() && enterprise_project.is_none(),
        "WAF" => {
            id.is_some()
                && matches!(kind, Some("premium" | "cloud"))
                && enterprise_project.is_some()
                && domain.is_none()
        }
        _ => id.is_some() && kind.is_none() && domain.is_none() && enterprise_project.is_none(),
    }
}

/// Whether a certificate for `certificate_domain` covers `domain`: the same name, or one label under a wildcard.
fn covers(certificate_domain: &str, domain: &str) -> bool {
    let (certificate_domain, domain) = (certificate_domain.to_ascii_lowercase(), domain.to_ascii_lowercase());
    if certificate_domain.is_empty() {
        return false;
    }
    match certificate_domain.strip_prefix("*.") {
        Some(parent) => domain
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => certificate_domain == domain,
    }
}

/// A deploy without faults: IAM, the certificate and the whole body are checked first (any refusal is a 4xx and
/// deploys nothing); then each resource succeeds or fails on its own inside the 200. A success binds the resource to
/// this certificate (moving it from any other) and is billed.
fn apply_deploy(shared: &Shared, id: &str, caller: &Caller, body: &[u8], request_id: &RequestId) -> SimReply {
    if let Err(reply) = authorize(shared, caller, request_id) {
        return reply;
    }
    let mut state = shared.state();
    let Some(certificate_domain) = state.certificate(id).map(|c| c.domain.clone()) else {
        return certificate_not_found();
    };
    let Some((value, Some(service))) = object_and_service(body, "service_name") else {
        return unsupported_service();
    };
    if !SERVICES.contains(&service.as_str()) {
        return unsupported_service();
    }
    let Ok(request) = serde_json::from_value::<DeployRequest>(value) else {
        return incorrect_parameter();
    };
    let service = request.service_name.as_str();
    let project = request.project_name.as_deref();
    // ELB and WAF are regional: their resources live in a project.
    let project_ok = match project {
        Some(project) => chars_within(project, 1, 255),
        None => service == "CDN",
    };
    if !project_ok
        || !(1..=20).contains(&request.resources.len())
        || !request.resources.iter().all(|r| valid_resource(service, r))
    {
        return incorrect_parameter();
    }
    let mut failure_list = Vec::new();
    for resource in &request.resources {
        let name = if service == "CDN" {
            resource.domain_name.clone()
        } else {
            resource.id.clone()
        }
        .unwrap_or_default();
        let failure = state.take_deploy_failure(&name).or_else(|| {
            // CDN refuses a certificate that does not cover the domain. [UNVERIFIED] which code it reports.
            (service == "CDN" && !covers(&certificate_domain, &name)).then(|| "CDN.0005".to_owned())
        });
        if let Some(failure_info) = failure {
            failure_list.push(DeployFailure {
                resource: name,
                failure_info,
            });
            continue;
        }
        state.bind(id, service, project.unwrap_or_default(), &name);
        *state.deploy_counts.entry((id.to_owned(), name)).or_insert(0) += 1;
    }
    SimReply::json(StatusCode::OK, &DeployResponse { failure_list })
}

/// `POST /v3/scm/deployed-resources`: queued faults first (matched by any certificate asked about).
pub(super) async fn deployed_resources(
    State(shared): State<Arc<Shared>>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> SimReply {
    let asked = serde_json::from_slice::<DeployedResourcesRequest>(&body)
        .map(|r| r.certificate_ids)
        .unwrap_or_default();
    let fault = shared.state().take_deployed_resources_fault(&asked);
    with_fault(fault, &request_id, || {
        apply_deployed_resources(&shared, &caller, &body, &request_id)
    })
    .await
}

/// A deployed-resources query without faults: for each certificate asked about, in request order, its bindings
/// in the services asked about, grouped by service (CDN, WAF, ELB) and region (`global` for CDN). A certificate
/// deployed nowhere, or unknown, has `total_num` 0 and no `deployed_resources`. A region SCM cannot read is listed
/// for every regional service asked about, with `is_error` and no resources, and its bindings are not counted.
fn apply_deployed_resources(shared: &Shared, caller: &Caller, body: &[u8], request_id: &RequestId) -> SimReply {
    if let Err(reply) = authorize(shared, caller, request_id) {
        return reply;
    }
    let Ok(request) = serde_json::from_slice::<DeployedResourcesRequest>(body) else {
        return incorrect_parameter();
    };
    let ids = &request.certificate_ids;
    let names = &request.service_names;
    let name_ok = |n: &String| n == "ALL" || SERVICES.contains(&n.as_str());
    if !(1..=50).contains(&ids.len())
        || !ids.iter().all(|id| id.chars().count() == 16)
        || !(1..=50).contains(&names.len())
        || !names.iter().all(name_ok)
    {
        return incorrect_parameter();
    }
    let all = names.iter().any(|n| n == "ALL");
    let services: Vec<&str> = SERVICES
        .into_iter()
        .filter(|s| all || names.iter().any(|n| n == s))
        .collect();
    let state = shared.state();
    let results = ids
        .iter()
        .map(|id| {
            let deployed_resources: Vec<ServiceResources> = services
                .iter()
                .filter_map(|service| service_resources(&state, id, service))
                .collect();
            CertificateResources {
                certificate_id: id.clone(),
                total_num: deployed_resources.iter().map(|d| d.resource_num).sum(),
                deployed_resources,
            }
        })
        .collect();
    SimReply::json(StatusCode::OK, &DeployedResourcesResponse { results })
}

/// What deployed-resources reports about certificate `id` in `service`, by region: `None` when nothing is bound
/// there and no region of a regional service is unreadable.
fn service_resources(state: &crate::state::State, id: &str, service: &str) -> Option<ServiceResources> {
    let global = service == "CDN";
    let region_entry = |region: &str, is_error: bool| RegionResources {
        region_id: region.to_owned(),
        is_error,
        resources: Vec::new(),
    };
    let mut regions: BTreeMap<&str, RegionResources> = BTreeMap::new();
    if !global {
        for region in &state.unreadable_regions {
            regions.insert(region, region_entry(region, true));
        }
    }
    for ((bound_service, project, resource), certificate) in &state.bindings {
        if certificate != id || bound_service != service {
            continue;
        }
        let region = if global { "global" } else { project.as_str() };
        let entry = regions.entry(region).or_insert_with(|| region_entry(region, false));
        // An unreadable region hides what it holds.
        if entry.is_error {
            continue;
        }
        // The simulator knows no names; a resource is named by its id.
        let resource_id = if state.resource_id_with_name {
            format!("{resource}:{resource}")
        } else {
            resource.clone()
        };
        entry.resources.push(ResourceDetail {
            resource_id,
            resource_name: resource.clone(),
        });
    }
    let resource_num = regions.values().map(|r| r.resources.len()).sum();
    (!regions.is_empty()).then(|| ServiceResources {
        service: service.to_owned(),
        resource_num,
        // [UNVERIFIED] the values; SCM documents only "global service or region-level service".
        resource_location: if global { "global" } else { "region" }.to_owned(),
        region_resources: regions.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_ids_are_told_from_other_names() {
        for region in [
            "cn-north-4",
            "ap-southeast-1",
            "eu-west-101",
            "my-kualalumpur-1",
            "la-south-2",
        ] {
            assert!(region_shaped(region), "{region}");
        }
        for other in [
            "",
            "cn",
            "cn-4",
            "north-4",
            "cn-north",
            "cn-north-",
            "CN-north-4",
            "cn-north-4a",
            "cn-north-4_sub",
            "c-north-4",
            "cn--4",
        ] {
            assert!(!region_shaped(other), "{other}");
        }
    }

    #[test]
    fn a_certificate_covers_its_domain_and_one_label_under_its_wildcard() {
        assert!(covers("www.example.com", "www.example.com"));
        assert!(covers("www.example.com", "WWW.Example.com"));
        assert!(covers("*.example.com", "api.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", ".example.com"));
        assert!(!covers("www.example.com", "api.example.com"));
        assert!(!covers("", ""), "an unreadable certificate covers nothing");
    }
}
