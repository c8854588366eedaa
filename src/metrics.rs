//! Prometheus metrics. Labels are closed sets (results, status codes), never object names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label of `certpush_reconciles_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// pushed, push_failed, credentials_error, unchanged, waiting, stalled or error.
    pub result: &'static str,
}

/// Label of `certpush_scm_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The HTTP status code, or "network_error" when none came back.
    pub code: String,
}

/// The operator's metrics and the registry that serves them.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Reconciles by result.
    pub reconciles: Family<ResultLabel, Counter>,
    /// SCM push requests by response code.
    pub scm_requests: Family<CodeLabel, Counter>,
    /// Duration of SCM push requests.
    pub scm_request_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("certpush");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of CertificatePushes by result",
            reconciles.clone(),
        );
        let scm_requests = Family::<CodeLabel, Counter>::default();
        registry.register(
            "scm_requests",
            "SCM push requests by HTTP status code",
            scm_requests.clone(),
        );
        let scm_request_seconds = Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        registry.register(
            "scm_request_duration_seconds",
            "Duration of SCM push requests",
            scm_request_seconds.clone(),
        );
        Self {
            registry,
            reconciles,
            scm_requests,
            scm_request_seconds,
        }
    }
}

impl Metrics {
    /// Counts one reconcile.
    pub fn reconciled(&self, result: &'static str) {
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
    }

    /// Counts one SCM request by its status code (None: no response).
    pub fn scm_request(&self, status: Option<u16>, seconds: f64) {
        let code = status.map_or_else(|| "network_error".to_string(), |s| s.to_string());
        self.scm_requests.get_or_create(&CodeLabel { code }).inc();
        self.scm_request_seconds.observe(seconds);
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_up_in_the_text_format() {
        let m = Metrics::default();
        m.reconciled("pushed");
        m.reconciled("pushed");
        m.scm_request(Some(204), 0.1);
        m.scm_request(None, 5.0);
        let text = m.encode();
        assert!(
            text.contains("certpush_reconciles_total{result=\"pushed\"} 2"),
            "{text}"
        );
        assert!(text.contains("certpush_scm_requests_total{code=\"204\"} 1"), "{text}");
        assert!(
            text.contains("certpush_scm_requests_total{code=\"network_error\"} 1"),
            "{text}"
        );
        assert!(text.contains("certpush_scm_request_duration_seconds_count 2"), "{text}");
    }
}
