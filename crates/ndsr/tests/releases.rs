//! Configuration releases (issue 24) against a real ZooKeeper: history
//! written in the same transaction as the value, compare-and-set, gaps
//! left by other writers, tampering, schemas and rollback.

mod common;

use std::time::Duration;

use common::*;
use ndsr::release::{GapReason, HistoryItem, PublishOptions};
use ndsr::{Error, Registry};
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::json;
use zookeeper_client::{Acl, Acls, AuthId, Client, Permission};

async fn registry_with(servers: &str, keep: usize) -> Registry {
    init_logs();
    Registry::builder(servers)
        .session_timeout(Duration::from_secs(4))
        .connect_timeout(Duration::from_secs(10))
        .history_keep(keep)
        .author("tester")
        .build()
        .await
        .expect("registry connects")
}

fn history_dir(path: &str) -> String {
    format!("/ndsr/config/{}/history", path.replace('%', "%25").replace('/', "%2F"))
}

/// Every entry node under `path`'s history, sorted, with its stat.
async fn entries(zk: &Client, path: &str) -> Vec<(String, zookeeper_client::Stat)> {
    let dir = history_dir(path);
    let mut names = zk.list_children(&dir).await.unwrap_or_default();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let (_, stat) = zk.get_data(&format!("{dir}/{name}")).await.unwrap();
        out.push((name, stat));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_writes_the_exact_bytes_and_its_record_in_one_transaction() {
    let server = ZkServer::shared();
    let r = registry_with(&server.connect_string(), 100).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/web", unique_path("rel-publish"));

    // Not compact, key order of its own: the bytes are kept as given.
    let first = b"{ \"pool\": 10,\n  \"host\": \"db1\" }";
    let release = r.publish(&path, first, PublishOptions::message("first")).await.unwrap();
    assert_eq!((release.version, release.previous_version), (0, None));
    let (bytes, live) = zk.get_data(&path).await.unwrap();
    assert_eq!(bytes, first);

    let second =
        r.publish_value(&path, &json!({"pool": 20, "host": "db1"}), PublishOptions::message("more")).await;
    let second = second.unwrap();
    assert_eq!((second.version, second.previous_version), (1, Some(0)));
    let (_, live2) = zk.get_data(&path).await.unwrap();

    // One entry per version, each made by the very transaction that wrote
    // that version: its czxid is the live node's zxid of the write.
    let made = entries(&zk, &path).await;
    assert_eq!(made.len(), 2);
    assert_eq!(made[0].1.czxid, live.mzxid);
    assert_eq!(made[1].1.czxid, live2.mzxid);
    assert_eq!(made[1].0, second.entry);

    let history = r.history(&path).await.unwrap();
    let releases: Vec<_> = history.releases().collect();
    assert_eq!(history.versions(), [0, 1]);
    assert_eq!(releases[0].value, first);
    assert_eq!(releases[0].message, "first");
    assert_eq!(releases[0].author, "tester");
    assert!(!releases[0].live && releases[1].live);
    assert_eq!(releases[1].sha256, second.sha256);
    assert!(history.items.iter().all(|i| matches!(i, HistoryItem::Release(_))), "{:?}", history.items);

    let changes = r.config_diff(&path, Some(0), None).await.unwrap();
    let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["~ /pool: 10 -> 20"]);
    r.close().await;
}

