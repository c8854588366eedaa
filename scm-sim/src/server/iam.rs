//! IAM's `GET /v3/auth/domains` (`KeystoneListAuthDomains`), which Huawei's SDKs call, signed with the access key
//! itself and without a scope header, to learn the domain (account) id of an access key given without one.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::record::{Caller, RequestId};
use super::reply::SimReply;
use crate::{IAM_DOMAINS_PATH, IamAnswer, Shared};

/// `GET /v3/auth/domains`: the caller's domain, or what [`crate::Sim::set_iam_answer`] asks for.
pub(super) async fn domains(
    State(shared): State<Arc<Shared>>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
) -> SimReply {
    let unauthorized = |reason: &str| {
        SimReply::gateway_error(
            StatusCode::UNAUTHORIZED,
            "APIGW.0301",
            &format!("Incorrect IAM authentication information: {reason}"),
            &request_id,
        )
    };
    // IAM needs no scope: the SDK asks exactly because it has none.
    let access_key = match caller {
        Caller::Signed(Ok(access_key)) | Caller::Unscoped(access_key) => access_key,
        Caller::Signed(Err(reason)) => return unauthorized(&reason),
        // Real IAM also takes a token; nothing here needs it, so the simulator keeps to what it models.
        Caller::Token(_) => return unauthorized("scm-sim's IAM answers AK/SK-signed requests only"),
    };
    let (answer, domain_id) = {
        let state = shared.state();
        (state.iam_answer, state.domain_of(&access_key))
    };
    let base = format!("https://iam.sim.invalid{IAM_DOMAINS_PATH}");
    match answer {
        IamAnswer::Domains => {
            let domain = json!({
                "id": domain_id,
                "name": format!("sim-account-{}", &domain_id[..domain_id.len().min(8)]),
                "enabled": true,
                "description": "",
                "links": {"self": format!("https://iam.sim.invalid/v3/domains/{domain_id}")},
            });
            SimReply::json(StatusCode::OK, &json!({"domains": [domain], "links": {"self": base}}))
        }
        IamAnswer::Empty => SimReply::json(StatusCode::OK, &json!({"domains": [], "links": {"self": base}})),
        IamAnswer::Unauthorized => unauthorized("the access key is not accepted (scm-sim IAM switch)"),
        IamAnswer::Forbidden => SimReply::json(
            StatusCode::FORBIDDEN,
            &json!({"error": {
                "code": 403,
                "message": "You are not authorized to perform the requested action.",
                "title": "Forbidden",
            }}),
        )
        .with_error_code("403"),
    }
}
