//! Discovery formats against a real ZooKeeper: what ndsr announces is read
//! back byte for byte, survives reconnects without thrash and expiries as
//! exactly one node, and listings survive bad children.

mod common;

use std::time::Duration;

use common::*;
use ndsr::discovery::{CuratorInstance, Format, NerveInstance, ServerSetMember};
use ndsr::{Error, Registry};
use ndsr_testkit::{eventually, unique_path, FaultProxy, ZkServer};
use zookeeper_client::CreateMode;

async fn children(zk: &zookeeper_client::Client, dir: &str) -> Vec<String> {
    let mut names = zk.list_children(dir).await.unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curator_instance_is_written_as_curator_writes_it_and_never_thrashes() {
    let server = ZkServer::new().unwrap();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let base = unique_path("curator");
    let instance = CuratorInstance {
        registration_time_utc: 1795859981132,
        ..CuratorInstance::new("web", "i-1", "10.0.0.1", 8080)
    };
    let path = r.announce_curator(&base, &instance).await.unwrap();
    assert_eq!(path, format!("{base}/web/i-1"));
    let (bytes, stat) = zk.get_data(&path).await.unwrap();
    assert_eq!(bytes, instance.encode(), "Curator's bytes, no pid or created");
    assert_eq!(stat.ephemeral_owner, r.session().unwrap().id().0);

    let web = r.instances(&format!("{base}/web"), None).await.unwrap();
    assert_eq!(web.format, Some(Format::Curator));
    assert_eq!(web.instances.len(), 1);
    assert_eq!(
        (web.instances[0].id.as_str(), web.instances[0].address()),
        ("i-1", "10.0.0.1:8080".to_string())
    );

    // A restart within the session: the node is the same one (Curator
    // deletes and re-creates it here, CURATOR-320).
    server.restart().unwrap();
    eventually(WAIT, "reconnected", || async { r.state() == ndsr::State::Connected }).await.unwrap();
    let again = eventually(WAIT, "the node after the restart", || async {
        zk.check_stat(&path).await.ok().flatten().is_some()
    })
    .await;
    assert!(again.is_ok());
    let after = zk.check_stat(&path).await.unwrap().unwrap();
    assert_eq!(after.czxid, stat.czxid, "not deleted and re-created");
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serverset_member_is_one_node_through_reconnects_and_expiry() {
    let server = ZkServer::new().unwrap();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let dir = unique_path("serverset");
    let mut member = ServerSetMember::new("10.0.0.1", 8080);
    member.shard = Some(3);
    let path = r.announce_serverset(&dir, &member).await.unwrap();
    let name = path.rsplit('/').next().unwrap().to_string();
    assert!(name.len() == "member_".len() + 10 && name.starts_with("member_"), "{name}");
    assert_eq!(zk.get_data(&path).await.unwrap().0, member.encode());

    server.restart().unwrap();
    eventually(WAIT, "reconnected", || async { r.state() == ndsr::State::Connected }).await.unwrap();
    assert_eq!(children(&zk, &dir).await, [name.as_str()], "no second member after a reconnect");

    let old = r.session().unwrap();
    server.expire_session(&old).await.unwrap();
    eventually(WAIT, "re-joined under a new session", || async {
        let Some(new) = r.session() else { return false };
        match zk.check_stat(&path).await {
            Ok(Some(stat)) => new.id() != old.id() && stat.ephemeral_owner == new.id().0,
            _ => false,
        }
    })
    .await
    .unwrap();
    assert_eq!(children(&zk, &dir).await, [name.as_str()], "exactly one member after an expiry");

    let members = r.instances(&dir, None).await.unwrap();
    assert_eq!(members.format, Some(Format::ServerSet));
    assert_eq!((members.instances.len(), members.instances[0].shard), (1, Some(3)));
    r.unset(&path).await.unwrap();
    assert!(children(&zk, &dir).await.is_empty(), "leaving deletes the node actually created");
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nerve_instance_with_path_encoding_is_read_from_its_name() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let dir = unique_path("nerve");
    let mut instance = NerveInstance::new("i-0abc123", "10.0.0.1", 8080);
    instance.labels.insert("az".into(), "us-east-1a".into());
    let path = r.announce_nerve(&dir, &instance, true).await.unwrap();
    assert!(path.rsplit('/').next().unwrap().starts_with("base64_"), "{path}");
    assert_eq!(zk.get_data(&path).await.unwrap().0, instance.encode());
    let listed = r.instances(&dir, None).await.unwrap();
    assert_eq!(listed.format, Some(Format::Nerve));
    assert_eq!(listed.instances[0].labels["az"], "us-east-1a");
    assert!(zk.get_data(&dir).await.unwrap().0.is_empty(), "the service node's data stays empty for synapse");
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_is_never_registered_into_another_formats_directory() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let base = unique_path("mixed");
    let dir = format!("{base}/web");
    let nerve = NerveInstance::new("i-1", "10.0.0.1", 80);
    create(&zk, &format!("{dir}/i-1_0000000001"), &nerve.encode(), CreateMode::Ephemeral).await;
    let refused = r.announce_curator(&base, &CuratorInstance::new("web", "i-2", "10.0.0.2", 80)).await;
    assert!(
        matches!(refused, Err(Error::FormatConflict { found: Format::Nerve, writing: Format::Curator, .. })),
        "{refused:?}"
    );
    assert_eq!(children(&zk, &dir).await, ["i-1_0000000001"], "nothing was written");
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_foreign_children_never_break_a_listing() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let dir = unique_path("listing");
    let good = CuratorInstance::new("web", "i-1", "10.0.0.1", 80);
    create(&zk, &format!("{dir}/i-1"), &good.encode(), CreateMode::Ephemeral).await;
    create(&zk, &format!("{dir}/junk"), b"10.0.0.9:80", CreateMode::Ephemeral).await;
    create(
        &zk,
        &format!("{dir}/i-0abc_0000000001"),
        &NerveInstance::new("x", "h", 1).encode(),
        CreateMode::Ephemeral,
    )
    .await;
    let listed = r.instances(&dir, Some(Format::Curator)).await.unwrap();
    assert_eq!(listed.instances.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["i-1"]);
    let bad: Vec<_> = listed.bad.iter().map(|b| b.key.as_str()).collect();
    assert_eq!(bad, ["i-0abc_0000000001", "junk"], "{:?}", listed.bad);

    // The list follows changes from the cache.
    create(
        &zk,
        &format!("{dir}/i-2"),
        &CuratorInstance::new("web", "i-2", "10.0.0.2", 80).encode(),
        CreateMode::Ephemeral,
    )
    .await;
    eventually(WAIT, "the new instance", || async {
        r.instances(&dir, Some(Format::Curator)).await.is_ok_and(|l| l.instances.len() == 2)
    })
    .await
    .unwrap();
    r.close().await;
}

/// A connection cut while a sequential create is in flight: however the
/// race falls, exactly one node is registered (a lost answer is resolved
/// by finding our node, not by creating a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_during_a_sequential_create_leaves_exactly_one_node() {
    let server = ZkServer::shared();
    let zk = other(&server.connect_string()).await;
    for round in 0..6u64 {
        let proxy = FaultProxy::start(&server.connect_string()).unwrap();
        let r = Registry::builder(&proxy.connect_string())
            .session_timeout(Duration::from_secs(6))
            .operation_timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_secs(20))
            .build()
            .await
            .unwrap();
        let dir = unique_path("cut-sequential");
        let member = ServerSetMember::new("10.0.0.1", 8080);
        let announcing = {
            let (r, dir, member) = (r.clone(), dir.clone(), member.clone());
            tokio::spawn(async move { r.announce_serverset(&dir, &member).await })
        };
        tokio::time::sleep(Duration::from_millis(round * 3)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.heal();
        let result = announcing.await.unwrap();
        let listed = eventually(WAIT, "one member", || async { children(&zk, &dir).await.len() == 1 }).await;
        assert!(listed.is_ok(), "round {round}: {:?} ({result:?})", children(&zk, &dir).await);
        if let Ok(path) = &result {
            assert!(
                zk.check_stat(path).await.unwrap().is_some(),
                "round {round}: the path returned is the node"
            );
        }
        r.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_watch_says_what_was_added_removed_and_changed() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let dir = unique_path("watch-instances");
    let nerve = |name: &str, port: u16| NerveInstance::new(name, "10.0.0.1", port).encode();
    create(&zk, &format!("{dir}/a_0000000001"), &nerve("a", 1), CreateMode::Ephemeral).await;
    create(&zk, &format!("{dir}/b_0000000002"), &nerve("b", 2), CreateMode::Ephemeral).await;
    let mut watch = r.watch_instances(&dir, None).unwrap();
    let keys =
        |v: &[std::sync::Arc<ndsr::discovery::Instance>]| v.iter().map(|i| i.key.clone()).collect::<Vec<_>>();

    let first = next_change(&mut watch).await;
    assert_eq!(first.instances.format, Some(Format::Nerve));
    assert_eq!(keys(&first.added), ["a_0000000001", "b_0000000002"], "the whole list first");

    create(&zk, &format!("{dir}/c_0000000003"), &nerve("c", 3), CreateMode::Ephemeral).await;
    let change = next_change(&mut watch).await;
    assert_eq!(
        (keys(&change.added), change.removed.len(), change.changed.len()),
        (vec!["c_0000000003".to_string()], 0, 0)
    );
    assert_eq!(change.instances.instances.len(), 3);

    zk.set_data(&format!("{dir}/a_0000000001"), &nerve("a", 10), None).await.unwrap();
    let change = next_change(&mut watch).await;
    assert_eq!(change.changed.len(), 1, "{change:?}");
    assert_eq!((change.changed[0].0.port, change.changed[0].1.port), (Some(1), Some(10)));
    assert!(change.added.is_empty() && change.removed.is_empty());

    zk.delete(&format!("{dir}/b_0000000002"), None).await.unwrap();
    let change = next_change(&mut watch).await;
    assert_eq!(keys(&change.removed), ["b_0000000002"]);

    create(&zk, &format!("{dir}/junk"), b"not json", CreateMode::Ephemeral).await;
    let change = next_change(&mut watch).await;
    assert_eq!(change.instances.bad.iter().map(|b| b.key.as_str()).collect::<Vec<_>>(), ["junk"]);
    assert_eq!(change.instances.instances.len(), 2, "a bad child changes nothing else");

    r.close().await;
    assert!(tokio::time::timeout(WAIT, watch.next()).await.unwrap().is_none(), "ends with the registry");
}

async fn next_change(watch: &mut ndsr::discovery::InstanceWatch) -> ndsr::discovery::InstanceChange {
    let waited = tokio::time::timeout(WAIT, watch.next()).await;
    waited.expect("a change in time").expect("the watch goes on")
}

/// Draining without deregistering: the announced node is rewritten in
/// place (same node), and readers see it as not serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_instance_drains_in_place() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let dir = unique_path("drain-serverset");
    let mut member = ServerSetMember::new("10.0.0.1", 8080);
    let path = r.announce_serverset(&dir, &member).await.unwrap();
    let czxid = zk.check_stat(&path).await.unwrap().unwrap().czxid;
    member.status = ndsr::discovery::ServerSetStatus::Stopping;
    r.set_node_raw(&path, member.encode()).await.unwrap();
    eventually(WAIT, "the member drained", || async {
        r.instances(&dir, None).await.is_ok_and(|l| l.instances.len() == 1 && !l.instances[0].serving)
    })
    .await
    .unwrap();
    assert_eq!(zk.check_stat(&path).await.unwrap().unwrap().czxid, czxid, "the same node");

    let base = unique_path("drain-curator");
    let up = CuratorInstance::new("web", "i-1", "10.0.0.1", 80);
    let path = r.announce_curator(&base, &up).await.unwrap();
    let czxid = zk.check_stat(&path).await.unwrap().unwrap().czxid;
    r.announce_curator(&base, &CuratorInstance { enabled: false, ..up }).await.unwrap();
    let listed = r.instances(&format!("{base}/web"), None).await.unwrap();
    assert_eq!((listed.instances.len(), listed.instances[0].serving), (1, false));
    assert_eq!(zk.check_stat(&path).await.unwrap().unwrap().czxid, czxid, "the same node");
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_maintenance_on_a_registration_of_this_registry_stays_marked() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let base = unique_path("maint-own");
    let up = CuratorInstance::new("web", "i-1", "10.0.0.1", 80);
    let path = r.announce_curator(&base, &up).await.unwrap();
    let dir = format!("{base}/web");
    let serving = |r: &Registry| {
        let (r, dir) = (r.clone(), dir.clone());
        async move { r.instances(&dir, None).await.ok().map(|l| l.instances.iter().any(|i| i.serving)) }
    };
    let original = zk.get_data(&path).await.unwrap().0;
    assert_eq!(r.set_maintenance(&path, true, Some("deploy")).await.unwrap(), Format::Curator);
    // Not written back by its own holder: the registration itself is marked.
    let marked = zk.get_data(&path).await.unwrap().0;
    assert!(marked.ends_with(br#","enabled":false}"#), "{}", String::from_utf8_lossy(&marked));
    assert_eq!(serving(&r).await, Some(false));
    // Through an expiry, re-created marked.
    let old = r.session().unwrap();
    server.expire_session(&old).await.unwrap();
    eventually(WAIT, "re-registered under a new session", || async {
        let Some(new) = r.session() else { return false };
        matches!(zk.check_stat(&path).await, Ok(Some(stat)) if new.id() != old.id() && stat.ephemeral_owner == new.id().0)
    })
    .await
    .unwrap();
    assert_eq!(zk.get_data(&path).await.unwrap().0, marked, "re-created marked");
    assert_eq!(r.set_maintenance(&path, false, None).await.unwrap(), Format::Curator);
    assert_eq!(zk.get_data(&path).await.unwrap().0, original, "its own bytes back");
    assert_eq!(serving(&r).await, Some(true));
    r.close().await;
}
