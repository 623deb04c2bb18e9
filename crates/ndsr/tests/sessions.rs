//! Scenarios 1, 2 and 18-21, and ensemble failover: sessions and outages.
//! Each test injures its server, so each starts its own.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ndsr::{Error, Registry, State};
use ndsr_testkit::{eventually, four_letter_word, unique_path, FaultProxy, ZkEnsemble, ZkServer};
use serde_json::json;
use zookeeper_client::{Client, CreateMode};

async fn until_state(r: &Registry, wanted: State) {
    let mut states = r.state_changes();
    tokio::time::timeout(WAIT, states.wait_for(|s| *s == wanted))
        .await
        .unwrap_or_else(|_| panic!("registry never reached {wanted:?}; now {:?}", r.state()))
        .unwrap();
}

fn owner(r: &Registry) -> i64 {
    r.session().expect("a live session").id().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s01_state_is_connected_after_start_and_disconnected_after_stop() {
    let server = ZkServer::new().unwrap();
    let r = registry(&server.connect_string()).await;
    assert_eq!(r.state(), State::Connected);
    let mut states = r.state_changes();
    assert_eq!(*states.borrow_and_update(), State::Connected);

    server.stop().unwrap();

    tokio::time::timeout(WAIT, states.changed()).await.unwrap().unwrap();
    assert_eq!(*states.borrow(), State::Disconnected);
    r.close().await;
    assert_eq!(r.state(), State::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s02_not_lazy_fails_without_a_server_and_lazy_connects_when_it_comes() {
    init_logs();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let servers = format!("127.0.0.1:{port}");

    let strict = Registry::builder(&servers).connect_timeout(Duration::from_secs(1)).build();
    let result = tokio::time::timeout(Duration::from_secs(20), strict).await.expect("build must not hang");
    assert!(matches!(result, Err(Error::NoConnection(_))), "{result:?}");

    let lazy = Registry::builder(&servers)
        .lazy(true)
        .session_timeout(Duration::from_secs(4))
        .connect_timeout(Duration::from_secs(1));
    let r = tokio::time::timeout(Duration::from_secs(5), lazy.build())
        .await
        .expect("lazy returns at once")
        .unwrap();
    assert_eq!(r.state(), State::Connecting);
    let path = format!("{}/early:1", unique_path("s02"));
    assert!(matches!(r.set_node(&path, "meanwhile").await, Err(Error::NoConnection(_))));

    let server = ZkServer::builder().port(port).start().unwrap();

    until_state(&r, State::Connected).await;
    let zk = other(&server.connect_string()).await;
    eventually(WAIT, "the registration made meanwhile appears", || async {
        exists(&zk, &path).await.is_some_and(|s| s.ephemeral_owner == owner(&r))
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s18_a_short_outage_keeps_the_session_and_catches_up_on_changes() {
    let server = ZkServer::new().unwrap();
    let r = registry(&server.connect_string()).await;
    let zk_path = unique_path("s18");
    let me = format!("{zk_path}/me:1");
    r.set_node(&me, "me").await.unwrap();
    let (seen, _) = recorder(&r, &zk_path);
    until_cached(&r, &zk_path, "own registration", |s| s.children == ["me:1"]).await;
    let session = owner(&r);
    let created = other(&server.connect_string()).await.check_stat(&me).await.unwrap().unwrap().czxid;

    server.stop().unwrap();
    until_state(&r, State::Disconnected).await;
    let stale = r.get(&zk_path).await.unwrap();
    assert!(stale.is_stale(), "a cached read while disconnected is marked stale");
    assert_eq!(stale.children, ["me:1"]);
    server.start().unwrap();
    // Other changes things right away, possibly before R is back.
    let zk = other(&server.connect_string()).await;
    create(&zk, &format!("{zk_path}/other:2"), b"", CreateMode::Persistent).await;

    until_state(&r, State::Connected).await;
    until_cached(&r, &zk_path, "the change made while R was away", |s| s.children == ["me:1", "other:2"])
        .await;
    assert_eq!(owner(&r), session, "same session");
    let stat = zk.check_stat(&me).await.unwrap().expect("registration intact");
    assert_eq!((stat.ephemeral_owner, stat.czxid), (session, created), "not deleted and re-created");
    assert!(seen.lock().unwrap().last().unwrap().children.contains(&"other:2".to_string()), "callbacks told");

    // The watch is live again: a change made after the reconnect is seen,
    // and the registration is still enforced.
    create(&zk, &format!("{zk_path}/after:3"), b"", CreateMode::Persistent).await;
    until_cached(&r, &zk_path, "a change after the reconnect", |s| {
        s.children == ["after:3", "me:1", "other:2"]
    })
    .await;
    zk.delete(&me, None).await.unwrap();
    eventually(WAIT, "registration restored after the reconnect", || async {
        exists(&zk, &me).await.is_some_and(|s| s.ephemeral_owner == session)
    })
    .await
    .unwrap();
}

/// R through a proxy, and a way to expire its session deterministically.
struct Outage {
    server: ZkServer,
    proxy: FaultProxy,
}

impl Outage {
    fn new() -> Outage {
        let server = ZkServer::new().unwrap();
        let proxy = FaultProxy::start(&server.connect_string()).unwrap();
        Outage { server, proxy }
    }

    async fn expire(&self, r: &Registry) {
        let session = r.session().unwrap();
        self.proxy.cut();
        self.server.expire_session(&session).await.unwrap();
        self.proxy.heal();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s19_after_expiry_everything_is_back_and_no_watcher_sees_an_empty_service() {
    let outage = Outage::new();
    let r = registry(&outage.proxy.connect_string()).await;
    let peer = registry(&outage.server.connect_string()).await;
    let service = unique_path("s19");
    r.set_node(&format!("{service}/me:1"), json!({"w": 1})).await.unwrap();
    peer.set_node(&format!("{service}/peer:2"), json!({"w": 2})).await.unwrap();
    let config = unique_path("s19-config");
    r.set_data(&config, json!({"v": 1})).await.unwrap();
    let (seen, count) = recorder(&r, &service);
    until_cached(&r, &service, "both members", |s| s.children == ["me:1", "peer:2"]).await;
    let old = owner(&r);
    let zk = other(&outage.server.connect_string()).await;

    outage.expire(&r).await;
    // While R is rebuilding, other changes the config.
    zk.set_data(&config, b"changed", None).await.unwrap();

    eventually(WAIT, "registration back under a new session", || async {
        matches!(zk.check_stat(&format!("{service}/me:1")).await, Ok(Some(s)) if s.ephemeral_owner != old && Some(s.ephemeral_owner) == r.session().map(|s| s.id().0))
    })
    .await
    .unwrap();
    until_cached(&r, &config, "the watch sees the current truth", |s| {
        s.data.as_ref().is_some_and(|d| d.get("string_value") == Some(&json!("changed")))
    })
    .await;
    until_cached(&r, &service, "both members", |s| s.children == ["me:1", "peer:2"]).await;
    assert!(count.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    for snapshot in seen.lock().unwrap().iter() {
        assert_eq!(snapshot.children, ["me:1", "peer:2"], "a watcher was told a member was missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s20_a_stale_node_of_our_dead_session_is_replaced() {
    let outage = Outage::new();
    let r = Registry::builder(&outage.proxy.connect_string())
        .session_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let path = format!("{}/me:1", unique_path("s20"));
    r.set_node(&path, "me").await.unwrap();
    let old = r.session().unwrap();

    // R loses the server while the server keeps R's session alive (held
    // by a takeover connection): R's client declares the session expired
    // on its own clock (pitfall 3), and the node stays, owned by it.
    outage.proxy.cut();
    let holder = Client::connector()
        .with_session(old.clone())
        .with_session_timeout(Duration::from_secs(2))
        .connect(&outage.server.connect_string())
        .await
        .unwrap();
    until_state(&r, State::Expired).await;
    outage.proxy.heal();
    until_state(&r, State::Connected).await;

    let zk = other(&outage.server.connect_string()).await;
    eventually(WAIT, "the stale node is replaced by the new session", || async {
        matches!(zk.check_stat(&path).await, Ok(Some(s)) if Some(s.ephemeral_owner) == r.session().map(|s| s.id().0) && s.ephemeral_owner != old.id().0)
    })
    .await
    .unwrap();
    let replaced = zk.check_stat(&path).await.unwrap().unwrap();

    // The old session ends for real: the new node is not touched.
    let mut holder_state = holder.state_watcher();
    drop(holder);
    tokio::time::timeout(WAIT, async { while !holder_state.changed().await.is_terminated() {} })
        .await
        .expect("the old session closes");
    let closed = zk.check_stat(&path).await; // a round trip after the close
    assert!(closed.is_ok());
    let after = zk.check_stat(&path).await.unwrap().expect("the new registration survives");
    assert_eq!(after.czxid, replaced.czxid, "owned by the live session: never deleted and re-created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s21_a_long_outage_serves_stale_reads_fails_writes_and_converges() {
    let server = ZkServer::new().unwrap();
    let r = Registry::builder(&server.connect_string())
        .session_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let service = unique_path("s21");
    r.set_node(&format!("{service}/me:1"), "me").await.unwrap();
    until_cached(&r, &service, "member", |s| s.children == ["me:1"]).await;

    server.stop().unwrap();
    until_state(&r, State::Expired).await; // longer than the session timeout

    let stale = r.get(&service).await.unwrap();
    assert!(stale.is_stale() && stale.age().is_some());
    assert_eq!(stale.children, ["me:1"], "the last known snapshot");
    let late = format!("{service}/late:2");
    assert!(matches!(r.set_node(&late, "late").await, Err(Error::NoConnection(_))));
    assert!(matches!(r.set_data(&unique_path("s21-data"), "x").await, Err(Error::NoConnection(_))));

    server.start().unwrap();
    until_state(&r, State::Connected).await;
    until_cached(&r, &service, "converged, with the registration made during the outage", |s| {
        !s.is_stale() && s.children == ["late:2", "me:1"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_failover_loses_no_registration_and_no_change() {
    let ensemble = Arc::new(ZkEnsemble::new().unwrap());
    let r = Registry::builder(&ensemble.connect_string())
        .session_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let zk = other(&ensemble.connect_string()).await;
    let service = unique_path("failover");
    let me = format!("{service}/me:1");
    r.set_node(&me, "me").await.unwrap();
    until_cached(&r, &service, "member", |s| s.children == ["me:1"]).await;
    let session = owner(&r);

    // Stop the member R is connected to.
    let sid = format!("sid=0x{session:x}");
    let connected = (0..3)
        .find(|&i| {
            four_letter_word(&ensemble.member(i).connect_string(), "cons").is_ok_and(|c| c.contains(&sid))
        })
        .expect("R is connected to one member");
    ensemble.member(connected).stop().unwrap();
    create(&zk, &format!("{service}/a:2"), b"", CreateMode::Persistent).await;
    until_cached(&r, &service, "change during failover", |s| s.children == ["a:2", "me:1"]).await;
    ensemble.member(connected).start().unwrap();

    // Then stop the leader.
    let leader = ensemble.leader().expect("a leader");
    ensemble.member(leader).stop().unwrap();
    eventually(WAIT, "a new leader", || async { ensemble.leader().is_some() }).await.unwrap();
    create(&zk, &format!("{service}/b:3"), b"", CreateMode::Persistent).await;
    until_cached(&r, &service, "change after leader loss", |s| s.children == ["a:2", "b:3", "me:1"]).await;
    let stat = zk.check_stat(&me).await.unwrap().expect("registration kept");
    assert_eq!(stat.ephemeral_owner, owner(&r));
    assert_eq!(owner(&r), session, "the session survived both failovers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_removes_ephemeral_nodes_at_once() {
    let server = ZkServer::shared();
    let r = Registry::builder(&server.connect_string())
        .session_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let path = format!("{}/me:1", unique_path("close"));
    r.set_node(&path, "me").await.unwrap();
    r.close().await;
    let zk = other(&server.connect_string()).await;
    // Well before the 30 s session timeout.
    assert_eq!(exists(&zk, &path).await, None, "gone when close() returns");
    assert!(matches!(r.set_node(&path, "again").await, Err(Error::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_closes_the_session() {
    let server = ZkServer::shared();
    let r = Registry::builder(&server.connect_string())
        .session_timeout(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let path = format!("{}/me:1", unique_path("drop"));
    r.set_node(&path, "me").await.unwrap();
    let clone = r.clone();
    drop(r);
    let zk = other(&server.connect_string()).await;
    assert!(exists(&zk, &path).await.is_some(), "a clone still holds the session");

    drop(clone);

    // Far sooner than the 60 s session timeout would remove it.
    eventually(Duration::from_secs(20), "node gone after the last handle dropped", || async {
        exists(&zk, &path).await.is_none()
    })
    .await
    .unwrap();
}