/// Four writers, compare-and-set: the history is exactly the sequence of
/// live versions, no gap, no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_writers_with_if_version_leave_a_history_of_every_version_once() {
    let server = ZkServer::shared();
    let path = format!("{}/counter", unique_path("rel-cas"));
    const EACH: usize = 250;
    let mut writers = Vec::new();
    for w in 0..4 {
        let r = registry_with(&server.connect_string(), 5000).await;
        let path = path.clone();
        writers.push(tokio::spawn(async move {
            let mut conflicts = 0;
            let mut done = 0;
            while done < EACH {
                let current = r.read(&path).await.unwrap().stat.map_or(-1, |s| s.version);
                let value = json!({"writer": w, "n": done});
                let options = PublishOptions::message(format!("w{w} #{done}")).if_version(current);
                match r.publish_value(&path, &value, options).await {
                    Ok(release) => {
                        assert_eq!(release.version, current + 1);
                        done += 1;
                    }
                    Err(Error::VersionConflict { expected, current: now, .. }) => {
                        assert_eq!(expected, current);
                        assert_ne!(now, Some(current), "a conflict names the version found");
                        conflicts += 1;
                    }
                    Err(e) => panic!("writer {w}: {e}"),
                }
            }
            r.close().await;
            conflicts
        }));
    }
    let mut conflicts = 0;
    for w in writers {
        conflicts += w.await.unwrap();
    }
    let r = registry(&server.connect_string()).await;
    let history = r.history(&path).await.unwrap();
    let expected: Vec<i32> = (0..(4 * EACH) as i32).collect();
    assert_eq!(history.versions(), expected, "every version exactly once ({conflicts} conflicts)");
    assert!(history.items.iter().all(|i| matches!(i, HistoryItem::Release(_))));
    assert_eq!(history.live_version, Some(4 * EACH as i32 - 1));
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_releases_beyond_the_limit_go_in_the_same_transaction() {
    let server = ZkServer::shared();
    let r = registry_with(&server.connect_string(), 3).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-keep"));
    for n in 0..5 {
        r.publish_value(&path, &json!({"n": n}), PublishOptions::default()).await.unwrap();
    }
    let history = r.history(&path).await.unwrap();
    assert_eq!(history.versions(), [2, 3, 4]);
    let (_, dir) = zk.get_data(&history_dir(&path)).await.unwrap();
    let made = entries(&zk, &path).await;
    // The last removal changed the directory in the last release's zxid.
    assert_eq!(dir.pzxid, made[2].1.czxid);
    assert!(matches!(history.items[0], HistoryItem::Gap { from: 0, to: 1, reason: GapReason::NotRetained }));
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_made_outside_ndsr_show_as_gaps_said_plainly() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-gaps"));
    r.publish_value(&path, &json!({"n": 0}), PublishOptions::default()).await.unwrap();
    zk.set_data(&path, b"{\"n\": 1}", None).await.unwrap();
    zk.set_data(&path, b"{\"n\": 2}", None).await.unwrap();
    r.publish_value(&path, &json!({"n": 3}), PublishOptions::default()).await.unwrap();
    zk.set_data(&path, b"garbage", None).await.unwrap();

    let history = r.history(&path).await.unwrap();
    let said: Vec<String> = history
        .items
        .iter()
        .filter(|i| matches!(i, HistoryItem::Gap { .. }))
        .map(|i| history.describe(i))
        .collect();
    assert_eq!(
        said,
        [
            format!("versions 1-2 of {path} were written outside ndsr; their values were not recorded"),
            format!("version 4 of {path} was written outside ndsr; its value was not recorded"),
        ]
    );
    assert!(!history.releases().any(|e| e.live), "the live value was written outside ndsr");

    // Deleted and created again outside ndsr: versions restart, and said so.
    zk.delete(&path, None).await.unwrap();
    zk.create(&path, b"{}", &zookeeper_client::CreateMode::Persistent.with_acls(Acls::anyone_all()))
        .await
        .unwrap();
    let release = r.publish_value(&path, &json!({"n": 5}), PublishOptions::default()).await.unwrap();
    assert_eq!(release.version, 1);
    let history = r.history(&path).await.unwrap();
    assert!(history.items.contains(&HistoryItem::Recreated), "{:?}", history.items);
    assert_eq!(history.release(1).unwrap().json(), Some(json!({"n": 5})));
    assert!(history.release(1).unwrap().live);
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_restores_the_exact_bytes_and_refuses_what_history_lacks() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-rollback"));
    let original = b"{\"b\":1,   \"a\":[1,2]}";
    r.publish(&path, original, PublishOptions::message("good")).await.unwrap();
    r.publish_value(&path, &json!({"b": 2}), PublishOptions::message("bad")).await.unwrap();

    let back = r.rollback(&path, 0, PublishOptions::message("undo")).await.unwrap();
    assert_eq!(back.version, 2);
    assert_eq!(zk.get_data(&path).await.unwrap().0, original);
    let history = r.history(&path).await.unwrap();
    let entry = history.release(2).unwrap();
    assert_eq!((entry.op, entry.rollback_of), (ndsr::release::Operation::Rollback, Some(0)));
    assert_eq!(entry.sha256, history.release(0).unwrap().sha256);

    match r.rollback(&path, 9, PublishOptions::default()).await {
        Err(e @ Error::NotInHistory { .. }) => {
            assert!(e.to_string().contains("it holds versions 0, 1, 2"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_tampered_with_is_said_and_never_rolled_back_to() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-tamper"));
    r.publish_value(&path, &json!({"n": 0}), PublishOptions::default()).await.unwrap();
    r.publish_value(&path, &json!({"n": 1}), PublishOptions::default()).await.unwrap();
    let made = entries(&zk, &path).await;
    let first = format!("{}/{}", history_dir(&path), made[0].0);
    let (bytes, _) = zk.get_data(&first).await.unwrap();
    let forged = String::from_utf8(bytes).unwrap().replace("{\"n\":0}", "{\"n\":666}");
    zk.set_data(&first, forged.as_bytes(), None).await.unwrap();

    let history = r.history(&path).await.unwrap();
    assert!(history.items.iter().any(|i| matches!(i, HistoryItem::Tampered { .. })), "{:?}", history.items);
    assert_eq!(history.versions(), [1]);
    assert!(matches!(r.rollback(&path, 0, PublishOptions::default()).await, Err(Error::NotInHistory { .. })));
    assert_eq!(zk.get_data(&path).await.unwrap().0, b"{\"n\":1}");
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_refused_by_the_schema_lists_every_violation_and_writes_nothing() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-schema"));
    let schema = json!({
        "type": "object",
        "properties": {"pool": {"type": "integer", "minimum": 1}, "host": {"type": "string"}},
        "required": ["pool"],
    });
    r.publish_value(&path, &json!({"pool": 5}), PublishOptions::default()).await.unwrap();
    let set = r.set_schema(&path, &schema, false).await.unwrap();
    assert!(set.forced_over.is_empty());
    assert_eq!(r.schema(&path).await.unwrap().unwrap().schema, schema);

    let before = zk.get_data(&path).await.unwrap();
    let requests = r.zk_requests();
    match r.publish_value(&path, &json!({"pool": 0, "host": 7}), PublishOptions::default()).await {
        Err(Error::Invalid { violations, version: None, .. }) => {
            let mut pointers: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
            pointers.sort();
            assert_eq!(pointers, ["/host", "/pool"]);
        }
        other => panic!("{other:?}"),
    }
    // Read, refused, nothing sent after the read: no transaction.
    assert!(r.zk_requests() - requests <= 5, "only the pipelined reads were made");
    assert_eq!(zk.get_data(&path).await.unwrap(), before);
    assert_eq!(entries(&zk, &path).await.len(), 1);
    assert!(matches!(r.validate_config(&path, b"{\"pool\": 2}").await, Ok(())));
    assert!(matches!(r.validate_config(&path, b"{}").await, Err(Error::Invalid { .. })));

    // A schema that is no schema, and one the live value breaks.
    assert!(matches!(
        r.set_schema(&path, &json!({"type": "nope"}), false).await,
        Err(Error::SchemaInvalid { .. })
    ));
    let stricter = json!({"type": "object", "required": ["pool", "host"]});
    match r.set_schema(&path, &stricter, false).await {
        Err(Error::Invalid { version: Some(0), violations, .. }) => assert_eq!(violations.len(), 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.schema(&path).await.unwrap().unwrap().schema, schema, "refused: unchanged");
    let forced = r.set_schema(&path, &stricter, true).await.unwrap();
    assert_eq!(forced.forced_over.len(), 1);
    let audit = format!("{}/audit", history_dir(&path).trim_end_matches("/history"));
    let records = zk.list_children(&audit).await.unwrap();
    assert_eq!(records.len(), 2, "each schema change is in the audit trail");

    // Removed: anything JSON goes again.
    r.remove_schema(&path).await.unwrap();
    assert!(r.schema(&path).await.unwrap().is_none());
    r.publish_value(&path, &json!({"pool": 0}), PublishOptions::default()).await.unwrap();
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_anything_is_sent() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-bad"));
    let requests = r.zk_requests();
    let not_json = r.publish(&path, b"{pool: 1}", PublishOptions::default()).await;
    assert!(
        matches!(&not_json, Err(Error::Data { reason, .. }) if reason.contains("must be JSON")),
        "{not_json:?}"
    );
    let root = r.publish("/ndsr/config/x", b"{}", PublishOptions::default()).await;
    assert!(matches!(root, Err(Error::InvalidPath { .. })), "{root:?}");
    let long = PublishOptions::message("x".repeat(5000));
    assert!(matches!(r.publish(&path, b"{}", long).await, Err(Error::InvalidArgument(_))));
    assert_eq!(r.zk_requests(), requests, "nothing was sent");

    // Fits one node, but not twice in one request: refused, never written
    // without its record.
    let big = format!("\"{}\"", "x".repeat(600 * 1024));
    match r.publish(&path, big.as_bytes(), PublishOptions::default()).await {
        Err(Error::DataTooLarge { size, limit, .. }) => assert!(size > limit && size > 2 * 600 * 1024),
        other => panic!("{other:?}"),
    }
    assert!(exists(&zk, &path).await.is_none());
    let parent = path.rsplit_once('/').unwrap().0;
    assert!(exists(&zk, parent).await.is_none(), "no parent made for a refused value either");
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_the_writer_cannot_write_leaves_the_value_unwritten() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-acl"));
    r.publish_value(&path, &json!({"n": 0}), PublishOptions::default()).await.unwrap();
    // Another client makes the history read-only.
    let read_only = vec![Acl::new(Permission::READ, AuthId::new("world", "anyone"))];
    zk.set_acl(&history_dir(&path), &read_only, None).await.unwrap();
    match r.publish_value(&path, &json!({"n": 1}), PublishOptions::default()).await {
        Err(Error::NotAuthorized { path: node, .. }) => assert!(node.contains("/history/r-"), "{node}"),
        other => panic!("{other:?}"),
    }
    let (bytes, stat) = zk.get_data(&path).await.unwrap();
    assert_eq!((bytes.as_slice(), stat.version), (&b"{\"n\":0}"[..], 0), "the value was not written either");
    r.close().await;
}

/// A client cut off during five publishes sees all five, in order, then
/// follows the next one live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_off_during_five_publishes_replays_all_five_in_order() {
    let server = ZkServer::shared();
    let proxy = ndsr_testkit::FaultProxy::start(&server.connect_string()).unwrap();
    let writer = registry(&server.connect_string()).await;
    let reader = registry(&proxy.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-replay"));
    let first = writer.publish_value(&path, &json!({"n": 0}), PublishOptions::default()).await.unwrap();
    let mut releases = reader.releases(&path, Some(first.version)).unwrap();

    proxy.cut();
    for n in 1..=5 {
        writer
            .publish_value(&path, &json!({"n": n}), PublishOptions::message(format!("#{n}")))
            .await
            .unwrap();
    }
    proxy.heal();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        match tokio::time::timeout(WAIT, releases.next()).await.unwrap().unwrap().unwrap() {
            HistoryItem::Release(e) => seen.push((e.version, e.message)),
            other => panic!("{other:?}"),
        }
    }
    let expected: Vec<(i32, String)> = (1..=5).map(|n| (n, format!("#{n}"))).collect();
    assert_eq!(seen, expected);

    // Then live, and a write made outside ndsr shows as a gap in its place.
    let zk = other(&server.connect_string()).await;
    zk.set_data(&path, b"{\"n\": 6}", None).await.unwrap();
    writer.publish_value(&path, &json!({"n": 7}), PublishOptions::default()).await.unwrap();
    let mut next = Vec::new();
    while next.len() < 2 {
        next.push(tokio::time::timeout(WAIT, releases.next()).await.unwrap().unwrap().unwrap());
    }
    assert!(matches!(next[0], HistoryItem::Gap { from: 6, to: 6, reason: GapReason::External }), "{next:?}");
    assert!(matches!(&next[1], HistoryItem::Release(e) if e.version == 7), "{next:?}");

    // Deleted and made again outside ndsr, then written twice: the
    // re-creation is said once, the versions of the new life not recorded
    // are said once each, then the next release.
    zk.delete(&path, None).await.unwrap();
    create(&zk, &path, b"{}", zookeeper_client::CreateMode::Persistent).await;
    zk.set_data(&path, b"{\"n\": 8}", None).await.unwrap();
    let last = writer.publish_value(&path, &json!({"n": 9}), PublishOptions::default()).await.unwrap();
    assert_eq!(last.version, 2);
    let mut after = Vec::new();
    loop {
        let item = tokio::time::timeout(WAIT, releases.next()).await.unwrap().unwrap().unwrap();
        let done = matches!(&item, HistoryItem::Release(_));
        after.push(item);
        if done {
            break;
        }
    }
    assert_eq!(after.iter().filter(|i| matches!(i, HistoryItem::Recreated)).count(), 1, "{after:?}");
    let mut covered = Vec::new();
    for item in &after {
        if let HistoryItem::Gap { from, to, .. } = item {
            covered.extend(*from..=*to);
        }
    }
    assert_eq!(covered, [0, 1], "each unrecorded version once: {after:?}");
    assert!(matches!(after.last(), Some(HistoryItem::Release(e)) if e.version == 2));
    writer.close().await;
    reader.close().await;
    let ended = tokio::time::timeout(WAIT, releases.next()).await.expect("releases end on close");
    assert!(ended.is_none());
}

/// After a release, the next one of the same path by the same registry is
/// one request (the transaction): what it read before is known. A guess
/// proved stale by another writer is read afresh, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_publishes_cost_one_request_and_a_stale_guess_is_read_afresh() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-serial"));
    r.publish_value(&path, &json!({"n": 0}), PublishOptions::default()).await.unwrap();
    r.publish_value(&path, &json!({"n": 1}), PublishOptions::default()).await.unwrap();
    let before = r.zk_requests();
    r.publish_value(&path, &json!({"n": 2}), PublishOptions::default()).await.unwrap();
    assert_eq!(r.zk_requests() - before, 1, "one transaction, no read");

    // Another writer moves the node and sets a schema: the guess fails,
    // is read afresh, and the new schema judges the value.
    zk.set_data(&path, b"{\"n\": 3}", None).await.unwrap();
    let writer = registry(&server.connect_string()).await;
    writer.set_schema(&path, &json!({"properties": {"n": {"maximum": 5}}}), false).await.unwrap();
    let refused = r.publish_value(&path, &json!({"n": 9}), PublishOptions::default()).await;
    assert!(matches!(refused, Err(Error::Invalid { .. })), "{refused:?}");
    let release = r.publish_value(&path, &json!({"n": 4}), PublishOptions::default()).await.unwrap();
    assert_eq!(release.version, 4);
    let history = r.history(&path).await.unwrap();
    assert_eq!(history.versions(), [0, 1, 2, 4]);
    assert!(history.items.contains(&HistoryItem::Gap { from: 3, to: 3, reason: GapReason::External }));
    writer.close().await;
    r.close().await;
}

/// Configuration calls keep the session's client between calls; `close`
/// still ends the session at once: its registrations vanish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_session_at_once_after_configuration_calls() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let base = unique_path("rel-close");
    let member = format!("{base}/services/web/h:1");
    r.set_node(&member, json!({})).await.unwrap();
    r.publish_value(&format!("{base}/config"), &json!({"n": 1}), PublishOptions::default()).await.unwrap();
    r.history(&format!("{base}/config")).await.unwrap();
    r.close().await;
    assert!(exists(&zk, &member).await.is_none(), "the session ended with close()");
}

/// A value written outside ndsr can be recorded as an `external` release,
/// with the bytes of the version it was seen at; recording it twice does
/// nothing, and it can be rolled back to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_write_is_recorded_as_an_external_release_once() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-external"));
    r.publish_value(&path, &json!({"n": 0}), PublishOptions::default()).await.unwrap();
    zk.set_data(&path, b"{\"n\": 1}", None).await.unwrap();
    zk.set_data(&path, b"{\"n\":  2}", None).await.unwrap();

    let recorded = r.record_external(&path).await.unwrap().expect("recorded");
    assert_eq!(recorded.version, 2);
    assert!(r.record_external(&path).await.unwrap().is_none(), "once");
    let history = r.history(&path).await.unwrap();
    let entry = history.release(2).unwrap();
    assert_eq!(
        (entry.op, entry.value.as_slice(), entry.live),
        (ndsr::release::Operation::External, &b"{\"n\":  2}"[..], true)
    );
    // Version 1 was overwritten before it was seen: still a gap.
    assert!(
        history.items.contains(&HistoryItem::Gap { from: 1, to: 1, reason: GapReason::External }),
        "{:?}",
        history.items
    );
    r.publish_value(&path, &json!({"n": 3}), PublishOptions::default()).await.unwrap();
    r.rollback(&path, 2, PublishOptions::default()).await.unwrap();
    assert_eq!(zk.get_data(&path).await.unwrap().0, b"{\"n\":  2}");
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_raw_gives_the_exact_bytes_or_none() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-raw"));
    assert!(r.read_raw(&path).await.unwrap().is_none());
    create(&zk, &path, b"not {json", zookeeper_client::CreateMode::Persistent).await;
    let (bytes, stat) = r.read_raw(&path).await.unwrap().unwrap();
    assert_eq!((bytes.as_slice(), stat.version), (&b"not {json"[..], 0));
    r.close().await;
}

/// The node deleted and made again outside ndsr at the very version the
/// last release left: the guessed publish succeeds (a multi cannot check
/// a node's life), and its entry is corrected to the new life.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_creation_at_the_same_version_is_recorded_in_the_right_life() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-life"));
    r.publish_value(&path, &json!({"n": 0}), PublishOptions::default()).await.unwrap();
    r.publish_value(&path, &json!({"n": 1}), PublishOptions::default()).await.unwrap();
    zk.delete(&path, None).await.unwrap();
    create(&zk, &path, b"{}", zookeeper_client::CreateMode::Persistent).await;
    zk.set_data(&path, b"{\"n\": 1.5}", None).await.unwrap();

    let release = r.publish_value(&path, &json!({"n": 2}), PublishOptions::default()).await.unwrap();
    assert_eq!(release.version, 2);
    let history = r.history(&path).await.unwrap();
    let entry = history.release(2).unwrap();
    assert_eq!(Some(entry.node_czxid), history.live_czxid, "the new life: {:?}", history.items);
    assert!(entry.live);
    assert_eq!(release.entry, entry.name, "the release names the corrected entry");
    assert_eq!(history.items.iter().filter(|i| matches!(i, HistoryItem::Recreated)).count(), 1);
    assert!(history.items.contains(&HistoryItem::Gap { from: 0, to: 1, reason: GapReason::External }));
    r.close().await;
}

