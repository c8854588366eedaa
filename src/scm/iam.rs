//! The account (domain) id of an access key given without one, learnt from IAM the way Huawei's SDK does.
//!
//! SCM's SDK clients sign every request with `X-Domain-Id` (GlobalCredentials). When the user gave none, the SDK asks
//! IAM once per access key, `GET {iam}/v3/auth/domains` signed with that same key and no scope header, takes
//! `domains[0].id` and caches it (`huaweicloudsdkcore` 3.1.219, `GlobalCredentials.process_auth_params`). The client
//! does the same before any request of such a key leaves ([`ScmClient::call`]), so no AK/SK request reaches SCM
//! without a scope header. The IAM request passes the account's rate limit, the leader gate and the metrics
//! (operation [`OPERATION`]) like every request. When IAM cannot tell, the SCM request is not sent and its answer is a
//! [`PushFailure`] that names `domainId`: a refusal (401) is remembered for the credential like SCM's own, an
//! unreachable IAM is retried with backoff, and no IAM endpoint, a 403 or an empty list is `InvalidCredentials`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use reqwest::{Method, Url};
use serde_json::Value;

use super::auth::{Credentials, DOMAIN_ID, PROJECT_ID, is_iam_id};
use super::client::ScmClient;
use super::outcome::{FailureKind, PushFailure, PushOutcome, Transport, classify_as, clip, parse_error_body};
use super::verdicts::Finding;

/// IAM's "list the domains this credential may access" (`KeystoneListAuthDomains`).
pub const DOMAINS_PATH: &str = "/v3/auth/domains";
/// The `operation` label of the IAM request in metrics and logs.
pub const OPERATION: &str = "iam_domains";
/// Access keys whose domain id is remembered; the oldest is forgotten first (asked again when next needed).
pub const MAX_KNOWN: usize = 4096;

/// The IAM endpoint Huawei's SDK uses for an SCM endpoint of the form `https://scm.{region}.myhuaweicloud.com`:
/// `https://iam.{region}.myhuaweicloud.com` (its table has the three SCM regions of that domain: `cn-north-4`,
/// `ap-southeast-1`, `my-kualalumpur-1`). None for any other endpoint: the Europe site (`myhuaweicloud.eu`), whose
/// regions the SDK's table lacks (it would ask the Chinese-mainland site's global IAM, which does not know a Europe
/// key), a proxy or a simulator; those need `--iam-endpoint` or a `domainId` in the Secret.
pub fn default_endpoint(scm: &Url) -> Option<Url> {
    if scm.scheme() != "https" || scm.port().is_some() || !matches!(scm.path(), "" | "/") {
        return None;
    }
    let region = scm
        .host_str()?
        .strip_prefix("scm.")?
        .strip_suffix(".myhuaweicloud.com")?;
    let is_region = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    is_region
        .then(|| Url::parse(&format!("https://iam.{region}.myhuaweicloud.com")).ok())
        .flatten()
}

/// `--iam-endpoint` as a base URL (http or https, no query, fragment or user info), or why it is not one.
pub fn parse_endpoint(raw: &str) -> Result<Url, String> {
    super::client::parse_endpoint(raw).map_err(|e| match e {
        super::client::ClientError::Endpoint(_, reason) => reason,
        other => other.to_string(),
    })
}

/// The domain id of a 200 answer of `GET /v3/auth/domains`: `domains[0].id`, as the SDK takes it, if it has the form
/// of an IAM id (it becomes a header value). The error says what was wrong without repeating the body.
pub fn parse_domains(body: &[u8]) -> Result<String, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| "an answer that is not JSON".to_owned())?;
    let domains = value
        .get("domains")
        .and_then(Value::as_array)
        .ok_or_else(|| "an answer without a \"domains\" list".to_owned())?;
    let first = domains.first().ok_or_else(|| {
        "an empty list of domains (the IAM user may lack the permission iam:users:getUser)".to_owned()
    })?;
    match first.get("id").and_then(Value::as_str) {
        Some(id) if is_iam_id(id) => Ok(id.to_owned()),
        _ => Err("a first domain whose id is not an IAM id (up to 64 letters, digits, '-' or '_')".to_owned()),
    }
}

