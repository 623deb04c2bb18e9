//! Leader election (issue 26, a first part) against a real ZooKeeper:
//! contenders take turns in the order of their nodes with growing tokens;
//! kazoo's `Election` contends on the same path; another layout's path is
//! refused; a leader whose link goes silent drops leadership before the
//! server expires its session and the next contender leads.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ndsr::election::{ElectionLayout, Leadership};
use ndsr::{Error, Registry};
use ndsr_testkit::{eventually, unique_path, FaultProxy, ZkServer};
use tokio::time::Instant;

async fn until(election: &ndsr::election::Election, what: &str, f: impl Fn(&Leadership) -> bool) {
    let mut state = election.watch();
    tokio::time::timeout(WAIT, state.wait_for(|s| f(s)))
        .await
        .unwrap_or_else(|_| panic!("{what}: {:?}", election.state()))
        .unwrap();
}

fn token(election: &ndsr::election::Election) -> i64 {
    match election.state() {
        Leadership::Leader { token } => token,
        other => panic!("not leader: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contenders_take_turns_in_order_with_growing_tokens() {
    let server = ZkServer::shared();
    let path = unique_path("election");
    let rs = [
        registry(&server.connect_string()).await,
        registry(&server.connect_string()).await,
        registry(&server.connect_string()).await,
    ];
    let a = rs[0].election(&path, "a").join().await.unwrap();
    until(&a, "a leads", |s| matches!(s, Leadership::Leader { .. })).await;
    let b = rs[1].election(&path, "b").join().await.unwrap();
    let c = rs[2].election(&path, "c").join().await.unwrap();
    until(&b, "b follows first", |s| *s == Leadership::Follower { position: 1 }).await;
    until(&c, "c follows second", |s| *s == Leadership::Follower { position: 2 }).await;
    let ids: Vec<String> = a.contenders().await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let first = token(&a);

    a.resign().await;
    until(&b, "b leads once a resigns", |s| matches!(s, Leadership::Leader { .. })).await;
    until(&c, "c is next", |s| *s == Leadership::Follower { position: 1 }).await;
    let second = token(&b);
    assert!(second > first, "tokens grow: {first} then {second}");

    drop(b);
    until(&c, "c leads once b is dropped", |s| matches!(s, Leadership::Leader { .. })).await;
    assert!(token(&c) > second);
    let ids: Vec<String> = c.contenders().await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["c"], "a resigned and b was dropped: their nodes are gone");
    let mut state = c.watch();
    rs[2].close().await;
    tokio::time::timeout(WAIT, state.wait_for(|s| *s == Leadership::Ended)).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_of_another_layout_is_refused_naming_it() {
    let server = ZkServer::shared();
    let path = unique_path("election-layout");
    let r = registry(&server.connect_string()).await;
    let curator = r.election(&path, "latch").layout(ElectionLayout::CuratorLatch).join().await.unwrap();
    until(&curator, "the latch leads", |s| matches!(s, Leadership::Leader { .. })).await;
    let node = &curator.contenders().await.unwrap()[0].node;
    assert!(node.starts_with("_c_") && node.contains("-latch-"), "{node}");
    match r.election(&path, "kazoo").join().await {
        Err(Error::LayoutMismatch { found, asked, .. }) => {
            assert_eq!((found, asked), ("curator-latch", "kazoo"))
        }
        other => panic!("a kazoo contender on a latch path: {other:?}"),
    }
    let selector = r.election(&path, "sel").layout(ElectionLayout::CuratorSelector).join().await;
    assert!(matches!(selector, Err(Error::LayoutMismatch { found: "curator-latch", .. })), "{selector:?}");

    // Locks of another client count too: a Curator read/write lock's path
    // is not a LeaderSelector's, a semaphore's is no one's election; a
    // kazoo reader is ignored by kazoo's Election, as kazoo does.
    let rw = unique_path("election-rw");
    let _read = r
        .lock(&rw)
        .layout(ndsr::lock::LockLayout::Curator)
        .mode(ndsr::lock::LockMode::Read)
        .acquire()
        .await
        .unwrap();
    let refused = r.election(&rw, "sel").layout(ElectionLayout::CuratorSelector).join().await;
    assert!(matches!(refused, Err(Error::LayoutMismatch { found: "curator-rw", .. })), "{refused:?}");
    let semaphore = unique_path("election-semaphore");
    let _held = r.lock(&semaphore).acquire().await.unwrap();
    let refused = r.election(&semaphore, "k").join().await;
    assert!(matches!(refused, Err(Error::LayoutMismatch { found: "semaphore", .. })), "{refused:?}");
    let readers = unique_path("election-readers");
    let _reader = r
        .lock(&readers)
        .layout(ndsr::lock::LockLayout::Kazoo)
        .mode(ndsr::lock::LockMode::Read)
        .acquire()
        .await
        .unwrap();
    let beside = r.election(&readers, "k").join().await.unwrap();
    until(&beside, "kazoo's Election ignores kazoo's readers", |s| matches!(s, Leadership::Leader { .. }))
        .await;
}

/// The venv `scripts/setup.sh` makes with kazoo.
fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(python.exists(), "kazoo is not installed: run scripts/setup.sh (it makes .venv)");
    python
}

const KAZOO_ELECTION: &str = r#"
import sys
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1]); zk.start()
election = zk.Election(sys.argv[2], "kazoo")
def lead():
    print("leading", ",".join(election.contenders()), flush=True)
    sys.stdin.readline()
