//! Importing a certificate from a TLS Secret: the first import and push, each renewal once more, a key that does
//! not belong to its certificate, an earlier import reused, `deletionPolicy`, and two clusters on one SCM account.

use std::time::Duration;

use certpush_operator::crd::{CertificatePush, TargetService};
use certpush_operator::status::{self, FALSE, TRUE};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::harness::*;

/// A CA and a way to issue leaves valid from yesterday for 90 days, as cert-manager would renew them.
pub(crate) struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    pub(crate) fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "e2e test CA");
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// (tls.crt with the chain, tls.key, SHA-256 of the leaf's DER).
    pub(crate) fn leaf(&self) -> (String, String, String) {
        let day = |offset: i64| {
            let d = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_hours(24 * offset))
                .unwrap()
                .to_zoned(jiff::tz::TimeZone::UTC)
                .date();
            rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
        };
        self.issue(day(-1), day(90))
    }

    /// A leaf valid from `start` (to the second) for 90 days: (tls.crt with the chain, tls.key, SHA-256 of the DER).
    fn leaf_valid_from(&self, start: jiff::Timestamp) -> (String, String, String) {
        let start = time::OffsetDateTime::from_unix_timestamp(start.as_second()).unwrap();
        self.issue(start, start + time::Duration::days(90))
    }

    fn issue(&self, not_before: time::OffsetDateTime, not_after: time::OffsetDateTime) -> (String, String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["www.example.com".to_owned()]).unwrap();
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            format!("{}{}", cert.pem(), self.pem),
            key.serialize_pem(),
            sha256_bytes(cert.der()),
        )
    }
}

fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(crate) async fn put_tls_secret(client: &kube::Client, ns: &str, name: &str, crt: &str, key: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": crt, "tls.key": key},
    }))
    .unwrap();
    api.patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(&secret))
        .await
        .expect("apply TLS Secret");
}

/// The token Secret `scm` and the TLS Secret `web-tls` holding a first leaf of a new CA, in `ns`: how most import
/// tests start. Returns the CA (for renewals) and that leaf's fingerprint.
pub(crate) async fn token_and_first_leaf(client: &kube::Client, ns: &str) -> (TestCa, String) {
    put_secret(client, ns, "scm", GOOD_TOKEN).await;
    let ca = TestCa::new();
    let (crt, key, fingerprint) = ca.leaf();
    put_tls_secret(client, ns, "web-tls", &crt, &key).await;
    (ca, fingerprint)
}

pub(crate) fn import_spec(secret: &str) -> certpush_operator::crd::CertificatePushSpec {
    certpush_operator::crd::CertificatePushSpec {
        certificate_id: None,
        source_secret_ref: Some(certpush_operator::crd::SourceSecretRef { name: secret.into() }),
        ..spec(CERT, TargetService::Elb, "ap-southeast-1", "scm")
    }
}

