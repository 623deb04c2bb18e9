//! Typed configuration (issue 24, item 4) against a real ZooKeeper: the
//! last good value survives garbage, a wrong type, a failed check and a
//! restart with ZooKeeper down.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ndsr::release::{ConfigStatus, PublishOptions};
use ndsr::{Error, Registry};
use ndsr_testkit::{eventually, unique_path, ZkServer};
use serde_json::json;

#[derive(Debug, PartialEq, serde::Deserialize)]
struct Web {
    pool: u32,
    host: String,
}

async fn until_status(config: &ndsr::release::Config<Web>, what: &str, f: impl Fn(&ConfigStatus) -> bool) {
    eventually(WAIT, what, || async { f(&config.status()) })
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", config.status()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_are_not_good_never_replace_the_last_good_one() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/web", unique_path("typed"));
    r.publish_value(&path, &json!({"pool": 4, "host": "db1"}), PublishOptions::default()).await.unwrap();

    let web = r
        .config::<Web>(&path)
        .validate(|w: &Web| if w.pool > 0 { Ok(()) } else { Err(format!("pool is {}", w.pool)) })
        .build()
        .await
        .unwrap();
    let good = web.get();
    assert_eq!(*good, Web { pool: 4, host: "db1".into() });
    assert_eq!(web.status(), ConfigStatus::Valid { version: 0 });
    let mut changes = web.changes();

    // Written by another client, around ndsr: garbage, an array, the
    // wrong type, a value that fails the check.
    let bad: [(&[u8], &str); 4] = [
        (b"garbage", "not JSON"),
        (b"[1]", "does not fit the type"),
        (b"{\"pool\": \"many\", \"host\": \"db1\"}", "does not fit the type"),
        (b"{\"pool\": 0, \"host\": \"db1\"}", "check failed: pool is 0"),
    ];
    for (n, (bytes, why)) in bad.iter().enumerate() {
        zk.set_data(&path, bytes, None).await.unwrap();
        let version = n as i32 + 1;
        until_status(&web, why, |s| matches!(s, ConfigStatus::Rejected { version: v, .. } if *v == version))
            .await;
        match web.status() {
            ConfigStatus::Rejected { reasons, .. } => assert!(reasons[0].starts_with(why), "{reasons:?}"),
            other => panic!("{other:?}"),
        }
        assert!(Arc::ptr_eq(&web.get(), &good), "the last good value is kept");
    }
    assert_eq!(web.rejected(), 4);
    assert_eq!(r.stats().config_rejections, 4);

    // The next good value is the next one the stream gives: none of the
    // refused ones came before it.
    r.publish_value(&path, &json!({"pool": 9, "host": "db2"}), PublishOptions::default()).await.unwrap();
    let next = tokio::time::timeout(WAIT, changes.next()).await.unwrap().unwrap();
    assert_eq!(*next, Web { pool: 9, host: "db2".into() });
    assert_eq!(web.status(), ConfigStatus::Valid { version: 5 });
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_outside_the_schema_is_refused_by_the_reader_too() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/web", unique_path("typed-schema"));
    r.publish_value(&path, &json!({"pool": 4, "host": "db1"}), PublishOptions::default()).await.unwrap();
    r.set_schema(&path, &json!({"properties": {"pool": {"maximum": 10}}}), false).await.unwrap();
    let web = r.config::<Web>(&path).build().await.unwrap();
    zk.set_data(&path, b"{\"pool\": 11, \"host\": \"db1\"}", None).await.unwrap();
    until_status(&web, "refused by the schema", |s| matches!(s, ConfigStatus::Rejected { .. })).await;
    match web.status() {
        ConfigStatus::Rejected { reasons, .. } => assert!(reasons[0].contains("/pool"), "{reasons:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(web.get().pool, 4);
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_node_gives_the_default_or_says_why_there_is_no_value() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let path = format!("{}/web", unique_path("typed-missing"));
    match r.config::<Web>(&path).build().await {
        Err(e @ Error::ConfigUnavailable { .. }) => assert!(e.to_string().contains("does not exist"), "{e}"),
        other => panic!("{other:?}"),
    }
    let web =
        r.config::<Web>(&path).default_value(Web { pool: 1, host: "local".into() }).build().await.unwrap();
    assert_eq!(web.status(), ConfigStatus::Missing);
    assert_eq!((web.get().pool, web.version()), (1, None));
    let mut changes = web.changes();
    r.publish_value(&path, &json!({"pool": 2, "host": "db"}), PublishOptions::default()).await.unwrap();
    assert_eq!(tokio::time::timeout(WAIT, changes.next()).await.unwrap().unwrap().pool, 2);
    assert_eq!(web.version(), Some(0));
    r.close().await;
    let ended = tokio::time::timeout(WAIT, changes.next()).await.expect("changes end on close");
    assert!(ended.is_none());
    assert_eq!(web.get().pool, 2, "the last good value stays readable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_good_value_survives_a_restart_from_the_cache_file() {
    let server = ZkServer::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let path = format!("{}/web", unique_path("typed-cold"));
    {
        let r = Registry::builder(&server.connect_string()).cache_file(&file).build().await.unwrap();
        let zk = other(&server.connect_string()).await;
        r.publish_value(&path, &json!({"pool": 3, "host": "db1"}), PublishOptions::default()).await.unwrap();
        let web = r.config::<Web>(&path).build().await.unwrap();
        eventually(WAIT, "the cache file holds the good value", || async {
            std::fs::read_to_string(&file).is_ok_and(|t| t.contains("configs") && t.contains("db1"))
        })
        .await
        .unwrap();
        // Garbage arrives and is refused; the file keeps the good value.
        zk.set_data(&path, b"garbage", None).await.unwrap();
        until_status(&web, "refused", |s| matches!(s, ConfigStatus::Rejected { .. })).await;
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
    let web = cold.config::<Web>(&path).build().await.expect("the saved good value");
    assert_eq!(*web.get(), Web { pool: 3, host: "db1".into() });
    assert_eq!(web.status(), ConfigStatus::Stale { version: Some(0) });

    // Back: the node's garbage is refused, the saved value stays.
    server.start().unwrap();
    until_status(&web, "the node read and refused", |s| {
        matches!(s, ConfigStatus::Rejected { version: 1, .. })
    })
    .await;
    assert_eq!(web.get().host, "db1");
    cold.close().await;
}

/// The blocking faces: publish, history, a typed configuration and its
/// changes, from a thread without a runtime.
#[test]
fn the_blocking_registry_publishes_and_follows_a_typed_configuration() {
    let server = ZkServer::shared();
    let registry = ndsr::blocking::Registry::connect(Registry::builder(&server.connect_string())).unwrap();
    let path = format!("{}/web", unique_path("typed-blocking"));
    registry.publish(&path, b"{\"pool\": 1, \"host\": \"a\"}", PublishOptions::message("one")).unwrap();
    let web = registry
        .config::<Web>(&path)
        .validate(|w: &Web| if w.pool < 100 { Ok(()) } else { Err("too big") })
        .build()
        .unwrap();
    assert_eq!(web.get().pool, 1);
    let mut changes = web.changes();
    registry.publish_value(&path, &json!({"pool": 500, "host": "a"}), PublishOptions::default()).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while !matches!(web.status(), ConfigStatus::Rejected { version: 1, .. }) {
        assert!(std::time::Instant::now() < deadline, "refused in time: {:?}", web.status());
        std::thread::sleep(Duration::from_millis(10));
    }
    registry.publish_value(&path, &json!({"pool": 2, "host": "b"}), PublishOptions::default()).unwrap();
    let next = changes.next_timeout(WAIT).expect("a good value");
    assert_eq!(*next, Web { pool: 2, host: "b".into() }, "the refused 500 never came");
    assert_eq!(web.rejected(), 1);
    assert_eq!(registry.history(&path).unwrap().versions(), [0, 1, 2]);
    let mut releases = registry.releases(&path, Some(0)).unwrap();
    let versions: Vec<i32> = (0..2)
        .map(|_| match releases.next_timeout(WAIT).unwrap().unwrap() {
            ndsr::release::HistoryItem::Release(e) => e.version,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(versions, [1, 2]);
    registry.close();
}

/// A first read that cannot finish within the connect timeout (here the
/// schema is unreadable) gives the default, and the node is read in the
/// background until it can be: no write of the node is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_read_that_times_out_is_finished_in_the_background() {
    use zookeeper_client::{Acl, AuthId, Permission};
    let server = ZkServer::shared();
    let r = Registry::builder(&server.connect_string())
        .connect_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/web", unique_path("typed-slow"));
    r.publish_value(&path, &json!({"pool": 7, "host": "db"}), PublishOptions::default()).await.unwrap();
    let schema = format!("/ndsr/config/{}/schema", path.replace('/', "%2F"));
    let no_read = Permission::WRITE | Permission::CREATE | Permission::DELETE | Permission::ADMIN;
    zk.set_acl(&schema, &[Acl::new(no_read, AuthId::anyone())], None).await.unwrap();

    let web =
        r.config::<Web>(&path).default_value(Web { pool: 1, host: "default".into() }).build().await.unwrap();
    assert_eq!(web.get().host, "default");
    zk.set_acl(&schema, &[Acl::new(Permission::ALL, AuthId::anyone())], None).await.unwrap();
    until_status(&web, "read in the background", |s| matches!(s, ConfigStatus::Valid { version: 0 })).await;
    assert_eq!(web.get().pool, 7);
    r.close().await;
}