/// Two recorders of the same outside write (two agents) record it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_recorders_of_one_outside_write_record_it_once() {
    let server = ZkServer::shared();
    let a = registry(&server.connect_string()).await;
    let b = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    for round in 0..5 {
        let path = format!("{}/c", unique_path(&format!("rel-recorders-{round}")));
        a.publish_value(&path, &json!({"n": 0}), PublishOptions::default()).await.unwrap();
        zk.set_data(&path, b"{\"n\": 1}", None).await.unwrap();
        let (x, y) = tokio::join!(a.record_external(&path), b.record_external(&path));
        let recorded = [x.unwrap(), y.unwrap()].iter().filter(|r| r.is_some()).count();
        assert_eq!(
            recorded,
            1,
            "round {round}: {:?}",
            a.history(&path)
                .await
                .unwrap()
                .items
                .iter()
                .map(|i| match i {
                    HistoryItem::Release(e) => format!("{} {:?} {}", e.version, e.op, e.name),
                    o => format!("{o:?}"),
                })
                .collect::<Vec<_>>()
        );
        assert_eq!(a.history(&path).await.unwrap().versions(), [0, 1]);
    }
    a.close().await;
    b.close().await;
}

/// `apply_value` (configuration as code) writes any bytes as an `apply`
/// release where there is no schema, and a schema refuses what is not
/// JSON; a rollback brings such bytes back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_writes_any_bytes_with_history_and_a_schema_refuses_what_is_not_json() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-apply"));
    let text = b"plain text, not JSON";
    let applied = r.apply_value(&path, text, PublishOptions::message("from git")).await.unwrap();
    assert_eq!(applied.version, 0);
    r.apply_value(&path, b"{\"n\": 1}", PublishOptions::default()).await.unwrap();
    let history = r.history(&path).await.unwrap();
    assert_eq!(history.release(0).unwrap().op, ndsr::release::Operation::Apply);
    r.rollback(&path, 0, PublishOptions::default()).await.unwrap();
    assert_eq!(zk.get_data(&path).await.unwrap().0, text);

    r.set_schema(&path, &json!({"type": "object"}), true).await.unwrap();
    let refused = r.apply_value(&path, text, PublishOptions::default()).await;
    assert!(matches!(refused, Err(Error::Invalid { .. })), "{refused:?}");
    r.close().await;
}

