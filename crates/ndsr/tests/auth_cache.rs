//! Scenarios 4 and 22: digest auth and ACLs; the cache file; rate limiting.

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use common::*;
use ndsr::{Error, Registry, State};
use ndsr_testkit::{eventually, unique_path, ZkServer};
use zookeeper_client::{Acl, AuthId, Permission};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s04_nodes_of_an_authenticated_registry_are_owned_by_its_user_and_world_readable() {
    let server = ZkServer::shared();
    init_logs();
    let r = Registry::builder(&server.connect_string()).auth("deploy", "s3cret").build().await.unwrap();
    let path = format!("{}/svc/host:1", unique_path("s04"));
    r.set_node(&path, "mine").await.unwrap();

    let anonymous = other(&server.connect_string()).await;
    // ZooKeeper shows digest hashes only to clients that may read the ACL.
    let owner = zookeeper_client::Client::connector()
        .with_auth("digest", b"deploy:s3cret")
        .connect(&server.connect_string())
        .await
        .unwrap();
    let (acl, _) = owner.get_acl(&path).await.unwrap();
    let digest = ndsr::Credentials::new("deploy", "s3cret").digest_id();
    assert_eq!(
        acl,
        vec![
            Acl::new(Permission::ALL, AuthId::new("digest", &digest)),
            Acl::new(Permission::READ, AuthId::anyone())
        ]
    );
    assert!(anonymous.get_data(&path).await.is_ok(), "anyone can read");
    assert_eq!(anonymous.set_data(&path, b"x", None).await.unwrap_err(), zookeeper_client::Error::NoAuth);
    assert_eq!(anonymous.delete(&path, None).await.unwrap_err(), zookeeper_client::Error::NoAuth);

    // A registry with other credentials is refused, with a typed error.
    let intruder = Registry::builder(&server.connect_string()).auth("intruder", "x").build().await.unwrap();
    let parent = &path[..path.rfind('/').unwrap()];
    match intruder.set_data(parent, "taken").await {
        Err(Error::NotAuthorized { .. }) => {}
        other => panic!("expected NotAuthorized, got {other:?}"),
    }
    assert!(!format!("{:?}", Registry::builder("x").auth("u", "hunter2")).contains("hunter2"));

    // As the original: only the immediate parent gets the digest ACL; the
    // ancestors above it are open, so other users can register beside us.
    let (parent_acl, _) = owner.get_acl(parent).await.unwrap();
    assert_eq!(parent_acl, acl, "the immediate parent is ours");
    let grandparent = &parent[..parent.rfind('/').unwrap()];
    let (open, _) = anonymous.get_acl(grandparent).await.unwrap();
    assert_eq!(open, vec![Acl::new(Permission::ALL, AuthId::anyone())], "higher ancestors are open");
    intruder.set_node(&format!("{grandparent}/other-svc/h:2"), "theirs").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s22_cold_start_from_the_cache_file_then_the_watch_goes_live() {
    let server = ZkServer::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let service = unique_path("s22");
    {
        let r = Registry::builder(&server.connect_string()).cache_file(&file).build().await.unwrap();
        r.set_node(&format!("{service}/a:1"), "a").await.unwrap();
        until_cached(&r, &service, "member", |s| s.children == ["a:1"]).await;
        eventually(WAIT, "the cache file holds the service", || async {
            std::fs::read_to_string(&file).is_ok_and(|t| t.contains("a:1"))
        })
        .await
        .unwrap();
        r.close().await;
    }
    server.stop().unwrap();

    let cold = Registry::builder(&server.connect_string())
        .cache_file(&file)
        .lazy(true)
        .connect_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let saved = cold.get(&service).await.expect("served from the cache file");
    assert_eq!(saved.children, ["a:1"]);
    assert!(saved.is_stale() && saved.age().is_some());

    server.start().unwrap();
    until_cached(&cold, &service, "the watch is live: the closed registry's node is gone", |s| {
        !s.is_stale() && s.children.is_empty()
    })
    .await;
    assert_eq!(cold.state(), State::Connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_unwritable_cache_file_is_only_a_warning() {
    let server = ZkServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, b"{\"format\": \"ndsr-cache\", \"vers").unwrap();
    let r = Registry::builder(&server.connect_string()).cache_file(&corrupt).build().await.unwrap();
    let path = unique_path("corrupt");
    r.set_data(&path, "x").await.unwrap();
    r.get(&path).await.unwrap();
    eventually(WAIT, "the corrupt file is replaced by a valid one", || async {
        std::fs::read(&corrupt).is_ok_and(|b| serde_json::from_slice::<serde_json::Value>(&b).is_ok())
    })
    .await
    .unwrap();

    let unwritable = Registry::builder(&server.connect_string())
        .cache_file("/proc/ndsr-no-such-dir/cache.json")
        .build()
        .await
        .unwrap();
    unwritable.set_data(&path, "y").await.unwrap();
    assert!(unwritable.get(&path).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_registry_still_converges_after_a_reconnect() {
    let server = ZkServer::new().unwrap();
    init_logs();
    let r = Registry::builder(&server.connect_string())
        .rate_limit(NonZeroU32::new(20).unwrap())
        .session_timeout(Duration::from_secs(4))
        .build()
        .await
        .unwrap();
    let base = unique_path("rate");
    let paths: Vec<String> = (0..30).map(|i| format!("{base}/p{i}")).collect();
    for p in &paths {
        r.get(p).await.unwrap();
    }
    server.restart().unwrap();
    let zk = other(&server.connect_string()).await;
    for p in &paths {
        create(&zk, p, b"", zookeeper_client::CreateMode::Persistent).await;
    }
    for p in &paths {
        until_cached(&r, p, "every re-armed watch sees its node", |s| s.exists()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_applied_again_after_a_session_is_rebuilt() {
    let server = ZkServer::new().unwrap();
    let proxy = ndsr_testkit::FaultProxy::start(&server.connect_string()).unwrap();
    let r = Registry::builder(&proxy.connect_string())
        .auth("deploy", "s3cret")
        .session_timeout(Duration::from_secs(4))
        .build()
        .await
        .unwrap();
    // The parents are created with the digest ACL: only "deploy" may add
    // children, so restoring the node needs the auth on the new session.
    let path = format!("{}/svc/host:1", unique_path("reauth"));
    r.set_node(&path, "mine").await.unwrap();
    let old = r.session().unwrap();

    proxy.cut();
    server.expire_session(&old).await.unwrap();
    proxy.heal();

    let zk = other(&server.connect_string()).await;
    eventually(WAIT, "registration restored under the ACL by the new session", || async {
        matches!(zk.check_stat(&path).await, Ok(Some(s)) if s.ephemeral_owner != old.id().0 && Some(s.ephemeral_owner) == r.session().map(|s| s.id().0))
    })
    .await
    .unwrap();
}