election.run(lead)
print("done", flush=True)
zk.stop()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_and_ndsr_take_turns_on_one_path() {
    let server = ZkServer::shared();
    let path = unique_path("election-kazoo");
    let (ra, rb) = (registry(&server.connect_string()).await, registry(&server.connect_string()).await);
    let a = ra.election(&path, "ndsr-a").join().await.unwrap();
    until(&a, "ndsr-a leads", |s| matches!(s, Leadership::Leader { .. })).await;
    let mut kazoo = Command::new(python())
        .args(["-c", KAZOO_ELECTION, &server.connect_string(), &path])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(kazoo.stdout.take().unwrap()).lines();
    eventually(WAIT, "kazoo's node is in line", || async { a.contenders().await.unwrap().len() == 2 })
        .await
        .unwrap();
    let b = rb.election(&path, "ndsr-b").join().await.unwrap();
    until(&b, "ndsr-b is behind kazoo", |s| *s == Leadership::Follower { position: 2 }).await;
    let ids: Vec<String> = a.contenders().await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["ndsr-a", "kazoo", "ndsr-b"]);

    a.resign().await;
    let line = tokio::task::spawn_blocking(move || {
        let line = lines.next().unwrap().unwrap();
        (line, lines)
    })
    .await
    .unwrap();
    let (line, mut lines) = line;
    assert_eq!(line, "leading kazoo,ndsr-b", "kazoo leads next and sees ndsr-b behind it");
    until(&b, "ndsr-b is next", |s| *s == Leadership::Follower { position: 1 }).await;
    assert!(!b.is_leader());

    kazoo.stdin.take().unwrap().write_all(b"stop\n").unwrap();
    until(&b, "ndsr-b leads once kazoo is done", |s| matches!(s, Leadership::Leader { .. })).await;
    assert_eq!(lines.next().unwrap().unwrap(), "done");
    assert!(kazoo.wait().unwrap().success());
}

