//! What an SCM answer means: Huawei error bodies and the classification of every push outcome.

use std::time::Duration;

use serde_json::Value;

/// Longest error message kept from a response, so status and Events stay small.
const MAX_MESSAGE_CHARS: usize = 1024;
/// Longest error code or request id kept from an answer (Huawei's are under 40 characters).
const MAX_ID_CHARS: usize = 64;
/// Longest Retry-After honoured; a larger value is treated as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// An HTTP response from SCM, with the body already read (capped).
#[derive(Debug, Clone, PartialEq)]
pub struct ScmResponse {
    /// HTTP status code.
    pub status: u16,
    /// `X-Request-Id` response header.
    pub request_id: Option<String>,
    /// `Retry-After` response header, parsed.
    pub retry_after: Option<Duration>,
    /// The first bytes of the body.
    pub body: Vec<u8>,
    /// How far the local clock was ahead of SCM's (its `Date` header) when the answer arrived; negative when
    /// behind. AK/SK signatures more than 15 minutes off are refused, which is the clock's fault, not the key's.
    pub clock_skew: Option<jiff::SignedDuration>,
}

/// How far apart the clocks may be before SCM refuses AK/SK signatures.
pub const MAX_CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_mins(15);

/// What came back from one push request.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// SCM answered.
    Answered(ScmResponse),
    /// No connection was made, so nothing was sent: retrying cannot duplicate anything. The message names no secret.
    NotSent(String),
    /// The request may have been written before the connection failed or timed out, so the push may have
    /// landed without SCM's answer reaching us. The message names no secret.
    NoAnswer(String),
    /// Not sent: SCM refused (or locked) this credential for an earlier request, or the account id an access key
    /// needs could not be learnt from IAM ([`super::iam`]); this is the answer instead.
    Withheld(Box<PushFailure>),
    /// Not sent: the account's rate limit allows its next request only after this long, and waiting that long
    /// would hold a worker other accounts need.
    Deferred(Duration),
}

/// The kind of a failed push, which decides whether it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Network trouble, throttling or a gateway error: retried with backoff.
    Transient,
    /// HTTP 401: the token is wrong or expired.
    Unauthorized,
    /// HTTP 401 for an access key the gateway locked after repeated signature failures: not the key's fault.
    Locked,
    /// Not sent: the account's rate limit has no token for a while; tried again when it has (no status is written).
    Deferred,
    /// HTTP 403: the IAM user may not push.
    Forbidden,
    /// HTTP 404 from SCM: no such certificate.
    CertificateNotFound,
    /// SCM refused the push for a reason retrying will not fix.
    Rejected,
    /// A batch push's answer refused a region for good (for example "Invalid region id."); the other regions hold
    /// the certificate.
    RegionRejected,
    /// Not sent: the credential cannot be used as it is, found without SCM's help: an access key without `domainId`
    /// whose account id IAM did not tell (no IAM endpoint for this site, IAM's 403 or an empty answer).
    InvalidCredentials,
}

impl FailureKind {
    /// Whether the operator retries this failure on its own.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FailureKind::Transient | FailureKind::Locked | FailureKind::Deferred
        )
    }
}

/// A failed push, as recorded in status.
#[derive(Debug, Clone, PartialEq)]
pub struct PushFailure {
    /// What kind of failure it was.
    pub kind: FailureKind,
    /// HTTP status, when the server answered.
    pub http_status: Option<u16>,
    /// Huawei `error_code`, when there was one.
    pub error_code: Option<String>,
    /// Huawei `error_msg`, or a description of the failure.
    pub error_message: String,
    /// `X-Request-Id` (or the body's `request_id`).
    pub request_id: Option<String>,
    /// `Retry-After`, when the server sent one.
    pub retry_after: Option<Duration>,
    /// The request may have reached SCM without its answer reaching us: the push may have landed.
    pub outcome_unknown: bool,
}

impl PushFailure {
    /// What SCM answered, for a status message: "SCM answered HTTP 400 SCM.0028: <message>", or the description of
    /// a failure without an answer.
    pub fn describe(&self) -> String {
        match (&self.http_status, &self.error_code) {
            (Some(s), Some(c)) => format!("SCM answered HTTP {s} {c}: {}", self.error_message),
            (Some(s), None) => format!("SCM answered HTTP {s}: {}", self.error_message),
            (None, _) => self.error_message.clone(),
        }
    }

