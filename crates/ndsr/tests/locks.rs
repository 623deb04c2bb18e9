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

/// Issue 22, defect 3: with the holder's link blackholed (packets dropped,
/// not refused), the guard reports the lock lost before the server expires
/// the session and a contender on a healthy link takes it: never two
/// holders. Before the fix the guard waited for the client to declare the
/// session expired (1.4 session timeouts), long after the contender held
/// the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_holder_loses_its_lock_before_anyone_else_can_take_it() {
    let server = ZkServer::new().unwrap();
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let holder = registry(&proxy.connect_string()).await;
    let contender = registry(&server.connect_string()).await;
    let path = unique_path("blackholed");
    let guard = holder.lock(&path).name("holder").try_acquire().await.unwrap();
    // The deadline moves forward while the server answers.
    let first = guard.session_deadline();
    eventually(WAIT, "the session deadline moves forward", || async { guard.session_deadline() > first })
        .await
        .unwrap();
    assert!(!guard.is_lost());

    proxy.blackhole();
    let waiting = {
        let contender = contender.clone();
        let path = path.clone();
        tokio::spawn(async move {
            let held = contender.lock(&path).name("contender").wait(Duration::from_secs(60)).acquire().await;
            (Instant::now(), held)
        })
    };
    tokio::time::timeout(WAIT, guard.lost()).await.expect("the guard says the lock is lost");
    let lost_at = Instant::now();
    assert!(matches!(guard.lost_reason(), Some(ndsr::LockLost::Silent(_))), "{:?}", guard.lost_reason());
    let deadline = guard.session_deadline();
    assert!(deadline > lost_at, "lost before the session could expire");
    let (acquired_at, held) = waiting.await.unwrap();
    let _second = held.expect("the contender gets the lock once the holder's session expires");
    assert!(lost_at < acquired_at, "the holder knew it had lost the lock before the contender held it");
    assert!(deadline <= acquired_at, "nobody else held the lock before the session deadline");
    assert!(guard.is_lost(), "a lost lock stays lost");
    proxy.heal();
    drop(guard);
    holder.close().await;
}

/// A lock lost for silence stays lost when the link comes back within the
/// session timeout (the session lives on), and releasing it then frees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_lost_for_silence_stays_lost_when_the_link_returns_and_its_release_frees_it() {
    let server = ZkServer::new().unwrap();
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let holder = registry(&proxy.connect_string()).await;
    let path = unique_path("silent");
    let guard = holder.lock(&path).lost_after(0.25).try_acquire().await.unwrap();
    let session = holder.session().unwrap();

    proxy.blackhole();
    tokio::time::timeout(WAIT, guard.lost()).await.expect("lost after a quarter of the session timeout");
    proxy.heal();
    eventually(WAIT, "the same session is connected again", || async {
        holder.state() == ndsr::State::Connected && holder.session().map(|s| s.id()) == Some(session.id())
    })
    .await
    .unwrap();
    assert!(guard.is_lost(), "a lost lock stays lost");
    assert!(matches!(guard.lost_reason(), Some(ndsr::LockLost::Silent(_))));
    guard.release().await.unwrap();
    let other = registry(&server.connect_string()).await;
    other.lock(&path).try_acquire().await.expect("the released lock is free").release().await.unwrap();
    for bad in [0.0, -1.0, 1.5, f64::NAN] {
        assert!(matches!(
            holder.lock(&unique_path("bad")).lost_after(bad).try_acquire().await,
            Err(Error::InvalidArgument(_))
        ));
    }
}