/// Who changed to what, when.
type Seen = (&'static str, Leadership, Instant);

/// A leader whose link is blackholed (nothing answered, nothing refused)
/// drops leadership on its own, before the server can expire its session;
/// only then does the next contender lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_leader_steps_down_before_the_next_one_leads() {
    let server = ZkServer::shared();
    let path = unique_path("election-silent");
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let leader_registry = Registry::builder(&proxy.connect_string())
        .session_timeout(Duration::from_secs(4))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let leader = leader_registry.election(&path, "first").join().await.unwrap();
    until(&leader, "first leads", |s| matches!(s, Leadership::Leader { .. })).await;
    let next_registry = registry(&server.connect_string()).await;
    let next = next_registry.election(&path, "next").join().await.unwrap();
    until(&next, "next follows", |s| *s == Leadership::Follower { position: 1 }).await;

    // Record when each side's state changes.
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    for (name, election) in [("first", &leader), ("next", &next)] {
        let (mut state, seen) = (election.watch(), seen.clone());
        tokio::spawn(async move {
            while state.changed().await.is_ok() {
                let now = state.borrow_and_update().clone();
                seen.lock().unwrap().push((name, now, Instant::now()));
            }
        });
    }
    proxy.blackhole();
    until(&next, "next leads once first's session expires", |s| matches!(s, Leadership::Leader { .. })).await;
    // The recorder has seen it too.
    let recorded = seen.clone();
    eventually(WAIT, "the recorder saw next lead", || {
        let recorded = recorded.clone();
        async move {
            recorded
                .lock()
                .unwrap()
                .iter()
                .any(|(n, s, _)| *n == "next" && matches!(s, Leadership::Leader { .. }))
        }
    })
    .await
    .unwrap();
    let seen = seen.lock().unwrap().clone();
    let stepped_down = seen.iter().find(|(n, s, _)| *n == "first" && !matches!(s, Leadership::Leader { .. }));
    let took_over = seen.iter().find(|(n, s, _)| *n == "next" && matches!(s, Leadership::Leader { .. }));
    let (Some(down), Some(up)) = (stepped_down, took_over) else { panic!("{seen:?}") };
    assert!(down.2 < up.2, "never two leaders: first stepped down before next led: {seen:?}");
    // The deadline the leader knew: the server could not expire its session,
    // and let next lead, before it.
    // Silence, or the client dropping the silent connection first: either
    // way the session may live, and no one else leads before it expires.
    let reason = leader.lost_reason().unwrap();
    assert!(
        matches!(reason, ndsr::election::LostReason::Silent | ndsr::election::LostReason::Disconnected),
        "{reason:?}"
    );
    assert!(!reason.another_may_lead());
    assert_eq!(next.lost_reason(), None, "never stopped leading");
    let deadline = leader.session_deadline().expect("known once it led");
    assert!(up.2.into_std() >= deadline, "next led {:?} before the deadline", deadline - up.2.into_std());
    assert!(deadline > down.2.into_std(), "the deadline is after the step-down");
    assert_eq!(next_registry.election(&path, "third").join().await.unwrap().session_deadline(), None);
    proxy.heal();
}

/// The token is the node's czxid: it grows from one leader to the next even
/// when the election's parent is deleted and made again (a sequence number
/// would start over); a contender of another layout arriving while this
/// one leads makes it step down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_grow_across_a_remade_parent_and_another_layout_deposes() {
    let server = ZkServer::shared();
    let path = unique_path("election-token");
    let r = registry(&server.connect_string()).await;
    let first = r.election(&path, "one").join().await.unwrap();
    until(&first, "one leads", |s| matches!(s, Leadership::Leader { .. })).await;
    let one = token(&first);
    first.resign().await;
    r.unset_recursive(&path).await.unwrap();
    let second = r.election(&path, "two").join().await.unwrap();
    until(&second, "two leads", |s| matches!(s, Leadership::Leader { .. })).await;
    let two = token(&second);
    assert!(two > one, "the token grows across a re-made parent: {one} then {two}");
    let sequence = second.contenders().await.unwrap()[0].sequence;
    assert_eq!(sequence, 0, "the sequence started over with the parent");

    let plain = other(&server.connect_string()).await;
    let latch = format!("{path}/_c_8b8a2d6e-8a7e-4b7c-9c5e-3d2f1a0b9c8d-latch-");
    let options =
        zookeeper_client::CreateMode::EphemeralSequential.with_acls(zookeeper_client::Acls::anyone_all());
    plain.create(&latch, b"curator", &options).await.unwrap();
    until(&second, "two steps down when a Curator latch joins its path", |s| {
        !matches!(s, Leadership::Leader { .. })
    })
    .await;
    let reason = second.lost_reason().unwrap();
    assert_eq!(reason, ndsr::election::LostReason::AnotherLayout);
    assert!(reason.another_may_lead(), "the latch's client may lead already");
}

