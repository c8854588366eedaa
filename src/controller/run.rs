//! The watches and the Controller: CertificatePushes (cached, without managedFields) and Secrets (metadata only,
//! mapped to the objects that reference them), in all namespaces or in each watched one, driven until shutdown.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::Notify;
use tracing::warn;

use super::{Context, error_policy, reconcile};
use crate::account::Accounts;
use crate::crd::{AccountKind, CertificatePush, ClusterSCMAccount, PUSH_REQUESTED_ANNOTATION, SCMAccount};
use crate::runtime::Runtime;

/// Runs the controller on `rt` until shutdown, then lets `rt` drain.
pub async fn run(rt: Runtime) {
    let Runtime {
        client,
        scm,
        concurrency,
        min_repush_interval,
        in_use_refresh,
        controller_name,
        cluster_name,
        metrics,
        events,
        leadership,
        became_leader,
        resync,
        scopes,
        secret_scopes,
        secret_namespaces,
        cluster_accounts,
        cluster_resource_namespace,
        allow_insecure_endpoint,
        store: (store, mut writer),
        shutdown,
        drain,
        ..
    } = rt;
    let (account_store, mut account_writer) = reflector::store::<SCMAccount>();
    let (cluster_store, cluster_writer) = reflector::store::<ClusterSCMAccount>();
    let accounts = Accounts::new(
        account_store.clone(),
        cluster_store.clone(),
        cluster_resource_namespace.clone(),
        scm.clone(),
        allow_insecure_endpoint,
    )
    .reading_secrets_in(secret_namespaces);
    // Nothing is decided on an account's absence before each account watch has listed once.
    let mut lists = accounts.expect_lists(scopes.len() + usize::from(cluster_accounts.is_some()));
    let ctx = Arc::new(
        Context::new(client, scm, events, metrics, leadership)
            .with_accounts(accounts)
            .with_min_repush_interval(min_repush_interval)
            .with_in_use_refresh(in_use_refresh)
            .with_controller_name(&controller_name)
            .with_cluster_name(cluster_name),
    );
    // Any change of an account, a Secret or a CertificatePush may change an account's status.
    let account_changed = Arc::new(Notify::new());
    let (forgetting, leading) = (ctx.clone(), ctx.clone());
    // No per-stream backoff: the controller backs off its merged trigger stream on any watch error (kube's
    // DefaultBackoff, 0.8 s doubling to 30 s), and a second backoff here would only slow recovery.
    let mut push_watches = Vec::new();
    let mut secret_watches = Vec::new();
    let mut account_watches = Vec::new();
    for scope in scopes {
        let health = scope.account_health.clone();
        let mut first_list = lists.pop().expect("one per watch");
        // as_deltas hands each listed account to the cache as it passes, so at InitDone all are in it.
        let listed = watcher::watcher(scope.accounts.clone(), watcher::Config::default()).inspect(move |event| {
            health.observe(event);
            if let Ok(Event::InitDone) = event {
                first_list.listed();
            }
        });
        account_watches.push(as_deltas(listed, scope.namespace.clone(), account_store.clone()).boxed());
        let (health, ctx, cache) = (scope.push_health, ctx.clone(), store.clone());
        let listed = watcher::watcher(scope.pushes, watcher::Config::default())
            .modify(slim)
            .inspect(move |event| {
                health.observe(event);
                // An object re-created under its name while the watch was down is replaced in the cache by now.
                if let Ok(Event::InitDone) = event {
                    ctx.forget_all_but(&cache);
                }
            });
        push_watches.push(as_deltas(listed, scope.namespace, store.clone()).boxed());
    }
    for scope in secret_scopes {
        let health = scope.health;
        let noted = account_changed.clone();
        let secrets = watcher::watcher(scope.secrets, watcher::Config::default())
            .inspect(move |event| {
                health.observe(event);
                noted.notify_one();
            })
            .touched_objects();
        secret_watches.push(secrets.boxed());
    }
    // The controller holds reconciles until the cache's writer has seen a complete list, and no complete list reaches
    // it (as_deltas turns each into Apply and Delete events): an empty one says the cache is usable from the start.
    // Every object is then reconciled when its own list event applies it, so none is decided from a partial cache.
    writer.apply_watcher_event(&Event::Init);
    writer.apply_watcher_event(&Event::InitDone);
    account_writer.apply_watcher_event(&Event::Init);
    account_writer.apply_watcher_event(&Event::InitDone);
    let noted = account_changed.clone();
    let account_trigger = reflector::reflector(account_writer, futures::stream::select_all(account_watches))
        .inspect(move |_| noted.notify_one())
        .touched_objects();
    let noted = account_changed.clone();
    let cluster_trigger = match cluster_accounts {
        Some((api, health)) => {
            let mut first_list = lists.pop().expect("one per watch");
            let watch = watcher::watcher(api, watcher::Config::default()).inspect(move |event| health.observe(event));
            reflector::reflector(cluster_writer, watch)
                // After the reflector: it swaps in the whole list at InitDone.
                .inspect(move |event| {
                    if let Ok(Event::InitDone) = event {
                        first_list.listed();
                    }
                })
                .inspect(move |_| noted.notify_one())
                .touched_objects()
                .boxed()
        }
        None => futures::stream::empty().boxed(),
    };
    let noted = account_changed.clone();
    let trigger = reflector::reflector(writer, futures::stream::select_all(push_watches))
        .inspect(move |event| {
            if let Ok(Event::Delete(cp)) = event {
                forgetting.forget(cp);
            }
            noted.notify_one();
        })
        .applied_objects();
    tokio::spawn(super::accounts::keep_status(
        ctx.clone(),
        account_store.clone(),
        cluster_store.clone(),
        store.clone(),
        account_changed,
    ));
    let (by_account, by_cluster_account) = (store.clone(), store.clone());
    let (accounts_of_secret, cluster_accounts_of_secret) = (account_store, cluster_store);
    let secret_trigger = futures::stream::select_all(secret_watches);
    // Readiness follows the watch streams themselves. Store::wait_until_ready cannot be used here: its
    // oneshot keeps one waker, so a second waiter can leave the controller itself waiting.
    let controller = Controller::for_stream(trigger, store.clone())
        .watches_stream(secret_trigger, move |secret: PartialObjectMeta<Secret>| {
            let state = store.state();
            let pushes = || state.iter().map(|cp| cp.as_ref());
            let (ns, name) = (secret.metadata.namespace.as_deref(), secret.name_any());
            // Its own referrers, and those of each account whose credentials it holds.
            let accounts = accounts_of_secret
                .state()
                .into_iter()
                .filter(|a| a.namespace().as_deref() == ns && a.spec.account.credentials_ref.name == name)
                .map(|a| (AccountKind::Namespaced, a.name_any()));
            let cluster = cluster_accounts_of_secret
                .state()
                .into_iter()
                .filter(|_| ns == Some(cluster_resource_namespace.as_str()))
                .filter(|a| a.spec.account.credentials_ref.name == name)
                .map(|a| (AccountKind::Cluster, a.name_any()));
            let mut found = referrers(pushes(), ns, &name);
            for (kind, account) in accounts.chain(cluster) {
                found.extend(account_referrers(pushes(), kind, ns, &account));
            }
            found
        })
        .watches_stream(account_trigger, move |account: SCMAccount| {
            let state = by_account.state();
            let ns = account.namespace();
            account_referrers(
                state.iter().map(|cp| cp.as_ref()),
                AccountKind::Namespaced,
                ns.as_deref(),
                &account.name_any(),
            )
        })
        .watches_stream(cluster_trigger, move |account: ClusterSCMAccount| {
            let state = by_cluster_account.state();
            account_referrers(
                state.iter().map(|cp| cp.as_ref()),
                AccountKind::Cluster,
                None,
                &account.name_any(),
            )
        })
        .with_config(controller::Config::default().concurrency(concurrency))
        // Only an opening of the fence drops what was kept; a resync decides from it like any reconcile.
        .reconcile_all_on(futures::stream::select(
            became_leader.inspect(move |()| leading.start_leading()),
            resync,
        ))
        // On SIGTERM: take no new work, let reconciles in flight (and their status writes) finish.
        .graceful_shutdown_on(shutdown.signaled())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            // Reconcile errors were already logged by error_policy; watch and queue errors are not logged elsewhere.
            if let Err(e) = result
                && !matches!(e, controller::Error::ReconcilerFailed(..))
            {
                warn!(error = %e, "controller error");
            }
        });
    drain.run(controller).await;
}

