//! The controller's Prometheus metrics: controller-runtime's names (which Kubernetes dashboards and alerts already
//! use), the leader election status, the operator's own `certpush_*` reconcile metrics, and `certpush_resources`,
//! counted from the cache at each scrape. The SCM client registers its own ([`crate::scm::ScmMetrics`]).
//!
//! Labels are closed sets (results, reasons), except the certificate expiry gauge, which has one series per
//! CertificatePush that imports a certificate (bounded by the number of such objects).

use std::collections::HashMap;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::crd::CertificatePush;
use crate::status;

mod api;
mod process;
pub use api::KubeRequests;
pub use process::{ProcessMetrics, ProcessSample};

/// The name controller-runtime metrics carry for this operator's one controller.
pub const CONTROLLER: &str = "certificatepush";

/// Label of `certpush_reconciles_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// pushed, push_failed, import_failed, credentials_error, invalid, unchanged, waiting, stalled, standby or error.
    pub result: &'static str,
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
    /// The object's namespace, so a team sees its own objects (bounded by the namespaces with CertificatePushes).
    pub namespace: String,
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

/// The controller's metrics; registered once, then shared by every reconcile.
#[derive(Debug)]
pub struct Metrics {
    /// Reconciles by the operator's own result.
    reconciles: Family<ResultLabel, Counter>,
    /// Status writes that cannot succeed by retrying.
    status_write_failures: Family<WriteFailureLabel, Counter>,
    /// 1 while this replica leads (always, without leader election), 0 while it stands by.
    leader: Family<LeaseLabel, Gauge>,
    /// controller_runtime_reconcile_total.
    reconcile_total: Family<ControllerResultLabels, Counter>,
    /// controller_runtime_reconcile_errors_total.
    reconcile_errors: Family<ControllerLabel, Counter>,
    /// controller_runtime_reconcile_time_seconds.
    reconcile_seconds: Family<ControllerLabel, Histogram>,
    /// controller_runtime_max_concurrent_reconciles.
    max_concurrent: Family<ControllerLabel, Gauge>,
    /// controller_runtime_active_workers.
    active_workers: Family<ControllerLabel, Gauge>,
}

/// controller-runtime's reconcile time buckets.
const RECONCILE_BUCKETS: [f64; 40] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5,
    1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0,
];

/// Labels of `certpush_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

impl Metrics {
    /// Registers the controller's metrics in `root`: controller-runtime's names unprefixed, the operator's own under
    /// `certpush_`.
    pub fn register(root: &mut Registry) -> Self {
        let m = Self {
            reconciles: Family::default(),
            status_write_failures: Family::default(),
            leader: Family::default(),
            reconcile_total: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_seconds: Family::new_with_constructor(|| Histogram::new(RECONCILE_BUCKETS)),
            max_concurrent: Family::default(),
            active_workers: Family::default(),
        };
        root.register(
            "leader_election_master_status",
            "1 while this replica leads (holds the Lease), 0 while it stands by",
            m.leader.clone(),
        );
        root.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            m.reconcile_total.clone(),
        );
        root.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            m.reconcile_errors.clone(),
        );
        root.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            m.reconcile_seconds.clone(),
        );
        root.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            m.max_concurrent.clone(),
        );
        root.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            m.active_workers.clone(),
        );
        root.register_collector(Box::new(ProcessMetrics));
        let own = root.sub_registry_with_prefix(PREFIX);
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: env!("CERTPUSH_COMMIT"),
            })
            .set(1);
        own.register(
            "build_info",
            "The operator's version and the commit it was built from; always 1",
            build,
        );
        own.register(
            "reconciles",
            "Reconciles of CertificatePushes by result",
            m.reconciles.clone(),
        );
        own.register(
            "status_write_failures",
            "Status writes the API server refused and retrying cannot fix",
            m.status_write_failures.clone(),
        );
        m
    }

    /// Counts one reconcile by the operator's own result.
    pub fn reconciled(&self, result: &'static str) {
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
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

    /// Counts one status write that retrying cannot fix.
    pub fn status_write_failed(&self, reason: &'static str) {
        self.status_write_failures
            .get_or_create(&WriteFailureLabel { reason })
            .inc();
    }

    /// Records whether this replica leads the election for `lease`.
    pub fn leading(&self, lease: &str, leads: bool) {
        self.leader
            .get_or_create(&LeaseLabel { name: lease.to_owned() })
            .set(i64::from(leads));
    }
}

/// The prefix of the operator's own metrics (`certpush_`).
pub const PREFIX: &str = "certpush";

/// Prometheus text exposition of every metric in `registry`.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// The gauges read from the controller's cache when `/metrics` is scraped, so they are never stale, are complete
/// right after a re-list, and need no bookkeeping on every change: `certpush_resources` (objects by Ready status
/// and reason) and `certpush_certificate_expiration_timestamp_seconds` (the `status.pushed.notAfter` of each object: the
/// certificate serving, not a renewal still on its way).
#[derive(Debug)]
pub struct CacheMetrics(pub Store<CertificatePush>);

impl CacheMetrics {
    /// Objects by the Ready condition's (status, reason); both empty before the first status.
    fn resources(&self) -> Family<ResourceLabels, Gauge> {
        let mut counts: HashMap<ResourceLabels, i64> = HashMap::new();
        for cp in self.0.state() {
            let (ready, reason) = cp
                .status
                .as_ref()
                .and_then(status::ready)
                .map_or_else(Default::default, |c| (c.status.clone(), c.reason.clone()));
            let key = ResourceLabels {
                namespace: cp.namespace().unwrap_or_default(),
                ready,
                reason,
            };
            *counts.entry(key).or_default() += 1;
        }
        let family = Family::<ResourceLabels, Gauge>::default();
        for (labels, n) in counts {
            family.get_or_create(&labels).set(n);
        }
        family
    }

