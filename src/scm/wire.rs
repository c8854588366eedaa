//! SCM request and response bodies as the operator's client writes and reads them (the simulator decodes them with
//! types of its own, so it checks this format from outside).

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

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
}