/// One scope's CertificatePush watch as Apply and Delete events only, so the watches of several namespaces can feed
/// one cache: the reflector replaces its whole store at the end of each re-list, which would drop every other
/// namespace's objects. Objects of `namespace` (or of all, for None) in `cache` that a re-list no longer holds were
/// deleted while the watch was down; they become Delete events at its end, after the listed ones were applied.
fn as_deltas<K, S, E>(watch: S, namespace: Option<String>, cache: Store<K>) -> impl Stream<Item = Result<Event<K>, E>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
    S: Stream<Item = Result<Event<K>, E>>,
{
    let mut listed: HashSet<ObjectRef<K>> = HashSet::new();
    watch.flat_map(move |event| {
        let events = match event {
            Ok(Event::Init) => {
                listed.clear();
                Vec::new()
            }
            Ok(Event::InitApply(cp)) => {
                listed.insert(ObjectRef::from(&cp));
                vec![Ok(Event::Apply(cp))]
            }
            Ok(Event::InitDone) => {
                let mut gone: Vec<_> = cache
                    .state()
                    .into_iter()
                    .filter(|cp| namespace.is_none() || cp.namespace() == namespace)
                    .filter(|cp| !listed.contains(&ObjectRef::from(cp.as_ref())))
                    .collect();
                // In a stable order (the cache's is a hash's), for the log and the tests.
                gone.sort_by_key(|cp| (cp.namespace(), cp.name_any()));
                listed = HashSet::new();
                gone.into_iter()
                    .map(|cp| Ok(Event::Delete(cp.as_ref().clone())))
                    .collect()
            }
            other => vec![other],
        };
        futures::stream::iter(events)
    })
}

