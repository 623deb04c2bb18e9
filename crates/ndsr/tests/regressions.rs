//! Regressions of issue 15: data loss, livelocks and wrong answers found by
//! using ndsr as a new user would. Each test fails without its fix.

mod common;

use std::time::Duration;

use common::*;
use ndsr::{Error, Registry, State};
use ndsr_testkit::{eventually, unique_path, ZkServer};
use serde_json::{json, Value};
use zookeeper_client::{Acl, Acls, AuthId, CreateMode, Permission};

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("node data is JSON")
}

/// Item 1: a lock never changes a node it did not create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_refuses_a_node_that_is_not_a_lock_and_changes_nothing() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let base = unique_path("lock-refuses");

    // A configuration node.
    let config = format!("{base}/config/web");
    r.set_data(&config, json!({"replicas": 3})).await.unwrap();
    let (before, _) = zk.get_data(&config).await.unwrap();
    let refused = r.lock(&config).wait(Duration::ZERO).acquire().await;
    assert!(matches!(refused, Err(Error::NotALock { .. })), "{refused:?}");
    assert_eq!(zk.get_data(&config).await.unwrap().0, before, "the config is untouched");
    assert!(zk.list_children(&config).await.unwrap().is_empty());

    // A registration: an ephemeral node inside a service directory.
    let service = format!("{base}/services/web");
    let member = format!("{service}/h1:80");
    r.set_node(&member, json!({"zone": "a"})).await.unwrap();
    let (before, _) = zk.get_data(&member).await.unwrap();
    let refused = r.lock(&member).wait(Duration::ZERO).acquire().await;
    assert!(matches!(refused, Err(Error::NotALock { .. })), "{refused:?}");
    assert_eq!(zk.get_data(&member).await.unwrap().0, before, "the registration is untouched");
    assert_eq!(
        zk.list_children(&service).await.unwrap(),
        ["h1:80"],
        "no -__lock__ sibling among the members"
    );

    // The service directory itself: children that are not lock holders.
    let refused = r.lock(&service).wait(Duration::ZERO).acquire().await;
    assert!(matches!(refused, Err(Error::NotALock { .. })), "{refused:?}");
    assert_eq!(zk.list_children(&service).await.unwrap(), ["h1:80"]);
    assert!(zk.check_stat(&format!("{service}-__lock__")).await.unwrap().is_none());

    // Under a registration: its parent is ephemeral.
    let refused = r.lock(&format!("{member}/lock")).wait(Duration::ZERO).acquire().await;
    assert!(matches!(refused, Err(Error::NotALock { .. })), "{refused:?}");
    assert_eq!(zk.list_children(&service).await.unwrap(), ["h1:80"]);

    // An existing empty node (as kazoo leaves it before writing its count)
    // is used as it is, without writing into it.
    let empty = format!("{base}/empty");
    create(&zk, &empty, b"", CreateMode::Persistent).await;
    let guard = r.lock(&empty).wait(Duration::ZERO).acquire().await.unwrap();
    assert_eq!(zk.get_data(&empty).await.unwrap().0, b"");
    guard.release().await.unwrap();
}

