//! The SCM client against the SCM simulator over real HTTP: request shape, every outcome class, body cap,
//! Retry-After, and redaction of a token echoed by the server.

use std::time::Duration;

use certpush_operator::crd::{CredentialsRef, TargetService};
use certpush_operator::scm::client::MAX_BODY_BYTES;
use certpush_operator::scm::wire::ImportRequest;
use certpush_operator::scm::{
    Call, Credentials, FailureKind, FoundImport, PushOutcome, PushRequest, ScmClient, Transport, classify,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use scm_sim::{Fault, FaultAction, Sim, SimConfig};
use sha2::{Digest, Sha256};

const TOKEN: &str = "client-test-token-5b0c1e2d3f4a5b6c7d8e9f0a1b2c3d4e";
const CERT: &str = "scs1554192131150";
/// An account id for access keys whose tests are about SCM's answers, not about learning it from IAM.
const DOMAIN: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

fn credentials(token: &str) -> Credentials {
    access_key(&[("token", token)])
}

async fn setup() -> (Sim, ScmClient) {
    certpush_operator::install_crypto_provider();
    let config = SimConfig {
        tokens: vec![TOKEN.into()],
        ..SimConfig::default()
    };
    let sim = Sim::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = ScmClient::new(&sim.url(), None).unwrap();
    (sim, client)
}

fn request(cert: &str) -> PushRequest {
    PushRequest::new(cert, TargetService::Elb, "cn-north-4").unwrap()
}

fn failure_kind(t: &Transport) -> FailureKind {
    match classify(t) {
        PushOutcome::Failed(f) => f.kind,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn push_sends_the_documented_request_and_reads_204() {
    let (sim, client) = setup().await;
    let t = client.call(&credentials(TOKEN), Call::Push(&request(CERT))).await;
    let PushOutcome::Pushed {
        http_status,
        request_id,
    } = classify(&t)
    else {
        panic!("{t:?}")
    };
    assert_eq!(http_status, 204);
    let calls = sim.pushes();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.path, "/v3/scm/certificates/scs1554192131150/push");
    assert_eq!(call.method, "POST");
    assert_eq!(call.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        call.token_sha256.as_deref(),
        Some(hex::encode(Sha256::digest(TOKEN)).as_str())
    );
    assert_eq!(
        call.body,
        serde_json::json!({"target_project": "cn-north-4", "target_service": "ELB"})
    );
    assert_eq!(request_id.as_deref(), Some(call.request_id.as_str()));
}

#[tokio::test]
async fn errors_from_the_server_are_classified() {
    let (sim, client) = setup().await;
    let bad = "x".repeat(40);
    let t = client.call(&credentials(&bad), Call::Push(&request(CERT))).await;
    assert_eq!(failure_kind(&t), FailureKind::Unauthorized);
    let PushOutcome::Failed(f) = classify(&t) else {
        unreachable!()
    };
    assert_eq!(f.error_code.as_deref(), Some("APIGW.0301"));
    assert_eq!(f.http_status, Some(401));
    assert!(f.request_id.is_some());

    let t = client
        .call(&credentials(TOKEN), Call::Push(&request("scs0000000000404")))
        .await;
    assert_eq!(failure_kind(&t), FailureKind::CertificateNotFound);

    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Error {
            status: 500,
            error_code: "SCM.0016".into(),
            error_msg: "Failed to order.".into(),
        },
    });
    let t = client.call(&credentials(TOKEN), Call::Push(&request(CERT))).await;
    assert_eq!(failure_kind(&t), FailureKind::Rejected);

    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Respond {
            status: 429,
            body: String::new(),
            retry_after: Some(7),
        },
    });
    let t = client.call(&credentials(TOKEN), Call::Push(&request(CERT))).await;
    let PushOutcome::Failed(f) = classify(&t) else {
        panic!("{t:?}")
    };
    assert_eq!(
        (f.kind, f.retry_after),
        (FailureKind::Transient, Some(Duration::from_secs(7)))
    );
}

#[tokio::test]
async fn wrong_endpoint_path_is_rejected_and_names_the_flag() {
    let (sim, _) = setup().await;
    let client = ScmClient::new(&format!("{}/not-scm/", sim.url()), None).unwrap();
    let t = client.call(&credentials(TOKEN), Call::Push(&request(CERT))).await;
    let PushOutcome::Failed(f) = classify(&t) else {
        panic!("{t:?}")
    };
    assert_eq!(
        (f.kind, f.error_code.as_deref()),
        (FailureKind::Rejected, Some("APIGW.0101"))
    );
    assert!(f.error_message.contains("--scm-endpoint"), "{}", f.error_message);
}

/// Defect: any 404 counted as deleted, so a wrong endpoint path (the gateway's 404) dropped a superseded import from
/// the list of deletions still owed, leaving it in SCM for good.
#[tokio::test]
async fn a_delete_is_done_on_scms_404_but_not_on_the_gateways() {
    let (sim, client) = setup().await;
    assert!(client.delete(&credentials(TOKEN), "scs0000000000404").await.is_ok());
    let wrong = ScmClient::new(&format!("{}/not-scm/", sim.url()), None).unwrap();
    let failure = wrong.delete(&credentials(TOKEN), CERT).await.unwrap_err();
    assert_eq!(failure.error_code.as_deref(), Some("APIGW.0101"));
}

