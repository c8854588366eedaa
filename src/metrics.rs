//! Prometheus metrics: controller-runtime's names (which Kubernetes dashboards and alerts already use), the
//! leader election status, and the operator's own `certpush_*` metrics.
//!
//! Labels are closed sets (results, operations, status codes, Huawei's error codes), except the certificate expiry
//! gauge, which has one series per CertificatePush that imports a certificate (bounded by the number of such
//! objects).

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::scm::Transport;

/// The name controller-runtime metrics carry for this operator's one controller.
pub const CONTROLLER: &str = "certificatepush";

/// Label of `certpush_reconciles_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// pushed, push_failed, import_failed, credentials_error, invalid, unchanged, waiting, stalled, standby or error.
    pub result: &'static str,
}

/// Labels of `certpush_scm_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScmLabels {
    /// push, list, import or delete.
    pub operation: &'static str,
    /// The HTTP status code; `not_sent` when no connection was made; `outcome_unknown` when the request may have
    /// been sent but no answer came back (the push may have landed).
    pub code: String,
    /// Huawei's `error_code` (`SCM.0028`, `APIGW.0301`, ...), empty without one; anything not of that form is
    /// `other`, so the set stays bounded by Huawei's tables.
    pub error_code: String,
}

/// Label of `certpush_scm_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    /// push, list, import or delete.
    pub operation: &'static str,
}

/// Label of the controller-runtime metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    /// Always [`CONTROLLER`].
    pub controller: &'static str,
}

/// Labels of `controller_runtime_reconcile_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerResultLabels {
    /// Always [`CONTROLLER`].
    pub controller: &'static str,
    /// success, requeue_after or error, as controller-runtime names them.
    pub result: &'static str,
}

/// Labels of `certpush_resources`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// The Ready condition's status (True, False, Unknown; empty before the first status).
    pub ready: String,
    /// The Ready condition's reason (one of the operator's reasons; empty before the first status).
    pub reason: String,
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

/// Counts of objects by (Ready status, reason), read from the controller's cache when /metrics is scraped.
pub type ResourceCounter = Box<dyn Fn() -> Vec<((String, String), i64)> + Send + Sync>;

/// The operator's metrics and the registry that serves them.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Reconciles by the operator's own result.
    pub reconciles: Family<ResultLabel, Counter>,
    /// SCM requests by operation, response code and Huawei error code.
    pub scm_requests: Family<ScmLabels, Counter>,
    /// Duration of SCM requests by operation.
    pub scm_request_seconds: Family<OperationLabel, Histogram>,
    /// Status writes that cannot succeed by retrying.
    pub status_write_failures: Family<WriteFailureLabel, Counter>,
    /// notAfter of the certificate each CertificatePush imported, as Unix seconds.
    pub certificate_expiration: Family<ObjectLabel, Gauge>,
    /// 1 while this replica leads (always, without leader election), 0 while it stands by.
    pub leader: Family<LeaseLabel, Gauge>,
    /// controller_runtime_reconcile_total.
    pub reconcile_total: Family<ControllerResultLabels, Counter>,
    /// controller_runtime_reconcile_errors_total.
    pub reconcile_errors: Family<ControllerLabel, Counter>,
    /// controller_runtime_reconcile_time_seconds.
    pub reconcile_seconds: Family<ControllerLabel, Histogram>,
    /// controller_runtime_max_concurrent_reconciles.
    pub max_concurrent: Family<ControllerLabel, Gauge>,
    /// controller_runtime_active_workers.
    pub active_workers: Family<ControllerLabel, Gauge>,
    /// certpush_resources, filled from the resource counter at each scrape.
    pub resources: Family<ResourceLabels, Gauge>,
    resource_counter: OnceLock<ResourceCounter>,
}

/// controller-runtime's reconcile time buckets.
const RECONCILE_BUCKETS: [f64; 40] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5,
    1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0,
];

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        let leader = Family::<LeaseLabel, Gauge>::default();
        root.register(
            "leader_election_master_status",
            "1 while this replica leads (holds the Lease), 0 while it stands by",
            leader.clone(),
        );
        let reconcile_total = Family::<ControllerResultLabels, Counter>::default();
        root.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            reconcile_total.clone(),
        );
        let reconcile_errors = Family::<ControllerLabel, Counter>::default();
        root.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            reconcile_errors.clone(),
        );
        let reconcile_seconds =
            Family::<ControllerLabel, Histogram>::new_with_constructor(|| Histogram::new(RECONCILE_BUCKETS));
        root.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            reconcile_seconds.clone(),
        );
        let max_concurrent = Family::<ControllerLabel, Gauge>::default();
        root.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            max_concurrent.clone(),
        );
        let active_workers = Family::<ControllerLabel, Gauge>::default();
        root.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            active_workers.clone(),
        );

        let registry = root.sub_registry_with_prefix("certpush");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of CertificatePushes by result",
            reconciles.clone(),
        );
        let scm_requests = Family::<ScmLabels, Counter>::default();
        registry.register(
            "scm_requests",
            "SCM requests by operation, HTTP status code and Huawei error code",
            scm_requests.clone(),
        );
        let scm_request_seconds = Family::<OperationLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
        });
        registry.register(
            "scm_request_duration_seconds",
            "Duration of SCM requests by operation",
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
        let resources = Family::<ResourceLabels, Gauge>::default();
        registry.register(
            "resources",
            "CertificatePushes in the operator's cache by Ready status and reason",
            resources.clone(),
        );
        Self {
            registry: root,
            reconciles,
            scm_requests,
            scm_request_seconds,
            status_write_failures,
            certificate_expiration,
            leader,
            reconcile_total,
            reconcile_errors,
            reconcile_seconds,
            max_concurrent,
            active_workers,
            resources,
            resource_counter: OnceLock::new(),
        }
    }
}