/// A reader started on a history whose node was re-created outside ndsr
/// (no release in the new life yet) says the re-creation once, and each
/// unrecorded version of the new life once, as more outside writes come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_across_a_re_creation_says_it_once() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/c", unique_path("rel-replay-life"));
    r.publish_value(&path, &json!({"n": 0}), PublishOptions::default()).await.unwrap();
    r.publish_value(&path, &json!({"n": 1}), PublishOptions::default()).await.unwrap();
    zk.delete(&path, None).await.unwrap();
    create(&zk, &path, b"{}", zookeeper_client::CreateMode::Persistent).await;
    zk.set_data(&path, b"{\"n\": 2}", None).await.unwrap();

    let mut releases = r.releases(&path, None).unwrap();
    let mut seen = Vec::new();
    let mut next = async || tokio::time::timeout(WAIT, releases.next()).await.unwrap().unwrap().unwrap();
    for _ in 0..4 {
        seen.push(next().await);
    }
    zk.set_data(&path, b"{\"n\": 3}", None).await.unwrap();
    seen.push(next().await);
    r.publish_value(&path, &json!({"n": 4}), PublishOptions::default()).await.unwrap();
    seen.push(next().await);
    assert_eq!(seen.iter().filter(|i| matches!(i, HistoryItem::Recreated)).count(), 1, "{seen:?}");
    let mut covered = Vec::new();
    for item in &seen {
        if let HistoryItem::Gap { from, to, .. } = item {
            covered.extend(*from..=*to);
        }
    }
    assert_eq!(covered, [0, 1, 2], "{seen:?}");
    assert!(matches!(seen.last(), Some(HistoryItem::Release(e)) if e.version == 3), "{seen:?}");
    r.close().await;
}

