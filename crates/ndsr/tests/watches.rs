//! Scenarios 12-17: watches, callbacks and subscriptions.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use ndsr::Snapshot;
use ndsr_testkit::{eventually, unique_path, ZkServer};
use serde_json::json;
use zookeeper_client::CreateMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_a_watch_on_an_existing_path_sees_a_new_child() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("s12");
    create(&zk, &path, b"", CreateMode::Persistent).await;
    assert!(r.get(&path).await.unwrap().children.is_empty());

    create(&zk, &format!("{path}/host:80"), b"", CreateMode::Ephemeral).await;

    until_cached(&r, &path, "the new child", |s| s.children == ["host:80"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_a_watch_on_a_missing_path_sees_creation_and_nested_children() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("s13");
    let first = r.get(&path).await.unwrap();
    assert!(first.data.is_none() && first.stat.is_none() && first.children.is_empty());

    create(&zk, &path, b"not json", CreateMode::Persistent).await;
    until_cached(&r, &path, "creation with string_value", |s| {
        s.data.as_ref().is_some_and(|d| d.get("string_value") == Some(&json!("not json")))
    })
    .await;

    // A child created together with its parents, under a missing path.
    let deep = unique_path("s13-deep");
    r.get(&deep).await.unwrap();
    create(&zk, &format!("{deep}/child"), b"", CreateMode::Persistent).await;
    until_cached(&r, &deep, "parent and child", |s| s.exists() && s.children == ["child"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s14_one_callback_call_per_change_and_none_for_no_change() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("s14");
    create(&zk, &path, b"0", CreateMode::Persistent).await;
    let (seen, count) = recorder(&r, &path);
    until_count(&count, 1).await;

    create(&zk, &format!("{path}/child"), b"", CreateMode::Ephemeral).await;
    until_count(&count, 2).await;
    for i in 1..=4 {
        zk.set_data(&path, format!("v{i}").as_bytes(), None).await.unwrap();
        until_count(&count, 2 + i).await;
    }

    // An unchanged snapshot gives no call: a re-read after a forced resync
    // (the same data written by R's data-node path does not write at all).
    r.set_data(&path, "v4").await.unwrap();
    let other_path = unique_path("s14-barrier");
    let (_, barrier) = recorder(&r, &other_path);
    until_count(&barrier, 1).await; // later work has been processed
    assert_eq!(count.load(Ordering::SeqCst), 6, "first call + 1 child + 4 data changes");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[1].children, ["child"]);
    assert_eq!(seen[5].data.as_ref().unwrap()["string_value"], "v4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s15_deleting_the_node_then_recreating_it_with_a_child_is_seen() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("s15");
    create(&zk, &path, b"x", CreateMode::Persistent).await;
    create(&zk, &format!("{path}/a"), b"", CreateMode::Persistent).await;
    until_cached(&r, &path, "initial child", |s| s.children == ["a"]).await;

    zk.delete(&format!("{path}/a"), None).await.unwrap();
    zk.delete(&path, None).await.unwrap();
    until_cached(&r, &path, "deleted: no data, no stat, no children", |s| {
        s.data.is_none() && s.stat.is_none() && s.children.is_empty()
    })
    .await;

    create(&zk, &path, b"y", CreateMode::Persistent).await;
    create(&zk, &format!("{path}/b"), b"", CreateMode::Persistent).await;
    until_cached(&r, &path, "re-created with a child (the original misses this)", |s| {
        s.exists() && s.children == ["b"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s16_a_failing_callback_does_not_stop_the_others() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("s16");
    create(&zk, &path, b"", CreateMode::Persistent).await;

    r.add_callback(&path, |_| panic!("a callback that panics")).unwrap();
    r.add_fallible_callback(&path, |_: &Snapshot| Err::<(), _>("a callback that errors")).unwrap();
    let (_, count) = recorder(&r, &path);
    until_count(&count, 1).await;

    create(&zk, &format!("{path}/c1"), b"", CreateMode::Persistent).await;
    until_count(&count, 2).await;
    create(&zk, &format!("{path}/c2"), b"", CreateMode::Persistent).await;
    until_count(&count, 3).await;
    r.set_node(&format!("{path}/mine"), "ok").await.expect("the registry still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s17_watches_stop_callbacks_are_removed_and_reads_do_not_watch() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("s17");
    create(&zk, &path, b"", CreateMode::Persistent).await;

    // A removed callback is not called again.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let id = r
        .add_callback(&path, move |_: &Snapshot| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    until_count(&calls, 1).await;
    assert!(r.remove_callback(id));
    assert!(!r.remove_callback(id));
    let (_, still) = recorder(&r, &path);
    until_count(&still, 1).await;
    create(&zk, &format!("{path}/x"), b"", CreateMode::Persistent).await;
    until_count(&still, 2).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "removed callback not called");

    // A stopped watch ends its subscriptions.
    let mut sub = r.subscribe(&path).unwrap();
    assert!(sub.next().await.is_some());
    r.unwatch(&path).unwrap();
    let ended = tokio::time::timeout(WAIT, sub.next()).await.expect("subscription ends");
    assert!(ended.is_none());

    // A read does not start a watch: its later changes are not cached.
    let unwatched = unique_path("s17-read");
    create(&zk, &unwatched, b"r", CreateMode::Persistent).await;
    let read = r.read(&unwatched).await.unwrap();
    assert_eq!(read.data.as_ref().unwrap()["string_value"], "r");
    let mut watched_later = r.subscribe(&unwatched).unwrap();
    let snap = watched_later.next().await.unwrap();
    assert_eq!(snap.data.as_ref().unwrap()["string_value"], "r");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_get_never_touches_the_network() {
    let server = ZkServer::shared();
    let proxy = ndsr_testkit::FaultProxy::start(&server.connect_string()).unwrap();
    let r = registry(&proxy.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("cached");
    create(&zk, &path, b"", CreateMode::Persistent).await;
    r.get(&path).await.unwrap();
    eventually(WAIT, "quiet connection", || async {
        let before = proxy.bytes_to_server();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        proxy.bytes_to_server() == before
    })
    .await
    .unwrap();
    let before = (proxy.bytes_to_server(), proxy.bytes_to_client());
    for _ in 0..1000 {
        r.get(&path).await.unwrap();
    }
    // Pings may pass meanwhile; 1,000 reads would be ~50 KB.
    assert!(proxy.bytes_to_server() - before.0 < 200, "cached gets sent requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_cached_answers_only_from_the_cache() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("get-cached");
    create(&zk, &path, b"{\"a\":1}", CreateMode::Persistent).await;
    // Not watched yet: no answer, and no watch started by asking.
    assert!(r.get_cached(&path).unwrap().is_none());
    assert!(r.get_cached(&path).unwrap().is_none());
    assert!(r.get_cached("no/leading/slash").is_err());

    let got = r.get(&path).await.unwrap();
    let cached = r.get_cached(&path).unwrap().expect("watched and read");
    assert_eq!(cached.data, got.data);
    zk.set_data(&path, b"{\"a\":2}", None).await.unwrap();
    until_cached(&r, &path, "the change", |s| s.data.as_ref().is_some_and(|d| d["a"] == 2)).await;
    assert_eq!(r.get_cached(&path).unwrap().unwrap().data.as_ref().unwrap()["a"], 2);

    r.close().await;
    assert!(matches!(r.get_cached(&path), Err(ndsr::Error::Closed)));
}