    /// Whether the request may have done its work though it failed: no answer came (the connection broke after
    /// sending, a timeout), or a gateway answered 502 or 504 (`APIGW.0201`: the backend may have done it). Such an
    /// outcome is unknown: it is checked before the request is sent again.
    pub fn may_have_landed(&self) -> bool {
        self.outcome_unknown || matches!(self.http_status, Some(502 | 504))
    }

    /// How long until the account's rate limit lets this request leave, when that is why it was not sent: a
    /// deferral is no attempt, so nothing counts it as a failure.
    pub fn deferred_for(&self) -> Option<Duration> {
        // A deferral always says how long; the floor keeps a missing one from becoming a hot loop.
        (self.kind == FailureKind::Deferred).then(|| self.retry_after.unwrap_or(Duration::from_secs(1)))
    }
}

/// The meaning of one push attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum PushOutcome {
    /// SCM accepted the push (HTTP 204).
    Pushed {
        /// HTTP status.
        http_status: u16,
        /// `X-Request-Id`.
        request_id: Option<String>,
    },
    /// The push failed.
    Failed(PushFailure),
}

/// A Huawei error body, parsed the way the Huawei SDKs do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// `error_code`, `code` or a nested `error.code`.
    pub code: Option<String>,
    /// `error_msg`, `message` or a nested `error.message`.
    pub message: Option<String>,
    /// `request_id` in the body.
    pub request_id: Option<String>,
}

/// Parses `error_code`/`error_msg`, else `code`/`message`, else the first nested object that has either pair.
/// Empty and non-JSON bodies give an empty result instead of an error.
pub fn parse_error_body(body: &[u8]) -> ErrorBody {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return ErrorBody::default();
    };
    let request_id = value.get("request_id").and_then(text);
    let mut parsed = find_error(&value, 0).unwrap_or_default();
    parsed.request_id = request_id;
    parsed
}

