//! A standalone server restarted ten times under a connected registry:
//! each restart is at most two reconnects (issue 23 item 6), the session
//! survives, and nothing is lost: registrations are still ours, watches
//! see what changes after each restart.

mod common;

use std::sync::Arc;

use common::*;
use ndsr_testkit::{eventually, unique_path, ZkServer};
use serde_json::json;
use zookeeper_client::CreateMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_restarts_are_at_most_two_reconnects_each_and_lose_nothing() {
    let server = Arc::new(ZkServer::new().unwrap());
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let base = unique_path("restarts");
    let members: Vec<String> = (0..3).map(|i| format!("{base}/web/m-{i}")).collect();
    for (i, member) in members.iter().enumerate() {
        r.set_node(member, json!({ "i": i })).await.unwrap();
    }
    let config = format!("{base}/config");
    create(&zk, &config, b"0", CreateMode::Persistent).await;
    r.get(&config).await.unwrap();
    r.get(&format!("{base}/web")).await.unwrap();
    let session = r.session().unwrap().id();

    let mut per_restart = Vec::new();
    for round in 1..=10 {
        let before = r.stats().reconnects;
        let restarted = server.clone();
        tokio::task::spawn_blocking(move || restarted.restart()).await.unwrap().unwrap();
        eventually(WAIT, "reconnected", || async {
            let stats = r.stats();
            stats.reconnects > before && stats.state == ndsr::State::Connected
        })
        .await
        .unwrap();
        // A change made after the restart reaches the cache: the watch is
        // live on a connection that holds.
        let value = round.to_string();
        eventually(WAIT, "another client's write", || async {
            zk.set_data(&config, value.as_bytes(), None).await.is_ok()
        })
        .await
        .unwrap();
        eventually(WAIT, "the change seen after the restart", || async {
            let cached = r.get_cached(&config).ok().flatten();
            cached.and_then(|s| s.stat.as_ref().map(|stat| stat.version)) == Some(round)
        })
        .await
        .unwrap();
        for member in &members {
            let owner = exists(&zk, member).await.map(|stat| stat.ephemeral_owner);
            assert_eq!(owner, Some(session.0), "{member} is still ours after restart {round}");
        }
        let stats = r.stats();
        assert_eq!(stats.expiries, 0, "the session survived restart {round}: {stats:?}");
        per_restart.push(stats.reconnects - before);
    }
    assert!(per_restart.iter().all(|n| *n <= 2), "reconnects per restart: {per_restart:?}");
    assert!(r.stats().reconnects <= 20, "no storm after the last check: {:?}", r.stats());
    assert_eq!(r.session().unwrap().id(), session);
    r.close().await;
}
