//! Case 13: leader failover. From the leader's resignation, and from its
//! process being killed (SIGKILL), until the next contender leads: ndsr,
//! kazoo's `Election` and Curator 5.4.0's `LeaderLatch` (the test kit's
//! oracle) in one run, rounds interleaved. Every contender is a process of
//! its own (ndsr's is this binary's `election-contender`) with a 4 s session,
//! and stamps its events with CLOCK_MONOTONIC.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use crate::common::{fresh, mono_ns, raw, until_count, Ctx, Row};
use crate::stats;

/// Every contender's session timeout.
const SESSION: Duration = Duration::from_secs(4);
/// How long any one step may take.
const STEP: Duration = Duration::from_secs(60);

/// kazoo's `Election`, leading until told to resign on stdin.
const KAZOO: &str = r#"
import sys, time
from kazoo.client import KazooClient
def say(what):
    print(what, time.clock_gettime_ns(time.CLOCK_MONOTONIC), flush=True)
zk = KazooClient(hosts=sys.argv[1], timeout=float(sys.argv[4])); zk.start()
election = zk.Election(sys.argv[2], sys.argv[3])
def lead():
    say("leader")
    while True:
        line = sys.stdin.readline()
        if not line or line.strip() == "resign":
            break
    say("resigning")
election.run(lead)
say("resigned")
zk.stop()
"#;

#[derive(Clone, Copy, Debug)]
enum Peer {
    Ndsr,
    Kazoo,
    Curator,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Ndsr => "ndsr",
            Peer::Kazoo => "kazoo",
            Peer::Curator => "curator",
        }
    }
}

/// One contender's process and its stamped events.
struct Contender {
    child: Child,
    events: Receiver<(String, u64)>,
}

impl Contender {
    /// The stamp of the next `event`, skipping others.
    fn wait(&self, event: &str) -> Result<u64, String> {
        let deadline = std::time::Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok((e, stamp)) if e == event => return Ok(stamp),
                Ok(_) => {}
                Err(_) => return Err(format!("no {event:?} within {STEP:?}")),
            }
        }
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.child.stdin.as_mut().ok_or("stdin closed")?;
        stdin.write_all(format!("{line}\n").as_bytes()).map_err(|e| e.to_string())
    }
}

impl Drop for Contender {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A peer's path and its leader and next in line.
struct Chain {
    peer: Peer,
    path: String,
    leader: Contender,
    next: Contender,
    made: usize,
    resign: Vec<f64>,
    kill: Vec<f64>,
    /// After a kill, from the dead leader's node deleted to the next
    /// leading (may be negative: the watch's own delivery).
    expired: Vec<f64>,
}

struct Spawner<'a> {
    ctx: &'a Ctx,
    classpath: String,
}

