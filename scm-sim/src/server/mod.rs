//! HTTP serving: an axum router for the SCM (and IAM domains) and `/sim/` admin APIs behind a thin hyper connection loop.
//!
//! The loop exists only because axum's own `serve` always answers: the `drop` and `drop_after_push` faults need a
//! connection closed without a response, so a handler marks its response with `DropConnection` and the loop turns
//! that into a connection error.

mod admin;
mod iam;
mod record;
mod reply;
mod scm;

pub use scm::REGION_BUSY;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use self::reply::{DropConnection, SimReply};
use crate::Shared;

/// Returned to hyper to make it close the connection without writing a response.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
struct DroppedByFault;

/// Accepts connections until shutdown is signalled, then closes the listener.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    stopped: watch::Sender<bool>,
) {
    let app = router(shared);
    let connection_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            _ = stop_requested(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Small JSON responses on keep-alive connections would otherwise wait on Nagle.
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, app.clone(), connection_shutdown.clone()));
                }
                Err(error) => {
                    // Typically fd exhaustion; back off instead of spinning.
                    tracing::warn!(%error, "scm-sim accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    stopped.send_replace(true);
}

/// Resolves once shutdown is signalled (or the handle side is gone).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`, so it must not outlive this function.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Serves one connection until it ends or shutdown is signalled; a reply marked `DropConnection` closes it unanswered.
async fn serve_connection(stream: tokio::net::TcpStream, app: Router, mut shutdown: watch::Receiver<bool>) {
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        // Processing runs in its own task so that a client giving up mid-delay does not cancel it:
        // like a real server, the push still takes effect and is recorded with what was answered.
        let task = tokio::spawn(app.clone().oneshot(request.map(Body::new)));
        async move {
            match task.await {
                Ok(Ok(response)) if response.extensions().get::<DropConnection>().is_some() => Err(DroppedByFault),
                Ok(Ok(response)) => Ok(response),
                Ok(Err(infallible)) => match infallible {},
                Err(error) => {
                    tracing::error!(%error, "scm-sim handler failed");
                    Ok(
                        SimReply::scm_error(StatusCode::INTERNAL_SERVER_ERROR, "SCM.0001", "Internal server error.")
                            .into_response(),
                    )
                }
            }
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "scm-sim connection ended with an error");
            }
        }
        _ = stop_requested(&mut shutdown) => {}
    }
}

/// The SCM API (recorded, delayed by the configured latency) and the unrecorded `/sim/` admin API.
fn router(shared: Arc<Shared>) -> Router {
    let scm = Router::new()
        .route("/v3/scm/certificates", get(scm::list))
        .route("/v3/scm/certificates/import", post(scm::import))
        .route("/v3/scm/certificates/{id}", get(scm::show).delete(scm::delete))
        .route("/v3/scm/certificates/{id}/push", post(scm::push))
        .route("/v3/scm/certificates/{id}/batch-push", post(scm::batch_push))
        .route("/v3/scm/certificates/{id}/deploy", post(scm::deploy))
        .route("/v3/scm/deployed-resources", post(scm::deployed_resources))
        // IAM on the same address: tests point the operator's IAM endpoint at the simulator.
        .route(crate::IAM_DOMAINS_PATH, get(iam::domains))
        // The API gateway answers a wrong path and a wrong method alike.
        .fallback(scm::not_found)
        .method_not_allowed_fallback(scm::not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), record::record))
        .with_state(Arc::clone(&shared));
    let admin = Router::new()
        .route("/healthz", get(admin::healthz))
        .route("/calls", get(admin::calls))
        .route("/faults", post(admin::faults))
        .route("/reset", post(admin::reset))
        .route("/tokens", put(admin::tokens))
        .route("/access-keys", put(admin::access_keys))
        .route("/certificates", post(admin::certificates))
        .route("/list-mode", put(admin::list_mode))
        .route("/deployments", get(admin::deployments))
        .route("/copies", get(admin::copies))
        .route("/deploy-failures", post(admin::deploy_failures))
        .route("/failing-regions", post(admin::failing_regions))
        .route("/in-use", post(admin::in_use))
        .route(
            "/unreadable-regions",
            post(admin::fail_region_read).delete(admin::heal_region_read),
        )
        .route("/resource-id-mode", put(admin::resource_id_mode))
        .route("/domains", put(admin::domains))
        .route("/iam", put(admin::iam))
        .fallback(admin::not_found)
        .method_not_allowed_fallback(admin::not_found)
        .with_state(shared);
    Router::new().nest("/sim", admin).merge(scm)
}
