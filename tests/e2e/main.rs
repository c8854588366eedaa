//! End-to-end suite: a real kube-apiserver + etcd (tests/e2e/control-plane.sh), the real operator binary
//! running with only its shipped RBAC, and the SCM simulator over HTTP.
//!
//! These tests are `#[ignore]`d so plain `cargo test` stays hermetic; `make test` starts the control plane
//! and runs them with `--include-ignored`.
//!
//! One test binary (`cargo test --test e2e`), one module per topic, so a topic runs alone with a filter such as
//! `cargo test --test e2e -- --include-ignored import::`:
//! - `push`: admission, the happy path, steady state, re-push requests, transient faults, Secret churn, Pending;
//! - `credentials`: failure classes, token rotation, AK/SK, refused credentials, a wrong endpoint, no answer;
//! - `iam`: access keys without domainId, whose account id is asked from IAM as Huawei's SDK does;
//! - `import`: TLS Secret import, renewals, a mismatched key, `deletionPolicy`, two clusters on one SCM account;
//! - `deploy`: `spec.deploy` after pushes and renewals, per-resource failures, a lost answer, in-use certificates;
//! - `leadership`: leader election and failover, chaos with a killed operator, an API server restart;
//! - `health`: the shipped RBAC, readiness and liveness through an outage;
//! - `admission`: the shipped admission policy, which refuses a CertificatePush naming a Secret its author may not get.
//!
//! Helpers used by more than one topic are in `harness.rs` (which `tests/bench.rs` includes too); the others sit in
//! their topic's file.

mod harness;

mod accounts;
mod admission;
mod credentials;
mod deploy;
mod health;
mod iam;
mod import;
mod leadership;
mod push;