#[tokio::test]
async fn a_dropped_answer_is_an_unknown_outcome_and_a_refused_connect_sent_nothing() {
    let (sim, client) = setup().await;
    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Drop,
    });
    let t = client.call(&credentials(TOKEN), Call::Push(&request(CERT))).await;
    // The request was written before the connection closed: SCM may have acted on it.
    assert!(matches!(t, Transport::NoAnswer(_)), "{t:?}");
    assert_eq!(failure_kind(&t), FailureKind::Transient);
    assert_eq!(sim.pushes().len(), 1, "the client itself never retries");

    let port = scm_sim::free_port();
    let nowhere = ScmClient::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
    let t = nowhere.call(&credentials(TOKEN), Call::Push(&request(CERT))).await;
    let Transport::NotSent(message) = &t else {
        panic!("a refused connect sends nothing: {t:?}")
    };
    assert!(
        message.starts_with("could not connect to SCM (nothing was sent)"),
        "{message}"
    );
    assert!(!message.contains(TOKEN));
}

#[tokio::test]
async fn body_is_capped_and_an_echoed_token_is_redacted() {
    let (sim, client) = setup().await;
    let huge = format!(
        r#"{{"error_code":"SCM.0005","error_msg":"token {TOKEN} rejected","pad":"{}"}}"#,
        "x".repeat(200_000)
    );
    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Respond {
            status: 400,
            body: huge,
            retry_after: None,
        },
    });
    let t = client.call(&credentials(TOKEN), Call::Push(&request(CERT))).await;
    let Transport::Answered(reply) = &t else {
        panic!("{t:?}")
    };
    // The read stops at the cap; redaction then replaces the token with a shorter marker.
    let redaction_shrink = TOKEN.len() - "<redacted>".len();
    assert_eq!(reply.body.len(), MAX_BODY_BYTES - redaction_shrink);
    assert!(!String::from_utf8_lossy(&reply.body).contains(TOKEN));

    let small = format!(r#"{{"error_code":"SCM.0005","error_msg":"token {TOKEN} rejected"}}"#);
    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Respond {
            status: 400,
            body: small,
            retry_after: None,
        },
    });
    let t = client.call(&credentials(TOKEN), Call::Push(&request(CERT))).await;
    let PushOutcome::Failed(f) = classify(&t) else {
        panic!("{t:?}")
    };
    assert_eq!(f.error_message, "token <redacted> rejected");

    // Defect: redaction ran on the raw text, so a token echoed JSON-escaped came back whole after decoding; and the
    // code and request id went into status at any length.
    let mut chars = TOKEN.chars();
    let first = chars.next().unwrap();
    let escaped = format!("\\u{:04x}{}", first as u32, chars.as_str());
    let echo = format!(
        r#"{{"error_code":"SCM.{}","error_msg":"token {escaped} rejected","request_id":"{}"}}"#,
        "9".repeat(5_000),
        "r".repeat(5_000)
    );
    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Respond {
            status: 400,
            body: echo,
            retry_after: None,
        },
    });
    let t = client.call(&credentials(TOKEN), Call::Push(&request(CERT))).await;
    let PushOutcome::Failed(f) = classify(&t) else {
        panic!("{t:?}")
    };
    assert_eq!(f.error_message, "token <redacted> rejected");
    assert!(
        f.error_code.as_ref().is_some_and(|c| c.chars().count() <= 64),
        "{:?}",
        f.error_code
    );
    assert!(
        f.request_id.as_ref().is_some_and(|r| r.chars().count() <= 64),
        "{:?}",
        f.request_id
    );
}

