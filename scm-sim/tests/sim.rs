//! Tests of the SCM simulator over real HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use scm_sim::{Call, DEMO_CERTIFICATES, DEMO_TOKEN, Fault, FaultAction, Sim, SimConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CERT: &str = DEMO_CERTIFICATES[0];
const OTHER_CERT: &str = DEMO_CERTIFICATES[1];
const WAF_PUSH: &str = r#"{"target_project":"ap-southeast-1","target_service":"WAF"}"#;

async fn start(config: SimConfig) -> Sim {
    Sim::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts")
}

fn client() -> reqwest::Client {
    // reqwest is built with `rustls-no-provider` and refuses to build a client without one,
    // even for plain http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client builds")
}

/// Status, X-Request-Id and body text of a push.
async fn push(sim: &Sim, id: &str, token: Option<&str>, body: &str) -> (u16, String, String) {
    let mut request = client()
        .post(format!("{}/v3/scm/certificates/{id}/push", sim.url()))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.header("X-Auth-Token", token);
    }
    let response = request.send().await.expect("push answered");
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .expect("X-Request-Id header")
        .to_str()
        .unwrap()
        .to_owned();
    (status, request_id, response.text().await.unwrap())
}

async fn get(sim: &Sim, path_and_query: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = client().get(format!("{}{path_and_query}", sim.url()));
    if let Some(token) = token {
        request = request.header("X-Auth-Token", token);
    }
    let response = request.send().await.expect("get answered");
    let status = response.status().as_u16();
    (status, serde_json::from_str(&response.text().await.unwrap()).unwrap())
}

async fn admin(sim: &Sim, method: reqwest::Method, path: &str, body: &str) -> (u16, String) {
    let response = client()
        .request(method, format!("{}{path}", sim.url()))
        .body(body.to_owned())
        .send()
        .await
        .expect("admin answered");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn json_body(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn error_fault(certificate_id: Option<&str>, times: u32, status: u16, code: &str) -> Fault {
    Fault {
        certificate_id: certificate_id.map(str::to_owned),
        times,
        action: FaultAction::Error {
            status,
            error_code: code.to_owned(),
            error_msg: format!("injected {code}"),
        },
    }
}

#[test]
fn demo_constants_have_the_documented_shape() {
    assert_eq!(DEMO_TOKEN.len(), 64);
    assert!(DEMO_TOKEN.starts_with("demo-token-"));
    assert_eq!(DEMO_CERTIFICATES.len(), 3);
    for id in DEMO_CERTIFICATES {
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.starts_with("scs"), "{id}");
    }
    let config = SimConfig::default();
    assert_eq!(config.tokens, vec![DEMO_TOKEN.to_owned()]);
    assert_eq!(config.certificates, DEMO_CERTIFICATES);
    assert_eq!(config.latency, Duration::ZERO);
    assert!(!config.reject_duplicate_push);
}

#[tokio::test]
async fn successful_push_answers_204_and_is_recorded() {
    let sim = start(SimConfig::default()).await;
    assert!(sim.url().starts_with("http://127.0.0.1:"));
    assert_ne!(sim.addr().port(), 0);

    let (status, request_id, body) = push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await;
    assert_eq!(status, 204);
    assert_eq!(body, "");
    assert_eq!(request_id.len(), 32);
    assert!(request_id.bytes().all(|b| b.is_ascii_hexdigit()));

    let calls = sim.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.path, format!("/v3/scm/certificates/{CERT}/push"));
    assert_eq!(call.certificate_id.as_deref(), Some(CERT));
    assert_eq!(call.content_type.as_deref(), Some("application/json"));
    assert_eq!(call.token_sha256, Some(sha256_hex(DEMO_TOKEN)));
    assert_eq!(
        call.body,
        json!({"target_project": "ap-southeast-1", "target_service": "WAF"})
    );
    assert_eq!(call.status, 204);
    assert_eq!(call.error_code, None);
    assert_eq!(call.request_id, request_id);
    assert_eq!(sim.pushes(), calls);
    assert_eq!(sim.successful_pushes(), calls);
}

#[tokio::test]
async fn every_response_gets_a_fresh_request_id() {
    let sim = start(SimConfig::default()).await;
    let (_, first, _) = push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await;
    let (_, second, _) = push(&sim, CERT, None, WAF_PUSH).await;
    assert_ne!(first, second);
    assert_eq!(second.len(), 32);
}

#[tokio::test]
async fn missing_or_unknown_token_is_401() {
    let sim = start(SimConfig::default()).await;
    for token in [None, Some("not-a-valid-token")] {
        let (status, request_id, body) = push(&sim, CERT, token, WAF_PUSH).await;
        assert_eq!(status, 401, "token {token:?}");
        assert_eq!(
            json_body(&body),
            json!({
                "error_code": "APIGW.0301",
                "error_msg": "Incorrect IAM authentication information: decrypt token fail",
                "request_id": request_id,
            })
        );
    }
    let calls = sim.calls();
    assert_eq!(calls[0].token_sha256, None);
    assert_eq!(calls[1].token_sha256, Some(sha256_hex("not-a-valid-token")));
    assert!(calls.iter().all(|c| c.status == 401));
    assert!(calls.iter().all(|c| c.error_code.as_deref() == Some("APIGW.0301")));
    assert!(sim.successful_pushes().is_empty());
}

#[tokio::test]
async fn forbidden_token_is_403_before_the_certificate_check() {
    let sim = start(SimConfig {
        forbidden_tokens: vec!["readonly-token".to_owned()],
        ..SimConfig::default()
    })
    .await;
    // Unknown certificate too: authorization must win.
    let (status, request_id, body) = push(&sim, "scs0000000000000", Some("readonly-token"), WAF_PUSH).await;
    assert_eq!(status, 403);
    assert_eq!(
        json_body(&body),
        json!({
            "error_code": "APIGW.0302",
            "error_msg": "The IAM user is not authorized to access the API.",
            "request_id": request_id,
        })
    );
    assert_eq!(sim.calls()[0].error_code.as_deref(), Some("APIGW.0302"));
}

