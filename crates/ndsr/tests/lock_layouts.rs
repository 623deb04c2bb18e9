//! Locks in kazoo's and Curator's layouts (issue 26) against a real
//! ZooKeeper and a real kazoo: each kazoo lock kind and ndsr's matching
//! kind exclude each other both ways (readers share), waiters hold in node
//! order, node names and data are kazoo's, a dropped or failed acquire
//! leaves no node, another layout's path is refused naming it, and a guard
//! reports its loss (node deleted, link blackholed).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ndsr::lock::{LockLayout, LockMode};
use ndsr::{Error, LockGuard, LockLost, Registry};
use ndsr_testkit::{eventually, unique_path, FaultProxy, ZkServer};
use tokio::time::Instant;

/// The venv `scripts/setup.sh` makes with kazoo.
fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(python.exists(), "kazoo is not installed: run scripts/setup.sh (it makes .venv)");
    python
}

/// One kazoo lock: `HOW` is `try` (non-blocking) or a timeout in seconds.
/// Prints `acquired`, `busy` or `timeout`; then, holding, answers
/// `contenders` (kazoo's list, comma-separated) and `node` (its node's
/// name) until `release`.
const KAZOO_LOCK: &str = r#"
import sys
from kazoo.client import KazooClient
from kazoo.exceptions import LockTimeout
hosts, path, kind, ident, how = sys.argv[1:6]
zk = KazooClient(hosts=hosts); zk.start()
lock = {"lock": zk.Lock, "read": zk.ReadLock, "write": zk.WriteLock}[kind](path, ident)
try:
    got = lock.acquire(blocking=False) if how == "try" else lock.acquire(timeout=float(how))
    print("acquired" if got else "busy", flush=True)
except LockTimeout:
    got = False
    print("timeout", flush=True)
while got:
    line = sys.stdin.readline().strip()
    if line == "contenders":
        print(",".join(lock.contenders()), flush=True)
    elif line == "node":
        print(lock.node, flush=True)
    else:
        lock.release()
        break
print("released", flush=True)
zk.stop()
"#;

