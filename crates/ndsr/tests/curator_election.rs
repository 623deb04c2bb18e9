//! Elections (and locks) shared with the real Apache Curator 5.4.0 (issue
//! 26): ndsr's `CuratorLatch` and `CuratorSelector` contenders and
//! Curator's `LeaderLatch` and `LeaderSelector` on one path take turns in
//! the order of their nodes, and each lists the others as contenders
//! (ndsr's `contenders()`, Curator's `getParticipants`); ndsr refuses a
//! kazoo-layout join on a Curator path. ndsr's Curator-layout locks and
//! Curator's `InterProcessMutex` and `InterProcessReadWriteLock` exclude
//! each other both ways.
//!
//! Curator runs as the test kit's oracle (`ndsr_testkit::curator`, the
//! commands in `crates/ndsr-testkit/java/CuratorOracle.java`). Without a
//! JDK and Curator's jars (`scripts/setup.sh` installs them) every test
//! here says so and passes without running.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;

use common::*;
use ndsr::election::{Election, ElectionLayout, Leadership};
use ndsr::lock::{LockGuard, LockLayout, LockMode};
use ndsr::{Error, Registry};
use ndsr_testkit::{eventually, unique_path, ZkServer};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The compiled oracle's class path (compiled once per test binary), or
/// `None` when Curator's jars or a JDK are not installed.
fn classpath() -> Option<&'static str> {
    static CLASSPATH: OnceLock<Option<String>> = OnceLock::new();
    CLASSPATH
        .get_or_init(|| {
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("curator-oracle-election");
            match ndsr_testkit::curator::compile_oracle(&out) {
                Ok(classpath) => Some(classpath),
                Err(ndsr_testkit::Error::NotInstalled(why)) => {
                    eprintln!("SKIPPED: the Curator interop tests need Curator 5 and a JDK: {why}");
                    None
                }
                Err(e) => panic!("compiling the Curator oracle: {e}"),
            }
        })
        .as_deref()
}

/// A running oracle command; killed when dropped.
struct Oracle {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Oracle {
    fn start(classpath: &str, args: &[&str]) -> Oracle {
        let mut child = tokio::process::Command::new("java")
            .arg("-cp")
            .arg(classpath)
            .arg("CuratorOracle")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("java");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Oracle { child, lines }
    }

    /// The next line, within the test deadline.
    async fn line(&mut self) -> String {
        let next = tokio::time::timeout(WAIT, self.lines.next_line()).await;
        next.expect("the oracle answers in time").unwrap().expect("the oracle printed a line")
    }

    /// Reads lines until `want`; the lines before it must be among `skip`.
    async fn expect(&mut self, want: &str, skip: &[&str]) {
        loop {
            let line = self.line().await;
            if line == want {
                return;
            }
            assert!(skip.contains(&line.as_str()), "waiting for {want:?}, the oracle said {line:?}");
        }
    }