/// Item 2: unset of a registration never fights another owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_registration_leaves_another_sessions_registration_alone() {
    let server = ZkServer::shared();
    let first = registry(&server.connect_string()).await;
    let second = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/h:80", unique_path("unset-fight"));

    first.set_node(&path, "first").await.unwrap();
    first.unset(&path).await.unwrap();
    assert!(exists(&zk, &path).await.is_none());

    second.set_node(&path, "second").await.unwrap();
    let owner = second.session().unwrap().id().0;
    let requests = first.zk_requests();
    // Sampled for a while: the node stays, and the first registry is quiet.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let stat = exists(&zk, &path).await.expect("the second registration is never deleted");
        assert_eq!(stat.ephemeral_owner, owner);
    }
    let made = first.zk_requests() - requests;
    assert!(made < 20, "the first registry made {made} requests while doing nothing");

    // A persistent node that reappears is still deleted (scenario 10),
    // paced: however often it comes back, the registry does not flood.
    second.unset(&path).await.unwrap();
    create(&zk, &path, b"back", CreateMode::Persistent).await;
    eventually(WAIT, "the stray persistent node deleted", || async { exists(&zk, &path).await.is_none() })
        .await
        .unwrap();
    // Another client re-creates it as fast as it can for a while.
    let requests = first.zk_requests();
    let fighter = other(&server.connect_string()).await;
    let until = std::time::Instant::now() + Duration::from_millis(3500);
    let mut recreated = 0;
    while std::time::Instant::now() < until {
        if fighter
            .create(&path, b"again", &CreateMode::Persistent.with_acls(Acls::anyone_all()))
            .await
            .is_ok()
        {
            recreated += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let made = first.zk_requests() - requests;
    assert!(recreated >= 2, "the other client re-created the node {recreated} times");
    assert!(made < 40, "{made} requests to keep the path absent for 3.5 s: not paced");
    eventually(WAIT, "deleted again", || async { exists(&zk, &path).await.is_none() }).await.unwrap();

    // unwatch ends keeping the path absent (the second registry's unset
    // keeps it absent too: end both).
    first.unwatch(&path).unwrap();
    second.unwatch(&path).unwrap();
    create(&zk, &path, b"stays", CreateMode::Persistent).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(exists(&zk, &path).await.is_some(), "after unwatch the path is no longer kept absent");
}

/// Item 3, first half: the whole request is checked before it is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_servers_limit_is_refused_before_sending() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let base = unique_path("too-big");
    let path = format!("{base}/{}", "x".repeat(2000));
    let data = "y".repeat(1_047_000);
    let requests = r.zk_requests();
    let refused = r.set_node(&path, data.as_str()).await;
    assert!(matches!(refused, Err(Error::DataTooLarge { limit: 0xfffff, .. })), "{refused:?}");
    assert_eq!(r.zk_requests(), requests, "nothing was sent");
    assert!(exists(&zk, &base).await.is_none(), "no parent was made");
    assert!(matches!(r.set_data(&path, data.as_str()).await, Err(Error::DataTooLarge { .. })));
    // A write just under the limit still works.
    r.set_data(&format!("{base}/fits"), "y".repeat(1_040_000).as_str()).await.unwrap();
    assert_eq!(r.state(), State::Connected);
}

/// A registry told the servers accept 4 MiB, where they accept 1 MiB.
async fn oversized_registry(
    server: &ZkServer,
    configure: impl FnOnce(ndsr::RegistryBuilder) -> ndsr::RegistryBuilder,
) -> Registry {
    init_logs();
    let builder = Registry::builder(&server.connect_string())
        .session_timeout(Duration::from_secs(4))
        .max_data_size(4 << 20)
        .max_request_size(4 << 20);
    configure(builder).build().await.unwrap()
}