/// What the client knows about IAM: the endpoint it was given and the domain ids learnt; clones share what is learnt.
#[derive(Clone, Default)]
pub(crate) struct Iam {
    /// `--iam-endpoint`; without it, [`default_endpoint`] of the SCM endpoint.
    endpoint: Option<Url>,
    known: Arc<Mutex<Known>>,
    /// One question to IAM at a time: the requests of several objects that share a new key wait for the first
    /// answer instead of each asking.
    asking: Arc<tokio::sync::Mutex<()>>,
}

impl Iam {
    /// The same memory of domain ids, asking `endpoint` (None: the SCM endpoint's site).
    pub(crate) fn at(&self, endpoint: Option<Url>) -> Self {
        Self {
            endpoint,
            ..self.clone()
        }
    }
}

/// Domain ids by (digest of the access key id, IAM endpoint), never by the key itself; bounded.
#[derive(Default)]
struct Known {
    ids: HashMap<Key, String>,
    order: VecDeque<Key>,
}

type Key = (String, String);

impl Known {
    fn get(&self, key: &Key) -> Option<String> {
        self.ids.get(key).cloned()
    }

    fn insert(&mut self, key: Key, id: String) {
        if !self.ids.contains_key(&key) {
            if self.order.len() >= MAX_KNOWN
                && let Some(oldest) = self.order.pop_front()
            {
                self.ids.remove(&oldest);
            }
            self.order.push_back(key.clone());
        }
        self.ids.insert(key, id);
    }
}

impl Iam {
    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a request of one call is signed with.
pub(crate) enum Scoped {
    /// The credentials as they are: a token, or an access key with its own scope.
    AsIs,
    /// The access key scoped to the domain IAM told.
    Domain(Credentials),
    /// Not sent: `transport` is the answer instead, and `finding` what it says of the credential.
    Unresolved {
        /// What the call answers.
        transport: Transport,
        /// For the credential's verdict.
        finding: Finding,
    },
}

impl ScmClient {
    /// Asks IAM at `endpoint` (a base URL, e.g. `https://iam.ap-southeast-1.myhuaweicloud.com`) for the account id of
    /// access keys given without `domainId` or `projectId`, instead of the one derived from the SCM endpoint
    /// ([`default_endpoint`]). Clones share the ids learnt, each keyed by its IAM endpoint too.
    pub fn with_iam_endpoint(mut self, endpoint: Url) -> Self {
        self.iam.endpoint = Some(endpoint);
        self
    }

    /// Where the account id of an access key without one is asked: `--iam-endpoint`, else the one of this SCM
    /// endpoint's site; None when there is neither (such keys are then refused, naming `domainId`).
    pub fn iam_endpoint(&self) -> Option<Url> {
        self.iam.endpoint.clone().or_else(|| default_endpoint(self.endpoint()))
    }

    /// What the requests of one call with `credentials` are signed with: for an access key without a scope, the
    /// domain id remembered or asked from IAM now; or why the call is not sent.
    pub(crate) async fn scoped(&self, credentials: &Credentials) -> Scoped {
        if !credentials.needs_domain() {
            return Scoped::AsIs;
        }
        let Some(iam) = self.iam_endpoint() else {
            // Nothing was asked, so nothing is known about the credential: every attempt says this again at no cost.
            let failure = invalid(format!(
                "the access key has no {DOMAIN_ID} and no IAM endpoint is known for SCM at {} to ask for it (as \
                 Huawei's SDK does, GET {DOMAINS_PATH}); set {DOMAIN_ID} (the account ID) or {PROJECT_ID} in the \
                 Secret, or start the operator with --iam-endpoint",
                self.endpoint()
            ));
            return unresolved(failure, Finding::Unknown);
        };
        let key = (credentials.account(), iam.to_string());
        let scope = |id: &str| credentials.scoped_to_domain(id).map_or(Scoped::AsIs, Scoped::Domain);
        if let Some(id) = self.iam.known().get(&key) {
            return scope(&id);
        }
        let _asking = self.iam.asking.lock().await;
        if let Some(id) = self.iam.known().get(&key) {
            return scope(&id);
        }
        let transport = self.ask_iam(credentials, &iam).await;
        match read_answer(transport, &iam) {
            Told::Domain(id) => {
                self.iam.known().insert(key, id.clone());
                scope(&id)
            }
            Told::Not(transport, finding) => Scoped::Unresolved { transport, finding },
        }
    }

