//! The expiry of certificates named by `certificateId`, read from SCM once per certificate and shared by every
//! object that names it: SCM's rate limit is what users wait on, and an expiry read before each push (and each retry)
//! made a push cost two requests. An entry is read again after a day (a certificate in SCM is renewed in place
//! rarely, and the expiry gauge can lag that long), and dropped when a push of that certificate fails with a
//! certificate error. A failed read is remembered too, for an hour: the push goes ahead without the expiry rather
//! than paying for the read again on every retry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tracing::warn;

use crate::scm::{Credentials, PushFailure, ScmClient};

/// How long a read expiry is trusted.
pub const KNOWN_FOR: Duration = Duration::from_secs(24 * 3600);
/// How long a failed read keeps the expiry unknown before it is read again.
pub const UNKNOWN_FOR: Duration = Duration::from_secs(3600);

/// What was read about one certificate, and when.
#[derive(Clone, Copy)]
struct Entry {
    not_after: Option<Timestamp>,
    read: Instant,
}

impl Entry {
    fn fresh(&self, now: Instant) -> bool {
        let ttl = if self.not_after.is_some() {
            KNOWN_FOR
        } else {
            UNKNOWN_FOR
        };
        now.duration_since(self.read) < ttl
    }
}

/// One certificate as one credential sees it: what was read, and the failure that ended the last read (shared with
/// the attempts that waited for it, so a deferral or a refusal is not asked again by each of them in turn).
#[derive(Default)]
struct Slot {
    entry: Option<Entry>,
    failed: Option<(u64, PushFailure)>,
}

/// Expiries by credential and certificate ID; one read at a time per certificate, so objects naming one certificate
/// share a read.
#[derive(Default)]
pub struct Expiries {
    slots: Mutex<HashMap<(String, String), Arc<Shared>>>,
}

/// A slot, and how many reads of it have ended (a waiter compares it to tell a failure it waited for).
type Shared = (AtomicU64, tokio::sync::Mutex<Slot>);

impl Expiries {
    /// The expiry of `certificate_id`: known, or read from SCM with `credentials`. `ends_attempt` tells which failed
    /// reads are the push's answer too (a refused credential, a certificate SCM does not hold, a deferral, the
    /// fence): those are returned, to this attempt and to those that waited for the same read, and not remembered;
    /// any other leaves the expiry unknown for [`UNKNOWN_FOR`].
    pub async fn get(
        &self,
        scm: &ScmClient,
        credentials: &Credentials,
        certificate_id: &str,
        ends_attempt: impl Fn(&PushFailure) -> bool,
    ) -> Result<Option<Timestamp>, PushFailure> {
        let key = (scm.digest(credentials), certificate_id.to_owned());
        let shared = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(slots.entry(key).or_default())
        };
        let (reads, slot) = &*shared;
        let before = reads.load(Ordering::Acquire);
        let mut slot = slot.lock().await;
        if let Some(known) = slot.entry.filter(|e| e.fresh(Instant::now())) {
            return Ok(known.not_after);
        }
        if let Some((read, failure)) = &slot.failed
            && *read >= before
        {
            // The read this attempt waited for ended like this.
            return Err(failure.clone());
        }
        let result = scm.expiry(credentials, certificate_id).await;
        let read = reads.fetch_add(1, Ordering::AcqRel);
        let not_after = match result {
            Ok(at) => at,
            Err(failure) if ends_attempt(&failure) => {
                slot.failed = Some((read, failure.clone()));
                return Err(failure);
            }
            Err(failure) => {
                warn!(certificate_id, error = %failure.error_message, "could not read the certificate's expiry from SCM");
                None
            }
        };
        slot.failed = None;
        slot.entry = Some(Entry {
            not_after,
            read: Instant::now(),
        });
        Ok(not_after)
    }

    /// Forgets what was read about `certificate_id` (a push of it failed with a certificate error).
    pub fn forget(&self, certificate_id: &str) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, id), _| id != certificate_id);
    }

    /// Drops the entries nobody asked about for longer than they stay fresh (bounded memory).
    pub fn prune(&self) {
        let now = Instant::now();
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, shared| {
                shared
                    .1
                    .try_lock()
                    .map_or(true, |slot| slot.entry.is_some_and(|e| e.fresh(now)))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_expiry_is_trusted_a_day_and_an_unknown_one_an_hour() {
        let read = Instant::now();
        let known = Entry {
            not_after: Some("2027-01-01T00:00:00Z".parse().unwrap()),
            read,
        };
        let unknown = Entry { not_after: None, read };
        let later = |d: Duration| read + d;
        assert!(known.fresh(later(Duration::from_secs(23 * 3600))));
        assert!(!known.fresh(later(KNOWN_FOR)));
        assert!(unknown.fresh(later(Duration::from_secs(59 * 60))));
        assert!(!unknown.fresh(later(UNKNOWN_FOR)));
    }
}