/// Credentials read from a Secret holding `entries` (a token, or an access key pair).
fn access_key(entries: &[(&str, &str)]) -> Credentials {
    let secret = Secret {
        data: Some(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    Credentials::from_secret(
        Some(&secret),
        &CredentialsRef {
            name: "scm".into(),
            token_key: "token".into(),
        },
    )
    .unwrap()
}

/// The operator's signer and the simulator's verifier are separate code (each checked against Huawei's published
/// vectors); here they must agree over real HTTP, with scope and security-token headers signed too.
#[tokio::test]
async fn an_access_key_signed_push_is_accepted_by_the_independent_verifier() {
    let (sim, client) = setup().await;
    // The key without a scope learns its account id from IAM (here the simulator), signed without one.
    let client = client.with_iam_endpoint(sim.url().parse().unwrap());
    let cases: [&[(&str, &str)]; 3] = [
        &[
            ("accessKey", scm_sim::DEMO_ACCESS_KEY),
            ("secretKey", scm_sim::DEMO_SECRET_KEY),
        ],
        &[
            ("accessKey", scm_sim::DEMO_ACCESS_KEY),
            ("secretKey", scm_sim::DEMO_SECRET_KEY),
            ("projectId", "0123456789abcdef0123456789abcdef"),
        ],
        &[
            ("accessKey", scm_sim::DEMO_ACCESS_KEY),
            ("secretKey", scm_sim::DEMO_SECRET_KEY),
            ("domainId", "fedcba9876543210fedcba9876543210"),
            ("securityToken", "temporary-security-token-value"),
        ],
    ];
    for entries in cases {
        let t = client.call(&access_key(entries), Call::Push(&request(CERT))).await;
        assert!(matches!(classify(&t), PushOutcome::Pushed { .. }), "{entries:?}: {t:?}");
    }
    let signed: Vec<Option<String>> = sim.pushes().into_iter().map(|c| c.signed_headers).collect();
    assert_eq!(
        signed,
        [
            Some("host;x-domain-id;x-sdk-date".to_owned()),
            Some("host;x-project-id;x-sdk-date".to_owned()),
            Some("host;x-domain-id;x-sdk-date;x-security-token".to_owned()),
        ]
    );
    let iam = sim.iam_calls();
    assert_eq!(iam.len(), 1, "{iam:#?}");
    assert_eq!(
        (iam[0].status, iam[0].signed_headers.as_deref()),
        (200, Some("host;x-sdk-date"))
    );
    let domain = sim.domain_of(scm_sim::DEMO_ACCESS_KEY);
    assert_eq!(sim.pushes()[0].domain_id.as_deref(), Some(domain.as_str()));
    let call = &sim.pushes()[0];
    assert_eq!(call.token_sha256, None);
    assert_eq!(
        call.access_key_sha256.as_deref(),
        Some(hex::encode(Sha256::digest(scm_sim::DEMO_ACCESS_KEY)).as_str())
    );
}

#[tokio::test]
async fn a_wrong_secret_key_is_unauthorized_and_the_gateway_locks_after_five() {
    let (sim, client) = setup().await;
    let wrong = access_key(&[
        ("accessKey", scm_sim::DEMO_ACCESS_KEY),
        ("secretKey", "not-the-secret-key"),
        ("domainId", DOMAIN),
    ]);
    let right = access_key(&[
        ("accessKey", scm_sim::DEMO_ACCESS_KEY),
        ("secretKey", scm_sim::DEMO_SECRET_KEY),
        ("domainId", DOMAIN),
    ]);
    // Six processes (one client each, so none remembers another's refusal) send the wrong key.
    for _ in 0..6 {
        let fresh = ScmClient::new(&sim.url(), None).unwrap();
        let t = fresh.call(&wrong, Call::Push(&request(CERT))).await;
        assert_eq!(failure_kind(&t), FailureKind::Unauthorized);
        let PushOutcome::Failed(f) = classify(&t) else {
            unreachable!()
        };
        assert_eq!(f.error_code.as_deref(), Some("APIGW.0301"));
        assert!(!f.error_message.contains("not-the-secret-key"), "{}", f.error_message);
    }
    // Six failures in a row: even the right key is refused now, which is why a 401 must never be re-sent. That is
    // the lock, not the key's fault: retried once the lock is over.
    let t = client.call(&right, Call::Push(&request(CERT))).await;
    let PushOutcome::Failed(f) = classify(&t) else {
        panic!("{t:?}")
    };
    assert!(
        f.error_message.contains("AK access failed to reach the limit"),
        "{}",
        f.error_message
    );
    assert_eq!(f.kind, FailureKind::Locked);
    assert_eq!(f.retry_after, Some(Duration::from_secs(300)));
    // Not sent again with the same client until then.
    let calls = sim.calls().len();
    let t = client.call(&right, Call::Push(&request(CERT))).await;
    assert!(matches!(t, Transport::Withheld(_)), "{t:?}");
    assert_eq!(sim.calls().len(), calls);
    assert!(sim.successful_pushes().is_empty());
    let unknown = access_key(&[
        ("accessKey", "UNKNOWNACCESSKEY0001"),
        ("secretKey", "whatever"),
        ("domainId", DOMAIN),
    ]);
    let t = client.call(&unknown, Call::Push(&request(CERT))).await;
    assert_eq!(failure_kind(&t), FailureKind::Unauthorized);
}

/// Defect: the rule "never re-send a refused credential" was per object, so 8 objects sharing a wrong secret key sent
/// 8 signed requests and the gateway locked the key. Now the first use of a credential is single-flight and a refusal
/// holds back every later request with it, whatever it is for.
#[tokio::test]
async fn a_refused_credential_is_sent_once_for_all_requests_that_share_it() {
    let (sim, client) = setup().await;
    let wrong = std::sync::Arc::new(access_key(&[
        ("accessKey", scm_sim::DEMO_ACCESS_KEY),
        ("secretKey", "not-the-secret-key"),
        ("domainId", DOMAIN),
    ]));
    let requests: Vec<_> = (0..8)
        .map(|i| {
            let (client, wrong) = (client.clone(), wrong.clone());
            tokio::spawn(async move {
                let call = if i % 2 == 0 {
                    client.call(&wrong, Call::Push(&request(CERT))).await
                } else {
                    client.call(&wrong, Call::Delete { certificate_id: CERT }).await
                };
                classify(&call)
            })
        })
        .collect();
    for request in requests {
        let PushOutcome::Failed(f) = request.await.unwrap() else {
            panic!("a wrong key succeeded")
        };
        assert_eq!(f.kind, FailureKind::Unauthorized);
    }
    assert_eq!(sim.calls().len(), 1, "one request reached SCM: {:#?}", sim.calls());
    // The right key is another credential: it is sent.
    let right = access_key(&[
        ("accessKey", scm_sim::DEMO_ACCESS_KEY),
        ("secretKey", scm_sim::DEMO_SECRET_KEY),
        ("domainId", DOMAIN),
    ]);
    let t = client.call(&right, Call::Push(&request(CERT))).await;
    assert!(matches!(classify(&t), PushOutcome::Pushed { .. }), "{t:?}");
    // A human asks again (the re-push annotation): the refused one is tried once more.
    client.retry_refused(&client.digest(&wrong));
    let t = client.call(&wrong, Call::Push(&request(CERT))).await;
    assert!(matches!(t, Transport::Answered(_)), "{t:?}");
    assert_eq!(sim.calls().len(), 3);
}

/// Defect: a signature refused because the clocks are more than 15 minutes apart was blamed on the key (a stall until
/// the Secret changed). SCM's Date header shows the skew: the message says so, the metric tells it, and the request is
/// retried, never held against the credential.
#[tokio::test]
async fn a_clock_far_off_is_reported_and_not_blamed_on_the_key() {
    let (sim, _) = setup().await;
    let mut registry = prometheus_client::registry::Registry::default();
    let client = ScmClient::new(&sim.url(), None)
        .unwrap()
        .with_metrics(certpush_operator::scm::ScmMetrics::register(&mut registry));
    let key = access_key(&[
        ("accessKey", scm_sim::DEMO_ACCESS_KEY),
        ("secretKey", scm_sim::DEMO_SECRET_KEY),
        ("domainId", DOMAIN),
    ]);
    sim.set_clock_offset(jiff::SignedDuration::from_mins(-20));
    let t = client.call(&key, Call::Push(&request(CERT))).await;
    let PushOutcome::Failed(f) = classify(&t) else {
        panic!("{t:?}")
    };
    assert_eq!((f.kind, f.http_status), (FailureKind::Transient, Some(401)));
    assert!(
        f.error_message.contains("20 minutes ahead of SCM's"),
        "{}",
        f.error_message
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let skew = text
        .lines()
        .find_map(|l| l.strip_prefix("scm_clock_skew_seconds "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(skew.is_some_and(|s| (1195.0..=1205.0).contains(&s)), "{text}");
    // The clock is fixed: the same key is sent again and works, since it was never held against it.
    sim.set_clock_offset(jiff::SignedDuration::ZERO);
    let t = client.call(&key, Call::Push(&request(CERT))).await;
    assert!(matches!(classify(&t), PushOutcome::Pushed { .. }), "{t:?}");
}

/// Every request takes a token from one shared bucket, and a 429 from the gateway halves the rate for all.
#[tokio::test]
async fn requests_share_one_bucket_and_a_429_halves_the_rate() {
    let (sim, client) = setup().await;
    let client = client.with_rate_limit(10, 1);
    let started = std::time::Instant::now();
    for _ in 0..4 {
        let t = client.call(&credentials(TOKEN), Call::Push(&request(CERT))).await;
        assert!(matches!(classify(&t), PushOutcome::Pushed { .. }), "{t:?}");
    }
    // One at once, then three more at 10/s: at least 300 ms, whatever the machine's speed.
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );
    let at: Vec<u64> = sim.pushes().iter().map(|c| c.at_ms).collect();
    assert!(at.windows(2).all(|w| w[1] - w[0] >= 90), "spaced by the bucket: {at:?}");

    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Error {
            status: 429,
            error_code: "APIGW.0308".into(),
            error_msg: "The throttling threshold has been reached".into(),
        },
    });
    let t = client.call(&credentials(TOKEN), Call::Push(&request(CERT))).await;
    assert_eq!(failure_kind(&t), FailureKind::Transient);
    assert_eq!(
        client.qps(&credentials(TOKEN)),
        5,
        "halved for every clone of the client"
    );
}

/// With `client` limited to one request a second: one push that empties the bucket, and a second one, spawned, that
/// has reached the bucket and waits about a second for its token.
async fn waiting_for_a_token(client: &ScmClient) -> tokio::task::JoinHandle<Transport> {
    assert!(matches!(
        classify(&client.call(&credentials(TOKEN), Call::Push(&request(CERT))).await),
        PushOutcome::Pushed { .. }
    ));
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.call(&credentials(TOKEN), Call::Push(&request(CERT))).await }
    });
    // Lets the request reach the bucket; had it not, it must not be sent either.
    tokio::time::sleep(Duration::from_millis(100)).await;
    waiting
}

