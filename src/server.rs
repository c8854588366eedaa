//! The operator's own HTTP endpoints: `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// What the endpoints report on.
#[derive(Clone)]
pub struct Health {
    /// Set once the CertificatePush watch has synced.
    pub ready: Arc<AtomicBool>,
    /// The metrics to serve.
    pub metrics: Arc<Metrics>,
}

/// The router, separate from binding so tests can serve it on any listener.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "watches not synced yet")
    }
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
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

    #[tokio::test]
    async fn endpoints_answer_over_http() {
        crate::install_crypto_provider();
        let health = Health {
            ready: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(Metrics::default()),
        };
        health.metrics.reconciled("pushed");
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
        assert_eq!(get("/readyz").await.0, 503, "not ready before the watch synced");
        health.ready.store(true, Ordering::Relaxed);
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