    /// One series per object whose status records the `notAfter` of the certificate it pushed.
    fn expirations(&self) -> Family<ObjectLabel, Gauge> {
        let family = Family::<ObjectLabel, Gauge>::default();
        for cp in self.0.state() {
            let not_after = cp.status.as_ref().and_then(status::serving_not_after);
            if let Some(at) = not_after.and_then(status::parse_time) {
                let label = ObjectLabel {
                    namespace: cp.namespace().unwrap_or_default(),
                    name: cp.name_any(),
                };
                family.get_or_create(&label).set(at.as_second());
            }
        }
        family
    }
}

impl Collector for CacheMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let resources = self.resources();
        let metric = encoder.encode_descriptor(
            "resources",
            "CertificatePushes in the operator's cache by Ready status and reason",
            None,
            resources.metric_type(),
        )?;
        resources.encode(metric)?;
        let expirations = self.expirations();
        let metric = encoder.encode_descriptor(
            "certificate_expiration_timestamp_seconds",
            "End of validity of the certificate a CertificatePush imported from its source Secret (Unix seconds)",
            None,
            expirations.metric_type(),
        )?;
        expirations.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::{reflector, watcher};

    #[test]
    fn counters_show_up_in_the_text_format() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.reconciled("pushed");
        m.reconciled("pushed");
        m.status_write_failed("invalid");
        let text = encode(&registry);
        assert!(text.contains(&format!(
            "certpush_build_info{{version=\"{}\",commit=\"",
            env!("CARGO_PKG_VERSION")
        )));
        if cfg!(target_os = "linux") {
            assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
            assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        }
        for line in [
            "certpush_reconciles_total{result=\"pushed\"} 2",
            "certpush_status_write_failures_total{reason=\"invalid\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    /// An object in the cache whose Ready condition is (`ready`, `reason`).
    fn object(name: &str, ready: &str, reason: &str) -> CertificatePush {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "CertificatePush",
            "metadata": {"name": name, "namespace": "ns", "uid": name},
            "spec": {"certificateId": "scs1554192131150", "targetService": "WAF", "targetProject": "cn-north-4",
                     "credentialsRef": {"name": "scm"}},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": "",
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }))
        .unwrap()
    }

    #[test]
    fn controller_runtime_names_and_the_resource_gauge() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.max_concurrent_reconciles(16);
        m.reconcile_finished("success", 0.02);
        m.reconcile_finished("error", 0.5);
        let workers = m.workers();
        workers.inc();
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for (name, ready, reason) in [
            ("a", "True", "Pushed"),
            ("b", "True", "Pushed"),
            ("c", "True", "Pushed"),
            ("d", "False", "Unauthorized"),
        ] {
            writer.apply_watcher_event(&watcher::Event::InitApply(object(name, ready, reason)));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        registry
            .sub_registry_with_prefix(PREFIX)
            .register_collector(Box::new(CacheMetrics(store)));
        let text = encode(&registry);
        for line in [
            "controller_runtime_reconcile_total{controller=\"certificatepush\",result=\"success\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"certificatepush\"} 1",
            "controller_runtime_reconcile_time_seconds_count{controller=\"certificatepush\"} 2",
            "controller_runtime_max_concurrent_reconciles{controller=\"certificatepush\"} 16",
            "controller_runtime_active_workers{controller=\"certificatepush\"} 1",
            "certpush_resources{namespace=\"ns\",ready=\"True\",reason=\"Pushed\"} 3",
            "certpush_resources{namespace=\"ns\",ready=\"False\",reason=\"Unauthorized\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    /// Defect: the series were set by reconciles and all cleared when a re-list finished, which could come after
    /// the re-list's own reconciles had set them: the gauge stayed incomplete until each object was reconciled again.
    /// Read from the cache at scrape time, it is complete whenever the cache is.
    #[test]
    fn certificate_expiry_is_one_series_per_object_and_goes_with_it() {
        let mut registry = Registry::default();
        let (store, mut writer) = reflector::store();
        registry
            .sub_registry_with_prefix(PREFIX)
            .register_collector(Box::new(CacheMetrics(store)));
        let mut www = object("www", "True", "Pushed");
        www.metadata.namespace = Some("web".into());
        www.status.as_mut().unwrap().pushed = Some(crate::crd::PushedTarget {
            deploy_only: false,
            certificate_id: "scsA".into(),
            target_service: crate::crd::TargetService::Waf,
            target_project: "cn-north-4".into(),
            generation: 1,
            not_after: Some("2026-04-01T00:00:00Z".into()),
        });
        // A renewal whose import or push failed: status.notAfter is the renewal's, the gauge stays with the one serving.
        www.status.as_mut().unwrap().not_after = Some("2026-07-01T00:00:00Z".into());
        let plain = object("plain", "True", "Pushed");
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(www.clone()));
        writer.apply_watcher_event(&watcher::Event::InitApply(plain));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let series = "certpush_certificate_expiration_timestamp_seconds{namespace=\"web\",name=\"www\"} 1775001600";
        let text = encode(&registry);
        assert!(text.contains(series), "{text}");
        assert!(!text.contains("name=\"plain\""), "no notAfter, no series: {text}");
        writer.apply_watcher_event(&watcher::Event::Delete(www));
        assert!(
            !encode(&registry).contains("namespace=\"web\""),
            "{}",
            encode(&registry)
        );
    }
}
