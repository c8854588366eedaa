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

/// Reads a body as a JSON object and the service it names under `service_field`, both leniently: like push, SCM
/// answers a body that names no supported service with `SCM.0030` before it looks at anything else.
pub(crate) fn object_and_service(body: &[u8], service_field: &str) -> Option<(Value, Option<String>)> {
    let value = serde_json::from_slice::<Value>(body).ok()?;
    let service = value
        .as_object()?
        .get(service_field)
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some((value, service))
}

/// Body of `POST /v3/scm/certificates/{id}/batch-push`; fields of the wrong type fail the whole body.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchPushRequest {
    /// 1 to 10 regions, each 1 to 32 characters.
    pub target_projects: Vec<String>,
    /// `CDN`, `WAF` or `ELB`.
    pub target_service: String,
}

/// One region of the 200 answer to a batch push.
#[derive(Debug, Serialize)]
pub(crate) struct BatchPushResult {
    /// The region as requested.
    pub project_name: String,
    /// Id of the certificate created in the target service; empty when that region failed.
    pub cert_id: String,
    /// `success`, or why that region failed.
    pub message: String,
}

/// Body of the 200 answer to a batch push: one result per requested region, in request order.
#[derive(Debug, Serialize)]
pub(crate) struct BatchPushResponse {
    pub results: Vec<BatchPushResult>,
}

/// Body of `POST /v3/scm/certificates/{id}/deploy`; fields of the wrong type fail the whole body.
#[derive(Debug, Deserialize)]
pub(crate) struct DeployRequest {
    /// Project of the resources (a region id for a main project), 1 to 255 characters; optional.
    #[serde(default)]
    pub project_name: Option<String>,
    /// `CDN`, `WAF` or `ELB`.
    pub service_name: String,
    /// 1 to 20 resources.
    pub resources: Vec<DeployResource>,
}

/// One resource of a deploy; every field is at most 63 characters.
#[derive(Debug, Deserialize)]
pub(crate) struct DeployResource {
    /// The ELB or WAF certificate whose content the deploy replaces; needed for those two.
    #[serde(default)]
    pub id: Option<String>,
    /// WAF only: `premium` (dedicated) or `cloud`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// CDN only: the accelerated domain, which the certificate must cover.
    #[serde(default)]
    pub domain_name: Option<String>,
    /// WAF only.
    #[serde(default)]
    pub enterprise_project_id: Option<String>,
}

/// A resource a deploy could not update, inside the 200 answer.
#[derive(Debug, Serialize)]
pub(crate) struct DeployFailure {
    /// Resource id for ELB and WAF, domain for CDN.
    pub resource: String,
    /// Usually the target service's error code.
    pub failure_info: String,
}

/// Body of the 200 answer to a deploy; an empty list means every resource was deployed.
#[derive(Debug, Serialize)]
pub(crate) struct DeployResponse {
    pub failure_list: Vec<DeployFailure>,
}

/// Body of `POST /v3/scm/deployed-resources`; fields of the wrong type fail the whole body.
#[derive(Debug, Deserialize)]
pub(crate) struct DeployedResourcesRequest {
    /// 1 to 50 certificate ids of 16 characters.
    pub certificate_ids: Vec<String>,
    /// 1 to 50 of `WAF`, `CDN`, `ELB` and `ALL`.
    pub service_names: Vec<String>,
}

/// Body of the 200 answer to `POST /v3/scm/deployed-resources`: one result per requested certificate.
#[derive(Debug, Serialize)]
pub(crate) struct DeployedResourcesResponse {
    pub results: Vec<CertificateResources>,
}

/// The resources one certificate is deployed to (`ResultDetail` in the SDKs).
#[derive(Debug, Serialize)]
pub(crate) struct CertificateResources {
    pub certificate_id: String,
    /// Resources over all services asked about.
    pub total_num: usize,
    /// One entry per service the certificate is deployed to; empty when it is deployed nowhere.
    pub deployed_resources: Vec<ServiceResources>,
}

/// The resources of one service (`DeployedResourceDetail`).
#[derive(Debug, Serialize)]
pub(crate) struct ServiceResources {
    /// `CDN`, `WAF` or `ELB`.
    pub service: String,
    pub resource_num: usize,
    /// Whether the service is global or regional.
    pub resource_location: String,
    pub region_resources: Vec<RegionResources>,
}

/// The resources of one service in one region (`RegionResourceDetail`).
#[derive(Debug, Serialize)]
pub(crate) struct RegionResources {
    /// `global` for a global service, else the region.
    pub region_id: String,
    /// True when SCM could not read that region completely.
    pub is_error: bool,
    pub resources: Vec<ResourceDetail>,
}

/// One resource (`ResourceDetail`).
#[derive(Debug, Serialize)]
pub(crate) struct ResourceDetail {
    pub resource_id: String,
    pub resource_name: String,
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