fn find_error(value: &Value, depth: usize) -> Option<ErrorBody> {
    let obj = value.as_object()?;
    for (code_key, msg_key) in [("error_code", "error_msg"), ("code", "message")] {
        let code = obj.get(code_key).and_then(text);
        let message = obj.get(msg_key).and_then(text);
        if code.is_some() || message.is_some() {
            return Some(ErrorBody {
                code,
                message,
                request_id: None,
            });
        }
    }
    // Some gateways wrap the error one level down, e.g. {"error": {"code": ..., "message": ...}}.
    if depth < 3 {
        return obj.values().find_map(|v| find_error(v, depth + 1));
    }
    None
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses a `Retry-After` value: delay in seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    let delay = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
        let secs = (at - now).get_seconds().max(0);
        Duration::from_secs(secs as u64)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

fn is_gateway_code(code: &str) -> bool {
    // Some consoles and older gateways use the APIG. prefix for the same codes.
    code.starts_with("APIGW.") || code.starts_with("APIG.")
}

/// The status code of a successful push; any other answer, even another 2xx, is not a push.
pub const PUSHED_STATUS: u16 = 204;

/// Whether an answer says the operator is talking to the wrong endpoint rather than that SCM refused this push:
/// the gateway has no such API (404 `APIGW.0101`), or a success code a push never answers (a proxy, a captive
/// portal, another API). Stalls of this kind lift when the operator runs with a different `--scm-endpoint`.
pub fn blames_endpoint(http_status: Option<u16>, error_code: Option<&str>) -> bool {
    match http_status {
        Some(s) if (200..300).contains(&s) => s != PUSHED_STATUS,
        Some(404) => error_code.is_some_and(|c| is_gateway_code(c) && c.ends_with(".0101")),
        _ => false,
    }
}

/// Decides what a push result means. This table is the operator's whole retry policy; the README's
/// failure-reason table is generated from [`crate::status::Reason::table`] and describes the same rules.
pub fn classify(transport: &Transport) -> PushOutcome {
    classify_as(transport, PUSHED_STATUS)
}

/// [`classify`] for any SCM request whose success is answered with `success` (200 for import and list, 204 for
/// push and delete); failures mean the same for every request.
pub fn classify_as(transport: &Transport, success: u16) -> PushOutcome {
    let reply = match transport {
        Transport::NotSent(message) | Transport::NoAnswer(message) => {
            return PushOutcome::Failed(PushFailure {
                kind: FailureKind::Transient,
                http_status: None,
                error_code: None,
                error_message: clip(message),
                request_id: None,
                retry_after: None,
                outcome_unknown: matches!(transport, Transport::NoAnswer(_)),
            });
        }
        Transport::Withheld(failure) => return PushOutcome::Failed(failure.as_ref().clone()),
        Transport::Deferred(wait) => {
            return PushOutcome::Failed(PushFailure {
                kind: FailureKind::Deferred,
                http_status: None,
                error_code: None,
                error_message: format!(
                    "not sent: this SCM account's request rate (--scm-qps) has its next token in {} ms",
                    wait.as_millis()
                ),
                request_id: None,
                retry_after: Some(*wait),
                outcome_unknown: false,
            });
        }
        Transport::Answered(reply) => reply,
    };
    let status = reply.status;
    if status == success {
        return PushOutcome::Pushed {
            http_status: status,
            request_id: reply.request_id.clone(),
        };
    }
    let body = parse_error_body(&reply.body);
    let code = body.code.as_deref();
    let gateway = code.is_some_and(is_gateway_code);
    let wrong_endpoint =
        blames_endpoint(Some(status), code) || ((200..300).contains(&status) && success != PUSHED_STATUS);
    let skewed = reply.clock_skew.filter(|s| s.abs() > MAX_CLOCK_SKEW);
    let kind = match status {
        _ if wrong_endpoint => FailureKind::Rejected,
        // The signature's time was refused, not the key: retried (the clock may be fixed meanwhile), never held
        // against the credential.
        401 if skewed.is_some() => FailureKind::Transient,
        // 408: the server gave up reading the request, so it was not processed.
        408 | 429 | 502 | 503 | 504 => FailureKind::Transient,
        500..=599 if code.is_none() || gateway => FailureKind::Transient,
        401 if locks_key(code, body.message.as_deref()) => FailureKind::Locked,
        401 => FailureKind::Unauthorized,
        403 => FailureKind::Forbidden,
        404 => FailureKind::CertificateNotFound,
        _ => FailureKind::Rejected,
    };
    let mut message = match (&body.message, reply.body.is_empty()) {
        (Some(m), _) => m.clone(),
        (None, true) => format!("HTTP {status} with an empty body"),
        (None, false) => format!("HTTP {status}: {}", printable_prefix(&reply.body)),
    };
    if wrong_endpoint && status == 404 {
        message = format!("{message} (the SCM API was not found: check the operator's --scm-endpoint)");
    } else if wrong_endpoint {
        message = format!(
            "{message} (this request answers HTTP {success}, not {status}: the endpoint may not be SCM; check the operator's --scm-endpoint)"
        );
    }
    if let Some(skew) = skewed.filter(|_| status == 401) {
        let (minutes, how) = (
            skew.abs().as_secs() / 60,
            if skew.is_positive() { "ahead of" } else { "behind" },
        );
        message = format!(
            "{message} (this operator's clock is {minutes} minutes {how} SCM's: SCM refuses AK/SK signatures more \
             than 15 minutes off; fix the node's time, e.g. NTP)"
        );
    }
    if status == 401 && code.is_some_and(|c| c.ends_with(".0307")) {
        message = format!("{message} (the token expired: put a fresh token in the Secret)");
    }
    PushOutcome::Failed(PushFailure {
        kind,
        http_status: Some(status),
        error_code: body.code.map(|c| clip_to(&c, MAX_ID_CHARS)),
        error_message: clip(&message),
        request_id: reply
            .request_id
            .clone()
            .or(body.request_id)
            .map(|id| clip_to(&id, MAX_ID_CHARS)),
        // A locked key is tried again once its lock (5 minutes) is over, unless the gateway says when.
        retry_after: reply
            .retry_after
            .or((kind == FailureKind::Locked).then_some(super::verdicts::AK_LOCK)),
        outcome_unknown: false,
    })
}

/// Whether a 401 says the access key is locked (Huawei: "AK access failed to reach the limit,forbidden"), not that
/// it is wrong.
fn locks_key(code: Option<&str>, message: Option<&str>) -> bool {
    code.is_some_and(|c| c.ends_with(".0301"))
        && message.is_some_and(|m| m.to_ascii_lowercase().contains("reach the limit"))
}

/// A push SCM accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// HTTP status (204).
    pub http_status: u16,
    /// `X-Request-Id`.
    pub request_id: Option<String>,
}

impl From<Result<Pushed, PushFailure>> for PushOutcome {
    fn from(result: Result<Pushed, PushFailure>) -> Self {
        match result {
            Ok(Pushed {
                http_status,
                request_id,
            }) => PushOutcome::Pushed {
                http_status,
                request_id,
            },
            Err(failure) => PushOutcome::Failed(failure),
        }
    }
}

