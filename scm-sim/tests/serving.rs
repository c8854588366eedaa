//! Tests of the simulator's deploy side over real HTTP: batch push, deploy and deployed resources.

use std::net::SocketAddr;
use std::time::Duration;

use scm_sim::{Copy, DEMO_CERTIFICATES, DEMO_TOKEN, Deployment, Fault, FaultAction, Sim, SimConfig};
use serde_json::{Value, json};

const CERT: &str = DEMO_CERTIFICATES[0];
const OTHER_CERT: &str = DEMO_CERTIFICATES[1];
/// The domain the simulator gives the first configured certificate.
const CERT_DOMAIN: &str = "cert1.example.com";
const UNKNOWN_CERT: &str = "scs9999999999999";

async fn start(config: SimConfig) -> Sim {
    Sim::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts")
}

fn client() -> reqwest::Client {
    // reqwest is built with `rustls-no-provider` and refuses to build a client without one, even for plain http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client builds")
}

/// An answer: status, `X-Request-Id` and the body as JSON (`Null` when empty or not JSON).
struct Answer {
    status: u16,
    request_id: String,
    body: Value,
}

async fn post(sim: &Sim, path: &str, token: Option<&str>, body: &str) -> Answer {
    let mut request = client()
        .post(format!("{}{path}", sim.url()))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.header("X-Auth-Token", token);
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .expect("X-Request-Id header")
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    Answer {
        status,
        request_id,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

async fn deploy(sim: &Sim, id: &str, body: &Value) -> Answer {
    post(
        sim,
        &format!("/v3/scm/certificates/{id}/deploy"),
        Some(DEMO_TOKEN),
        &body.to_string(),
    )
    .await
}

async fn batch_push(sim: &Sim, id: &str, body: &Value) -> Answer {
    post(
        sim,
        &format!("/v3/scm/certificates/{id}/batch-push"),
        Some(DEMO_TOKEN),
        &body.to_string(),
    )
    .await
}

async fn deployed(sim: &Sim, body: &Value) -> Answer {
    post(sim, "/v3/scm/deployed-resources", Some(DEMO_TOKEN), &body.to_string()).await
}

async fn admin(sim: &Sim, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
    let response = client()
        .request(method, format!("{}{path}", sim.url()))
        .body(body.to_owned())
        .send()
        .await
        .expect("admin answered");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn elb_deploy(project: &str, ids: &[&str]) -> Value {
    let resources: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
    json!({"project_name": project, "service_name": "ELB", "resources": resources})
}

fn deployment(certificate_id: &str, service: &str, project: &str, resource: &str) -> Deployment {
    Deployment {
        certificate_id: certificate_id.to_owned(),
        service: service.to_owned(),
        project: project.to_owned(),
        resource: resource.to_owned(),
    }
}

fn error_fault(certificate_id: Option<&str>, status: u16, code: &str) -> Fault {
    Fault {
        certificate_id: certificate_id.map(str::to_owned),
        times: 1,
        action: FaultAction::Error {
            status,
            error_code: code.to_owned(),
            error_msg: format!("injected {code}"),
        },
    }
}

fn is_copy_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn a_deploy_answers_an_empty_failure_list_binds_and_bills_each_resource() {
    let sim = start(SimConfig::default()).await;
    let answer = deploy(&sim, CERT, &elb_deploy("ap-southeast-1", &["elb-a", "elb-b"])).await;
    assert_eq!((answer.status, &answer.body), (200, &json!({"failure_list": []})));
    assert_eq!(
        sim.deployments(),
        vec![
            deployment(CERT, "ELB", "ap-southeast-1", "elb-a"),
            deployment(CERT, "ELB", "ap-southeast-1", "elb-b"),
        ]
    );
    assert_eq!(sim.deploy_count(CERT, "elb-a"), 1);
    assert_eq!(sim.deploy_count(CERT, "elb-b"), 1);
    assert_eq!(sim.deploy_count(OTHER_CERT, "elb-a"), 0);

    // WAF needs its type and enterprise project.
    let waf = json!({"project_name": "cn-north-4", "service_name": "WAF", "resources": [
        {"id": "waf-1", "type": "premium", "enterprise_project_id": "0"},
        {"id": "waf-2", "type": "cloud", "enterprise_project_id": "0"},
    ]});
    assert_eq!(deploy(&sim, CERT, &waf).await.body, json!({"failure_list": []}));
    // CDN is global: no project needed, and none is kept.
    let cdn = json!({"project_name": "cn-north-4", "service_name": "CDN", "resources": [{"domain_name": CERT_DOMAIN}]});
    assert_eq!(deploy(&sim, CERT, &cdn).await.body, json!({"failure_list": []}));
    assert_eq!(
        sim.deployments(),
        vec![
            deployment(CERT, "CDN", "", CERT_DOMAIN),
            deployment(CERT, "ELB", "ap-southeast-1", "elb-a"),
            deployment(CERT, "ELB", "ap-southeast-1", "elb-b"),
            deployment(CERT, "WAF", "cn-north-4", "waf-1"),
            deployment(CERT, "WAF", "cn-north-4", "waf-2"),
        ]
    );

    let calls = sim.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].path, format!("/v3/scm/certificates/{CERT}/deploy"));
    assert_eq!(calls[0].certificate_id.as_deref(), Some(CERT));
    assert_eq!(calls[0].body["resources"][1]["id"], "elb-b");
    assert_eq!(calls[0].status, 200);
    assert!(sim.pushes().is_empty(), "a deploy is no push");
}

#[tokio::test]
async fn each_successful_deploy_is_billed_again() {
    let sim = start(SimConfig::default()).await;
    for _ in 0..3 {
        assert_eq!(
            deploy(&sim, CERT, &elb_deploy("cn-north-4", &["elb-a"])).await.status,
            200
        );
    }
    assert_eq!(sim.deploy_count(CERT, "elb-a"), 3);
    // The same resource named twice in one request is deployed, and billed, twice.
    assert_eq!(
        deploy(&sim, OTHER_CERT, &elb_deploy("cn-north-4", &["elb-a", "elb-a"]))
            .await
            .status,
        200
    );
    assert_eq!(sim.deploy_count(OTHER_CERT, "elb-a"), 2);
    assert_eq!(
        sim.deploy_count(CERT, "elb-a"),
        3,
        "billing stays with what was deployed"
    );
    // A refused request bills nothing.
    let refused =
        json!({"project_name": "cn-north-4", "service_name": "ELB", "resources": [{"id": "elb-a", "type": "cloud"}]});
    assert_eq!(deploy(&sim, CERT, &refused).await.status, 400);
    assert_eq!(sim.deploy_count(CERT, "elb-a"), 3);
}

#[tokio::test]
async fn a_failed_resource_is_reported_inside_the_200_and_a_retry_deploys_it() {
    let sim = start(SimConfig::default()).await;
    sim.fail_deploy("elb-a", "ELB.8902", 2);
    let request = elb_deploy("ap-southeast-1", &["elb-a", "elb-b"]);
    for attempt in 1..=2 {
        let answer = deploy(&sim, CERT, &request).await;
        assert_eq!(
            (answer.status, &answer.body),
            (
                200,
                &json!({"failure_list": [{"resource": "elb-a", "failure_info": "ELB.8902"}]})
            ),
            "attempt {attempt}"
        );
    }
    // Only the resource that failed is left out: not bound, not billed.
    assert_eq!(
        sim.deployments(),
        vec![deployment(CERT, "ELB", "ap-southeast-1", "elb-b")]
    );
    assert_eq!(sim.deploy_count(CERT, "elb-a"), 0);
    assert_eq!(sim.deploy_count(CERT, "elb-b"), 2);

    let retry = deploy(&sim, CERT, &elb_deploy("ap-southeast-1", &["elb-a"])).await;
    assert_eq!(retry.body, json!({"failure_list": []}));
    assert_eq!(sim.deploy_count(CERT, "elb-a"), 1);
    assert_eq!(sim.deployments().len(), 2);

    // A CDN domain the certificate does not cover fails on CDN's side; a queued failure names the domain too.
    let cdn = json!({"service_name": "CDN", "resources": [{"domain_name": "www.other.example"}, {"domain_name": CERT_DOMAIN}]});
    let answer = deploy(&sim, CERT, &cdn).await;
    assert_eq!(
        answer.body,
        json!({"failure_list": [{"resource": "www.other.example", "failure_info": "CDN.0005"}]})
    );
    sim.fail_deploy(CERT_DOMAIN, "CDN.0199", 1);
    let answer = deploy(
        &sim,
        CERT,
        &json!({"service_name": "CDN", "resources": [{"domain_name": CERT_DOMAIN}]}),
    )
    .await;
    assert_eq!(
        answer.body,
        json!({"failure_list": [{"resource": CERT_DOMAIN, "failure_info": "CDN.0199"}]})
    );
    assert_eq!(sim.deploy_count(CERT, CERT_DOMAIN), 1);
    assert_eq!(sim.deploy_count(CERT, "www.other.example"), 0);
}

#[tokio::test]
async fn deploying_another_certificate_moves_the_resource() {
    let sim = start(SimConfig::default()).await;
    assert_eq!(
        deploy(&sim, CERT, &elb_deploy("cn-north-4", &["elb-a", "elb-b"]))
            .await
            .status,
        200
    );
    assert_eq!(
        deploy(&sim, OTHER_CERT, &elb_deploy("cn-north-4", &["elb-a"]))
            .await
            .status,
        200
    );
    // The same id in another project is another resource.
    assert_eq!(
        deploy(&sim, CERT, &elb_deploy("ap-southeast-1", &["elb-a"]))
            .await
            .status,
        200
    );
    assert_eq!(
        sim.deployments(),
        vec![
            deployment(CERT, "ELB", "ap-southeast-1", "elb-a"),
            deployment(OTHER_CERT, "ELB", "cn-north-4", "elb-a"),
            deployment(CERT, "ELB", "cn-north-4", "elb-b"),
        ]
    );
    // The move shows in deployed-resources too.
    let answer = deployed(
        &sim,
        &json!({"certificate_ids": [CERT, OTHER_CERT], "service_names": ["ELB"]}),
    )
    .await;
    let regions = |n: usize| answer.body["results"][n]["deployed_resources"][0]["region_resources"].clone();
    assert_eq!(
        regions(0),
        json!([
            {"region_id": "ap-southeast-1", "is_error": false, "resources": [{"resource_id": "elb-a", "resource_name": "elb-a"}]},
            {"region_id": "cn-north-4", "is_error": false, "resources": [{"resource_id": "elb-b", "resource_name": "elb-b"}]},
        ])
    );
    assert_eq!(
        regions(1),
        json!([{"region_id": "cn-north-4", "is_error": false, "resources": [{"resource_id": "elb-a", "resource_name": "elb-a"}]}])
    );
    // Billing is history, not the binding: the first certificate's deploy of elb-a stays counted.
    assert_eq!(sim.deploy_count(CERT, "elb-a"), 2);

    // A CDN domain is one resource whatever project a deploy names.
    let cdn = |project: Option<&str>| {
        let mut body = json!({"service_name": "CDN", "resources": [{"domain_name": CERT_DOMAIN}]});
        if let Some(project) = project {
            body["project_name"] = json!(project);
        }
        body
    };
    assert_eq!(deploy(&sim, CERT, &cdn(Some("cn-north-4"))).await.status, 200);
    sim.mark_in_use(OTHER_CERT, "CDN", "global", CERT_DOMAIN);
    let cdn_bindings: Vec<Deployment> = sim.deployments().into_iter().filter(|d| d.service == "CDN").collect();
    assert_eq!(cdn_bindings, vec![deployment(OTHER_CERT, "CDN", "", CERT_DOMAIN)]);
    assert_eq!(deploy(&sim, CERT, &cdn(None)).await.status, 200);
    let cdn_bindings: Vec<Deployment> = sim.deployments().into_iter().filter(|d| d.service == "CDN").collect();
    assert_eq!(cdn_bindings, vec![deployment(CERT, "CDN", "", CERT_DOMAIN)]);
}

#[tokio::test]
async fn invalid_deploy_bodies_are_400_and_deploy_nothing() {
    let sim = start(SimConfig::default()).await;
    let unsupported = json!({"error_code": "SCM.0030", "error_msg": "Certificates cannot be pushed to this service."});
    let bad_parameter = json!({"error_code": "SCM.0005", "error_msg": "Incorrect request parameter."});
    let long = "x".repeat(64);
    let ids = |n: usize| -> Vec<String> { (0..n).map(|i| format!("elb-{i}")).collect() };
    let elb = |resources: Value| json!({"project_name": "cn-north-4", "service_name": "ELB", "resources": resources});
    let waf = |resource: Value| json!({"project_name": "cn-north-4", "service_name": "WAF", "resources": [resource]});
    let cdn = |resource: Value| json!({"service_name": "CDN", "resources": [resource]});
    let cases: Vec<(String, &Value)> = vec![
        ("not json".to_owned(), &unsupported),
        (json!([]).to_string(), &unsupported),
        (
            json!({"project_name": "cn-north-4", "resources": [{"id": "a"}]}).to_string(),
            &unsupported,
        ),
        (
            json!({"project_name": "cn-north-4", "service_name": "OBS", "resources": [{"id": "a"}]}).to_string(),
            &unsupported,
        ),
        (
            json!({"project_name": "cn-north-4", "service_name": "elb", "resources": [{"id": "a"}]}).to_string(),
            &unsupported,
        ),
        (
            json!({"project_name": "cn-north-4", "service_name": 7, "resources": [{"id": "a"}]}).to_string(),
            &unsupported,
        ),
        // Too few, too many, or not a list of resources.
        (elb(json!([])).to_string(), &bad_parameter),
        (
            elb(json!(ids(21).iter().map(|id| json!({"id": id})).collect::<Vec<_>>())).to_string(),
            &bad_parameter,
        ),
        (elb(json!({"id": "a"})).to_string(), &bad_parameter),
        (elb(json!(["a"])).to_string(), &bad_parameter),
        (
            json!({"project_name": "cn-north-4", "service_name": "ELB"}).to_string(),
            &bad_parameter,
        ),
        // Strings beyond their limits.
        (elb(json!([{"id": long}])).to_string(), &bad_parameter),
        (
            waf(json!({"id": "w", "type": "cloud", "enterprise_project_id": long})).to_string(),
            &bad_parameter,
        ),
        (
            cdn(json!({"domain_name": format!("{long}.example.com")})).to_string(),
            &bad_parameter,
        ),
        (
            json!({"project_name": "p".repeat(256), "service_name": "ELB", "resources": [{"id": "a"}]}).to_string(),
            &bad_parameter,
        ),
        (
            json!({"project_name": "", "service_name": "ELB", "resources": [{"id": "a"}]}).to_string(),
            &bad_parameter,
        ),
        (
            json!({"project_name": 4, "service_name": "ELB", "resources": [{"id": "a"}]}).to_string(),
            &bad_parameter,
        ),
        // ELB and WAF are regional and need the target certificate's id.
        (
            json!({"service_name": "ELB", "resources": [{"id": "a"}]}).to_string(),
            &bad_parameter,
        ),
        (elb(json!([{"id": ""}])).to_string(), &bad_parameter),
        (elb(json!([{"domain_name": CERT_DOMAIN}])).to_string(), &bad_parameter),
        (
            waf(json!({"type": "cloud", "enterprise_project_id": "0"})).to_string(),
            &bad_parameter,
        ),
        // Fields that belong to another service.
        (elb(json!([{"id": "a", "type": "cloud"}])).to_string(), &bad_parameter),
        (
            elb(json!([{"id": "a", "enterprise_project_id": "0"}])).to_string(),
            &bad_parameter,
        ),
        (
            waf(json!({"id": "w", "type": "cloud", "enterprise_project_id": "0", "domain_name": CERT_DOMAIN}))
                .to_string(),
            &bad_parameter,
        ),
        (
            cdn(json!({"domain_name": CERT_DOMAIN, "type": "cloud"})).to_string(),
            &bad_parameter,
        ),
        // WAF's type is premium or cloud, and needed.
        (
            waf(json!({"id": "w", "enterprise_project_id": "0"})).to_string(),
            &bad_parameter,
        ),
        (
            waf(json!({"id": "w", "type": "shared", "enterprise_project_id": "0"})).to_string(),
            &bad_parameter,
        ),
        (cdn(json!({})).to_string(), &bad_parameter),
    ];
    for (body, expected) in &cases {
        let answer = post(
            &sim,
            &format!("/v3/scm/certificates/{CERT}/deploy"),
            Some(DEMO_TOKEN),
            body,
        )
        .await;
        assert_eq!((answer.status, &answer.body), (400, *expected), "{body}");
    }
    assert!(sim.deployments().is_empty());
    assert!(sim.calls().iter().all(|c| c.status == 400));

    // The limits themselves are fine: 20 resources, 63-character strings, a 255-character project.
    let max_id = "i".repeat(63);
    let mut twenty = ids(19);
    twenty.push(max_id.clone());
    let resources: Vec<Value> = twenty.iter().map(|id| json!({"id": id})).collect();
    let answer = deploy(
        &sim,
        CERT,
        &json!({"project_name": "p".repeat(255), "service_name": "ELB", "resources": resources}),
    )
    .await;
    assert_eq!((answer.status, answer.body), (200, json!({"failure_list": []})));
    assert_eq!(sim.deployments().len(), 20);
    assert_eq!(sim.deploy_count(CERT, &max_id), 1);
}

#[tokio::test]
async fn unknown_certificates_get_the_push_404_on_deploy_and_batch_push() {
    let sim = start(SimConfig::default()).await;
    let push = post(
        &sim,
        &format!("/v3/scm/certificates/{UNKNOWN_CERT}/push"),
        Some(DEMO_TOKEN),
        r#"{"target_project":"cn-north-4","target_service":"ELB"}"#,
    )
    .await;
    assert_eq!(push.status, 404);
    // Before the body is looked at, as for a push.
    let deploy = post(
        &sim,
        &format!("/v3/scm/certificates/{UNKNOWN_CERT}/deploy"),
        Some(DEMO_TOKEN),
        "not json",
    )
    .await;
    let batch = post(
        &sim,
        &format!("/v3/scm/certificates/{UNKNOWN_CERT}/batch-push"),
        Some(DEMO_TOKEN),
        "[]",
    )
    .await;
    for answer in [&deploy, &batch] {
        assert_eq!((answer.status, &answer.body), (404, &push.body));
    }
    assert_eq!(
        push.body,
        json!({"error_code": "SCM.0021", "error_msg": "certificate not exist"})
    );
    let calls = sim.calls();
    assert!(calls.iter().all(|c| c.certificate_id.as_deref() == Some(UNKNOWN_CERT)));
    assert!(calls.iter().all(|c| c.error_code.as_deref() == Some("SCM.0021")));
}

#[tokio::test]
async fn deployed_resources_reflect_deploys_and_bindings_made_by_hand() {
    let sim = start(SimConfig::default()).await;
    assert_eq!(
        deploy(&sim, CERT, &elb_deploy("ap-southeast-1", &["elb-b", "elb-a"]))
            .await
            .status,
        200
    );
    assert_eq!(
        deploy(&sim, CERT, &elb_deploy("cn-north-4", &["elb-c"])).await.status,
        200
    );
    let cdn = json!({"service_name": "CDN", "resources": [{"domain_name": CERT_DOMAIN}]});
    assert_eq!(deploy(&sim, CERT, &cdn).await.status, 200);
    sim.mark_in_use(CERT, "WAF", "cn-north-4", "waf-by-hand");
    assert_eq!(
        sim.deploy_count(CERT, "waf-by-hand"),
        0,
        "nothing billed for a binding made elsewhere"
    );

    let all = deployed(
        &sim,
        &json!({"certificate_ids": [CERT, OTHER_CERT], "service_names": ["ALL"]}),
    )
    .await;
    assert_eq!(all.status, 200);
    let resource = |id: &str| json!({"resource_id": id, "resource_name": id});
    assert_eq!(
        all.body,
        json!({"results": [
            {
                "certificate_id": CERT,
                "total_num": 5,
                "deployed_resources": [
                    {
                        "service": "CDN",
                        "resource_num": 1,
                        "resource_location": "global",
                        "region_resources": [
                            {"region_id": "global", "is_error": false, "resources": [resource(CERT_DOMAIN)]},
                        ],
                    },
                    {
                        "service": "WAF",
                        "resource_num": 1,
                        "resource_location": "region",
                        "region_resources": [
                            {"region_id": "cn-north-4", "is_error": false, "resources": [resource("waf-by-hand")]},
                        ],
                    },
                    {
                        "service": "ELB",
                        "resource_num": 3,
                        "resource_location": "region",
                        "region_resources": [
                            {"region_id": "ap-southeast-1", "is_error": false, "resources": [resource("elb-a"), resource("elb-b")]},
                            {"region_id": "cn-north-4", "is_error": false, "resources": [resource("elb-c")]},
                        ],
                    },
                ],
            },
            {"certificate_id": OTHER_CERT, "total_num": 0, "deployed_resources": []},
        ]})
    );

    // Filtered by service, in SCM's service order whatever the request's; unknown ids are simply unused.
    let some = deployed(
        &sim,
        &json!({"certificate_ids": [UNKNOWN_CERT, CERT], "service_names": ["WAF", "CDN", "WAF"]}),
    )
    .await;
    assert_eq!(some.status, 200);
    assert_eq!(
        some.body["results"][0],
        json!({"certificate_id": UNKNOWN_CERT, "total_num": 0, "deployed_resources": []})
    );
    assert_eq!(some.body["results"][1]["total_num"], 2);
    let services: Vec<&Value> = some.body["results"][1]["deployed_resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["service"])
        .collect();
    assert_eq!(services, [&json!("CDN"), &json!("WAF")]);

    // The by-hand binding moves like a deployed one.
    assert_eq!(
        deploy(&sim, OTHER_CERT, &json!({"project_name": "cn-north-4", "service_name": "WAF", "resources": [{"id": "waf-by-hand", "type": "cloud", "enterprise_project_id": "0"}]}))
            .await
            .body,
        json!({"failure_list": []})
    );
    let waf = deployed(
        &sim,
        &json!({"certificate_ids": [CERT, OTHER_CERT], "service_names": ["WAF"]}),
    )
    .await;
    assert_eq!(waf.body["results"][0]["total_num"], 0);
    assert_eq!(waf.body["results"][1]["total_num"], 1);
    assert!(
        sim.calls()
            .iter()
            .all(|c| c.certificate_id.is_none() || c.path.ends_with("/deploy"))
    );
}

#[tokio::test]
async fn invalid_deployed_resources_queries_are_400() {
    let sim = start(SimConfig::default()).await;
    let ids = |n: usize| -> Vec<String> { (0..n).map(|i| format!("scs{i:013}")).collect() };
    let cases = [
        "not json".to_owned(),
        json!({"certificate_ids": [], "service_names": ["ALL"]}).to_string(),
        json!({"certificate_ids": ids(51), "service_names": ["ALL"]}).to_string(),
        json!({"certificate_ids": ["scs155419213115"], "service_names": ["ALL"]}).to_string(),
        json!({"certificate_ids": ["scs15541921311500"], "service_names": ["ALL"]}).to_string(),
        json!({"certificate_ids": [CERT], "service_names": []}).to_string(),
        json!({"certificate_ids": [CERT], "service_names": ["OBS"]}).to_string(),
        json!({"certificate_ids": [CERT], "service_names": ["elb"]}).to_string(),
        json!({"certificate_ids": [CERT]}).to_string(),
        json!({"service_names": ["ALL"]}).to_string(),
        json!({"certificate_ids": CERT, "service_names": ["ALL"]}).to_string(),
    ];
    for body in &cases {
        let answer = post(&sim, "/v3/scm/deployed-resources", Some(DEMO_TOKEN), body).await;
        assert_eq!(
            (answer.status, answer.body),
            (
                400,
                json!({"error_code": "SCM.0005", "error_msg": "Incorrect request parameter."})
            ),
            "{body}"
        );
    }
    let fifty = deployed(
        &sim,
        &json!({"certificate_ids": ids(50), "service_names": ["ELB", "ALL"]}),
    )
    .await;
    assert_eq!(fifty.status, 200);
    assert_eq!(fifty.body["results"].as_array().map(Vec::len), Some(50));
}

#[tokio::test]
async fn a_batch_push_answers_per_region_with_fresh_copy_ids() {
    let sim = start(SimConfig::default()).await;
    sim.fail_region("cn-east-3");
    let answer = batch_push(
        &sim,
        CERT,
        &json!({"target_projects": ["ap-southeast-1", "cn-east-3", "nowhere", "cn-north-4"], "target_service": "ELB"}),
    )
    .await;
    assert_eq!(answer.status, 200);
    let results = answer.body["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), 4);
    let copy_id = |n: usize| results[n]["cert_id"].as_str().unwrap().to_owned();
    assert!(is_copy_id(&copy_id(0)) && is_copy_id(&copy_id(3)), "{results:?}");
    assert_ne!(copy_id(0), copy_id(3));
    assert_eq!(
        answer.body,
        json!({"results": [
            {"project_name": "ap-southeast-1", "cert_id": copy_id(0), "message": "success"},
            {"project_name": "cn-east-3", "cert_id": "", "message": scm_sim::REGION_BUSY},
            {"project_name": "nowhere", "cert_id": "", "message": "Invalid region id."},
            {"project_name": "cn-north-4", "cert_id": copy_id(3), "message": "success"},
        ]})
    );
    let copy = |project: &str, copy_id: String| Copy {
        certificate_id: CERT.to_owned(),
        service: "ELB".to_owned(),
        project: project.to_owned(),
        copy_id,
    };
    assert_eq!(
        sim.copies(),
        vec![copy("ap-southeast-1", copy_id(0)), copy("cn-north-4", copy_id(3))]
    );

    // Pushing again makes new copies (duplicates are refused only when the simulator is told to).
    let again = batch_push(
        &sim,
        CERT,
        &json!({"target_projects": ["ap-southeast-1"], "target_service": "ELB"}),
    )
    .await;
    let third = again.body["results"][0]["cert_id"].as_str().unwrap().to_owned();
    assert!(is_copy_id(&third) && third != copy_id(0));
    assert_eq!(sim.copies().len(), 3);

    let calls = sim.calls();
    assert_eq!(calls[0].path, format!("/v3/scm/certificates/{CERT}/batch-push"));
    assert_eq!(calls[0].certificate_id.as_deref(), Some(CERT));
    let batch_pushes = calls.iter().filter(|c| c.path.ends_with("/batch-push")).count();
    assert_eq!(batch_pushes, 2);
    assert!(sim.pushes().is_empty(), "a batch push is not counted as a single push");
}

#[tokio::test]
async fn invalid_batch_push_bodies_are_400() {
    let sim = start(SimConfig::default()).await;
    let unsupported = json!({"error_code": "SCM.0030", "error_msg": "Certificates cannot be pushed to this service."});
    let bad_parameter = json!({"error_code": "SCM.0005", "error_msg": "Incorrect request parameter."});
    let regions = |n: usize| -> Vec<String> { (0..n).map(|i| format!("cn-north-{i}")).collect() };
    let cases = [
        ("not json".to_owned(), &unsupported),
        (json!({"target_projects": ["cn-north-4"]}).to_string(), &unsupported),
        (
            json!({"target_projects": ["cn-north-4"], "target_service": "OBS"}).to_string(),
            &unsupported,
        ),
        (
            json!({"target_projects": ["cn-north-4"], "target_service": "waf"}).to_string(),
            &unsupported,
        ),
        (
            json!({"target_projects": [], "target_service": "WAF"}).to_string(),
            &bad_parameter,
        ),
        (
            json!({"target_projects": regions(11), "target_service": "WAF"}).to_string(),
            &bad_parameter,
        ),
        (
            json!({"target_projects": ["r".repeat(33)], "target_service": "WAF"}).to_string(),
            &bad_parameter,
        ),
        (
            json!({"target_projects": [""], "target_service": "WAF"}).to_string(),
            &bad_parameter,
        ),
        (
            json!({"target_projects": "cn-north-4", "target_service": "WAF"}).to_string(),
            &bad_parameter,
        ),
        (
            json!({"target_projects": [4], "target_service": "WAF"}).to_string(),
            &bad_parameter,
        ),
        (json!({"target_service": "WAF"}).to_string(), &bad_parameter),
    ];
    for (body, expected) in &cases {
        let answer = post(
            &sim,
            &format!("/v3/scm/certificates/{CERT}/batch-push"),
            Some(DEMO_TOKEN),
            body,
        )
        .await;
        assert_eq!((answer.status, &answer.body), (400, *expected), "{body}");
    }
    assert!(sim.copies().is_empty());

    // Ten regions and 32 characters are within the limits (that name is no region, so it fails inside the 200).
    let mut ten = regions(9);
    ten.push("r".repeat(32));
    let answer = batch_push(&sim, CERT, &json!({"target_projects": ten, "target_service": "WAF"})).await;
    assert_eq!(answer.status, 200);
    let messages: Vec<&str> = answer.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages[..9], ["success"; 9]);
    assert_eq!(messages[9], "Invalid region id.");
    assert_eq!(sim.copies().len(), 9);
}

/// Batch push follows the single push's duplicate rule, per region, and both kinds of push share what was pushed.
#[tokio::test]
async fn a_batch_push_refuses_duplicates_per_region_like_a_push() {
    let sim = start(SimConfig {
        reject_duplicate_push: true,
        ..SimConfig::default()
    })
    .await;
    let single = |project: &str| json!({"target_project": project, "target_service": "WAF"}).to_string();
    let push_path = format!("/v3/scm/certificates/{CERT}/push");
    assert_eq!(
        post(&sim, &push_path, Some(DEMO_TOKEN), &single("ap-southeast-1"))
            .await
            .status,
        204
    );

    let answer = batch_push(
        &sim,
        CERT,
        &json!({"target_projects": ["ap-southeast-1", "cn-north-4"], "target_service": "WAF"}),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body["results"][0],
        json!({"project_name": "ap-southeast-1", "cert_id": "", "message": "Push cert error"})
    );
    assert_eq!(answer.body["results"][1]["message"], "success");
    let refused = post(&sim, &push_path, Some(DEMO_TOKEN), &single("cn-north-4")).await;
    assert_eq!((refused.status, &refused.body["error_code"]), (400, &json!("SCM.0028")));
    // Another service or certificate is no duplicate.
    let elb = batch_push(
        &sim,
        CERT,
        &json!({"target_projects": ["cn-north-4"], "target_service": "ELB"}),
    )
    .await;
    assert_eq!(elb.body["results"][0]["message"], "success");
    let other = batch_push(
        &sim,
        OTHER_CERT,
        &json!({"target_projects": ["cn-north-4"], "target_service": "WAF"}),
    )
    .await;
    assert_eq!(other.body["results"][0]["message"], "success");
    assert_eq!(sim.copies().len(), 3);
}

#[tokio::test]
async fn the_new_endpoints_refuse_a_wrong_token_before_anything_else() {
    let sim = start(SimConfig {
        forbidden_tokens: vec!["readonly-token".to_owned()],
        ..SimConfig::default()
    })
    .await;
    let requests = [
        (
            format!("/v3/scm/certificates/{CERT}/deploy"),
            elb_deploy("cn-north-4", &["elb-a"]).to_string(),
        ),
        // An unknown certificate too: authorization comes first.
        (
            format!("/v3/scm/certificates/{UNKNOWN_CERT}/deploy"),
            elb_deploy("cn-north-4", &["elb-a"]).to_string(),
        ),
        (
            format!("/v3/scm/certificates/{CERT}/batch-push"),
            json!({"target_projects": ["cn-north-4"], "target_service": "ELB"}).to_string(),
        ),
        (
            "/v3/scm/deployed-resources".to_owned(),
            json!({"certificate_ids": [CERT], "service_names": ["ALL"]}).to_string(),
        ),
    ];
    for (path, body) in &requests {
        for token in [None, Some("not-a-valid-token")] {
            let answer = post(&sim, path, token, body).await;
            assert_eq!(
                (answer.status, &answer.body),
                (
                    401,
                    &json!({
                        "error_code": "APIGW.0301",
                        "error_msg": "Incorrect IAM authentication information: decrypt token fail",
                        "request_id": answer.request_id,
                    })
                ),
                "{path} with {token:?}"
            );
        }
        let answer = post(&sim, path, Some("readonly-token"), body).await;
        assert_eq!(
            (answer.status, &answer.body["error_code"]),
            (403, &json!("APIGW.0302")),
            "{path}"
        );
    }
    assert!(sim.deployments().is_empty());
    assert!(sim.copies().is_empty());
    assert_eq!(sim.deploy_count(CERT, "elb-a"), 0);
    assert_eq!(sim.calls().len(), requests.len() * 3);
}

#[tokio::test]
async fn faults_answer_the_endpoint_they_were_queued_for() {
    let sim = start(SimConfig::default()).await;
    sim.inject_deploy(error_fault(Some(CERT), 500, "SCM.0001"));
    sim.inject_batch_push(error_fault(None, 429, "APIGW.0308"));
    sim.inject_deployed_resources(error_fault(Some(OTHER_CERT), 503, "APIGW.0613"));
    let push_body = r#"{"target_project":"cn-north-4","target_service":"ELB"}"#;
    let push_path = format!("/v3/scm/certificates/{CERT}/push");
    assert_eq!(
        post(&sim, &push_path, Some(DEMO_TOKEN), push_body).await.status,
        204,
        "no fault of its own"
    );

    // The deploy fault is for CERT only.
    assert_eq!(
        deploy(&sim, OTHER_CERT, &elb_deploy("cn-north-4", &["elb-o"]))
            .await
            .status,
        200
    );
    let failed = deploy(&sim, CERT, &elb_deploy("cn-north-4", &["elb-a"])).await;
    assert_eq!(
        (failed.status, failed.body),
        (500, json!({"error_code": "SCM.0001", "error_msg": "injected SCM.0001"}))
    );
    assert_eq!(sim.deploy_count(CERT, "elb-a"), 0, "a refused deploy lands nothing");
    assert_eq!(
        deploy(&sim, CERT, &elb_deploy("cn-north-4", &["elb-a"])).await.status,
        200
    );

    let throttled = batch_push(
        &sim,
        CERT,
        &json!({"target_projects": ["cn-north-4"], "target_service": "ELB"}),
    )
    .await;
    assert_eq!(
        (throttled.status, throttled.body),
        (
            429,
            json!({"error_code": "APIGW.0308", "error_msg": "injected APIGW.0308", "request_id": throttled.request_id})
        )
    );
    assert!(sim.copies().is_empty());

    // Matched by any certificate a query asks about.
    let query = json!({"certificate_ids": [CERT], "service_names": ["ALL"]});
    assert_eq!(deployed(&sim, &query).await.status, 200);
    let query = json!({"certificate_ids": [CERT, OTHER_CERT], "service_names": ["ALL"]});
    assert_eq!(deployed(&sim, &query).await.status, 503);
    assert_eq!(deployed(&sim, &query).await.status, 200);

    // A deploy that lands but whose answer is lost.
    sim.inject_deploy(Fault {
        certificate_id: None,
        times: 1,
        action: FaultAction::DropAfterPush,
    });
    let lost = client()
        .post(format!("{}/v3/scm/certificates/{CERT}/deploy", sim.url()))
        .header("X-Auth-Token", DEMO_TOKEN)
        .body(elb_deploy("cn-north-4", &["elb-lost"]).to_string())
        .send()
        .await;
    assert!(lost.is_err(), "no answer");
    assert_eq!(sim.deploy_count(CERT, "elb-lost"), 1);

    // clear_faults drops the new queues too.
    sim.inject_deploy(error_fault(None, 500, "SCM.0001"));
    sim.inject_batch_push(error_fault(None, 500, "SCM.0001"));
    sim.inject_deployed_resources(error_fault(None, 500, "SCM.0001"));
    sim.fail_deploy("elb-a", "ELB.8902", 1);
    sim.clear_faults();
    assert_eq!(
        deploy(&sim, CERT, &elb_deploy("cn-north-4", &["elb-a"])).await.body,
        json!({"failure_list": []})
    );
    assert_eq!(
        batch_push(
            &sim,
            CERT,
            &json!({"target_projects": ["cn-north-4"], "target_service": "ELB"})
        )
        .await
        .status,
        200
    );
    assert_eq!(deployed(&sim, &query).await.status, 200);
}

#[tokio::test]
async fn reset_forgets_deploys_copies_and_what_tests_made_fail() {
    let sim = start(SimConfig::default()).await;
    assert_eq!(
        deploy(&sim, CERT, &elb_deploy("cn-north-4", &["elb-a"])).await.status,
        200
    );
    sim.mark_in_use(OTHER_CERT, "WAF", "cn-north-4", "waf-1");
    sim.fail_region("cn-east-3");
    sim.fail_deploy("elb-b", "ELB.8902", 5);
    let body = json!({"target_projects": ["cn-east-3", "cn-north-4"], "target_service": "ELB"});
    assert_eq!(batch_push(&sim, CERT, &body).await.body["results"][0]["cert_id"], "");
    assert_eq!(sim.copies().len(), 1);
    assert_eq!(sim.deployments().len(), 2);

    sim.reset();
    assert!(sim.deployments().is_empty());
    assert!(sim.copies().is_empty());
    assert_eq!(sim.deploy_count(CERT, "elb-a"), 0);
    assert!(sim.calls().is_empty());
    let answer = batch_push(&sim, CERT, &body).await;
    assert_eq!(
        answer.body["results"][0]["message"], "success",
        "the region works again"
    );
    let answer = deploy(&sim, CERT, &elb_deploy("cn-north-4", &["elb-b"])).await;
    assert_eq!(answer.body, json!({"failure_list": []}), "the queued failure is gone");
    let query = deployed(
        &sim,
        &json!({"certificate_ids": [OTHER_CERT], "service_names": ["ALL"]}),
    )
    .await;
    assert_eq!(query.body["results"][0]["total_num"], 0);
}

#[tokio::test]
async fn the_admin_api_drives_and_shows_the_deploy_side() {
    let sim = start(SimConfig::default()).await;
    let (status, _) = admin(
        &sim,
        reqwest::Method::POST,
        "/sim/deploy-failures",
        r#"{"resource":"elb-a","failure_info":"ELB.8902","times":2}"#,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = admin(
        &sim,
        reqwest::Method::POST,
        "/sim/failing-regions",
        r#"{"region":"cn-east-3"}"#,
    )
    .await;
    assert_eq!(status, 204);
    let in_use =
        json!({"certificate_id": OTHER_CERT, "service": "WAF", "region": "cn-north-4", "resource_id": "waf-1"});
    let (status, _) = admin(&sim, reqwest::Method::POST, "/sim/in-use", &in_use.to_string()).await;
    assert_eq!(status, 204);

    for _ in 0..2 {
        let answer = deploy(&sim, CERT, &elb_deploy("cn-north-4", &["elb-a"])).await;
        assert_eq!(answer.body["failure_list"][0]["failure_info"], "ELB.8902");
    }
    assert_eq!(
        deploy(&sim, CERT, &elb_deploy("cn-north-4", &["elb-a"])).await.body,
        json!({"failure_list": []})
    );
    let answer = batch_push(
        &sim,
        CERT,
        &json!({"target_projects": ["cn-east-3", "cn-north-4"], "target_service": "WAF"}),
    )
    .await;
    assert_eq!(answer.body["results"][0]["message"], scm_sim::REGION_BUSY);
    let copy_id = answer.body["results"][1]["cert_id"].clone();

    let (status, deployments) = admin(&sim, reqwest::Method::GET, "/sim/deployments", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        deployments,
        json!([
            {"certificate_id": CERT, "service": "ELB", "project": "cn-north-4", "resource": "elb-a"},
            {"certificate_id": OTHER_CERT, "service": "WAF", "project": "cn-north-4", "resource": "waf-1"},
        ])
    );
    assert_eq!(
        serde_json::from_value::<Vec<Deployment>>(deployments).unwrap(),
        sim.deployments()
    );
    let (status, copies) = admin(&sim, reqwest::Method::GET, "/sim/copies", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        copies,
        json!([{"certificate_id": CERT, "service": "WAF", "project": "cn-north-4", "copy_id": copy_id}])
    );

    for (path, body) in [
        ("/sim/deploy-failures", r#"{"resource":"elb-a"}"#),
        (
            "/sim/deploy-failures",
            r#"{"resource":"elb-a","failure_info":"X","times":0}"#,
        ),
        ("/sim/failing-regions", r#"{"regions":["cn-east-3"]}"#),
        ("/sim/in-use", r#"{"certificate_id":"scs1554192131150"}"#),
    ] {
        let (status, answer) = admin(&sim, reqwest::Method::POST, path, body).await;
        assert_eq!(
            (status, &answer["error_code"]),
            (400, &json!("SIM.0001")),
            "{path} {body}"
        );
    }
    assert_eq!(admin(&sim, reqwest::Method::POST, "/sim/reset", "").await.0, 204);
    assert_eq!(
        admin(&sim, reqwest::Method::GET, "/sim/deployments", "").await.1,
        json!([])
    );
    assert_eq!(admin(&sim, reqwest::Method::GET, "/sim/copies", "").await.1, json!([]));
}

#[tokio::test]
async fn a_waf_deploy_needs_an_enterprise_project() {
    let sim = start(SimConfig::default()).await;
    let bad_parameter = json!({"error_code": "SCM.0005", "error_msg": "Incorrect request parameter."});
    let waf = |resources: Value| json!({"project_name": "cn-north-4", "service_name": "WAF", "resources": resources});
    let with = json!({"id": "waf-1", "type": "cloud", "enterprise_project_id": "0"});
    for resources in [
        json!([{"id": "waf-1", "type": "cloud"}]),
        json!([{"id": "waf-1", "type": "premium", "enterprise_project_id": ""}]),
        // One resource without it refuses the whole deploy.
        json!([with, {"id": "waf-2", "type": "premium"}]),
    ] {
        let answer = deploy(&sim, CERT, &waf(resources.clone())).await;
        assert_eq!((answer.status, &answer.body), (400, &bad_parameter), "{resources}");
    }
    assert!(sim.deployments().is_empty());
    assert_eq!(sim.deploy_count(CERT, "waf-1"), 0, "a refused deploy bills nothing");

    let answer = deploy(&sim, CERT, &waf(json!([with]))).await;
    assert_eq!((answer.status, answer.body), (200, json!({"failure_list": []})));
    assert_eq!(sim.deployments(), vec![deployment(CERT, "WAF", "cn-north-4", "waf-1")]);
    assert_eq!(sim.calls()[3].body["resources"][0]["enterprise_project_id"], "0");
}

#[tokio::test]
async fn a_land_then_gateway_timeout_fault_lands_the_call_and_answers_504() {
    let sim = start(SimConfig {
        reject_duplicate_push: true,
        ..SimConfig::default()
    })
    .await;
    let timeout = |ms: u64| Fault {
        certificate_id: Some(CERT.to_owned()),
        times: 1,
        action: FaultAction::LandThenGatewayTimeout { ms },
    };
    let backend_timeout = |answer: &Answer| json!({"error_code": "APIGW.0201", "error_msg": "Backend timeout.", "request_id": answer.request_id});

    sim.inject_deploy(timeout(0));
    let answer = deploy(&sim, CERT, &elb_deploy("cn-north-4", &["elb-a"])).await;
    assert_eq!((answer.status, &answer.body), (504, &backend_timeout(&answer)));
    assert_eq!(sim.deploy_count(CERT, "elb-a"), 1, "deployed and billed");
    assert_eq!(sim.deployments(), vec![deployment(CERT, "ELB", "cn-north-4", "elb-a")]);
    let call = sim.calls().pop().expect("recorded");
    assert_eq!(
        (call.status, call.error_code.as_deref(), call.certificate_id.as_deref()),
        (504, Some("APIGW.0201"), Some(CERT))
    );
    // The client's retry is deployed, and billed, again.
    assert_eq!(
        deploy(&sim, CERT, &elb_deploy("cn-north-4", &["elb-a"])).await.status,
        200
    );
    assert_eq!(sim.deploy_count(CERT, "elb-a"), 2);

    // Any queued fault: the answer is held `ms` after the call landed.
    sim.inject_batch_push(timeout(300));
    let started = std::time::Instant::now();
    let answer = batch_push(
        &sim,
        CERT,
        &json!({"target_projects": ["cn-north-4"], "target_service": "ELB"}),
    )
    .await;
    assert_eq!((answer.status, &answer.body), (504, &backend_timeout(&answer)));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(sim.copies().len(), 1, "the copy was made");

    // Over the admin API (push faults), `ms` may be left out.
    let fault: Fault = serde_json::from_str(r#"{"action":"land_then_gateway_timeout"}"#).unwrap();
    assert_eq!(fault.action, FaultAction::LandThenGatewayTimeout { ms: 0 });
    let (status, _) = admin(
        &sim,
        reqwest::Method::POST,
        "/sim/faults",
        r#"{"action":"land_then_gateway_timeout","certificate_id":"scs1554192131150"}"#,
    )
    .await;
    assert_eq!(status, 204);
    let push_path = format!("/v3/scm/certificates/{CERT}/push");
    let push_body = r#"{"target_project":"ap-southeast-1","target_service":"ELB"}"#;
    let answer = post(&sim, &push_path, Some(DEMO_TOKEN), push_body).await;
    assert_eq!((answer.status, &answer.body), (504, &backend_timeout(&answer)));
    // It landed: the same push again is a duplicate.
    let again = post(&sim, &push_path, Some(DEMO_TOKEN), push_body).await;
    assert_eq!((again.status, &again.body["error_code"]), (400, &json!("SCM.0028")));
}

#[tokio::test]
async fn an_unreadable_region_is_reported_with_is_error_and_hides_its_bindings() {
    let sim = start(SimConfig::default()).await;
    assert_eq!(
        deploy(&sim, CERT, &elb_deploy("ap-southeast-1", &["elb-a"]))
            .await
            .status,
        200
    );
    assert_eq!(
        deploy(&sim, CERT, &elb_deploy("cn-east-3", &["elb-b", "elb-c"]))
            .await
            .status,
        200
    );
    let cdn = json!({"service_name": "CDN", "resources": [{"domain_name": CERT_DOMAIN}]});
    assert_eq!(deploy(&sim, CERT, &cdn).await.status, 200);
    sim.fail_region_read("la-south-2");
    sim.fail_region_read("cn-east-3");

    let query = json!({"certificate_ids": [CERT, OTHER_CERT], "service_names": ["ALL"]});
    let answer = deployed(&sim, &query).await;
    assert_eq!(answer.status, 200);
    let unreadable = |region: &str| json!({"region_id": region, "is_error": true, "resources": []});
    let resource = |id: &str| json!({"resource_id": id, "resource_name": id});
    let nothing_readable = |service: &str| {
        json!({
            "service": service,
            "resource_num": 0,
            "resource_location": "region",
            "region_resources": [unreadable("cn-east-3"), unreadable("la-south-2")],
        })
    };
    assert_eq!(
        answer.body,
        json!({"results": [
            {
                "certificate_id": CERT,
                "total_num": 2,
                "deployed_resources": [
                    {
                        "service": "CDN",
                        "resource_num": 1,
                        "resource_location": "global",
                        "region_resources": [
                            {"region_id": "global", "is_error": false, "resources": [resource(CERT_DOMAIN)]},
                        ],
                    },
                    nothing_readable("WAF"),
                    {
                        "service": "ELB",
                        "resource_num": 1,
                        "resource_location": "region",
                        "region_resources": [
                            {"region_id": "ap-southeast-1", "is_error": false, "resources": [resource("elb-a")]},
                            unreadable("cn-east-3"),
                            unreadable("la-south-2"),
                        ],
                    },
                ],
            },
            {
                "certificate_id": OTHER_CERT,
                "total_num": 0,
                "deployed_resources": [nothing_readable("WAF"), nothing_readable("ELB")],
            },
        ]})
    );
    // Only the services asked about; CDN is global and unaffected.
    let only_cdn = deployed(
        &sim,
        &json!({"certificate_ids": [OTHER_CERT], "service_names": ["CDN"]}),
    )
    .await;
    assert_eq!(
        only_cdn.body["results"][0],
        json!({"certificate_id": OTHER_CERT, "total_num": 0, "deployed_resources": []})
    );
    // The bindings are still there, only unreadable.
    assert_eq!(sim.deployments().len(), 4);

    sim.heal_region_read("la-south-2");
    let elb = json!({"certificate_ids": [CERT], "service_names": ["ELB"]});
    let answer = deployed(&sim, &elb).await;
    assert_eq!(answer.body["results"][0]["total_num"], 1);
    assert_eq!(
        answer.body["results"][0]["deployed_resources"][0]["region_resources"][1],
        unreadable("cn-east-3")
    );
    sim.heal_region_read("cn-east-3");
    let answer = deployed(&sim, &elb).await;
    assert_eq!(answer.body["results"][0]["total_num"], 3);
    assert_eq!(
        answer.body["results"][0]["deployed_resources"][0]["region_resources"][1],
        json!({"region_id": "cn-east-3", "is_error": false, "resources": [resource("elb-b"), resource("elb-c")]})
    );

    // The same over the admin API.
    let region = r#"{"region":"cn-east-3"}"#;
    let (status, _) = admin(&sim, reqwest::Method::POST, "/sim/unreadable-regions", region).await;
    assert_eq!(status, 204);
    assert_eq!(deployed(&sim, &elb).await.body["results"][0]["total_num"], 1);
    let (status, _) = admin(&sim, reqwest::Method::DELETE, "/sim/unreadable-regions", region).await;
    assert_eq!(status, 204);
    assert_eq!(deployed(&sim, &elb).await.body["results"][0]["total_num"], 3);
    for method in [reqwest::Method::POST, reqwest::Method::DELETE] {
        let (status, answer) = admin(&sim, method, "/sim/unreadable-regions", r#"{"regions":["x"]}"#).await;
        assert_eq!((status, &answer["error_code"]), (400, &json!("SIM.0001")));
    }

    // Reset heals.
    sim.fail_region_read("cn-east-3");
    sim.reset();
    let answer = deployed(&sim, &query).await;
    assert_eq!(answer.body["results"][1]["deployed_resources"], json!([]));
}

#[tokio::test]
async fn deployed_resources_can_report_resource_ids_with_their_names() {
    let sim = start(SimConfig::default()).await;
    let deploy_both = || async {
        assert_eq!(
            deploy(&sim, CERT, &elb_deploy("cn-north-4", &["elb-a"])).await.status,
            200
        );
        let cdn = json!({"service_name": "CDN", "resources": [{"domain_name": CERT_DOMAIN}]});
        assert_eq!(deploy(&sim, CERT, &cdn).await.status, 200);
    };
    deploy_both().await;
    let listed = || async {
        let answer = deployed(&sim, &json!({"certificate_ids": [CERT], "service_names": ["ALL"]})).await;
        let mut pairs = Vec::new();
        for service in answer.body["results"][0]["deployed_resources"].as_array().unwrap() {
            for region in service["region_resources"].as_array().unwrap() {
                for resource in region["resources"].as_array().unwrap() {
                    pairs.push((
                        resource["resource_id"].as_str().unwrap().to_owned(),
                        resource["resource_name"].as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
        pairs
    };
    let pair = |id: &str, name: &str| (id.to_owned(), name.to_owned());
    let bare = vec![pair(CERT_DOMAIN, CERT_DOMAIN), pair("elb-a", "elb-a")];
    let with_name = vec![
        pair(&format!("{CERT_DOMAIN}:{CERT_DOMAIN}"), CERT_DOMAIN),
        pair("elb-a:elb-a", "elb-a"),
    ];
    assert_eq!(listed().await, bare, "bare ids by default");
    sim.set_resource_id_with_name(true);
    assert_eq!(listed().await, with_name);
    sim.set_resource_id_with_name(false);
    assert_eq!(listed().await, bare);

    let (status, _) = admin(
        &sim,
        reqwest::Method::PUT,
        "/sim/resource-id-mode",
        r#"{"with_name":true}"#,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(listed().await, with_name);
    let (status, answer) = admin(
        &sim,
        reqwest::Method::PUT,
        "/sim/resource-id-mode",
        r#"{"with_name":"yes"}"#,
    )
    .await;
    assert_eq!((status, &answer["error_code"]), (400, &json!("SIM.0001")));

    sim.reset();
    deploy_both().await;
    assert_eq!(listed().await, bare, "reset reports bare ids again");
}