    /// Sends `GET {iam}/v3/auth/domains`, signed with `credentials` and no scope header (as the SDK does).
    async fn ask_iam(&self, credentials: &Credentials, iam: &Url) -> Transport {
        let started = Instant::now();
        let mut url = iam.clone();
        let is_base = url
            .path_segments_mut()
            .map(|mut segments| {
                segments.pop_if_empty().extend(["v3", "auth", "domains"]);
            })
            .is_ok();
        let transport = if is_base {
            self.send_to(credentials, Method::GET, url, None, "IAM").await
        } else {
            Transport::NotSent(format!("the IAM endpoint {iam} is not a base URL"))
        };
        self.metrics
            .record(OPERATION, &transport, started.elapsed().as_secs_f64());
        if let Transport::Answered(reply) = &transport {
            tracing::info!(
                operation = OPERATION,
                http_status = reply.status,
                request_id = reply.request_id.as_deref().unwrap_or("-"),
                "IAM answered"
            );
        }
        transport
    }
}

/// A failure of this kind with `message` and nothing from an answer.
fn invalid(message: String) -> PushFailure {
    PushFailure {
        kind: FailureKind::InvalidCredentials,
        http_status: None,
        error_code: None,
        error_message: clip(&message),
        request_id: None,
        retry_after: None,
        outcome_unknown: false,
    }
}

fn unresolved(failure: PushFailure, finding: Finding) -> Scoped {
    Scoped::Unresolved {
        transport: Transport::Withheld(Box::new(failure)),
        finding,
    }
}

/// The domain id IAM answered, or the answer of the SCM call that is therefore not sent and what it says of the
/// credential: IAM refusing the key (401) is the verdict SCM would give, remembered the same way; a locked key waits
/// out its lock; no answer, a 5xx or throttling is retried with backoff; anything else (403, 404, an empty or
/// malformed list) is `InvalidCredentials`, remembered until the credential changes.
fn read_answer(transport: Transport, iam: &Url) -> Told {
    let told = |what: &str| {
        format!(
            "the access key has no {DOMAIN_ID} and IAM at {iam} did not tell it (GET {DOMAINS_PATH} {what}); set \
             {DOMAIN_ID} (the account ID) in the Secret"
        )
    };
    let status = match &transport {
        // The rate limit's wait applies to the SCM call as much as to this one.
        Transport::Deferred(wait) => return Told::Not(Transport::Deferred(*wait), Finding::Unknown),
        Transport::Answered(reply) if reply.status == 200 => {
            return match parse_domains(&reply.body) {
                Ok(id) => Told::Domain(id),
                Err(problem) => {
                    let failure = PushFailure {
                        request_id: reply.request_id.clone(),
                        ..invalid(told(&format!("answered {problem}")))
                    };
                    let finding = Finding::Refused(failure.clone());
                    Told::Not(Transport::Withheld(Box::new(failure)), finding)
                }
            };
        }
        Transport::Answered(reply) => Some(reply.status),
        _ => None,
    };
    let PushOutcome::Failed(failure) = classify_as(&transport, 200) else {
        unreachable!("only a 200 is a success here, and it was read above")
    };
    let detail = match (status, &failure.error_code) {
        // classify_as blames the SCM endpoint for these; here the IAM endpoint is the one to check.
        (Some(s @ (404 | 201..=299)), _) => {
            let message = match &transport {
                Transport::Answered(reply) => parse_error_body(&reply.body).message,
                _ => None,
            };
            format!(
                "answered HTTP {s}: {} (check --iam-endpoint)",
                message.as_deref().unwrap_or("not IAM's answer")
            )
        }
        // Keystone's error body carries the status as its code.
        (Some(s), Some(code)) if *code != s.to_string() => {
            format!("answered HTTP {s} {code}: {}", failure.error_message)
        }
        (Some(s), _) => format!("answered HTTP {s}: {}", failure.error_message),
        (None, _) => format!("could not be asked: {}", failure.error_message),
    };
    let kind = match failure.kind {
        FailureKind::Transient | FailureKind::Locked | FailureKind::Unauthorized => failure.kind,
        _ => FailureKind::InvalidCredentials,
    };
    let mut message = told(&detail);
    if kind == FailureKind::Transient {
        message.push_str(", or wait: IAM is asked again with backoff");
    }
    // The SCM request was not sent: no HTTP status of SCM's, and its outcome is known (nothing landed).
    let failure = PushFailure {
        kind,
        http_status: None,
        error_message: clip(&message),
        outcome_unknown: false,
        ..failure
    };
    let finding = match kind {
        FailureKind::Locked => Finding::Locked(failure.clone()),
        FailureKind::Transient => Finding::Unknown,
        _ => Finding::Refused(failure.clone()),
    };
    Told::Not(Transport::Withheld(Box::new(failure)), finding)
}

/// What IAM's answer says.
enum Told {
    /// The domain id.
    Domain(String),
    /// Not told: the SCM call's answer instead, and what it says of the credential.
    Not(Transport, Finding),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scm::outcome::ScmResponse;

