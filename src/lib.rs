//! certpush-operator: pushes Huawei Cloud SCM certificates to CDN, WAF and ELB from `CertificatePush` resources.
//!
//! Data flows top to bottom: [`crd`] (the resource) → [`controller`] (reconcile) → [`policy`] (whether to push)
//! → [`scm`] (the request and what its answer means) → [`status`] (conditions and Events). [`cli`] and
//! [`runtime`] wire the process once at startup.

pub mod account;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod policy;
pub mod runtime;
pub mod scm;
pub mod server;
pub mod source;
pub mod status;
pub mod telemetry;
pub mod time;

/// Why a reconcile failed; [`controller::error_policy`] retries it with backoff. Startup failures are
/// [`runtime::StartupError`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A namespaced object came without a namespace.
    #[error("object has no namespace")]
    MissingNamespace,
    /// What the decision needs is not known yet (the account caches are not listed, a namespace's labels could
    /// not be read); the reconcile is retried.
    #[error("{0}")]
    NotReady(String),
}

/// Makes ring the process-wide rustls provider; the build compiles no other, and both kube and reqwest use it.
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
