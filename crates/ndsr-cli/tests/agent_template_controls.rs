//! consul-template's controls in the agent (issue 27): `ndsr agent
//! --once` renders every template once and exits; `wait` coalesces a
//! burst of changes into one write.

mod common;

use std::path::Path;

use common::agent::{Agent, TOKEN};
use common::*;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::json;

fn registry(rt: &tokio::runtime::Runtime, server: &str) -> ndsr::Registry {
    rt.block_on(ndsr::Registry::builder(server).build()).unwrap()
}

/// A config of the service `ROOT/web` and the templates `(source,
/// destination, more keys)`.
fn config(root: &str, templates: &[(&str, &str, &str)]) -> String {
    let mut text =
        format!("roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n[[service]]\npath = \"{root}/web\"\n");
    for (source, destination, more) in templates {
        text.push_str(&format!(
            "[[template]]\nsource = \"{source}\"\ndestination = \"{destination}\"\n{more}\n"
        ));
    }
    text
}

const WEB: &str = "{% for i in services.web %}server {{ i.address }}\n{% endfor %}";

#[test]
fn once_renders_every_template_runs_the_commands_and_exits() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-once");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.1:80"), json!({}))).unwrap();
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.2:80"), json!({}))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.j2"), WEB).unwrap();
    std::fs::write(dir.path().join("count.j2"), "{{ services.web | length }} servers\n").unwrap();
    let good = config(
        &root,
        &[
            ("web.j2", "web.cfg", "command = \"echo reloaded >> commands.log\""),
            ("count.j2", "count.txt", ""),
        ],
    );
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, good).unwrap();
    let once = ["agent", "--config", path.to_str().unwrap(), "--once"];
    let (code, out, err) = run(&server, &once);
    assert_eq!(code, 0, "{out}{err}");
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    assert_eq!(read("web.cfg"), "server 10.0.0.1:80\nserver 10.0.0.2:80\n");
    assert_eq!(read("count.txt"), "2 servers\n");
    assert_eq!(read("commands.log"), "reloaded\n", "the changed file's command ran once");
    assert!(!out.contains("listening"), "--once serves nothing: {out}");

    // Again, nothing changed: no command.
    let (code, out, err) = run(&server, &once);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(read("commands.log"), "reloaded\n", "an unchanged file runs no command");

    // A failing template: exit 1, its name and error; the good one is written.
    std::fs::write(dir.path().join("bad.j2"), "{{ services.nope | length }}").unwrap();
    std::fs::write(&path, config(&root, &[("bad.j2", "bad.txt", ""), ("count.j2", "count2.txt", "")]))
        .unwrap();
    let (code, out, err) = run(&server, &once);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("templates not rendered") && err.contains("bad.txt"), "{err}");
    assert!(err.contains("undefined"), "says why: {err}");
    assert!(!dir.path().join("bad.txt").exists());
    assert_eq!(read("count2.txt"), "2 servers\n");

    // A command that fails, or times out, fails the run (exit 1, naming
    // it); the one that timed out is killed with its whole process group.
    std::fs::write(
        &path,
        config(
            &root,
            &[
                ("count.j2", "count3.txt", "command = \"exit 3\""),
                (
                    "count.j2",
                    "count4.txt",
                    "command = \"sleep 300 & echo $! > sleeper.pid; wait\"\ncommand_timeout = \"1s\"",
                ),
            ],
        ),
    )
    .unwrap();
    let (code, out, err) = run(&server, &once);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("count3.txt: command \"exit 3\" failed: exit status: 3"), "{err}");
    assert!(err.contains("count4.txt: command") && err.contains("timed out after 1s"), "{err}");
    let sleeper: i32 = read("sleeper.pid").trim().parse().unwrap();
    poll("the timed-out command's group is gone", || {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(sleeper), None).is_err()
    });

    // --once with --check is refused.
    let (code, _, err) = run(&server, &["agent", "--config", path.to_str().unwrap(), "--once", "--check"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn once_fails_when_a_service_has_no_list_within_the_wait_limit() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-once-unreadable");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.j2"), WEB).unwrap();
    // Not readable: only its creator may read the service's directory.
    let owner = zk(&rt, &server);
    rt.block_on(owner.auth("digest", b"owner:secret")).unwrap();
    let open = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    rt.block_on(owner.mkdir(&root, &open)).unwrap();
    let closed = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::creator_all());
    rt.block_on(owner.create(&format!("{root}/web"), b"", &closed)).unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, config(&root, &[("web.j2", "web.cfg", "wait_limit = \"1s\"")])).unwrap();
    let (code, out, err) = run(&server, &["agent", "--config", path.to_str().unwrap(), "--once"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("web.cfg") && err.contains("wait_limit"), "{err}");
    assert!(!dir.path().join("web.cfg").exists());
}