    fn url(text: &str) -> Url {
        text.parse().unwrap()
    }

    #[test]
    fn the_iam_endpoint_follows_the_scm_sites_of_huaweis_sdk_and_nothing_else() {
        let derived = |scm: &str| default_endpoint(&url(scm)).map(|u| u.to_string());
        for region in ["cn-north-4", "ap-southeast-1", "my-kualalumpur-1"] {
            assert_eq!(
                derived(&format!("https://scm.{region}.myhuaweicloud.com")),
                Some(format!("https://iam.{region}.myhuaweicloud.com/")),
            );
        }
        assert_eq!(
            derived("https://scm.cn-north-4.myhuaweicloud.com/"),
            Some("https://iam.cn-north-4.myhuaweicloud.com/".into())
        );
        for other in [
            // Europe site: not in the SDK's table, and its global default would be the wrong site.
            "https://scm.eu-west-101.myhuaweicloud.eu",
            "http://127.0.0.1:18080",
            "http://scm.cn-north-4.myhuaweicloud.com",
            "https://scm.cn-north-4.myhuaweicloud.com:8443",
            "https://scm.cn-north-4.myhuaweicloud.com/proxy/",
            "https://scm.myhuaweicloud.com",
            "https://scm.CN_NORTH.myhuaweicloud.com",
            "https://proxy.example/scm.cn-north-4.myhuaweicloud.com",
            "https://scm.cn-north-4.myhuaweicloud.com.evil.example",
        ] {
            assert_eq!(derived(other), None, "{other}");
        }
    }

