//! Who may use a Secret: the shipped admission policy (deploy/manifests/admission-policy.yaml, which `install_once`
//! applies on 1.30+) refuses a CertificatePush naming a Secret its author may not `get`, and nothing else: edits that
//! keep the names, the operator's finalizer patch and deletes pass without `get`. Each user is impersonated, so the
//! API server's own authorizer answers for exactly that user's RBAC.

use std::time::Instant;

use certpush_operator::crd::{CLEANUP_FINALIZER, CertificatePush};
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::harness::*;

const POLICY: &str = "certpush-operator-secret-references";

/// A user who may create, update, patch and delete CertificatePushes in one namespace, and nothing else: not even
/// `get` on a Secret until [`Pusher::grant_get`].
struct Pusher {
    user: String,
    ns: String,
    api: Api<DynamicObject>,
    _dir: tempfile::TempDir,
}

impl Pusher {
    async fn new(ns: &str) -> Pusher {
        let user = format!("e2e-pusher-{ns}");
        let role = "certificatepush-editor";
        kubectl_ok(&[
            "-n",
            ns,
            "create",
            "role",
            role,
            "--verb=get,list,watch,create,update,patch,delete",
            "--resource=certificatepushes.scm.certpush.dev",
        ])
        .await;
        kubectl_ok(&[
            "-n",
            ns,
            "create",
            "rolebinding",
            role,
            &format!("--role={role}"),
            &format!("--user={user}"),
        ])
        .await;
        wait_can_i(&user, "create", "certificatepushes.scm.certpush.dev", ns).await;
        let dir = tempfile::tempdir().unwrap();
        let client = client_for(&impersonating_kubeconfig(&user, dir.path())).await;
        let ar = ApiResource::erase::<CertificatePush>(&());
        Pusher {
            api: Api::namespaced_with(client, ns, &ar),
            user,
            ns: ns.to_owned(),
            _dir: dir,
        }
    }

    /// Lets the user `get` the one Secret `name` (a Role with resourceNames: the policy's check is per name).
    async fn grant_get(&self, name: &str) {
        let role = format!("get-secret-{name}");
        let ns = self.ns.as_str();
        kubectl_ok(&[
            "-n",
            ns,
            "create",
            "role",
            &role,
            "--verb=get",
            "--resource=secrets",
            &format!("--resource-name={name}"),
        ])
        .await;
        kubectl_ok(&[
            "-n",
            ns,
            "create",
            "rolebinding",
            &role,
            &format!("--role={role}"),
            &format!("--user={}", self.user),
        ])
        .await;
        wait_can_i(&self.user, "get", &format!("secrets/{name}"), ns).await;
    }

    async fn create(&self, name: &str, spec: Value) -> kube::Result<DynamicObject> {
        self.api.create(&PostParams::default(), &push(name, spec)).await
    }

    async fn merge(&self, name: &str, patch: Value) -> kube::Result<DynamicObject> {
        self.api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
    }