/// Registers 2 MiB at `poison` (a write the server drops the connection
/// for), checks that the registration fails and that the registry then
/// settles (an unrelated write succeeds, and a quiet spell of 3 s comes
/// soon), and returns how many times the connection was lost.
async fn poison_and_settle(r: &Registry, base: &str, poison: &str) -> usize {
    let mut states = r.state_changes();
    let disconnects = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = disconnects.clone();
    let counting = tokio::spawn(async move {
        while states.changed().await.is_ok() {
            if *states.borrow_and_update() == State::Disconnected {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let result = r.set_node(poison, "z".repeat(2 << 20).as_str()).await;
    assert!(result.is_err(), "the server never accepted it: {result:?}");
    // The registration is given up: the registry settles, and works.
    eventually(WAIT, "an unrelated write to succeed", || async {
        r.set_data(&format!("{base}/config"), json!({"ok": 1})).await.is_ok()
    })
    .await
    .unwrap();
    let count = || disconnects.load(std::sync::atomic::Ordering::SeqCst);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let before = count();
        tokio::time::sleep(Duration::from_secs(3)).await;
        if count() == before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} disconnects and counting: a reconnect loop",
            count()
        );
    }
    counting.abort();
    let _ = counting.await;
    count()
}

/// Item 3, second half: a write the server drops the connection for is
/// backed off and given up, not resent on every reconnect in a tight loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_drops_the_connection_is_given_up_without_a_reconnect_loop() {
    let server = ZkServer::shared();
    let r = oversized_registry(server, |b| b).await;
    let zk = other(&server.connect_string()).await;
    let base = unique_path("dropped");
    let poison = format!("{base}/h:1");
    let count = poison_and_settle(&r, &base, &poison).await;
    assert!(count <= 8, "{count} disconnects: the write was resent in a loop");
    assert!(exists(&zk, &poison).await.is_none());
    assert!(r.zk_requests() < 500, "{} requests", r.zk_requests());
    r.close().await;
}

/// `max_write_drops`: a registry told to give up after one dropped write
/// loses the connection once, not four times (the default). (Its caller's
/// `Enforce` may reach the hub after the registration is given up and its
/// record gone: the hub's unit test
/// `a_registration_given_up_before_its_callers_enforce_arrives_is_reported`
/// makes that ordering deterministic.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_write_drops_bounds_the_reconnects_of_a_poisoned_write() {
    let server = ZkServer::shared();
    let r = oversized_registry(server, |b| b.max_write_drops(1)).await;
    let base = unique_path("one-drop");
    let count = poison_and_settle(&r, &base, &format!("{base}/h:1")).await;
    assert_eq!(count, 1, "given up after the first dropped write");
    r.close().await;
}

/// A registration fixed while its poisoned write backs off starts its count
/// of dropped writes afresh: the fix is written, not given up for the drops
/// of the value it replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_value_for_a_backing_off_registration_starts_its_drops_afresh() {
    let server = ZkServer::shared();
    let r = oversized_registry(server, |b| b.max_write_drops(2)).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/h:1", unique_path("refixed"));
    let mut states = r.state_changes();
    let poisoned = {
        let (r, path) = (r.clone(), path.clone());
        tokio::spawn(async move { r.set_node(&path, "z".repeat(2 << 20).as_str()).await })
    };
    // The first drop: the registration now backs off before writing again.
    tokio::time::timeout(WAIT, states.wait_for(|s| *s == State::Disconnected)).await.unwrap().unwrap();
    r.set_node(&path, json!({"fixed": true})).await.expect("the fix is written, not given up");
    let (data, _) = zk.get_data(&path).await.unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&data).unwrap()["fixed"], true);
    let _ = poisoned.await;
    assert_eq!(r.stats().registrations_given_up, 0, "{:?}", r.stats());
    r.close().await;
}

/// Item 4: set_data compares what would be written, user `pid` included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_data_writes_a_change_of_the_user_keys_pid_and_created() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("pid-keys");
    r.set_data(&path, json!({"pid": 100})).await.unwrap();
    r.set_data(&path, json!({"pid": 200})).await.unwrap();
    assert_eq!(json_of(&zk.get_data(&path).await.unwrap().0)["pid"], 200);
    r.set_data(&path, json!({"pid": 200, "created": "then"})).await.unwrap();
    r.set_data(&path, json!({"pid": 200, "created": "now"})).await.unwrap();
    assert_eq!(json_of(&zk.get_data(&path).await.unwrap().0)["created"], "now");
    // The same value twice still writes once.
    let version = exists(&zk, &path).await.unwrap().version;
    r.set_data(&path, json!({"pid": 200, "created": "now"})).await.unwrap();
    assert_eq!(exists(&zk, &path).await.unwrap().version, version);
}

