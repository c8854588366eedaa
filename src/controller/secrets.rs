//! Secret reads shared by the reconciles that ask for the same Secret at the same time.
//!
//! Every push reads its credentials (and an import its source) Secret live, never from a cache: the operator keeps
//! no Secret data beyond a reconcile. Reads are limited to [`SECRET_READS`] at once, so under load reconciles queue
//! for a permit; everyone who asks for a Secret while a read of it is still waiting for its permit gets that read's
//! answer. The GET is sent after all of them asked, so the answer is as fresh as a GET of their own would be, and a
//! thousand objects sharing one token Secret cost a few reads instead of a thousand.
//!
//! The permit is held until the last reconcile is done with the copy: at most [`SECRET_READS`] Secrets (each up to
//! 1 MiB) are held at once, however many reconciles use them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Distinct Secrets read (and held) at once, over all reconciles.
pub const SECRET_READS: usize = 8;

/// A Secret as read, with the permit its copy holds.
pub struct Read {
    /// The Secret; None when it does not exist.
    pub secret: Option<Secret>,
    _permit: OwnedSemaphorePermit,
}

type Answer = Result<Arc<Read>, Arc<kube::Error>>;
/// Reads not yet sent, by (namespace, name), each with its number (so a read removes only itself).
type Waiting = HashMap<(String, String), (u64, Shared<BoxFuture<'static, Answer>>)>;

/// Secret reads, shared between the reconciles that wait for the same one.
pub struct SecretReads {
    permits: Arc<Semaphore>,
    waiting: Arc<Mutex<Waiting>>,
    next: AtomicU64,
}

impl Default for SecretReads {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(SECRET_READS)),
            waiting: Default::default(),
            next: AtomicU64::new(0),
        }
    }
}

impl SecretReads {
    /// Reads Secret `name` in `namespace`: joins a read of it that has not been sent yet, or queues a new one.
    pub async fn get(&self, client: &Client, namespace: &str, name: &str) -> Result<Arc<Read>, kube::Error> {
        let key = (namespace.to_owned(), name.to_owned());
        let read = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            match waiting.get(&key) {
                Some((_, read)) => read.clone(),
                None => {
                    let id = self.next.fetch_add(1, Ordering::Relaxed);
                    let read = self.read(client, key.clone(), id).boxed().shared();
                    waiting.insert(key, (id, read.clone()));
                    read
                }
            }
        };
        read.await.map_err(|e| same_error(&e))
    }

    fn read(&self, client: &Client, key: (String, String), id: u64) -> impl Future<Output = Answer> + use<> {
        let (permits, waiting) = (self.permits.clone(), self.waiting.clone());
        let api: Api<Secret> = Api::namespaced(client.clone(), &key.0);
        async move {
            let permit = permits.acquire_owned().await.expect("the semaphore is never closed");
            // From here the GET is on its way: who asks later needs a read sent after they asked.
            {
                let mut waiting = waiting.lock().unwrap_or_else(|e| e.into_inner());
                if waiting.get(&key).is_some_and(|(i, _)| *i == id) {
                    waiting.remove(&key);
                }
            }
            match api.get_opt(&key.1).await {
                Ok(secret) => Ok(Arc::new(Read {
                    secret,
                    _permit: permit,
                })),
                Err(e) => Err(Arc::new(e)),
            }
        }
    }
}

/// The error of a shared read, for each reader (kube's error is not Clone): an API refusal keeps its status (its
/// code decides what happens next); anything else keeps its message.
fn same_error(e: &kube::Error) -> kube::Error {
    match e {
        kube::Error::Api(status) => kube::Error::Api(status.clone()),
        other => kube::Error::Service(other.to_string().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use std::time::Duration;

    /// A fake API server answering Secret GETs after `delay`, and the count of GETs it received.
    fn client(delay: Duration, status: u16) -> (Client, Arc<AtomicU64>) {
        let sent = Arc::new(AtomicU64::new(0));
        let counted = sent.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            counted.fetch_add(1, Ordering::Relaxed);
            async move {
                tokio::time::sleep(delay).await;
                let name = req.uri().path().rsplit('/').next().unwrap_or_default().to_owned();
                let body = if status == 200 {
                    serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": {}})
                } else {
                    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "forbidden",
                    "reason": "Forbidden", "code": status})
                };
                Ok::<_, std::convert::Infallible>(
                    Response::builder()
                        .status(status)
                        .body(Body::from(serde_json::to_vec(&body).unwrap()))
                        .unwrap(),
                )
            }
        });
        (Client::new(service, "default"), sent)
    }

    #[tokio::test]
    async fn readers_waiting_for_a_permit_share_one_read() {
        let reads = Arc::new(SecretReads::default());
        let (client, sent) = client(Duration::from_millis(50), 200);
        // 8 distinct Secrets take every permit; 40 readers of "shared" queue behind them.
        let mut tasks = Vec::new();
        for i in 0..SECRET_READS {
            let (reads, client) = (reads.clone(), client.clone());
            tasks.push(tokio::spawn(async move {
                reads.get(&client, "ns", &format!("s{i}")).await.map(|_| ())
            }));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        for _ in 0..40 {
            let (reads, client) = (reads.clone(), client.clone());
            tasks.push(tokio::spawn(async move {
                let read = reads.get(&client, "ns", "shared").await?;
                assert_eq!(
                    read.secret.as_ref().and_then(|s| s.metadata.name.as_deref()),
                    Some("shared")
                );
                Ok(())
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(sent.load(Ordering::Relaxed), SECRET_READS as u64 + 1);
    }

    #[tokio::test]
    async fn a_reader_after_the_get_was_sent_gets_a_read_of_its_own() {
        let reads = Arc::new(SecretReads::default());
        let (client, sent) = client(Duration::from_millis(50), 200);
        let first = {
            let (reads, client) = (reads.clone(), client.clone());
            tokio::spawn(async move { reads.get(&client, "ns", "s").await.map(|_| ()) })
        };
        // The first GET is in flight (a permit was free): its answer may predate a change this reader saw.
        tokio::time::sleep(Duration::from_millis(10)).await;
        reads.get(&client, "ns", "s").await.unwrap();
        first.await.unwrap().unwrap();
        assert_eq!(sent.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn every_sharer_gets_the_refusal_with_its_code() {
        let reads = Arc::new(SecretReads::default());
        let (client, sent) = client(Duration::from_millis(20), 403);
        let hold: Vec<_> = (0..SECRET_READS)
            .map(|_| reads.permits.clone().try_acquire_owned().unwrap())
            .collect();
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let (reads, client) = (reads.clone(), client.clone());
                tokio::spawn(async move { reads.get(&client, "ns", "s").await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(hold);
        for task in tasks {
            match task.await.unwrap() {
                Err(kube::Error::Api(status)) => assert_eq!(status.code, 403),
                other => panic!("want the 403, got {:?}", other.map(|_| ())),
            }
        }
        assert_eq!(sent.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_held_copy_keeps_its_permit() {
        let reads = SecretReads::default();
        let (client, _) = client(Duration::ZERO, 200);
        let held = reads.get(&client, "ns", "a").await.unwrap();
        assert_eq!(reads.permits.available_permits(), SECRET_READS - 1);
        drop(held);
        assert_eq!(reads.permits.available_permits(), SECRET_READS);
    }
}
