//! The raw calls (`registry::raw`) against a real server, read back with a
//! plain client: exact bytes, parents made, a transaction all or nothing
//! with the failed write named, deletes, and the recursive watch with its
//! end after the session's.

mod common;

use common::*;
use ndsr::registry::raw::{RawWrite, TreeEvent};
use ndsr::Error;
use ndsr_testkit::{unique_path, ZkServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_raw_writes_exact_bytes_with_parents_and_delete_raw_removes() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let root = unique_path("raw-put");
    let path = format!("{root}/a/b");
    r.put_raw(&path, &[0xff, 0x00]).await.unwrap();
    let (bytes, stat) = zk.get_data(&path).await.unwrap();
    assert_eq!((bytes, stat.ephemeral_owner), (vec![0xff, 0x00], 0), "persistent, exact bytes");
    r.put_raw(&path, b"").await.unwrap();
    assert_eq!(zk.get_data(&path).await.unwrap().0, b"");
    let node = r.read_node_raw(&format!("{root}/a")).await.unwrap().expect("the parent");
    assert_eq!((node.bytes, node.children), (Vec::new(), vec!["b".to_string()]));

    assert!(matches!(r.delete_raw(&format!("{root}/a")).await, Err(Error::NotEmpty { .. })));
    r.delete_raw(&path).await.unwrap();
    r.delete_raw(&path).await.unwrap(); // absent is fine
    assert_eq!(exists(&zk, &path).await, None);
    assert_eq!(r.read_node_raw(&path).await.unwrap(), None);
    assert!(matches!(r.put_raw("/", b"x").await, Err(Error::InvalidPath { .. })));
    assert!(matches!(r.delete_raw("/zookeeper").await, Err(Error::InvalidPath { .. })));
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_raw_is_all_or_nothing_and_names_the_failed_write() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let root = unique_path("raw-multi");
    r.put_raw(&format!("{root}/old"), b"1").await.unwrap();
    let create = |p: &str, b: &[u8]| RawWrite::Create { path: format!("{root}{p}"), bytes: b.to_vec() };
    r.write_raw(&[
        create("/x", b"x"),
        create("/x/y", b"y"),
        RawWrite::Set { path: format!("{root}/old"), bytes: b"2".to_vec() },
    ])
    .await
    .unwrap();
    assert_eq!(zk.get_data(&format!("{root}/x/y")).await.unwrap().0, b"y");
    assert_eq!(zk.get_data(&format!("{root}/old")).await.unwrap().0, b"2");

    // The second write fails (its node exists): nothing of the batch is made.
    let failed = r
        .write_raw(&[
            RawWrite::Delete { path: format!("{root}/old") },
            create("/x", b"again"),
            create("/z", b"z"),
        ])
        .await
        .unwrap_err();
    match &failed {
        Error::ZooKeeper { path, source: zookeeper_client::Error::NodeExists } => {
            assert_eq!(path, &format!("{root}/x"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(zk.get_data(&format!("{root}/old")).await.unwrap().0, b"2", "the delete was not made");
    assert_eq!(exists(&zk, &format!("{root}/z")).await, None);

    let too_big = vec![create("/big", &vec![0; 600 * 1024]), create("/big2", &vec![0; 600 * 1024])];
    assert!(matches!(r.write_raw(&too_big).await, Err(Error::DataTooLarge { .. })));
    r.write_raw(&[]).await.unwrap();
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_tree_sees_changes_below_and_ends_with_the_session() {
    let server = ZkServer::new().unwrap();
    let r = registry(&server.connect_string()).await;
    let writer = registry(&server.connect_string()).await;
    let root = unique_path("raw-watch");
    let mut watch = r.watch_tree(&root).await.unwrap();
    writer.put_raw(&format!("{root}/a/b"), b"1").await.unwrap();
    let deadline = std::time::Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen.contains(&format!("{root}/a/b")) {
        match tokio::time::timeout(deadline, watch.next()).await.expect("an event") {
            TreeEvent::Changed(path) => seen.push(path),
            other => panic!("{other:?}"),
        }
    }
    assert!(seen.contains(&root) || seen.contains(&format!("{root}/a")), "{seen:?}");

    server.expire_session(&r.session().unwrap()).await.unwrap();
    loop {
        match tokio::time::timeout(deadline, watch.next()).await.expect("the end") {
            TreeEvent::Ended => break,
            TreeEvent::Reconnected | TreeEvent::Changed(_) => {}
        }
    }
    assert_eq!(watch.next().await, TreeEvent::Ended, "and ended for good");
    r.close().await;
    writer.close().await;
}
