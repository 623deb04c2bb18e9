//! Canary releases (issue 25, item 5) against a real ZooKeeper: clients
//! of different identities and labels apply a canary exactly when its rule
//! picks them, stickily; each reports what it runs; promote converges
//! every client in one transaction; abort brings them back; readers that
//! do not speak ndsr see the stable value throughout.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use ndsr::release::{percent_bucket, Applied, CanaryRule, Config, Operation, PublishOptions};
use ndsr::{Error, Registry};
use ndsr_testkit::{eventually, unique_path, ZkServer};
use serde_json::{json, Value};

async fn client(servers: &str, identity: &str, labels: &[(&str, &str)]) -> Registry {
    init_logs();
    let mut builder = Registry::builder(servers)
        .session_timeout(Duration::from_secs(4))
        .connect_timeout(Duration::from_secs(10))
        .identity(identity);
    for (k, v) in labels {
        builder = builder.label(*k, *v);
    }
    builder.build().await.expect("registry connects")
}

async fn until_pool(config: &Config<Value>, pool: i64, what: &str) {
    eventually(WAIT, what, || async { config.get()["pool"] == json!(pool) })
        .await
        .unwrap_or_else(|e| panic!("{e}: holds {} ({:?})", config.get(), config.applied()));
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_by_labels_reaches_exactly_the_matching_clients_and_promote_converges_all() {
    let server = ZkServer::shared();
    let servers = server.connect_string();
    let admin = registry(&servers).await;
    let plain = other(&servers).await;
    let path = format!("{}/web", unique_path("canary"));
    admin.publish_value(&path, &json!({"pool": 1}), PublishOptions::message("stable")).await.unwrap();

    let a = client(&servers, "host-a", &[("zone", "a")]).await;
    let b = client(&servers, "host-b", &[("zone", "b")]).await;
    let c = client(&servers, "host-c", &[("zone", "a"), ("rack", "2")]).await;
    let mut configs = Vec::new();
    for r in [&a, &b, &c] {
        configs.push(r.config::<Value>(&path).build().await.unwrap());
    }
    for config in &configs {
        assert_eq!(config.applied(), Applied::Stable { version: 0 });
    }

    let rule = CanaryRule::Labels(labels(&[("zone", "a")]));
    let canary =
        admin.start_canary(&path, br#"{"pool": 2}"#, rule, PublishOptions::message("try two")).await.unwrap();
    assert_eq!((canary.base_version, canary.revision), (0, 0));
    until_pool(&configs[0], 2, "zone a applies the canary").await;
    until_pool(&configs[2], 2, "zone a (with a rack) applies the canary").await;
    assert!(matches!(configs[0].applied(), Applied::Canary { base_version: 0, .. }));
    // The live node keeps the stable value for every other reader.
    let (bytes, stat) = plain.get_data(&path).await.unwrap();
    assert_eq!((bytes.as_slice(), stat.version), (&br#"{"pool":1}"#[..], 0));

    // Every client reports; status counts them.
    eventually(WAIT, "three reports: two on the canary, one on stable", || async {
        let status = admin.canary_status(&path).await.unwrap();
        status.clients.len() == 3 && status.on_canary() == 2 && status.on_stable() == 1
    })
    .await
    .unwrap();
    // Zone b was never offered it, and still runs stable.
    assert_eq!(configs[1].get()["pool"], json!(1));
    let status = admin.canary_status(&path).await.unwrap();
    let on: BTreeMap<_, _> = status.clients.iter().map(|c| (c.identity.clone(), c.applied.clone())).collect();
    assert_eq!(on["host-b"], Applied::Stable { version: 0 });
    assert!(matches!(on["host-a"], Applied::Canary { .. }) && matches!(on["host-c"], Applied::Canary { .. }));

    // Promote: one release, recorded as such; every client converges.
    let release = admin.promote_canary(&path, PublishOptions::default()).await.unwrap();
    assert_eq!(release.version, 1);
    for config in &configs {
        until_pool(config, 2, "every client runs the promoted value").await;
    }
    assert!(admin.canary(&path).await.unwrap().is_none(), "promote removed the canary");
    let history = admin.history(&path).await.unwrap();
    let last = history.releases().last().unwrap().clone();
    assert_eq!((last.op, last.version), (Operation::Promote, 1));
    assert!(last.message.contains("try two"), "{}", last.message);
    eventually(WAIT, "every client reports stable version 1", || async {
        let status = admin.canary_status(&path).await.unwrap();
        status.on_stable() == 3
    })
    .await
    .unwrap();

    // Closing a client removes its report.
    b.close().await;
    eventually(WAIT, "a closed client's report is gone", || async {
        admin.canary_status(&path).await.unwrap().clients.len() == 2
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percentage_canary_is_sticky_and_abort_brings_clients_back() {
    let server = ZkServer::shared();
    let servers = server.connect_string();
    let admin = registry(&servers).await;
    let path = format!("{}/web", unique_path("canary-pct"));
    admin.publish_value(&path, &json!({"pool": 1}), PublishOptions::default()).await.unwrap();

    // Four identities, two in the lower half of the buckets and two in the
    // upper, found by the same hash every client uses.
    let mut inside = Vec::new();
    let mut outside = Vec::new();
    for i in 0.. {
        let id = format!("node-{i}");
        let list = if percent_bucket(&path, &id) < 50.0 { &mut inside } else { &mut outside };
        if list.len() < 2 {
            list.push(id);
        }
        if inside.len() == 2 && outside.len() == 2 {
            break;
        }
    }
    let mut clients = Vec::new();
    for id in inside.iter().chain(&outside) {
        let r = client(&servers, id, &[]).await;
        let config = r.config::<Value>(&path).build().await.unwrap();
        clients.push((id.clone(), r, config));
    }
    admin
        .start_canary(&path, br#"{"pool": 2}"#, CanaryRule::Percent(50.0), PublishOptions::default())
        .await
        .unwrap();
    for (id, _, config) in &clients[..2] {
        until_pool(config, 2, &format!("{id} is in the 50%")).await;
    }
    eventually(WAIT, "four reports", || async {
        admin.canary_status(&path).await.unwrap().clients.len() == 4
    })
    .await
    .unwrap();
    for (id, _, config) in &clients[2..] {
        assert_eq!(config.get()["pool"], json!(1), "{id} is outside the 50%");
    }

    // Sticky: a client starting afresh with the same identity decides the
    // same; a new revision of the canary at the same share picks the same.
    let again = client(&servers, &inside[0], &[]).await;
    let config = again.config::<Value>(&path).build().await.unwrap();
    assert_eq!(config.get()["pool"], json!(2), "the same identity, the same decision");
    let canary = admin
        .start_canary(&path, br#"{"pool": 3}"#, CanaryRule::Percent(50.0), PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(canary.revision, 1, "a new canary replaces the old one, as a new revision");
    for (id, _, config) in &clients[..2] {
        until_pool(config, 3, &format!("{id} follows the new revision")).await;
    }
    for (id, _, config) in &clients[2..] {
        assert_eq!(config.get()["pool"], json!(1), "{id} is still outside");
    }

    // Abort: everyone back on the live value, which never changed.
    assert!(admin.abort_canary(&path).await.unwrap());
    assert!(!admin.abort_canary(&path).await.unwrap(), "a second abort finds nothing");
    for (id, _, config) in &clients {
        until_pool(config, 1, &format!("{id} is back on the live value")).await;
        assert_eq!(config.applied(), Applied::Stable { version: 0 });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_a_client_refuses_is_reported_not_applied() {
    let server = ZkServer::shared();
    let servers = server.connect_string();
    let admin = registry(&servers).await;
    let path = format!("{}/web", unique_path("canary-refused"));
    admin.publish_value(&path, &json!({"pool": 4}), PublishOptions::default()).await.unwrap();
    let strict = client(&servers, "strict", &[]).await;
    let config = strict
        .config::<Value>(&path)
        .validate(|v: &Value| if v["pool"].as_i64() < Some(10) { Ok(()) } else { Err("pool over 9") })
        .build()
        .await
        .unwrap();
    admin
        .start_canary(
            &path,
            br#"{"pool": 50}"#,
            CanaryRule::Hosts(vec!["strict".into()]),
            PublishOptions::default(),
        )
        .await
        .unwrap();
    eventually(WAIT, "the refusal is reported", || async {
        admin.canary_status(&path).await.unwrap().refused_canary().len() == 1
    })
    .await
    .unwrap();
    let status = admin.canary_status(&path).await.unwrap();
    let refusal = status.refused_canary()[0].refused.clone().unwrap();
    assert!(refusal.reasons[0].contains("pool over 9"), "{:?}", refusal.reasons);
    assert_eq!((status.on_canary(), status.on_stable()), (0, 1));
    assert_eq!(config.get()["pool"], json!(4), "the canary was not applied");
    assert_eq!(config.applied(), Applied::Stable { version: 0 });
    assert_eq!(config.rejected(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_canaries_are_refused_and_write_nothing() {
    let server = ZkServer::shared();
    let servers = server.connect_string();
    let admin = registry(&servers).await;
    let plain = other(&servers).await;
    let path = format!("{}/web", unique_path("canary-bad"));
    let hosts = || CanaryRule::Hosts(vec!["h".into()]);

    // No ndsr release yet: a plain node, written around ndsr.
    create(&plain, &path, br#"{"pool": 1}"#, zookeeper_client::CreateMode::Persistent).await;
    match admin.start_canary(&path, br#"{"pool": 2}"#, hosts(), PublishOptions::default()).await {
        Err(Error::NoRelease { path: p }) => assert_eq!(p, path),
        other => panic!("a canary before any release: {other:?}"),
    }
    admin.publish_value(&path, &json!({"pool": 1}), PublishOptions::default()).await.unwrap();

    for share in [101.0, -1.0] {
        let refused =
            admin.start_canary(&path, b"{}", CanaryRule::Percent(share), PublishOptions::default()).await;
        assert!(matches!(refused, Err(Error::InvalidArgument(m)) if m.contains("between 0 and 100")));
    }
    let refused = admin.start_canary(&path, b"not json", hosts(), PublishOptions::default()).await;
    assert!(matches!(refused, Err(Error::Data { .. })), "{refused:?}");
    admin.set_schema(&path, &json!({"properties": {"pool": {"maximum": 10}}}), false).await.unwrap();
    match admin.start_canary(&path, br#"{"pool": 11}"#, hosts(), PublishOptions::default()).await {
        Err(Error::Invalid { violations, .. }) => assert_eq!(violations[0].pointer, "/pool"),
        other => panic!("a canary the schema refuses: {other:?}"),
    }
    assert!(admin.canary(&path).await.unwrap().is_none(), "nothing was written");
    match admin.promote_canary(&path, PublishOptions::default()).await {
        Err(Error::NoCanary { .. }) => {}
        other => panic!("a promote with no canary: {other:?}"),
    }

    // A promote after the stable value changed: refused, both versions named.
    admin.start_canary(&path, br#"{"pool": 2}"#, hosts(), PublishOptions::default()).await.unwrap();
    admin.publish_value(&path, &json!({"pool": 3}), PublishOptions::message("meanwhile")).await.unwrap();
    match admin.promote_canary(&path, PublishOptions::default()).await {
        Err(e @ Error::VersionConflict { .. }) => {
            let Error::VersionConflict { expected, current, .. } = &e else { unreachable!() };
            assert_eq!((*expected, *current), (1, Some(2)), "{e}");
        }
        other => panic!("a promote over a changed value: {other:?}"),
    }
    let (bytes, _) = plain.get_data(&path).await.unwrap();
    assert_eq!(bytes, br#"{"pool":3}"#, "the promote wrote nothing");
    assert!(admin.canary(&path).await.unwrap().is_some(), "the canary is kept");

    // Identities are checked when the registry is built.
    for bad in ["", "a/b", "tab\there"] {
        let built = Registry::builder(&servers).identity(bad).build().await;
        assert!(matches!(built, Err(Error::InvalidArgument(_))), "identity {bad:?}");
    }
}

/// The blocking faces: a canary started, applied by a reader of the same
/// identity, counted, and promoted, from a thread without a runtime.
#[test]
fn the_blocking_registry_runs_a_canary() {
    let server = ZkServer::shared();
    let builder = Registry::builder(&server.connect_string()).identity("blocking-1");
    let registry = ndsr::blocking::Registry::connect(builder).unwrap();
    let path = format!("{}/web", unique_path("canary-blocking"));
    registry.publish(&path, br#"{"pool": 1}"#, PublishOptions::default()).unwrap();
    let config = registry.config::<Value>(&path).build().unwrap();
    let hosts = CanaryRule::Hosts(vec!["blocking-1".into()]);
    registry.start_canary(&path, br#"{"pool": 2}"#, hosts, PublishOptions::default()).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while registry.canary_status(&path).unwrap().on_canary() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reader reports the canary: {:?}",
            config.applied()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(config.get()["pool"], json!(2));
    assert!(registry.canary(&path).unwrap().is_some());
    assert_eq!(registry.promote_canary(&path, PublishOptions::default()).unwrap().version, 1);
    assert!(!registry.abort_canary(&path).unwrap(), "promote removed it");
    registry.close();
}

/// A canary's revisions only grow, through an abort too, so a promote of
/// what was read can never promote a canary started again in its place; a
/// value equal to the live one is refused; a canary over an older live
/// version applies to no one (a hotfix reaches everyone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_only_grow_and_a_hotfix_reaches_everyone() {
    let server = ZkServer::shared();
    let servers = server.connect_string();
    let admin = registry(&servers).await;
    let path = format!("{}/web", unique_path("canary-rev"));
    let hosts = || CanaryRule::Hosts(vec!["picked".into()]);
    admin.publish_value(&path, &json!({"pool": 1}), PublishOptions::default()).await.unwrap();
    let same = admin.start_canary(&path, br#"{"pool":1}"#, hosts(), PublishOptions::default()).await;
    assert!(matches!(same, Err(Error::InvalidArgument(m)) if m.contains("live value")), "{same:?}");

    let first =
        admin.start_canary(&path, br#"{"pool": 2}"#, hosts(), PublishOptions::default()).await.unwrap();
    assert!(admin.abort_canary(&path).await.unwrap());
    assert!(admin.canary(&path).await.unwrap().is_none());
    let again =
        admin.start_canary(&path, br#"{"pool": 3}"#, hosts(), PublishOptions::default()).await.unwrap();
    assert!(again.revision > first.revision + 1, "{} after {}", again.revision, first.revision);

    let r = client(&servers, "picked", &[]).await;
    let config = r.config::<Value>(&path).build().await.unwrap();
    assert_eq!(config.get()["pool"], json!(3));
    admin.publish_value(&path, &json!({"pool": 9}), PublishOptions::message("hotfix")).await.unwrap();
    until_pool(&config, 9, "the hotfix reaches a client the canary picked").await;
    assert_eq!(config.applied(), Applied::Stable { version: 1 });
}

/// A caller that judges values itself (the Python face) refuses the canary:
/// the handle goes back to the live value and the report says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_the_caller_refuses_goes_back_to_the_live_value() {
    let server = ZkServer::shared();
    let servers = server.connect_string();
    let admin = registry(&servers).await;
    let path = format!("{}/web", unique_path("canary-caller"));
    admin.publish_value(&path, &json!({"pool": 1}), PublishOptions::default()).await.unwrap();
    let r = client(&servers, "judge", &[]).await;
    let config = r.config::<Value>(&path).build().await.unwrap();
    admin
        .start_canary(
            &path,
            br#"{"pool": 2}"#,
            CanaryRule::Hosts(vec!["judge".into()]),
            PublishOptions::default(),
        )
        .await
        .unwrap();
    until_pool(&config, 2, "the canary is applied").await;
    let held = config.get();
    assert!(config.refuse_if(&held, vec!["pool 2 is too many".into()]));
    until_pool(&config, 1, "back on the live value").await;
    assert_eq!(config.applied(), Applied::Stable { version: 0 });
    eventually(WAIT, "the refusal is reported", || async {
        let status = admin.canary_status(&path).await.unwrap();
        status.refused_canary().len() == 1 && status.on_stable() == 1
    })
    .await
    .unwrap();
    let status = admin.canary_status(&path).await.unwrap();
    assert_eq!(status.clients[0].refused.as_ref().unwrap().reasons, ["pool 2 is too many"]);
    assert!(!config.refuse_if(&held, vec![]), "the refused value is no longer held");
}

/// A client's report goes when its last handle is dropped, while its
/// registry lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_goes_with_the_last_handle() {
    let server = ZkServer::shared();
    let servers = server.connect_string();
    let admin = registry(&servers).await;
    let path = format!("{}/web", unique_path("canary-drop"));
    admin.publish_value(&path, &json!({"pool": 1}), PublishOptions::default()).await.unwrap();
    admin
        .start_canary(&path, br#"{"pool": 2}"#, CanaryRule::Percent(100.0), PublishOptions::default())
        .await
        .unwrap();
    let r = client(&servers, "leaver", &[]).await;
    let config = r.config::<Value>(&path).build().await.unwrap();
    let clone = config.clone();
    eventually(WAIT, "one report", || async { admin.canary_status(&path).await.unwrap().clients.len() == 1 })
        .await
        .unwrap();
    drop(config);
    assert_eq!(clone.get()["pool"], json!(2), "a clone keeps it");
    assert_eq!(admin.canary_status(&path).await.unwrap().clients.len(), 1);
    drop(clone);
    eventually(WAIT, "the report is gone", || async {
        admin.canary_status(&path).await.unwrap().clients.is_empty()
    })
    .await
    .unwrap();
    assert_eq!(r.state(), ndsr::State::Connected, "the registry lives on");
}
