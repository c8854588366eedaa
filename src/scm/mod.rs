//! Huawei Cloud SCM: credentials, the push request, and what its answers mean.

pub mod auth;
pub mod batch;
pub mod certificates;
pub mod client;
pub mod deploy;
pub mod iam;
pub mod limit;
pub mod metrics;
pub mod outcome;
pub mod sign;
pub mod verdicts;
pub mod wire;

pub use auth::{Credentials, CredentialsError};
pub use certificates::FoundImport;
pub use client::{Call, PushRequest, REQUEST_TIMEOUT, RegionResult, ScmClient};
pub use deploy::{Deployed, InUse, MAX_DEPLOYED_RESOURCES_IDS};
pub use limit::as_tenant;
pub use metrics::ScmMetrics;
pub use outcome::{
    FailureKind, PushFailure, PushOutcome, Pushed, ScmResponse, Transport, blames_endpoint, classify, classify_as,
    rejected,
};