#[test]
fn once_waits_for_a_command_longer_than_the_wait_limit() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-once-slow-command");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.1:80"), json!({}))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.j2"), WEB).unwrap();
    // The command outlives wait_limit + 5 s: its failure still counts.
    let more = "command = \"sleep 7; exit 3\"\ncommand_timeout = \"30s\"\nwait_limit = \"1s\"";
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, config(&root, &[("web.j2", "web.cfg", more)])).unwrap();
    let (code, out, err) = run(&server, &["agent", "--config", path.to_str().unwrap(), "--once"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("web.cfg: command \"sleep 7; exit 3\" failed: exit status: 3"), "{err}");
}

/// The value of `ndsr_template_renders_total{template=..,result=RESULT}`.
fn renders(agent: &Agent, destination: &Path, result: &str) -> u64 {
    let line =
        format!("ndsr_template_renders_total{{template=\"{}\",result=\"{result}\"}}", destination.display());
    let text = agent.http().get("/metrics").text;
    text.lines().find_map(|l| l.strip_prefix(&line)).map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn wait_coalesces_fifty_quick_changes_into_one_write() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-wait");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.1:80"), json!({}))).unwrap();
    // Each write lands well within 4s of the one before (the quiet period
    // restarts with each); all 50 well within the 10 minutes' bound.
    let templates = [(
        "web.j2",
        "web.cfg",
        "wait = \"4s:10m\"\ncommand = \"echo x >> commands.log\"\nmin_interval = \"1ms\"",
    )];
    let agent = Agent::start_with(&server, &config(&root, &templates), &[], |dir| {
        std::fs::write(dir.join("web.j2"), WEB).unwrap();
    });
    let file = agent.dir.path().join("web.cfg");
    let read = |name: &str| std::fs::read_to_string(agent.dir.path().join(name)).unwrap_or_default();
    // The first render is not held.
    poll("the first render", || read("web.cfg") == "server 10.0.0.1:80\n");
    poll("its command", || read("commands.log") == "x\n");
    assert_eq!(renders(&agent, &file, "written"), 1);

    for n in 0..50 {
        rt.block_on(writer.set_node(&format!("{root}/web/10.0.1.{n}:80"), json!({}))).unwrap();
    }
    let last = (0..50).map(|n| format!("server 10.0.1.{n}:80\n")).collect::<Vec<_>>();
    poll("the final file", || {
        let text = read("web.cfg");
        text.starts_with("server 10.0.0.1:80\n") && last.iter().all(|l| text.contains(l.as_str()))
    });
    assert_eq!(renders(&agent, &file, "written"), 2, "one write for the 50 changes");
    assert!(renders(&agent, &file, "held") >= 1, "changes were held");
    poll("the command", || read("commands.log") == "x\nx\n");
    assert_eq!(read("commands.log"), "x\nx\n", "one command for the 50 changes");
}

#[test]
fn perms_backup_and_create_dest_dirs_from_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-file-options");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.1:80"), json!({}))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.j2"), WEB).unwrap();
    std::fs::write(dir.path().join("web.cfg"), "old\n").unwrap();
    let templates = [
        ("web.j2", "web.cfg", "perms = \"0640\"\nbackup = true"),
        ("web.j2", "sub/dir/web.cfg", "perms = 0o600"),
        ("web.j2", "nodir/web.cfg", "create_dest_dirs = false"),
    ];
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, config(&root, &templates)).unwrap();
    let (code, out, err) = run(&server, &["agent", "--config", path.to_str().unwrap(), "--once"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("nodir/web.cfg") && err.contains("create_dest_dirs = false"), "{err}");
    let mode = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert_eq!(read("web.cfg"), "server 10.0.0.1:80\n");
    assert_eq!(mode("web.cfg"), 0o640);
    assert_eq!(read("web.cfg.bak"), "old\n", "the replaced file");
    assert_eq!(read("sub/dir/web.cfg"), "server 10.0.0.1:80\n");
    assert_eq!(mode("sub/dir/web.cfg"), 0o600);
    assert!(!dir.path().join("nodir").exists());

    for (bad, says) in
        [("perms = \"0648\"", "octal"), ("perms = \"4755\"", "set-id"), ("wait = \"5s:1s\"", "below")]
    {
        std::fs::write(&path, config(&root, &[("web.j2", "x.cfg", bad)])).unwrap();
        let (code, _, err) = run(&server, &["agent", "--config", path.to_str().unwrap(), "--check"]);
        assert_eq!(code, 3, "{bad}: {err}");
        assert!(err.contains(says), "{bad}: {err}");
    }
}
