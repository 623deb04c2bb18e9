//! `ndsr elect` against a real ZooKeeper: one command at a time across two
//! contenders, the next leader's larger token, a blackholed leader's
//! command stopped before the next one starts, re-joining after its node
//! is deleted, `--once`, exit codes, `--status` (text and JSON) and bad
//! arguments.
//!
//! The command under test appends `start ID TOKEN PATH PID` to a shared log
//! when it starts and `stop ID` when it gets SIGTERM, and claims a marker
//! file with `set -C` (noclobber): a second command starting while the
//! first runs writes `overlap ID`. The log, written by the commands
//! themselves, is the external record of who ran when.

mod common;

use std::path::PathBuf;

use common::*;
use ndsr::election::ElectionLayout;
use ndsr_testkit::{unique_path, FaultProxy, ZkServer};
use nix::sys::signal::Signal;

/// The shared log of the commands, in a temporary directory.
struct Log {
    dir: tempfile::TempDir,
}

/// One `start` line.
#[derive(Debug, Clone, PartialEq)]
struct Start {
    id: String,
    token: i64,
    path: String,
    pid: i32,
}

impl Log {
    fn new() -> Log {
        Log { dir: tempfile::tempdir().unwrap() }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.file()).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn starts(&self) -> Vec<Start> {
        self.lines()
            .iter()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() == 5 && f[0] == "start").then(|| Start {
                    id: f[1].to_string(),
                    token: f[2].parse().unwrap(),
                    path: f[3].to_string(),
                    pid: f[4].parse().unwrap(),
                })
            })
            .collect()
    }

    /// Waits until the log holds `n` starts; returns them.
    fn wait_starts(&self, n: usize) -> Vec<Start> {
        poll(&format!("{n} start(s) in the log"), || self.starts().len() >= n);
        let starts = self.starts();
        assert_eq!(starts.len(), n, "{:?}", self.lines());
        starts
    }

    fn wait_line(&self, line: &str) {
        poll(&format!("{line:?} in the log"), || self.lines().iter().any(|l| l == line));
    }

    fn no_overlap(&self) {
        let lines = self.lines();
        assert!(!lines.iter().any(|l| l.starts_with("overlap")), "two commands ran at once: {lines:?}");
    }

    /// The command: `sh -c SCRIPT`; `term` is what it does on SIGTERM
    /// after logging it (`exit 0`, or nothing to ignore it).
    fn command(&self, term: &str) -> String {
        let d = self.dir.path().display();
        format!(
            "set -C; echo \"start $NDSR_ELECTION_ID $NDSR_LEADER_TOKEN $NDSR_ELECTION_PATH $$\" >> {d}/log; \
             if ! : > {d}/running; then echo \"overlap $NDSR_ELECTION_ID\" >> {d}/log; fi; \
             trap 'rm -f {d}/running; echo \"stop $NDSR_ELECTION_ID\" >> {d}/log; {term}' TERM; \
             while :; do sleep 0.05; done"
        )
    }
}

impl Drop for Log {
    /// A command left running (its ndsr killed by a failed test, or by
    /// `Running`'s drop) is killed with its group; only a process whose
    /// command line still names this log's directory.
    fn drop(&mut self) {
        let dir = self.dir.path().display().to_string();
        for start in self.starts() {
            let cmdline = std::fs::read(format!("/proc/{}/cmdline", start.pid)).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&dir) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(start.pid), Signal::SIGKILL);
            }
        }
    }
}

fn elect(server: &str, path: &str, id: &str, extra: &[&str], command: &str) -> Running {
    let mut args = vec!["--session-timeout", "4s", "elect", path, "--id", id];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", command]);
    Running::start(server, &args)
}