/// A failure found by the operator itself, before or after an SCM answer, that retrying cannot fix.
pub fn rejected(message: String) -> PushFailure {
    PushFailure {
        kind: FailureKind::Rejected,
        http_status: None,
        error_code: None,
        error_message: message,
        request_id: None,
        retry_after: None,
        outcome_unknown: false,
    }
}

/// The JSON body of a successful answer (status `success`), or the failure it was.
pub fn answer<T: serde::de::DeserializeOwned>(
    transport: Transport,
    success: u16,
    operation: &str,
) -> Result<T, PushFailure> {
    match classify_as(&transport, success) {
        PushOutcome::Failed(failure) => Err(failure),
        PushOutcome::Pushed { .. } => {
            let body = match &transport {
                Transport::Answered(reply) => reply.body.as_slice(),
                _ => &[],
            };
            serde_json::from_slice(body).map_err(|e| {
                rejected(format!(
                    "SCM answered the {operation} request with HTTP {success} and a body that is not the expected JSON ({e})"
                ))
            })
        }
    }
}

fn printable_prefix(body: &[u8]) -> String {
    printable(&String::from_utf8_lossy(&body[..body.len().min(200)]))
}

/// `text` with control characters as spaces, trimmed: safe for one line of status or log.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// `message` cut to the length status keeps.
pub(crate) fn clip(message: &str) -> String {
    clip_to(message, MAX_MESSAGE_CHARS)
}

/// A short field of an SCM answer body (a resource, a failure_info), made printable and cut to 128 characters
/// before it can reach status.
pub fn clip_field(text: &str) -> String {
    clip_to(&printable(text), 2 * MAX_ID_CHARS)
}