/// The whole import flow: a TLS Secret is imported and pushed once; edits that keep the certificate do nothing;
/// a renewal is imported and pushed exactly once more and the superseded import is deleted from SCM; the private
/// key never reaches logs, Events or status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_tls_secret_is_imported_and_pushed_and_each_renewal_once_more() {
    let client = admin().await;
    let ns = namespace(&client, "import").await;
    let sim = start_sim().await;
    let op = Operator::start(&ns, &sim, "trace").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let ca = TestCa::new();
    let (crt, key, fp) = ca.leaf();
    put_tls_secret(&client, &ns, "web-tls", &crt, &key).await;
    let api = create_push(&client, &ns, "web", import_spec("web-tls")).await;
    let cp = wait_for(&api, "web", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;

    let st = status(&cp);
    let first = st.certificate_id.clone().expect("status.certificateId");
    assert_eq!(st.source_fingerprint.as_deref(), Some(fp.as_str()));
    assert_eq!(st.pushed_certificate_id.as_deref(), Some(first.as_str()));
    assert!(st.not_after.is_some() && st.source_secret.as_ref().is_some_and(|s| s.name == "web-tls"));
    let name = certpush_operator::source::import_name(&Default::default(), &ns, "web", &fp);
    assert_eq!(sim.certificates().last(), Some(&(first.clone(), name)));
    let methods: Vec<(String, u16)> = sim.calls().iter().map(|c| (c.method.clone(), c.status)).collect();
    // Defect: every import was preceded by a list call (pages of them where SCM ignores `content`). The import is
    // recorded in status before it is sent, so only a crash or a lost answer makes the operator search.
    assert_eq!(
        methods,
        [("POST".into(), 200), ("POST".into(), 204)],
        "import, push: {:#?}",
        sim.calls()
    );
    assert_eq!(st.import_intent, None, "the intent is cleared with the answer");
    assert_eq!(sim.pushes()[0].certificate_id.as_deref(), Some(first.as_str()));
    let import_call = &sim.calls()[0];
    assert_eq!(import_call.body["private_key"], "<redacted>");
    assert!(
        import_call.body["certificate_chain"]
            .as_str()
            .is_some_and(|c| c.contains("BEGIN CERTIFICATE"))
    );

    // Edits of the Secret that keep the certificate import and push nothing.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for i in 0..3 {
        op.after_reconcile("unchanged", label(&secrets, "web-tls", &i.to_string()))
            .await;
    }
    assert_eq!(sim.calls().len(), 2, "{:#?}", sim.calls());

    // Renewal: a new key and certificate in the same Secret.
    let (crt2, key2, fp2) = ca.leaf();
    put_tls_secret(&client, &ns, "web-tls", &crt2, &key2).await;
    let cp = wait_for(&api, "web", T, "the renewal pushed", |cp| {
        ready_is(cp, TRUE, "Pushed") && status(cp).source_fingerprint.as_deref() == Some(fp2.as_str())
    })
    .await;
    let second = status(&cp).certificate_id.expect("new certificateId");
    assert_ne!(second, first);
    assert_eq!(status(&cp).pushed_certificate_id.as_deref(), Some(second.as_str()));
    let wait_deleted = async {
        while sim.certificates().iter().any(|(id, _)| *id == first) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(T, wait_deleted)
        .await
        .expect("the superseded import is deleted");
    let pushed: Vec<Option<String>> = sim.successful_pushes().into_iter().map(|c| c.certificate_id).collect();
    assert_eq!(
        pushed,
        [Some(first.clone()), Some(second.clone())],
        "each certificate pushed once"
    );
    let imports = sim.calls().iter().filter(|c| c.path.ends_with("/import")).count();
    assert_eq!(imports, 2);
    assert_eq!(
        imports_in(&sim),
        std::slice::from_ref(&second),
        "SCM holds only the certificate serving"
    );
    // The expiry gauge follows the notAfter of the certificate pushed: the renewal, once pushed.
    let pushed_not_after = status(&cp)
        .pushed
        .and_then(|p| p.not_after)
        .expect("status.pushed.notAfter");
    assert_eq!(Some(pushed_not_after.as_str()), status(&cp).not_after.as_deref());
    let not_after = status::parse_time(&pushed_not_after).unwrap();
    let series = format!(
        "certpush_certificate_expiration_timestamp_seconds{{namespace=\"{ns}\",name=\"web\"}} {}",
        not_after.as_second()
    );
    let deadline = std::time::Instant::now() + T;
    while !op.metrics().await.contains(&series) {
        assert!(
            std::time::Instant::now() < deadline,
            "{series} not in\n{}",
            op.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let key_lines: Vec<&str> = [key.as_str(), key2.as_str()]
        .iter()
        .flat_map(|k| k.lines().filter(|l| !l.starts_with("-----")))
        .collect();
    let mut secrets_to_hide = vec![key.trim(), key2.trim()];
    secrets_to_hide.extend(key_lines);
    assert_no_secret_leak(&ns, &op, &secrets_to_hide).await;
}

/// The IDs of the certificates this operator imported that SCM holds (the simulator's demo certificates aside).
pub(crate) fn imports_in(sim: &scm_sim::Sim) -> Vec<String> {
    let imports = sim
        .certificates()
        .into_iter()
        .filter(|(_, name)| name.starts_with("cpush-"));
    imports.map(|(id, _)| id).collect()
}

/// Waits until `cp` owes a delete of `id` (recorded in status.pendingDeletions) that `owed` accepts.
async fn wait_owed(
    api: &Api<CertificatePush>,
    id: &str,
    what: &str,
    owed: impl Fn(&certpush_operator::crd::PendingDeletion) -> bool,
) -> CertificatePush {
    wait_for(api, "web", T, what, |cp| {
        status(cp)
            .pending_deletions
            .iter()
            .any(|d| d.certificate_id == id && owed(d))
    })
    .await
}

/// Defect: a superseded import got one delete attempt; a failed one was announced and left in SCM for good, and so
/// was one whose delete a crash (or SIGTERM, or a failed status write) came before. Now each is recorded in
/// status.pendingDeletions before its delete is sent and retried with backoff until SCM confirms, across restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_superseded_import_is_deleted_despite_failed_deletes_and_a_crash() {
    let client = admin().await;
    let ns = namespace(&client, "import-owed").await;
    let sim = start_sim().await;
    let op = Operator::start(&ns, &sim, "info").await;
    let (ca, _) = token_and_first_leaf(&client, &ns).await;
    let api = create_push(&client, &ns, "web", import_spec("web-tls")).await;
    let cp = wait_for(&api, "web", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let first = status(&cp).pushed_certificate_id.expect("pushedCertificateId");

    // A renewal whose first delete of the superseded import fails: owed, announced, retried, then gone.
    let fault = |action| scm_sim::Fault {
        certificate_id: None,
        times: 1,
        action,
    };
    sim.inject_delete(fault(scm_sim::FaultAction::Error {
        status: 500,
        error_code: "SCM.0500".into(),
        error_msg: "internal error".into(),
    }));
    let (crt2, key2, _) = ca.leaf();
    put_tls_secret(&client, &ns, "web-tls", &crt2, &key2).await;
    let cp = wait_owed(&api, &first, "the failed delete recorded", |d| {
        d.failed_attempts == Some(1) && d.last_error.as_deref().is_some_and(|e| e.contains("internal error"))
    })
    .await;
    assert!(
        ready_is(&cp, TRUE, "Pushed"),
        "a failed delete does not make the push fail"
    );
    wait_event(&client, &ns, "web", "Warning", "SupersededNotDeleted").await;
    let cp = wait_for(&api, "web", T, "the retried delete confirmed", |cp| {
        status(cp).pending_deletions.is_empty()
    })
    .await;
    let second = status(&cp).pushed_certificate_id.expect("pushedCertificateId");
    assert_eq!(imports_in(&sim), std::slice::from_ref(&second));

    // The next renewal's delete is held by SCM's gateway and the operator is killed meanwhile: the debt is in status,
    // so the next process pays it, without pushing again.
    sim.inject_delete(fault(scm_sim::FaultAction::GatewayTimeout { ms: 3000 }));
    let (crt3, key3, _) = ca.leaf();
    put_tls_secret(&client, &ns, "web-tls", &crt3, &key3).await;
    wait_owed(&api, &second, "the delete owed before it is sent", |_| true).await;
    let pushes = sim.successful_pushes().len();
    let _op = op.restart(&ns, &sim, "info").await;
    let cp = wait_for(&api, "web", T, "the owed delete paid after the restart", |cp| {
        status(cp).pending_deletions.is_empty() && ready_is(cp, TRUE, "Pushed")
    })
    .await;
    let third = status(&cp).pushed_certificate_id.expect("pushedCertificateId");
    assert_eq!(
        imports_in(&sim),
        [third],
        "only the certificate serving is left: {:#?}",
        sim.calls()
    );
    assert_eq!(sim.successful_pushes().len(), pushes, "nothing pushed again");
    assert_eq!(pushes, 3);
}

/// Defect: a leaf whose notBefore was in the future was InvalidSource with no retry, so it waited for the next change
/// of the Secret (often the next renewal). It waits as NotYetValid, saying when, without stalling, and is imported
/// and pushed once it is valid, with no change to the Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_certificate_not_valid_yet_is_pushed_when_it_becomes_valid() {
    let client = admin().await;
    let ns = namespace(&client, "not-yet").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let valid_from = jiff::Timestamp::now() + Duration::from_secs(15);
    let (crt, key, fp) = TestCa::new().leaf_valid_from(valid_from);
    put_tls_secret(&client, &ns, "web-tls", &crt, &key).await;
    let api = create_push(&client, &ns, "web", import_spec("web-tls")).await;
    let cp = wait_for(&api, "web", T, "NotYetValid", |cp| ready_is(cp, FALSE, "NotYetValid")).await;
    let (_, message) = ready_message(&cp);
    assert!(message.contains("not valid before"), "{message}");
    assert_eq!(
        condition(&cp, "Reconciling").map(|(s, _)| s).as_deref(),
        Some(TRUE),
        "it waits on time, not on a human"
    );
    assert!(condition(&cp, "Stalled").is_none(), "{:?}", status(&cp).conditions);
    let due = status::parse_time(status(&cp).next_retry_time.as_deref().expect("nextRetryTime")).unwrap();
    assert!(due >= valid_from, "due {due}, valid from {valid_from}");
    assert!(
        sim.calls().is_empty(),
        "nothing is sent before it is valid: {:#?}",
        sim.calls()
    );

    let cp = wait_for(&api, "web", T * 2, "Ready=True once valid", |cp| {
        ready_is(cp, TRUE, "Pushed")
    })
    .await;
    assert!(jiff::Timestamp::now() >= valid_from);
    assert_eq!(status(&cp).source_fingerprint.as_deref(), Some(fp.as_str()));
    assert_eq!(sim.successful_pushes().len(), 1);
}

/// Defect: a source Secret deleted and re-created with the same certificate (a GitOps re-sync, `kubectl replace
/// --force`, a restore) was pushed again, and on a service that refuses a repeat the object stalled. The missing
/// Secret is reported without erasing what was pushed, and its return goes back to Ready with no SCM call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_source_secret_recreated_with_the_same_certificate_is_not_pushed_again() {
    let client = admin().await;
    let ns = namespace(&client, "import-recreate").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let (crt, key, fp) = TestCa::new().leaf();
    put_tls_secret(&client, &ns, "web-tls", &crt, &key).await;
    let api = create_push(&client, &ns, "web", import_spec("web-tls")).await;
    let cp = wait_for(&api, "web", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let pushed_id = status(&cp).pushed_certificate_id.expect("pushedCertificateId");
    let calls = sim.calls().len();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .delete("web-tls", &Default::default())
        .await
        .expect("delete the source Secret");
    let cp = wait_for(&api, "web", T, "InvalidSource", |cp| {
        ready_is(cp, FALSE, "InvalidSource")
    })
    .await;
    assert_eq!(
        status(&cp).pushed_certificate_id.as_deref(),
        Some(pushed_id.as_str()),
        "what was pushed is kept"
    );

    put_tls_secret(&client, &ns, "web-tls", &crt, &key).await;
    let cp = wait_for(&api, "web", T, "Ready=True again", |cp| ready_is(cp, TRUE, "Pushed")).await;
    assert_eq!(status(&cp).source_fingerprint.as_deref(), Some(fp.as_str()));
    assert_eq!(status(&cp).pushed_certificate_id.as_deref(), Some(pushed_id.as_str()));
    assert_eq!(sim.calls().len(), calls, "nothing sent to SCM: {:#?}", sim.calls());
    assert_eq!(sim.successful_pushes().len(), 1);
}

/// A Secret whose key does not belong to its certificate is InvalidSource and sends nothing to SCM; fixing the
/// Secret imports and pushes. An import whose answer was lost (it landed in SCM under the deterministic name) is
/// found and reused, not imported again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_mismatched_key_is_invalid_source_and_an_earlier_import_is_reused() {
    let client = admin().await;
    let ns = namespace(&client, "import-bad").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let ca = TestCa::new();
    let (crt, key, fp) = ca.leaf();
    let (_, other_key, _) = ca.leaf();
    put_tls_secret(&client, &ns, "web-tls", &crt, &other_key).await;
    let api = create_push(&client, &ns, "web", import_spec("web-tls")).await;
    let cp = wait_for(&api, "web", T, "InvalidSource", |cp| {
        ready_is(cp, FALSE, "InvalidSource")
    })
    .await;
    let (_, message) = ready_message(&cp);
    assert!(message.contains("does not belong"), "{message}");
    assert!(condition(&cp, "Stalled").is_some());
    assert!(sim.calls().is_empty(), "nothing sent: {:#?}", sim.calls());

    // The import lands but its answer is lost (as after a crash between import and status write): the intent in
    // status makes the next attempt search SCM by name and reuse it, not import again.
    let name = certpush_operator::source::import_name(&Default::default(), &ns, "web", &fp);
    sim.inject_import(scm_sim::Fault {
        certificate_id: Some(name.clone()),
        times: 1,
        action: scm_sim::FaultAction::DropAfterPush,
    });
    put_tls_secret(&client, &ns, "web-tls", &crt, &key).await;
    let cp = wait_for(&api, "web", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let imports: Vec<(String, String)> = sim.certificates().into_iter().filter(|(_, n)| *n == name).collect();
    assert_eq!(imports.len(), 1, "imported once: {:#?}", sim.calls());
    let earlier = &imports[0].0;
    assert_eq!(status(&cp).certificate_id.as_deref(), Some(earlier.as_str()));
    assert_eq!(status(&cp).import_intent, None);
    let paths: Vec<String> = sim.calls().iter().map(|c| format!("{} {}", c.method, c.path)).collect();
    assert_eq!(
        paths,
        [
            "POST /v3/scm/certificates/import".to_owned(),
            "GET /v3/scm/certificates".to_owned(),
            format!("POST /v3/scm/certificates/{earlier}/push")
        ],
        "found by name, not imported again"
    );
}

/// deletionPolicy Delete: the finalizer deletes the imported certificate from SCM, then lets the object go; without
/// usable credentials it lets go at once with a Warning Event naming what is left. Retain (the default) adds no
/// finalizer and leaves SCM alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn deletion_policy_delete_removes_the_import_and_never_blocks_deletion() {
    let client = admin().await;
    let ns = namespace(&client, "import-delete").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    token_and_first_leaf(&client, &ns).await;
    let deleting = || certpush_operator::crd::CertificatePushSpec {
        deletion_policy: Some(certpush_operator::crd::DeletionPolicy::Delete),
        ..import_spec("web-tls")
    };
    let api = create_push(&client, &ns, "cleaned", deleting()).await;
    let retained = create_push(&client, &ns, "kept", import_spec("web-tls")).await;
    let cp = wait_for(&api, "cleaned", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let kept = wait_for(&retained, "kept", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    assert_eq!(
        cp.metadata.finalizers.as_deref(),
        Some(&[certpush_operator::crd::CLEANUP_FINALIZER.to_owned()][..])
    );
    assert_eq!(kept.metadata.finalizers, None, "Retain adds no finalizer");
    let id = status(&cp).certificate_id.unwrap();
    let kept_id = status(&kept).certificate_id.unwrap();

    api.delete("cleaned", &Default::default()).await.unwrap();
    wait_gone(&api, "cleaned").await;
    let ids: Vec<String> = sim.certificates().into_iter().map(|(id, _)| id).collect();
    assert!(!ids.contains(&id), "the import is deleted from SCM");
    assert!(ids.contains(&kept_id));
    retained.delete("kept", &Default::default()).await.unwrap();
    wait_gone(&retained, "kept").await;
    assert!(
        sim.certificates().iter().any(|(i, _)| *i == kept_id),
        "Retain leaves SCM alone"
    );

    // Without credentials the finalizer still lets go, and says what is left.
    let api = create_push(&client, &ns, "orphan", deleting()).await;
    let cp = wait_for(&api, "orphan", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let orphan = status(&cp).certificate_id.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets.delete("scm", &Default::default()).await.unwrap();
    api.delete("orphan", &Default::default()).await.unwrap();
    wait_gone(&api, "orphan").await;
    assert!(sim.certificates().iter().any(|(i, _)| *i == orphan));
    let events = events_for(&client, &ns, "orphan").await;
    assert!(
        events
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "CleanupSkipped" && n.contains(&orphan)),
        "{events:?}"
    );
}

pub(crate) async fn wait_gone(api: &Api<CertificatePush>, name: &str) {
    let deadline = std::time::Instant::now() + T;
    while api.get_opt(name).await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} was not released by its finalizer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Peak resident memory of process `pid` in MiB (VmHWM).
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Defect: the sizes of a source Secret were checked only after it was parsed, by every reconcile reading it at
/// once. 64 objects pointing at a 900 KiB TLS Secret that is edited three times: each is InvalidSource naming the
/// limit, nothing reaches SCM, and the operator's peak memory stays far under the chart's 128 MiB limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_huge_source_secret_is_refused_by_size_and_memory_stays_bounded() {
    let client = admin().await;
    let ns = namespace(&client, "import-huge").await;
    let sim = start_sim().await;
    let op = Operator::start(&ns, &sim, "info").await;
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let filler = |n: usize| {
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            "QUFB".repeat(n)
        )
    };
    put_tls_secret(&client, &ns, "huge-tls", &filler(230_000), "k").await;
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    for i in 0..64 {
        create_push(&client, &ns, &format!("huge-{i}"), import_spec("huge-tls")).await;
    }
    let refused = |cp: &CertificatePush| {
        ready_is(cp, FALSE, "InvalidSource") && ready_message(cp).1.contains("at most 65536 bytes")
    };
    for i in 0..64 {
        wait_for(&api, &format!("huge-{i}"), T, "InvalidSource naming the limit", refused).await;
    }
    for edit in 0..3 {
        let before = op.reconciles("invalid").await;
        put_tls_secret(&client, &ns, "huge-tls", &filler(230_000 + edit + 1), "k").await;
        op.wait_reconciles("invalid", before + 64).await;
    }
    let peak = peak_rss_mib(op.pid());
    eprintln!("64 objects on a 900 KiB Secret edited 3 times: peak RSS {peak:.1} MiB");
    assert!(peak > 0.0 && peak < 128.0, "peak RSS {peak:.1} MiB");
    assert!(sim.calls().is_empty(), "nothing sent: {:#?}", sim.calls());
}