    /// Waits until the policy refuses this user (a dry run naming a Secret they may not get): the API server loads a
    /// policy asynchronously after it is applied.
    async fn wait_for_policy(&self) {
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let deadline = Instant::now() + T;
        loop {
            let answer = self.api.create(&dry_run, &push("probe", by_id("probe-secret"))).await;
            if matches!(&answer, Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains(POLICY)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the admission policy {POLICY} never refused {} naming a Secret they may not get; last answer: {answer:?}",
                self.user
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

async fn kubectl_ok(args: &[&str]) {
    let (ok, out) = kubectl(args).await;
    assert!(ok, "kubectl {args:?}: {out}");
}

/// Waits until `user` may `verb` `resource` in `ns`: RBAC changes reach the authorizer's cache asynchronously.
async fn wait_can_i(user: &str, verb: &str, resource: &str, ns: &str) {
    let deadline = Instant::now() + T;
    loop {
        let (_, out) = kubectl(&["auth", "can-i", verb, resource, "--as", user, "-n", ns]).await;
        if out.trim() == "yes" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user} still may not {verb} {resource} in {ns}: {out}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn push(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "CertificatePush",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

/// A push of an SCM certificate with the credentials in Secret `credentials`.
fn by_id(credentials: &str) -> Value {
    json!({"certificateId": CERT, "targetService": "WAF", "targetProject": "cn-north-4",
           "credentialsRef": {"name": credentials}})
}

/// An import of TLS Secret `source` with the credentials in Secret `credentials`.
fn imported(credentials: &str, source: &str) -> Value {
    json!({"sourceSecretRef": {"name": source}, "targetService": "ELB", "targetProject": "ap-southeast-1",
           "credentialsRef": {"name": credentials}})
}

/// Asserts `answer` is the policy's refusal naming Secret `secret` of namespace `ns` in `spec.{field}`; returns the
/// message.
fn refused(answer: kube::Result<DynamicObject>, ns: &str, secret: &str, field: &str) -> String {
    match answer {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            for part in [
                POLICY,
                &format!("may not get Secret \"{secret}\" in namespace \"{ns}\""),
                &format!("spec.{field}"),
            ] {
                assert!(s.message.contains(part), "{part:?} not in {:?}", s.message);
            }
            s.message
        }
        other => panic!("naming Secret {secret:?} in spec.{field} was not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn a_user_who_may_not_get_a_secret_cannot_make_the_operator_use_it() {
    let client = admin().await;
    let ns = namespace(&client, "who-may").await;
    // The Secrets exist: the policy is about the right to read them, which their existence does not give.
    put_secret(&client, &ns, "scm", GOOD_TOKEN).await;
    put_secret_data(&client, &ns, "tls", &[("tls.crt", "-"), ("tls.key", "-")]).await;
    let pusher = Pusher::new(&ns).await;
    if !serves_admission_policies(&client).await {
        // 1.28 and 1.29: no policy, and as the README says, create on CertificatePush is use of every Secret.
        pusher
            .create("www", by_id("scm"))
            .await
            .expect("admitted where no policy can be installed");
        return;
    }
    pusher.wait_for_policy().await;

    refused(pusher.create("www", by_id("scm")).await, &ns, "scm", "credentialsRef");
    // `get` on that one Secret is enough, and is all that is checked.
    pusher.grant_get("scm").await;
    pusher
        .create("www", by_id("scm"))
        .await
        .expect("admitted once the user may get Secret scm");

    // The source TLS Secret is checked on its own: the user may get the credentials, not it.
    let message = refused(
        pusher.create("imported", imported("scm", "tls")).await,
        &ns,
        "tls",
        "sourceSecretRef",
    );
    assert!(!message.contains("Secret \"scm\""), "{message}");
    pusher.grant_get("tls").await;
    pusher
        .create("imported", imported("scm", "tls"))
        .await
        .expect("admitted once the user may get Secret tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn edits_that_keep_the_secret_names_need_no_get() {
    let client = admin().await;
    let ns = namespace(&client, "keep-names").await;
    let pusher = Pusher::new(&ns).await;
    if !serves_admission_policies(&client).await {
        return; // Nothing is refused there: the test above checks that.
    }
    pusher.wait_for_policy().await;
    // Written by someone who may get both Secrets (the admin), then edited by a user who may get neither.
    let admin_api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::erase::<CertificatePush>(&()));
    admin_api
        .create(&PostParams::default(), &push("www", imported("scm", "tls")))
        .await
        .expect("the admin may name any Secret");

    pusher
        .merge("www", json!({"metadata": {"labels": {"team": "web"}}}))
        .await
        .expect("a label edit is admitted");
    pusher
        .merge("www", json!({"spec": {"targetProject": "cn-north-4"}}))
        .await
        .expect("a spec edit that keeps the Secret names is admitted");
    // The operator's own finalizer patch (controller/cleanup.rs: a merge patch of metadata.finalizers with the
    // resourceVersion); the operator is not to need `get` on users' Secrets.
    let current = admin_api.get("www").await.unwrap();
    let finalizer = |finalizers: Vec<&str>, cp: &DynamicObject| json!({"metadata": {"finalizers": finalizers, "resourceVersion": cp.metadata.resource_version}});
    pusher
        .merge("www", finalizer(vec![CLEANUP_FINALIZER], &current))
        .await
        .expect("the finalizer patch is admitted");

    // A changed name is checked, in either field.
    refused(
        pusher
            .merge("www", json!({"spec": {"credentialsRef": {"name": "other"}}}))
            .await,
        &ns,
        "other",
        "credentialsRef",
    );
    refused(
        pusher
            .merge("www", json!({"spec": {"sourceSecretRef": {"name": "tls-2"}}}))
            .await,
        &ns,
        "tls-2",
        "sourceSecretRef",
    );
    // Dropping a reference names nothing new.
    pusher
        .merge("www", json!({"spec": {"sourceSecretRef": null, "certificateId": CERT}}))
        .await
        .expect("switching to certificateId is admitted");

    // Deleting is not matched; the operator then removes its finalizer from the terminating object.
    pusher
        .api
        .delete("www", &DeleteParams::default())
        .await
        .expect("delete is admitted");
    let terminating = admin_api.get("www").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some(), "{terminating:?}");
    pusher
        .merge("www", finalizer(vec![], &terminating))
        .await
        .expect("removing the finalizer is admitted");
    let deadline = Instant::now() + T;
    while admin_api.get_opt("www").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "www was not deleted once its finalizer was removed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// An SCMAccount naming a Secret its author may not get is refused like a CertificatePush; a CertificatePush that
/// pushes with an account names no Secret, so it needs no `get` at all (the account's owner vouched for the Secret).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane: run `make test`"]
async fn an_account_needs_get_on_its_secret_and_a_push_through_it_needs_none() {
    let client = admin().await;
    let ns = namespace(&client, "who-may-acct").await;
    put_secret(&client, &ns, "team-scm", GOOD_TOKEN).await;
    let pusher = Pusher::new(&ns).await;
    if !serves_admission_policies(&client).await {
        return;
    }
    pusher.wait_for_policy().await;
    kubectl_ok(&[
        "-n",
        &ns,
        "create",
        "role",
        "account-editor",
        "--verb=get,list,watch,create,update,patch,delete",
        "--resource=scmaccounts.scm.certpush.dev",
    ])
    .await;
    kubectl_ok(&[
        "-n",
        &ns,
        "create",
        "rolebinding",
        "account-editor",
        "--role=account-editor",
        &format!("--user={}", pusher.user),
    ])
    .await;
    wait_can_i(&pusher.user, "create", "scmaccounts.scm.certpush.dev", &ns).await;
    let dir = tempfile::tempdir().unwrap();
    let as_user = client_for(&impersonating_kubeconfig(&pusher.user, dir.path())).await;
    let accounts: Api<DynamicObject> = Api::namespaced_with(
        as_user,
        &ns,
        &ApiResource::erase::<certpush_operator::crd::SCMAccount>(&()),
    );
    let account: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "scm.certpush.dev/v1alpha1", "kind": "SCMAccount",
        "metadata": {"name": "team"},
        "spec": {"site": "ap-southeast-1", "credentialsRef": {"name": "team-scm"}},
    }))
    .unwrap();
    refused(
        accounts.create(&PostParams::default(), &account).await,
        &ns,
        "team-scm",
        "credentialsRef",
    );
    pusher.grant_get("team-scm").await;
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("admitted once the user may get Secret team-scm");

    // Moving an account its author may not read the Secret of to another host would send the Secret there.
    put_secret(&client, &ns, "platform-only", GOOD_TOKEN).await;
    let admins: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &ApiResource::erase::<certpush_operator::crd::SCMAccount>(&()),
    );
    let mut theirs = account.clone();
    theirs.metadata.name = Some("theirs".into());
    theirs.data["spec"]["credentialsRef"]["name"] = json!("platform-only");
    admins
        .create(&PostParams::default(), &theirs)
        .await
        .expect("an admin creates it");
    let moved = json!({"spec": {"site": null, "endpoint": "https://collector.example"}});
    refused(
        accounts
            .patch("theirs", &PatchParams::default(), &Patch::Merge(moved))
            .await,
        &ns,
        "platform-only",
        "credentialsRef",
    );
    accounts
        .patch(
            "theirs",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "x"}}})),
        )
        .await
        .expect("an edit that sends the Secret nowhere new is admitted");

    // Through the account: no Secret named, nothing to check.
    let through = json!({"certificateId": CERT, "targetService": "WAF", "targetProject": "cn-north-4",
                         "accountRef": {"kind": "ClusterSCMAccount", "name": "platform"}});
    pusher
        .create("through", through)
        .await
        .expect("a push through an account names no Secret");
}
