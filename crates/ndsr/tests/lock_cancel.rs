//! Issue 22, defect 9 (its Rust half): a lock acquire that is cancelled
//! (its future dropped, as the Python module does on Ctrl-C) withdraws its
//! request instead of leaving its contender node until the session ends.

mod common;

use std::time::Duration;

use common::*;
use ndsr_testkit::{eventually, unique_path, ZkServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_acquire_leaves_no_contender_node_behind() {
    let server = ZkServer::shared();
    let holder = registry(&server.connect_string()).await;
    let waiter = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("cancelled-acquire");
    let queue = format!("{path}-__lock__");
    let held = holder.lock(&path).name("holder").try_acquire().await.unwrap();

    let waiting = {
        let (waiter, path) = (waiter.clone(), path.clone());
        tokio::spawn(async move {
            waiter.lock(&path).name("waiter").wait(Duration::from_secs(60)).acquire().await
        })
    };
    eventually(WAIT, "the waiter's contender node is in the queue", || async {
        zk.list_children(&queue).await.is_ok_and(|c| c.len() == 1)
    })
    .await
    .unwrap();

    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    eventually(WAIT, "the cancelled acquire's contender node is deleted (its session lives on)", || async {
        zk.list_children(&queue).await.is_ok_and(|c| c.is_empty())
    })
    .await
    .unwrap();
    assert_eq!(zk.list_children(&path).await.unwrap().len(), 1, "only the holder's node");
    assert_eq!(waiter.state(), ndsr::State::Connected, "withdrawn by the live session, not by its end");

    held.release().await.unwrap();
    waiter
        .lock(&path)
        .try_acquire()
        .await
        .expect("nothing of the cancelled call blocks the lock")
        .release()
        .await
        .unwrap();
}

/// A failed acquire withdraws what it made too: a create whose answer came
/// too late (the operation timed out) was still applied by the server, and
/// its contender node would block every later contender until the session
/// ends (review of issue 22).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_acquire_leaves_no_contender_node_behind() {
    let server = ZkServer::new().unwrap();
    let proxy = ndsr_testkit::FaultProxy::start(&server.connect_string()).unwrap();
    let slow = ndsr::Registry::builder(&proxy.connect_string())
        .session_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let zk = other(&server.connect_string()).await;
    let path = unique_path("failed-acquire");
    let queue = format!("{path}-__lock__");
    // The lock node and its queue exist: an acquire sends a read of the
    // lock node, then the contender's create.
    slow.lock(&path).try_acquire().await.unwrap().release().await.unwrap();
    eventually(WAIT, "the queue is empty", || async {
        zk.list_children(&queue).await.is_ok_and(|c| c.is_empty())
    })
    .await
    .unwrap();

    // The read is answered at once; the create reaches the server after
    // the acquire gave up on it.
    proxy.delay_to_server_after(proxy.chunks_to_server() + 1, Duration::from_millis(1500));
    let failed = slow.lock(&path).try_acquire().await;
    assert!(failed.is_err(), "the acquire fails: {failed:?}");
    eventually(WAIT, "the server applied the timed-out create", || async {
        zk.list_children(&queue).await.is_ok_and(|c| !c.is_empty())
    })
    .await
    .unwrap();
    // The link is quick again (the withdrawal's first calls may have
    // timed out too: it tries again).
    proxy.delay_to_server_after(0, Duration::ZERO);
    eventually(WAIT, "the failed acquire's contender node is deleted (its session lives on)", || async {
        zk.list_children(&queue).await.is_ok_and(|c| c.is_empty())
            && zk.list_children(&path).await.is_ok_and(|c| c.is_empty())
    })
    .await
    .unwrap();
    assert_eq!(slow.state(), ndsr::State::Connected, "withdrawn by the live session, not by its end");
    let other = registry(&server.connect_string()).await;
    other
        .lock(&path)
        .try_acquire()
        .await
        .expect("nothing of the failed call blocks the lock")
        .release()
        .await
        .unwrap();
    slow.close().await;
}