/// Defect: switching an object from sourceSecretRef to certificateId left its imports in SCM even with
/// `deletionPolicy: Delete` (and dropped the finalizer that would have deleted them). The switch owes them a delete,
/// like a renewal's superseded import, and the finalizer stays until they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn switching_to_a_certificate_id_deletes_the_imports_under_delete() {
    let client = admin().await;
    let ns = namespace(&client, "source-dropped").await;
    let sim = start_sim().await;
    let _op = Operator::start(&ns, &sim, "info").await;
    token_and_first_leaf(&client, &ns).await;
    let mut spec = import_spec("web-tls");
    spec.deletion_policy = Some(certpush_operator::crd::DeletionPolicy::Delete);
    let api = create_push(&client, &ns, "web", spec.clone()).await;
    let cp = wait_for(&api, "web", T, "Ready=True", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let imported = status(&cp).pushed_certificate_id.expect("imported");
    assert_eq!(imports_in(&sim), std::slice::from_ref(&imported));

    let mut cp = api.get("web").await.unwrap();
    cp.spec.source_secret_ref = None;
    cp.spec.certificate_id = Some(OTHER_CERT.into());
    api.replace("web", &Default::default(), &cp).await.unwrap();
    let cp = wait_for(&api, "web", T, "pushed by ID, the import deleted", |cp| {
        status(cp)
            .pushed
            .as_ref()
            .is_some_and(|p| p.certificate_id == OTHER_CERT)
            && status(cp).pending_deletions.is_empty()
            && ready_is(cp, TRUE, "Pushed")
    })
    .await;
    assert!(imports_in(&sim).is_empty(), "{:?}", imports_in(&sim));
    let deletes: Vec<_> = sim.calls().into_iter().filter(|c| c.method == "DELETE").collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].certificate_id.as_deref(), Some(imported.as_str()));
    assert_eq!(status(&cp).certificate_id, None);
    wait_for(&api, "web", T, "the finalizer goes with the imports", |cp| {
        kube::ResourceExt::finalizers(cp).is_empty()
    })
    .await;
}

