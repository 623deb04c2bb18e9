//! The watch table: wanted paths share watches where they can, keep
//! receiving their events through reconnects and expiries, and give their
//! watches back when nothing wants them. What the server holds is read with
//! the `wchc` four-letter word (watches by session).

mod common;

use std::collections::BTreeSet;

use common::*;
use ndsr::{Data, Registry};
use ndsr_testkit::{eventually, four_letter_word, unique_path, ZkServer};
use zookeeper_client::CreateMode;

/// The paths the server holds a watch on for `registry`'s session.
fn server_watches(server: &ZkServer, registry: &Registry) -> BTreeSet<String> {
    let Some(session) = registry.session() else { return BTreeSet::new() };
    let dump = four_letter_word(&format!("127.0.0.1:{}", server.port()), "wchc").unwrap_or_default();
    let ours = format!("{:#x}", session.id().0);
    let mut watches = BTreeSet::new();
    let mut in_ours = false;
    for line in dump.lines() {
        if let Some(path) = line.strip_prefix('\t') {
            if in_ours {
                watches.insert(path.to_string());
            }
        } else {
            in_ours = line.trim() == ours;
        }
    }
    watches
}

async fn until_watches(server: &ZkServer, registry: &Registry, what: &str, expected: &BTreeSet<String>) {
    let waited = eventually(WAIT, what, || async { &server_watches(server, registry) == expected }).await;
    assert!(
        waited.is_ok(),
        "{what}: the server holds {:?}, expected {expected:?}",
        server_watches(server, registry)
    );
}

fn set(paths: impl IntoIterator<Item = impl Into<String>>) -> BTreeSet<String> {
    paths.into_iter().map(Into::into).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siblings_share_their_parents_watch_through_reconnects_and_expiry() {
    let server = ZkServer::new().unwrap();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let base = unique_path("shared");
    let paths: Vec<String> = (0..20).map(|i| format!("{base}/p{i:02}")).collect();
    for path in &paths {
        r.get(path).await.unwrap();
    }
    // The first seven watch themselves; from the eighth on they share one
    // watch on their parent.
    let mut expected = set(paths[..7].iter().cloned());
    expected.insert(base.clone());
    until_watches(&server, &r, "7 own watches and the parent's", &expected).await;

    // Each path still sees its own creation, data and children, and only
    // its own.
    create(&zk, &paths[15], b"{\"v\":1}", CreateMode::Persistent).await;
    create(&zk, &format!("{}/child", paths[15]), b"", CreateMode::Ephemeral).await;
    until_cached(&r, &paths[15], "creation and child", |s| s.exists() && s.children == ["child"]).await;
    assert!(!r.get(&paths[14]).await.unwrap().exists(), "a sibling's event is not ours");

    // A server restart: every watch is added again, and what changed while
    // the registry was away is seen.
    server.restart().unwrap();
    until_watches(&server, &r, "the watches after a restart", &expected).await;
    zk.delete(&format!("{}/child", paths[15]), None).await.ok();
    create(&zk, &paths[19], b"", CreateMode::Persistent).await;
    until_cached(&r, &paths[19], "a creation after the restart", |s| s.exists()).await;
    until_cached(&r, &paths[15], "a deletion after the restart", |s| s.children.is_empty()).await;

    // An expiry: a new session, the same watches.
    let old = r.session().unwrap();
    server.expire_session(&old).await.unwrap();
    eventually(WAIT, "a new session", || async { r.session().is_some_and(|s| s.id() != old.id()) })
        .await
        .unwrap();
    // The new session restores them all at once: they share the parent's
    // watch at least as much as before.
    let shared = |watches: &BTreeSet<String>| {
        let own = watches.iter().filter(|w| paths.contains(w)).count();
        watches.contains(&base) && own <= 7 && own + 1 == watches.len()
    };
    let waited =
        eventually(WAIT, "the watches after an expiry", || async { shared(&server_watches(&server, &r)) });
    assert!(waited.await.is_ok(), "after an expiry the server holds {:?}", server_watches(&server, &r));
    zk.set_data(&paths[15], b"{\"v\":2}", None).await.unwrap();
    until_cached(&r, &paths[15], "a data change after the expiry", |s| {
        s.data.as_ref().and_then(|d| d.get("v")).is_some_and(|v| v == 2)
    })
    .await;

    // Unwatching gives every watch back, the shared one with its last path.
    for path in &paths[..19] {
        r.unwatch(path).unwrap();
    }
    until_watches(&server, &r, "the parent's watch while a path uses it", &set([base.clone()])).await;
    r.unwatch(&paths[19]).unwrap();
    until_watches(&server, &r, "no watch once nothing is wanted", &BTreeSet::new()).await;
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_registrant_watches_only_its_own_node() {
    let server = ZkServer::new().unwrap();
    let zk = other(&server.connect_string()).await;
    let base = unique_path("members");
    for i in 0..50 {
        create(&zk, &format!("{base}/m{i:02}"), b"", CreateMode::Persistent).await;
    }
    let r = registry(&server.connect_string()).await;
    let me = format!("{base}/me");
    r.set_node(&me, Data::None).await.unwrap();
    until_watches(&server, &r, "one watch, on its own node", &set([me.clone()])).await;
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_under_a_watched_service_needs_no_watch_of_its_own() {
    let server = ZkServer::new().unwrap();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let service = unique_path("service");
    create(&zk, &service, b"", CreateMode::Persistent).await;
    r.get(&service).await.unwrap();
    let me = format!("{service}/me");
    r.set_node(&me, Data::None).await.unwrap();
    until_cached(&r, &service, "our own member", |s| s.children == ["me"]).await;
    until_watches(&server, &r, "only the service's watch", &set([service.clone()])).await;

    // The registration is still enforced through the service's watch.
    zk.delete(&me, None).await.unwrap();
    eventually(WAIT, "the registration restored", || async { exists(&zk, &me).await.is_some() })
        .await
        .unwrap();
    r.close().await;
}