/// `apply_batch`: every node's release and every delete in one
/// transaction, each checked against its planned version; a node changed
/// since the plan fails the whole batch, and nothing of it is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_applies_all_of_its_nodes_or_none() {
    use ndsr::release::{BatchChange, BatchStep};
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let base = unique_path("rel-batch");
    let (a, b, gone) = (format!("{base}/a"), format!("{base}/a/b"), format!("{base}/gone"));
    r.publish_value(&a, &json!({"v": 0}), PublishOptions::default()).await.unwrap();
    create(&zk, &gone, b"old", zookeeper_client::CreateMode::Persistent).await;

    let steps = [
        BatchStep { path: &a, change: BatchChange::Write(b"{\"v\":1}"), expected_version: 0 },
        BatchStep { path: &b, change: BatchChange::Write(b"text"), expected_version: -1 },
        BatchStep { path: &gone, change: BatchChange::Delete, expected_version: 0 },
    ];
    let done = r.apply_batch(&steps, "from git").await.unwrap();
    assert_eq!(done, [Some(1), Some(0), None]);
    assert_eq!(zk.get_data(&a).await.unwrap().0, b"{\"v\":1}");
    assert_eq!(zk.get_data(&b).await.unwrap().0, b"text");
    assert!(exists(&zk, &gone).await.is_none());
    let history = r.history(&b).await.unwrap();
    assert_eq!(
        (history.release(0).unwrap().op, history.release(0).unwrap().message.as_str()),
        (ndsr::release::Operation::Apply, "from git")
    );

    // Planned against a@1 and b@0; b changes meanwhile.
    zk.set_data(&b, b"changed", None).await.unwrap();
    let steps = [
        BatchStep { path: &a, change: BatchChange::Write(b"{\"v\":2}"), expected_version: 1 },
        BatchStep { path: &b, change: BatchChange::Write(b"text 2"), expected_version: 0 },
    ];
    match r.apply_batch(&steps, "").await {
        Err(Error::VersionConflict { path, expected: 0, current: Some(1) }) => assert_eq!(path, b),
        other => panic!("{other:?}"),
    }
    assert_eq!(zk.get_data(&a).await.unwrap().0, b"{\"v\":1}", "nothing of the batch was written");
    assert_eq!(r.history(&a).await.unwrap().versions(), [0, 1]);
    let twice = [steps[0], steps[0]];
    assert!(matches!(r.apply_batch(&twice, "").await, Err(Error::InvalidArgument(_))));

    // A new node under a new one with a gap between: the gap is made in
    // the transaction, after its ancestor.
    let (g, y) = (format!("{base}/g"), format!("{base}/g/x/y"));
    let steps = [
        BatchStep { path: &g, change: BatchChange::Write(b"{}"), expected_version: -1 },
        BatchStep { path: &y, change: BatchChange::Write(b"{}"), expected_version: -1 },
    ];
    assert_eq!(r.apply_batch(&steps, "").await.unwrap(), [Some(0), Some(0)]);
    assert_eq!(zk.get_data(&format!("{base}/g/x")).await.unwrap().0, b"");

    // An ephemeral node (a registration) is never written, whatever its version.
    let member = format!("{base}/member");
    create(&zk, &member, b"{}", zookeeper_client::CreateMode::Ephemeral).await;
    let steps = [BatchStep { path: &member, change: BatchChange::Write(b"{\"x\":1}"), expected_version: 0 }];
    assert!(matches!(r.apply_batch(&steps, "").await, Err(Error::Conflict { .. })));
    assert_eq!(zk.get_data(&member).await.unwrap().0, b"{}");
    r.close().await;
}