/// Item 5: a chroot is never created implicitly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_chroot_is_an_error_and_is_created_only_on_request() {
    let server = ZkServer::shared();
    init_logs();
    let zk = other(&server.connect_string()).await;
    let chroot = unique_path("prodd");
    let servers = format!("{}{chroot}", server.connect_string());
    let quick = |b: ndsr::RegistryBuilder| b.connect_timeout(Duration::from_secs(20));

    let start = std::time::Instant::now();
    let missing = quick(Registry::builder(&servers)).build().await;
    assert!(matches!(missing, Err(Error::ChrootMissing { .. })), "{missing:?}");
    assert!(start.elapsed() < Duration::from_secs(15), "reported at once, not after the connect timeout");
    let missing = quick(Registry::builder(&servers).readonly(true)).build().await;
    assert!(matches!(missing, Err(Error::ChrootMissing { .. })), "{missing:?}");
    assert!(exists(&zk, &chroot).await.is_none(), "not created, not even read-only");
    assert!(matches!(
        Registry::builder(&servers).readonly(true).create_chroot(true).build().await,
        Err(Error::InvalidArgument(_))
    ));

    // A lazy registry reports it to its first call, without waiting.
    let lazy = quick(Registry::builder(&servers)).lazy(true).build().await.unwrap();
    let got = lazy.get("/x").await;
    assert!(matches!(got, Err(Error::ChrootMissing { .. })), "{got:?}");
    lazy.close().await;

    let r = quick(Registry::builder(&servers)).create_chroot(true).build().await.unwrap();
    assert!(exists(&zk, &chroot).await.is_some());
    r.close().await;

    // A chroot under a parent that refuses creates is usable.
    let locked = unique_path("locked-parent");
    create(&zk, &format!("{locked}/app"), b"", CreateMode::Persistent).await;
    zk.set_acl(&locked, &[Acl::new(Permission::READ | Permission::ADMIN, AuthId::anyone())], None)
        .await
        .unwrap();
    let r =
        quick(Registry::builder(&format!("{}{locked}/app", server.connect_string()))).build().await.unwrap();
    r.set_node("/services/web/h:1", "x").await.unwrap();
    assert!(exists(&zk, &format!("{locked}/app/services/web/h:1")).await.is_some());
    r.close().await;
    zk.set_acl(&locked, &Acls::anyone_all(), None).await.unwrap();
}

/// Items 8 and 13: bad input fails before any network call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_and_server_lists_fail_before_any_network_call() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let base = unique_path("bmp");
    let requests = r.zk_requests();
    let refused = r.set_node(&format!("{base}/\u{1f600}:80"), "x").await;
    assert!(matches!(refused, Err(Error::InvalidPath { .. })), "{refused:?}");
    assert_eq!(r.zk_requests(), requests);
    assert!(exists(&zk, &base).await.is_none(), "no parent left behind");

    for servers in ["", ":21810", "h:abc", "h:99999", "127.0.0.1:2181,"] {
        let start = std::time::Instant::now();
        let built = Registry::builder(servers).connect_timeout(Duration::from_secs(30)).build().await;
        assert!(matches!(built, Err(Error::InvalidServers { .. })), "{servers:?}: {built:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    let built = Registry::builder(&server.connect_string()).session_timeout(Duration::ZERO).build().await;
    assert!(matches!(built, Err(Error::InvalidArgument(_))), "{built:?}");
}

/// Item 9: set_data never writes into another session's ephemeral node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_data_refuses_another_sessions_ephemeral_node() {
    let server = ZkServer::shared();
    let owner = registry(&server.connect_string()).await;
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/h:1", unique_path("foreign-ephemeral"));
    owner.set_node(&path, json!({"mine": 1})).await.unwrap();
    let (before, stat) = zk.get_data(&path).await.unwrap();
    let refused = r.set_data(&path, json!({"theirs": 1})).await;
    assert!(
        matches!(refused, Err(Error::Conflict { owner: o, .. }) if o == stat.ephemeral_owner),
        "{refused:?}"
    );
    assert_eq!(zk.get_data(&path).await.unwrap().0, before);
    // And one's own registration is changed with set_node, not set_data.
    let refused = owner.set_data(&path, json!({"other": 1})).await;
    assert!(matches!(refused, Err(Error::InvalidArgument(_))), "{refused:?}");
}

