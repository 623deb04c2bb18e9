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