/// Shutdown: a request still waiting for a rate-limit token is not sent, so the reconcile waiting on it ends at once
/// instead of holding the shutdown for its turn; a request already sent is unaffected.
#[tokio::test]
async fn stop_sending_drops_requests_waiting_for_a_token() {
    let (sim, client) = setup().await;
    let client = client.with_rate_limit(1, 1);
    let waiting = waiting_for_a_token(&client).await;
    let stopped = std::time::Instant::now();
    client.stop_sending();
    let t = waiting.await.unwrap();
    assert!(
        stopped.elapsed() < Duration::from_millis(500),
        "{:?}",
        stopped.elapsed()
    );
    let Transport::NotSent(message) = &t else {
        panic!("{t:?}")
    };
    assert!(message.contains("shutting down"), "{message}");
    assert_eq!(sim.pushes().len(), 1, "nothing more reached SCM");
}

/// Defect: the leadership fence was checked before a reconcile waited for a rate-limit token, not after, so a replica
/// whose leadership ended during the wait still sent its request. The gate is asked right before a request leaves.
#[tokio::test]
async fn a_closed_gate_sends_nothing_even_after_the_rate_limit_wait() {
    let (sim, client) = setup().await;
    let leads = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let gate = leads.clone();
    let client = client.with_rate_limit(1, 1).with_gate(std::sync::Arc::new(move || {
        gate.load(std::sync::atomic::Ordering::SeqCst)
    }));
    // Leadership ends while the request waits for its token.
    let waiting = waiting_for_a_token(&client).await;
    leads.store(false, std::sync::atomic::Ordering::SeqCst);
    let t = waiting.await.unwrap();
    let Transport::NotSent(message) = &t else {
        panic!("{t:?}")
    };
    assert!(message.contains("no longer leads"), "{message}");
    assert_eq!(sim.pushes().len(), 1, "nothing more reached SCM");
}

