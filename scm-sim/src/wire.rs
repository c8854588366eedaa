//! SCM request and response bodies as the API documents them, written apart from the operator's own types on purpose:
//! the simulator decodes what the operator sends from the outside, so a format mistake on the operator's side cannot
//! be mirrored here and pass the tests.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Body of `POST /v3/scm/certificates/{id}/push`.
#[derive(Debug)]
pub(crate) struct PushRequest {
    /// `CDN`, `WAF` or `ELB`.
    pub target_service: Option<String>,
    /// Project (region) of a regional service; CDN, a global service, needs none.
    pub target_project: Option<String>,
}

impl PushRequest {
    /// Reads the body leniently, `None` unless it is a JSON object: SCM answers a missing target service and a
    /// missing project with different error codes, so a field that is not a string reads as absent instead of
    /// failing the whole body.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
            return None;
        };
        let field = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            target_service: field("target_service"),
            target_project: field("target_project"),
        })
    }
}

/// Body of `POST /v3/scm/certificates/import`.
#[derive(Deserialize)]
pub(crate) struct ImportRequest {
    /// 3 to 63 of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// The leaf certificate, PEM.
    pub certificate: String,
    /// The intermediates, PEM; may be omitted.
    #[serde(default)]
    pub certificate_chain: Option<String>,
    /// The unencrypted private key, PEM.
    pub private_key: String,
}

impl fmt::Debug for ImportRequest {
    // Hand-written: the private key must never reach a log through Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportRequest")
            .field("name", &self.name)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Body of the 200 answer to an import.
#[derive(Debug, Serialize)]
pub(crate) struct ImportResponse {
    /// ID of the new certificate.
    pub certificate_id: String,
}

/// Body of the 200 answer to `GET /v3/scm/certificates`.
#[derive(Debug, Serialize)]
pub(crate) struct ListResponse {
    /// One page of certificates, each as `state::Certificate::summary` renders it.
    pub certificates: Vec<Value>,
    /// Certificates matching the query across all pages.
    pub total_count: usize,
}

/// Body of every error answer, from SCM itself or from the API gateway in front of it.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody {
    /// E.g. `SCM.0021`, or `APIGW.0301` from the gateway.
    pub error_code: String,
    /// Human-readable text.
    pub error_msg: String,
    /// Only the gateway repeats the request id in its error bodies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}
