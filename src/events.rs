//! Kubernetes Events, posted off the reconcile path: a queue and a few workers that post what the reconciles
//! announce, taken in the order queued and posted up to [`WORKERS`] at once (so two Events queued back to back may
//! land in either order), so a reconcile moves on as soon as its status is saved.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder};
use tokio::sync::{Mutex, mpsc, watch};
use tracing::warn;

/// Events posted at once: fewer than the reconciles (64 by default), so in a burst the status writes (what users and
/// GitOps tools wait on) come first; with 4 the Events of 5,000 objects landed 17 s after the last status (an Event
/// costs the API server less than a status write), with 16 they keep up.
pub const WORKERS: usize = 16;

/// A queue of Events to post, and the workers that post them.
#[derive(Clone)]
pub struct EventQueue {
    tx: mpsc::UnboundedSender<(Event, ObjectReference)>,
    /// Events queued or being posted.
    pending: Arc<watch::Sender<usize>>,
}

impl EventQueue {
    /// Starts [`WORKERS`] workers posting with `recorder`; they stop when the last clone of the queue is dropped.
    pub fn start(recorder: Recorder) -> Self {
        // Queued items are small (the Event and a reference, well under 1 KiB); a task per Event held the whole
        // request future for every waiting Event instead.
        let (tx, rx) = mpsc::unbounded_channel::<(Event, ObjectReference)>();
        let rx = Arc::new(Mutex::new(rx));
        let pending = Arc::new(watch::Sender::new(0usize));
        for _ in 0..WORKERS {
            let (rx, recorder, pending) = (rx.clone(), recorder.clone(), pending.clone());
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((event, reference)) = next else { break };
                    // Counted down even if posting panics, so a flush never waits for an Event that is gone.
                    let _done = Done(&pending);
                    if let Err(e) = recorder.publish(&event, &reference).await {
                        let name = reference.name.as_deref().unwrap_or_default();
                        warn!(name, reason = event.reason, error = %e, "publishing event failed");
                    }
                }
            });
        }
        Self { tx, pending }
    }

    /// Queues `event` about the object `reference`, its note cut to what the API server accepts.
    pub fn publish(&self, mut event: Event, reference: ObjectReference) {
        event.note = event.note.map(fit_note);
        self.pending.send_modify(|n| *n += 1);
        if self.tx.send((event, reference)).is_err() {
            // Only after every worker ended, i.e. never while the queue is alive.
            self.pending.send_modify(|n| *n = n.saturating_sub(1));
        }
    }

    /// Waits until every Event queued so far has been posted (or failed).
    pub async fn flush(&self) {
        // The sender lives in self, so the channel cannot close while this waits.
        let _ = self.pending.subscribe().wait_for(|n| *n == 0).await;
    }
}

/// Longest note events.k8s.io/v1 accepts, in bytes; a longer one gets the whole Event refused.
pub const MAX_NOTE_BYTES: usize = 1024;

/// `note` cut to [`MAX_NOTE_BYTES`] at a character boundary, ending with `…` when cut.
fn fit_note(note: String) -> String {
    if note.len() <= MAX_NOTE_BYTES {
        return note;
    }
    let room = MAX_NOTE_BYTES - '…'.len_utf8();
    let end = (0..=room).rev().find(|i| note.is_char_boundary(*i)).unwrap_or(0);
    format!("{}…", &note[..end])
}

/// Counts one Event as done when dropped.
struct Done<'a>(&'a watch::Sender<usize>);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defect: an SCM message of 1 KiB or more made a note the API server refuses, so no Warning Event at all.
    #[test]
    fn a_long_note_is_cut_to_what_the_api_server_accepts() {
        assert_eq!(fit_note("short".into()), "short");
        let long = format!("SCM answered HTTP 400: {}", "é".repeat(2_000));
        let cut = fit_note(long.clone());
        assert!(cut.len() <= MAX_NOTE_BYTES && cut.ends_with('…'), "{}", cut.len());
        assert!(long.starts_with(cut.trim_end_matches('…')));
    }
    use kube::Client;
    use kube::runtime::events::{EventType, Reporter};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn events_are_posted_a_few_at_a_time_and_flush_waits_for_all() {
        crate::install_crypto_provider();
        let (service, mut server) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let client = Client::new(service, "default");
        let queue = EventQueue::start(Recorder::new(client, Reporter::from("test")));
        let (in_flight, most, posted) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let counters = (in_flight.clone(), most.clone(), posted.clone());
        tokio::spawn(async move {
            while let Some((_, reply)) = server.next_request().await {
                let (in_flight, most, posted) = (counters.0.clone(), counters.1.clone(), counters.2.clone());
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Answer later, so that posts overlap if the queue lets them.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    posted.fetch_add(1, Ordering::SeqCst);
                    let body = serde_json::to_vec(&serde_json::json!({"metadata": {"name": "e"}})).unwrap();
                    reply.send_response(
                        http::Response::builder()
                            .status(201)
                            .body(kube::client::Body::from(body))
                            .unwrap(),
                    );
                });
            }
        });
        for i in 0..20 {
            let event = Event {
                type_: EventType::Normal,
                reason: "Pushed".into(),
                note: Some(format!("push {i}")),
                action: "Push".into(),
                secondary: None,
            };
            let reference = ObjectReference {
                name: Some(format!("cp{i}")),
                namespace: Some("ns".into()),
                ..Default::default()
            };
            queue.publish(event, reference);
        }
        queue.flush().await;
        assert_eq!(
            posted.load(Ordering::SeqCst),
            20,
            "flush returned before every Event was posted"
        );
        assert_eq!(most.load(Ordering::SeqCst), WORKERS, "posts at once");
    }
}
