//! SCM request metrics, recorded by the client once per request, next to its rate limiter.
//!
//! Labels are closed sets: the operation, the HTTP status code (or what stood in for one) and Huawei's error code
//! in its documented shape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::outcome::{ScmResponse, Transport, parse_error_body};

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

/// The SCM client's metrics; clones share the series.
#[derive(Clone, Debug)]
pub struct ScmMetrics {
    requests: Family<ScmLabels, Counter>,
    seconds: Family<OperationLabel, Histogram>,
    clock_skew: Gauge<f64, AtomicU64>,
    waiting: Gauge,
}

/// One request counted in `certpush_scm_requests_waiting` until dropped.
pub struct WaitingRequest(Gauge);

impl Drop for WaitingRequest {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for ScmMetrics {
    /// Series that count but are not served (clients built without a registry, as in tests).
    fn default() -> Self {
        Self {
            requests: Family::default(),
            seconds: Family::new_with_constructor(|| Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])),
            clock_skew: Gauge::default(),
            waiting: Gauge::default(),
        }
    }
}

impl ScmMetrics {
    /// Registers the SCM metrics in `registry` (the operator's `certpush` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "scm_requests",
            "SCM requests by operation, HTTP status code and Huawei error code",
            metrics.requests.clone(),
        );
        registry.register(
            "scm_request_duration_seconds",
            "Duration of SCM requests by operation",
            metrics.seconds.clone(),
        );
        registry.register(
            "scm_requests_waiting",
            "SCM requests waiting for a rate-limit token inside the client, each holding a reconcile worker",
            metrics.waiting.clone(),
        );
        registry.register(
            "scm_clock_skew_seconds",
            "How far this operator's clock was ahead of SCM's (its Date header) at the last answer; SCM refuses AK/SK signatures more than 900 s off",
            metrics.clock_skew.clone(),
        );
        metrics
    }

    /// Counts one request as waiting for a token until the returned guard is dropped.
    pub fn waiting(&self) -> WaitingRequest {
        self.waiting.inc();
        WaitingRequest(self.waiting.clone())
    }

    /// Counts one request of `operation` by what came back.
    pub fn record(&self, operation: &'static str, transport: &Transport, seconds: f64) {
        let (code, error_code) = match transport {
            Transport::Answered(r) => (r.status.to_string(), bounded_error_code(parse_error_body(&r.body).code)),
            Transport::NotSent(_) => ("not_sent".to_owned(), String::new()),
            Transport::NoAnswer(_) => ("outcome_unknown".to_owned(), String::new()),
            // Not sent: the credential was refused (or its key locked) before.
            Transport::Withheld(f) => ("withheld".to_owned(), bounded_error_code(f.error_code.clone())),
            Transport::Deferred(_) => ("deferred".to_owned(), String::new()),
        };
        let labels = ScmLabels {
            operation,
            code,
            error_code,
        };
        self.requests.get_or_create(&labels).inc();
        if let Transport::Answered(ScmResponse {
            clock_skew: Some(skew), ..
        }) = transport
        {
            self.clock_skew.set(skew.as_secs_f64());
        }
        // A request withheld or deferred never left: its "duration" would drag the latency quantiles towards 0.
        if !matches!(transport, Transport::Withheld(_) | Transport::Deferred(_)) {
            self.seconds
                .get_or_create(&OperationLabel { operation })
                .observe(seconds);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::encode;

    fn reply(status: u16, body: &str) -> Transport {
        Transport::Answered(crate::scm::ScmResponse {
            status,
            request_id: None,
            retry_after: None,
            body: body.as_bytes().to_vec(),
            clock_skew: None,
        })
    }

    #[test]
    fn requests_show_up_in_the_text_format() {
        let mut root = Registry::default();
        let m = ScmMetrics::register(root.sub_registry_with_prefix("certpush"));
        m.record("push", &reply(204, ""), 0.1);
        m.record("push", &Transport::NoAnswer("reset".into()), 5.0);
        m.record("import", &Transport::NotSent("refused".into()), 5.0);
        m.record("push", &reply(400, r#"{"error_code":"SCM.0028","error_msg":"x"}"#), 0.1);
        m.record(
            "list",
            &reply(500, r#"{"error_code":"whatever it likes","error_msg":"x"}"#),
            0.1,
        );
        let text = encode(&root);
        for line in [
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

    /// Defect: a request withheld (refused credential) or deferred (rate limit) was observed as a 0 s request,
    /// dragging the latency quantiles down; it is counted by its code and left out of the durations.
    #[test]
    fn requests_that_never_left_are_counted_but_not_timed() {
        let mut root = Registry::default();
        let m = ScmMetrics::register(root.sub_registry_with_prefix("certpush"));
        m.record("push", &reply(204, ""), 0.3);
        m.record("push", &Transport::Deferred(std::time::Duration::from_secs(2)), 0.0);
        let refused = crate::scm::outcome::classify_as(&reply(401, r#"{"error_code":"APIGW.0301"}"#), 204);
        let crate::scm::PushOutcome::Failed(failure) = refused else {
            panic!("a 401 is a failure")
        };
        m.record("push", &Transport::Withheld(Box::new(failure)), 0.0);
        let text = encode(&root);
        for line in [
            "certpush_scm_requests_total{operation=\"push\",code=\"deferred\",error_code=\"\"} 1",
            "certpush_scm_requests_total{operation=\"push\",code=\"withheld\",error_code=\"APIGW.0301\"} 1",
            "certpush_scm_request_duration_seconds_count{operation=\"push\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