    async fn send(&mut self, command: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{command}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Curator's `getParticipants` of this contender, as (id, isLeader).
    async fn participants(&mut self) -> Value {
        self.send("participants").await;
        let line = self.line().await;
        let parsed: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        parsed["participants"].clone()
    }

    /// Closes stdin (the oracle closes its session) and waits for a clean
    /// exit.
    async fn quit(mut self) {
        drop(self.child.stdin.take());
        let status = tokio::time::timeout(WAIT, self.child.wait()).await.expect("the oracle exits").unwrap();
        assert!(status.success(), "{status}");
    }
}

/// Curator's participants of `path` read by a process of its own
/// (`latch` or `selector` rules: the same order).
async fn curator_contenders(classpath: &str, servers: &str, path: &str, kind: &str) -> Value {
    let mut oracle = Oracle::start(classpath, &["contenders", servers, path, kind]);
    let line = oracle.line().await;
    oracle.quit().await;
    serde_json::from_str::<Value>(&line).unwrap()["participants"].clone()
}

async fn until(election: &Election, what: &str, f: impl Fn(&Leadership) -> bool) {
    let mut state = election.watch();
    tokio::time::timeout(WAIT, state.wait_for(|s| f(s)))
        .await
        .unwrap_or_else(|_| panic!("{what}: {:?}", election.state()))
        .unwrap();
}

fn leads(s: &Leadership) -> bool {
    matches!(s, Leadership::Leader { .. })
}

async fn ids(election: &Election) -> Vec<String> {
    election.contenders().await.unwrap().into_iter().map(|c| c.id).collect()
}

/// Waits until the path holds `n` contenders of `election`'s layout.
async fn until_contenders(election: &Election, n: usize) {
    eventually(WAIT, &format!("{n} contenders"), || async {
        election.contenders().await.is_ok_and(|c| c.len() == n)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curators_leader_latch_and_ndsr_take_turns_in_node_order() {
    let Some(cp) = classpath() else { return };
    let server = ZkServer::shared();
    let servers = server.connect_string();
    let path = unique_path("curator-latch");
    let (ra, rc) = (registry(&servers).await, registry(&servers).await);
    let a = ra.election(&path, "ndsr-a").layout(ElectionLayout::CuratorLatch).join().await.unwrap();
    until(&a, "ndsr-a leads", leads).await;
    let mut b = Oracle::start(cp, &["latch", &servers, &path, "curator-b"]);
    b.expect("started", &[]).await;
    until_contenders(&a, 2).await;
    let c = rc.election(&path, "ndsr-c").layout(ElectionLayout::CuratorLatch).join().await.unwrap();
    until(&c, "ndsr-c is behind Curator's latch", |s| *s == Leadership::Follower { position: 2 }).await;
    assert_eq!(ids(&a).await, ["ndsr-a", "curator-b", "ndsr-c"]);
    assert_eq!(
        b.participants().await,
        json!([{"id": "ndsr-a", "leader": true}, {"id": "curator-b", "leader": false},
               {"id": "ndsr-c", "leader": false}]),
        "Curator sees ndsr's contenders, in ndsr's order"
    );

    // ndsr's leader resigns: Curator's latch leads, ndsr-c is next.
    a.resign().await;
    b.expect("leader", &[]).await;
    until(&c, "ndsr-c is next", |s| *s == Leadership::Follower { position: 1 }).await;
    assert_eq!(ids(&c).await, ["curator-b", "ndsr-c"]);
    assert_eq!(
        b.participants().await,
        json!([{"id": "curator-b", "leader": true}, {"id": "ndsr-c", "leader": false}])
    );

    // Curator's latch closes: ndsr-c leads, and Curator agrees.
    b.send("resign").await;
    b.expect("resigned", &["resigning"]).await;
    until(&c, "ndsr-c leads once the latch closes", leads).await;
    assert_eq!(
        curator_contenders(cp, &servers, &path, "latch").await,
        json!([{"id": "ndsr-c", "leader": true}])
    );
    b.quit().await;
    c.resign().await;
    assert_eq!(curator_contenders(cp, &servers, &path, "latch").await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curators_leader_selector_and_ndsr_take_turns_in_node_order() {
    let Some(cp) = classpath() else { return };
    let server = ZkServer::shared();
    let servers = server.connect_string();
    let path = unique_path("curator-selector");
    let r = registry(&servers).await;
    let mut a = Oracle::start(cp, &["selector", &servers, &path, "curator-a"]);
    a.expect("leader", &["started"]).await;
    let b = r.election(&path, "ndsr-b").layout(ElectionLayout::CuratorSelector).join().await.unwrap();
    until(&b, "ndsr-b is behind Curator's selector", |s| *s == Leadership::Follower { position: 1 }).await;
    assert_eq!(ids(&b).await, ["curator-a", "ndsr-b"]);
    assert_eq!(
        a.participants().await,
        json!([{"id": "curator-a", "leader": true}, {"id": "ndsr-b", "leader": false}])
    );

    // Curator's takeLeadership returns: ndsr leads.
    a.send("resign").await;
    a.expect("resigned", &["resigning"]).await;
    until(&b, "ndsr-b leads once Curator's leader resigns", leads).await;
    assert!(b.is_leader());

    // A second Curator selector waits behind ndsr, and leads once ndsr
    // resigns.
    let mut c = Oracle::start(cp, &["selector", &servers, &path, "curator-c"]);
    c.expect("started", &[]).await;
    until_contenders(&b, 2).await;
    assert_eq!(ids(&b).await, ["ndsr-b", "curator-c"], "the old leader's node is gone (no requeue)");
    assert_eq!(
        c.participants().await,
        json!([{"id": "ndsr-b", "leader": true}, {"id": "curator-c", "leader": false}])
    );
    assert!(b.is_leader(), "a Curator contender in line leaves ndsr's leader leading");
    b.resign().await;
    c.expect("leader", &[]).await;
    assert_eq!(
        curator_contenders(cp, &servers, &path, "selector").await,
        json!([{"id": "curator-c", "leader": true}])
    );
    a.quit().await;
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndsr_refuses_a_kazoo_layout_join_on_a_curator_path() {
    let Some(cp) = classpath() else { return };
    let server = ZkServer::shared();
    let servers = server.connect_string();
    let r = registry(&servers).await;
    for (kind, found) in [("latch", "curator-latch"), ("selector", "curator-selector")] {
        let path = unique_path(&format!("curator-refused-{kind}"));
        let mut curator = Oracle::start(cp, &[kind, &servers, &path, "curator"]);
        curator.expect("leader", &["started"]).await;
        let kazoo = r.election(&path, "kazoo").join().await;
        match kazoo {
            Err(Error::LayoutMismatch { found: f, asked, .. }) => assert_eq!((f, asked), (found, "kazoo")),
            other => panic!("a kazoo-layout join on a Curator {kind} path: {other:?}"),
        }
        let other =
            if kind == "latch" { ElectionLayout::CuratorSelector } else { ElectionLayout::CuratorLatch };
        let refused = r.election(&path, "other").layout(other).join().await;
        assert!(matches!(refused, Err(Error::LayoutMismatch { found: f, .. }) if f == found), "{refused:?}");
        let status = ndsr::election::status(&r, &path).await.unwrap();
        let seen: Vec<(&str, &str)> =
            status.contenders.iter().map(|c| (c.layout.name(), c.id.as_str())).collect();
        assert_eq!(seen, [(found, "curator")], "nothing of the refused joins is left behind");
        curator.quit().await;
    }
}

/// ndsr's Curator-layout lock, tried once.
async fn try_lock(r: &Registry, path: &str, mode: LockMode) -> ndsr::Result<LockGuard> {
    r.lock(path).name("ndsr").layout(LockLayout::Curator).mode(mode).try_acquire().await
}

fn refused(result: ndsr::Result<LockGuard>, what: &str) {
    assert!(matches!(result, Err(Error::LockTimeout { .. })), "{what}: {result:?}");
}

/// ndsr's Curator-layout lock, waiting in a task of its own.
fn acquire_later(
    r: &Registry,
    path: &str,
    mode: LockMode,
) -> tokio::task::JoinHandle<ndsr::Result<LockGuard>> {
    let builder = r.lock(path).name("ndsr").layout(LockLayout::Curator).mode(mode).wait(WAIT);
    tokio::spawn(builder.acquire())
}

/// Waits until the lock's path has `n` nodes.
async fn until_nodes(zk: &zookeeper_client::Client, path: &str, n: usize) {
    eventually(WAIT, &format!("{n} nodes in {path}"), || async {
        zk.list_children(path).await.is_ok_and(|c| c.len() == n)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndsr_and_curators_interprocess_mutex_exclude_each_other() {
    let Some(cp) = classpath() else { return };
    let server = ZkServer::shared();
    let servers = server.connect_string();
    let (r, zk) = (registry(&servers).await, other(&servers).await);
    let path = unique_path("curator-mutex");
    let mut curator = Oracle::start(cp, &["mutex", &servers, &path]);
    curator.expect("started", &[]).await;

    // ndsr holds: Curator is refused, then waits and gets it on release.
    let ours = try_lock(&r, &path, LockMode::Exclusive).await.unwrap();
    curator.send("try 200").await;
    assert_eq!(curator.line().await, "busy", "Curator's mutex while ndsr holds it");
    curator.send("acquire").await;
    until_nodes(&zk, &path, 2).await;
    ours.release().await.unwrap();
    assert_eq!(curator.line().await, "acquired");

    // Curator holds: ndsr is refused, then waits and gets it on release.
    refused(try_lock(&r, &path, LockMode::Exclusive).await, "ndsr's mutex while Curator holds it");
    match try_lock(&r, &path, LockMode::Write).await {
        Err(Error::LayoutMismatch { found, asked, .. }) => {
            assert_eq!((found, asked), ("curator", "curator-rw"))
        }
        other => panic!("a read/write lock on a Curator mutex: {other:?}"),
    }
    let waiting = acquire_later(&r, &path, LockMode::Exclusive);
    until_nodes(&zk, &path, 2).await;
    assert!(!waiting.is_finished());
    curator.send("release").await;
    assert_eq!(curator.line().await, "released");
    let ours = tokio::time::timeout(WAIT, waiting).await.expect("ndsr gets it").unwrap().unwrap();
    curator.send("try 200").await;
    assert_eq!(curator.line().await, "busy");
    ours.release().await.unwrap();
    curator.quit().await;
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndsr_and_curators_read_write_lock_exclude_each_other() {
    let Some(cp) = classpath() else { return };
    let server = ZkServer::shared();
    let servers = server.connect_string();
    let (r, zk) = (registry(&servers).await, other(&servers).await);
    let path = unique_path("curator-rw-lock");
    let mut reader = Oracle::start(cp, &["read-lock", &servers, &path]);
    let mut writer = Oracle::start(cp, &["write-lock", &servers, &path]);
    let mut late_reader = Oracle::start(cp, &["read-lock", &servers, &path]);
    for curator in [&mut reader, &mut writer, &mut late_reader] {
        curator.expect("started", &[]).await;
    }

    // ndsr's writer excludes Curator's reader and writer.
    let ours = try_lock(&r, &path, LockMode::Write).await.unwrap();
    for curator in [&mut reader, &mut writer] {
        curator.send("try 200").await;
        assert_eq!(curator.line().await, "busy", "Curator while ndsr writes");
    }
    ours.release().await.unwrap();

    // Curator's reader shares with ndsr's readers and excludes ndsr's
    // writer.
    reader.send("acquire").await;
    assert_eq!(reader.line().await, "acquired");
    let our_read = try_lock(&r, &path, LockMode::Read).await.expect("readers share");
    refused(try_lock(&r, &path, LockMode::Write).await, "ndsr's writer while Curator reads");
    our_read.release().await.unwrap();

    // ndsr's writer waits behind Curator's reader; a Curator reader that
    // comes after it waits for it (readers wait for earlier writers).
    let waiting = acquire_later(&r, &path, LockMode::Write);
    until_nodes(&zk, &path, 2).await;
    late_reader.send("try 200").await;
    assert_eq!(late_reader.line().await, "busy", "a Curator reader behind ndsr's waiting writer");
    reader.send("release").await;
    assert_eq!(reader.line().await, "released");
    let ours = tokio::time::timeout(WAIT, waiting).await.expect("ndsr writes").unwrap().unwrap();
    late_reader.send("acquire").await;
    until_nodes(&zk, &path, 2).await;
    ours.release().await.unwrap();
    assert_eq!(late_reader.line().await, "acquired");

    // Curator's writer waits for Curator's reader, and excludes ndsr's
    // reader once it holds.
    writer.send("acquire").await;
    until_nodes(&zk, &path, 2).await;
    late_reader.send("release").await;
    assert_eq!(late_reader.line().await, "released");
    assert_eq!(writer.line().await, "acquired");
    refused(try_lock(&r, &path, LockMode::Read).await, "ndsr's reader while Curator writes");
    refused(try_lock(&r, &path, LockMode::Write).await, "ndsr's writer while Curator writes");
    let waiting = acquire_later(&r, &path, LockMode::Read);
    until_nodes(&zk, &path, 2).await;
    writer.send("release").await;
    assert_eq!(writer.line().await, "released");
    let our_read = tokio::time::timeout(WAIT, waiting).await.expect("ndsr reads").unwrap().unwrap();
    our_read.release().await.unwrap();
    for curator in [reader, writer, late_reader] {
        curator.quit().await;
    }
    r.close().await;
}