/// Huawei's error codes as a bounded label: `SCM.0028`-shaped codes pass, anything else is `other`.
fn bounded_error_code(code: Option<String>) -> String {
    match code {
        None => String::new(),
        Some(c) => {
            let shaped = c.split_once('.').is_some_and(|(prefix, number)| {
                (2..=8).contains(&prefix.len())
                    && prefix.bytes().all(|b| b.is_ascii_uppercase())
                    && number.len() == 4
                    && number.bytes().all(|b| b.is_ascii_digit())
            });
            if shaped { c } else { "other".to_owned() }
        }
    }
}

impl Metrics {
    /// Counts one reconcile by the operator's own result.
    pub fn reconciled(&self, result: &'static str) {
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
    }

    /// Counts one SCM request of `operation` by what came back.
    pub fn scm_request(&self, operation: &'static str, transport: &Transport, seconds: f64) {
        let (code, error_code) = match transport {
            Transport::Answered(r) => {
                let code = crate::scm::outcome::parse_error_body(&r.body).code;
                (r.status.to_string(), bounded_error_code(code))
            }
            Transport::NotSent(_) => ("not_sent".to_owned(), String::new()),
            Transport::NoAnswer(_) => ("outcome_unknown".to_owned(), String::new()),
        };
        let labels = ScmLabels {
            operation,
            code,
            error_code,
        };
        self.scm_requests.get_or_create(&labels).inc();
        self.scm_request_seconds
            .get_or_create(&OperationLabel { operation })
            .observe(seconds);
    }

    /// Records one finished reconcile the way controller-runtime does: `success`, `requeue_after` or `error`.
    pub fn reconcile_finished(&self, result: &'static str, seconds: f64) {
        let controller = CONTROLLER;
        self.reconcile_total
            .get_or_create(&ControllerResultLabels { controller, result })
            .inc();
        if result == "error" {
            self.reconcile_errors
                .get_or_create(&ControllerLabel { controller })
                .inc();
        }
        self.reconcile_seconds
            .get_or_create(&ControllerLabel { controller })
            .observe(seconds);
    }

    /// The controller_runtime_active_workers gauge (a handle sharing the registered value).
    pub fn workers(&self) -> Gauge {
        self.active_workers
            .get_or_create(&ControllerLabel { controller: CONTROLLER })
            .clone()
    }

    /// Sets controller_runtime_max_concurrent_reconciles.
    pub fn max_concurrent_reconciles(&self, n: u16) {
        self.max_concurrent
            .get_or_create(&ControllerLabel { controller: CONTROLLER })
            .set(i64::from(n));
    }

    /// Installs what fills `certpush_resources` at each scrape (once; later calls are ignored).
    pub fn count_resources_with(&self, counter: ResourceCounter) {
        let _ = self.resource_counter.set(counter);
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
        if let Some(counter) = self.resource_counter.get() {
            self.resources.clear();
            for ((ready, reason), n) in counter() {
                self.resources.get_or_create(&ResourceLabels { ready, reason }).set(n);
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Transport {
        Transport::Answered(crate::scm::ScmResponse {
            status,
            request_id: None,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn counters_show_up_in_the_text_format() {
        let m = Metrics::default();
        m.reconciled("pushed");
        m.reconciled("pushed");
        m.scm_request("push", &reply(204, ""), 0.1);
        m.scm_request("push", &Transport::NoAnswer("reset".into()), 5.0);
        m.scm_request("import", &Transport::NotSent("refused".into()), 5.0);
        m.scm_request("push", &reply(400, r#"{"error_code":"SCM.0028","error_msg":"x"}"#), 0.1);
        m.scm_request(
            "list",
            &reply(500, r#"{"error_code":"whatever it likes","error_msg":"x"}"#),
            0.1,
        );
        let text = m.encode();
        for line in [
            "certpush_reconciles_total{result=\"pushed\"} 2",
            "certpush_scm_requests_total{operation=\"push\",code=\"204\",error_code=\"\"} 1",
            "certpush_scm_requests_total{operation=\"push\",code=\"outcome_unknown\",error_code=\"\"} 1",
            "certpush_scm_requests_total{operation=\"import\",code=\"not_sent\",error_code=\"\"} 1",
            "certpush_scm_requests_total{operation=\"push\",code=\"400\",error_code=\"SCM.0028\"} 1",
            "certpush_scm_requests_total{operation=\"list\",code=\"500\",error_code=\"other\"} 1",
            "certpush_scm_request_duration_seconds_count{operation=\"push\"} 3",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn controller_runtime_names_and_the_resource_gauge() {
        let m = Metrics::default();
        m.max_concurrent_reconciles(16);
        m.reconcile_finished("success", 0.02);
        m.reconcile_finished("error", 0.5);
        let workers = m.workers();
        workers.inc();
        m.count_resources_with(Box::new(|| {
            vec![
                (("True".into(), "Pushed".into()), 3),
                (("False".into(), "Unauthorized".into()), 1),
            ]
        }));
        let text = m.encode();
        for line in [
            "controller_runtime_reconcile_total{controller=\"certificatepush\",result=\"success\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"certificatepush\"} 1",
            "controller_runtime_reconcile_time_seconds_count{controller=\"certificatepush\"} 2",
            "controller_runtime_max_concurrent_reconciles{controller=\"certificatepush\"} 16",
            "controller_runtime_active_workers{controller=\"certificatepush\"} 1",
            "certpush_resources{ready=\"True\",reason=\"Pushed\"} 3",
            "certpush_resources{ready=\"False\",reason=\"Unauthorized\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
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