/// Every change of `election`'s state, as it happens.
fn record(election: &ndsr::election::Election) -> Arc<Mutex<Vec<Leadership>>> {
    let seen: Arc<Mutex<Vec<Leadership>>> = Arc::default();
    let (mut state, out) = (election.watch(), seen.clone());
    tokio::spawn(async move {
        while state.changed().await.is_ok() {
            let now = state.borrow_and_update().clone();
            out.lock().unwrap().push(now);
        }
    });
    seen
}

/// With a grace, a leader whose connection is refused and comes back
/// within it stays leader throughout (without one it would drop to `Lost`);
/// a blackholed link still makes it step down before the next one leads,
/// whatever the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_rides_out_a_short_refusal_but_not_a_silent_link() {
    let server = ZkServer::shared();
    let path = unique_path("election-grace");
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let r = Registry::builder(&proxy.connect_string())
        .session_timeout(Duration::from_secs(8))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let leader = r.election(&path, "graced").grace(Duration::from_secs(60)).join().await.unwrap();
    until(&leader, "graced leads", |s| matches!(s, Leadership::Leader { .. })).await;
    let seen = record(&leader);

    let mut states = r.state_changes();
    proxy.cut();
    tokio::time::timeout(WAIT, states.wait_for(|s| *s == ndsr::State::Disconnected)).await.unwrap().unwrap();
    proxy.heal();
    tokio::time::timeout(WAIT, states.wait_for(|s| *s == ndsr::State::Connected)).await.unwrap().unwrap();
    // Held through the reconnect: probes answer again.
    let heard = r.zk_requests();
    eventually(WAIT, "the leader's probes are answered after the reconnect", || async {
        r.zk_requests() > heard + 2
    })
    .await
    .unwrap();
    assert!(leader.is_leader(), "still leader: {:?}", leader.state());
    assert_eq!(*seen.lock().unwrap(), [], "no change of state across a short refusal within the grace");

    let next_registry = registry(&server.connect_string()).await;
    let next = next_registry.election(&path, "next").join().await.unwrap();
    until(&next, "next follows", |s| *s == Leadership::Follower { position: 1 }).await;
    let next_seen = record(&next);
    let down = Arc::new(Mutex::new(None));
    {
        let (mut state, down) = (leader.watch(), down.clone());
        let next_seen = next_seen.clone();
        tokio::spawn(async move {
            let _ = state.wait_for(|s| !matches!(s, Leadership::Leader { .. })).await;
            // What the next contender had seen when this one stepped down.
            *down.lock().unwrap() = Some(next_seen.lock().unwrap().clone());
        });
    }
    proxy.blackhole();
    until(&next, "next leads once graced's session expires", |s| matches!(s, Leadership::Leader { .. }))
        .await;
    eventually(WAIT, "graced stepped down", || async { down.lock().unwrap().is_some() }).await.unwrap();
    let when_down = down.lock().unwrap().clone().unwrap();
    assert!(
        !when_down.iter().any(|s| matches!(s, Leadership::Leader { .. })),
        "graced stepped down before next led, grace or not: next had seen {when_down:?}"
    );
    proxy.heal();
}

