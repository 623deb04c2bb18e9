//! Partitions (issue 14): a registrant cut from every member of a 3-server
//! ensemble (a FaultProxy in front of each), for less and for more than its
//! session timeout, while watchers and another registrant stay connected.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ndsr::Registry;
use ndsr_testkit::{eventually, unique_path, FaultProxy, Mode, ZkEnsemble};
use serde_json::json;

struct Cut {
    _ensemble: Arc<ZkEnsemble>,
    proxies: Vec<FaultProxy>,
    direct: String,
}

impl Cut {
    async fn new() -> Cut {
        let ensemble = Arc::new(tokio::task::spawn_blocking(ZkEnsemble::new).await.unwrap().unwrap());
        let proxies: Vec<_> =
            ensemble.members().iter().map(|m| FaultProxy::start(&m.connect_string()).unwrap()).collect();
        Cut { direct: ensemble.connect_string(), _ensemble: ensemble, proxies }
    }

    fn through_proxies(&self) -> String {
        self.proxies.iter().map(FaultProxy::connect_string).collect::<Vec<_>>().join(",")
    }

    fn cut(&self) {
        self.proxies.iter().for_each(FaultProxy::cut);
    }

    fn heal(&self) {
        self.proxies.iter().for_each(FaultProxy::heal);
    }
}

/// Every children list a watcher is handed for `dir`, in order.
fn record(watcher: &Registry, dir: &str) -> Arc<Mutex<Vec<Vec<String>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    watcher
        .add_callback(dir, move |s: &ndsr::Snapshot| log.lock().unwrap().push(s.children.clone()))
        .unwrap();
    seen
}

