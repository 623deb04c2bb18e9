//! `ndsr register --drain`: on SIGTERM the registration is marked not
//! serving in its own format, kept for the drain period, then removed; a
//! second SIGTERM cuts the wait short. Observed by the library's reader
//! (`instances`) and `ndsr pick` against a real ZooKeeper.

mod common;

use common::*;
use ndsr::discovery::Format;
use ndsr_testkit::{unique_path, ZkServer};
use nix::sys::signal::Signal;

/// The instances of `dir` as the library reads them: (key, serving).
fn listed(rt: &tokio::runtime::Runtime, registry: &ndsr::Registry, dir: &str) -> Vec<(String, bool)> {
    let instances = rt.block_on(registry.instances(dir, None)).unwrap();
    assert!(instances.bad.is_empty(), "{:?}", instances.bad);
    instances.instances.iter().map(|i| (i.key.clone(), i.serving)).collect()
}

/// Whether the process has exited.
fn exited(running: &mut Running) -> bool {
    running.child.try_wait().unwrap().is_some()
}

#[test]
fn an_nd_node_is_marked_then_removed_after_the_drain_period_then_the_process_exits() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let reader = rt.block_on(ndsr::Registry::builder(&server).build()).unwrap();
    let dir = unique_path("drain-nd");
    let node = format!("{dir}/10.0.0.1:80");
    let mut register =
        Running::start(&server, &["register", &node, "--data", r#"{"zone":"a"}"#, "--drain", "4s"]);
    register.line_where("registered", |l| l == format!("registered {node}"));
    poll("the instance serving", || listed(&rt, &reader, &dir) == [("10.0.0.1:80".to_string(), true)]);

    register.signal(Signal::SIGTERM);
    register.line_where("draining", |l| l.starts_with(&format!("draining {node} (not serving")));
    poll("the instance not serving", || listed(&rt, &reader, &dir) == [("10.0.0.1:80".to_string(), false)]);
    assert!(!exited(&mut register), "still draining while the reader sees it not serving");
    // Kept as it was, plus the field; `pick` skips it.
    let data = rt.block_on(reader.get(&node)).unwrap().data.clone().unwrap();
    assert_eq!((data["zone"].as_str(), data["maintenance"].as_str()), (Some("a"), Some("draining")));
    let (code, _, err) = run(&server, &["pick", &dir]);
    assert_eq!(code, 11, "no serving instance while draining: {err}");

    poll("the instance gone", || listed(&rt, &reader, &dir).is_empty());
    register.line_where("withdrawn", |l| l == format!("withdrawn {node} (drained)"));
    assert_eq!(register.wait(), 0);
    rt.block_on(reader.close());
}

/// Registers with `args` (`--drain 60s` added), SIGTERMs, sees the one
/// instance of `dir` not serving in `format`, SIGTERMs again, and sees the
/// process exit (well before 60 s) with the node gone.
fn a_second_signal_cuts_the_wait_short(dir: &str, format: Format, args: &[&str]) {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let reader = rt.block_on(ndsr::Registry::builder(&server).build()).unwrap();
    let mut args = args.to_vec();
    args.extend(["--drain", "60s"]);
    let mut register = Running::start(&server, &args);
    let line = register.line_where("registered", |l| l.starts_with("registered "));
    let node = line.trim_start_matches("registered ").to_string();
    let key = node.rsplit('/').next().unwrap().to_string();
    poll("the instance serving", || listed(&rt, &reader, dir) == [(key.clone(), true)]);

    register.signal(Signal::SIGTERM);
    poll("the instance not serving", || listed(&rt, &reader, dir) == [(key.clone(), false)]);
    let instances = rt.block_on(reader.instances(dir, None)).unwrap();
    assert_eq!(instances.format, Some(format));
    assert!(!exited(&mut register), "draining for 60 s");
    let (code, _, err) = run(&server, &["pick", dir]);
    assert_eq!(code, 11, "no serving instance while draining: {err}");

    register.signal(Signal::SIGTERM);
    register.line_where("withdrawn", |l| l == format!("withdrawn {node} (drained)"));
    assert_eq!(register.wait(), 0, "exited on the second signal, not after 60 s");
    poll("the instance gone", || listed(&rt, &reader, dir).is_empty());
    rt.block_on(reader.close());
}

#[test]
fn a_curator_instance_is_disabled_while_draining() {
    let base = unique_path("drain-curator");
    let dir = format!("{base}/web");
    let args = [
        "register", &base, "--as", "curator", "--name", "web", "--id", "i-1", "--host", "10.0.0.1", "--port",
        "80",
    ];
    a_second_signal_cuts_the_wait_short(&dir, Format::Curator, &args);
}

#[test]
fn a_serverset_member_is_stopping_while_draining() {
    let dir = unique_path("drain-serverset");
    let args = ["register", &dir, "--as", "serverset", "--host", "10.0.0.1", "--port", "80", "--shard", "1"];
    a_second_signal_cuts_the_wait_short(&dir, Format::ServerSet, &args);
}

#[test]
fn a_nerve_instance_withdraws_at_once_and_the_process_outlives_it() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let reader = rt.block_on(ndsr::Registry::builder(&server).build()).unwrap();
    let dir = unique_path("drain-nerve");
    let mut register = Running::start(
        &server,
        &[
            "register", &dir, "--as", "nerve", "--name", "web", "--host", "10.0.0.1", "--port", "80",
            "--drain", "60s",
        ],
    );
    register.line_where("registered", |l| l.starts_with("registered "));
    poll("the instance serving", || listed(&rt, &reader, &dir).len() == 1);
    register.signal(Signal::SIGTERM);
    let why = register.error_where("removed at once", |l| l.contains("removed at once"));
    assert!(why.contains("a nerve instance cannot be marked not serving"), "{why}");
    poll("the instance gone", || listed(&rt, &reader, &dir).is_empty());
    assert!(!exited(&mut register), "the drain period still runs");
    register.signal(Signal::SIGTERM);
    assert_eq!(register.wait(), 0);
    rt.block_on(reader.close());
}

