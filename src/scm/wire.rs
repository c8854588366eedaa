//! SCM request and response bodies, shared by the operator's client and the simulator so both speak one format.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Body of `POST /v3/scm/certificates/import`.
#[derive(Clone, Serialize, Deserialize)]
pub struct ImportRequest {
    /// 3 to 63 of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// The leaf certificate, PEM.
    pub certificate: String,
    /// The intermediates, PEM, leaf's issuer first; omitted when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