async fn czxid(zk: &zookeeper_client::Client, path: &str) -> Option<i64> {
    zk.check_stat(path).await.ok().flatten().map(|s| s.czxid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_shorter_than_the_session_timeout_is_invisible_to_watchers() {
    init_logs();
    let net = Cut::new().await;
    let registrant = Registry::builder(&net.through_proxies())
        .session_timeout(Duration::from_secs(8))
        .build()
        .await
        .unwrap();
    let watcher = registry(&net.direct).await;
    let truth = other(&net.direct).await;
    let dir = unique_path("short-cut");
    let node = format!("{dir}/10.0.0.1:80");
    registrant.set_node(&node, json!({})).await.unwrap();
    let seen = record(&watcher, &dir);
    eventually(WAIT, "the watcher sees the node", || async {
        seen.lock().unwrap().last().is_some_and(|c| c.len() == 1)
    })
    .await
    .unwrap();
    let before = czxid(&truth, &node).await.unwrap();

    net.cut();
    eventually(WAIT, "the registrant notices", || async { registrant.state() != ndsr::State::Connected })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await; // a quarter of the session timeout
    net.heal();
    eventually(WAIT, "reconnected", || async { registrant.state() == ndsr::State::Connected }).await.unwrap();

    assert_eq!(czxid(&truth, &node).await, Some(before), "the same node, never re-created");
    assert!(
        seen.lock().unwrap().iter().skip(1).all(|c| c.len() == 1),
        "no watcher saw it vanish: {:?}",
        seen.lock().unwrap()
    );
    assert_eq!(registrant.stats().expiries, 0);
    registrant.close().await;
    watcher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_longer_than_the_session_timeout_vanishes_once_and_returns_once() {
    init_logs();
    let net = Cut::new().await;
    let timeout = Duration::from_secs(3);
    let registrant =
        Registry::builder(&net.through_proxies()).session_timeout(timeout).build().await.unwrap();
    let bystander = registry(&net.direct).await;
    let watcher = registry(&net.direct).await;
    let truth = other(&net.direct).await;
    let dir = unique_path("long-cut");
    let (node, other_node) = (format!("{dir}/10.0.0.1:80"), format!("{dir}/10.0.0.2:80"));
    registrant.set_node(&node, json!({})).await.unwrap();
    bystander.set_node(&other_node, json!({})).await.unwrap();
    let seen = record(&watcher, &dir);
    eventually(WAIT, "the watcher sees both", || async {
        seen.lock().unwrap().last().is_some_and(|c| c.len() == 2)
    })
    .await
    .unwrap();
    let bystanders_node = czxid(&truth, &other_node).await.unwrap();

    net.cut();
    eventually(WAIT, "the server expires the cut session: the node vanishes", || async {
        czxid(&truth, &node).await.is_none()
    })
    .await
    .unwrap();
    net.heal();
    eventually(WAIT, "back, under a new session", || async { czxid(&truth, &node).await.is_some() })
        .await
        .unwrap();
    eventually(WAIT, "the watcher sees it back", || async {
        seen.lock().unwrap().last().is_some_and(|c| c.len() == 2)
    })
    .await
    .unwrap();
    // Exactly one vanish and one return: the watcher's lists go 2, 1, 2.
    let lists: Vec<usize> = seen.lock().unwrap().iter().map(Vec::len).collect();
    let mut runs = lists.clone();
    runs.dedup();
    assert_eq!(runs, [2, 1, 2], "one vanish, one return: {lists:?}");
    assert_eq!(czxid(&truth, &other_node).await, Some(bystanders_node), "nothing else disturbed");
    assert_eq!(bystander.stats().expiries, 0);
    registrant.close().await;
    bystander.close().await;
    watcher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_a_member_cut_from_the_quorum_moves_to_the_majority() {
    init_logs();
    let ensemble = Arc::new(tokio::task::spawn_blocking(ZkEnsemble::partitionable).await.unwrap().unwrap());
    // Client-port proxies tell which member the reader is connected to.
    let front: Vec<_> =
        ensemble.members().iter().map(|m| FaultProxy::start(&m.connect_string()).unwrap()).collect();
    let through: String = front.iter().map(FaultProxy::connect_string).collect::<Vec<_>>().join(",");
    let reader = Registry::builder(&through).session_timeout(Duration::from_secs(10)).build().await.unwrap();
    let dir = unique_path("minority");
    reader.get(&dir).await.unwrap();
    let on = front.iter().position(|p| p.open_connections() > 0).expect("the reader is connected somewhere");
    let majority: Vec<String> =
        (0..ZkEnsemble::SIZE).filter(|&j| j != on).map(|j| ensemble.member(j).connect_string()).collect();
    // The writer's session outlives the leader election the cut may cause
    // (with the tests' 4 s, a slow election on a busy machine expired it,
    // and a:1, its registration, vanished until made again: the reader
    // then rightly showed b without a).
    let writer = Registry::builder(&majority.join(","))
        .session_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(20))
        .build()
        .await
        .unwrap();
    writer.set_node(&format!("{dir}/a:1"), json!({})).await.unwrap();
    eventually(WAIT, "the reader sees a", || async {
        reader.get(&dir).await.is_ok_and(|s| s.children == ["a:1"])
    })
    .await
    .unwrap();
    let session = reader.session().unwrap().id();

    ensemble.isolate(on);
    let cut = ensemble.clone();
    eventually(WAIT, "the cut member stops serving (no quorum)", || {
        let cut = cut.clone();
        async move {
            tokio::task::spawn_blocking(move || !matches!(cut.mode(on), Mode::Leader | Mode::Follower))
                .await
                .unwrap()
        }
    })
    .await
    .unwrap();
    writer.set_node(&format!("{dir}/b:1"), json!({})).await.unwrap();
    // Until the reader has moved, whatever it shows is either marked stale
    // or true; it never goes back (a is there throughout).
    let moved = eventually(WAIT, "the reader moves to the majority and sees b, fresh", || async {
        let Ok(Some(view)) = reader.get_cached(&dir) else { return false };
        assert!(view.children.iter().any(|c| c == "a:1"), "the reader went back: {view:?}");
        !view.is_stale() && view.children.len() == 2
    })
    .await;
    moved.unwrap();
    assert_eq!(reader.session().unwrap().id(), session, "the same session, moved");
    assert_eq!(reader.stats().expiries, 0);
    assert_eq!(writer.stats().expiries, 0, "the writer's a:1 was there throughout");
    ensemble.rejoin(on);
    reader.close().await;
    writer.close().await;
}
