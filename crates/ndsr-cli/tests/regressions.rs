//! Regressions of issue 15 through the built binary: each test fails
//! without its fix.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ndsr_testkit::{unique_path, ZkServer};
use zookeeper_client::{Acls, Client, CreateMode};

fn exists(rt: &tokio::runtime::Runtime, zk: &Client, path: &str) -> bool {
    rt.block_on(zk.check_stat(path)).unwrap().is_some()
}

fn data(rt: &tokio::runtime::Runtime, zk: &Client, path: &str) -> Vec<u8> {
    rt.block_on(zk.get_data(path)).unwrap().0
}

fn assert_clean(err: &str) {
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

#[test]
fn lock_refuses_configs_and_registrations_and_changes_nothing() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let zk = zk(&rt, &server);
    let base = unique_path("cli-lock-refuses");
    let config = format!("{base}/config/web");
    assert_eq!(run(&server, &["set-data", &config, "--data", r#"{"replicas":3}"#]).0, 0);
    let before = data(&rt, &zk, &config);
    let (code, _, err) = run(&server, &["lock", &config, "--wait", "0s", "--", "true"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot be a lock"), "{err}");
    assert_eq!(data(&rt, &zk, &config), before, "the config is kept");

    let service = format!("{base}/services/web");
    let member = format!("{service}/h1:80");
    let register = Running::start(&server, &["register", &member]);
    register.line_where("registered", |l| l.starts_with("registered"));
    let before = data(&rt, &zk, &member);
    let (code, _, err) = run(&server, &["lock", &member, "--wait", "0s", "--", "true"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(data(&rt, &zk, &member), before, "the registration is kept");
    assert_eq!(rt.block_on(zk.list_children(&service)).unwrap(), ["h1:80"], "no -__lock__ member");
}

#[test]
fn a_missing_chroot_is_exit_3_and_created_only_with_create_chroot() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let zk = zk(&rt, &server);
    let chroot = unique_path("prodd");
    let with_chroot = format!("{server}{chroot}");
    let start = Instant::now();
    let (code, out, err) = run(&with_chroot, &["--readonly", "get", "/"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("does not exist") && err.contains("--create-chroot"), "{err}");
    assert!(out.is_empty());
    assert!(start.elapsed() < Duration::from_secs(8), "at once, not after --timeout");
    assert!(!exists(&rt, &zk, &chroot), "not created");
    let (code, _, err) = run(&with_chroot, &["--create-chroot", "set-data", "/a", "--data", "{}"]);
    assert_eq!(code, 0, "{err}");
    assert!(exists(&rt, &zk, &format!("{chroot}/a")));
    assert_eq!(run(&with_chroot, &["--readonly", "--create-chroot", "get", "/"]).0, 2, "contradictory flags");
}

#[test]
fn get_of_a_missing_node_exits_10_unless_allowed() {
    let server = ZkServer::shared().connect_string();
    let missing = unique_path("cli-missing");
    let (code, out, err) = run(&server, &["get", &missing, "--format", "dir"]);
    assert_eq!(code, 10, "{err}");
    assert!(out.is_empty(), "dir lists nothing for a missing node: {out}");
    assert!(err.contains("no node at"), "{err}");
    let (code, out, _) = run(&server, &["get", &missing, "--format", "json"]);
    assert_eq!(code, 10);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["exists"], false);
    let (code, out, _) = run(&server, &["get", &missing, "--allow-missing"]);
    assert_eq!(code, 0);
    assert!(out.contains("exists: false"), "{out}");
}

#[test]
fn bad_input_is_exit_3_at_once_and_never_a_panic() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let zk = zk(&rt, &server);
    let base = unique_path("cli-bad");
    let node = format!("{base}/n");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["register", "/x", "--check-tcp", "127.0.0.1:80", "--interval", "0s"], "too short"),
        (vec!["register", "/x", "--check-tcp", "127.0.0.1:80", "--interval", "1ns"], "too short"),
        (vec!["register", "/x", "--check-tcp", "nonsense"], "HOST:PORT"),
        (vec!["register", "/x", "--check-http", "not a url"], "URL"),
        (vec!["set-data", &node, "--data", "[1,2]"], "array"),
        (vec!["set-data", &node, "--data", "3"], "number"),
        (vec!["set-data", &node, "--data", "true"], "boolean"),
        (vec!["unset", &base, "-r"], "--yes"),
        (vec!["unset", "/zookeeper"], "/zookeeper"),
    ];
    let flat: Vec<String> = vec![format!("{base}/\u{1f600}:80")];
    let mut cases = cases;
    cases.push((vec!["register", &flat[0]], "Basic Multilingual Plane"));
    for (args, message) in cases {
        let (code, out, err) = run(&server, &args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert_clean(&err);
        assert!(out.is_empty(), "{args:?}: {out}");
    }
    assert!(!exists(&rt, &zk, &base), "nothing was created");
    for servers in ["", ":21810", "h:abc", "h:99999", "127.0.0.1:2181,"] {
        let start = Instant::now();
        let (code, _, err) = run(servers, &["--timeout", "30s", "get", "/"]);
        assert_eq!(code, 3, "{servers:?}: {err}");
        assert!(err.contains("invalid server list"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10), "{servers:?} failed at once");
    }
    let (code, _, err) = run(&server, &["--session-timeout", "0s", "get", "/"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = run(&server, &["get", "/", "--max-nodes", "0"]);
    assert_eq!(code, 2, "refused by the parser: {err}");
}

#[test]
fn set_data_keeps_user_keys_and_refuses_another_sessions_ephemeral() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let zk = zk(&rt, &server);
    let node = unique_path("cli-pid");
    assert_eq!(run(&server, &["set-data", &node, "--data", r#"{"pid":100}"#]).0, 0);
    assert_eq!(run(&server, &["set-data", &node, "--data", r#"{"pid":200}"#]).0, 0);
    let json: serde_json::Value = serde_json::from_slice(&data(&rt, &zk, &node)).unwrap();
    assert_eq!(json["pid"], 200);

    let member = format!("{}/h:1", unique_path("cli-foreign"));
    let register = Running::start(&server, &["register", &member]);
    register.line_where("registered", |l| l.starts_with("registered"));
    let before = data(&rt, &zk, &member);
    let (code, _, err) = run(&server, &["set-data", &member, "--data", r#"{"x":1}"#]);
    assert_eq!(code, 9, "{err}");
    assert_eq!(data(&rt, &zk, &member), before);
}

#[test]
fn unset_explains_children_and_removes_a_subtree_with_yes() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let zk = zk(&rt, &server);
    let base = unique_path("cli-tree");
    assert_eq!(run(&server, &["set-data", &format!("{base}/a/b"), "--data", "{}"]).0, 0);
    let (code, _, err) = run(&server, &["unset", &base]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("has children") && err.contains("unset -r"), "{err}");
    assert!(exists(&rt, &zk, &base));
    let (code, _, err) = run(&server, &["unset", "-r", "--yes", &base]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("removed 3 node(s)"), "{err}");
    assert!(!exists(&rt, &zk, &base));
}

#[test]
fn a_truncated_tree_marks_the_nodes_whose_children_were_not_read() {
    let server = ZkServer::shared().connect_string();
    let base = unique_path("cli-trunc");
    for leaf in ["a/x", "a/y", "b"] {
        assert_eq!(run(&server, &["set-data", &format!("{base}/{leaf}"), "--data", "{}"]).0, 0);
    }
    let (code, out, err) = run(&server, &["get", &base, "-r", "--max-nodes", "2", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stopped after 2 nodes"), "{err}");
    let tree: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tree["children_not_read"], true, "{out}");
    assert_eq!(tree["children"][0]["children_not_read"], true, "a's children were not read: {out}");
    let (_, out, _) = run(&server, &["get", &base, "-r", "--format", "json"]);
    assert!(!out.contains("children_not_read"), "{out}");
}

#[test]
fn register_removes_its_node_on_sighup_and_warns_when_its_check_fails() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let zk = zk(&rt, &server);
    let node = format!("{}/h:1", unique_path("cli-hup"));
    let register = Running::start(&server, &["register", &node]);
    register.line_where("registered", |l| l.starts_with("registered"));
    assert!(exists(&rt, &zk, &node));
    register.signal(nix::sys::signal::Signal::SIGHUP);
    assert_eq!(register.wait(), 0);
    assert!(!exists(&rt, &zk, &node), "removed at once, not after the session timeout");

    // A failing check is visible at the default level, without colours on
    // a pipe.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = closed.local_addr().unwrap().to_string();
    drop(closed);
    let node = format!("{}/h:2", unique_path("cli-warn"));
    let register =
        Running::start(&server, &["register", &node, "--check-tcp", &target, "--interval", "200ms"]);
    let warning = register.error_where("the failing check", |l| l.contains("health check failing"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(!warning.contains('\u{1b}'), "no ANSI escapes when stderr is not a terminal: {warning:?}");
}

#[test]
fn lock_kills_a_command_that_ignores_sigterm_after_the_grace_period() {
    let server = ZkServer::shared().connect_string();
    let path = unique_path("cli-grace");
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!("trap '' TERM INT; echo $$ > {}; sleep 60", pidfile.display());
    let holder = Running::start(&server, &["lock", &path, "--grace", "1s", "--", "sh", "-c", &script]);
    poll("the command runs", || std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n')));
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
    holder.signal(nix::sys::signal::Signal::SIGTERM);
    let code = holder.wait();
    assert_eq!(code, 128 + 9, "the command was killed");
    poll("the command is gone", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    let (code, _, err) = run(&server, &["lock", &path, "--wait", "0s", "--", "true"]);
    assert_eq!(code, 0, "the lock was released: {err}");
    let (code, _, err) = run(&server, &["lock", &unique_path("cli-free"), "--wait", "0s", "--", "true"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_zero_wait_lock_says_it_is_held_not_within_0ns() {
    let server = ZkServer::shared().connect_string();
    let path = unique_path("cli-zero");
    let dir = tempfile::tempdir().unwrap();
    let inside = dir.path().join("inside");
    let script = format!("touch {}; sleep 30", inside.display());
    let _holder = Running::start(&server, &["lock", &path, "--", "sh", "-c", &script]);
    poll("the holder runs", || inside.exists());
    let (code, _, err) = run(&server, &["lock", &path, "--wait", "0s", "--", "true"]);
    assert_eq!(code, 7, "{err}");
    assert!(!err.contains("0ns") && err.contains("not free now"), "{err}");
}

#[test]
fn sandbox_refuses_a_taken_port_and_exits_when_its_server_dies() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, out, err) = run("127.0.0.1:1", &["sandbox", "--port", &port]);
    assert_ne!(code, 0, "{err}");
    assert!(out.is_empty(), "it claims nothing: {out}");
    assert!(err.contains("not free"), "{err}");
    drop(taken);

    // Another ZooKeeper on the port: ours must not mistake it for itself.
    let other = ZkServer::shared();
    let (code, out, err) = run("127.0.0.1:1", &["sandbox", "--port", &other.port().to_string()]);
    assert_ne!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");

    let sandbox = Running::start("127.0.0.1:1", &["sandbox"]);
    sandbox.line_where("the connection string", |l| l.starts_with("127.0.0.1:"));
    let jvm = child_pids(sandbox.child.id())
        .into_iter()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.contains("zookeeper"))
        })
        .expect("the sandbox's JVM is its child");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(jvm as i32), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    sandbox.error_where("the death reported", |l| l.contains("server died"));
    assert_ne!(sandbox.wait(), 0);
}

/// The direct children of `pid` (from /proc).
fn child_pids(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    out
}

#[test]
fn a_lock_under_a_registration_leaves_nothing_behind() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let zk = zk(&rt, &server);
    let service = unique_path("cli-under");
    let member = format!("{service}/h:1");
    let opts = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    rt.block_on(zk.mkdir(&service, &CreateMode::Persistent.with_acls(Acls::anyone_all()))).unwrap();
    rt.block_on(zk.create(&member, b"", &opts)).unwrap();
    let (code, _, err) = run(&server, &["lock", &format!("{member}/lock"), "--wait", "0s", "--", "true"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(rt.block_on(zk.list_children(&service)).unwrap(), ["h:1"]);
}
