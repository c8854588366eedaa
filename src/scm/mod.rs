//! Huawei Cloud SCM: credentials, the push request, and what its answers mean.

pub mod auth;
pub mod client;
pub mod limit;
pub mod outcome;
pub mod sign;
pub mod wire;

pub use auth::{Credentials, CredentialsError};
pub use client::{PushRequest, REQUEST_TIMEOUT, ScmClient};
pub use outcome::{
    FailureKind, PushFailure, PushOutcome, ScmResponse, Transport, blames_endpoint, classify, classify_as,
};
