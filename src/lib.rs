//! certpush-operator: pushes Huawei Cloud SCM certificates to CDN, WAF and ELB from `CertificatePush` resources.
//!
//! Data flows top to bottom: [`crd`] (the resource) → [`controller`] (reconcile) → [`policy`] (whether to push)
//! → [`scm`] (the request and what its answer means) → [`status`] (conditions and Events).

pub mod cli;
pub mod controller;
pub mod crd;
pub mod metrics;
pub mod policy;
pub mod scm;
pub mod server;
pub mod sim;
pub mod status;
pub mod telemetry;

use std::path::PathBuf;

/// Everything that can make a reconcile or the operator itself fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The CertificatePush CRD could not be listed.
    #[error(
        "cannot list CertificatePushes ({0}); install the CRD with `certpush-operator crd | kubectl apply -f -` and check RBAC"
    )]
    CrdUnavailable(#[source] kube::Error),
    /// The SCM client configuration is invalid.
    #[error(transparent)]
    ScmClient(#[from] scm::client::ClientError),
    /// The extra CA file could not be read.
    #[error("reading --scm-ca-file {path:?}: {source}")]
    CaFile {
        /// The path given.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A namespaced object came without a namespace.
    #[error("object has no namespace")]
    MissingNamespace,
    /// The health and metrics endpoint could not be served.
    #[error("serving --metrics-addr: {0}")]
    Server(#[source] std::io::Error),
}

/// Makes ring the process-wide rustls provider; the build compiles no other, and both kube and reqwest use it.
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
