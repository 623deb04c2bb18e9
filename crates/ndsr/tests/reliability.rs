//! Faults beyond a plain restart or expiry (issue 14): a server that comes
//! back with a wiped data directory, its zxid gone back to zero.

mod common;

use common::*;
use ndsr_testkit::{eventually, unique_path, ZkServer};
use serde_json::json;

/// Whether `dir` holds exactly `names`, each owned by `registrant`'s live
/// session, as a plain client reads it.
async fn all_held_by(
    truth: &zookeeper_client::Client,
    registrant: &ndsr::Registry,
    dir: &str,
    names: &[String],
) -> bool {
    let Some(session) = registrant.session() else { return false };
    if !truth.list_children(dir).await.is_ok_and(|c| c.len() == names.len()) {
        return false;
    }
    for name in names {
        match truth.check_stat(&format!("{dir}/{name}")).await {
            Ok(Some(stat)) if stat.ephemeral_owner == session.id().0 => {}
            _ => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_server_gets_every_registration_back_under_a_new_session() {
    let server = ZkServer::new().unwrap();
    let registrant = registry(&server.connect_string()).await;
    let watcher = registry(&server.connect_string()).await;
    let dir = unique_path("wiped");
    let names: Vec<String> = (0..20).map(|i| format!("10.0.0.{i}:80")).collect();
    for (i, name) in names.iter().enumerate() {
        registrant.set_node(&format!("{dir}/{name}"), json!({"i": i})).await.unwrap();
    }
    // Make the zxid well ahead of a fresh server's.
    for i in 0..500 {
        registrant.set_data(&format!("{dir}-config"), json!({"v": i})).await.unwrap();
    }
    let listed = watcher.get(&dir).await.unwrap();
    assert_eq!(listed.children.len(), 20);
    let old = registrant.session().unwrap();

    server.restart_wiped().unwrap();
    let truth = other(&server.connect_string()).await;
    eventually(WAIT, "every registration back, owned by a new session", || async {
        registrant.session().is_some_and(|new| new.id() != old.id())
            && all_held_by(&truth, &registrant, &dir, &names).await
    })
    .await
    .unwrap();
    eventually(WAIT, "the watcher sees them all, fresh", || async {
        matches!(watcher.get(&dir).await, Ok(s) if s.children.len() == names.len() && !s.is_stale())
    })
    .await
    .unwrap();
    // The registrant said that the server's history went back, once (the
    // watcher writes nothing: it cannot tell).
    assert_eq!(registrant.stats().history_rewinds, 1, "{:?}", registrant.stats());
    // The persistent node written before the wipe is gone with the data
    // directory: ndsr does not invent it (it was not a registration).
    assert!(truth.check_stat(&format!("{dir}-config")).await.unwrap().is_none());
    registrant.close().await;
    watcher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_children_with_binary_junk_among_them_still_list_and_watch() {
    use zookeeper_client::{Acls, CreateMode};
    let server = ZkServer::shared();
    let zk = other(&server.connect_string()).await;
    let dir = unique_path("junk");
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    zk.mkdir(&dir, &opts).await.unwrap();
    const N: usize = 10_000;
    // Every 1,000th child holds binary junk; the others nerve instances.
    let data = |i: usize| -> Vec<u8> {
        if i % 1000 == 999 {
            vec![0xff, 0x00, 0xfe, b'{', 0x80, b'}', i as u8]
        } else {
            format!(r#"{{"host":"10.0.{}.{}","port":80,"name":"i{i}"}}"#, i / 256, i % 256).into_bytes()
        }
    };
    for chunk in (0..N).collect::<Vec<_>>().chunks(2000) {
        let creates: Vec<_> = chunk
            .iter()
            .map(|i| {
                let (path, bytes) = (format!("{dir}/i_{i:06}"), data(*i));
                let zk = &zk;
                let opts = &opts;
                async move { zk.create(&path, &bytes, opts).await.map(drop) }
            })
            .collect();
        for created in futures::future::join_all(creates).await {
            created.unwrap();
        }
    }
    let r = registry(&server.connect_string()).await;
    let listing = r.instances(&dir, None).await.unwrap();
    assert_eq!(listing.format, Some(ndsr::discovery::Format::Nerve));
    assert_eq!((listing.instances.len(), listing.bad.len()), (N - 10, 10));
    for bad in &listing.bad {
        assert!(bad.key.ends_with("999") && !bad.reason.is_empty(), "{bad:?}");
    }

    let mut watch = r.watch_instances(&dir, None).unwrap();
    let first = watch.next().await.unwrap();
    assert_eq!((first.instances.instances.len(), first.instances.bad.len()), (N - 10, 10));
    // One more piece of junk, and one more instance: both reported.
    zk.create(&format!("{dir}/j_junk"), &[0xc3, 0x28], &opts).await.unwrap();
    zk.create(&format!("{dir}/j_good"), br#"{"host":"10.1.0.1","port":81}"#, &opts).await.unwrap();
    let seen = tokio::time::timeout(WAIT, async {
        loop {
            let change = watch.next().await.unwrap();
            if change.instances.bad.len() == 11 && change.instances.instances.len() == N - 9 {
                return change;
            }
        }
    })
    .await
    .expect("the new junk and the new instance are reported");
    assert!(seen.instances.bad.iter().any(|b| b.key == "j_junk"));
    r.close().await;
}

/// Copies the directory `from` to `to` (made), recursively.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restored_from_an_older_snapshot_gets_every_registration_back() {
    let server = ZkServer::new().unwrap();
    let registrant = registry(&server.connect_string()).await;
    let watcher = registry(&server.connect_string()).await;
    let dir = unique_path("rollback");
    let before: Vec<String> = (0..10).map(|i| format!("10.0.0.{i}:80")).collect();
    let after: Vec<String> = (0..10).map(|i| format!("10.0.1.{i}:80")).collect();
    for name in &before {
        registrant.set_node(&format!("{dir}/{name}"), json!({})).await.unwrap();
    }
    // The backup: the data directory as it is now, copied while stopped.
    let backup = tempfile::tempdir().unwrap();
    server.stop().unwrap();
    copy_dir(server.data_dir(), backup.path());
    server.start().unwrap();
    eventually(WAIT, "reconnected", || async { registrant.state() == ndsr::State::Connected }).await.unwrap();
    for name in &after {
        registrant.set_node(&format!("{dir}/{name}"), json!({})).await.unwrap();
    }
    for i in 0..300 {
        registrant.set_data(&format!("{dir}-config"), json!({"v": i})).await.unwrap();
    }
    // Restore the old data directory: the server forgets everything since.
    server.stop().unwrap();
    std::fs::remove_dir_all(server.data_dir()).unwrap();
    copy_dir(backup.path(), server.data_dir());
    server.start().unwrap();

    let truth = other(&server.connect_string()).await;
    let all: Vec<String> = before.iter().chain(&after).cloned().collect();
    eventually(WAIT, "all 20 back, owned by the registrant's live session", || async {
        all_held_by(&truth, &registrant, &dir, &all).await
    })
    .await
    .unwrap();
    eventually(WAIT, "the watcher sees all 20, fresh", || async {
        matches!(watcher.get(&dir).await, Ok(s) if s.children.len() == all.len() && !s.is_stale())
    })
    .await
    .unwrap();
    assert_eq!(registrant.stats().history_rewinds, 1, "{:?}", registrant.stats());
    registrant.close().await;
    watcher.close().await;
}