/// `text` cut to at most `max` characters, the last one `…` when cut.
fn clip_to(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Transport {
        Transport::Answered(ScmResponse {
            status,
            request_id: Some("req-1".into()),
            retry_after: None,
            body: body.as_bytes().to_vec(),
            clock_skew: None,
        })
    }

    fn kind_of(t: &Transport) -> Option<FailureKind> {
        match classify(t) {
            PushOutcome::Pushed { .. } => None,
            PushOutcome::Failed(f) => Some(f.kind),
        }
    }

    #[test]
    fn classification_table() {
        use FailureKind::*;
        let cases: &[(u16, &str, Option<FailureKind>)] = &[
            (204, "", None),
            (
                429,
                r#"{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached"}"#,
                Some(Transient),
            ),
            (502, "", Some(Transient)),
            (503, "<html>busy</html>", Some(Transient)),
            (504, r#"{"error_code":"SCM.0028","error_msg":"x"}"#, Some(Transient)),
            (
                500,
                r#"{"error_code":"APIGW.0601","error_msg":"Internal server error."}"#,
                Some(Transient),
            ),
            (500, "", Some(Transient)),
            (500, "not json", Some(Transient)),
            (
                500,
                r#"{"error_code":"SCM.0016","error_msg":"Failed to order."}"#,
                Some(Rejected),
            ),
            (
                500,
                r#"{"error_code":"ELB.1234","error_msg":"backend refused"}"#,
                Some(Rejected),
            ),
            (
                401,
                r#"{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information"}"#,
                Some(Unauthorized),
            ),
            (401, "", Some(Unauthorized)),
            (
                403,
                r#"{"error_code":"APIGW.0302","error_msg":"not authorized"}"#,
                Some(Forbidden),
            ),
            (404, "", Some(CertificateNotFound)),
            (
                404,
                r#"{"error_code":"SCM.0021","error_msg":"certificate not exist"}"#,
                Some(CertificateNotFound),
            ),
            (
                404,
                r#"{"error_code":"APIGW.0101","error_msg":"The API does not exist"}"#,
                Some(Rejected),
            ),
            (
                400,
                r#"{"error_code":"SCM.0028","error_msg":"Push cert error"}"#,
                Some(Rejected),
            ),
            (
                400,
                r#"{"error_code":"SCM.0030","error_msg":"Certificates cannot be pushed to this service."}"#,
                Some(Rejected),
            ),
            (409, "", Some(Rejected)),
            (302, "", Some(Rejected)),
            (408, "", Some(Transient)),
            (
                500,
                r#"{"error_code":"APIG.0601","error_msg":"old gateway prefix"}"#,
                Some(Transient),
            ),
            // Only 204 is a push: a 200 or 201 comes from something that is not SCM's push API.
            (200, r#"{"message":"success"}"#, Some(Rejected)),
            (201, "", Some(Rejected)),
            (202, "", Some(Rejected)),
        ];
        for (status, body, want) in cases {
            assert_eq!(kind_of(&reply(*status, body)), *want, "HTTP {status} {body}");
        }
        assert_eq!(
            kind_of(&Transport::NotSent("connection refused".into())),
            Some(Transient)
        );
        assert_eq!(
            kind_of(&Transport::NoAnswer("connection reset".into())),
            Some(Transient)
        );
    }

    #[test]
    fn only_an_unanswered_request_has_an_unknown_outcome() {
        let unknown = |t: &Transport| match classify(t) {
            PushOutcome::Failed(f) => f.outcome_unknown,
            PushOutcome::Pushed { .. } => panic!("not a failure"),
        };
        assert!(unknown(&Transport::NoAnswer("reset after the request was sent".into())));
        assert!(!unknown(&Transport::NotSent("connection refused".into())));
        assert!(!unknown(&reply(503, "")));
    }

    #[test]
    fn a_success_code_other_than_204_blames_the_endpoint() {
        let PushOutcome::Failed(f) = classify(&reply(200, r#"{"message":"success"}"#)) else {
            panic!("a 200 must not count as pushed")
        };
        assert_eq!(f.http_status, Some(200));
        assert!(f.error_message.contains("HTTP 204, not 200"), "{}", f.error_message);
        assert!(f.error_message.contains("--scm-endpoint"), "{}", f.error_message);
        assert!(blames_endpoint(Some(200), None));
        assert!(blames_endpoint(Some(404), Some("APIGW.0101")));
        assert!(blames_endpoint(Some(404), Some("APIG.0101")));
        assert!(!blames_endpoint(Some(404), Some("SCM.0021")));
        assert!(!blames_endpoint(Some(204), None));
        assert!(!blames_endpoint(Some(400), Some("APIGW.0101")));
        assert!(!blames_endpoint(None, None));
    }

    #[test]
    fn failure_keeps_code_message_and_request_id() {
        let PushOutcome::Failed(f) = classify(&reply(
            400,
            r#"{"error_code":"SCM.0028","error_msg":"Push cert error"}"#,
        )) else {
            panic!("expected failure")
        };
        assert_eq!(f.http_status, Some(400));
        assert_eq!(f.error_code.as_deref(), Some("SCM.0028"));
        assert_eq!(f.error_message, "Push cert error");
        assert_eq!(f.request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn wrong_endpoint_names_the_flag() {
        let PushOutcome::Failed(f) = classify(&reply(
            404,
            r#"{"error_code":"APIGW.0101","error_msg":"The API does not exist"}"#,
        )) else {
            panic!("expected failure")
        };
        assert!(f.error_message.contains("--scm-endpoint"), "{}", f.error_message);
    }

    #[test]
    fn error_bodies_parse_like_the_huawei_sdks() {
        let b = parse_error_body(br#"{"error_code":"SCM.0005","error_msg":"bad","request_id":"r9"}"#);
        assert_eq!(
            (b.code.as_deref(), b.message.as_deref(), b.request_id.as_deref()),
            (Some("SCM.0005"), Some("bad"), Some("r9"))
        );
        let b = parse_error_body(br#"{"code":"APIGW.0308","message":"slow down"}"#);
        assert_eq!(
            (b.code.as_deref(), b.message.as_deref()),
            (Some("APIGW.0308"), Some("slow down"))
        );
        let b = parse_error_body(br#"{"error":{"code":"SCM.0010","message":"wrong status"}}"#);
        assert_eq!(
            (b.code.as_deref(), b.message.as_deref()),
            (Some("SCM.0010"), Some("wrong status"))
        );
        assert_eq!(parse_error_body(b""), ErrorBody::default());
        assert_eq!(parse_error_body(b"<html>502</html>"), ErrorBody::default());
        assert_eq!(parse_error_body(b"[1,2]"), ErrorBody::default());
    }

    #[test]
    fn non_json_body_is_described_without_control_characters() {
        let PushOutcome::Failed(f) = classify(&reply(400, "bad\r\nrequest")) else {
            panic!()
        };
        assert_eq!(f.error_message, "HTTP 400: bad  request");
        assert_eq!(f.error_code, None);
        let long = "x".repeat(5000);
        let PushOutcome::Failed(f) = classify(&reply(
            400,
            &format!(r#"{{"error_code":"SCM.1","error_msg":"{long}"}}"#),
        )) else {
            panic!()
        };
        assert_eq!(f.error_message.chars().count(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