/// A self-signed certificate for `www.example.com` valid until 2030-06-01, as PEM: (certificate, key).
fn real_certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["www.example.com".to_owned()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2030, 6, 1);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Imports `count` placeholder certificates named `{prefix}-NN` without waiting for the rate limit.
async fn import_placeholders(client: &ScmClient, prefix: &str, count: usize) {
    let seeder = client.clone().with_rate_limit(10_000, 10_000);
    for n in 0..count {
        let request = ImportRequest {
            name: format!("{prefix}-{n:02}"),
            certificate: "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n".into(),
            certificate_chain: None,
            private_key: "-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n".into(),
            enterprise_project_id: None,
        };
        seeder.import(&credentials(TOKEN), &request).await.unwrap();
    }
}

/// The queries of the list calls the simulator received, in order.
fn list_queries(sim: &Sim) -> Vec<String> {
    sim.calls()
        .into_iter()
        .filter(|c| c.method == "GET" && c.path == "/v3/scm/certificates")
        .map(|c| c.query.unwrap_or_default())
        .collect()
}

/// Defect (issue 19, item 7): find_import read one page of a list filtered by `content`, which Huawei's SDK models do
/// not have; an endpoint that ignores it answers with the whole account, and an earlier import beyond the first 50
/// certificates was missed, so a crash between import and status write led to a second import. It now asks for
/// uploads only, newest first, and pages on until the name is found or the list ends.
#[tokio::test]
async fn find_import_pages_past_an_endpoint_that_ignores_content() {
    let (sim, client) = setup().await;
    sim.set_list_ignores_content(true);
    import_placeholders(&client, "cpush-older", 55).await;
    let name = "cpush-ns-web-0123abcd-fedcba9876543210";
    let (certificate, key) = real_certificate();
    let request = ImportRequest {
        name: name.into(),
        certificate,
        certificate_chain: None,
        private_key: key.into(),
        enterprise_project_id: None,
    };
    let earlier = client.import(&credentials(TOKEN), &request).await.unwrap();
    import_placeholders(&client, "cpush-newer", 55).await;
    sim.reset();

    let found = client.find_import(&credentials(TOKEN), name).await.unwrap();
    assert_eq!(
        found,
        Some(FoundImport {
            id: earlier,
            expire_time: Some("2030-06-01T00:00:00Z".parse().unwrap()),
            domain: Some("rcgen self signed cert".into()),
        }),
        "with the facts of its list entry"
    );
    let query = |offset: u32| {
        format!("content={name}&status=UPLOAD&sort_key=certUpdateTime&sort_dir=DESC&limit=50&offset={offset}")
    };
    // 111 uploads, newest first: the earlier import is the 56th, on the second page, and paging stops there.
    assert_eq!(list_queries(&sim), [query(0), query(50)]);

    sim.reset();
    let absent = "cpush-ns-api-0123abcd-fedcba9876543210";
    assert_eq!(client.find_import(&credentials(TOKEN), absent).await.unwrap(), None);
    assert_eq!(
        list_queries(&sim).len(),
        3,
        "every page once, then done: {:?}",
        list_queries(&sim)
    );
}

/// Where `content` works, one page answers, and an entry without expiry or domain still counts as found.
#[tokio::test]
async fn find_import_reads_one_page_where_content_filters() {
    let (sim, client) = setup().await;
    import_placeholders(&client, "cpush-older", 55).await;
    sim.reset();
    let found = client
        .find_import(&credentials(TOKEN), "cpush-older-54")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.domain, None, "the placeholder has no domain SCM could read");
    assert_eq!(list_queries(&sim).len(), 1);
    let t = client
        .find_import(&credentials("x".repeat(40).as_str()), "cpush-older-54")
        .await
        .unwrap_err();
    assert_eq!(t.kind, FailureKind::Unauthorized);
}

