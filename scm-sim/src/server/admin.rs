//! The `/sim/` admin API: unauthenticated and unrecorded controls for scripts driving the `scm-sim` binary.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::record::{RequestId, new_request_id, set_request_id};
use super::reply::{SimReply, not_an_api};
use crate::state::QueuedDeployFailure;
use crate::{Fault, FaultAction, Shared};

/// Body of `POST /sim/certificates`.
#[derive(Deserialize)]
struct NewCertificate {
    id: String,
}

/// Body of `PUT /sim/list-mode`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListMode {
    ignore_content: bool,
}

/// Body of `POST /sim/deploy-failures`, the arguments of [`crate::Sim::fail_deploy`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDeployFailure {
    resource: String,
    failure_info: String,
    #[serde(default = "one")]
    times: u32,
}

fn one() -> u32 {
    1
}

/// Body of `POST /sim/failing-regions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailingRegion {
    region: String,
}

/// Body of `POST /sim/unreadable-regions` and `DELETE /sim/unreadable-regions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnreadableRegion {
    region: String,
}

/// Body of `PUT /sim/resource-id-mode`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceIdMode {
    with_name: bool,
}

/// Body of `PUT /sim/iam`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IamMode {
    answer: crate::IamAnswer,
}

/// Body of `POST /sim/in-use`, the arguments of [`crate::Sim::mark_in_use`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InUse {
    certificate_id: String,
    service: String,
    region: String,
    resource_id: String,
}

/// Admin errors look like SCM's, under a `SIM.` code no real service uses.
fn admin_error(status: StatusCode, msg: impl std::fmt::Display) -> SimReply {
    SimReply::scm_error(status, "SIM.0001", &msg.to_string())
}

/// A JSON admin body, or a 400 that says what is wrong with it.
fn parse_admin<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, SimReply> {
    serde_json::from_slice(body).map_err(|error| admin_error(StatusCode::BAD_REQUEST, format!("invalid body: {error}")))
}

/// `GET /sim/healthz`.
pub(super) async fn healthz() -> SimReply {
    SimReply::json(StatusCode::OK, &json!({"status": "ok"}))
}

/// Any other path under `/sim/`; admin requests are not recorded as calls.
pub(super) async fn not_found() -> Response {
    let request_id = RequestId(new_request_id());
    let mut response = not_an_api(&request_id).into_response();
    set_request_id(&mut response, &request_id.0);
    response
}

/// `GET /sim/calls`.
pub(super) async fn calls(State(shared): State<Arc<Shared>>) -> SimReply {
    let calls = shared.state().calls.clone();
    match serde_json::to_value(calls) {
        Ok(value) => SimReply::json(StatusCode::OK, &value),
        Err(error) => admin_error(StatusCode::INTERNAL_SERVER_ERROR, error),
    }
}