impl Spawner<'_> {
    fn spawn(&self, peer: Peer, path: &str, id: &str) -> Result<Contender, String> {
        let servers = self.ctx.servers();
        let session = SESSION.as_millis().to_string();
        let mut command = match peer {
            Peer::Ndsr => {
                let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
                c.args(["election-contender", &servers, path, id, &session]);
                c
            }
            Peer::Kazoo => {
                let mut c = Command::new(&self.ctx.python);
                c.args(["-c", KAZOO, &servers, path, id, &SESSION.as_secs_f64().to_string()]);
                c
            }
            Peer::Curator => {
                let mut c = Command::new("java");
                c.arg(format!("-Doracle.sessionMs={session}"))
                    .arg("-Doracle.stamp=true")
                    .arg("-cp")
                    .arg(&self.classpath)
                    .args(["CuratorOracle", "latch", &servers, path, id]);
                c
            }
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", peer.name()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, events) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut words = line.split_whitespace();
                let event = words.next().unwrap_or_default().to_string();
                let stamp = words.next().and_then(|w| w.parse().ok()).unwrap_or_else(mono_ns);
                if tx.send((event, stamp)).is_err() {
                    break;
                }
            }
        });
        Ok(Contender { child, events })
    }

    /// A contender that joins behind the leader: returns once its node is
    /// in line.
    async fn follower(&self, chain: &mut Chain) -> Result<Contender, String> {
        chain.made += 1;
        let next = self.spawn(chain.peer, &chain.path, &format!("{}-{}", chain.peer.name(), chain.made))?;
        let client = raw(&self.ctx.servers()).await;
        if !until_count(&client, &chain.path, 2, STEP).await {
            return Err(format!("{}: the next contender never joined", chain.peer.name()));
        }
        Ok(next)
    }

    async fn chain(&self, peer: Peer) -> Result<Chain, String> {
        let path = fresh(&format!("failover-{}", peer.name()));
        let leader = self.spawn(peer, &path, &format!("{}-0", peer.name()))?;
        leader.wait("leader").map_err(|e| format!("{}'s first leader: {e}", peer.name()))?;
        let next = self.spawn(peer, &path, &format!("{}-1", peer.name()))?;
        let chain =
            Chain { peer, path, leader, next, made: 1, resign: vec![], kill: vec![], expired: vec![] };
        let client = raw(&self.ctx.servers()).await;
        if !until_count(&client, &chain.path, 2, STEP).await {
            return Err(format!("{}: the second contender never joined", peer.name()));
        }
        Ok(chain)
    }

    /// One failover: the leader resigns (or is killed), the next leads,
    /// and a new contender joins behind it.
    async fn round(&self, chain: &mut Chain, kill: bool) -> Result<(), String> {
        let step = format!("{} ({})", chain.peer.name(), if kill { "kill" } else { "resign" });
        let what = |e: String| format!("{step}: {e}");
        let ms = |from: u64, to: u64| (to as i64 - from as i64) as f64 / 1e6;
        if kill {
            // When the server deletes the dead leader's node (its session
            // expired), as a plain client's watch of the path sees it.
            let client = raw(&self.ctx.servers()).await;
            let (_, watcher) =
                client.list_and_watch_children(&chain.path).await.map_err(|e| what(e.to_string()))?;
            let deleted = tokio::spawn(async move {
                watcher.changed().await;
                mono_ns()
            });
            let from = mono_ns();
            chain.leader.child.kill().map_err(|e| what(e.to_string()))?;
            let led = chain.next.wait("leader").map_err(what)?;
            let deleted = tokio::time::timeout(STEP, deleted)
                .await
                .map_err(|_| what("the node's deletion never seen".into()))?
                .map_err(|e| what(e.to_string()))?;
            chain.kill.push(ms(from, led));
            chain.expired.push(ms(deleted, led));
        } else {
            chain.leader.send("resign").map_err(what)?;
            let from = chain.leader.wait("resigning").map_err(what)?;
            let led = chain.next.wait("leader").map_err(what)?;
            chain.resign.push(ms(from, led));
        }
        let next = self.follower(chain).await?;
        let new_leader = std::mem::replace(&mut chain.next, next);
        drop(std::mem::replace(&mut chain.leader, new_leader));
        Ok(())
    }
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let resigns = ctx.size(9, 3);
    let kills = ctx.size(5, 1);
    let classes = tempfile::tempdir().map_err(|e| e.to_string())?;
    let classpath = ndsr_testkit::curator::compile_oracle(classes.path()).map_err(|e| e.to_string())?;
    let spawner = Spawner { ctx, classpath };
    let mut chains = Vec::new();
    for peer in [Peer::Ndsr, Peer::Kazoo, Peer::Curator] {
        chains.push(spawner.chain(peer).await?);
    }
    // Rounds interleaved: each peer in turn, resignations first.
    for kill in (0..resigns + kills).map(|round| round >= resigns) {
        for chain in &mut chains {
            spawner.round(chain, kill).await?;
        }
    }
    let [ndsr, kazoo, curator] = &chains[..] else { return Err("three chains".into()) };
    type Of = fn(&Chain) -> &Vec<f64>;
    let note = |of: Of, from: &str| {
        let range = |c: &Chain| {
            let s = of(c);
            let (min, max) = (s.iter().copied().reduce(f64::min), s.iter().copied().reduce(f64::max));
            format!("{} {}-{} ms", c.peer.name(), fmt(min), fmt(max))
        };
        format!(
            "{from}; {} rounds per peer, interleaved; each contender a process of its own, session 4 s for all; \
             ndsr in kazoo's layout; min-max: {}, {}, {}",
            of(ndsr).len(),
            range(ndsr),
            range(kazoo),
            range(curator)
        )
    };
    let metrics: [(&str, Of, String); 3] = [
        (
            "from resign until the next leads, ms (median)",
            |c| &c.resign,
            note(|c| &c.resign, "from the leader's own stamp as it starts to resign"),
        ),
        (
            "from SIGKILL until the next leads, ms (median)",
            |c| &c.kill,
            note(
                |c| &c.kill,
                "from the SIGKILL of the leader's process: the server expires its session 4 s after it last \
                 heard from it and deletes its node",
            ),
        ),
        (
            "after the dead leader's node expired, ms (median)",
            |c| &c.expired,
            note(
                |c| &c.expired,
                "the kill rounds, from the deletion as a plain client's watch of the path sees it (its own \
                 delivery can come later: below 0)",
            ),
        ),
    ];
    let mut rows = Vec::new();
    for (metric, of, note) in metrics {
        for (peer, name) in [(kazoo, "kazoo Election"), (curator, "Curator LeaderLatch")] {
            rows.push(Row::compare(
                "13 failover",
                metric,
                stats::median(of(ndsr)),
                name,
                stats::median(of(peer)),
                "",
                None,
                note.clone(),
            ));
        }
    }
    Ok(rows)
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// The ndsr contender's process (`ndsr-bench election-contender SERVERS PATH
/// ID SESSION_MS`): prints `leader <ns>` each time it comes to lead, and
/// on stdin `resign` prints `resigning <ns>`, resigns, prints `resigned`
/// and exits.
pub async fn child(servers: &str, path: &str, id: &str, session_ms: u64) -> Result<(), String> {
    let registry = ndsr::Registry::builder(servers)
        .session_timeout(Duration::from_millis(session_ms))
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let election = registry.election(path, id).join().await.map_err(|e| e.to_string())?;
    let mut state = election.watch();
    let (tx, mut commands) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut leading = false;
    loop {
        let now = matches!(*state.borrow_and_update(), ndsr::election::Leadership::Leader { .. });
        if now && !leading {
            println!("leader {}", mono_ns());
        }
        leading = now;
        tokio::select! {
            changed = state.changed() => if changed.is_err() { break },
            command = commands.recv() => match command.as_deref().map(str::trim) {
                Some("resign") | None => {
                    println!("resigning {}", mono_ns());
                    election.resign().await;
                    println!("resigned {}", mono_ns());
                    break;
                }
                Some(_) => {}
            },
        }
    }
    registry.close().await;
    Ok(())
}