    #[test]
    fn iam_endpoint_flag_must_be_a_plain_base_url() {
        assert_eq!(
            parse_endpoint(" https://iam.example:8443 ").map(|u| u.to_string()),
            Ok("https://iam.example:8443/".to_owned())
        );
        assert!(parse_endpoint("http://127.0.0.1:18080").is_ok());
        for bad in [
            "iam.example",
            "ftp://iam.example",
            "https://iam.example/?a=b",
            "https://u:p@iam.example",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_domain_id_is_the_first_domains_and_must_be_an_iam_id() {
        let body = br#"{"domains":[{"id":"0a1b2c3d4e5f60718293a4b5c6d7e8f9","name":"acme","enabled":true},
                                   {"id":"other"}],"links":{"self":"https://iam.example/v3/auth/domains"}}"#;
        assert_eq!(parse_domains(body).unwrap(), "0a1b2c3d4e5f60718293a4b5c6d7e8f9");
        for (bad, says) in [
            (&b"<html>"[..], "not JSON"),
            (br#"{"projects":[]}"#, "without a \"domains\" list"),
            (br#"{"domains":{}}"#, "without a \"domains\" list"),
            (br#"{"domains":[]}"#, "iam:users:getUser"),
            (br#"{"domains":[{"name":"acme"}]}"#, "not an IAM id"),
            (br#"{"domains":[{"id":42}]}"#, "not an IAM id"),
            (br#"{"domains":[{"id":"a\r\nX-Injected: 1"}]}"#, "not an IAM id"),
        ] {
            let problem = parse_domains(bad).unwrap_err();
            assert!(problem.contains(says), "{problem}");
            assert!(!problem.contains("Injected"), "the answer is not repeated: {problem}");
        }
    }

    #[test]
    fn known_domain_ids_are_bounded_and_the_oldest_goes_first() {
        let mut known = Known::default();
        let key = |n: usize| (format!("sha256:{n}"), "https://iam.example/".to_owned());
        for n in 0..=MAX_KNOWN {
            known.insert(key(n), format!("d{n}"));
        }
        assert_eq!((known.ids.len(), known.order.len()), (MAX_KNOWN, MAX_KNOWN));
        assert_eq!(known.get(&key(0)), None, "the oldest was forgotten");
        assert_eq!(known.get(&key(MAX_KNOWN)).as_deref(), Some(&*format!("d{MAX_KNOWN}")));
        // Learning a key again replaces its id without taking another place.
        known.insert(key(1), "d1-new".into());
        assert_eq!(known.ids.len(), MAX_KNOWN);
        assert_eq!(known.get(&key(1)).as_deref(), Some("d1-new"));
    }

    fn answered(status: u16, body: &str) -> Transport {
        Transport::Answered(ScmResponse {
            status,
            request_id: Some("iam-req-1".into()),
            retry_after: None,
            body: body.as_bytes().to_vec(),
            clock_skew: None,
        })
    }

    /// What each IAM answer makes of the SCM call that waits for it: never a status of SCM's or an unknown outcome
    /// (nothing was sent to SCM), always a message naming domainId and the IAM endpoint.
    #[test]
    fn each_iam_answer_becomes_a_failure_that_names_domain_id() {
        let iam = url("https://iam.cn-north-4.myhuaweicloud.com");
        let unauthorized = r#"{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: verify aksk signature fail"}"#;
        let locked = r#"{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: AK access failed to reach the limit,forbidden"}"#;
        let forbidden = r#"{"error":{"code":403,"message":"You are not authorized to perform the requested action.","title":"Forbidden"}}"#;
        let cases: [(Transport, FailureKind, &str); 9] = [
            (
                answered(401, unauthorized),
                FailureKind::Unauthorized,
                "HTTP 401 APIGW.0301: Incorrect IAM",
            ),
            (answered(401, locked), FailureKind::Locked, "reach the limit"),
            (
                answered(403, forbidden),
                FailureKind::InvalidCredentials,
                "HTTP 403: You are not authorized",
            ),
            (
                answered(200, r#"{"domains":[]}"#),
                FailureKind::InvalidCredentials,
                "an empty list of domains",
            ),
            (
                answered(
                    404,
                    r#"{"error_code":"APIGW.0101","error_msg":"The API does not exist"}"#,
                ),
                FailureKind::InvalidCredentials,
                "check --iam-endpoint",
            ),
            (
                answered(204, ""),
                FailureKind::InvalidCredentials,
                "check --iam-endpoint",
            ),
            (
                answered(
                    503,
                    r#"{"error_code":"APIGW.0613","error_msg":"The IAM service is currently unavailable."}"#,
                ),
                FailureKind::Transient,
                "asked again with backoff",
            ),
            (
                Transport::NotSent("could not connect to IAM (nothing was sent)".into()),
                FailureKind::Transient,
                "could not be asked: could not connect to IAM",
            ),
            (
                Transport::NoAnswer("request to IAM timed out without an answer".into()),
                FailureKind::Transient,
                "timed out",
            ),
        ];
        for (transport, kind, says) in cases {
            let Told::Not(Transport::Withheld(failure), finding) = read_answer(transport, &iam) else {
                panic!("{kind:?}: not withheld")
            };
            assert_eq!(failure.kind, kind, "{}", failure.error_message);
            assert_eq!(
                (failure.http_status, failure.outcome_unknown),
                (None, false),
                "{kind:?}"
            );
            assert!(!failure.may_have_landed());
            let message = &failure.error_message;
            assert!(message.contains(says), "{message}");
            assert!(
                message.contains("domainId") && message.contains("https://iam.cn-north-4.myhuaweicloud.com/"),
                "{message}"
            );
            let remembered = match kind {
                FailureKind::Transient => matches!(finding, Finding::Unknown),
                FailureKind::Locked => matches!(finding, Finding::Locked(_)),
                _ => matches!(finding, Finding::Refused(_)),
            };
            assert!(remembered, "{kind:?}: {finding:?}");
        }
        // The rate limit's deferral stays a deferral (no status is written for it).
        let Told::Not(Transport::Deferred(wait), Finding::Unknown) =
            read_answer(Transport::Deferred(std::time::Duration::from_secs(2)), &iam)
        else {
            panic!("not deferred")
        };
        assert_eq!(wait.as_secs(), 2);
        let Told::Domain(id) = read_answer(answered(200, r#"{"domains":[{"id":"d-1"}]}"#), &iam) else {
            panic!("not told")
        };
        assert_eq!(id, "d-1");
    }
}