/// `leader()` and `election::status` (any layout; a mixed path has no
/// leader), and an empty path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_every_layout_and_the_leader() {
    let server = ZkServer::shared();
    let path = unique_path("election-status");
    let r = registry(&server.connect_string()).await;
    let empty = ndsr::election::status(&r, &path).await.unwrap();
    assert!(empty.layouts.is_empty() && empty.contenders.is_empty() && empty.leader().is_none());

    let a = r.election(&path, "a").join().await.unwrap();
    until(&a, "a leads", |s| matches!(s, Leadership::Leader { .. })).await;
    let b = r.election(&path, "b").join().await.unwrap();
    assert_eq!(b.leader().await.unwrap().map(|c| c.id), Some("a".to_string()));
    let status = ndsr::election::status(&r, &path).await.unwrap();
    assert_eq!(status.layouts, [ElectionLayout::Kazoo]);
    assert_eq!(status.contenders.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(status.leader().map(|c| c.id.as_str()), Some("a"));
    assert!(status.contenders[0].sequence < status.contenders[1].sequence);
    assert!(status.contenders[0].node.ends_with("__lock__0000000000"), "{:?}", status.contenders[0]);

    let plain = other(&server.connect_string()).await;
    let options =
        zookeeper_client::CreateMode::EphemeralSequential.with_acls(zookeeper_client::Acls::anyone_all());
    let latch = format!("{path}/_c_8b8a2d6e-8a7e-4b7c-9c5e-3d2f1a0b9c8d-latch-");
    plain.create(&latch, b"curator", &options).await.unwrap();
    let mixed = ndsr::election::status(&r, &path).await.unwrap();
    assert_eq!(mixed.layouts, [ElectionLayout::Kazoo, ElectionLayout::CuratorLatch]);
    assert_eq!(mixed.contenders.len(), 3);
    assert_eq!(mixed.contenders[2].layout, ElectionLayout::CuratorLatch);
    assert_eq!(mixed.leader(), None, "two layouts: no agreed leader");
    // Each layout's own list leaves the other out.
    assert_eq!(a.contenders().await.unwrap().len(), 2);
}

/// The blocking election: turns, tokens, resign.
#[test]
fn the_blocking_election_takes_turns() {
    let server = ZkServer::shared();
    let path = unique_path("election-blocking");
    let connect = || {
        ndsr::blocking::Registry::connect(
            Registry::builder(&server.connect_string()).session_timeout(Duration::from_secs(4)),
        )
        .unwrap()
    };
    let (ra, rb) = (connect(), connect());
    let a = ra.join(ra.election(&path, "a")).unwrap();
    let first = a.wait_for_leadership(WAIT).expect("a leads");
    let b = rb.join(rb.election(&path, "b").layout(ElectionLayout::Kazoo)).unwrap();
    assert_eq!(b.wait_change(&Leadership::Joining, WAIT), Leadership::Follower { position: 1 });
    assert_eq!(b.leader().unwrap().map(|c| c.id), Some("a".to_string()));
    assert_eq!(rb.election_status(&path).unwrap().contenders.len(), 2);
    a.resign();
    let second = b.wait_for_leadership(WAIT).expect("b leads once a resigns");
    assert!(second > first, "{first} then {second}");
    assert_eq!(b.contenders().unwrap().iter().map(|c| c.id.clone()).collect::<Vec<_>>(), ["b"]);
    b.resign();
    assert!(rb.election_status(&path).unwrap().contenders.is_empty());
}

/// A second node with a contender's own prefix (as a create whose answer was
/// lost, then made again, would leave) is deleted by the contender, so it
/// never stands in its own way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_of_a_contender_is_deleted() {
    let server = ZkServer::shared();
    let path = unique_path("election-double");
    let r = registry(&server.connect_string()).await;
    let second = registry(&server.connect_string()).await;
    let b = second.election(&path, "b").join().await.unwrap();
    until(&b, "b leads", |s| matches!(s, Leadership::Leader { .. })).await;
    let a = r.election(&path, "a").join().await.unwrap();
    until(&a, "a follows", |s| *s == Leadership::Follower { position: 1 }).await;
    let mine = a.contenders().await.unwrap()[1].node.clone();
    let prefix = mine.trim_end_matches(|c: char| c.is_ascii_digit());
    // The double comes after a's node; b leaves, so a leads if the double
    // does not make it wait for itself.
    let plain = other(&server.connect_string()).await;
    let options =
        zookeeper_client::CreateMode::EphemeralSequential.with_acls(zookeeper_client::Acls::anyone_all());
    plain.create(&format!("{path}/{prefix}"), b"a", &options).await.unwrap();
    eventually(WAIT, "a deletes its double", || async {
        plain.list_children(&path).await.unwrap().iter().filter(|n| n.starts_with(prefix)).count() == 1
    })
    .await
    .unwrap();
    b.resign().await;
    until(&a, "a leads", |s| matches!(s, Leadership::Leader { .. })).await;
    assert_eq!(
        a.contenders().await.unwrap().iter().map(|c| c.node.as_str()).collect::<Vec<_>>(),
        [mine.as_str()]
    );
}