/// ShowCertificate through `call`: the expiry SCM holds for a certificate, a 404 for one it does not, and an invalid
/// ID refused without a request.
#[tokio::test]
async fn expiry_reads_not_after_from_show_certificate() {
    let (sim, client) = setup().await;
    let (certificate, key) = real_certificate();
    let request = ImportRequest {
        name: "cpush-expiry-test".into(),
        certificate,
        certificate_chain: None,
        private_key: key.into(),
        enterprise_project_id: None,
    };
    let id = client.import(&credentials(TOKEN), &request).await.unwrap();
    sim.reset();

    let expiry = client.expiry(&credentials(TOKEN), &id).await.unwrap();
    assert_eq!(expiry, Some("2030-06-01T00:00:00Z".parse().unwrap()));
    let calls = sim.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str(), calls[0].status),
        ("GET", format!("/v3/scm/certificates/{id}").as_str(), 200)
    );
    // A configured certificate has the simulator's made-up year of validity.
    let issued = client
        .expiry(&credentials(TOKEN), CERT)
        .await
        .unwrap()
        .expect("an expiry");
    assert!(issued > jiff::Timestamp::now(), "{issued}");

    let missing = client
        .expiry(&credentials(TOKEN), "scs0000000000404")
        .await
        .unwrap_err();
    assert_eq!(
        (missing.kind, missing.error_code.as_deref()),
        (FailureKind::CertificateNotFound, Some("SCM.0021"))
    );
    let invalid = client.expiry(&credentials(TOKEN), "../import").await.unwrap_err();
    assert_eq!(invalid.kind, FailureKind::Rejected);
    assert_eq!(sim.calls().len(), 3, "the invalid ID was not sent");

    // The metrics and the log see it as its own operation.
    assert_eq!(Call::Show { certificate_id: CERT }.operation(), "show");
}

/// deployed-resources questions of one credential that arrive together go out as one request, answered per
/// certificate; another credential's go out on their own (another account), never mixed.
#[tokio::test]
async fn in_use_questions_of_one_credential_share_one_request() {
    use certpush_operator::scm::batch::InUseBatcher;
    let (sim, client) = setup().await;
    let other = "client-test-token-ffffffffffffffffffffffffffffffff";
    sim.set_tokens(vec![TOKEN.into(), other.into()]);
    sim.mark_in_use("scs0000000000001", "ELB", "cn-north-4", "elb-cert-1");
    sim.mark_in_use("scs0000000000003", "CDN", "", "www.example.com");
    let batcher = InUseBatcher::default();
    let (mine, theirs) = (credentials(TOKEN), credentials(other));
    let ask = |creds, id| batcher.lookup(&client, creds, id);
    let (a, b, c, d) = tokio::join!(
        ask(&mine, "scs0000000000001"),
        ask(&mine, "scs0000000000002"),
        ask(&mine, "scs0000000000003"),
        ask(&theirs, "scs0000000000001"),
    );
    let a = a.unwrap();
    assert_eq!(
        (a.len(), a[0].service.as_str(), a[0].resource.as_str()),
        (1, "ELB", "elb-cert-1")
    );
    assert!(b.unwrap().is_empty());
    assert_eq!(c.unwrap()[0].to_string(), "CDN www.example.com in global");
    assert_eq!(d.unwrap().len(), 1);
    let asked: Vec<(Option<String>, usize)> = sim
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/deployed-resources"))
        .map(|c| (c.token_sha256, c.body["certificate_ids"].as_array().unwrap().len()))
        .collect();
    assert_eq!(asked.len(), 2, "one request per credential: {asked:?}");
    let of = |token: &str| {
        asked
            .iter()
            .find(|(t, _)| t.as_deref() == Some(hex::encode(Sha256::digest(token)).as_str()))
    };
    assert_eq!(of(TOKEN).map(|(_, n)| *n), Some(3));
    assert_eq!(of(other).map(|(_, n)| *n), Some(1));
}

