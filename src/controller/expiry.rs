//! The expiry of certificates named by `certificateId`, read from SCM once per certificate and shared by every
//! object that names it: SCM's rate limit is what users wait on, and an expiry read before each push (and each retry)
//! made a push cost two requests. An entry is read again after a day (a certificate in SCM is renewed in place
//! rarely, and the expiry gauge can lag that long), and dropped when a push of that certificate fails with a
//! certificate error. A failed read is remembered too, for an hour: the push goes ahead without the expiry rather
//! than paying for the read again on every retry.

use std::collections::HashMap;
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

/// Expiries by certificate ID; one read at a time per certificate, so objects naming one certificate share a read.
#[derive(Default)]
pub struct Expiries {
    entries: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Entry>>>>>,
}

impl Expiries {
    /// The expiry of `certificate_id`: known, or read from SCM with `credentials`. `ends_attempt` tells which failed
    /// reads are the push's answer too (a refused credential, a certificate SCM does not hold, a deferral, the
    /// fence): those are returned and not remembered; any other leaves the expiry unknown for [`UNKNOWN_FOR`].
    pub async fn get(
        &self,
        scm: &ScmClient,
        credentials: &Credentials,
        certificate_id: &str,
        ends_attempt: impl Fn(&PushFailure) -> bool,
    ) -> Result<Option<Timestamp>, PushFailure> {
        let slot = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(entries.entry(certificate_id.to_owned()).or_default())
        };
        let mut entry = slot.lock().await;
        if let Some(known) = entry.filter(|e| e.fresh(Instant::now())) {
            return Ok(known.not_after);
        }
        let not_after = match scm.expiry(credentials, certificate_id).await {
            Ok(at) => at,
            Err(failure) if ends_attempt(&failure) => return Err(failure),
            Err(failure) => {
                warn!(certificate_id, error = %failure.error_message, "could not read the certificate's expiry from SCM");
                None
            }
        };
        *entry = Some(Entry {
            not_after,
            read: Instant::now(),
        });
        Ok(not_after)
    }

    /// Forgets what was read about `certificate_id` (a push of it failed with a certificate error).
    pub fn forget(&self, certificate_id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(certificate_id);
    }

    /// Drops the entries nobody asked about for longer than they stay fresh (bounded memory).
    pub fn prune(&self) {
        let now = Instant::now();
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, slot| {
                slot.try_lock()
                    .map_or(true, |entry| entry.is_some_and(|e| e.fresh(now)))
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
