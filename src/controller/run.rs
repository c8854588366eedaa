//! The watches and the Controller: CertificatePushes (cached, without managedFields) and Secrets (metadata only,
//! mapped to the objects that reference them), driven until shutdown.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tracing::warn;

use super::{Context, error_policy, reconcile};
use crate::crd::{CertificatePush, PUSH_REQUESTED_ANNOTATION};
use crate::runtime::Runtime;

/// Runs the controller on `rt` until shutdown, then lets `rt` drain.
pub async fn run(rt: Runtime) {
    let (pushes, secrets) = rt.watched_apis();
    let Runtime {
        client,
        scm,
        concurrency,
        min_repush_interval,
        in_use_refresh,
        controller_name,
        metrics,
        events,
        leadership,
        became_leader,
        resync,
        watches,
        store: (store, writer),
        shutdown,
        drain,
        ..
    } = rt;
    let ctx = Arc::new(
        Context::new(client, scm, events, metrics, leadership)
            .with_min_repush_interval(min_repush_interval)
            .with_in_use_refresh(in_use_refresh)
            .with_controller_name(&controller_name),
    );
    let (forgetting, leading) = ((ctx.clone(), store.clone()), ctx.clone());
    // No per-stream backoff: the controller backs off its merged trigger stream on any watch error (kube's
    // DefaultBackoff, 0.8 s doubling to 30 s), and a second backoff here would only slow recovery.
    let watched = watcher::watcher(pushes, watcher::Config::default()).modify(slim);
    let push_watch = watches.pushes;
    let trigger = reflector::reflector(writer, watched)
        .inspect(move |event| {
            push_watch.observe(event);
            let (ctx, store) = &forgetting;
            match event {
                Ok(watcher::Event::Delete(cp)) => ctx.forget(cp),
                // After a re-list, objects deleted while the watch was down are simply absent.
                Ok(watcher::Event::InitDone) => ctx.forget_all_but(store),
                _ => {}
            }
        })
        .applied_objects();
    let secret_watch = watches.secrets;
    let secret_trigger = watcher::watcher(secrets, watcher::Config::default())
        .inspect(move |event| secret_watch.observe(event))
        .touched_objects();
    // Readiness follows the watch streams themselves. Store::wait_until_ready cannot be used here: its
    // oneshot keeps one waker, so a second waiter can leave the controller itself waiting.
    let controller = Controller::for_stream(trigger, store.clone())
        .watches_stream(secret_trigger, move |secret: PartialObjectMeta<Secret>| {
            let state = store.state();
            referrers(
                state.iter().map(|cp| cp.as_ref()),
                secret.metadata.namespace.as_deref(),
                &secret.name_any(),
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

/// Keeps in the cache only what the operator reads: managedFields are most of an object's size (about half the
/// operator's memory at 5,000 objects), and labels and annotations (a kubectl last-applied copy, or anything a
/// tenant writes there) are never read, except the re-push annotation.
fn slim(cp: &mut CertificatePush) {
    cp.managed_fields_mut().clear();
    cp.labels_mut().clear();
    cp.annotations_mut().retain(|key, _| key == PUSH_REQUESTED_ANNOTATION);
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
            let names_it = spec.credentials_ref.name == secret_name
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