#[tokio::test]
async fn unknown_certificate_is_404_before_the_body_check() {
    let sim = start(SimConfig::default()).await;
    let (status, _, body) = push(&sim, "scs9999999999999", Some(DEMO_TOKEN), "not json").await;
    assert_eq!(status, 404);
    assert_eq!(
        json_body(&body),
        json!({"error_code": "SCM.0021", "error_msg": "certificate not exist"})
    );
    let call = &sim.calls()[0];
    assert_eq!(call.certificate_id.as_deref(), Some("scs9999999999999"));
    assert_eq!(call.body, Value::Null);
    assert_eq!(call.error_code.as_deref(), Some("SCM.0021"));
}

#[tokio::test]
async fn invalid_push_bodies_are_400() {
    let sim = start(SimConfig::default()).await;
    let unsupported = json!({
        "error_code": "SCM.0030",
        "error_msg": "Certificates cannot be pushed to this service.",
    });
    let bad_parameter = json!({"error_code": "SCM.0005", "error_msg": "Incorrect request parameter."});
    let cases = [
        ("not json", &unsupported),
        (r#"["WAF"]"#, &unsupported),
        (r#"{"target_project":"p","target_service":"OBS"}"#, &unsupported),
        (r#"{"target_project":"p","target_service":"waf"}"#, &unsupported),
        (r#"{"target_project":"p"}"#, &unsupported),
        (r#"{"target_service":"WAF"}"#, &bad_parameter),
        (r#"{"target_project":"","target_service":"ELB"}"#, &bad_parameter),
    ];
    for (body, expected) in cases {
        let (status, _, answer) = push(&sim, CERT, Some(DEMO_TOKEN), body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(&json_body(&answer), expected, "{body}");
    }
    // CDN is global, so it needs no project.
    let (status, _, _) = push(&sim, CERT, Some(DEMO_TOKEN), r#"{"target_service":"CDN"}"#).await;
    assert_eq!(status, 204);
    assert_eq!(sim.successful_pushes().len(), 1);
    assert_eq!(sim.pushes().len(), cases.len() + 1);
}

#[tokio::test]
async fn duplicate_push_is_rejected_only_when_enabled() {
    let strict = start(SimConfig {
        reject_duplicate_push: true,
        ..SimConfig::default()
    })
    .await;
    assert_eq!(push(&strict, CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 204);
    let (status, _, body) = push(&strict, CERT, Some(DEMO_TOKEN), WAF_PUSH).await;
    assert_eq!(status, 400);
    assert_eq!(
        json_body(&body),
        json!({"error_code": "SCM.0028", "error_msg": "Push cert error"})
    );
    // Another project, service or certificate is not a duplicate.
    let other_project = r#"{"target_project":"cn-north-4","target_service":"WAF"}"#;
    let other_service = r#"{"target_project":"ap-southeast-1","target_service":"ELB"}"#;
    assert_eq!(push(&strict, CERT, Some(DEMO_TOKEN), other_project).await.0, 204);
    assert_eq!(push(&strict, CERT, Some(DEMO_TOKEN), other_service).await.0, 204);
    assert_eq!(push(&strict, OTHER_CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 204);
    assert_eq!(strict.successful_pushes().len(), 4);
    // Reset forgets earlier pushes.
    strict.reset();
    assert_eq!(push(&strict, CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 204);

    let lenient = start(SimConfig::default()).await;
    assert_eq!(push(&lenient, CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 204);
    assert_eq!(push(&lenient, CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 204);
}

#[tokio::test]
async fn unknown_path_is_apigw_0101() {
    let sim = start(SimConfig::default()).await;
    for path in ["/v3/scm/nothing", "/v3/scm/certificates/a/b/c"] {
        let response = client()
            .get(format!("{}{path}", sim.url()))
            .header("X-Auth-Token", DEMO_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
        let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(
            json_body(&response.text().await.unwrap()),
            json!({
                "error_code": "APIGW.0101",
                "error_msg": "The API does not exist or has not been published in the environment.",
                "request_id": request_id,
            })
        );
    }
    // Wrong method on a real path is not an API either.
    let response = client()
        .delete(format!("{}/v3/scm/certificates/{CERT}/push", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(sim.calls().len(), 3);
    assert!(sim.pushes().is_empty());
}

#[tokio::test]
async fn faults_are_used_in_fifo_order_per_certificate_and_times() {
    let sim = start(SimConfig::default()).await;
    sim.inject(error_fault(Some(CERT), 2, 500, "SCM.0001"));
    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Respond {
            status: 503,
            body: "upstream unavailable".to_owned(),
            retry_after: Some(7),
        },
    });
    assert_eq!(sim.pending_faults().len(), 2);

    // The first fault only matches CERT, so OTHER_CERT gets the second one.
    let response = client()
        .post(format!("{}/v3/scm/certificates/{OTHER_CERT}/push", sim.url()))
        .header("X-Auth-Token", DEMO_TOKEN)
        .body(WAF_PUSH)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.text().await.unwrap(), "upstream unavailable");

    for _ in 0..2 {
        let (status, _, body) = push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await;
        assert_eq!(status, 500);
        assert_eq!(
            json_body(&body),
            json!({"error_code": "SCM.0001", "error_msg": "injected SCM.0001"})
        );
    }
    assert!(sim.pending_faults().is_empty());
    assert_eq!(push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 204);
    assert_eq!(push(&sim, OTHER_CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 204);

    let statuses: Vec<(u16, Option<String>)> = sim.calls().into_iter().map(|c| (c.status, c.error_code)).collect();
    assert_eq!(
        statuses,
        vec![
            (503, None),
            (500, Some("SCM.0001".to_owned())),
            (500, Some("SCM.0001".to_owned())),
            (204, None),
            (204, None),
        ]
    );
}

#[tokio::test]
async fn faults_apply_before_auth_and_only_to_pushes() {
    let sim = start(SimConfig::default()).await;
    sim.inject(error_fault(None, 1, 429, "APIGW.0308"));
    // A list call must not consume the push fault.
    let (status, _) = get(&sim, "/v3/scm/certificates", Some(DEMO_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(sim.pending_faults().len(), 1);

    let (status, request_id, body) = push(&sim, CERT, None, WAF_PUSH).await;
    assert_eq!(status, 429);
    // Gateway-style codes carry the request id like real APIGW errors.
    assert_eq!(
        json_body(&body),
        json!({"error_code": "APIGW.0308", "error_msg": "injected APIGW.0308", "request_id": request_id})
    );
    assert_eq!(push(&sim, CERT, None, WAF_PUSH).await.0, 401);
}

#[tokio::test]
async fn respond_fault_with_empty_or_json_body() {
    let sim = start(SimConfig::default()).await;
    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Respond {
            status: 502,
            body: String::new(),
            retry_after: None,
        },
    });
    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Respond {
            status: 400,
            body: r#"{"error_code":"SCM.0099","error_msg":"odd"}"#.to_owned(),
            retry_after: None,
        },
    });
    let response = client()
        .post(format!("{}/v3/scm/certificates/{CERT}/push", sim.url()))
        .header("X-Auth-Token", DEMO_TOKEN)
        .body(WAF_PUSH)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 502);
    assert!(!response.headers().contains_key("content-type"));
    assert!(!response.headers().contains_key("retry-after"));
    assert_eq!(response.text().await.unwrap(), "");

    let (status, _, body) = push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await;
    assert_eq!(status, 400);
    assert_eq!(body, r#"{"error_code":"SCM.0099","error_msg":"odd"}"#);
    assert_eq!(sim.calls()[1].error_code.as_deref(), Some("SCM.0099"));
}

/// Sends one raw HTTP/1.1 request and returns everything received until the server closes.
fn raw_exchange(addr: SocketAddr, request: &str) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request.as_bytes())?;
    let mut received = Vec::new();
    stream.read_to_end(&mut received).map(|_| received)
}

fn raw_push(id: &str, body: &str, connection: &str) -> String {
    format!(
        "POST /v3/scm/certificates/{id}/push HTTP/1.1\r\nHost: sim\r\nX-Auth-Token: {DEMO_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn drop_fault_closes_the_connection_without_a_response() {
    let sim = start(SimConfig::default()).await;
    sim.inject(Fault {
        certificate_id: Some(CERT.to_owned()),
        times: 1,
        action: FaultAction::Drop,
    });
    let addr = sim.addr();
    let request = raw_push(CERT, WAF_PUSH, "keep-alive");
    let received = tokio::task::spawn_blocking(move || raw_exchange(addr, &request))
        .await
        .unwrap();
    match received {
        Ok(bytes) => assert!(bytes.is_empty(), "got {:?}", String::from_utf8_lossy(&bytes)),
        // A reset is as good as a close; a timeout would mean the connection was left open.
        Err(error) => assert!(
            !matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{error}"
        ),
    }
    let calls = sim.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].status, 0);
    assert_eq!(calls[0].error_code, None);
    assert_eq!(calls[0].body["target_service"], "WAF");
    assert!(sim.successful_pushes().is_empty());

    // The fault is used up; a client library sees an error and the next push works.
    let error = push_without_answer(&sim, FaultAction::Drop).await;
    assert!(error.is_request() || error.is_connect(), "{error:?}");
    assert_eq!(push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 204);
    let statuses: Vec<u16> = sim.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![0, 0, 204]);
}

/// Queues `action` for the next push, sends one, and returns the error it ends in for want of an answer.
async fn push_without_answer(sim: &Sim, action: FaultAction) -> reqwest::Error {
    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action,
    });
    client()
        .post(format!("{}/v3/scm/certificates/{CERT}/push", sim.url()))
        .header("X-Auth-Token", DEMO_TOKEN)
        .body(WAF_PUSH)
        .send()
        .await
        .expect_err("no answer")
}

#[tokio::test]
async fn drop_after_push_lands_the_push_and_loses_the_answer() {
    let sim = start(SimConfig {
        reject_duplicate_push: true,
        ..SimConfig::default()
    })
    .await;
    let error = push_without_answer(&sim, FaultAction::DropAfterPush).await;
    assert!(!error.is_connect(), "the request was sent: {error:?}");
    // It landed: a repeat is refused like a duplicate.
    let (status, _, body) = push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(json_body(&body)["error_code"], "SCM.0028");
    let statuses: Vec<u16> = sim.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![0, 400]);
}

#[tokio::test]
async fn connections_are_kept_alive_for_normal_responses() {
    let sim = start(SimConfig::default()).await;
    let addr = sim.addr();
    let statuses = tokio::task::spawn_blocking(move || {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut statuses = Vec::new();
        for body in [WAF_PUSH, "not json", WAF_PUSH] {
            writer.write_all(raw_push(CERT, body, "keep-alive").as_bytes()).unwrap();
            statuses.push(read_raw_response(&mut reader));
        }
        statuses
    })
    .await
    .unwrap();
    assert_eq!(statuses, vec![204, 400, 204]);
    assert_eq!(sim.calls().len(), 3);
}

/// Reads one response from a keep-alive connection and returns its status.
fn read_raw_response(reader: &mut impl BufRead) -> u16 {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).unwrap();
    status
}

#[tokio::test]
async fn delay_fault_and_latency_slow_down_answers() {
    let sim = start(SimConfig {
        latency: Duration::from_millis(150),
        ..SimConfig::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    assert_eq!(push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 204);
    let plain = started.elapsed();
    assert!(plain >= Duration::from_millis(150), "{plain:?}");

    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Delay { ms: 400 },
    });
    let started = tokio::time::Instant::now();
    // Delay only postpones: the built-in checks still apply afterwards.
    assert_eq!(push(&sim, CERT, None, WAF_PUSH).await.0, 401);
    let delayed = started.elapsed();
    assert!(delayed >= Duration::from_millis(550), "{delayed:?}");
    assert!(sim.pending_faults().is_empty());
}

#[tokio::test]
async fn a_push_abandoned_by_the_client_still_takes_effect() {
    let sim = start(SimConfig::default()).await;
    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Delay { ms: 300 },
    });
    let impatient = {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(50))
            .build()
            .unwrap()
    };
    let error = impatient
        .post(format!("{}/v3/scm/certificates/{CERT}/push", sim.url()))
        .header("X-Auth-Token", DEMO_TOKEN)
        .body(WAF_PUSH)
        .send()
        .await
        .expect_err("client times out");
    assert!(error.is_timeout(), "{error:?}");
    assert!(sim.calls().is_empty());
    // Poll rather than sleep a fixed time so that a loaded machine does not make this flaky.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sim.calls().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pushes = sim.successful_pushes();
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].status, 204);
}