/// Defect: an import the account's rate limit deferred (never sent) left its import intent in status, so the next
/// attempt listed SCM for an import that could not exist before importing. A deferral leaves no intent: every
/// import is sent once, and SCM is never listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn an_import_the_rate_limit_deferred_is_imported_without_a_search() {
    const N: usize = 14;
    let client = admin().await;
    let ns = namespace(&client, "import-deferred").await;
    let sim = start_sim().await;
    token_and_first_leaf(&client, &ns).await;
    // Two requests a second: with N objects importing at once, more than the waiting places, some are deferred.
    let _op = Operator::start_custom(
        &ns,
        &sim,
        restricted_kubeconfig(),
        &["--scm-qps", "2", "--scm-burst", "1"],
    )
    .await;
    for i in 0..N {
        create_push(&client, &ns, &format!("d{i}"), import_spec("web-tls")).await;
    }
    let api: Api<CertificatePush> = Api::namespaced(client.clone(), &ns);
    for i in 0..N {
        wait_for(&api, &format!("d{i}"), Duration::from_secs(90), "Ready=True", |cp| {
            ready_is(cp, TRUE, "Pushed")
        })
        .await;
    }
    let calls = sim.calls();
    let lists = calls
        .iter()
        .filter(|c| c.method == "GET" && c.path.ends_with("/certificates"))
        .count();
    let imports = calls.iter().filter(|c| c.path.ends_with("/import")).count();
    assert_eq!((lists, imports), (0, N), "no search, one import each");
}