/// Defect: the finalizer and the superseded-import deletes asked about at most 50 certificates (SCM's limit per
/// request) and deleted the rest unchecked. The client now asks any number, in chunks of 50.
#[tokio::test]
async fn deployed_resources_asks_any_number_of_certificates_in_chunks_of_fifty() {
    let (sim, client) = setup().await;
    let ids: Vec<String> = (0..120).map(|i| format!("scs17{i:011}")).collect();
    for id in &ids {
        sim.add_certificate(id);
    }
    let last = ids.last().unwrap().clone();
    sim.mark_in_use(&last, "ELB", "cn-north-4", "elb-cert-9");
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let held = client
        .deployed_resources(&credentials(TOKEN), &refs, None)
        .await
        .expect("answered");
    assert_eq!(held.len(), 120);
    assert_eq!(held[&last].len(), 1, "the 120th is checked too: {:?}", held[&last]);
    let sizes: Vec<usize> = sim
        .calls()
        .iter()
        .filter(|c| c.path.ends_with("/deployed-resources"))
        .map(|c| c.body["certificate_ids"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [50, 50, 20]);
}

/// A region SCM could not read (`is_error`) makes the whole answer unknown, naming the region; an `ID:name`
/// resource_id reads as the ID.
#[tokio::test]
async fn an_unreadable_region_is_unknown_and_a_named_resource_id_is_its_id() {
    let (sim, client) = setup().await;
    sim.mark_in_use(CERT, "ELB", "cn-north-4", "elb-cert-1");
    sim.set_resource_id_with_name(true);
    let held = client
        .deployed_resources(&credentials(TOKEN), &[CERT], Some(TargetService::Elb))
        .await
        .expect("answered");
    assert_eq!(held[CERT][0].resource, "elb-cert-1");
    sim.fail_region_read("ap-southeast-1");
    let unknown = client
        .deployed_resources(&credentials(TOKEN), &[CERT], Some(TargetService::Elb))
        .await
        .expect_err("unknown, not 'deployed only in cn-north-4'");
    assert!(unknown.in_use_unknown(), "{unknown:?}");
    assert!(
        unknown.error_message.contains("ELB in ap-southeast-1"),
        "{}",
        unknown.error_message
    );
}

/// Defect: a 403 on deployed-resources (the IAM user lacks scm:cert:listDeployedResources) marked the credential
/// refused, so every push with it was withheld. It is a problem of that one action: the answer says which, and a
/// push with the same credential is still sent.
#[tokio::test]
async fn a_403_on_deployed_resources_does_not_hold_back_pushes() {
    const LIMITED: &str = "client-test-limited-token-0000000000000000000000000";
    certpush_operator::install_crypto_provider();
    let config = SimConfig {
        tokens: vec![TOKEN.into()],
        forbidden_tokens: vec![LIMITED.into()],
        ..SimConfig::default()
    };
    let sim = Sim::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = ScmClient::new(&sim.url(), None).unwrap();
    let limited = credentials(LIMITED);
    let denied = client
        .deployed_resources(&limited, &[CERT], None)
        .await
        .expect_err("403");
    assert_eq!(denied.kind, FailureKind::Forbidden);
    assert!(
        denied.error_message.contains("scm:cert:listDeployedResources"),
        "{}",
        denied.error_message
    );
    let push = client.call(&limited, Call::Push(&request(CERT))).await;
    assert!(
        matches!(push, Transport::Answered(_)),
        "the push was sent, not withheld: {push:?}"
    );
    assert_eq!(sim.calls().len(), 2);
}

/// The demo access key without `domainId` or `projectId`.
fn unscoped_key() -> Credentials {
    access_key(&[
        ("accessKey", scm_sim::DEMO_ACCESS_KEY),
        ("secretKey", scm_sim::DEMO_SECRET_KEY),
    ])
}

fn failure(t: &Transport) -> certpush_operator::scm::PushFailure {
    match classify(t) {
        PushOutcome::Failed(f) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Issue 29: an access key without a scope asks IAM for its account id once, whatever number of requests and
/// objects use it at once, and every SCM request carries it as X-Domain-Id; the IAM request is counted in the
/// metrics as `iam_domains`.
#[tokio::test]
async fn an_access_key_without_a_scope_asks_iam_once_and_signs_with_its_domain() {
    let (sim, client) = setup().await;
    let mut registry = prometheus_client::registry::Registry::default();
    let client = client
        .with_iam_endpoint(sim.url().parse().unwrap())
        .with_metrics(certpush_operator::scm::ScmMetrics::register(&mut registry));
    sim.set_domain(scm_sim::DEMO_ACCESS_KEY, "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0");
    let key = std::sync::Arc::new(unscoped_key());
    let requests: Vec<_> = (0..8)
        .map(|i| {
            let (client, key) = (client.clone(), key.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    client.call(&key, Call::Push(&request(CERT))).await
                } else {
                    client.call(&key, Call::Show { certificate_id: CERT }).await
                }
            })
        })
        .collect();
    for request in requests {
        let t = request.await.unwrap();
        assert!(matches!(t, Transport::Answered(ref r) if r.status < 300), "{t:?}");
    }
    assert_eq!(sim.iam_calls().len(), 1, "{:#?}", sim.iam_calls());
    let scm: Vec<_> = sim.calls().into_iter().filter(|c| !c.is_iam_domains()).collect();
    assert_eq!(scm.len(), 8);
    assert!(
        scm.iter()
            .all(|c| c.domain_id.as_deref() == Some("d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0") && c.project_id.is_none()),
        "{scm:#?}"
    );
    // A clone (as a per-account client would be) knows it too.
    let t = client.clone().call(&key, Call::Push(&request(CERT))).await;
    assert!(matches!(classify(&t), PushOutcome::Pushed { .. }), "{t:?}");
    assert_eq!(sim.iam_calls().len(), 1);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(r#"scm_requests_total{operation="iam_domains",code="200",error_code=""} 1"#),
        "{text}"
    );
}

/// Without an IAM endpoint (the simulator's URL has no Huawei site to derive one from) nothing is sent: the answer
/// names domainId and the flag, and says nothing of the key.
#[tokio::test]
async fn without_an_iam_endpoint_an_unscoped_key_sends_nothing_and_names_domain_id() {
    let (sim, client) = setup().await;
    assert_eq!(client.iam_endpoint(), None);
    let t = client.call(&unscoped_key(), Call::Push(&request(CERT))).await;
    let f = failure(&t);
    assert_eq!((f.kind, f.http_status), (FailureKind::InvalidCredentials, None));
    for needle in ["domainId", "--iam-endpoint", &sim.url()] {
        assert!(f.error_message.contains(needle), "{needle}: {}", f.error_message);
    }
    for secret in [scm_sim::DEMO_ACCESS_KEY, scm_sim::DEMO_SECRET_KEY] {
        assert!(!f.error_message.contains(secret));
    }
    assert!(sim.calls().is_empty(), "{:#?}", sim.calls());
    // A Huawei site's SCM endpoint has its IAM endpoint.
    let huawei = ScmClient::new("https://scm.ap-southeast-1.myhuaweicloud.com", None).unwrap();
    assert_eq!(
        huawei.iam_endpoint().map(|u| u.to_string()).as_deref(),
        Some("https://iam.ap-southeast-1.myhuaweicloud.com/")
    );
}

/// IAM refusing the key (401) is SCM's verdict too: the SCM request is not sent, the refusal is remembered like an
/// SCM 401 (nothing more is sent with that key, IAM included) until a human asks again.
#[tokio::test]
async fn iam_refusing_the_key_sends_no_scm_request_and_is_remembered() {
    let (sim, client) = setup().await;
    let client = client.with_iam_endpoint(sim.url().parse().unwrap());
    sim.set_iam_answer(scm_sim::IamAnswer::Unauthorized);
    let key = unscoped_key();
    let f = failure(&client.call(&key, Call::Push(&request(CERT))).await);
    assert_eq!((f.kind, f.http_status), (FailureKind::Unauthorized, None));
    assert_eq!(f.error_code.as_deref(), Some("APIGW.0301"));
    assert!(
        f.error_message.contains("domainId") && f.error_message.contains("HTTP 401 APIGW.0301"),
        "{}",
        f.error_message
    );
    for _ in 0..3 {
        let t = client.call(&key, Call::Show { certificate_id: CERT }).await;
        assert!(matches!(t, Transport::Withheld(_)), "{t:?}");
    }
    assert_eq!(sim.iam_calls().len(), 1);
    assert_eq!(sim.calls().len(), 1, "no SCM request: {:#?}", sim.calls());
    // Forbidden and an empty list are InvalidCredentials, remembered too; a human's request asks again.
    for (answer, says) in [
        (scm_sim::IamAnswer::Forbidden, "HTTP 403"),
        (scm_sim::IamAnswer::Empty, "empty list"),
    ] {
        sim.set_iam_answer(answer);
        client.retry_refused(&client.digest(&key));
        let f = failure(&client.call(&key, Call::Push(&request(CERT))).await);
        assert_eq!(f.kind, FailureKind::InvalidCredentials, "{answer:?}");
        assert!(f.error_message.contains(says), "{}", f.error_message);
        assert!(matches!(
            client.call(&key, Call::Push(&request(CERT))).await,
            Transport::Withheld(_)
        ));
    }
    assert_eq!(sim.iam_calls().len(), 3);
    assert!(sim.pushes().is_empty());
    // IAM tells it again: pushed, with no more refusals.
    sim.set_iam_answer(scm_sim::IamAnswer::Domains);
    client.retry_refused(&client.digest(&key));
    let t = client.call(&key, Call::Push(&request(CERT))).await;
    assert!(matches!(classify(&t), PushOutcome::Pushed { .. }), "{t:?}");
}

/// An IAM that cannot be reached is transient: nothing is sent to SCM, nothing is held against the key, and the next
/// call asks again.
#[tokio::test]
async fn an_unreachable_iam_is_retried_and_sends_nothing_to_scm() {
    let (sim, client) = setup().await;
    let closed = format!("http://127.0.0.1:{}", scm_sim::free_port());
    let client = client.with_iam_endpoint(closed.parse().unwrap());
    let key = unscoped_key();
    for _ in 0..2 {
        let f = failure(&client.call(&key, Call::Push(&request(CERT))).await);
        assert_eq!(
            (f.kind, f.http_status, f.outcome_unknown),
            (FailureKind::Transient, None, false)
        );
        assert!(
            f.error_message.contains("could not connect to IAM") && f.error_message.contains("domainId"),
            "{}",
            f.error_message
        );
    }
    assert!(sim.calls().is_empty(), "{:#?}", sim.calls());
}

/// The leader gate and shutdown hold back the IAM request like any other.
#[tokio::test]
async fn a_closed_gate_sends_no_iam_request_either() {
    let (sim, client) = setup().await;
    let client = client
        .with_iam_endpoint(sim.url().parse().unwrap())
        .with_gate(std::sync::Arc::new(|| false));
    let t = client.call(&unscoped_key(), Call::Push(&request(CERT))).await;
    let f = failure(&t);
    assert!(f.error_message.contains("no longer leads"), "{}", f.error_message);
    assert!(sim.calls().is_empty(), "{:#?}", sim.calls());
}