#[tokio::test]
async fn a_gateway_timeout_answers_504_late_and_pushes_nothing() {
    let sim = start(SimConfig::default()).await;
    sim.inject(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::GatewayTimeout { ms: 300 },
    });
    let started = tokio::time::Instant::now();
    let (status, _, body) = push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        (status, json_body(&body)["error_code"].as_str()),
        (504, Some("APIGW.0201"))
    );
    assert!(sim.successful_pushes().is_empty());
    // The same push, not held, lands: the timeout sent nothing on.
    assert_eq!(push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 204);
}

const PEM_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
const PEM_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEsecret\n-----END PRIVATE KEY-----\n";

async fn import(sim: &Sim, body: &Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}/v3/scm/certificates/import", sim.url()))
        .header("X-Auth-Token", DEMO_TOKEN)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, json_body(&response.text().await.unwrap()))
}

#[tokio::test]
async fn imported_certificate_can_be_shown_listed_and_pushed() {
    let sim = start(SimConfig::default()).await;
    let (status, answer) = import(
        &sim,
        &json!({"name": "my-cert_1.0", "certificate": PEM_CERT, "private_key": PEM_KEY}),
    )
    .await;
    assert_eq!(status, 200);
    let id = answer["certificate_id"].as_str().expect("certificate_id").to_owned();
    assert_eq!(id.len(), 16);
    assert!(
        id.starts_with("scs") && id[3..].bytes().all(|b| b.is_ascii_digit()),
        "{id}"
    );

    let (status, detail) = get(&sim, &format!("/v3/scm/certificates/{id}"), Some(DEMO_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(detail["id"], id.as_str());
    assert_eq!(detail["name"], "my-cert_1.0");
    assert_eq!(detail["status"], "UPLOAD");
    assert_eq!(detail["push_support"], "ON");

    let (status, listing) = get(&sim, "/v3/scm/certificates?limit=50", Some(DEMO_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(listing["total_count"], 4);
    assert_eq!(listing["certificates"][3]["id"], id.as_str());

    assert_eq!(push(&sim, &id, Some(DEMO_TOKEN), WAF_PUSH).await.0, 204);

    // The key never shows up in the record.
    let import_call = &sim.calls()[0];
    assert_eq!(import_call.certificate_id.as_deref(), Some(id.as_str()));
    assert_eq!(import_call.body["private_key"], "<redacted>");
    assert_eq!(import_call.body["certificate"], PEM_CERT);
    let recorded = serde_json::to_string(&sim.calls()).unwrap();
    assert!(!recorded.contains("MIIEsecret"));

    // A second import gets a different id.
    let (status, second) = import(
        &sim,
        &json!({"name": "other", "certificate": PEM_CERT, "private_key": PEM_KEY, "certificate_chain": PEM_CERT}),
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(second["certificate_id"], id.as_str());
}

#[tokio::test]
async fn invalid_imports_are_400() {
    let sim = start(SimConfig::default()).await;
    let too_long = format!("{PEM_CERT}{}", "A".repeat(4096));
    let bad = [
        (
            json!({"name": "ab", "certificate": PEM_CERT, "private_key": PEM_KEY}),
            "SCM.0005",
        ),
        (
            json!({"name": "a".repeat(64), "certificate": PEM_CERT, "private_key": PEM_KEY}),
            "SCM.0005",
        ),
        (
            json!({"name": "has space", "certificate": PEM_CERT, "private_key": PEM_KEY}),
            "SCM.0005",
        ),
        (json!({"name": "good", "certificate": PEM_CERT}), "SCM.0005"),
        (
            json!({"name": "good", "certificate": too_long, "private_key": PEM_KEY}),
            "SCM.0005",
        ),
        (
            json!({"name": "good", "certificate": PEM_CERT, "private_key": PEM_KEY, "certificate_chain": "A".repeat(8193)}),
            "SCM.0005",
        ),
        (
            json!({"name": "good", "certificate": "MIIB", "private_key": PEM_KEY}),
            "SCM.0053",
        ),
        (
            json!({"name": "good", "certificate": PEM_CERT, "private_key": "secret"}),
            "SCM.0114",
        ),
    ];
    for (body, code) in &bad {
        let (status, answer) = import(&sim, body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error_code"], *code, "{body}");
    }
    let (status, listing) = get(&sim, "/v3/scm/certificates", Some(DEMO_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(listing["total_count"], 3);
    // Even rejected imports must not leak the key into the record.
    assert!(sim.calls().iter().all(|c| c.body["private_key"] != "secret"));
}

#[tokio::test]
async fn list_paginates_and_show_checks_auth_and_existence() {
    let sim = start(SimConfig::default()).await;
    let (status, page) = get(&sim, "/v3/scm/certificates?limit=2&offset=1", Some(DEMO_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(page["total_count"], 3);
    let ids: Vec<&str> = page["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, DEMO_CERTIFICATES[1..]);
    assert_eq!(page["certificates"][0]["status"], "ISSUED");

    let (status, answer) = get(&sim, "/v3/scm/certificates?limit=x", Some(DEMO_TOKEN)).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error_code"], "SCM.0005");
    assert_eq!(get(&sim, "/v3/scm/certificates?limit=0", Some(DEMO_TOKEN)).await.0, 400);
    assert_eq!(get(&sim, "/v3/scm/certificates", None).await.0, 401);

    let (status, detail) = get(&sim, &format!("/v3/scm/certificates/{CERT}"), Some(DEMO_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(detail["id"], CERT);
    assert_eq!(detail["status"], "ISSUED");
    assert_eq!(detail["push_support"], "ON");
    let (status, missing) = get(&sim, "/v3/scm/certificates/scs0000000000000", Some(DEMO_TOKEN)).await;
    assert_eq!(status, 404);
    assert_eq!(missing["error_code"], "SCM.0021");
    assert_eq!(
        get(&sim, &format!("/v3/scm/certificates/{CERT}"), Some("wrong"))
            .await
            .0,
        401
    );
    assert_eq!(sim.calls().len(), 7);
    assert!(sim.pushes().is_empty());
}

#[tokio::test]
async fn handle_controls_tokens_certificates_and_reset() {
    let sim = start(SimConfig::default()).await;
    sim.set_tokens(vec!["rotated".to_owned()]);
    assert_eq!(push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 401);
    assert_eq!(push(&sim, CERT, Some("rotated"), WAF_PUSH).await.0, 204);

    assert_eq!(push(&sim, "scs1700000000000", Some("rotated"), WAF_PUSH).await.0, 404);
    sim.add_certificate("scs1700000000000");
    sim.add_certificate("scs1700000000000");
    assert_eq!(push(&sim, "scs1700000000000", Some("rotated"), WAF_PUSH).await.0, 204);
    let (_, listing) = get(&sim, "/v3/scm/certificates", Some("rotated")).await;
    assert_eq!(listing["total_count"], 4);

    sim.inject(error_fault(None, 3, 500, "SCM.0001"));
    sim.inject(error_fault(None, 0, 500, "SCM.0002"));
    assert_eq!(sim.pending_faults().len(), 1);
    sim.reset();
    assert!(sim.calls().is_empty());
    assert!(sim.pending_faults().is_empty());
    assert_eq!(push(&sim, CERT, Some("rotated"), WAF_PUSH).await.0, 204);
    assert_eq!(sim.calls().len(), 1);
}

#[tokio::test]
async fn admin_api_roundtrip() {
    let sim = start(SimConfig::default()).await;
    let (status, body) = admin(&sim, reqwest::Method::GET, "/sim/healthz", "").await;
    assert_eq!((status, json_body(&body)), (200, json!({"status": "ok"})));

    let fault =
        r#"{"certificate_id":null,"times":1,"action":"error","status":500,"error_code":"SCM.0001","error_msg":"boom"}"#;
    assert_eq!(admin(&sim, reqwest::Method::POST, "/sim/faults", fault).await.0, 204);
    assert_eq!(
        sim.pending_faults(),
        vec![Fault {
            certificate_id: None,
            times: 1,
            action: FaultAction::Error {
                status: 500,
                error_code: "SCM.0001".to_owned(),
                error_msg: "boom".to_owned(),
            },
        }]
    );
    let (status, _, body) = push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await;
    assert_eq!((status, json_body(&body)["error_msg"].clone()), (500, json!("boom")));

    // `times` defaults to 1 and `respond` fields are optional.
    let minimal = r#"{"action":"respond","status":502}"#;
    assert_eq!(admin(&sim, reqwest::Method::POST, "/sim/faults", minimal).await.0, 204);
    assert_eq!(push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 502);
    assert_eq!(push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 204);

    for invalid in [
        r#"{"action":"explode"}"#,
        r#"{"action":"respond","status":42}"#,
        r#"{"action":"drop","times":0}"#,
        "not json",
    ] {
        let (status, body) = admin(&sim, reqwest::Method::POST, "/sim/faults", invalid).await;
        assert_eq!(status, 400, "{invalid}");
        assert_eq!(json_body(&body)["error_code"], "SIM.0001");
    }
    assert!(sim.pending_faults().is_empty());

    assert_eq!(
        admin(&sim, reqwest::Method::PUT, "/sim/tokens", r#"["t-2"]"#).await.0,
        204
    );
    assert_eq!(push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 401);
    assert_eq!(push(&sim, CERT, Some("t-2"), WAF_PUSH).await.0, 204);

    let new_cert = r#"{"id":"scs1600000000001"}"#;
    assert_eq!(
        admin(&sim, reqwest::Method::POST, "/sim/certificates", new_cert)
            .await
            .0,
        204
    );
    assert_eq!(push(&sim, "scs1600000000001", Some("t-2"), WAF_PUSH).await.0, 204);
    assert_eq!(
        admin(&sim, reqwest::Method::POST, "/sim/certificates", r#"{"id":""}"#)
            .await
            .0,
        400
    );

    let (status, body) = admin(&sim, reqwest::Method::GET, "/sim/calls", "").await;
    assert_eq!(status, 200);
    let calls: Vec<Call> = serde_json::from_str(&body).unwrap();
    assert_eq!(calls, sim.calls());
    let statuses: Vec<u16> = calls.iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![500, 502, 204, 401, 204, 204]);

    assert_eq!(admin(&sim, reqwest::Method::GET, "/sim/nothing", "").await.0, 404);
    assert_eq!(admin(&sim, reqwest::Method::POST, "/sim/reset", "").await.0, 204);
    let (_, body) = admin(&sim, reqwest::Method::GET, "/sim/calls", "").await;
    assert_eq!(json_body(&body), json!([]));
}

#[test]
fn fault_json_shapes() {
    let drop: Fault =
        serde_json::from_str(r#"{"action":"drop","certificate_id":"scs1554192131150","times":2}"#).unwrap();
    assert_eq!(
        drop,
        Fault {
            certificate_id: Some(CERT.to_owned()),
            times: 2,
            action: FaultAction::Drop,
        }
    );
    let delay: Fault = serde_json::from_str(r#"{"action":"delay","ms":250}"#).unwrap();
    assert_eq!(delay.action, FaultAction::Delay { ms: 250 });
    assert_eq!(delay.times, 1);
    let respond = Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::Respond {
            status: 429,
            body: String::new(),
            retry_after: Some(3),
        },
    };
    assert_eq!(
        serde_json::to_value(&respond).unwrap(),
        json!({"certificate_id": null, "times": 1, "action": "respond", "status": 429, "body": "", "retry_after": 3})
    );
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let sim = start(SimConfig::default()).await;
    let addr = sim.addr();
    assert_eq!(push(&sim, CERT, Some(DEMO_TOKEN), WAF_PUSH).await.0, 204);
    sim.shutdown();
    tokio::time::timeout(Duration::from_secs(5), sim.closed())
        .await
        .expect("closed in time");
    let connected = tokio::task::spawn_blocking(move || TcpStream::connect(addr))
        .await
        .unwrap();
    assert!(connected.is_err());
}

#[tokio::test]
async fn oversized_body_is_refused_and_recorded() {
    let sim = start(SimConfig::default()).await;
    let huge = format!(
        r#"{{"target_service":"WAF","target_project":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    let (status, _, body) = push(&sim, CERT, Some(DEMO_TOKEN), &huge).await;
    assert_eq!(status, 413);
    assert_eq!(json_body(&body)["error_code"], "SCM.0005");
    let calls = sim.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].status, &calls[0].body), (413, &Value::Null));
}

/// Runs the `scm-sim` binary, reads its startup line, drives it over HTTP and stops it with SIGTERM.
#[tokio::test]
async fn binary_serves_configured_tokens_and_stops_on_sigterm() {
    use std::process::{Command, Stdio};

    /// Kills the simulator when the test ends, also when an assertion fails first.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let mut child = Command::new(env!("CARGO_BIN_EXE_scm-sim"))
        .args([
            "--port",
            "0",
            "--certificate",
            "scs1111111111111",
            "--log-format",
            "json",
        ])
        .env("SCM_SIM_TOKENS", "tok-a,tok-b")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scm-sim starts");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = KillOnDrop(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("scm-sim listening on ")
        .unwrap_or_else(|| panic!("unexpected startup line {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let push_to = |token: &'static str, id: &'static str| {
        let url = url.clone();
        async move {
            client()
                .post(format!("{url}/v3/scm/certificates/{id}/push"))
                .header("X-Auth-Token", token)
                .body(WAF_PUSH)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(push_to("tok-a", "scs1111111111111").await, 204);
    assert_eq!(push_to("tok-b", "scs1111111111111").await, 204);
    assert_eq!(push_to(DEMO_TOKEN, "scs1111111111111").await, 401);
    assert_eq!(push_to("tok-a", CERT).await, 404);

    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, logs) = tokio::task::spawn_blocking(move || {
        let mut child = child;
        let mut logs = String::new();
        let mut stderr = stderr;
        stderr.read_to_string(&mut logs).map(|_| (child.0.wait(), logs))
    })
    .await
    .unwrap()
    .unwrap();
    let status = status.unwrap();
    assert!(status.success(), "{status:?}");
    let request_lines = logs.lines().filter(|l| l.contains("scm-sim request")).count();
    assert_eq!(request_lines, 4, "{logs}");
    assert!(logs.contains(r#""error_code":"APIGW.0301""#), "{logs}");
    assert!(!logs.contains("tok-a"), "a token leaked into the logs");
}

/// A request signed with `SDK-HMAC-SHA256`. The signer is this test's own, so that scm-sim needs nothing of the
/// operator; the operator's `tests/scm_client.rs` checks that the operator's signer and this verifier agree.
/// A request signed on `host` and `x-sdk-date` with `X-Domain-Id` sent beside them, unsigned (as Terraform's client
/// sends it): an SCM request needs a scope header.
async fn signed(sim: &Sim, method: &str, path_and_query: &str, body: &str, ak: &str, sk: &str) -> (u16, Value) {
    signed_with_scope(sim, method, path_and_query, body, (ak, sk), Some(SOME_DOMAIN)).await
}

/// An account id for the scope header; the simulator does not check it against the key.
const SOME_DOMAIN: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

async fn signed_with_scope(
    sim: &Sim,
    method: &str,
    path_and_query: &str,
    body: &str,
    (ak, sk): (&str, &str),
    domain_id: Option<&str>,
) -> (u16, Value) {
    let url: reqwest::Url = format!("{}{path_and_query}", sim.url()).parse().unwrap();
    let date = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let authorization = sign_host_and_date(ak, sk, method, &url, &date, body.as_bytes());
    let mut request = client()
        .request(method.parse().unwrap(), url)
        .header("X-Sdk-Date", &date)
        .header("Authorization", authorization)
        .body(body.to_owned());
    if let Some(domain_id) = domain_id {
        request = request.header("X-Domain-Id", domain_id);
    }
    let response = request.send().await.expect("signed request answered");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `Authorization` for a request signed on `host` and `x-sdk-date`, following Huawei's signing guide. Enough for the
/// paths and queries of these tests, which need no percent-encoding.
fn sign_host_and_date(ak: &str, sk: &str, method: &str, url: &reqwest::Url, date: &str, body: &[u8]) -> String {
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut query: Vec<&str> = url
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    query.sort_unstable();
    // The signed path always ends in `/`, though the request's does not.
    let path = format!("{}/", url.path().trim_end_matches('/'));
    let canonical_request = [
        method,
        &path,
        &query.join("&"),
        &format!("host:{host}\nx-sdk-date:{date}\n"),
        "host;x-sdk-date",
        &hex::encode(Sha256::digest(body)),
    ]
    .join("\n");
    let string_to_sign = format!(
        "SDK-HMAC-SHA256\n{date}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, sk.as_bytes());
    let signature = hex::encode(ring::hmac::sign(&key, string_to_sign.as_bytes()));
    format!("SDK-HMAC-SHA256 Access={ak}, SignedHeaders=host;x-sdk-date, Signature={signature}")
}

#[tokio::test]
async fn access_keys_are_set_over_the_admin_api_and_checked_on_every_endpoint() {
    let sim = start(SimConfig::default()).await;
    let (status, _) = admin(
        &sim,
        reqwest::Method::PUT,
        "/sim/access-keys",
        r#"{"AK2": "SK2-secret"}"#,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = signed(
        &sim,
        "GET",
        "/v3/scm/certificates?offset=0&limit=10",
        "",
        "AK2",
        "SK2-secret",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_count"], 3);
    let (status, _) = signed(
        &sim,
        "POST",
        &format!("/v3/scm/certificates/{CERT}/push"),
        WAF_PUSH,
        "AK2",
        "SK2-secret",
    )
    .await;
    assert_eq!(status, 204);
    // The demo pair was replaced; a wrong key and an unknown key are both 401 APIGW.0301.
    let (status, body) = signed(
        &sim,
        "GET",
        "/v3/scm/certificates",
        "",
        scm_sim::DEMO_ACCESS_KEY,
        scm_sim::DEMO_SECRET_KEY,
    )
    .await;
    assert_eq!((status, body["error_code"].as_str()), (401, Some("APIGW.0301")));
    assert!(body["error_msg"].as_str().unwrap().contains("ak not exist"), "{body}");
    let (status, body) = signed(&sim, "GET", "/v3/scm/certificates", "", "AK2", "SK2-wrong").await;
    assert_eq!((status, body["error_code"].as_str()), (401, Some("APIGW.0301")));
    let calls = sim.calls();
    assert_eq!(calls.len(), 4);
    assert!(
        calls
            .iter()
            .all(|c| c.token_sha256.is_none() && c.signed_headers.as_deref() == Some("host;x-sdk-date"))
    );
    assert!(
        !serde_json::to_string(&calls).unwrap().contains("SK2"),
        "no key material in the records"
    );
}

#[tokio::test]
async fn list_filters_by_content_and_delete_removes_a_certificate() {
    let sim = start(SimConfig::default()).await;
    for name in ["cpush-web-www-aaaa", "cpush-web-api-bbbb"] {
        let (status, _) = import(
            &sim,
            &json!({"name": name, "certificate": PEM_CERT, "private_key": PEM_KEY}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, listing) = get(
        &sim,
        "/v3/scm/certificates?content=cpush-web-www&limit=50",
        Some(DEMO_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(listing["total_count"], 1);
    let id = listing["certificates"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listing["certificates"][0]["name"], "cpush-web-www-aaaa");

    let delete = |id: String| {
        let url = format!("{}/v3/scm/certificates/{id}", sim.url());
        async move {
            client()
                .delete(url)
                .header("X-Auth-Token", DEMO_TOKEN)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(delete(id.clone()).await, 204);
    assert_eq!(delete(id.clone()).await, 404, "already gone");
    assert!(sim.certificates().iter().all(|(i, _)| *i != id));
    assert_eq!(sim.certificates().len(), 4);
    let deletes: Vec<u16> = sim
        .calls()
        .iter()
        .filter(|c| c.method == "DELETE")
        .map(|c| c.status)
        .collect();
    assert_eq!(deletes, [204, 404]);
}

/// Deletes take faults of their own, so a test can fail a delete without touching pushes, and a failed delete
/// leaves the certificate in place.
#[tokio::test]
async fn a_delete_fault_answers_the_delete_and_keeps_the_certificate() {
    let sim = start(SimConfig::default()).await;
    sim.add_certificate("scs0000000000777");
    sim.inject_delete(error_fault(Some("scs0000000000777"), 1, 500, "SCM.0500"));
    let delete = || {
        client()
            .delete(format!("{}/v3/scm/certificates/scs0000000000777", sim.url()))
            .header("X-Auth-Token", DEMO_TOKEN)
            .send()
    };
    assert_eq!(delete().await.unwrap().status(), 500);
    assert!(sim.certificates().iter().any(|(id, _)| id == "scs0000000000777"));
    let (status, _, _) = push(&sim, "scs0000000000777", Some(DEMO_TOKEN), WAF_PUSH).await;
    assert_eq!(status, 204, "a delete fault never answers a push");
    assert_eq!(delete().await.unwrap().status(), 204);
    assert!(!sim.certificates().iter().any(|(id, _)| id == "scs0000000000777"));
}

/// Ids of a list page, in answer order.
fn listed_ids(page: &Value) -> Vec<String> {
    page["certificates"]
        .as_array()
        .expect("certificates array")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect()
}

/// An endpoint that predates `content` answers a keyword search with the whole account, still paged, filtered by
/// `status` and sorted as asked; switched over the admin API, and recorded with its query.
#[tokio::test]
async fn list_ignoring_content_pages_filters_by_status_and_sorts() {
    let sim = start(SimConfig {
        list_ignores_content: true,
        ..SimConfig::default()
    })
    .await;
    let mut imported = Vec::new();
    for n in 0..12 {
        let name = format!("cpush-bulk-{n:02}");
        let (status, answer) = import(
            &sim,
            &json!({"name": name, "certificate": PEM_CERT, "private_key": PEM_KEY}),
        )
        .await;
        assert_eq!(status, 200);
        imported.push(answer["certificate_id"].as_str().unwrap().to_owned());
    }
    let search = "/v3/scm/certificates?content=cpush-bulk-03&status=UPLOAD&sort_key=certUpdateTime&sort_dir=DESC";
    let (status, first) = get(&sim, &format!("{search}&limit=10&offset=0"), Some(DEMO_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(
        first["total_count"], 12,
        "content ignored, the ISSUED ones filtered out"
    );
    let newest_first: Vec<String> = imported.iter().rev().cloned().collect();
    assert_eq!(listed_ids(&first), newest_first[..10]);
    let (_, second) = get(&sim, &format!("{search}&limit=10&offset=10"), Some(DEMO_TOKEN)).await;
    assert_eq!(second["total_count"], 12);
    assert_eq!(listed_ids(&second), newest_first[10..]);
    let (_, beyond) = get(&sim, &format!("{search}&limit=10&offset=20"), Some(DEMO_TOKEN)).await;
    assert_eq!(listed_ids(&beyond), Vec::<String>::new());
    // The list entry carries what a caller compares before reusing an import.
    let entry = &first["certificates"][0];
    assert!(entry["expire_time"].as_str().is_some_and(|t| t.len() == 21), "{entry}");
    assert!(entry.get("domain").is_some(), "{entry}");

    let (_, ascending) = get(
        &sim,
        "/v3/scm/certificates?status=UPLOAD&sort_dir=ASC&limit=10",
        Some(DEMO_TOKEN),
    )
    .await;
    assert_eq!(listed_ids(&ascending), imported[..10]);
    let (_, issued) = get(&sim, "/v3/scm/certificates?status=ISSUED&limit=50", Some(DEMO_TOKEN)).await;
    assert_eq!(listed_ids(&issued), DEMO_CERTIFICATES);
    for bad in ["status=SOLD", "sort_key=name", "sort_dir=UP"] {
        let (status, answer) = get(&sim, &format!("/v3/scm/certificates?{bad}"), Some(DEMO_TOKEN)).await;
        assert_eq!((status, &answer["error_code"]), (400, &json!("SCM.0005")), "{bad}");
    }
    let recorded = sim.calls().into_iter().rev().find(|c| c.method == "GET").unwrap();
    assert_eq!(recorded.query.as_deref(), Some("sort_dir=UP"));

    // Back to an endpoint that knows `content`, over the admin API.
    let (status, _) = admin(
        &sim,
        reqwest::Method::PUT,
        "/sim/list-mode",
        r#"{"ignore_content":false}"#,
    )
    .await;
    assert_eq!(status, 204);
    let (_, found) = get(&sim, &format!("{search}&limit=10"), Some(DEMO_TOKEN)).await;
    assert_eq!(
        (found["total_count"].clone(), listed_ids(&found)),
        (json!(1), vec![imported[3].clone()])
    );
    let (status, _) = admin(&sim, reqwest::Method::PUT, "/sim/list-mode", r#"{"ignore":true}"#).await;
    assert_eq!(status, 400);
    sim.set_list_ignores_content(true);
    let (_, all) = get(&sim, &format!("{search}&limit=10"), Some(DEMO_TOKEN)).await;
    assert_eq!(all["total_count"], 12);
}

/// The current API spells the field `signature_algorithm`; `signature_algrithm` is an older show answer's, which
/// Huawei's SDKs (Python 3.1.219) no longer read, so a client on them would silently lose it.
#[tokio::test]
async fn list_and_show_spell_signature_algorithm_as_the_current_api() {
    let sim = start(SimConfig::default()).await;
    let (_, listing) = get(&sim, "/v3/scm/certificates", Some(DEMO_TOKEN)).await;
    let (_, detail) = get(&sim, &format!("/v3/scm/certificates/{CERT}"), Some(DEMO_TOKEN)).await;
    for body in [&listing["certificates"][0], &detail] {
        assert_eq!(body["signature_algorithm"], "SHA256WITHRSA", "{body}");
        assert!(body.get("signature_algrithm").is_none(), "{body}");
    }
}

/// Huawei's SDKs never send an AK/SK request to SCM without `X-Domain-Id` or `X-Project-Id`: they ask IAM first. The
/// simulator refuses one (401 `APIGW.0301`), without counting it towards the key's lock, and serves IAM's
/// `GET /v3/auth/domains`, which needs no scope and answers the key's domain, or what the IAM switch says.
#[tokio::test]
async fn an_unscoped_aksk_request_is_refused_and_iam_tells_the_domain_of_the_key() {
    let sim = start(SimConfig::default()).await;
    let demo = (scm_sim::DEMO_ACCESS_KEY, scm_sim::DEMO_SECRET_KEY);
    let list = "/v3/scm/certificates";
    // Six unscoped requests: each refused, and none is a signature failure (no lock), so a scoped one still works.
    for _ in 0..6 {
        let (status, body) = signed_with_scope(&sim, "GET", list, "", demo, None).await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (401, Some("APIGW.0301")),
            "{body}"
        );
        assert!(
            body["error_msg"]
                .as_str()
                .unwrap()
                .contains("X-Domain-Id nor X-Project-Id"),
            "{body}"
        );
    }
    assert_eq!(signed(&sim, "GET", list, "", demo.0, demo.1).await.0, 200);
    let scoped = sim.calls().pop().unwrap();
    assert_eq!(
        (scoped.domain_id.as_deref(), scoped.project_id.as_deref()),
        (Some(SOME_DOMAIN), None)
    );

    let domains = scm_sim::IAM_DOMAINS_PATH;
    let (status, body) = signed_with_scope(&sim, "GET", domains, "", demo, None).await;
    assert_eq!(status, 200, "{body}");
    let expected = scm_sim::default_domain_id(scm_sim::DEMO_ACCESS_KEY);
    assert_eq!(expected.len(), 32);
    assert_eq!(body["domains"][0]["id"], expected.as_str());
    assert_eq!(body["domains"][0]["enabled"], true);
    assert_eq!(sim.domain_of(scm_sim::DEMO_ACCESS_KEY), expected);
    // A wrong secret key is refused by IAM's gateway too.
    let (status, body) = signed_with_scope(&sim, "GET", domains, "", (scm_sim::DEMO_ACCESS_KEY, "wrong"), None).await;
    assert_eq!((status, body["error_code"].as_str()), (401, Some("APIGW.0301")));
    // Admin controls: another domain for the key, then each answer of the switch.
    let (status, _) = admin(
        &sim,
        reqwest::Method::PUT,
        "/sim/domains",
        &json!({scm_sim::DEMO_ACCESS_KEY: "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0"}).to_string(),
    )
    .await;
    assert_eq!(status, 204);
    let (_, body) = signed_with_scope(&sim, "GET", domains, "", demo, None).await;
    assert_eq!(body["domains"][0]["id"], "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0");
    for (answer, want_status, want_code) in [
        ("unauthorized", 401, Some("APIGW.0301")),
        ("forbidden", 403, None),
        ("empty", 200, None),
    ] {
        let switch = json!({ "answer": answer }).to_string();
        assert_eq!(admin(&sim, reqwest::Method::PUT, "/sim/iam", &switch).await.0, 204);
        let (status, body) = signed_with_scope(&sim, "GET", domains, "", demo, None).await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (want_status, want_code),
            "{answer}: {body}"
        );
        match answer {
            "forbidden" => assert_eq!(body["error"]["code"], 403, "{body}"),
            "empty" => assert_eq!(body["domains"], json!([]), "{body}"),
            _ => {}
        }
    }
    assert_eq!(
        admin(&sim, reqwest::Method::PUT, "/sim/iam", r#"{"answer":"maybe"}"#)
            .await
            .0,
        400
    );
    let iam = sim.iam_calls();
    assert_eq!(iam.len(), 6, "{iam:#?}");
    assert!(iam.iter().all(|c| c.is_iam_domains() && c.domain_id.is_none()));
    // A reset lets IAM answer with domains again.
    sim.reset();
    assert_eq!(signed_with_scope(&sim, "GET", domains, "", demo, None).await.0, 200);
}
