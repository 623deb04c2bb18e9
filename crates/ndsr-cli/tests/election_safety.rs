//! The election's safety under faults (issue 26), judged by an external
//! observer. Three `ndsr elect` contenders and one kazoo `Election`
//! contend on a three-server ensemble. Each leader runs a writer that
//! writes its fencing token to a shared node with compare-and-set (and
//! stops, "fenced", when it finds a newer token there). Round after round
//! the leader is frozen past its session timeout (SIGSTOP of its
//! processes), cut from the ensemble (its proxies refuse, or blackhole),
//! killed (SIGKILL of `ndsr elect` alone: what it ran must not outlive it),
//! or the ensemble loses its own leader. The observer records every write
//! it sees and every leader's announcement.
//!
//! Judged: a deposed leader's command is gone when the next leader writes
//! (unless frozen); no deposed leader's writer ever tried to act after a
//! newer leader had written (a "fenced" attempt), except a frozen one
//! waking up, which only fencing can stop; tokens never go back and each
//! new leader's is higher; every round ends with a leader.
//!
//! CI runs 6 rounds (each fault at least once). The long form, 50 rounds, also
//! asserts the issue's availability bound (no leaderless gap over the
//! session timeout plus one second):
//! `NDSR_SAFETY_ROUNDS=50 cargo test -p ndsr-cli --test election_safety -- --nocapture`
//! (docs/RELIABILITY.md has its figures).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ndsr_testkit::{FaultProxy, ZkEnsemble};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const SESSION: Duration = Duration::from_secs(4);
/// How long a round may take to elect its next leader before the test
/// says the election is wedged.
const ROUND: Duration = Duration::from_secs(60);

/// The leader's writer: the command `ndsr elect` runs, and the body of
/// the kazoo contender's leadership.
const WRITER: &str = r#"
import os, sys, time
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException

def lead(zk, shared, token, ident, fenced_log):
    # Who acts for this token, for the test to check it is gone in time.
    with open(os.path.join(os.path.dirname(fenced_log), "pid-%d" % token), "w") as f:
        f.write(str(os.getpid()))
    n = 0
    while True:
        try:
            data, stat = zk.get(shared)
            fields = data.split()
            stored = int(fields[0]) if fields else 0
            if stored > token:
                # A newer leader has written: this one was deposed.
                with open(fenced_log, "a") as f:
                    f.write("fenced %d %d %s\n" % (token, stored, ident))
                return
            zk.set(shared, b"%d %s %d" % (token, ident.encode(), n), version=stat.version)
            n += 1
        except BadVersionError:
            continue
        except KazooException:
            time.sleep(0.1)
            continue
        time.sleep(0.05)

if __name__ == "__main__":
    servers, shared, fenced_log = sys.argv[1:4]
    zk = KazooClient(hosts=servers, timeout=4)
    zk.start(15)
    lead(zk, shared, int(os.environ["NDSR_LEADER_TOKEN"]), os.environ["NDSR_ELECTION_ID"], fenced_log)
    sys.exit(3)
"#;

/// kazoo's own contender, leading with its node's czxid as token.
const KAZOO: &str = r#"
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kazoo.client import KazooClient
from writer import lead
servers, path, shared, fenced_log, ident = sys.argv[1:6]
zk = KazooClient(hosts=servers, timeout=4)
zk.start(15)
election = zk.Election(path, ident)
def leading():
    token = zk.exists(path + "/" + election.lock.node).czxid
    print("leading with token %d" % token, flush=True)
    lead(zk, shared, token, ident, fenced_log)
while True:
    try:
        election.run(leading)
    except Exception as e:
        print("kazoo contender: %r" % e, file=sys.stderr, flush=True)
"#;

/// The venv `scripts/setup.sh` makes with kazoo.
fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(python.exists(), "kazoo is not installed: run scripts/setup.sh (it makes .venv)");
    python
}

/// A leader's announcement: when, who, with which token.
type Announced = (Instant, String, i64);

/// One write the observer saw: when, token, writer.
#[derive(Debug, Clone)]
struct Write {
    at: Instant,
    token: i64,
    id: String,
}

struct Contender {
    id: String,
    /// `ndsr elect`'s proxies, one per ensemble member; empty for kazoo.
    proxies: Vec<FaultProxy>,
    child: Child,
}

