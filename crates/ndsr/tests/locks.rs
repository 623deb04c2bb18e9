//! Scenarios 23-24 and lock failure cases.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ndsr::{Error, Registry};
use ndsr_testkit::{eventually, unique_path, FaultProxy, ZkServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s23_a_held_lock_blocks_a_second_holder_and_two_may_share_a_lock_of_two() {
    let server = ZkServer::shared();
    let a = registry(&server.connect_string()).await;
    let b = registry(&server.connect_string()).await;
    let path = unique_path("s23");

    let held = a.lock(&path).name("a").try_acquire().await.unwrap();
    assert!(matches!(b.lock(&path).name("b").try_acquire().await, Err(Error::LockTimeout { .. })));
    let zk = other(&server.connect_string()).await;
    let holders = zk.list_children(&path).await.unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!(
        zk.get_data(&format!("{path}/{}", holders[0])).await.unwrap().0,
        b"a",
        "holder node holds the name"
    );
    assert_eq!(zk.get_data(&path).await.unwrap().0, b"1", "lease count as kazoo stores it");
    held.release().await.unwrap();
    assert!(zk.list_children(&path).await.unwrap().is_empty());

    let two = unique_path("s23-two");
    let first = a.lock(&two).simultaneous(2).try_acquire().await.unwrap();
    let second = b.lock(&two).simultaneous(2).try_acquire().await.unwrap();
    let c = registry(&server.connect_string()).await;
    assert!(matches!(c.lock(&two).simultaneous(2).try_acquire().await, Err(Error::LockTimeout { .. })));
    assert!(!first.is_lost() && !second.is_lost());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s24_waits_time_out_and_a_lock_freed_during_the_wait_is_acquired() {
    let server = ZkServer::shared();
    let a = registry(&server.connect_string()).await;
    let b = registry(&server.connect_string()).await;
    let path = unique_path("s24");
    let held = a.lock(&path).try_acquire().await.unwrap();

    let started = Instant::now();
    match b.lock(&path).wait(Duration::from_secs(2)).acquire().await {
        Err(Error::LockTimeout { waited, .. }) => assert_eq!(waited, Duration::from_secs(2)),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(2), "waited the full 2 s before giving up");

    let waiter = {
        let b = b.clone();
        let path = path.clone();
        tokio::spawn(
            async move { b.lock(&path).name("waiter").wait(Duration::from_secs(30)).acquire().await },
        )
    };
    // Release once the waiter is queued (its contender node exists).
    let zk = other(&server.connect_string()).await;
    let queue = format!("{path}-__lock__");
    eventually(WAIT, "the waiter is queued", || async {
        zk.list_children(&queue).await.is_ok_and(|c| !c.is_empty())
    })
    .await
    .unwrap();
    held.release().await.unwrap();
    let got = tokio::time::timeout(WAIT, waiter).await.expect("waiter wakes").unwrap();
    assert!(got.is_ok(), "the original never gets a lock freed during the wait; ndsr does: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_holders_readonly_and_bad_arguments_are_clear_errors() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let path = unique_path("mismatch");
    let _one = r.lock(&path).simultaneous(1).try_acquire().await.unwrap();
    match r.lock(&path).simultaneous(3).try_acquire().await {
        Err(Error::LockMismatch { stored: 1, requested: 3, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(r.lock(&path).simultaneous(0).try_acquire().await, Err(Error::InvalidArgument(_))));
    assert!(matches!(r.lock("no-slash").try_acquire().await, Err(Error::InvalidPath { .. })));
    let ro = Registry::builder(&server.connect_string()).readonly(true).build().await.unwrap();
    assert!(matches!(ro.lock(&unique_path("ro")).try_acquire().await, Err(Error::ReadOnly(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_lost_with_its_session_and_dropping_a_guard_releases_it() {
    let server = ZkServer::new().unwrap();
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let r = registry(&proxy.connect_string()).await;
    let path = unique_path("lost");
    let guard = r.lock(&path).try_acquire().await.unwrap();
    assert!(!guard.is_lost());

    let session = r.session().unwrap();
    proxy.cut();
    server.expire_session(&session).await.unwrap();
    proxy.heal();
    tokio::time::timeout(WAIT, guard.lost()).await.expect("the guard says the lock is lost");
    assert!(guard.is_lost());
    drop(guard);

    // Another holder can take it; dropping its guard frees it again.
    let other_registry = registry(&server.connect_string()).await;
    let second = other_registry.lock(&path).wait(Duration::from_secs(20)).acquire().await.unwrap();
    drop(second);
    eventually(WAIT, "a dropped guard frees the lock", || async {
        other_registry.lock(&path).try_acquire().await.is_ok()
    })
    .await
    .unwrap();
}
