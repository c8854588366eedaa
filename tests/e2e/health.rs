//! The operator's health and permissions: the shipped RBAC is least privilege, and the readiness and liveness
//! probes follow the watches through an API server outage.

use std::path::{Path, PathBuf};
use std::time::Duration;

use certpush_operator::crd::TargetService;
use certpush_operator::status::TRUE;
use kube::config::Kubeconfig;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn shipped_rbac_is_least_privilege() {
    let _ = admin().await;
    install_once().await;
    let sa = "system:serviceaccount:certpush-system:certpush-operator";
    let can = |verb: &'static str, resource: &'static str| async move {
        let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
        let sub = format!("--subresource={sub}");
        let mut args = vec!["auth", "can-i", verb, resource, "--as", sa, "-n", "default"];
        if sub.len() > "--subresource=".len() {
            args.push(&sub);
        }
        let (_, out) = kubectl(&args).await;
        out.trim().starts_with("yes")
    };
    for (verb, res) in [
        ("watch", "certificatepushes.scm.certpush.dev"),
        ("patch", "certificatepushes.scm.certpush.dev/status"),
        // The finalizer of deletionPolicy: Delete.
        ("patch", "certificatepushes.scm.certpush.dev"),
        ("get", "secrets"),
        ("create", "events.events.k8s.io"),
    ] {
        assert!(can(verb, res).await, "needs {verb} {res}");
    }
    for (verb, res) in [
        ("create", "secrets"),
        ("update", "secrets"),
        ("update", "certificatepushes.scm.certpush.dev"),
        ("delete", "certificatepushes.scm.certpush.dev"),
        ("get", "configmaps"),
        ("create", "pods"),
    ] {
        assert!(!can(verb, res).await, "must not {verb} {res}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn readiness_and_liveness_follow_the_watches_through_an_outage() {
    let client = admin().await;
    let ns = namespace(&client, "readiness").await;
    let sim = start_sim().await;
    let proxy = CuttableProxy::start(&restricted_kubeconfig()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = proxy.kubeconfig(&restricted_kubeconfig(), dir.path());
    let op = Operator::start_custom(
        &ns,
        &sim,
        kubeconfig,
        &["--unready-after-seconds", "2", "--unhealthy-after-seconds", "4"],
    )
    .await;
    assert_eq!(op.wait_probe("/healthz", 200).await, "ok");

    // The API server goes away: not ready after 2 s of failing watches, not live after 4 s.
    proxy.cut();
    let body = op.wait_probe("/readyz", 503).await;
    assert!(body.contains("watch failing for"), "{body}");
    let body = op.wait_probe("/healthz", 503).await;
    assert!(body.contains("watch failing for"), "{body}");

    // It comes back. The operator either recovers on its own (ready again), or, where the client is still stuck
    // (kube's requests over fresh connections were seen to hang here after an outage, until kube's 295 s read
    // timeout), it keeps failing /healthz so that the kubelet restarts it: it never looks healthy while wedged.
    proxy.restore().await;
    let restored = std::time::Instant::now();
    // CERTPUSH_OUTAGE_WAIT_SECONDS lengthens the wait, to measure how long the client takes to recover alone.
    let wait = std::env::var("CERTPUSH_OUTAGE_WAIT_SECONDS").map_or(30, |v| v.parse().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(wait);
    let recovered = loop {
        let probe = |path: &'static str| {
            let url = format!("http://127.0.0.1:{}{path}", op.metrics_port);
            async move { reqwest::get(url).await.map(|r| r.status().as_u16()).unwrap_or(0) }
        };
        if probe("/readyz").await == 200 {
            break true;
        }
        assert_eq!(probe("/healthz").await, 503, "not ready, yet claims to be live");
        if std::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "watches recovered without a restart: {recovered} (after {:?})",
        restored.elapsed()
    );
    // Either way (recovered, or restarted as the kubelet would) the operator pushes a new object.
    let op = if recovered {
        op
    } else {
        op.restart(&ns, &sim, "info").await
    };
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    let api = create_push(&client, &ns, "waf", spec(CERT, TargetService::Waf, "cn-north-4", "scm")).await;
    wait_for(&api, "waf", T, "Ready after the outage", |cp| {
        ready_is(cp, TRUE, "Pushed")
    })
    .await;
    drop(op);
}

/// A TCP proxy in front of the API server that a test can cut, so the operator's watches fail the way they do when
/// the API server restarts: open connections close and new ones are refused.
pub struct CuttableProxy {
    addr: std::net::SocketAddr,
    upstream: String,
    cutting: std::sync::Arc<tokio::sync::Notify>,
    accepting: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl CuttableProxy {
    /// Proxies to the API server of `kubeconfig`.
    pub async fn start(kubeconfig: &Path) -> CuttableProxy {
        let kc = Kubeconfig::read_from(kubeconfig).unwrap();
        let server = kc.clusters[0].cluster.as_ref().unwrap().server.clone().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = CuttableProxy {
            addr: listener.local_addr().unwrap(),
            upstream: server.trim_start_matches("https://").to_string(),
            cutting: std::sync::Arc::default(),
            accepting: std::sync::Mutex::default(),
        };
        proxy.accept(listener);
        proxy
    }

    fn accept(&self, listener: tokio::net::TcpListener) {
        let (upstream, cutting) = (self.upstream.clone(), self.cutting.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let (upstream, cutting) = (upstream.clone(), cutting.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cutting.notified() => {}
                    }
                });
            }
        });
        *self.accepting.lock().unwrap() = Some(task);
    }

    /// Closes every proxied connection and refuses new ones (the listener is closed).
    pub fn cut(&self) {
        if let Some(task) = self.accepting.lock().unwrap().take() {
            task.abort();
        }
        self.cutting.notify_waiters();
    }

    /// Listens again on the same address.
    pub async fn restore(&self) {
        let listener = loop {
            // The aborted task may take a moment to release the port.
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.accept(listener);
    }

    /// A copy of `kubeconfig` (written into `dir`) whose server is this proxy; TLS still verifies the API server.
    pub fn kubeconfig(&self, kubeconfig: &Path, dir: &Path) -> PathBuf {
        let mut kc = Kubeconfig::read_from(kubeconfig).unwrap();
        for cluster in &mut kc.clusters {
            if let Some(c) = cluster.cluster.as_mut() {
                c.server = Some(format!("https://{}", self.addr));
            }
        }
        let path = dir.join("proxied.kubeconfig");
        std::fs::write(&path, serde_json::to_vec(&kc).unwrap()).unwrap();
        path
    }
}