impl Contender {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn is_kazoo(&self) -> bool {
        self.proxies.is_empty()
    }

    /// Signals it and everything it started.
    fn signal_all(&self, signal: Signal) {
        let mut pids = descendants(self.child.id());
        pids.push(self.child.id());
        for pid in pids {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }
}

impl Drop for Contender {
    fn drop(&mut self) {
        self.signal_all(Signal::SIGCONT);
        self.signal_all(Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Every process whose ancestry leads to `root` (from /proc).
fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // The fields after the command's closing parenthesis: state, ppid.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    found.remove(0);
    found
}

struct World {
    ensemble: ZkEnsemble,
    dir: tempfile::TempDir,
    path: String,
    shared: String,
    announced: Arc<Mutex<Vec<Announced>>>,
}

impl World {
    fn fenced_log(&self) -> PathBuf {
        self.dir.path().join("fenced.log")
    }

    fn fenced(&self) -> Vec<String> {
        std::fs::read_to_string(self.fenced_log()).unwrap_or_default().lines().map(String::from).collect()
    }

    /// Reads a contender's output lines, noting its announcements.
    fn listen(&self, id: &str, stream: impl std::io::Read + Send + 'static) {
        let (id, announced) = (id.to_string(), self.announced.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(token) = line.split("with token ").nth(1) {
                    let token = token.split(|c: char| !c.is_ascii_digit()).next().unwrap_or("");
                    if let Ok(token) = token.parse() {
                        announced.lock().unwrap().push((Instant::now(), id.clone(), token));
                    }
                } else if line.contains("error") || line.contains("contender:") {
                    eprintln!("[{id}] {line}");
                }
            }
        });
    }

    fn start_ndsr(&self, id: &str) -> Contender {
        let proxies: Vec<FaultProxy> =
            self.ensemble.members().iter().map(|m| FaultProxy::start(&m.connect_string()).unwrap()).collect();
        let servers = proxies.iter().map(|p| p.connect_string()).collect::<Vec<_>>().join(",");
        let writer = self.dir.path().join("writer.py");
        let mut child = ndsr(
            &servers,
            &[
                "--session-timeout",
                "4s",
                "elect",
                &self.path,
                "--id",
                id,
                "--grace",
                "1s",
                "--",
                &python().display().to_string(),
                &writer.display().to_string(),
                &self.ensemble.connect_string(),
                &self.shared,
                &self.fenced_log().display().to_string(),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        self.listen(id, child.stderr.take().unwrap());
        Contender { id: id.to_string(), proxies, child }
    }

    fn start_kazoo(&self, id: &str) -> Contender {
        let mut child = Command::new(python())
            .arg(self.dir.path().join("kazoo_contender.py"))
            .args([&self.ensemble.connect_string(), &self.path, &self.shared])
            .arg(self.fenced_log())
            .arg(id)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.listen(id, child.stdout.take().unwrap());
        self.listen(id, child.stderr.take().unwrap());
        Contender { id: id.to_string(), proxies: Vec::new(), child }
    }

    fn restart(&self, contender: &mut Contender) {
        let id = contender.id.clone();
        *contender = if contender.is_kazoo() { self.start_kazoo(&id) } else { self.start_ndsr(&id) };
    }
}

/// Watches the shared node from outside and records each write seen.
fn observe(
    servers: String,
    shared: String,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Vec<Write>>>, std::thread::JoinHandle<()>) {
    let writes: Arc<Mutex<Vec<Write>>> = Arc::default();
    let out = writes.clone();
    let handle = std::thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async move {
            let client = zookeeper_client::Client::connector()
                .with_session_timeout(Duration::from_secs(30))
                .connect(&servers)
                .await
                .unwrap();
            let mut version = -1;
            while !stop.load(Ordering::SeqCst) {
                let read =
                    tokio::time::timeout(Duration::from_secs(2), client.get_and_watch_data(&shared)).await;
                let Ok(Ok((data, stat, watcher))) = read else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                if stat.version != version {
                    version = stat.version;
                    let text = String::from_utf8_lossy(&data).into_owned();
                    let mut fields = text.split_whitespace();
                    if let (Some(Ok(token)), Some(id)) = (fields.next().map(str::parse::<i64>), fields.next())
                    {
                        out.lock().unwrap().push(Write { at: Instant::now(), token, id: id.to_string() });
                    }
                }
                let _ = tokio::time::timeout(Duration::from_millis(500), watcher.changed()).await;
            }
        });
    });
    (writes, handle)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Freeze,
    Refuse,
    Blackhole,
    Kill,
    EnsembleLeader,
}