#[test]
fn the_agent_drains_its_registrations_on_sigterm_and_a_second_signal_cuts_it_short() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let reader = rt.block_on(ndsr::Registry::builder(&server).build()).unwrap();
    let root = unique_path("drain-agent");
    let config = format!(
        "drain = \"60s\"\nroots = [\"{root}\"]\n\
         [[register]]\npath = \"{root}/nd/10.0.0.1:80\"\ndata = {{ zone = \"a\" }}\n\
         [[register]]\npath = \"{root}/disc/web/i-1\"\nas = \"curator\"\nhost = \"10.0.0.2\"\nport = 80\n"
    );
    let mut agent = common::agent::Agent::start(&server, &config);
    let (nd, curator) = (format!("{root}/nd"), format!("{root}/disc/web"));
    poll("both serving", || {
        listed(&rt, &reader, &nd) == [("10.0.0.1:80".to_string(), true)]
            && listed(&rt, &reader, &curator) == [("i-1".to_string(), true)]
    });

    agent.running.signal(Signal::SIGTERM);
    agent.running.line_where("draining", |l| l.starts_with("ndsr agent draining registrations for 1m"));
    poll("both not serving", || {
        listed(&rt, &reader, &nd) == [("10.0.0.1:80".to_string(), false)]
            && listed(&rt, &reader, &curator) == [("i-1".to_string(), false)]
    });
    assert!(!exited(&mut agent.running), "draining for 60 s");
    let (code, _, err) = run(&server, &["pick", &curator]);
    assert_eq!(code, 11, "no serving instance while draining: {err}");

    agent.running.signal(Signal::SIGTERM);
    agent.running.line_where("stopped", |l| l.starts_with("ndsr agent stopped"));
    poll("both gone", || listed(&rt, &reader, &nd).is_empty() && listed(&rt, &reader, &curator).is_empty());
    poll("the agent exited, well before 60 s", || exited(&mut agent.running));
    assert_eq!(agent.running.child.try_wait().unwrap().and_then(|s| s.code()), Some(0));
    rt.block_on(reader.close());
}
