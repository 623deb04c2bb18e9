//! Scenarios 3 and 5-11: registrations and data nodes against a real server.

mod common;

use common::*;
use ndsr::{Error, Registry};
use ndsr_testkit::{eventually, unique_path, ZkServer};
use serde_json::{json, Value};
use zookeeper_client::CreateMode;

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("node data is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s05_set_node_creates_an_ephemeral_with_defaults_and_unset_removes_it() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/host1:80", unique_path("s05"));

    r.set_node(&path, json!({"type": "apache"})).await.unwrap();

    let (data, stat) = zk.get_data(&path).await.unwrap();
    assert_eq!(stat.ephemeral_owner, r.session().unwrap().id().0, "ephemeral, owned by R");
    let data = json_of(&data);
    assert_eq!(data["type"], "apache");
    assert_eq!(data["pid"], std::process::id());
    assert!(data["created"].as_str().is_some_and(|c| c.len() == 19), "{data}");

    r.unset(&path).await.unwrap();
    assert_eq!(exists(&zk, &path).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s06_set_data_creates_a_persistent_node_and_unset_removes_it() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("s06");

    r.set_data(&path, json!({"replicas": 3})).await.unwrap();
    let (data, stat) = zk.get_data(&path).await.unwrap();
    assert_eq!(stat.ephemeral_owner, 0, "persistent");
    assert_eq!(json_of(&data)["replicas"], 3);

    r.unset(&path).await.unwrap();
    assert_eq!(exists(&zk, &path).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s07_unset_removes_a_node_made_by_another_and_absent_is_fine() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("s07");
    create(&zk, &path, b"theirs", CreateMode::Persistent).await;

    r.unset(&path).await.unwrap();
    assert_eq!(exists(&zk, &path).await, None);
    r.unset(&path).await.unwrap();
    r.unset(&format!("{path}/never/existed")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s08_s09_parents_are_created_and_strings_are_string_value() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/a/b/c/node", unique_path("s08"));

    r.set_node(&path, "hello").await.unwrap();

    let (data, _) = zk.get_data(&path).await.unwrap();
    assert_eq!(json_of(&data)["string_value"], "hello");
    let parent = zk.check_stat(&path[..path.rfind('/').unwrap()]).await.unwrap().unwrap();
    assert_eq!(parent.ephemeral_owner, 0, "parents are persistent");
    let snapshot = r.get(&path).await.unwrap();
    assert_eq!(snapshot.data.as_ref().unwrap()["string_value"], "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s10_an_ephemeral_registration_keeps_its_desired_state() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/host:1", unique_path("s10"));
    r.set_node(&path, json!({"mine": true})).await.unwrap();
    let (original, _) = zk.get_data(&path).await.unwrap();

    // Given other overwrites the data, then R writes it back.
    zk.set_data(&path, b"intruder", None).await.unwrap();
    eventually(WAIT, "data written back", || async { zk.get_data(&path).await.unwrap().0 == original })
        .await
        .unwrap();

    // Given other deletes the node, then R creates it again.
    zk.delete(&path, None).await.unwrap();
    eventually(WAIT, "node re-created", || async {
        matches!(zk.get_data(&path).await, Ok((data, stat)) if data == original && stat.ephemeral_owner == r.session().unwrap().id().0)
    })
    .await
    .unwrap();

    // After unset, other creates the node: R deletes it.
    r.unset(&path).await.unwrap();
    assert_eq!(exists(&zk, &path).await, None);
    create(&zk, &path, b"back", CreateMode::Persistent).await;
    eventually(WAIT, "reappearing node deleted", || async { exists(&zk, &path).await.is_none() })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s11_a_data_node_adopts_changes_and_writes_only_on_difference() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("s11");
    r.set_data(&path, json!({"v": 1})).await.unwrap();

    // Other deletes it: R's view has no data.
    zk.delete(&path, None).await.unwrap();
    until_cached(&r, &path, "view without data", |s| s.data.is_none() && s.stat.is_none()).await;

    // R sets it again: created again.
    r.set_data(&path, json!({"v": 1})).await.unwrap();
    assert!(exists(&zk, &path).await.is_some());

    // Other writes foobar: R adopts it, does not revert it.
    zk.set_data(&path, b"foobar", None).await.unwrap();
    until_cached(&r, &path, "foobar adopted", |s| {
        s.data.as_ref().is_some_and(|d| d.get("string_value") == Some(&json!("foobar")))
    })
    .await;
    assert_eq!(zk.get_data(&path).await.unwrap().0, b"foobar");

    // Setting the same value twice writes once.
    r.set_data(&path, json!({"v": 2})).await.unwrap();
    let version = exists(&zk, &path).await.unwrap().version;
    r.set_data(&path, json!({"v": 2})).await.unwrap();
    assert_eq!(exists(&zk, &path).await.unwrap().version, version, "no second write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s03_a_readonly_registry_refuses_writes_but_reads_and_watches() {
    let server = ZkServer::shared();
    let zk = other(&server.connect_string()).await;
    let path = unique_path("s03");
    create(&zk, &path, b"x", CreateMode::Persistent).await;
    let r = Registry::builder(&server.connect_string()).readonly(true).build().await.unwrap();

    assert!(matches!(r.set_node(&format!("{path}/n"), "x").await, Err(Error::ReadOnly(_))));
    assert!(matches!(r.set_data(&path, "x").await, Err(Error::ReadOnly(_))));
    assert!(matches!(r.unset(&path).await, Err(Error::ReadOnly(_))));
    assert!(exists(&zk, &path).await.is_some(), "nothing was removed");

    assert_eq!(r.get(&path).await.unwrap().data.as_ref().unwrap()["string_value"], "x");
    create(&zk, &format!("{path}/child"), b"", CreateMode::Persistent).await;
    until_cached(&r, &path, "watch sees the child", |s| s.children == ["child"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_typed_error_before_any_network_call() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    for bad in ["", "relative", "/trailing/", "/a//b", "/a/../b", "/nul\0"] {
        match r.set_node(bad, "x").await {
            Err(Error::InvalidPath { path, .. }) => assert_eq!(path, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
        assert!(matches!(r.get(bad).await, Err(Error::InvalidPath { .. })));
        assert!(matches!(r.subscribe(bad), Err(Error::InvalidPath { .. })));
    }
    let big = "x".repeat(2 * 1024 * 1024);
    let path = unique_path("big");
    match r.set_data(&path, big.as_str()).await {
        Err(Error::DataTooLarge { size, limit, .. }) => assert!(size > limit),
        other => panic!("{other:?}"),
    }
    let zk = other(&server.connect_string()).await;
    assert_eq!(exists(&zk, &path).await, None, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_bytes_decode_by_the_rules() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = unique_path("bytes");
    create(&zk, &path, b"\xff\xfe{not json", CreateMode::Persistent).await;
    let snapshot = r.get(&path).await.unwrap();
    assert_eq!(snapshot.data.as_ref().unwrap()["string_value"], "\u{fffd}\u{fffd}{not json");
    let typed: Option<std::collections::HashMap<String, String>> = snapshot.data_as().unwrap();
    assert!(typed.unwrap().contains_key("string_value"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chroot_in_the_connection_string_is_created_on_request_and_used() {
    let server = ZkServer::shared();
    let chroot = unique_path("chroot");
    let r = Registry::builder(&format!("{}{chroot}", server.connect_string()))
        .session_timeout(std::time::Duration::from_secs(4))
        .create_chroot(true)
        .build()
        .await
        .unwrap();
    let zk = other(&server.connect_string()).await;

    r.set_node("/services/web/h:1", "x").await.unwrap();

    assert!(exists(&zk, &format!("{chroot}/services/web/h:1")).await.is_some(), "written under the chroot");
    assert_eq!(r.get("/services/web").await.unwrap().children, ["h:1"]);
    assert!(matches!(
        Registry::builder(&format!("{}/bad//chroot", server.connect_string())).build().await,
        Err(Error::InvalidPath { .. })
    ));
}