const FAULTS: [Fault; 5] =
    [Fault::Freeze, Fault::Refuse, Fault::Blackhole, Fault::Kill, Fault::EnsembleLeader];

/// Polls `cond` every 20 ms until it gives something, within `within`.
fn until<T>(what: &str, within: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = cond() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn never_two_leaders_under_freezes_cuts_kills_and_ensemble_failover() {
    let rounds: usize = std::env::var("NDSR_SAFETY_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(6);
    let strict = rounds >= 50;
    let ensemble = ZkEnsemble::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("writer.py"), WRITER).unwrap();
    std::fs::write(dir.path().join("kazoo_contender.py"), KAZOO).unwrap();
    let path = format!("/safety/{}", std::process::id());
    let shared = format!("{path}-token");
    let rt = runtime();
    let admin = zk(&rt, &ensemble.connect_string());
    let options = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    rt.block_on(admin.create("/safety", b"", &options)).ok();
    rt.block_on(admin.create(&shared, b"", &options)).unwrap();

    let world = World { ensemble, dir, path, shared, announced: Arc::default() };
    let stop = Arc::new(AtomicBool::new(false));
    let (writes, observer) = observe(world.ensemble.connect_string(), world.shared.clone(), stop.clone());
    let mut contenders = vec![
        world.start_ndsr("ndsr-0"),
        world.start_ndsr("ndsr-1"),
        world.start_ndsr("ndsr-2"),
        world.start_kazoo("kazoo"),
    ];

    let mut gaps = Vec::new();
    let mut last_token = 0;
    let mut allowed_fenced = Vec::new();
    let (mut ndsr_rounds, mut kazoo_rounds) = (0, 0);
    for round in 0..rounds {
        // A leader writing, newer than the last round's.
        let leading = until(&format!("round {round}: a leader writes"), ROUND, || {
            writes.lock().unwrap().last().filter(|w| w.token >= last_token).cloned()
        });
        let at = contenders.iter().position(|c| c.id == leading.id).expect("the writer is a contender");
        // Each kind of contender goes through its own list of faults (kazoo
        // is not behind proxies).
        let fault = if contenders[at].is_kazoo() {
            kazoo_rounds += 1;
            [Fault::Kill, Fault::Freeze][kazoo_rounds % 2]
        } else {
            ndsr_rounds += 1;
            FAULTS[(ndsr_rounds - 1) % FAULTS.len()]
        };
        let started = Instant::now();
        let mut stopped_member = None;
        match fault {
            Fault::Freeze => {
                contenders[at].signal_all(Signal::SIGSTOP);
                allowed_fenced.push(leading.token);
            }
            Fault::Refuse => contenders[at].proxies.iter().for_each(FaultProxy::cut),
            Fault::Blackhole => contenders[at].proxies.iter().for_each(FaultProxy::blackhole),
            Fault::Kill => {
                // The supervisor alone (kazoo's writer is in its process).
                kill(contenders[at].pid(), Signal::SIGKILL).unwrap();
            }
            Fault::EnsembleLeader => {
                let member = world.ensemble.leader().expect("the ensemble has a leader");
                world.ensemble.member(member).stop().unwrap();
                stopped_member = Some(member);
            }
        }
        // The next leader: a newer token (the ensemble's own failover may
        // leave the same contender leading, on the same node).
        // For the ensemble's failover: a write once it has a leader again.
        let served = match stopped_member {
            Some(_) => until("the ensemble elects a leader", ROUND, || {
                world.ensemble.leader().map(|_| Instant::now())
            }),
            None => started,
        };
        let next = until(&format!("round {round} ({fault:?}): the next leader writes"), ROUND, || {
            let writes = writes.lock().unwrap();
            let after = writes
                .iter()
                .find(|w| w.at > served && (w.token > leading.token || stopped_member.is_some()));
            after.cloned()
        });
        // The deposed leader's command was gone before the next one wrote
        // (a frozen one cannot be: fencing refuses it when it wakes).
        if matches!(fault, Fault::Refuse | Fault::Blackhole | Fault::Kill) {
            let pid =
                std::fs::read_to_string(world.dir.path().join(format!("pid-{}", leading.token))).unwrap();
            let alive = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .is_ok_and(|stat| !stat.contains(") Z "));
            assert!(
                !alive,
                "round {round} ({fault:?}): {}'s command still ran when {} wrote",
                leading.id, next.id
            );
        }
        let last_old = writes
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.token == leading.token && w.at <= next.at)
            .map(|w| w.at)
            .max()
            .unwrap_or(started);
        let announced = world
            .announced
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _, token)| *token == next.token && *at >= started.min(last_old))
            .map(|(at, _, _)| *at)
            .min();
        let mut gap = announced.unwrap_or(next.at).saturating_duration_since(last_old);
        if next.token == leading.token {
            // The same leader throughout: its longest pause in writing.
            let writes = writes.lock().unwrap();
            let times: Vec<Instant> = writes
                .iter()
                .filter(|w| w.at + Duration::from_secs(1) >= started && w.at <= next.at)
                .map(|w| w.at)
                .collect();
            gap = times.windows(2).map(|p| p[1] - p[0]).max().unwrap_or_default();
        }
        eprintln!(
            "round {round}: {fault:?} of {} (token {}) -> {} (token {}) leads after a gap of {gap:?}",
            leading.id, leading.token, next.id, next.token
        );
        gaps.push((fault, gap));
        last_token = next.token;

        // Heal, and bring back whoever is gone.
        match fault {
            Fault::Freeze => contenders[at].signal_all(Signal::SIGCONT),
            Fault::Refuse | Fault::Blackhole => contenders[at].proxies.iter().for_each(FaultProxy::heal),
            Fault::Kill => {}
            Fault::EnsembleLeader => {
                if let Some(member) = stopped_member {
                    world.ensemble.member(member).start().unwrap();
                }
            }
        }
        if fault == Fault::Kill {
            // What the killed `ndsr elect` ran must be gone with it.
            let _ = contenders[at].child.wait();
            let orphans = until("the killed contender's command ends", Duration::from_secs(10), || {
                let left: Vec<u32> = std::fs::read_dir("/proc")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
                    .filter(|pid| {
                        std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                            env.split(|b| *b == 0)
                                .any(|v| v == format!("NDSR_ELECTION_ID={}", leading.id).as_bytes())
                                && env
                                    .split(|b| *b == 0)
                                    .any(|v| v == format!("NDSR_LEADER_TOKEN={}", leading.token).as_bytes())
                        })
                    })
                    .collect();
                left.is_empty().then_some(left)
            });
            assert!(orphans.is_empty());
        }
        for contender in contenders.iter_mut() {
            if contender.child.try_wait().unwrap().is_some() {
                world.restart(contender);
            }
        }
        let unexpected: Vec<String> = world
            .fenced()
            .into_iter()
            .filter(|line| {
                let token = line.split_whitespace().nth(1).and_then(|t| t.parse::<i64>().ok());
                !token.is_some_and(|t| allowed_fenced.contains(&t))
            })
            .collect();
        assert!(
            unexpected.is_empty(),
            "round {round}: a deposed leader acted after a newer one: {unexpected:?}"
        );
    }
    stop.store(true, Ordering::SeqCst);
    observer.join().unwrap();

    // The observer's record: tokens never go back; each leader's is new.
    let writes = writes.lock().unwrap().clone();
    for pair in writes.windows(2) {
        assert!(pair[0].token <= pair[1].token, "a token went back: {:?} then {:?}", pair[0], pair[1]);
    }
    let mut leaders: Vec<(i64, String)> = Vec::new();
    for w in &writes {
        if leaders.last().map(|l| l.0) != Some(w.token) {
            assert!(!leaders.iter().any(|l| l.0 == w.token), "token {} led twice, apart", w.token);
            leaders.push((w.token, w.id.clone()));
        }
    }
    let mut sorted: Vec<Duration> = gaps.iter().map(|g| g.1).collect();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let max = *sorted.last().unwrap();
    eprintln!(
        "{rounds} rounds, {} leaders, {} fenced wake-ups of frozen leaders; leaderless gap median {median:?}, max {max:?}",
        leaders.len(),
        world.fenced().len()
    );
    if strict {
        for (fault, gap) in &gaps {
            assert!(*gap <= SESSION + Duration::from_secs(1), "{fault:?}: leaderless for {gap:?}");
        }
    }
    drop(contenders);
}
