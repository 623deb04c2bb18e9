//! `Registry::instances` against a real ZooKeeper: the decoded list is
//! kept with the cache and follows adds, changes and removes; while
//! nothing changes a call decodes nothing (the same instances come back),
//! and a change decodes only the child that changed.

mod common;

use std::sync::Arc;

use common::*;
use ndsr::discovery::{CuratorInstance, Format, Instance, Instances, NerveInstance};
use ndsr::Registry;
use ndsr_testkit::{eventually, unique_path, ZkServer};
use zookeeper_client::CreateMode;

fn curator(id: &str, port: u16) -> Vec<u8> {
    CuratorInstance { registration_time_utc: 1, ..CuratorInstance::new("web", id, "10.0.0.1", port) }.encode()
}

/// The list decoded from scratch from the cached snapshots.
async fn decoded_afresh(r: &Registry, dir: &str) -> Instances {
    let listing = r.get(dir).await.unwrap();
    let mut children = Vec::new();
    for name in &listing.children {
        children.push((name.clone(), r.get(&format!("{dir}/{name}")).await.unwrap()));
    }
    Instances::decode(&listing, children.iter().map(|(n, s)| (n.as_str(), &**s)), None)
}

/// Waits until the listing satisfies `cond`, then checks it is what a
/// full decoding of the same snapshots gives.
async fn until_listed(r: &Registry, dir: &str, what: &str, cond: impl Fn(&Instances) -> bool) -> Instances {
    eventually(WAIT, what, || async { r.instances(dir, None).await.is_ok_and(|l| cond(&l)) }).await.unwrap();
    let listed = r.instances(dir, None).await.unwrap();
    let fresh = decoded_afresh(r, dir).await;
    assert_eq!(
        (&listed.format, &listed.instances, &listed.bad, listed.stale),
        (&fresh.format, &fresh.instances, &fresh.bad, fresh.stale),
        "{what}: the kept list is the full decoding"
    );
    listed
}

fn find<'a>(list: &'a Instances, key: &str) -> Option<&'a Arc<Instance>> {
    list.instances.iter().find(|i| i.key == key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_follow_adds_changes_and_removes_and_decode_only_what_changed() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let dir = unique_path("kept-instances");
    for i in 0..50 {
        let id = format!("i-{i:02}");
        create(&zk, &format!("{dir}/{id}"), &curator(&id, 8000 + i), CreateMode::Persistent).await;
    }
    let first = until_listed(&r, &dir, "50 instances", |l| l.instances.len() == 50).await;
    assert_eq!(first.format, Some(Format::Curator));

    // Nothing changed: the same instances, nothing decoded again.
    let again = r.instances(&dir, None).await.unwrap();
    assert!(
        first.instances.iter().zip(&again.instances).all(|(a, b)| Arc::ptr_eq(a, b)),
        "a call while nothing changed decodes nothing"
    );

    // A change: that child alone is decoded again.
    zk.set_data(&format!("{dir}/i-07"), &curator("i-07", 9007), None).await.unwrap();
    let changed = until_listed(&r, &dir, "i-07 on its new port", |l| {
        find(l, "i-07").is_some_and(|i| i.port == Some(9007))
    })
    .await;
    for (before, after) in first.instances.iter().zip(&changed.instances) {
        assert_eq!(Arc::ptr_eq(before, after), before.key != "i-07", "{}", before.key);
    }
    // The same bytes written again (a new version, the same data) keep it.
    zk.set_data(&format!("{dir}/i-07"), &curator("i-07", 9007), None).await.unwrap();
    until_cached(&r, &format!("{dir}/i-07"), "the rewrite", |s| s.stat.is_some_and(|s| s.version == 2)).await;
    let rewritten = r.instances(&dir, None).await.unwrap();
    assert!(Arc::ptr_eq(find(&changed, "i-07").unwrap(), find(&rewritten, "i-07").unwrap()));

    // An add and a remove.
    create(&zk, &format!("{dir}/i-50"), &curator("i-50", 8050), CreateMode::Persistent).await;
    zk.delete(&format!("{dir}/i-03"), None).await.unwrap();
    let moved = until_listed(&r, &dir, "i-50 in, i-03 out", |l| {
        find(l, "i-50").is_some() && find(l, "i-03").is_none()
    })
    .await;
    assert_eq!(moved.instances.len(), 50);
    assert!(Arc::ptr_eq(find(&first, "i-04").unwrap(), find(&moved, "i-04").unwrap()));

    // A bad child is reported, with why, and goes when deleted.
    create(&zk, &format!("{dir}/junk"), b"not json", CreateMode::Persistent).await;
    let bad = until_listed(&r, &dir, "junk reported", |l| l.bad.iter().any(|b| b.key == "junk")).await;
    assert!(bad.bad[0].reason.contains("not a JSON object"), "{:?}", bad.bad);
    assert_eq!(bad.instances.len(), 50);
    zk.delete(&format!("{dir}/junk"), None).await.unwrap();
    until_listed(&r, &dir, "junk gone", |l| l.bad.is_empty()).await;

    // A child that comes first by name and shows another format changes
    // the detected format: everything is decoded again, and back.
    let nerve = NerveInstance::new("a", "10.0.0.2", 80).encode();
    create(&zk, &format!("{dir}/a_0000000001"), &nerve, CreateMode::Persistent).await;
    let other_format = until_listed(&r, &dir, "read as nerve", |l| l.format == Some(Format::Nerve)).await;
    assert_eq!(other_format.instances.len(), 1);
    assert_eq!(other_format.bad.len(), 50, "the Curator children are not nerve instances");
    zk.delete(&format!("{dir}/a_0000000001"), None).await.unwrap();
    let back = until_listed(&r, &dir, "Curator again", |l| l.format == Some(Format::Curator)).await;
    assert_eq!((back.instances.len(), back.bad.len()), (50, 0));

    // Asked in a format, a second list is kept beside the detected one.
    let as_nerve = r.instances(&dir, Some(Format::Nerve)).await.unwrap();
    assert_eq!((as_nerve.format, as_nerve.instances.len(), as_nerve.bad.len()), (Some(Format::Nerve), 0, 50));
    assert_eq!(r.instances(&dir, None).await.unwrap().instances.len(), 50);

    // Unwatched, the list goes with the cache, and comes back when read.
    r.unwatch(&dir).unwrap();
    until_listed(&r, &dir, "read again", |l| l.instances.len() == 50).await;
    r.close().await;
}
