//! `rest_client_request_duration_seconds` and `rest_client_requests_total`, as client-go names them: the operator's
//! requests to the API server by verb and resource, timed from the client's side (connection wait included), so a
//! slow reconcile can be told apart from a slow API server (whose own `apiserver_request_duration_seconds` excludes
//! the wait for a connection).

use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use http::Request;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tower::{Layer, Service};

/// Labels: the verb (APPLY for a server-side apply, as the API server counts it), the resource with its subresource
/// (`certificatepushes/status`), and for the counter the HTTP code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: &'static str,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    verb: &'static str,
    resource: String,
    code: String,
}

/// client-go's request latency buckets.
const BUCKETS: [f64; 12] = [0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0];

/// The API request metrics, and the tower layer that records them (put on the Kubernetes client).
#[derive(Clone, Debug)]
pub struct KubeRequests {
    seconds: Family<RequestLabels, Histogram>,
    total: Family<CodeLabels, Counter>,
}

impl KubeRequests {
    /// Registers both metrics in `root`, unprefixed like client-go's.
    pub fn register(root: &mut Registry) -> Self {
        let m = Self {
            seconds: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            total: Family::default(),
        };
        root.register(
            "rest_client_request_duration_seconds",
            "Request latency to the Kubernetes API server in seconds, by verb and resource (watches excluded)",
            m.seconds.clone(),
        );
        root.register(
            "rest_client_requests",
            "Requests to the Kubernetes API server, by verb, resource and HTTP code (watches excluded)",
            m.total.clone(),
        );
        m
    }
}

impl<S> Layer<S> for KubeRequests {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed {
            inner,
            metrics: self.clone(),
        }
    }
}

/// A Kubernetes client service that records each request in [`KubeRequests`].
#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
    metrics: KubeRequests,
}

impl<S, B, R> Service<Request<B>> for Timed<S>
where
    S: Service<Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let labels = labels(&request);
        let started = Instant::now();
        let answer = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let result = answer.await;
            // A watch answers its headers at once and then streams for minutes: its latency says nothing.
            if let Some(RequestLabels { verb, resource }) = labels {
                let code = match &result {
                    Ok(response) => response.status().as_u16().to_string(),
                    Err(_) => "<error>".to_owned(),
                };
                metrics
                    .seconds
                    .get_or_create(&RequestLabels {
                        verb,
                        resource: resource.clone(),
                    })
                    .observe(started.elapsed().as_secs_f64());
                metrics.total.get_or_create(&CodeLabels { verb, resource, code }).inc();
            }
            result
        })
    }
}

/// The verb and resource of a request to the API server; None for a watch.
fn labels<B>(request: &Request<B>) -> Option<RequestLabels> {
    let query = request.uri().query().unwrap_or_default();
    if query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1") {
        return None;
    }
    let apply = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/apply-patch"));
    let verb = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" if apply => "APPLY",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        _ => "OTHER",
    };
    Some(RequestLabels {
        verb,
        resource: resource(request.uri().path()),
    })
}

/// `certificatepushes/status` from `/apis/scm.certpush.dev/v1alpha1/namespaces/ns/certificatepushes/cp/status`.
fn resource(path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/group/version/...
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    let rest = match rest {
        ["namespaces", _, resource, more @ ..] => [&[*resource][..], more].concat(),
        other => other.to_vec(),
    };
    match rest.as_slice() {
        [] => path.to_owned(),
        [resource] | [resource, _] => (*resource).to_owned(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_named_as_the_api_server_counts_them() {
        for (path, want) in [
            (
                "/apis/scm.certpush.dev/v1alpha1/namespaces/a/certificatepushes/cp/status",
                "certificatepushes/status",
            ),
            (
                "/apis/scm.certpush.dev/v1alpha1/namespaces/a/certificatepushes",
                "certificatepushes",
            ),
            ("/api/v1/namespaces/a/secrets/scm", "secrets"),
            ("/apis/events.k8s.io/v1/namespaces/a/events", "events"),
            ("/api/v1/namespaces/a", "namespaces"),
            ("/api/v1/namespaces", "namespaces"),
            (
                "/apis/scm.certpush.dev/v1alpha1/clusterscmaccounts/shared",
                "clusterscmaccounts",
            ),
            ("/version", "/version"),
        ] {
            assert_eq!(resource(path), want, "{path}");
        }
    }

    #[test]
    fn an_apply_is_told_from_a_patch_and_a_watch_is_not_timed() {
        let apply = Request::patch("/api/v1/namespaces/a/secrets/s")
            .header("content-type", "application/apply-patch+yaml")
            .body(())
            .unwrap();
        assert_eq!(labels(&apply).map(|l| l.verb), Some("APPLY"));
        let patch = Request::patch("/api/v1/namespaces/a/secrets/s")
            .header("content-type", "application/merge-patch+json")
            .body(())
            .unwrap();
        assert_eq!(labels(&patch).map(|l| l.verb), Some("PATCH"));
        let watch = Request::get("/api/v1/namespaces/a/secrets?watch=true&resourceVersion=1")
            .body(())
            .unwrap();
        assert!(labels(&watch).is_none());
    }
}