/// Item 10: integers beyond 64 bits are kept exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_beyond_64_bits_are_kept_exactly() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("bigint");
    create(
        &zk,
        &path,
        br#"{"n":12345678901234567890123,"f":0.10000000000000000001}"#,
        CreateMode::Persistent,
    )
    .await;
    let snapshot = r.get(&path).await.unwrap();
    let data = snapshot.data.as_ref().unwrap();
    assert_eq!(data["n"].to_string(), "12345678901234567890123");
    assert_eq!(data["f"].to_string(), "0.10000000000000000001");
    let written = unique_path("bigint-written");
    r.set_data(&written, Value::Object(data.clone())).await.unwrap();
    let raw = String::from_utf8(zk.get_data(&written).await.unwrap().0).unwrap();
    assert!(raw.contains(r#""n":12345678901234567890123"#), "{raw}");
}

/// Item 11: after close, reads say so instead of returning stale data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_after_close_fail_with_closed() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let path = format!("{}/h:1", unique_path("closed"));
    r.set_node(&path, "x").await.unwrap();
    assert!(r.get(&path).await.unwrap().exists());
    r.close().await;
    assert!(matches!(r.get(&path).await, Err(Error::Closed)));
    assert!(matches!(r.read(&path).await, Err(Error::Closed)));
    assert!(matches!(r.subscribe(&path), Err(Error::Closed)));
    assert!(matches!(r.add_callback(&path, |_| {}), Err(Error::Closed)));
}

/// Item 15: unset of a node with children, recursive unset, /zookeeper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unset_names_children_and_removes_subtrees_on_request() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let base = unique_path("tree");
    for leaf in ["a/x", "a/y", "b"] {
        create(&zk, &format!("{base}/{leaf}"), b"", CreateMode::Persistent).await;
    }
    let refused = r.unset(&base).await;
    assert!(matches!(refused, Err(Error::NotEmpty { .. })), "{refused:?}");
    assert!(refused.unwrap_err().to_string().contains("unset -r"));
    assert_eq!(r.unset_recursive(&base).await.unwrap(), 5);
    assert!(exists(&zk, &base).await.is_none());
    assert_eq!(r.unset_recursive(&base).await.unwrap(), 0, "absent is fine");
    let requests = r.zk_requests();
    for path in ["/zookeeper", "/zookeeper/quota", "/"] {
        assert!(matches!(r.unset(path).await, Err(Error::InvalidPath { .. })), "{path}");
        assert!(matches!(r.unset_recursive(path).await, Err(Error::InvalidPath { .. })), "{path}");
    }
    assert_eq!(r.zk_requests(), requests, "refused before sending");
}

/// Item 18: messages a user reads.
#[test]
fn error_messages_say_what_happened() {
    let persistent = Error::Conflict { path: "/a".into(), owner: 0 }.to_string();
    assert!(persistent.contains("a persistent node") && !persistent.contains("0x0"), "{persistent}");
    let held = Error::Conflict { path: "/a".into(), owner: 0x1f }.to_string();
    assert!(held.contains("held by session 0x1f"), "{held}");
    let now = Error::LockTimeout { path: "/l".into(), waited: Duration::ZERO }.to_string();
    assert!(!now.contains("0ns") && now.contains("not free now"), "{now}");
    let waited = Error::LockTimeout { path: "/l".into(), waited: Duration::from_millis(2500) }.to_string();
    assert!(waited.contains("within 2s 500ms"), "{waited}");
}
