//! What the controller keeps in memory about each object between reconciles, in one map by UID: a status it could
//! not save yet, its consecutive reconcile errors, its failed cleanup attempts, and whether its first push started
//! from the cache. Entries go with the object (a watch Delete, or absence after a re-list).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::crd::CertificatePushStatus;

/// What is remembered about one object.
#[derive(Debug, Default, Clone, PartialEq)]
struct ObjectMemory {
    /// A status recorded after an SCM request (success or refusal) that could not be saved yet. It is saved before
    /// anything else is done with the object, so a lost status write never turns into a second push, nor into
    /// re-sending a credential SCM just refused. Boxed: it is rare, and every object this process pushed first
    /// from the cache has an entry (`seen`), so the entry stays a few words.
    unsaved: Option<Box<CertificatePushStatus>>,
    /// Consecutive reconcile errors, for error_policy's backoff.
    errors: u32,
    /// Failed attempts to delete a deleted object's imported certificates.
    cleanups: u32,
    /// A status-less object whose first push this process started from the cache; any later reconcile reads it
    /// fresh, since the cache may lag the status this process wrote.
    seen: bool,
    /// When this process last asked SCM where the object's certificate is deployed and found what status.inUse
    /// already says (seconds after [`ASKED_EPOCH`]): such a refresh writes nothing, so its time is kept here.
    in_use_asked: Option<u32>,
}

/// The origin of [`ObjectMemory::in_use_asked`], so a time fits four bytes (until 2159).
const ASKED_EPOCH: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// The per-object memory of all reconciles.
#[derive(Debug, Default)]
pub struct Memory(Mutex<HashMap<String, ObjectMemory>>);

impl Memory {
    fn with<T>(&self, uid: &str, f: impl FnOnce(&mut ObjectMemory) -> T) -> T {
        // A panic while holding the lock cannot leave the map inconsistent, so poisoning is ignored.
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(uid.to_owned()).or_default();
        let result = f(entry);
        if *entry == ObjectMemory::default() {
            map.remove(uid);
        }
        result
    }

    /// Reads the entry of `uid` (the default when there is none) without creating one: most reconciles only ask.
    fn peek<T>(&self, uid: &str, f: impl FnOnce(&ObjectMemory) -> T) -> T {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(map.get(uid).unwrap_or(&ObjectMemory::default()))
    }

    /// Whether a status of `uid` waits to be saved.
    pub fn has_unsaved(&self, uid: &str) -> bool {
        self.peek(uid, |m| m.unsaved.is_some())
    }

    /// The status of `uid` that waits to be saved, if any, left in place.
    pub fn unsaved(&self, uid: &str) -> Option<CertificatePushStatus> {
        self.peek(uid, |m| m.unsaved.as_deref().cloned())
    }

    /// Takes the status of `uid` that waits to be saved, if any.
    pub fn take_unsaved(&self, uid: &str) -> Option<CertificatePushStatus> {
        self.with(uid, |m| m.unsaved.take().map(|status| *status))
    }

    /// Keeps `status` as the truth about `uid` until it is saved.
    pub fn keep_unsaved(&self, uid: &str, status: CertificatePushStatus) {
        self.with(uid, |m| m.unsaved = Some(Box::new(status)));
    }

    /// One more consecutive reconcile error of `uid`; returns the new count.
    pub fn count_error(&self, uid: &str) -> u32 {
        self.with(uid, |m| {
            m.errors = m.errors.saturating_add(1);
            m.errors
        })
    }

    /// The consecutive reconcile errors of `uid`.
    #[cfg(test)]
    pub fn errors(&self, uid: &str) -> u32 {
        self.peek(uid, |m| m.errors)
    }

    /// A reconcile of `uid` succeeded: its error backoff starts over.
    pub fn clear_errors(&self, uid: &str) {
        if self.peek(uid, |m| m.errors > 0) {
            self.with(uid, |m| m.errors = 0);
        }
    }

    /// One more failed cleanup attempt of `uid`; returns the new count.
    pub fn count_cleanup(&self, uid: &str) -> u32 {
        self.with(uid, |m| {
            m.cleanups = m.cleanups.saturating_add(1);
            m.cleanups
        })
    }

    /// True the first time it is asked about `uid`: this process has not worked on it before.
    pub fn first_sight(&self, uid: &str) -> bool {
        self.with(uid, |m| !std::mem::replace(&mut m.seen, true))
    }

    /// Notes that SCM was asked at `at` where `uid`'s certificate is deployed, with no change to record.
    pub fn asked_in_use(&self, uid: &str, at: jiff::Timestamp) {
        let seconds = u32::try_from(at.as_second() - ASKED_EPOCH).ok();
        self.with(uid, |m| m.in_use_asked = seconds);
    }

    /// When SCM was last asked where `uid`'s certificate is deployed with no change to record, if this process did.
    pub fn in_use_asked(&self, uid: &str) -> Option<jiff::Timestamp> {
        let seconds = self.peek(uid, |m| m.in_use_asked)?;
        jiff::Timestamp::from_second(ASKED_EPOCH + i64::from(seconds)).ok()
    }

    /// Drops everything about `uid` (deleted, or re-created under its name).
    pub fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(uid);
    }

    /// Drops everything about objects not in `live` (deleted while the watch was down).
    pub fn retain(&self, live: &HashSet<String>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|uid, _| live.contains(uid));
    }

    /// Drops everything: this replica starts leading again and decides from the API server's state alone.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// How many unsaved statuses and error counts are kept, over all objects.
    pub fn remembered(&self) -> usize {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.values()
            .map(|m| usize::from(m.unsaved.is_some()) + usize::from(m.errors > 0))
            .sum()
    }
}

/// The resourceVersion of each object a reconcile in flight last read or wrote: every status write is conditional
/// on it, so a write that lands after another writer's (a deposed leader's late write over the new leader's
/// pendingDeletions, deployments or targets) is refused (409) instead of erasing it. Entries live only while their
/// reconcile runs, so the map is bounded by the number of reconciles at once.
#[derive(Debug, Default)]
pub struct Versions(Mutex<HashMap<String, String>>);

impl Versions {
    /// Notes `version` as the one `uid`'s next write expects (None forgets it).
    pub fn set(&self, uid: &str, version: Option<String>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match version {
            Some(version) => map.insert(uid.to_owned(), version),
            None => map.remove(uid),
        };
    }

    /// The version `uid`'s next write expects, if a reconcile of it noted one.
    pub fn get(&self, uid: &str) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(uid).cloned()
    }

    /// How many are kept (as many as reconciles in flight, at most).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_goes_when_nothing_is_left_in_it() {
        let memory = Memory::default();
        memory.keep_unsaved("a", CertificatePushStatus::default());
        assert_eq!(memory.count_error("a"), 1);
        assert_eq!(memory.count_error("a"), 2);
        assert_eq!(memory.remembered(), 2);
        assert!(memory.take_unsaved("a").is_some() && !memory.has_unsaved("a"));
        memory.clear_errors("a");
        assert_eq!(memory.0.lock().unwrap().len(), 0);
        assert!(memory.first_sight("b") && !memory.first_sight("b"));
        assert!(
            std::mem::size_of::<ObjectMemory>() <= 32,
            "an entry per object stays small"
        );
        assert_eq!((memory.count_cleanup("b"), memory.count_cleanup("b")), (1, 2));
        let at: jiff::Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        memory.asked_in_use("b", at);
        assert_eq!(memory.in_use_asked("b"), Some(at));
        memory.forget("b");
        assert!(memory.first_sight("b"), "forgotten, it is new again");
    }
}
