//! `Registry::read_acl` and `Registry::set_acl` against a real server:
//! the ACL as stored with its version, and a set conditional on it.

mod common;

use common::*;
use ndsr::acl::{Acl, AuthId, Permission};
use ndsr::Error;
use ndsr_testkit::{unique_path, ZkServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_acl_and_set_acl_conditional_on_the_acl_version() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/node", unique_path("acl-calls"));
    assert_eq!(r.read_acl(&path).await.unwrap(), None, "no node");
    r.put_raw(&path, b"x").await.unwrap();
    let (acl, stat) = r.read_acl(&path).await.unwrap().expect("the node");
    assert_eq!((acl, stat.aversion), (vec![Acl::new(Permission::ALL, AuthId::anyone())], 0));

    let new = [
        Acl::new(Permission::READ | Permission::ADMIN, AuthId::anyone()),
        Acl::new(Permission::ALL, AuthId::new("ip", "127.0.0.1")),
    ];
    let stat = r.set_acl(&path, &new, 0).await.unwrap();
    assert_eq!(stat.aversion, 1);
    let (acl, stat) = zk.get_acl(&path).await.unwrap();
    assert_eq!((acl, stat.aversion), (new.to_vec(), 1));
    // Planned at version 0, now at 1: nothing set.
    let stale = [Acl::new(Permission::READ, AuthId::anyone())];
    match r.set_acl(&path, &stale, 0).await {
        Err(Error::VersionConflict { path: p, expected: 0, current: Some(1) }) => assert_eq!(p, path),
        other => panic!("{other:?}"),
    }
    assert_eq!(zk.get_acl(&path).await.unwrap().0, new.to_vec());
    assert!(matches!(r.set_acl(&path, &[], -1).await, Err(Error::InvalidArgument(_))));
    match r.set_acl(&format!("{path}/missing"), &stale, 0).await {
        Err(Error::VersionConflict { current: None, .. }) => {}
        other => panic!("{other:?}"),
    }
    // -1: whatever the version.
    assert_eq!(r.set_acl(&path, &stale, -1).await.unwrap().aversion, 2);
    r.close().await;
}
