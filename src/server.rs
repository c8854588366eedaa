//! The operator's own HTTP endpoints: `/healthz`, `/readyz` and `/metrics`.
//!
//! Readiness follows the watches: ready once every watch has listed its objects, and not ready while a watch
//! has been failing for longer than `--unready-after-seconds` (the controller then acts on a stale view).
//! Liveness fails once a watch has been failing for longer than `--unhealthy-after-seconds`: the watch did not
//! recover on its own, and a restart gets fresh connections and credentials.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kube::runtime::watcher;

use prometheus_client::registry::Registry;

use crate::metrics;

/// Health of one watch stream, fed from its events.
#[derive(Debug, Default)]
pub struct WatchHealth(Mutex<WatchState>);

#[derive(Debug, Default, Clone, Copy)]
struct WatchState {
    synced: bool,
    failing_since: Option<Instant>,
}

impl WatchHealth {
    /// Records one item of a watch stream: the end of a complete list syncs it, any event ends a failure.
    pub fn observe<K, E>(&self, item: &Result<watcher::Event<K>, E>) {
        let list_done = item
            .as_ref()
            .map(|e| matches!(e, watcher::Event::InitDone))
            .map_err(|_| ());
        self.observe_at(list_done, Instant::now());
    }

    fn observe_at(&self, item: Result<bool, ()>, now: Instant) {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match item {
            Ok(list_done) => {
                state.synced |= list_done;
                state.failing_since = None;
            }
            Err(()) => {
                state.failing_since.get_or_insert(now);
            }
        }
    }

    /// Why this watch is not ready at `now`, if it is not.
    fn problem(&self, now: Instant, bound: Duration) -> Option<String> {
        let state = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        match state.failing_since.map(|since| now.saturating_duration_since(since)) {
            Some(failing) if failing > bound => Some(format!("failing for {} s", failing.as_secs())),
            _ if !state.synced => Some("not synced yet".into()),
            _ => None,
        }
    }
}

/// What the endpoints report on.
#[derive(Clone)]
pub struct Health {
    /// The watches readiness and liveness follow, by name.
    pub watches: Vec<(String, Arc<WatchHealth>)>,
    /// The metrics to serve, registered by their owners before the server starts.
    pub registry: Arc<Registry>,
    /// A watch failing continuously for this long makes `/readyz` fail.
    pub unready_after: Duration,
    /// A watch failing continuously for this long makes `/healthz` fail.
    pub unhealthy_after: Duration,
}

impl Health {
    /// The watches with a problem at `now` (a liveness check ignores "not synced yet").
    fn problems(&self, now: Instant, bound: Duration, liveness: bool) -> Vec<String> {
        self.watches
            .iter()
            .filter_map(|(name, w)| {
                let problem = w.problem(now, bound)?;
                (!liveness || problem.starts_with("failing")).then(|| format!("{name} watch {problem}"))
            })
            .collect()
    }
}

/// The router, separate from binding so tests can serve it on any listener.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(serve_metrics))
        .with_state(health)
}

fn answer(problems: Vec<String>) -> (StatusCode, String) {
    if problems.is_empty() {
        (StatusCode::OK, "ok".into())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("; "))
    }
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    answer(h.problems(Instant::now(), h.unready_after, false))
}

async fn healthz(State(h): State<Health>) -> impl IntoResponse {
    answer(h.problems(Instant::now(), h.unhealthy_after, true))
}

async fn serve_metrics(State(h): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics::encode(&h.registry),
    )
}

/// Serves the endpoints on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, health: Health) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, router(health)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNREADY_AFTER: Duration = Duration::from_secs(60);
    const UNHEALTHY_AFTER: Duration = Duration::from_secs(600);

    fn health() -> (Health, Arc<WatchHealth>, Arc<WatchHealth>) {
        let pushes = Arc::new(WatchHealth::default());
        let secrets = Arc::new(WatchHealth::default());
        let mut registry = Registry::default();
        metrics::Metrics::register(&mut registry).reconciled("pushed");
        let health = Health {
            watches: vec![
                ("certificatepushes".into(), pushes.clone()),
                ("secrets".into(), secrets.clone()),
            ],
            registry: Arc::new(registry),
            unready_after: UNREADY_AFTER,
            unhealthy_after: UNHEALTHY_AFTER,
        };
        (health, pushes, secrets)
    }

    /// Defect: readiness was set once and ignored the Secret watch and later failures.
    #[test]
    fn ready_needs_both_watches_and_drops_after_a_long_failure() {
        let (h, pushes, secrets) = health();
        let t0 = Instant::now();
        let ready = |at: Instant| h.problems(at, UNREADY_AFTER, false);
        let live = |at: Instant| h.problems(at, UNHEALTHY_AFTER, true);
        assert_eq!(ready(t0).len(), 2);
        assert!(live(t0).is_empty(), "not synced yet is no reason to restart");
        pushes.observe_at(Ok(false), t0);
        pushes.observe_at(Ok(true), t0);
        assert_eq!(ready(t0), ["secrets watch not synced yet"]);
        secrets.observe_at(Ok(true), t0);
        assert!(ready(t0).is_empty());
        // A short failure (a watch reconnecting) keeps the pod ready; a long one does not.
        secrets.observe_at(Err(()), t0);
        secrets.observe_at(Err(()), t0 + Duration::from_secs(30));
        assert!(ready(t0 + Duration::from_secs(30)).is_empty());
        let later = t0 + UNREADY_AFTER + Duration::from_secs(1);
        assert_eq!(ready(later), ["secrets watch failing for 61 s"]);
        assert!(live(later).is_empty());
        let much_later = t0 + UNHEALTHY_AFTER + Duration::from_secs(1);
        assert_eq!(live(much_later).len(), 1);
        // Any event after the failure means the watch works again.
        secrets.observe_at(Ok(false), much_later);
        assert!(ready(much_later).is_empty() && live(much_later).is_empty());
    }

    #[tokio::test]
    async fn endpoints_answer_over_http() {
        crate::install_crypto_provider();
        let (health, pushes, secrets) = health();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(listener, health.clone()));
        let get = |path: &'static str| {
            let url = format!("{base}{path}");
            async move {
                let r = reqwest::get(url).await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        assert_eq!(get("/healthz").await, (200, "ok".to_string()));
        assert_eq!(get("/readyz").await.0, 503, "not ready before the watches synced");
        pushes.observe(&Ok::<_, ()>(watcher::Event::<()>::InitDone));
        assert_eq!(get("/readyz").await.0, 503, "the Secret watch counts too");
        secrets.observe(&Ok::<_, ()>(watcher::Event::<()>::InitDone));
        assert_eq!(get("/readyz").await, (200, "ok".to_string()));
        let (code, text) = get("/metrics").await;
        assert_eq!(code, 200);
        assert!(
            text.contains("certpush_reconciles_total{result=\"pushed\"} 1"),
            "{text}"
        );
        assert_eq!(get("/nope").await.0, 404);
    }
}