/// Keeps in the cache only what the operator reads: managedFields are most of an object's size (about half the
/// operator's memory at 5,000 objects), and labels and annotations (a kubectl last-applied copy, or anything a
/// tenant writes there) are never read, except the re-push annotation.
fn slim(cp: &mut CertificatePush) {
    cp.managed_fields_mut().clear();
    cp.labels_mut().clear();
    cp.annotations_mut().retain(|key, _| key == PUSH_REQUESTED_ANNOTATION);
}

/// The CertificatePushes in `candidates` that push with the account of `kind` named `name` (a namespaced one in
/// `namespace`).
pub fn account_referrers<'a>(
    candidates: impl IntoIterator<Item = &'a CertificatePush>,
    kind: AccountKind,
    namespace: Option<&str>,
    name: &str,
) -> Vec<ObjectRef<CertificatePush>> {
    candidates
        .into_iter()
        .filter(|cp| {
            let named = cp
                .spec
                .account_ref
                .as_ref()
                .is_some_and(|r| r.kind == kind && r.name == name);
            named && (kind == AccountKind::Cluster || cp.namespace().as_deref() == namespace)
        })
        .map(ObjectRef::from)
        .collect()
}

/// The CertificatePushes in `candidates` that reference the Secret `secret_name` in `secret_ns`, as credentials or
/// as the source of the certificate.
pub fn referrers<'a>(
    candidates: impl IntoIterator<Item = &'a CertificatePush>,
    secret_ns: Option<&str>,
    secret_name: &str,
) -> Vec<ObjectRef<CertificatePush>> {
    candidates
        .into_iter()
        .filter(|cp| {
            let spec = &cp.spec;
            let names_it = spec.credentials_ref.as_ref().is_some_and(|r| r.name == secret_name)
                || spec.source_secret_ref.as_ref().is_some_and(|s| s.name == secret_name);
            cp.namespace().as_deref() == secret_ns && names_it
        })
        .map(ObjectRef::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tests::cp;

    #[test]
    fn the_cache_keeps_only_the_re_push_annotation() {
        let mut one = cp("a", "one", "scm");
        one.labels_mut().insert("team".into(), "x".repeat(1000));
        let annotations = one.annotations_mut();
        annotations.insert(
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            "{}".repeat(10_000),
        );
        annotations.insert(PUSH_REQUESTED_ANNOTATION.into(), "2026-12-06".into());
        slim(&mut one);
        assert!(one.labels().is_empty());
        assert_eq!(
            one.annotations().keys().collect::<Vec<_>>(),
            [PUSH_REQUESTED_ANNOTATION]
        );
        assert_eq!(one.push_request(), Some("2026-12-06"));
    }

    /// What `as_deltas` makes of `events` from the watch of `namespace` over a cache holding `cached`.
    fn deltas(cached: &[CertificatePush], namespace: Option<&str>, events: Vec<Event<CertificatePush>>) -> Vec<String> {
        let (cache, mut writer) = reflector::store();
        for cp in cached {
            writer.apply_watcher_event(&Event::Apply(cp.clone()));
        }
        let watch = futures::stream::iter(events.into_iter().map(Ok::<_, ()>));
        let out =
            futures::executor::block_on(as_deltas(watch, namespace.map(str::to_owned), cache).collect::<Vec<_>>());
        out.into_iter()
            .map(|event| match event.unwrap() {
                Event::Apply(cp) => format!("apply {}/{}", cp.namespace().unwrap(), cp.name_any()),
                Event::Delete(cp) => format!("delete {}/{}", cp.namespace().unwrap(), cp.name_any()),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_relist_of_one_namespace_deletes_only_its_own_missing_objects() {
        let cached = [cp("a", "kept", "s"), cp("a", "gone", "s"), cp("b", "other", "s")];
        let relist = vec![
            Event::Init,
            Event::InitApply(cp("a", "kept", "s")),
            Event::InitApply(cp("a", "new", "s")),
            Event::InitDone,
        ];
        // Without the conversion, the reflector would keep namespace a's two listed objects and drop b/other.
        assert_eq!(
            deltas(&cached, Some("a"), relist.clone()),
            ["apply a/kept", "apply a/new", "delete a/gone"]
        );
        // Watching all namespaces, a relist holds every object there is.
        assert_eq!(
            deltas(&cached, None, relist),
            ["apply a/kept", "apply a/new", "delete a/gone", "delete b/other"]
        );
        // Watch events pass as they are; a later relist starts from nothing seen. (Nothing applies the deltas to the
        // cache here, so a/gone is still in it.)
        let events = vec![
            Event::Apply(cp("a", "x", "s")),
            Event::Delete(cp("a", "gone", "s")),
            Event::Init,
            Event::InitDone,
        ];
        assert_eq!(
            deltas(&cached[..2], Some("a"), events),
            ["apply a/x", "delete a/gone", "delete a/gone", "delete a/kept"]
        );
    }

    #[test]
    fn secret_maps_only_to_referrers_in_its_namespace() {
        let all = [
            cp("a", "one", "scm"),
            cp("a", "two", "other"),
            cp("b", "three", "scm"),
            cp("a", "four", "scm"),
        ];
        let names: Vec<String> = referrers(&all, Some("a"), "scm").into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["one", "four"]);
        assert!(referrers(&all, Some("c"), "scm").is_empty());
    }
}
