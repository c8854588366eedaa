//! SCM request and response bodies as the operator's client writes and reads them (the simulator decodes them with
//! types of its own, so it checks this format from outside).

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// Body of `POST /v3/scm/certificates/import`; its `Debug` never shows the private key.
#[derive(Debug, Clone, Serialize)]
pub struct ImportRequest {
    /// 3 to 63 of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// The leaf certificate, PEM.
    pub certificate: String,
    /// The intermediates, PEM, leaf's issuer first; omitted when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_chain: Option<String>,
    /// The unencrypted private key, PEM.
    #[serde(serialize_with = "expose")]
    pub private_key: SecretString,
    /// Enterprise project of the imported certificate (the account's); omitted: SCM's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise_project_id: Option<String>,
}

/// Writes a secret into the request body, the one place it is sent.
fn expose<S: Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

/// Body of the 200 answer to an import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportResponse {
    /// ID of the new certificate.
    pub certificate_id: String,
}

/// Body of the 200 answer to `GET /v3/scm/certificates` (only the fields the operator reads).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListResponse {
    /// One page of certificates.
    #[serde(default)]
    pub certificates: Vec<CertificateSummary>,
    /// Certificates matching the query across all pages.
    #[serde(default)]
    pub total_count: u64,
}

/// One entry of a list answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateSummary {
    /// Certificate ID.
    pub id: String,
    /// Certificate name.
    #[serde(default)]
    pub name: String,
    /// The certificate's domain (for an uploaded one, read from the certificate by SCM).
    #[serde(default)]
    pub domain: Option<String>,
    /// End of validity, in whichever form SCM sends it (see [`scm_time`]).
    #[serde(default)]
    pub expire_time: Option<Value>,
}

/// Body of the 200 answer to `GET /v3/scm/certificates/{id}` (only the fields the operator reads).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShowResponse {
    /// End of validity: the field the API documents for this answer ("empty when unknown").
    #[serde(default)]
    pub not_after: Option<Value>,
    /// The list's name for the same fact, read in case an answer carries it instead.
    #[serde(default)]
    pub expire_time: Option<Value>,
}

/// A time as SCM writes it, `None` when absent, empty or unreadable. Huawei documents these fields only as strings,
/// with examples like `2021-05-27 16:46:25.0` and no zone (read as UTC); epoch milliseconds (as number or digits, as
/// other Huawei APIs send), epoch seconds and RFC 3339 are accepted too, since the form is not promised anywhere.
pub fn scm_time(value: &Value) -> Option<Timestamp> {
    match value {
        Value::Number(n) => epoch(n.as_i64()?),
        Value::String(s) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                return epoch(s.parse().ok()?);
            }
            s.parse::<Timestamp>().ok().or_else(|| {
                let civil: jiff::civil::DateTime = s.parse().ok()?;
                civil.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp())
            })
        }
        _ => None,
    }
}

/// Epoch milliseconds, or seconds for numbers too small to be milliseconds of this century.
fn epoch(n: i64) -> Option<Timestamp> {
    if n.abs() >= 100_000_000_000 {
        Timestamp::from_millisecond(n).ok()
    } else {
        Timestamp::from_second(n).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scm_times_are_read_in_every_form_seen_and_garbage_is_none() {
        let at: Timestamp = "2021-05-27T16:46:25Z".parse().unwrap();
        for form in [
            json!("2021-05-27 16:46:25.0"),
            json!("2021-05-27 16:46:25"),
            json!("2021-05-27T16:46:25Z"),
            json!("2021-05-28T00:46:25+08:00"),
            json!(1_622_133_985_000_i64),
            json!("1622133985000"),
            json!(1_622_133_985),
        ] {
            assert_eq!(scm_time(&form), Some(at), "{form}");
        }
        for none in [
            json!(""),
            json!("  "),
            json!(null),
            json!("soon"),
            json!(true),
            json!(1.5),
        ] {
            assert_eq!(scm_time(&none), None, "{none}");
        }
    }
}

/// Body of `POST /v3/scm/certificates/{id}/deploy`.
#[derive(Debug, Clone, Serialize)]
pub struct DeployRequest {
    /// The project (region) of the resources.
    pub project_name: String,
    /// CDN, WAF or ELB.
    pub service_name: String,
    /// 1 to 20 resources.
    pub resources: Vec<DeployTarget>,
}

/// One resource of a [`DeployRequest`], as Huawei names its fields.
#[derive(Debug, Clone, Serialize)]
pub struct DeployTarget {
    /// ELB or WAF certificate ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// WAF edition (`premium` or `cloud`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub waf_type: Option<String>,
    /// CDN domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    /// WAF enterprise project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enterprise_project_id: Option<String>,
}

/// Body of the 200 answer to a deploy: the resources that failed (the others succeeded).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployResponse {
    /// One entry per failed resource.
    #[serde(default)]
    pub failure_list: Vec<DeployFailure>,
}

