//! Huawei Cloud SCM: credentials, the push request, and what its answers mean.

pub mod auth;
pub mod client;
pub mod error;

pub use auth::{Credentials, CredentialsError};
pub use client::{PushRequest, ScmClient};
pub use error::{FailureKind, PushFailure, PushOutcome, Reply, Transport, blames_endpoint, classify};