/// The IDs of the certificates SCM confirmed deleting (204), in order.
fn deleted(sim: &scm_sim::Sim) -> Vec<String> {
    let deletes = sim
        .calls()
        .into_iter()
        .filter(|c| c.method == "DELETE" && c.status == 204);
    deletes.filter_map(|c| c.certificate_id).collect()
}

/// Waits until SCM confirmed `n` deletes, and returns them.
async fn wait_deleted(sim: &scm_sim::Sim, n: usize, what: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + T;
    loop {
        let deletes = deleted(sim);
        if deletes.len() >= n {
            return deletes;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {:#?}",
            sim.calls()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 29 (2b): the operators of two clusters share one SCM account, and each cluster has a CertificatePush of the
/// same namespace and name importing the same certificate (one Secret synced to both). Their import names were equal,
/// so when one cluster's import got no answer, its search for that name found the other cluster's import, reused it,
/// and its next renewal deleted it from under the other cluster. With `--cluster-name` (given here by its variable,
/// CLUSTER_NAME) in the import names, each finds, renews and deletes only its own imports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn two_clusters_on_one_account_renew_and_delete_only_their_own_imports() {
    use certpush_operator::source::{ClusterName, import_name};
    // Cluster "east" is the suite's control plane, "west" one of this test's own: the same namespace exists in both,
    // with the same objects and the same certificate, so nothing but the cluster name tells their imports apart.
    let west_cp = ControlPlane::start().await;
    let east_client = admin().await;
    let ns = namespace(&east_client, "shared").await;
    let west_client = client_for(&west_cp.admin_kubeconfig()).await;
    create_namespace(&west_client, &ns).await;
    let sim = start_sim().await;
    let _east = Operator::start_with_env(&ns, &sim, restricted_kubeconfig(), &[("CLUSTER_NAME", "east")]).await;
    let _west = Operator::start_with_env(&ns, &sim, west_cp.restricted_kubeconfig(), &[("CLUSTER_NAME", "west")]).await;
    let ca = TestCa::new();
    let (crt, key, fp) = ca.leaf();
    for client in [&east_client, &west_client] {
        put_secret(client, &ns, "scm", GOOD_TOKEN).await;
        put_tls_secret(client, &ns, "web-tls", &crt, &key).await;
    }

    let east_api = create_push(&east_client, &ns, "web", import_spec("web-tls")).await;
    let cp = wait_for(&east_api, "web", T, "east pushed", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let east_first = status(&cp).certificate_id.expect("east's certificateId");
    // West's first import gets no answer and never lands (the gateway gave up before SCM saw it), so its next
    // attempt searches SCM for an earlier import under its import name: where that is east's, it finds east's
    // import of the very same certificate, which agrees with the Secret in every way, and takes it as its own.
    sim.inject_import(scm_sim::Fault {
        certificate_id: None,
        times: 1,
        action: scm_sim::FaultAction::GatewayTimeout { ms: 0 },
    });
    let west_api = create_push(&west_client, &ns, "web", import_spec("web-tls")).await;
    let cp = wait_for(&west_api, "web", T, "west pushed", |cp| ready_is(cp, TRUE, "Pushed")).await;
    let west_first = status(&cp).certificate_id.expect("west's certificateId");
    let searches = sim
        .calls()
        .into_iter()
        .filter(|c| c.method == "GET" && c.path.ends_with("/certificates"));
    assert_eq!(
        searches.count(),
        1,
        "west searched for its lost import: {:#?}",
        sim.calls()
    );

    // West's renewal deletes the import it superseded: its own, never east's, which east still serves.
    let (crt2, key2, fp2) = ca.leaf();
    put_tls_secret(&west_client, &ns, "web-tls", &crt2, &key2).await;
    let deletes = wait_deleted(&sim, 1, "west's superseded import deleted").await;
    assert!(
        sim.certificates().iter().any(|(id, _)| *id == east_first),
        "west's renewal deleted east's import {east_first} (west had taken it as its own: {west_first}); deleted: \
         {deletes:?}"
    );
    assert_ne!(west_first, east_first, "west reused east's import");
    assert_eq!(
        deletes,
        std::slice::from_ref(&west_first),
        "west deleted its own superseded import"
    );
    let cp = wait_for(&west_api, "web", T, "west's renewal pushed", |cp| {
        ready_is(cp, TRUE, "Pushed") && status(cp).source_fingerprint.as_deref() == Some(fp2.as_str())
    })
    .await;
    let west_second = status(&cp).pushed_certificate_id.expect("west's pushedCertificateId");

    // East's renewal deletes east's first import, and leaves west's renewal alone.
    let (crt3, key3, fp3) = ca.leaf();
    put_tls_secret(&east_client, &ns, "web-tls", &crt3, &key3).await;
    let deletes = wait_deleted(&sim, 2, "east's superseded import deleted").await;
    assert_eq!(
        deletes,
        [west_first.clone(), east_first.clone()],
        "each deleted only its own"
    );
    let cp = wait_for(&east_api, "web", T, "east's renewal pushed", |cp| {
        ready_is(cp, TRUE, "Pushed") && status(cp).source_fingerprint.as_deref() == Some(fp3.as_str())
    })
    .await;
    let east_second = status(&cp).pushed_certificate_id.expect("east's pushedCertificateId");
    let mut serving = vec![east_second.clone(), west_second.clone()];
    serving.sort();
    let mut held = imports_in(&sim);
    held.sort();
    assert_eq!(held, serving, "SCM holds each cluster's renewal, nothing else");

    // Each import is named as its cluster's.
    let named = |cluster: &str, fp: &str| import_name(&ClusterName::parse(cluster).unwrap(), &ns, "web", fp);
    let imports: Vec<(String, String)> = sim
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/import") && c.status == 200)
        .map(|c| {
            (
                c.certificate_id.unwrap_or_default(),
                c.body["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        imports,
        [
            (east_first, named("east", &fp)),
            (west_first, named("west", &fp)),
            (west_second, named("west", &fp2)),
            (east_second, named("east", &fp3)),
        ]
    );
}