/// A kazoo process holding (or trying for) a lock.
struct Kazoo {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Kazoo {
    fn start(server: &str, path: &str, kind: &str, id: &str, how: &str) -> Kazoo {
        let mut child = Command::new(python())
            .args(["-c", KAZOO_LOCK, server, path, kind, id, how])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(std::result::Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Kazoo { child, lines }
    }

    /// Its next line of output.
    fn line(&self) -> String {
        tokio::task::block_in_place(|| self.lines.recv_timeout(WAIT)).expect("kazoo answers")
    }

    fn ask(&mut self, what: &str) -> String {
        writeln!(self.child.stdin.as_mut().unwrap(), "{what}").unwrap();
        self.line()
    }

    /// Releases (if held) and waits for the process to end well.
    fn release(mut self) {
        assert_eq!(self.ask("release"), "released");
        assert!(self.child.wait().unwrap().success());
    }

    /// A try that must fail, and the process's end.
    fn busy(server: &str, path: &str, kind: &str) {
        let mut kazoo = Kazoo::start(server, path, kind, "kazoo", "try");
        assert_eq!(kazoo.line(), "busy", "kazoo's {kind} is refused");
        assert_eq!(kazoo.line(), "released");
        assert!(kazoo.child.wait().unwrap().success());
    }
}

impl Drop for Kazoo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn try_lock(r: &Registry, path: &str, layout: LockLayout, mode: LockMode) -> ndsr::Result<LockGuard> {
    r.lock(path).name("ndsr").layout(layout).mode(mode).try_acquire().await
}

fn refused(result: ndsr::Result<LockGuard>, what: &str) {
    assert!(matches!(result, Err(Error::LockTimeout { .. })), "{what}: {result:?}");
}

async fn children(zk: &zookeeper_client::Client, path: &str) -> Vec<String> {
    zk.list_children(path).await.unwrap_or_default()
}

/// kazoo's name: 32 lowercase hex digits, `kind`, 10 digits.
fn is_kazoo_name(name: &str, kind: &str) -> bool {
    let hex =
        name.get(..32).is_some_and(|h| h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let rest = name.get(32..).and_then(|r| r.strip_prefix(kind));
    hex && rest.is_some_and(|d| d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Curator's protected name: `_c_`, a hyphenated lowercase UUID, `-`,
/// `kind`, 10 digits.
fn is_curator_name(name: &str, kind: &str) -> bool {
    let uuid = name.strip_prefix("_c_").and_then(|r| r.get(..36));
    let uuid_ok = uuid.is_some_and(|u| {
        u.bytes().enumerate().all(|(i, b)| {
            if [8, 13, 18, 23].contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
            }
        })
    });
    let rest = name.get(39..).and_then(|r| r.strip_prefix('-')).and_then(|r| r.strip_prefix(kind));
    uuid_ok && rest.is_some_and(|d| d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_lock_and_ndsr_exclusive_exclude_each_other_both_ways() {
    let server = ZkServer::shared();
    let zs = server.connect_string();
    let path = unique_path("kazoo-lock");
    let r = registry(&zs).await;
    let held = try_lock(&r, &path, LockLayout::Kazoo, LockMode::Exclusive).await.unwrap();
    Kazoo::busy(&zs, &path, "lock");
    Kazoo::busy(&zs, &path, "write");
    held.release().await.unwrap();

    let kazoo = Kazoo::start(&zs, &path, "lock", "kazoo", "30");
    assert_eq!(kazoo.line(), "acquired");
    refused(try_lock(&r, &path, LockLayout::Kazoo, LockMode::Exclusive).await, "ndsr behind kazoo's Lock");
    refused(
        try_lock(&r, &path, LockLayout::Kazoo, LockMode::Write).await,
        "an ndsr writer behind kazoo's Lock",
    );
    kazoo.release();
    try_lock(&r, &path, LockLayout::Kazoo, LockMode::Exclusive).await.unwrap().release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_readers_and_ndsr_readers_share_the_lock() {
    let server = ZkServer::shared();
    let zs = server.connect_string();
    let path = unique_path("kazoo-read");
    let r = registry(&zs).await;
    let kazoo = Kazoo::start(&zs, &path, "read", "kazoo", "try");
    assert_eq!(kazoo.line(), "acquired");
    let mine = try_lock(&r, &path, LockLayout::Kazoo, LockMode::Read).await.expect("readers share");
    let second = Kazoo::start(&zs, &path, "read", "kazoo-2", "try");
    assert_eq!(second.line(), "acquired", "kazoo's reader joins ndsr's and kazoo's");
    second.release();
    kazoo.release();
    mine.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_writers_and_ndsr_readers_exclude_each_other_and_vice_versa() {
    let server = ZkServer::shared();
    let zs = server.connect_string();
    let path = unique_path("kazoo-rw");
    let r = registry(&zs).await;
    // kazoo's writer against ndsr's reader, both ways.
    let writer = Kazoo::start(&zs, &path, "write", "kazoo", "try");
    assert_eq!(writer.line(), "acquired");
    refused(
        try_lock(&r, &path, LockLayout::Kazoo, LockMode::Read).await,
        "an ndsr reader behind kazoo's writer",
    );
    writer.release();
    let reader = try_lock(&r, &path, LockLayout::Kazoo, LockMode::Read).await.unwrap();
    Kazoo::busy(&zs, &path, "write");
    reader.release().await.unwrap();
    // kazoo's reader against ndsr's writer, both ways.
    let reader = Kazoo::start(&zs, &path, "read", "kazoo", "try");
    assert_eq!(reader.line(), "acquired");
    refused(
        try_lock(&r, &path, LockLayout::Kazoo, LockMode::Write).await,
        "an ndsr writer behind kazoo's reader",
    );
    reader.release();
    let writer = try_lock(&r, &path, LockLayout::Kazoo, LockMode::Write).await.unwrap();
    Kazoo::busy(&zs, &path, "read");
    Kazoo::busy(&zs, &path, "lock");
    writer.release().await.unwrap();
    assert!(children(&other(&zs).await, &path).await.is_empty(), "every node is gone");
}

/// A waiter that records when it holds, and holds until told.
fn waiter(
    r: &Registry,
    path: &str,
    mode: LockMode,
    name: &'static str,
    order: &Arc<Mutex<Vec<&'static str>>>,
) -> tokio::sync::oneshot::Sender<()> {
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let (r, path, order) = (r.clone(), path.to_string(), order.clone());
    tokio::spawn(async move {
        let lock = r.lock(&path).name(name).layout(LockLayout::Kazoo).mode(mode);
        let guard = lock.wait(Duration::from_secs(60)).acquire().await.unwrap();
        order.lock().unwrap().push(name);
        let _ = released.await;
        guard.release().await.unwrap();
    });
    release
}

async fn count(zk: &zookeeper_client::Client, path: &str, n: usize) {
    eventually(WAIT, &format!("{n} contenders"), || async { children(zk, path).await.len() == n })
        .await
        .unwrap();
}

async fn order_is(order: &Arc<Mutex<Vec<&'static str>>>, want: &[&str]) {
    eventually(WAIT, &format!("held in order {want:?}"), || async {
        order.lock().unwrap().as_slice() == want
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_hold_in_the_order_of_their_nodes_with_kazoo_in_line() {
    let server = ZkServer::shared();
    let zs = server.connect_string();
    let path = unique_path("kazoo-order");
    let (r, zk) = (registry(&zs).await, other(&zs).await);
    let first = try_lock(&r, &path, LockLayout::Kazoo, LockMode::Write).await.unwrap();
    let kazoo = Kazoo::start(&zs, &path, "write", "kazoo", "60");
    count(&zk, &path, 2).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let reader = waiter(&r, &path, LockMode::Read, "reader", &order);
    count(&zk, &path, 3).await;
    let writer = waiter(&r, &path, LockMode::Write, "writer", &order);
    count(&zk, &path, 4).await;

    first.release().await.unwrap();
    assert_eq!(kazoo.line(), "acquired", "kazoo's writer is next");
    assert!(order.lock().unwrap().is_empty(), "ndsr's reader and writer wait behind kazoo's writer");
    assert_eq!(
        {
            let mut kazoo = kazoo;
            let contenders = kazoo.ask("contenders");
            kazoo.release();
            contenders
        },
        "kazoo,reader,writer",
        "kazoo sees ndsr's contenders in line, by their data"
    );
    order_is(&order, &["reader"]).await;
    reader.send(()).unwrap();
    order_is(&order, &["reader", "writer"]).await;
    writer.send(()).unwrap();
    count(&zk, &path, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_names_and_data_are_kazoos_and_curators() {
    let server = ZkServer::shared();
    let zs = server.connect_string();
    let (r, zk) = (registry(&zs).await, other(&zs).await);
    for (kind, mode, name) in [
        ("lock", LockMode::Exclusive, "__lock__"),
        ("read", LockMode::Read, "__rlock__"),
        ("write", LockMode::Write, "__lock__"),
    ] {
        let path = unique_path("kazoo-names");
        let mut kazoo = Kazoo::start(&zs, &path, kind, "kazoo-id", "try");
        assert_eq!(kazoo.line(), "acquired");
        let theirs = kazoo.ask("node");
        let ours = r.lock(&path).name("ndsr-id").layout(LockLayout::Kazoo).mode(mode).acquire();
        let ours = if mode == LockMode::Read {
            let ours = ours.await.unwrap();
            kazoo.release();
            ours
        } else {
            let waiting = tokio::spawn(ours);
            count(&zk, &path, 2).await;
            kazoo.release();
            waiting.await.unwrap().unwrap()
        };
        let node = ours.holder_node().strip_prefix(&format!("{path}/")).unwrap().to_string();
        assert!(is_kazoo_name(&theirs, name), "kazoo's {kind}: {theirs}");
        assert!(is_kazoo_name(&node, name), "ndsr's {mode}: {node} (kazoo's: {theirs})");
        assert!(
            node[node.len() - 10..] > theirs[theirs.len() - 10..],
            "a later sequence: {node} after {theirs}"
        );
        let (data, stat) = zk.get_data(ours.holder_node()).await.unwrap();
        assert_eq!(data, b"ndsr-id");
        assert_eq!(stat.ephemeral_owner, r.session().unwrap().id().0, "ephemeral, ours");
        ours.release().await.unwrap();
    }
    for (mode, name) in
        [(LockMode::Exclusive, "lock-"), (LockMode::Read, "__READ__"), (LockMode::Write, "__WRIT__")]
    {
        let path = unique_path("curator-names");
        let guard =
            r.lock(&path).name("ndsr-id").layout(LockLayout::Curator).mode(mode).acquire().await.unwrap();
        let node = guard.holder_node().strip_prefix(&format!("{path}/")).unwrap().to_string();
        assert!(is_curator_name(&node, name), "{mode}: {node}");
        assert_eq!(zk.get_data(guard.holder_node()).await.unwrap().0, b"ndsr-id");
        guard.release().await.unwrap();
        assert!(children(&zk, &path).await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_readers_wait_for_writers_even_those_of_their_own_registry() {
    let server = ZkServer::shared();
    let zs = server.connect_string();
    let path = unique_path("curator-rw");
    let (a, b, zk) = (registry(&zs).await, registry(&zs).await, other(&zs).await);
    let writer = try_lock(&a, &path, LockLayout::Curator, LockMode::Write).await.unwrap();
    refused(try_lock(&b, &path, LockLayout::Curator, LockMode::Read).await, "a reader behind a writer");
    refused(try_lock(&b, &path, LockLayout::Curator, LockMode::Write).await, "a writer behind a writer");
    // No reentrancy: the writer's own registry (another task, another
    // thread) waits to read like anyone.
    refused(
        try_lock(&a, &path, LockLayout::Curator, LockMode::Read).await,
        "a reader of the writing registry behind its writer",
    );
    assert_eq!(children(&zk, &path).await.len(), 1, "the refused tries' nodes are gone");
    // A downgrade: a read queued behind the write lock, then the write
    // lock released. The reader holds only then.
    let own = {
        let (a, path) = (a.clone(), path.clone());
        tokio::spawn(async move {
            a.lock(&path)
                .name("ndsr")
                .layout(LockLayout::Curator)
                .mode(LockMode::Read)
                .wait(WAIT)
                .acquire()
                .await
        })
    };
    count(&zk, &path, 2).await;
    assert!(!own.is_finished(), "the writing registry's reader waits while it writes");
    writer.release().await.unwrap();
    let own = tokio::time::timeout(WAIT, own).await.expect("it reads once the write lock goes").unwrap();
    let own = own.expect("the writer's registry reads");
    let other_reader = try_lock(&b, &path, LockLayout::Curator, LockMode::Read).await.expect("readers share");
    refused(try_lock(&b, &path, LockLayout::Curator, LockMode::Write).await, "a writer behind readers");
    own.release().await.unwrap();
    other_reader.release().await.unwrap();
    let mutex = unique_path("curator-mutex");
    let held = try_lock(&a, &mutex, LockLayout::Curator, LockMode::Exclusive).await.unwrap();
    refused(try_lock(&b, &mutex, LockLayout::Curator, LockMode::Exclusive).await, "a second mutex holder");
    held.release().await.unwrap();
    try_lock(&b, &mutex, LockLayout::Curator, LockMode::Exclusive).await.unwrap().release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_or_failed_acquire_leaves_no_node() {
    let server = ZkServer::shared();
    let zs = server.connect_string();
    let (holder, waiting, zk) = (registry(&zs).await, registry(&zs).await, other(&zs).await);
    for (layout, mode) in [(LockLayout::Kazoo, LockMode::Exclusive), (LockLayout::Curator, LockMode::Write)] {
        let path = unique_path("dropped-acquire");
        let held = try_lock(&holder, &path, layout, mode).await.unwrap();
        // A failed try deletes its node before it returns.
        refused(try_lock(&waiting, &path, layout, mode).await, "a second holder");
        assert_eq!(children(&zk, &path).await.len(), 1, "{layout}: the failed try's node is gone");
        let task = {
            let (w, path) = (waiting.clone(), path.clone());
            tokio::spawn(async move {
                w.lock(&path).layout(layout).mode(mode).wait(Duration::from_secs(60)).acquire().await
            })
        };
        count(&zk, &path, 2).await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        count(&zk, &path, 1).await;
        assert_eq!(waiting.state(), ndsr::State::Connected, "withdrawn by the live session");
        held.release().await.unwrap();
        try_lock(&waiting, &path, layout, mode)
            .await
            .expect("nothing left blocks the lock")
            .release()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_of_another_layout_is_refused_naming_it_before_anything_is_written() {
    let server = ZkServer::shared();
    let zs = server.connect_string();
    let (r, zk) = (registry(&zs).await, other(&zs).await);
    let mismatch = |result: ndsr::Result<LockGuard>, want: (&str, &str)| match result {
        Err(Error::LayoutMismatch { found, asked, .. }) => assert_eq!((found, asked), want),
        other => panic!("{want:?}: {other:?}"),
    };
    let kazoo = unique_path("layout-kazoo");
    let held = try_lock(&r, &kazoo, LockLayout::Kazoo, LockMode::Exclusive).await.unwrap();
    for mode in [LockMode::Exclusive, LockMode::Read] {
        mismatch(
            try_lock(&r, &kazoo, LockLayout::Curator, mode).await,
            ("kazoo", if mode == LockMode::Read { "curator-rw" } else { "curator" }),
        );
    }
    mismatch(try_lock(&r, &kazoo, LockLayout::Semaphore, LockMode::Exclusive).await, ("kazoo", "semaphore"));
    assert_eq!(children(&zk, &kazoo).await.len(), 1, "nothing was written");
    held.release().await.unwrap();

    let semaphore = unique_path("layout-semaphore");
    let held = try_lock(&r, &semaphore, LockLayout::Semaphore, LockMode::Exclusive).await.unwrap();
    mismatch(try_lock(&r, &semaphore, LockLayout::Kazoo, LockMode::Write).await, ("semaphore", "kazoo"));
    held.release().await.unwrap();

    let curator = unique_path("layout-curator");
    let held = try_lock(&r, &curator, LockLayout::Curator, LockMode::Exclusive).await.unwrap();
    mismatch(try_lock(&r, &curator, LockLayout::Curator, LockMode::Write).await, ("curator", "curator-rw"));
    mismatch(try_lock(&r, &curator, LockLayout::Kazoo, LockMode::Read).await, ("curator", "kazoo"));
    assert_eq!(children(&zk, &curator).await.len(), 1, "nothing was written");
    held.release().await.unwrap();

    let bad = |result: ndsr::Result<LockGuard>, what: &str| match result {
        Err(Error::InvalidArgument(message)) => assert!(message.contains(what), "{message}"),
        other => panic!("{what}: {other:?}"),
    };
    let path = unique_path("layout-bad");
    bad(try_lock(&r, &path, LockLayout::Semaphore, LockMode::Read).await, "kazoo or curator layout");
    bad(r.lock(&path).layout(LockLayout::Kazoo).simultaneous(2).try_acquire().await, "semaphore layout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_reports_its_loss_when_its_node_is_deleted() {
    let server = ZkServer::shared();
    let zs = server.connect_string();
    let (r, zk) = (registry(&zs).await, other(&zs).await);
    for (layout, mode) in [(LockLayout::Kazoo, LockMode::Read), (LockLayout::Curator, LockMode::Exclusive)] {
        let path = unique_path("deleted-node");
        let guard = try_lock(&r, &path, layout, mode).await.unwrap();
        assert!(!guard.is_lost());
        zk.delete(guard.holder_node(), None).await.unwrap();
        tokio::time::timeout(WAIT, guard.lost()).await.expect("the guard says the lock is lost");
        assert_eq!(guard.lost_reason(), Some(LockLost::NodeDeleted));
        guard.release().await.unwrap();
    }
}

/// A holder whose link is blackholed loses its lock (for silence) before
/// its session can expire and a kazoo-layout waiter holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_holder_loses_its_lock_before_the_next_holds_it() {
    let server = ZkServer::new().unwrap();
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let holder = registry(&proxy.connect_string()).await;
    let contender = registry(&server.connect_string()).await;
    let path = unique_path("blackholed-kazoo");
    let guard = try_lock(&holder, &path, LockLayout::Kazoo, LockMode::Exclusive).await.unwrap();
    proxy.blackhole();
    let waiting = {
        let (contender, path) = (contender.clone(), path.clone());
        tokio::spawn(async move {
            let lock = contender.lock(&path).layout(LockLayout::Kazoo).wait(Duration::from_secs(60));
            let held = lock.acquire().await;
            (Instant::now(), held)
        })
    };
    tokio::time::timeout(WAIT, guard.lost()).await.expect("the guard says the lock is lost");
    let lost_at = Instant::now();
    assert!(matches!(guard.lost_reason(), Some(LockLost::Silent(_))), "{:?}", guard.lost_reason());
    let deadline = guard.session_deadline();
    let (acquired_at, held) = waiting.await.unwrap();
    let _next = held.expect("the waiter holds once the holder's session expires");
    assert!(lost_at < acquired_at, "the holder knew it had lost the lock before the next held it");
    assert!(deadline <= acquired_at.into_std(), "nobody else held it before the session deadline");
    proxy.heal();
    drop(guard);
    holder.close().await;
}

#[test]
fn the_blocking_registry_takes_a_lock_in_any_layout() {
    let server = ZkServer::shared();
    let r = ndsr::blocking::Registry::connect(Registry::builder(&server.connect_string())).unwrap();
    let other = ndsr::blocking::Registry::connect(Registry::builder(&server.connect_string())).unwrap();
    let path = unique_path("blocking-layout");
    let lock = |r: &ndsr::blocking::Registry, mode| {
        r.lock_with(r.as_async().lock(&path).layout(LockLayout::Kazoo).mode(mode).wait(Duration::ZERO))
    };
    let reader = lock(&r, LockMode::Read).unwrap();
    let second = lock(&other, LockMode::Read).expect("readers share");
    assert!(matches!(lock(&other, LockMode::Write), Err(Error::LockTimeout { .. })));
    reader.release().unwrap();
    drop(second);
    lock(&other, LockMode::Write).unwrap().release().unwrap();
    let foreign = r.lock_with(other.as_async().lock(&path));
    assert!(matches!(foreign, Err(Error::InvalidArgument(_))), "{foreign:?}");
    r.close();
    other.close();
}