/// A resource a deploy failed on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployFailure {
    /// The resource: ID for ELB and WAF, domain for CDN.
    #[serde(default)]
    pub resource: String,
    /// Why, usually the target service's error code.
    #[serde(default)]
    pub failure_info: String,
}

/// Body of `POST /v3/scm/deployed-resources`.
#[derive(Debug, Clone, Serialize)]
pub struct DeployedResourcesRequest {
    /// 1 to 50 certificate IDs.
    pub certificate_ids: Vec<String>,
    /// Services to look in.
    pub service_names: Vec<String>,
}

/// Body of the 200 answer to deployed-resources (only the fields the operator reads).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployedResourcesResponse {
    /// One per certificate asked about.
    #[serde(default)]
    pub results: Vec<DeployedResult>,
}

/// Where one certificate is deployed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployedResult {
    /// The certificate.
    #[serde(default)]
    pub certificate_id: String,
    /// How many resources hold it, over every service asked about: an answer listing a different number is
    /// incomplete.
    #[serde(default)]
    pub total_num: Option<u64>,
    /// Per service.
    #[serde(default)]
    pub deployed_resources: Vec<DeployedService>,
}

/// The resources of one service holding a certificate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployedService {
    /// CDN, WAF or ELB.
    #[serde(default)]
    pub service: String,
    /// Per region.
    #[serde(default)]
    pub region_resources: Vec<RegionResources>,
}

/// The resources of one region.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RegionResources {
    /// The region ID (`global` for global services).
    #[serde(default)]
    pub region_id: String,
    /// SCM could not read this region: what it holds there is unknown, not nothing.
    #[serde(default)]
    pub is_error: bool,
    /// The resources.
    #[serde(default)]
    pub resources: Vec<DeployedResource>,
}

/// One resource holding a certificate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployedResource {
    /// Its ID (or domain); Huawei's SDK describes it as "resource ID : resource name", so `ID:name` is read too
    /// (see [`super::deploy::resource_key`]).
    #[serde(default)]
    pub resource_id: String,
    /// Its name.
    #[serde(default)]
    pub resource_name: String,
}

/// Body of `POST /v3/scm/certificates/{id}/batch-push`.
#[derive(Debug, Clone, Serialize)]
pub struct BatchPushRequest {
    /// 1 to 10 regions (project names).
    pub target_projects: Vec<String>,
    /// CDN, WAF or ELB.
    pub target_service: String,
}

/// Body of the 200 answer to a batch push: one result per region.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BatchPushResponse {
    /// Per region; a failed one has an empty `cert_id`.
    #[serde(default)]
    pub results: Vec<BatchPushResult>,
}

/// What a batch push did in one region.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BatchPushResult {
    /// The region.
    #[serde(default)]
    pub project_name: String,
    /// The copy's ID in the target service; empty when the push there failed.
    #[serde(default)]
    pub cert_id: String,
    /// "success", or why it failed.
    #[serde(default)]
    pub message: String,
}
