//! certpush-operator: pushes Huawei Cloud SCM certificates to CDN, WAF and ELB from `CertificatePush` resources.
//!
//! Data flows top to bottom: [`crd`] (the resource) → [`controller`] (reconcile) → [`policy`] (whether to push)
//! → [`scm`] (the request and what its answer means) → [`status`] (conditions and Events).

pub mod cli;
pub mod controller;
pub mod crd;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod policy;
pub mod scm;
pub mod server;
pub mod source;
pub mod status;
pub mod telemetry;

use std::path::PathBuf;

/// Everything that can make a reconcile or the operator itself fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// CertificatePushes could not be listed at startup.
    #[error("cannot list CertificatePushes ({source}); {}", startup_hint(source))]
    CrdUnavailable {
        /// The failed list call.
        #[source]
        source: kube::Error,
    },
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
    /// The leader election flags do not nest (retry period < renew deadline < lease duration).
    #[error("{0}")]
    LeaderConfig(String),
    /// Leader election could not start or failed.
    #[error("leader election: {0}")]
    LeaderElection(#[from] kube_lease_manager::LeaseManagerError),
}

/// What to check when the startup list fails: a 404 is a missing CRD, a 401/403 is credentials or RBAC,
/// anything else is the connection to the API server.
fn startup_hint(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) if s.code == 404 => {
            "the CRD is not installed: `certpush-operator crd | kubectl apply --server-side -f -`"
        }
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => {
            "the operator's identity may not list certificatepushes.scm.certpush.dev: check its credentials and RBAC"
        }
        _ => "the Kubernetes API server is unreachable or unhealthy: check KUBECONFIG or the in-cluster configuration",
    }
}

/// Makes ring the process-wide rustls provider; the build compiles no other, and both kube and reqwest use it.
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure("x", "y").with_code(code).boxed())
    }

    #[test]
    fn startup_failure_names_what_to_fix() {
        let message = |e| Error::CrdUnavailable { source: e }.to_string();
        assert!(message(api_error(404)).contains("CRD is not installed"));
        assert!(message(api_error(403)).contains("RBAC"));
        assert!(message(api_error(401)).contains("credentials"));
        assert!(message(api_error(500)).contains("unreachable"));
        let io = kube::Error::Service(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
        let m = message(io);
        assert!(m.contains("unreachable") && !m.contains("CRD"), "{m}");
    }
}