/// `POST /sim/faults`: a [`Fault`] as JSON.
pub(super) async fn faults(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    let fault = match parse_admin::<Fault>(&body) {
        Ok(fault) => fault,
        Err(reply) => return reply,
    };
    let status = match &fault.action {
        FaultAction::Respond { status, .. } | FaultAction::Error { status, .. } => Some(*status),
        FaultAction::Drop
        | FaultAction::DropAfterPush
        | FaultAction::Delay { .. }
        | FaultAction::GatewayTimeout { .. }
        | FaultAction::LandThenGatewayTimeout { .. } => None,
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
pub(super) async fn reset(State(shared): State<Arc<Shared>>) -> SimReply {
    shared.state().reset();
    SimReply::empty(StatusCode::NO_CONTENT)
}

/// `PUT /sim/tokens`: a JSON array of valid tokens.
pub(super) async fn tokens(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<Vec<String>>(&body) {
        Ok(tokens) => {
            shared.state().set_tokens(tokens);
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}

/// `PUT /sim/access-keys`: a JSON object from access key id to secret key.
pub(super) async fn access_keys(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<std::collections::BTreeMap<String, String>>(&body) {
        Ok(keys) => {
            shared.state().set_access_keys(keys.into_iter().collect());
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}

/// `POST /sim/certificates`: `{"id": "..."}`.
pub(super) async fn certificates(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
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

/// `PUT /sim/list-mode`: `{"ignore_content": true}` makes the list ignore `content`, like an older endpoint.
pub(super) async fn list_mode(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<ListMode>(&body) {
        Ok(mode) => {
            shared.state().list_ignores_content = mode.ignore_content;
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}

/// A JSON answer of any serialisable admin value.
fn admin_json(value: &impl serde::Serialize) -> SimReply {
    match serde_json::to_value(value) {
        Ok(value) => SimReply::json(StatusCode::OK, &value),
        Err(error) => admin_error(StatusCode::INTERNAL_SERVER_ERROR, error),
    }
}

/// `GET /sim/deployments`: the current bindings, as [`crate::Sim::deployments`].
pub(super) async fn deployments(State(shared): State<Arc<Shared>>) -> SimReply {
    let deployments = shared.state().deployments();
    admin_json(&deployments)
}

/// `GET /sim/copies`: what batch pushes created, as [`crate::Sim::copies`].
pub(super) async fn copies(State(shared): State<Arc<Shared>>) -> SimReply {
    let copies = shared.state().copies.clone();
    admin_json(&copies)
}

/// `POST /sim/deploy-failures`: `{"resource": "...", "failure_info": "ELB.8902", "times": 1}`.
pub(super) async fn deploy_failures(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<NewDeployFailure>(&body) {
        Ok(failure) if failure.times == 0 => admin_error(StatusCode::BAD_REQUEST, "times must be at least 1"),
        Ok(failure) => {
            shared.state().deploy_failures.push_back(QueuedDeployFailure {
                resource: failure.resource,
                failure_info: failure.failure_info,
                times: failure.times,
            });
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}

/// `POST /sim/failing-regions`: `{"region": "..."}`.
pub(super) async fn failing_regions(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<FailingRegion>(&body) {
        Ok(failing) => {
            shared.state().failing_regions.insert(failing.region);
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}

/// `POST /sim/in-use`: `{"certificate_id": "...", "service": "ELB", "region": "...", "resource_id": "..."}`.
pub(super) async fn in_use(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<InUse>(&body) {
        Ok(used) => {
            shared
                .state()
                .bind(&used.certificate_id, &used.service, &used.region, &used.resource_id);
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}

/// `POST /sim/unreadable-regions`: `{"region": "..."}`, as [`crate::Sim::fail_region_read`].
pub(super) async fn fail_region_read(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<UnreadableRegion>(&body) {
        Ok(unreadable) => {
            shared.state().unreadable_regions.insert(unreadable.region);
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}

/// `DELETE /sim/unreadable-regions`: `{"region": "..."}`, as [`crate::Sim::heal_region_read`].
pub(super) async fn heal_region_read(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<UnreadableRegion>(&body) {
        Ok(readable) => {
            shared.state().unreadable_regions.remove(&readable.region);
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}

/// `PUT /sim/resource-id-mode`: `{"with_name": true}`, as [`crate::Sim::set_resource_id_with_name`].
pub(super) async fn resource_id_mode(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<ResourceIdMode>(&body) {
        Ok(mode) => {
            shared.state().resource_id_with_name = mode.with_name;
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}

/// `PUT /sim/domains`: a JSON object from access key id to the domain id IAM reports for it, as
/// [`crate::Sim::set_domain`].
pub(super) async fn domains(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<std::collections::BTreeMap<String, String>>(&body) {
        Ok(domains) => {
            shared.state().domains.extend(domains);
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}

/// `PUT /sim/iam`: `{"answer": "domains" | "unauthorized" | "forbidden" | "empty"}`, as
/// [`crate::Sim::set_iam_answer`].
pub(super) async fn iam(State(shared): State<Arc<Shared>>, body: Bytes) -> SimReply {
    match parse_admin::<IamMode>(&body) {
        Ok(mode) => {
            shared.state().iam_answer = mode.answer;
            SimReply::empty(StatusCode::NO_CONTENT)
        }
        Err(reply) => reply,
    }
}
