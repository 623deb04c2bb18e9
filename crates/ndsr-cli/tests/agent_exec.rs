//! `[exec]` (issue 27): the agent starts a child once the templates are
//! rendered, signals it after a render wrote a file, restarts it when it
//! dies, and stops it on shutdown.

mod common;

use common::agent::{Agent, TOKEN};
use common::*;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::json;

/// The child: logs its start, each SIGHUP and SIGTERM with its pid.
const CHILD: &str = r#"echo "start $$ $(cat web.cfg | wc -l)" >> exec.log
trap 'echo "reload $$ $(cat web.cfg | wc -l)" >> exec.log' HUP
trap 'echo "term $$" >> exec.log; exit 0' TERM
while :; do sleep 1 & wait $!; done
"#;

#[test]
fn the_child_starts_after_the_first_render_is_reloaded_restarted_and_stopped() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-exec");
    let writer = rt.block_on(ndsr::Registry::builder(&server).build()).unwrap();
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.1:80"), json!({}))).unwrap();
    let config = format!(
        "roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n[[service]]\npath = \"{root}/web\"\n\
         [[template]]\nsource = \"web.j2\"\ndestination = \"web.cfg\"\n\
         [exec]\ncommand = \"sh child.sh\"\nkill_timeout = \"20s\"\n"
    );
    let agent = Agent::start_with(&server, &config, &[], |dir| {
        std::fs::write(dir.join("web.j2"), "{% for i in services.web %}server {{ i.address }}\n{% endfor %}")
            .unwrap();
        std::fs::write(dir.join("child.sh"), CHILD).unwrap();
    });
    let log = || std::fs::read_to_string(agent.dir.path().join("exec.log")).unwrap_or_default();
    let lines = || log().lines().map(String::from).collect::<Vec<_>>();
    poll("the child started", || !lines().is_empty());
    let first = lines()[0].clone();
    let fields: Vec<&str> = first.split_whitespace().collect();
    assert_eq!((fields[0], fields[2]), ("start", "1"), "started after the first render: {first}");
    let pid: i32 = fields[1].parse().unwrap();

    // A change writes the file: the child gets SIGHUP, the file already new.
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.2:80"), json!({}))).unwrap();
    poll("the reload", || lines().iter().any(|l| l.starts_with("reload")));
    assert_eq!(lines()[1], format!("reload {pid} 2"), "{}", log());

    // Killed: restarted (a new process).
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    poll("the restart", || lines().iter().filter(|l| l.starts_with("start")).count() == 2);
    let restarted = lines().into_iter().rfind(|l| l.starts_with("start")).unwrap();
    let new_pid: i32 = restarted.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_ne!(new_pid, pid, "{}", log());
    let metrics = agent.http().get("/metrics").text;
    assert!(metrics.contains("ndsr_exec_restarts_total 1"), "{metrics}");
    assert!(metrics.contains("ndsr_exec_reloads_total 1"), "{metrics}");

    // A reload that changes [exec] says it takes a restart; the child runs on.
    let changed = std::fs::read_to_string(&agent.config).unwrap().replace("sh child.sh", "sh other.sh");
    std::fs::write(&agent.config, changed).unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGHUP);
    agent.running.line_where("reloaded", |l| l.starts_with("reloaded"));
    agent.running.error_where("the restart warning", |l| l.contains("[exec] changes only on restart"));

    // SIGTERM to the agent: the child gets SIGTERM and exits first.
    agent.running.signal(nix::sys::signal::Signal::SIGTERM);
    poll("the child stopped", || lines().last().is_some_and(|l| *l == format!("term {new_pid}")));
    let Agent { running, .. } = agent;
    assert_eq!(running.wait(), 0);
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(new_pid), None).is_err(), "the child is gone");
}

#[test]
fn a_child_that_ignores_the_kill_signal_is_killed_after_the_kill_timeout() {
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-exec-stubborn");
    let config = format!(
        "roots = [\"{root}\"]\n[exec]\ncommand = \"sh stubborn.sh\"\nkill_signal = \"USR1\"\nkill_timeout = \"1s\"\n"
    );
    let agent = Agent::start_with(&server, &config, &[], |dir| {
        let script = "echo \"start $$\" >> exec.log\ntrap 'echo usr1 >> exec.log' USR1\ntrap '' TERM\n\
                      while :; do sleep 1 & wait $!; done\n";
        std::fs::write(dir.join("stubborn.sh"), script).unwrap();
    });
    let log = || std::fs::read_to_string(agent.dir.path().join("exec.log")).unwrap_or_default();
    poll("the child started", || log().starts_with("start "));
    let pid: i32 = log().split_whitespace().nth(1).unwrap().parse().unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGTERM);
    let Agent { running, dir, .. } = agent;
    assert_eq!(running.wait(), 0);
    let log = std::fs::read_to_string(dir.path().join("exec.log")).unwrap();
    assert!(log.ends_with("usr1\n"), "the kill signal was USR1: {log}");
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(), "killed: {log}");
}
