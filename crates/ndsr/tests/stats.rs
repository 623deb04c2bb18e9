//! `Registry::stats()` counts what it says against a real ZooKeeper:
//! reconnects, expiries, callback errors, watched paths, registrations.

mod common;

use common::*;
use ndsr_testkit::{eventually, unique_path, ZkServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_reconnects_expiries_callback_errors_and_registrations() {
    let server = ZkServer::new().unwrap();
    let r = registry(&server.connect_string()).await;
    let base = unique_path("stats");
    let stats = r.stats();
    assert_eq!((stats.state, stats.reconnects, stats.expiries), (ndsr::State::Connected, 0, 0));
    assert_eq!((stats.watched_paths, stats.registrations, stats.callback_errors), (0, 0, 0));
    assert_eq!(stats.disconnected_since, None);

    r.set_node(&format!("{base}/web/a:1"), json!({})).await.unwrap();
    r.get(&format!("{base}/config")).await.unwrap();
    let stats = r.stats();
    assert_eq!((stats.watched_paths, stats.registrations), (2, 1), "{stats:?}");
    assert!(stats.requests > 0);

    // A callback that fails on every call: the first call and one per change.
    r.add_fallible_callback(&format!("{base}/config"), |_: &ndsr::Snapshot| Err::<(), _>("no")).unwrap();
    eventually(WAIT, "the first failure counted", || async { r.stats().callback_errors == 1 }).await.unwrap();
    r.set_data(&format!("{base}/config"), json!({"v": 1})).await.unwrap();
    eventually(WAIT, "the second failure counted", || async { r.stats().callback_errors == 2 })
        .await
        .unwrap();

    server.stop().unwrap();
    eventually(WAIT, "disconnected", || async { r.stats().disconnected_since.is_some() }).await.unwrap();
    server.start().unwrap();
    // At least one: after a restart the server may drop the new connection
    // again a few times (each a real reconnect, counted).
    eventually(WAIT, "reconnected", || async {
        let stats = r.stats();
        stats.reconnects >= 1 && stats.state == ndsr::State::Connected
    })
    .await
    .unwrap();
    assert_eq!(r.stats().disconnected_since, None);
    let reconnects = r.stats().reconnects;

    let old = r.session().unwrap();
    server.expire_session(&old).await.unwrap();
    eventually(WAIT, "a new session", || async {
        let stats = r.stats();
        stats.expiries == 1 && stats.state == ndsr::State::Connected
    })
    .await
    .unwrap();
    let stats = r.stats();
    assert!(stats.reconnects > reconnects, "an expiry's new session is a reconnect too: {stats:?}");
    assert_eq!(stats.registrations, 1, "the registration is kept");
    assert_eq!(stats.history_rewinds, 0, "a restart and an expiry do not rewind history");
    r.close().await;
    assert_eq!(r.stats().state, ndsr::State::Closed);
}
