//! Lifecycle promises (issue 11): what `close()`, cancelled writes, dropped
//! subscriptions and failed registrations leave behind.

mod common;

use std::time::Duration;

use common::*;
use ndsr::{Error, Registry};
use ndsr_testkit::{eventually, unique_path, FaultProxy, ZkServer};
use zookeeper_client::{Acls, CreateMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_leaves_no_task_behind_and_saves_the_cache_file_last() {
    init_logs();
    let server = ZkServer::shared();
    let zk = other(&server.connect_string()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let path = unique_path("lifecycle-tasks");
    create(&zk, &path, b"{\"v\":1}", CreateMode::Persistent).await;

    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let r = Registry::builder(&server.connect_string())
        .session_timeout(Duration::from_secs(4))
        .cache_file(&file)
        .build()
        .await
        .unwrap();
    // One of everything that runs a task: a registration and a watch
    // (actors), a callback, the cache file's saver, a lock's monitor.
    r.set_node(&format!("{path}/me"), "x").await.unwrap();
    let _callback = r.add_callback(&path, |_| {}).unwrap();
    let _subscription = r.subscribe(&path).unwrap();
    let guard = r.lock(&format!("{path}-lock")).try_acquire().await.unwrap();
    zk.set_data(&path, b"{\"v\":2}", None).await.unwrap();
    until_cached(&r, &path, "v 2", |s| s.data.as_ref().is_some_and(|d| d["v"] == 2)).await;

    assert!(r.live_tasks() >= 5, "{} tasks", r.live_tasks());

    r.close().await;

    assert_eq!(r.live_tasks(), 0, "tasks of the registry outlived close()");
    // Nothing else either, once the ZooKeeper client's own connection task
    // (not ours, and not joinable) has seen the session closed.
    eventually(WAIT, "the runtime back to its tasks before the registry", || async {
        metrics.num_alive_tasks() == before
    })
    .await
    .unwrap();
    assert!(guard.is_lost(), "close() ends the session that holds the lock");
    // The change made just before close() is in the file when it returns
    // (the saver's last save is awaited, not left to a detached task).
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let entry = saved.to_string();
    assert!(entry.contains(&path) && entry.contains(r#""v":2"#), "last snapshot not saved: {entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_does_not_wait_for_a_live_lock_guard() {
    let server = ZkServer::shared();
    let zk = other(&server.connect_string()).await;
    let r = Registry::builder(&server.connect_string())
        .session_timeout(Duration::from_secs(4))
        .operation_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let guard = r.lock(&unique_path("lifecycle-lock")).try_acquire().await.unwrap();
    assert!(exists(&zk, guard.holder_node()).await.is_some());

    r.close().await;

    // The guard no longer keeps the session open: when close() returns,
    // the session is closed and its holder node gone.
    assert!(exists(&zk, guard.holder_node()).await.is_none(), "the guard kept the session open");
    assert!(guard.is_lost());
    // Releasing a lock whose session ended is fine: it is free already.
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_gave_up_before_it_started_is_never_performed() {
    let server = ZkServer::shared();
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let zk = other(&server.connect_string()).await;
    let r = registry(&proxy.connect_string()).await;
    let path = unique_path("lifecycle-withdrawn");
    create(&zk, &path, b"{\"v\":0}", CreateMode::Persistent).await;
    r.get(&path).await.unwrap();

    // Slow the connection so that a first write keeps the path busy.
    proxy.delay(Duration::from_millis(400));
    let requests = r.zk_requests();
    let first = tokio::spawn({
        let (r, path) = (r.clone(), path.clone());
        async move { r.set_data(&path, serde_json::json!({"v": 1, "pid": 1, "created": "x"})).await }
    });
    eventually(WAIT, "the first write in flight", || async { r.zk_requests() > requests }).await.unwrap();
    // A second write queued behind it, whose caller gives up at once.
    let second = tokio::time::timeout(
        Duration::from_millis(50),
        r.set_data(&path, serde_json::json!({"v": 2, "pid": 1, "created": "x"})),
    )
    .await;
    assert!(second.is_err(), "the second write should still be queued: {second:?}");
    proxy.delay(Duration::ZERO);
    first.await.unwrap().unwrap();
    // A write queued after the withdrawn one: once it is answered, the
    // withdrawn one would have run too.
    r.set_data(&path, serde_json::json!({"v": 1, "pid": 1, "created": "x"})).await.unwrap();

    let (data, stat) = zk.get_data(&path).await.unwrap();
    let data: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(data["v"], 1);
    assert_eq!(stat.version, 1, "only the first write may have been made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_subscription_unwatches_its_path() {
    let server = ZkServer::shared();
    let zk = other(&server.connect_string()).await;
    let r = registry(&server.connect_string()).await;
    let path = unique_path("lifecycle-sub");
    create(&zk, &path, b"", CreateMode::Persistent).await;

    let mut a = r.subscribe(&path).unwrap();
    let mut b = r.subscribe(&path).unwrap();
    a.next().await.unwrap();
    b.next().await.unwrap();
    drop(a);
    assert!(r.get_cached(&path).unwrap().is_some(), "another subscription still wants it");
    drop(b);
    assert!(r.get_cached(&path).unwrap().is_none(), "the last subscription's drop unwatches");

    // A path a `get` asked for stays watched.
    let pinned = unique_path("lifecycle-pinned");
    r.get(&pinned).await.unwrap();
    drop(r.subscribe(&pinned).unwrap());
    assert!(r.get_cached(&pinned).unwrap().is_some());

    // A subscription from before an unwatch does not end a later one's.
    let again = unique_path("lifecycle-again");
    let mut old = r.subscribe(&again).unwrap();
    old.next().await.unwrap();
    r.unwatch(&again).unwrap();
    assert!(old.next().await.is_none(), "unwatch ends the subscription");
    let mut new = r.subscribe(&again).unwrap();
    new.next().await.unwrap();
    drop(old);
    assert!(r.get_cached(&again).unwrap().is_some(), "an old subscription unwatched a new one's path");

    // A removed callback lets its path go too.
    let called = unique_path("lifecycle-callback");
    let id = r.add_callback(&called, |_| {}).unwrap();
    // (Not `get`, which would keep the path watched.)
    eventually(WAIT, "the first read", || async { r.get_cached(&called).unwrap().is_some() }).await.unwrap();
    assert!(r.remove_callback(id));
    eventually(WAIT, "the callback's path unwatched", || async { r.get_cached(&called).unwrap().is_none() })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_registration_leaves_nothing_behind() {
    let server = ZkServer::shared();
    let zk = other(&server.connect_string()).await;
    let r = registry(&server.connect_string()).await;
    let base = unique_path("lifecycle-failed");
    create(&zk, &base, b"", CreateMode::Persistent).await;
    let parent = format!("{base}/readonly");
    zk.create(&parent, b"", &CreateMode::Persistent.with_acls(Acls::anyone_read())).await.unwrap();
    let path = format!("{parent}/me");

    match r.set_node(&path, "x").await {
        Err(Error::NotAuthorized { .. }) => {}
        other => panic!("expected NotAuthorized, got {other:?}"),
    }
    // Neither a registration nor a watch is left for the path.
    assert!(r.get_cached(&path).unwrap().is_none(), "a failed set_node left the path watched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_path_is_a_record_not_a_task() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let base = unique_path("lifecycle-records");
    r.get(&format!("{base}/p0")).await.unwrap();
    let tasks = r.live_tasks();
    let gets: Vec<String> = (1..300).map(|i| format!("{base}/p{i}")).collect();
    for got in futures::future::join_all(gets.iter().map(|p| r.get(p))).await {
        got.unwrap();
    }
    r.set_node(&format!("{base}/me"), "x").await.unwrap();
    assert_eq!(r.live_tasks(), tasks, "watching 300 more paths and registering one added tasks");
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_watched_again_right_after_it_was_let_go_still_sees_changes() {
    // Dropping the last subscription unwatches the path; subscribing again
    // at once makes a new watch while the old watcher is still being
    // dropped. The old one's removal must never remove the new one's watch
    // on the server.
    let server = ZkServer::shared();
    let zk = other(&server.connect_string()).await;
    let r = registry(&server.connect_string()).await;
    let path = unique_path("lifecycle-rewatch");
    create(&zk, &path, b"", CreateMode::Persistent).await;
    for i in 0..40 {
        let mut first = r.subscribe(&path).unwrap();
        first.next().await.unwrap();
        drop(first);
        let mut again = r.subscribe(&path).unwrap();
        again.next().await.unwrap();
        let child = format!("{path}/c{i}");
        create(&zk, &child, b"", CreateMode::Ephemeral).await;
        let seen = tokio::time::timeout(WAIT, async {
            while let Some(s) = again.next().await {
                if s.children.iter().any(|c| *c == format!("c{i}")) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(seen, Ok(true), "round {i}: the new watch never saw the child");
        zk.delete(&child, None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_operation_in_flight_every_path_still_gets_its_turn() {
    // Many paths, a bound of 1: starts, writes and events all go through
    // the queue of operations waiting their turn.
    let server = ZkServer::shared();
    let zk = other(&server.connect_string()).await;
    let r = Registry::builder(&server.connect_string())
        .session_timeout(Duration::from_secs(4))
        .max_in_flight(1)
        .build()
        .await
        .unwrap();
    let base = unique_path("lifecycle-one-in-flight");
    let watched: Vec<String> = (0..40).map(|i| format!("{base}/w{i}")).collect();
    let registered: Vec<String> = (0..40).map(|i| format!("{base}/svc/r{i}")).collect();
    let gets = futures::future::join_all(watched.iter().map(|p| r.get(p)));
    let sets = futures::future::join_all(registered.iter().map(|p| r.set_node(p, "x")));
    let (gets, sets) = tokio::join!(gets, sets);
    assert!(gets.iter().all(Result::is_ok) && sets.iter().all(Result::is_ok));
    for path in &registered {
        assert!(exists(&zk, path).await.is_some(), "{path} not registered");
    }
    // Events still reach every watched path.
    for path in &watched {
        create(&zk, path, b"{}", CreateMode::Persistent).await;
    }
    for path in &watched {
        until_cached(&r, path, "its creation", |s| s.exists()).await;
    }
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_started_and_got_no_answer_has_an_unknown_outcome() {
    let server = ZkServer::shared();
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let zk = other(&server.connect_string()).await;
    let r = Registry::builder(&proxy.connect_string())
        .session_timeout(Duration::from_secs(10))
        .write_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let path = unique_path("lifecycle-unknown");
    create(&zk, &path, b"{\"v\":0}", CreateMode::Persistent).await;
    r.get(&path).await.unwrap();

    // Every answer now comes too late for the write timeout.
    proxy.delay(Duration::from_millis(800));
    match r.set_data(&path, serde_json::json!({"v": 1, "pid": 1, "created": "x"})).await {
        Err(e @ Error::OutcomeUnknown { .. }) => assert!(e.to_string().contains("may or may not")),
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    }
    proxy.delay(Duration::ZERO);
    // It had started, so it goes on: here it is applied.
    eventually(WAIT, "the write applied after all", || async {
        let (data, _) = zk.get_data(&path).await.unwrap();
        serde_json::from_slice::<serde_json::Value>(&data).unwrap()["v"] == 1
    })
    .await
    .unwrap();
}

/// `build` dropped while it waits for a connection leaves no task behind,
/// even once the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_build_leaves_no_task_behind() {
    init_logs();
    let server = ZkServer::new().unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    server.freeze().unwrap();
    let building = Registry::builder(&server.connect_string())
        .session_timeout(Duration::from_secs(4))
        .connect_timeout(Duration::from_secs(60))
        .build();
    // The frozen server accepts the connection but never answers.
    let waited = tokio::time::timeout(Duration::from_millis(300), building).await;
    assert!(waited.is_err(), "build cannot return while the server is frozen");
    server.thaw().unwrap();
    let gone = eventually(WAIT, "the dropped registry's tasks to end", || async {
        metrics.num_alive_tasks() <= before
    })
    .await;
    assert!(gone.is_ok(), "{} tasks alive, {before} before", metrics.num_alive_tasks());
}

/// A cancelled `set_node` keeps the registration desired: it is made in the
/// background. A cancelled `unset` of a registration is carried out at the
/// path's next event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_set_node_and_unset_stay_desired() {
    use futures::FutureExt;
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/h:1", unique_path("cancelled-reg"));

    // Polled once (the command is sent), then dropped.
    assert!(r.set_node(&path, "x").now_or_never().is_none(), "a registration takes a round trip");
    eventually(WAIT, "the registration made anyway", || async { exists(&zk, &path).await.is_some() })
        .await
        .unwrap();
    until_cached(&r, &path, "our node", |s| s.exists()).await;

    assert!(r.unset(&path).now_or_never().is_none());
    // Someone touches the node: the unset goal removes it.
    let _ = zk.set_data(&path, b"poke", None).await;
    eventually(WAIT, "the unset carried out", || async { exists(&zk, &path).await.is_none() }).await.unwrap();
    r.close().await;
}
