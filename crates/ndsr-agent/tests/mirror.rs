//! The mirror engine against two real ZooKeeper servers: a 10,000-node
//! tree converges in one pass, the next finds nothing to do, and running it
//! stays converged through a restart of each side; changes, deletes,
//! registrations, restarts and expiries are followed on a small tree.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ndsr::registry::raw::RawWrite;
use ndsr::Registry;
use ndsr_agent::mirror::{Mirror, Options};
use ndsr_testkit::{eventually, ZkServer};

async fn registry(server: &ZkServer) -> Registry {
    Registry::builder(&server.connect_string())
        .session_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .lazy(true)
        .build()
        .await
        .expect("registry")
}

/// The subtree at `root`: relative path to (bytes, ephemeral owner); read
/// level by level, 32 nodes at a time.
async fn tree(registry: &Registry, root: &str) -> BTreeMap<String, (Vec<u8>, i64)> {
    use futures::StreamExt;
    let mut found = BTreeMap::new();
    let mut level = vec![String::new()];
    while !level.is_empty() {
        let reads = level.into_iter().map(|rel| async move {
            let node = registry.read_node_raw(&format!("{root}{rel}")).await.expect("read");
            (rel, node)
        });
        let mut reads = futures::stream::iter(reads).buffer_unordered(32);
        let mut next = Vec::new();
        while let Some((rel, node)) = reads.next().await {
            let Some(node) = node else { continue };
            next.extend(node.children.iter().map(|child| format!("{rel}/{child}")));
            found.insert(rel, (node.bytes, node.stat.ephemeral_owner));
        }
        level = next;
    }
    found
}

/// Persistent nodes only, without the owner.
fn persistent(tree: &BTreeMap<String, (Vec<u8>, i64)>) -> BTreeMap<String, Vec<u8>> {
    tree.iter().filter(|(_, (_, owner))| *owner == 0).map(|(k, (b, _))| (k.clone(), b.clone())).collect()
}

