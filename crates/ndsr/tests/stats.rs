//! `Registry::stats()` counts what it says against a real ZooKeeper:
//! reconnects, expiries, callback errors, watched paths, registrations.

mod common;

use common::*;
use ndsr_testkit::{eventually, unique_path, FaultProxy, ZkServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_reconnects_expiries_callback_errors_and_registrations() {
    let server = ZkServer::new().unwrap();
    // Through a proxy, so that the expiry below can cut the registry off
    // first: a takeover of a connected session is a tug of war (each round
    // one more reconnect, up to 14 s; see ZkServer::expire_session).
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let r = registry(&proxy.connect_string()).await;
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
    eventually(WAIT, "reconnected", || async {
        let stats = r.stats();
        stats.reconnects >= 1 && stats.state == ndsr::State::Connected
    })
    .await
    .unwrap();
    assert_eq!(r.stats().disconnected_since, None);
    assert_eq!(r.stats().reconnects, 1, "a restart is one reconnect");

    let old = r.session().unwrap();
    proxy.cut();
    eventually(WAIT, "cut off", || async { r.state() != ndsr::State::Connected }).await.unwrap();
    server.expire_session(&old).await.unwrap();
    proxy.heal();
    eventually(WAIT, "a new session", || async {
        let stats = r.stats();
        stats.expiries == 1 && stats.state == ndsr::State::Connected
    })
    .await
    .unwrap();
    let stats = r.stats();
    assert_eq!(stats.reconnects, 2, "an expiry's new session is one reconnect too: {stats:?}");
    assert_eq!(stats.registrations, 1, "the registration is kept");
    assert_eq!(stats.history_rewinds, 0, "a restart and an expiry do not rewind history");
    r.close().await;
    assert_eq!(r.stats().state, ndsr::State::Closed);
}
