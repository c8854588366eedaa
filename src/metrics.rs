//! Prometheus metrics. Labels are closed sets (results, status codes), except the certificate expiry gauge, which
//! has one series per CertificatePush that imports a certificate (bounded by the number of such objects).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::scm::Transport;

/// Label of `certpush_reconciles_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// pushed, push_failed, import_failed, credentials_error, invalid, unchanged, waiting, stalled or error.
    pub result: &'static str,
}

/// Label of `certpush_scm_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The HTTP status code; `not_sent` when no connection was made; `outcome_unknown` when the request may have
    /// been sent but no answer came back (the push may have landed).
    pub code: String,
}

/// Label of `certpush_status_write_failures_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteFailureLabel {
    /// `invalid`: the API server refused the status (422).
    pub reason: &'static str,
}

/// Labels of `certpush_certificate_expiration_timestamp_seconds`: the CertificatePush.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabel {
    /// Namespace of the CertificatePush.
    pub namespace: String,
    /// Name of the CertificatePush.
    pub name: String,
}

/// Label of `leader_election_master_status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabel {
    /// Name of the Lease.
    pub name: String,
}

/// The operator's metrics and the registry that serves them.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Reconciles by result.
    pub reconciles: Family<ResultLabel, Counter>,
    /// SCM requests (push, list, import, delete) by response code.
    pub scm_requests: Family<CodeLabel, Counter>,
    /// Duration of SCM requests.
    pub scm_request_seconds: Histogram,
    /// Status writes that cannot succeed by retrying.
    pub status_write_failures: Family<WriteFailureLabel, Counter>,
    /// notAfter of the certificate each CertificatePush imported, as Unix seconds.
    pub certificate_expiration: Family<ObjectLabel, Gauge>,
    /// 1 while this replica leads (always, without leader election), 0 while it stands by.
    pub leader: Family<LeaseLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        // The operator's own metrics carry the certpush_ prefix; the names dashboards already know
        // (controller-runtime's leader_election_master_status) stay unprefixed.
        let mut root = Registry::default();
        let leader = Family::<LeaseLabel, Gauge>::default();
        root.register(
            "leader_election_master_status",
            "1 while this replica leads (holds the Lease), 0 while it stands by",
            leader.clone(),
        );
        let registry = root.sub_registry_with_prefix("certpush");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of CertificatePushes by result",
            reconciles.clone(),
        );
        let scm_requests = Family::<CodeLabel, Counter>::default();
        registry.register("scm_requests", "SCM requests by HTTP status code", scm_requests.clone());
        let scm_request_seconds = Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        registry.register(
            "scm_request_duration_seconds",
            "Duration of SCM requests",
            scm_request_seconds.clone(),
        );
        let status_write_failures = Family::<WriteFailureLabel, Counter>::default();
        registry.register(
            "status_write_failures",
            "Status writes the API server refused and retrying cannot fix",
            status_write_failures.clone(),
        );
        let certificate_expiration = Family::<ObjectLabel, Gauge>::default();
        registry.register(
            "certificate_expiration_timestamp_seconds",
            "End of validity of the certificate a CertificatePush imported from its source Secret (Unix seconds)",
            certificate_expiration.clone(),
        );
        Self {
            registry: root,
            reconciles,
            scm_requests,
            scm_request_seconds,
            status_write_failures,
            certificate_expiration,
            leader,
        }
    }
}

impl Metrics {
    /// Counts one reconcile.
    pub fn reconciled(&self, result: &'static str) {
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
    }

    /// Counts one SCM request by what came back.
    pub fn scm_request(&self, transport: &Transport, seconds: f64) {
        let code = match transport {
            Transport::Answered(r) => r.status.to_string(),
            Transport::NotSent(_) => "not_sent".to_string(),
            Transport::NoAnswer(_) => "outcome_unknown".to_string(),
        };
        self.scm_requests.get_or_create(&CodeLabel { code }).inc();
        self.scm_request_seconds.observe(seconds);
    }

    /// Counts one status write that retrying cannot fix.
    pub fn status_write_failed(&self, reason: &'static str) {
        self.status_write_failures
            .get_or_create(&WriteFailureLabel { reason })
            .inc();
    }

    /// Records the expiry of the certificate `namespace/name` imported (`status.notAfter`), or drops its series.
    pub fn certificate_expires(&self, namespace: &str, name: &str, not_after: Option<jiff::Timestamp>) {
        let label = ObjectLabel {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        match not_after {
            Some(at) => {
                self.certificate_expiration.get_or_create(&label).set(at.as_second());
            }
            None => {
                self.certificate_expiration.remove(&label);
            }
        }
    }

    /// Records whether this replica leads the election for `lease`.
    pub fn leading(&self, lease: &str, leads: bool) {
        self.leader
            .get_or_create(&LeaseLabel { name: lease.to_owned() })
            .set(i64::from(leads));
    }

    /// Drops every per-object series; reconciles after a re-list record the live objects again.
    pub fn forget_objects(&self) {
        self.certificate_expiration.clear();
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
        let reply = |status| {
            Transport::Answered(crate::scm::ScmResponse {
                status,
                request_id: None,
                retry_after: None,
                body: Vec::new(),
            })
        };
        m.scm_request(&reply(204), 0.1);
        m.scm_request(&Transport::NoAnswer("reset".into()), 5.0);
        m.scm_request(&Transport::NotSent("refused".into()), 5.0);
        let text = m.encode();
        assert!(
            text.contains("certpush_reconciles_total{result=\"pushed\"} 2"),
            "{text}"
        );
        assert!(text.contains("certpush_scm_requests_total{code=\"204\"} 1"), "{text}");
        assert!(
            text.contains("certpush_scm_requests_total{code=\"outcome_unknown\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("certpush_scm_requests_total{code=\"not_sent\"} 1"),
            "{text}"
        );
        assert!(text.contains("certpush_scm_request_duration_seconds_count 3"), "{text}");
    }

    #[test]
    fn certificate_expiry_is_one_series_per_object_and_goes_with_it() {
        let m = Metrics::default();
        let at: jiff::Timestamp = "2026-04-01T00:00:00Z".parse().unwrap();
        m.certificate_expires("web", "www", Some(at));
        let series = "certpush_certificate_expiration_timestamp_seconds{namespace=\"web\",name=\"www\"} 1775001600";
        assert!(m.encode().contains(series), "{}", m.encode());
        m.certificate_expires("web", "www", None);
        assert!(!m.encode().contains("namespace=\"web\""), "{}", m.encode());
    }
}