/// Bytes that are neither JSON nor UTF-8 for some nodes.
fn bytes_of(i: usize) -> Vec<u8> {
    match i % 3 {
        0 => format!("{{\"n\":{i}}}").into_bytes(),
        1 => vec![0xff, 0x00, (i % 256) as u8],
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_nodes_converge_and_stay_converged_through_restarts() {
    let (a, b) = (ZkServer::new().expect("src"), ZkServer::new().expect("dst"));
    let (src, dst) = (registry(&a).await, registry(&b).await);
    // 100 directories of 99 leaves, the root and its directories: 10,001.
    let mut writes = vec![RawWrite::Create { path: "/m".into(), bytes: b"root".to_vec() }];
    for d in 0..100 {
        writes.push(RawWrite::Create { path: format!("/m/d{d}"), bytes: bytes_of(d) });
        for n in 0..99 {
            writes.push(RawWrite::Create { path: format!("/m/d{d}/n{n}"), bytes: bytes_of(d * 100 + n) });
        }
    }
    for batch in writes.chunks(1000) {
        src.write_raw(batch).await.expect("source tree");
    }
    // What DST has already: a node to update, one to delete (with a child),
    // one equal; and history nodes on SRC that are left out.
    dst.put_raw("/m/d0/n0", b"stale").await.expect("stale");
    dst.put_raw("/m/extra/child", b"x").await.expect("extra");
    dst.put_raw("/m/d1/n1", &bytes_of(101)).await.expect("equal");
    let expected = persistent(&tree(&src, "/m").await);
    assert_eq!(expected.len(), 10_001);

    let mut mirror = Mirror::new(src.clone(), "/m", dst.clone(), "/m", Options::default());
    let started = Instant::now();
    let pass = mirror.pass().await.expect("first pass");
    eprintln!("10,001 nodes converged in {:?}", started.elapsed());
    assert_eq!(pass.nodes, 10_001);
    // /m/d0 and /m/d1 were made by put_raw with their parents.
    assert_eq!((pass.created, pass.updated, pass.deleted, pass.failed), (10_001 - 5, 4, 2, 0), "{pass:?}");
    assert_eq!(persistent(&tree(&dst, "/m").await), expected);
    let status = mirror.status().borrow().clone();
    assert_eq!((status.nodes_behind, status.behind_since, status.passes), (0, None, 1));
    assert!(status.caught_up.is_some(), "{status:?}");

    let again = mirror.pass().await.expect("second pass");
    assert_eq!(again.changes(), 0, "{again:?}");

    // Running, it keeps the tree converged through a restart of each side.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(mirror.run(
        async {
            let _ = stopped.await;
        },
        |_, _| {},
    ));
    let converged = |what: &'static str| {
        let (src, dst) = (src.clone(), dst.clone());
        async move {
            let expected = persistent(&tree(&src, "/m").await);
            eventually(Duration::from_secs(60), what, || {
                let (dst, expected) = (dst.clone(), &expected);
                async move { persistent(&tree(&dst, "/m").await) == *expected }
            })
            .await
            .unwrap();
            expected.len()
        }
    };
    // DST is down while SRC changes 100 nodes and loses a directory of 100.
    b.stop().unwrap();
    let mut changes: Vec<RawWrite> =
        (0..100).map(|d| RawWrite::Set { path: format!("/m/d{d}/n5"), bytes: b"changed".to_vec() }).collect();
    changes.extend((0..99).map(|n| RawWrite::Delete { path: format!("/m/d99/n{n}") }));
    changes.push(RawWrite::Delete { path: "/m/d99".into() });
    src.write_raw(&changes).await.expect("changes");
    b.start().unwrap();
    assert_eq!(converged("converged after DST's restart").await, 9_901);
    // SRC restarts, then changes.
    a.stop().unwrap();
    a.start().unwrap();
    src.put_raw("/m/d0/n0", b"after the restart").await.expect("a change after SRC's restart");
    src.put_raw("/m/d100/n0", b"new").await.expect("a new directory");
    assert_eq!(converged("converged after SRC's restart").await, 9_903);
    let _ = stop.send(());
    running.await.expect("the mirror ends on shutdown");
    src.close().await;
    dst.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_registrations_and_restarts_are_followed() {
    let (a, b) = (ZkServer::new().expect("src"), ZkServer::new().expect("dst"));
    let (src, dst) = (registry(&a).await, registry(&b).await);
    src.put_raw("/s/config/app", b"{\"v\":1}").await.expect("config");
    src.put_raw("/s/config/gone", b"bye").await.expect("config");
    src.put_raw("/ndsr/history/x", b"h").await.expect("history");
    let options = Options { registrations: true, interval: Duration::from_secs(1), ..Options::default() };
    // The whole source: /zookeeper and the history root /ndsr are left out.
    let mirror = Mirror::new(src.clone(), "/", dst.clone(), "/copy", options);
    let status = mirror.status();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(mirror.run(
        async {
            let _ = stopped.await;
        },
        |_, _| {},
    ));
    let wait = Duration::from_secs(20);
    let equal = |path: &'static str, want: Option<&'static [u8]>| {
        let dst = dst.clone();
        move || {
            let dst = dst.clone();
            async move {
                dst.read_raw(path).await.ok().map(|n| n.map(|(b, _)| b)) == Some(want.map(<[u8]>::to_vec))
            }
        }
    };
    eventually(wait, "the tree is copied", equal("/copy/s/config/app", Some(b"{\"v\":1}"))).await.unwrap();
    assert!(dst.read_raw("/copy/ndsr").await.unwrap().is_none(), "the history root is left out");
    assert!(dst.read_raw("/copy/zookeeper").await.unwrap().is_none(), "/zookeeper is left out");

    // A change and a delete on SRC.
    src.put_raw("/s/config/app", b"{\"v\":2}").await.unwrap();
    src.delete_raw("/s/config/gone").await.unwrap();
    eventually(wait, "the change is followed", equal("/copy/s/config/app", Some(b"{\"v\":2}")))
        .await
        .unwrap();
    eventually(wait, "the delete is followed", equal("/copy/s/config/gone", None)).await.unwrap();

    // A registration on SRC is held on DST by the mirror's session.
    let service = registry(&a).await;
    service.set_node_raw("/s/services/web/10.0.0.1:80", b"up".to_vec()).await.unwrap();
    let web = "/copy/s/services/web/10.0.0.1:80";
    eventually(wait, "the registration is held", equal(web, Some(b"up"))).await.unwrap();
    let (_, stat) = dst.read_raw(web).await.unwrap().unwrap();
    let mine = dst.session().expect("a session").id().0;
    assert_eq!(stat.ephemeral_owner, mine, "an ephemeral node of the mirror's session");
    service.close().await;
    eventually(wait, "the registration goes with its source", equal(web, None)).await.unwrap();
    assert!(dst.read_raw("/copy/s/services/web").await.unwrap().is_some(), "its parent stays");

    // DST restarts; SRC changes meanwhile.
    b.stop().unwrap();
    src.put_raw("/s/config/app", b"{\"v\":3}").await.unwrap();
    src.put_raw("/s/config/new", b"n").await.unwrap();
    b.start().unwrap();
    eventually(wait, "converged after DST's restart", equal("/copy/s/config/new", Some(b"n"))).await.unwrap();
    eventually(wait, "and the change", equal("/copy/s/config/app", Some(b"{\"v\":3}"))).await.unwrap();

    // SRC restarts, then changes.
    a.stop().unwrap();
    a.start().unwrap();
    src.put_raw("/s/config/after", b"a").await.unwrap();
    src.delete_raw("/s/config/new").await.unwrap();
    eventually(wait, "converged after SRC's restart", equal("/copy/s/config/after", Some(b"a")))
        .await
        .unwrap();
    eventually(wait, "and the delete", equal("/copy/s/config/new", None)).await.unwrap();

    // Both sessions expire: a registration held on DST is made again in
    // the mirror's new session, and SRC's changes are still followed.
    let service = registry(&a).await;
    service.set_node_raw("/s/services/web/10.0.0.2:80", b"up".to_vec()).await.unwrap();
    let web = "/copy/s/services/web/10.0.0.2:80";
    eventually(wait, "the second registration is held", equal(web, Some(b"up"))).await.unwrap();
    b.expire_session(&dst.session().expect("a DST session")).await.unwrap();
    let old = src.session().expect("a SRC session");
    a.expire_session(&old).await.unwrap();
    eventually(wait, "held again in the new DST session", || {
        let dst = dst.clone();
        async move {
            let owner = dst.read_raw(web).await.ok().flatten().map(|(_, s)| s.ephemeral_owner);
            owner.is_some() && owner != Some(mine) && owner == dst.session().map(|s| s.id().0)
        }
    })
    .await
    .unwrap();
    eventually(wait, "SRC's registry has a new session", || {
        let (src, old) = (src.clone(), old.id().0);
        async move { src.state() == ndsr::State::Connected && src.session().is_some_and(|s| s.id().0 != old) }
    })
    .await
    .unwrap();
    src.put_raw("/s/config/expired", b"e").await.unwrap();
    eventually(wait, "followed after the expiries", equal("/copy/s/config/expired", Some(b"e")))
        .await
        .unwrap();
    service.close().await;
    eventually(wait, "and the registration still goes with its source", equal(web, None)).await.unwrap();

    eventually(wait, "no lag once converged", || {
        let status = status.clone();
        async move {
            let s = status.borrow();
            s.nodes_behind == 0 && s.behind_since.is_none() && s.error.is_none()
        }
    })
    .await
    .unwrap();

    let _ = stop.send(());
    running.await.expect("the mirror ends on shutdown");
    src.close().await;
    dst.close().await;
}

