//! What the agent says while it runs (issue 28, "the first hour"): an
//! expected 5xx (a health probe during an outage) is logged at DEBUG, not
//! ERROR; a reload says in one line what changed, a refused one says why
//! once, and both are counted; the start line names the ZooKeeper servers
//! and where they came from. A module of tests/agent.rs (one test binary
//! fewer to build).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::common::agent::{Agent, TOKEN};
use crate::common::*;
use assert_cmd::cargo::CommandCargoExt;
use ndsr_testkit::{unique_path, ZkServer};

/// `ndsr ARGS...` with `env` set (and no NDSR_SERVER unless `env` has
/// it), its output lines on channels.
fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::cargo_bin("ndsr").unwrap();
    cmd.args(args).env_remove("NDSR_SERVER").env_remove("RUST_LOG").envs(env.iter().copied());
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = forward(child.stdout.take().unwrap(), false);
    let errors = forward(child.stderr.take().unwrap(), true);
    Running { child, lines, errors }
}

/// A config file `text` in a new temporary directory.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// The agent's address, from its start line.
fn url_of(line: &str) -> String {
    line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().trim_end_matches('/').to_string()
}

/// The value of the metric line `name{labels}` in the agent's `/metrics`.
fn metric(agent: &Agent, line_start: &str) -> Option<String> {
    let text = agent.http().get("/metrics").text;
    text.lines().find_map(|l| l.strip_prefix(line_start).map(|v| v.trim().to_string()))
}

/// A loopback address nothing listens on: ZooKeeper in an outage.
fn nothing_listening() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[test]
fn an_expected_503_is_logged_at_debug_not_at_error() {
    // ZooKeeper unreachable: the health probe's answer is 503, as it should be.
    let (_dir, path) = config_file("roots = [\"/services\"]\n");
    let agent = start(
        &[
            "--server",
            &nothing_listening(),
            "-v",
            "agent",
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[("RUST_LOG", "warn,ndsr_agent=debug")],
    );
    let url = url_of(&agent.line_where("listening", |l| l.contains("listening on")));
    for _ in 0..3 {
        assert_eq!(status(&format!("{url}/v1/health")), 503);
    }
    // Each 503 is logged once, at DEBUG (tower-http's default was ERROR).
    for _ in 0..3 {
        let line = agent.error_where("a 503's log line", |l| l.contains("503"));
        assert!(line.contains("DEBUG") && line.contains("answered 503"), "an expected answer: {line}");
    }
}

/// The status of a GET.
fn status(url: &str) -> u16 {
    let client: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    client.get(url).call().unwrap().status().as_u16()
}

#[test]
fn a_reload_says_what_changed_a_refusal_says_why_once_and_both_are_counted() {
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-reload-line");
    let base = format!("roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n");
    let agent = Agent::start(&server, &format!("{base}[[service]]\npath = \"{root}/a\"\n"));
    let file = agent.config.display().to_string();
    let ok = "ndsr_agent_reloads_total{result=\"ok\"}";
    let refused = "ndsr_agent_reloads_total{result=\"refused\"}";
    assert_eq!((metric(&agent, ok).as_deref(), metric(&agent, refused).as_deref()), (Some("0"), Some("0")));

    let changed = format!(
        "drain = \"1s\"\n{base}[[service]]\npath = \"{root}/b\"\n[[register]]\npath = \"{root}/b/10.0.0.1:80\"\n"
    );
    std::fs::write(&agent.config, &changed).unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGHUP);
    let line = agent.running.line_where("reloaded", |l| l.starts_with("reloaded"));
    assert_eq!(
        line,
        format!("reloaded {file}: services +{root}/b -{root}/a; registrations +{root}/b/10.0.0.1:80; drain")
    );
    assert_eq!(metric(&agent, ok).as_deref(), Some("1"));
    agent.running.signal(nix::sys::signal::Signal::SIGHUP);
    let line = agent.running.line_where("reloaded", |l| l.starts_with("reloaded"));
    assert_eq!(line, format!("reloaded {file}: nothing changed"));
    assert_eq!(metric(&agent, ok).as_deref(), Some("2"));

    // Two refusals, each said once: nothing between them says the first again.
    std::fs::write(&agent.config, format!("{base}[[service]]\npath = \"/elsewhere/x\"\n")).unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGHUP);
    let first = agent.running.error_where("the first refusal", |l| l.contains("reload refused"));
    assert!(first.contains("ERROR") && first.contains("/elsewhere/x is outside the roots"), "{first}");
    poll("the first refusal counted", || metric(&agent, refused).as_deref() == Some("1"));
    std::fs::write(&agent.config, "roots = []\n").unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGHUP);
    let next = agent.running.error_where("a refusal", |l| l.contains("refused") || l.contains("outside"));
    assert!(next.contains("reload refused") && next.contains("roots is empty"), "said once: {next}");
    poll("both refusals counted", || metric(&agent, refused).as_deref() == Some("2"));
    assert_eq!(metric(&agent, ok).as_deref(), Some("2"));
    assert!(
        agent.running.lines.try_iter().all(|l| !l.starts_with("reloaded")),
        "a refused reload prints no reloaded line"
    );
}

/// A start: flags before `agent`, environment, config file, what the line says.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str, String);

#[test]
fn the_start_line_names_the_servers_and_where_they_came_from() {
    let server = ZkServer::shared().connect_string();
    let dead = nothing_listening();
    let (_dir, path) = config_file(&format!("roots = [\"/services\"]\n[zookeeper]\nservers = \"{dead}\"\n"));
    let (_bare_dir, bare) = config_file("roots = [\"/services\"]\n");
    let (file, bare) = (path.display().to_string(), bare.display().to_string());
    let over = format!("over {dead} in {file}");
    let cases: [Case; 5] = [
        (&[], &[("NDSR_SERVER", &server)], &file, format!("{server} from NDSR_SERVER, {over}")),
        (&["--server", &server], &[], &file, format!("{server} from --server, {over}")),
        (&["--server", &server], &[("NDSR_SERVER", &dead)], &file, format!("{server} from --server, {over}")),
        (&[], &[], &file, format!("{dead} from [zookeeper] servers in {file}")),
        (
            &[],
            &[],
            &bare,
            "localhost:2181 from the default: no --server, NDSR_SERVER or [zookeeper] servers".into(),
        ),
    ];
    for (flags, env, config, said) in cases {
        let mut args = flags.to_vec();
        args.extend(["agent", "--config", config, "--listen", "127.0.0.1:0"]);
        let agent = start(&args, env);
        let line = agent.line_where("listening", |l| l.contains("listening on"));
        assert!(line.ends_with(&format!(" (ZooKeeper {said})")), "{args:?} {env:?}: {line}");
        if said.starts_with(&server) {
            // And it is the one used: the agent connects.
            let health = format!("{}/v1/health", url_of(&line));
            poll("the agent connects", || status(&health) == 200);
        }
    }
}
