//! Where an attempt stops without recording anything: a request this process kept from leaving because it must
//! not act any more (the leadership fence closed, or shutdown), and what the settling of owed work (deploys,
//! deletes) came to. Shared by the push, deploy, import and cleanup steps, so none of them calls back up into another.

use super::Context;
use crate::crd::CertificatePushStatus;
use crate::scm::PushFailure;

/// Whether `failure` is a request this process kept from leaving because it must not act any more: the leadership
/// fence closed, or it is shutting down. Neither is a failure: nothing is recorded (no backoff, no `DeployFailed`,
/// no Event), so a deposed leader never writes over the new leader's status, and whoever acts next decides afresh.
pub(super) fn fenced(ctx: &Context, failure: &PushFailure) -> bool {
    failure.http_status.is_none() && !failure.outcome_unknown && (!ctx.leadership.leads() || ctx.scm.stopping())
}

/// What came of settling owed work (`deploy::settle_owed`, `import::settle_deletions`).
pub(super) enum Settled {
    /// Everything due was sent; the status as saved.
    Done(Box<CertificatePushStatus>),
    /// The account's rate limit held a request back (what was sent before it is saved): when to come back.
    Deferred(std::time::Duration),
    /// This replica stopped leading meanwhile: nothing was recorded.
    Fenced,
}