/// What would land in DST's configuration root is left out, and DST's own
/// nodes there are kept; a missing source is an error in the status, not
/// a converged mirror.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_destination_config_root_is_left_out_and_a_missing_source_is_said() {
    let server = ZkServer::shared();
    let r = Registry::builder(&server.connect_string()).build().await.unwrap();
    let base = ndsr_testkit::unique_path("mirror-root");
    let (src_path, dst_path) = (format!("{base}/src"), format!("{base}/dst"));
    r.put_raw(&format!("{src_path}/a"), b"1").await.unwrap();
    r.put_raw(&format!("{src_path}/cfg/h"), b"from src").await.unwrap();
    r.put_raw(&format!("{dst_path}/cfg/keep"), b"dst's own").await.unwrap();
    let options = Options { config_root: format!("{dst_path}/cfg"), ..Options::default() };
    let mut mirror = Mirror::new(r.clone(), &src_path, r.clone(), &dst_path, options);
    mirror.pass().await.unwrap();
    let read = |p: String| {
        let r = r.clone();
        async move { r.read_raw(&p).await.unwrap().map(|(b, _)| b) }
    };
    assert_eq!(read(format!("{dst_path}/a")).await, Some(b"1".to_vec()));
    assert_eq!(read(format!("{dst_path}/cfg/h")).await, None, "nothing lands in DST's config root");
    assert_eq!(read(format!("{dst_path}/cfg/keep")).await, Some(b"dst's own".to_vec()), "nor is deleted");
    assert_eq!(mirror.status().borrow().error, None);

    let mut missing =
        Mirror::new(r.clone(), &format!("{base}/nope"), r.clone(), &dst_path, Options::default());
    let pass = missing.pass().await.unwrap();
    assert!(pass.source_missing);
    let status = missing.status().borrow().clone();
    assert!(status.error.as_deref().is_some_and(|e| e.contains("does not exist")), "{status:?}");
    assert!(status.behind_since.is_some(), "not converged");
    assert_eq!(read(format!("{dst_path}/a")).await, Some(b"1".to_vec()), "nothing written");
}
