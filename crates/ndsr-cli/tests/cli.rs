//! The `ndsr` binary, run as a script would, against real ZooKeeper servers.

mod common;

use common::*;
use ndsr_testkit::{unique_path, FaultProxy, ZkServer};
use zookeeper_client::{Acls, Client, CreateMode};

#[test]
fn get_set_data_and_unset_happy_paths_in_every_format() {
    let server = ZkServer::shared().connect_string();
    let base = unique_path("cli-get");
    let node = format!("{base}/web");
    assert_eq!(run(&server, &["set-data", &node, "--data", r#"{"replicas":3}"#]).0, 0);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), r#""from a file""#).unwrap();
    assert_eq!(
        run(&server, &["set-data", &format!("{base}/other"), "--data-file", file.path().to_str().unwrap()]).0,
        0
    );

    let (code, out, _) = run(&server, &["get", &node, "-d", "--format", "json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["path"], node.as_str());
    assert_eq!(json["data"]["replicas"], 3);
    assert!(json["data"]["pid"].is_u64());
    assert_eq!(json["stat"]["version"], 0);

    let (code, out, _) = run(&server, &["get", &base, "-d"]);
    assert_eq!(code, 0);
    assert!(out.contains("children:\n- other\n- web") || out.contains("- other\n- web"), "yaml: {out}");

    let (_, out, _) = run(&server, &["get", &base, "-r", "--format", "dir"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), [base.clone(), format!("{base}/other"), node.clone()]);
    let (_, out, _) = run(&server, &["get", &base, "-r", "-d", "--format", "json"]);
    let tree: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tree["children"][0]["data"]["string_value"], "from a file");

    assert_eq!(run(&server, &["unset", &node]).0, 0);
    let (_, out, _) = run(&server, &["get", &node, "--format", "json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["exists"], false);
    assert_eq!(run(&server, &["unset", &node]).0, 0, "absent is fine");
}

#[test]
fn failures_are_one_line_with_a_distinct_exit_code() {
    let server = ZkServer::shared().connect_string();
    let path = unique_path("cli-fail");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["frobnicate"], 2, "unrecognized subcommand"),
        (vec!["get", "no-slash"], 3, "must start with '/'"),
        (vec!["set-data", &path, "--data", "{bad"], 3, "not valid JSON"),
        (vec!["set-data", &path], 3, "needs --data"),
        (vec!["--readonly", "unset", &path], 6, "read-only"),
        (vec!["lock", &path, "--simultaneous", "0", "--", "true"], 3, "simultaneous"),
    ];
    for (args, code, message) in cases {
        let (got, out, err) = run(&server, &args);
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
        assert!(out.is_empty(), "{args:?} printed on stdout: {out}");
        if code != 2 {
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        }
    }
    let unreachable = "127.0.0.1:1";
    let (code, _, err) = run(unreachable, &["--timeout", "1s", "get", "/"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("is ZooKeeper running"), "{err}");

    // Auth: nodes made by one user refuse another.
    let owned = unique_path("cli-auth");
    assert_eq!(run(&server, &["-u", "alice", "-p", "a", "set-data", &owned, "--data", r#"{"v":1}"#]).0, 0);
    let (code, _, err) =
        run(&server, &["-u", "mallory", "-p", "m", "set-data", &owned, "--data", r#"{"v":2}"#]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("not authorized"), "{err}");
}

#[test]
fn watch_follows_changes_across_a_restart_and_a_session_expiry() {
    let rt = runtime();
    let server = ZkServer::new().unwrap();
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let client = zk(&rt, &server.connect_string());
    let path = unique_path("cli-watch");
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    rt.block_on(client.mkdir(&path, &opts)).unwrap();

    let watch = Running::start(
        &proxy.connect_string(),
        &["--session-timeout", "2s", "watch", &path, "--format", "json"],
    );
    let first: serde_json::Value =
        serde_json::from_str(&watch.line_where("the first snapshot", |_| true)).unwrap();
    assert_eq!(first["children"], serde_json::json!([]));

    rt.block_on(client.create(&format!("{path}/a"), b"", &opts)).unwrap();
    watch.line_where("child a", |l| l.contains(r#""children":["a"]"#));

    // A server restart (same session).
    server.restart().unwrap();
    let client = zk(&rt, &server.connect_string());
    rt.block_on(client.create(&format!("{path}/b"), b"", &opts)).unwrap();
    watch.line_where("child b after the restart", |l| l.contains(r#""children":["a","b"]"#));

    // A session expiry: cut off longer than the session timeout, while
    // other changes things.
    proxy.cut();
    watch.error_where("the expiry reported", |l| l.contains("session expired"));
    rt.block_on(client.create(&format!("{path}/c"), b"", &opts)).unwrap();
    proxy.heal();
    watch.error_where("the new session", |l| l.contains("connected;"));
    watch.line_where("child c, made while expired", |l| l.contains(r#""children":["a","b","c"]"#));
    rt.block_on(client.create(&format!("{path}/d"), b"", &opts)).unwrap();
    watch.line_where("child d, made after", |l| l.contains(r#""children":["a","b","c","d"]"#));
    watch.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(watch.wait(), 0);
}

#[test]
fn register_follows_its_tcp_health_check_and_sigterm_removes_the_node_at_once() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let node = format!("{}/h:1", unique_path("cli-register"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let exists = |c: &Client| rt.block_on(c.check_stat(&node)).unwrap().is_some();

    let register = Running::start(
        &server,
        &[
            "register",
            &node,
            "--data",
            r#"{"w":1}"#,
            "--check-tcp",
            &target,
            "--interval",
            "200ms",
            "--rise",
            "1",
            "--fall",
            "1",
        ],
    );
    register.line_where("registered", |l| l.starts_with("registered"));
    assert!(exists(&client));

    drop(listener);
    register.line_where("withdrawn", |l| l.starts_with("withdrawn"));
    assert!(!exists(&client));

    let listener = std::net::TcpListener::bind(&target).unwrap();
    register.line_where("registered again", |l| l.starts_with("registered"));
    assert!(exists(&client));

    register.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(register.wait(), 0);
    assert!(!exists(&client), "removed at once, not after the session timeout");
    drop(listener);
}

#[test]
fn lock_excludes_a_second_holder_and_passes_the_exit_code() {
    let server = ZkServer::shared().connect_string();
    let path = unique_path("cli-lock");
    let dir = tempfile::tempdir().unwrap();
    let inside = dir.path().join("inside");
    let release = dir.path().join("release");
    let script = format!(
        "touch {0}; while [ ! -e {1} ]; do sleep 0.05; done; exit 7",
        inside.display(),
        release.display()
    );
    let holder = Running::start(&server, &["lock", &path, "--name", "first", "--", "sh", "-c", &script]);
    poll("the first holder runs its command", || inside.exists());

    let (code, _, err) = run(&server, &["lock", &path, "--wait", "0s", "--", "true"]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("is held by others"), "{err}");

    let waiter = Running::start(&server, &["lock", &path, "--wait", "30s", "--", "sh", "-c", "exit 3"]);
    std::fs::write(&release, b"").unwrap();
    assert_eq!(holder.wait(), 7, "the command's own exit code");
    assert_eq!(waiter.wait(), 3, "the waiter ran once the lock was free");
}

#[test]
fn lock_kills_the_command_when_the_lock_is_lost() {
    let server = ZkServer::new().unwrap();
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let path = unique_path("cli-lost");
    let dir = tempfile::tempdir().unwrap();
    let inside = dir.path().join("inside");
    // A command that starts a process of its own: the whole group must go.
    let pidfile = dir.path().join("grandchild");
    let script = format!("sleep 600 & echo $! > {}; touch {}; wait", pidfile.display(), inside.display());
    let holder = Running::start(
        &proxy.connect_string(),
        &["--session-timeout", "2s", "lock", &path, "--", "sh", "-c", &script],
    );
    poll("the command runs under the lock", || inside.exists());

    // Cut off longer than the session timeout: the session, and the lock, are lost.
    proxy.cut();
    assert_eq!(holder.wait(), 8, "exit code 8: lock lost, command killed");
    let grandchild = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
    poll("the command's own child is killed too", || {
        // Gone, or a zombie waiting for init to reap it.
        std::fs::read_to_string(format!("/proc/{grandchild}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    proxy.heal();
    let (code, _, err) = run(&server.connect_string(), &["lock", &path, "--wait", "20s", "--", "true"]);
    assert_eq!(code, 0, "the lock is free again: {err}");
}

/// `ndsr lock` killed outright (SIGKILL: no chance to clean up) takes its
/// command with it, and what the command started (here a child it waits
/// for in the foreground): nothing keeps running under a lock whose holder
/// is gone, while the lock passes to the next once the session expires.
#[test]
fn a_killed_lock_holder_takes_its_command_with_it() {
    let server = ZkServer::shared().connect_string();
    let path = unique_path("cli-lock-killed");
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    // The shell writes its pid, then its child's (a subshell in the
    // foreground, as a wrapper script runs its program), which loops.
    let script =
        format!("echo $$ >> {0}; sh -c 'echo $$ >> {0}; while :; do sleep 0.05; done'; :", pidfile.display());
    let holder =
        Running::start(&server, &["--session-timeout", "4s", "lock", &path, "--", "sh", "-c", &script]);
    poll("the command and its child run under the lock", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|p| p.lines().count() == 2)
    });
    let pids: Vec<i32> =
        std::fs::read_to_string(&pidfile).unwrap().lines().map(|p| p.trim().parse().unwrap()).collect();
    // Should the test fail, they go anyway.
    struct KillOnDrop(Vec<i32>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            for pid in &self.0 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let _command = KillOnDrop(pids.clone());
    holder.signal(nix::sys::signal::Signal::SIGKILL);
    for pid in &pids {
        poll("the command and its child die with their ndsr", || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
        });
    }
    let (code, _, err) = run(&server, &["lock", &path, "--wait", "20s", "--", "true"]);
    assert_eq!(code, 0, "the lock passes on once the session expires: {err}");
}

#[test]
fn sandbox_port_0_is_any_free_port() {
    let sandbox = Running::start("127.0.0.1:1", &["sandbox", "--port", "0"]);
    let address = sandbox.line_where("the connection string", |l| l.starts_with("127.0.0.1:"));
    let port: u16 = address.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0, "{address}");
    assert_eq!(ndsr_testkit::four_letter_word(address.trim(), "ruok").unwrap(), "imok");
    sandbox.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(sandbox.wait(), 0);
}

#[test]
fn sandbox_serves_until_interrupted() {
    let sandbox = Running::start("127.0.0.1:1", &["sandbox"]);
    let address = sandbox.line_where("the connection string", |l| l.starts_with("127.0.0.1:"));
    let (code, out, _) = run(&address, &["get", "/", "--format", "dir"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l == "/zookeeper"), "{out}");
    sandbox.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(sandbox.wait(), 0);
    assert!(std::net::TcpStream::connect(&address).is_err(), "the sandbox server is gone");
}