fn status_json(server: &str, path: &str) -> serde_json::Value {
    let (code, out, err) = run(server, &["elect", path, "--status", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn ids(status: &serde_json::Value) -> Vec<String> {
    status["contenders"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

fn process_gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

#[test]
fn one_command_at_a_time_and_the_next_leader_runs_with_a_larger_token() {
    let server = ZkServer::shared().connect_string();
    let path = unique_path("cli-elect");
    let log = Log::new();
    let command = log.command("exit 0");
    let a = elect(&server, &path, "a", &[], &command);
    let first = log.wait_starts(1);
    let b = elect(&server, &path, "b", &[], &command);
    poll("both contend", || ids(&status_json(&server, &path)).len() == 2);
    assert_eq!(first[0].id, "a", "the first to join leads");
    assert_eq!(first[0].path, path, "NDSR_ELECTION_PATH");
    assert_eq!(log.starts().len(), 1, "the follower runs nothing: {:?}", log.lines());

    // The leader's ndsr killed outright: its command dies with it (the
    // kernel SIGKILLs it: it never runs on unguarded), its session
    // expires, then the follower leads.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(a.child.id() as i32), Signal::SIGKILL).unwrap();
    poll("a's command dies with its ndsr", || process_gone(first[0].pid));
    // Killed, it could not take its marker away: the test does.
    std::fs::remove_file(log.dir.path().join("running")).unwrap();
    let second = log.wait_starts(2);
    assert!(!log.lines().contains(&"stop a".to_string()), "killed, not asked: {:?}", log.lines());
    assert_eq!(second[1].id, "b");
    assert!(second[1].token > first[0].token, "the token grows: {second:?}");
    log.no_overlap();
    let status = status_json(&server, &path);
    assert_eq!(ids(&status), ["b"], "a's node went with its session");
    assert_eq!(status["leader"]["id"], "b");

    // A third contender, then the leader stopped by SIGTERM: its command
    // gets SIGTERM, it resigns and exits 0, and the third leads at once.
    let c = elect(&server, &path, "c", &[], &command);
    poll("c contends", || ids(&status_json(&server, &path)) == ["b", "c"]);
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait(), 0, "SIGTERM: exit 0");
    log.wait_line("stop b");
    let third = log.wait_starts(3);
    assert_eq!(third[2].id, "c");
    assert!(third[2].token > third[1].token, "{third:?}");
    log.no_overlap();

    // SIGINT: the command stopped, exit 130, no contender left.
    c.signal(Signal::SIGINT);
    assert_eq!(c.wait(), 130, "SIGINT: exit 130");
    log.wait_line("stop c");
    assert!(ids(&status_json(&server, &path)).is_empty());
    for s in &third {
        poll("every command has ended", || process_gone(s.pid));
    }
}

#[test]
fn a_blackholed_leader_stops_its_command_before_the_next_leader_starts_one() {
    let server = ZkServer::new().unwrap();
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let direct = server.connect_string();
    let path = unique_path("cli-elect-blackhole");
    let log = Log::new();
    // The leader's command ignores SIGTERM (it only logs it): the SIGKILL
    // that ndsr sends before the session can expire ends it, although
    // --grace is long.
    let a = elect(&proxy.connect_string(), &path, "a", &["--grace", "60s"], &log.command(""));
    let first = log.wait_starts(1);
    let b = elect(&direct, &path, "b", &[], &log.command("exit 0"));
    poll("both contend", || ids(&status_json(&direct, &path)).len() == 2);

    proxy.blackhole();
    let second = log.wait_starts(2);
    assert_eq!(second[1].id, "b");
    assert!(second[1].token > first[0].token);
    let lines = log.lines();
    let stop = lines.iter().position(|l| l == "stop a").expect("a's command got SIGTERM");
    let start = lines.iter().position(|l| l.starts_with("start b")).unwrap();
    assert!(stop < start, "a's command was told to stop after b's started: {lines:?}");
    assert!(process_gone(first[0].pid), "a's command was killed before b's started");
    a.error_where("ndsr says leadership is lost", |l| l.contains("leadership of") && l.contains("killed sh"));

    // Without --once, a stays in the election: once its link is back, it
    // joins again (a new node: its session expired) and follows b.
    proxy.heal();
    poll("a contends again behind b", || ids(&status_json(&direct, &path)) == ["b", "a"]);
    a.error_where("a waits to lead again", |l| l.contains("following in"));
    assert_eq!(log.starts().len(), 2, "{:?}", log.lines());
    log.no_overlap();
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait(), 0);
}

#[test]
fn a_leader_whose_node_is_deleted_joins_again_and_once_exits_8() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let log = Log::new();
    let leader_node = |path: &str| {
        let status = status_json(&server, path);
        format!("{path}/{}", status["leader"]["node"].as_str().unwrap())
    };

    // The commands ignore SIGTERM, and --grace is long: once the node is
    // found gone (another contender may lead at once), the command is
    // killed without waiting for the grace or the session's deadline.
    // Without --once, ndsr runs it again once it leads with its new node.
    let path = unique_path("cli-elect-rejoin");
    let a = elect(&server, &path, "a", &["--grace", "60s"], &log.command(""));
    let first = log.wait_starts(1);
    rt.block_on(client.delete(&leader_node(&path), None)).unwrap();
    let again = log.wait_starts(2);
    assert_eq!(again[1].id, "a");
    assert!(again[1].token > first[0].token, "a new node, a larger token: {again:?}");
    assert!(process_gone(first[0].pid));
    a.error_where("ndsr says it killed the command", |l| l.contains("killed sh; waiting to lead again"));
    log.no_overlap();
    drop(a);

    // With --once: the first term's end is the end (exit 8).
    let path = unique_path("cli-elect-once");
    let log = Log::new();
    let once = elect(&server, &path, "o", &["--once", "--grace", "60s"], &log.command(""));
    let first = log.wait_starts(1);
    rt.block_on(client.delete(&leader_node(&path), None)).unwrap();
    let err = once.error_where("ndsr says why it exits", |l| l.contains("leadership of"));
    assert!(err.contains(&format!("leadership of {path} lost")) && err.contains("killed sh"), "{err}");
    assert_eq!(once.wait(), 8, "--once: exit 8 when leadership is lost");
    assert!(process_gone(first[0].pid));
    assert_eq!(log.starts().len(), 1, "{:?}", log.lines());
}

#[test]
fn the_commands_own_exit_resigns_and_passes_its_code() {
    let server = ZkServer::shared().connect_string();
    let path = unique_path("cli-elect-exit");
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env");
    let script = format!(
        "echo \"$NDSR_ELECTION_ID|$NDSR_ELECTION_PATH|$NDSR_LEADER_TOKEN\" > {}; exit 7",
        env.display()
    );
    let (code, _, err) = run(&server, &["elect", &path, "--id", "job 1", "--", "sh", "-c", &script]);
    assert_eq!(code, 7, "the command's code: {err}");
    let seen = std::fs::read_to_string(&env).unwrap();
    let fields: Vec<&str> = seen.trim().split('|').collect();
    assert_eq!(fields[..2], ["job 1", path.as_str()]);
    assert!(fields[2].parse::<i64>().unwrap() > 0, "{seen}");
    assert!(ids(&status_json(&server, &path)).is_empty(), "resigned");

    // A command killed by a signal: 128 + the signal.
    let (code, _, _) = run(&server, &["elect", &path, "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(code, 137);
    // The default id is HOSTNAME:PID.
    let (code, _, err) = run(
        &server,
        &["elect", &path, "--", "sh", "-c", "echo \"$NDSR_ELECTION_ID\" > $0", &env.display().to_string()],
    );
    assert_eq!(code, 0, "{err}");
    let id = std::fs::read_to_string(&env).unwrap();
    let (host, pid) = id.trim().rsplit_once(':').unwrap();
    assert!(!host.is_empty() && pid.parse::<u32>().is_ok(), "{id}");
}

#[test]
fn status_lists_a_library_election_in_text_and_json() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let path = unique_path("cli-elect-status");
    let (code, out, err) = run(&server, &["elect", &path, "--status"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("path: {path}\nlayout: none (no contenders)\nleader: none\ncontenders: none\n"));
    let empty = status_json(&server, &path);
    assert_eq!(empty, serde_json::json!({"path": path, "layouts": [], "leader": null, "contenders": []}));

    let registry = |id: &str| {
        let registry = rt.block_on(ndsr::Registry::builder(&server).build()).unwrap();
        let election =
            rt.block_on(registry.election(&path, id).layout(ElectionLayout::Kazoo).join()).unwrap();
        (registry, election)
    };
    let (_r1, one) = registry("host-1");
    let (_r2, two) = registry("host 2");
    let nodes: Vec<_> = rt.block_on(one.contenders()).unwrap();
    assert_eq!(nodes.len(), 2);
    let json = status_json(&server, &path);
    let contender = |c: &ndsr::election::Contender| serde_json::json!({"node": c.node, "layout": "kazoo", "sequence": c.sequence, "id": c.id});
    assert_eq!(
        json,
        serde_json::json!({
            "path": path,
            "layouts": ["kazoo"],
            "leader": contender(&nodes[0]),
            "contenders": [contender(&nodes[0]), contender(&nodes[1])],
        })
    );
    let (code, out, _) = run(&server, &["elect", &path, "--status"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "path: {path}\nlayout: kazoo\nleader: host-1 (node {0})\ncontenders:\n  1. {1} kazoo host-1 {0}\n  2. {3} kazoo \"host 2\" {2}\n",
            nodes[0].node, nodes[0].sequence, nodes[1].node, nodes[1].sequence
        )
    );
    rt.block_on(two.resign());
    rt.block_on(one.resign());
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let path = unique_path("cli-elect-bad");
    let usage = [
        (vec!["elect", &path], "CMD"),
        (vec!["elect", &path, "--lost-after", "1.5", "--", "true"], "not a number from 0.1 to 0.9"),
        (vec!["elect", &path, "--layout", "zk", "--", "true"], "invalid value 'zk'"),
        (vec!["elect", &path, "--status", "--", "true"], "cannot be used with"),
        (vec!["elect", &path, "--status", "--once"], "cannot be used with"),
        (vec!["elect", &path, "--json", "--", "true"], "cannot be used with"),
        (vec!["elect", &path, "--json"], "CMD"),
        (vec!["elect", &path, "--grace", "soon", "--", "true"], "--grace"),
        (vec!["elect", &path, "--reconnect-grace", "soon", "--", "true"], "--reconnect-grace"),
        (vec!["elect", &path, "--status", "--reconnect-grace", "5s"], "cannot be used with"),
    ];
    for (args, says) in usage {
        let (code, _, err) = run(&server, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let (code, _, err) = run(&server, &["--readonly", "elect", &path, "--", "true"]);
    assert_eq!(code, 6, "{err}");
    let (code, help, _) = run(&server, &["elect", "--help"]);
    assert_eq!(code, 0);
    for line in
        ["    8    --once: leadership lost while CMD ran", "    130  stopped by SIGINT", "NDSR_LEADER_TOKEN"]
    {
        assert!(help.contains(line), "--help says {line:?}: {help}");
    }
    let (code, _, err) = run(&server, &["elect", "no-slash", "--", "true"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.starts_with("ndsr: "), "{err}");
    let (code, _, err) = run(&server, &["elect", "/", "--", "true"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("path of its own"), "{err}");

    // A path that Curator latches hold is refused, naming their layout.
    let registry = rt.block_on(ndsr::Registry::builder(&server).build()).unwrap();
    let latch =
        rt.block_on(registry.election(&path, "curator").layout(ElectionLayout::CuratorLatch).join()).unwrap();
    let (code, _, err) = run(&server, &["elect", &path, "--", "true"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("curator-latch"), "{err}");
    let (code, out, _) = run(&server, &["elect", &path, "--layout", "curator-latch", "--status"]);
    assert_eq!(code, 2, "--status takes no --layout: {out}");
    rt.block_on(latch.resign());
    // A command that cannot run is said before joining, not after winning.
    let (code, _, err) = run(&server, &["elect", &path, "--", "nonexistent-command-for-ndsr"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot run nonexistent-command-for-ndsr: not found in PATH"), "{err}");
    assert!(ids(&status_json(&server, &path)).is_empty(), "never joined");
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("script");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    let (code, _, err) = run(&server, &["elect", &path, "--", &not_executable.display().to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("may execute"), "{err}");
}
