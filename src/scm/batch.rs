//! deployed-resources questions of many objects gathered into few requests: the first asker of an account opens a
//! batch, others of the same credential join it for a short window (up to 50 certificate IDs, SCM's limit), and one
//! request answers them all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::auth::Credentials;
use super::client::ScmClient;
use super::deploy::{Deployed, InUse, MAX_DEPLOYED_RESOURCES_IDS};
use super::outcome::{PushFailure, rejected};

/// How long a batch stays open for others to join.
pub const WINDOW: Duration = Duration::from_millis(100);

type Answer = Option<Result<Arc<Deployed>, PushFailure>>;

struct Batch {
    /// Shared with its leader, which reads it when the window closes even if a newer batch took its place.
    ids: Arc<Mutex<Vec<String>>>,
    answer: watch::Receiver<Answer>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Open batches by credential digest; clones share them.
#[derive(Clone, Default)]
pub struct InUseBatcher {
    open: Arc<Mutex<HashMap<String, Batch>>>,
}

impl InUseBatcher {
    /// Where `certificate_id` is deployed, in every service, asked together with the other questions of the same
    /// credential that arrive within [`WINDOW`].
    pub async fn lookup(
        &self,
        scm: &ScmClient,
        credentials: &Credentials,
        certificate_id: &str,
    ) -> Result<Vec<InUse>, PushFailure> {
        let digest = scm.digest(credentials);
        let joined = {
            let open = lock(&self.open);
            open.get(&digest).and_then(|batch| {
                let mut ids = lock(&batch.ids);
                if ids.iter().any(|id| id == certificate_id) {
                    return Some(batch.answer.clone());
                }
                (ids.len() < MAX_DEPLOYED_RESOURCES_IDS).then(|| {
                    ids.push(certificate_id.to_owned());
                    batch.answer.clone()
                })
            })
        };
        let answer = match joined {
            Some(mut waiting) => {
                let answered = waiting.wait_for(Option::is_some).await.map(|a| a.clone());
                answered
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| Err(rejected("the batched request was abandoned".into())))
            }
            None => self.lead(scm, credentials, &digest, certificate_id).await,
        };
        answer.map(|held| held.get(certificate_id).cloned().unwrap_or_default())
    }

    /// Opens a batch, waits for others to join, sends it and shares the answer.
    async fn lead(
        &self,
        scm: &ScmClient,
        credentials: &Credentials,
        digest: &str,
        certificate_id: &str,
    ) -> Result<Arc<Deployed>, PushFailure> {
        let (tell, answer) = watch::channel(None);
        let ids = Arc::new(Mutex::new(vec![certificate_id.to_owned()]));
        // A full batch of this credential is replaced here; its leader still holds its IDs.
        lock(&self.open).insert(
            digest.to_owned(),
            Batch {
                ids: Arc::clone(&ids),
                answer,
            },
        );
        tokio::time::sleep(WINDOW).await;
        {
            let mut open = lock(&self.open);
            if open.get(digest).is_some_and(|b| Arc::ptr_eq(&b.ids, &ids)) {
                open.remove(digest);
            }
        }
        let ids = lock(&ids).clone();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let answered = scm.deployed_resources(credentials, &refs, None).await.map(Arc::new);
        tell.send_replace(Some(answered.clone()));
        answered
    }
}
