//! `ndsr agent`'s security against a real ZooKeeper (issue 22): the write
//! token cannot run commands or probe other hosts unless the file allows
//! it; readers without the token never see command lines or URL secrets;
//! templates are never written into a directory other users can write.

mod common;

use common::agent::{event_where, Agent, TOKEN};
use common::*;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::json;

fn config(root: &str, http: &str, extra: &str) -> String {
    format!("roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n{http}\n{extra}")
}

fn exists(rt: &tokio::runtime::Runtime, client: &zookeeper_client::Client, path: &str) -> bool {
    rt.block_on(client.check_stat(path)).unwrap().is_some()
}

fn reload(agent: &Agent, text: &str) {
    std::fs::write(&agent.config, text).unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGHUP);
    agent.running.line_where("reloaded", |l| l.starts_with("reloaded"));
}

#[test]
fn the_token_runs_no_command_unless_the_file_allows_it() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let root = unique_path("agent-sec-cmd");
    let agent = Agent::start(&server, &config(&root, "", ""));
    let http = agent.authorized();
    let refused_file = agent.dir.path().join("pwned");
    let node = format!("{root}/web/10.0.0.1:80");

    // The exact attack of the issue, with a valid token.
    let attack = json!({"check_cmd": format!("id > {}; true", refused_file.display()), "interval": "100ms"});
    let refused = http.put(&format!("/v1/registrations{node}"), &attack.to_string());
    assert_eq!((refused.status, &refused.body["code"]), (403, &json!("cmd_checks_off")), "{}", refused.text);
    assert!(refused.body["error"].as_str().unwrap().contains("allow_cmd_checks = true"), "{}", refused.text);
    assert_eq!(http.get(&format!("/v1/registrations{node}")).status, 404, "nothing is held");

    // The file opts in (a reload): the same request works, and says so in the log.
    let allowed = config(&root, "allow_cmd_checks = true", "");
    std::fs::write(&agent.config, &allowed).unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGHUP);
    agent.running.error_where("the warning", |l| l.contains("WARN") && l.contains("allow_cmd_checks"));
    agent.running.line_where("reloaded", |l| l.starts_with("reloaded"));
    let ran_file = agent.dir.path().join("ran");
    let body = json!({"check_cmd": format!("id > {}; true", ran_file.display()), "interval": "100ms"});
    let accepted = http.put(&format!("/v1/registrations{node}"), &body.to_string());
    assert_eq!(accepted.status, 201, "{}", accepted.text);
    poll("the allowed command ran", || ran_file.exists());
    poll("registered once its check passed", || exists(&rt, &client, &node));
    // The refused command, asked for earlier at a 100ms interval, never ran.
    assert!(!refused_file.exists(), "the refused command ran");

    // Opting out again drops the API's command checks.
    reload(&agent, &config(&root, "", ""));
    poll("the command check dropped", || http.get(&format!("/v1/registrations{node}")).status == 404);
    poll("its node removed", || !exists(&rt, &client, &node));

    // A file started with allow_cmd_checks warns at start.
    let warned = Agent::start(&server, &allowed);
    warned
        .running
        .error_where("the warning at start", |l| l.contains("WARN") && l.contains("allow_cmd_checks"));
}

#[test]
fn api_checks_target_only_this_host_unless_the_file_allows_more() {
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-sec-remote");
    let agent = Agent::start(&server, &config(&root, "", ""));
    let http = agent.authorized();
    let local = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = local.local_addr().unwrap().port();
    for body in [
        json!({"check_http": "http://10.0.0.1:8080/health"}),
        json!({"check_http": "http://127.0.0.1@10.0.0.1:8080/health"}),
        json!({"check_http": "http://127.0.0.1.nip.io:8080/health"}),
        json!({"check_tcp": "10.0.0.1:22"}),
        json!({"check_tcp": "example.com:443"}),
    ] {
        let refused = http.put(&format!("/v1/registrations{root}/remote"), &body.to_string());
        assert_eq!(
            (refused.status, &refused.body["code"]),
            (403, &json!("remote_checks_off")),
            "{body}: {}",
            refused.text
        );
        assert!(
            refused.body["error"].as_str().unwrap().contains("allow_remote_checks = true"),
            "{}",
            refused.text
        );
    }
    // localhost is a name: the resolver decides where it goes.
    for body in [
        json!({"check_tcp": format!("localhost:{port}")}),
        json!({"check_http": format!("http://localhost:{port}/health")}),
    ] {
        let refused = http.put(&format!("/v1/registrations{root}/localhost"), &body.to_string());
        assert_eq!((refused.status, &refused.body["code"]), (403, &json!("remote_checks_off")), "{body}");
        assert!(
            refused.body["error"].as_str().unwrap().contains("use 127.0.0.1 or [::1]"),
            "{}",
            refused.text
        );
    }
    assert_eq!(http.get("/v1/registrations").body["registrations"], json!([]), "nothing is held");
    for (name, body) in [
        ("tcp", json!({"check_tcp": format!("127.0.0.1:{port}")})),
        ("http", json!({"check_http": format!("http://127.0.0.1:{port}/health")})),
        ("v6", json!({"check_http": format!("http://[::1]:{port}/health")})),
    ] {
        let accepted = http.put(&format!("/v1/registrations{root}/{name}"), &body.to_string());
        assert_eq!(accepted.status, 201, "{body}: {}", accepted.text);
    }

    // The file allows more: a remote target is taken.
    reload(&agent, &config(&root, "allow_remote_checks = true", ""));
    let accepted = http.put(&format!("/v1/registrations{root}/remote"), r#"{"check_tcp": "10.0.0.1:22"}"#);
    assert_eq!(accepted.status, 201, "{}", accepted.text);
    // And allowing less drops it (the loopback ones stay).
    reload(&agent, &config(&root, "", ""));
    poll("the remote check dropped", || http.get(&format!("/v1/registrations{root}/remote")).status == 404);
    assert_eq!(http.get("/v1/registrations").body["registrations"].as_array().unwrap().len(), 3);
}

#[test]
fn readers_without_the_token_see_the_kind_of_check_not_its_secrets() {
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-sec-read");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let registers = format!(
        "[[register]]\npath = \"{root}/passing\"\ncheck_cmd = \"true # s3cret\"\n\
         [[register]]\npath = \"{root}/failing\"\ncheck_cmd = \"exit 3 # s3cret\"\ninterval = \"100ms\"\n"
    );
    let agent = Agent::start(&server, &config(&root, "", &registers));
    let secret_url = format!("http://admin:s3cret@127.0.0.1:{port}/health?key=s3cret");
    let put = agent
        .authorized()
        .put(&format!("/v1/registrations{root}/http"), &json!({"check_http": secret_url}).to_string());
    assert_eq!(put.status, 201, "{}", put.text);
    assert_eq!(put.body["check"], json!(format!("http {secret_url}")), "the writer sees what it wrote");

    let anonymous = agent.http();
    poll("the failing check's reason", || {
        let failing = anonymous.get(&format!("/v1/registrations{root}/failing"));
        failing.body["detail"].as_str().is_some_and(|d| d.contains("exit status"))
    });
    let listed = anonymous.get("/v1/registrations");
    let one = anonymous.get(&format!("/v1/registrations{root}/passing"));
    let model = anonymous.get("/v1/agent");
    let events = anonymous.events("/v1/dashboard/events");
    let event = event_where(&events, "the model with the three registrations", |e| {
        e["registrations"].as_array().is_some_and(|r| r.len() == 3)
    });
    for (what, text) in
        [("list", &listed.text), ("one", &one.text), ("/v1/agent", &model.text), ("SSE", &event.to_string())]
    {
        assert!(!text.contains("s3cret"), "{what} shows a secret: {text}");
        assert!(!text.contains("exit 3"), "{what} shows a command line: {text}");
    }
    assert_eq!(one.body["check"], "cmd", "{}", one.text);
    let checks: Vec<_> =
        listed.body["registrations"].as_array().unwrap().iter().map(|r| r["check"].clone()).collect();
    assert!(checks.contains(&json!(format!("http http://127.0.0.1:{port}/health"))), "{checks:?}");

    // With the token: the whole checks.
    let owner = agent.authorized();
    let listed = owner.get("/v1/registrations");
    assert!(listed.text.contains("true # s3cret") && listed.text.contains(&secret_url), "{}", listed.text);
    let one = owner.get(&format!("/v1/registrations{root}/failing"));
    assert_eq!(one.body["check"], "cmd exit 3 # s3cret", "{}", one.text);
    assert!(owner.get("/v1/agent").text.contains("true # s3cret"));
    // A wrong token is no token.
    let wrong = anonymous.with_token("not-the-token-at-all").get("/v1/registrations");
    assert!(!wrong.text.contains("s3cret"), "{}", wrong.text);
}

#[test]
fn a_template_is_not_written_into_a_directory_others_can_write() {
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-sec-template");
    let templates = "[[template]]\nsource = \"t.j2\"\ndestination = \"shared/out.cfg\"\n\
                     [[template]]\nsource = \"t.j2\"\ndestination = \"private/out.cfg\"\n";
    let agent = Agent::start_with(&server, &config(&root, "", templates), &[], |dir| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(dir.join("t.j2"), "static\n").unwrap();
        std::fs::create_dir(dir.join("shared")).unwrap();
        std::fs::set_permissions(dir.join("shared"), std::fs::Permissions::from_mode(0o777)).unwrap();
    });
    let error = agent.running.error_where("the refusal", |l| l.contains("cannot write"));
    assert!(error.contains("writable by others") && error.contains("shared"), "{error}");
    // The other template, rendered at the same pass, is written (its directory made, 0755).
    poll("the private file", || agent.dir.path().join("private/out.cfg").exists());
    assert!(!agent.dir.path().join("shared/out.cfg").exists(), "the refused file is not written");
    assert_eq!(std::fs::read_dir(agent.dir.path().join("shared")).unwrap().count(), 0, "nothing left there");
    let metrics = agent.http().get("/metrics").text;
    assert!(
        metrics.lines().any(|l| l.starts_with("ndsr_template_renders_total")
            && l.contains("shared")
            && l.contains("result=\"error\"")),
        "{metrics}"
    );
}

/// A PUT that checked the old configuration while a reload turns
/// allow_cmd_checks off must not outlive the reload's scan. The race is
/// made likely, not forced: one client keeps replacing a registration
/// whose check (`sleep 0.3`) is running, which holds the registrations'
/// lock until the check ends, so the other clients' PUTs, checked against
/// the old configuration, queue for that lock across the reload (before
/// the fix, the reload's scan did not wait for them).
#[test]
fn a_put_racing_a_reload_that_turns_commands_off_leaves_no_command_check() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-sec-race");
    let on = config(&root, "allow_cmd_checks = true", "");
    let agent = Agent::start(&server, &on);
    for round in 0..3 {
        reload(&agent, &on);
        let stop = Arc::new(AtomicBool::new(false));
        let putters: Vec<_> = (0..4)
            .map(|t| {
                let (http, stop, root) = (agent.authorized(), stop.clone(), root.clone());
                std::thread::spawn(move || {
                    let mut k = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let (path, check) = match t {
                            0 => (format!("{root}/slow"), "sleep 0.3; true"),
                            _ => (format!("{root}/api-{t}-{}", k % 8), "true"),
                        };
                        let body = json!({"check_cmd": check, "interval": "10s", "data": {"k": k}});
                        http.put(&format!("/v1/registrations{path}"), &body.to_string());
                        k += 1;
                    }
                })
            })
            .collect();
        // Some PUTs were taken before the reload.
        poll("PUTs accepted", || {
            agent.authorized().get("/v1/registrations").body["registrations"].as_array().unwrap().len() > 2
        });
        reload(&agent, &config(&root, "", ""));
        stop.store(true, Ordering::SeqCst);
        for putter in putters {
            putter.join().unwrap();
        }
        let held = agent.authorized().get("/v1/registrations").body["registrations"].clone();
        let commands: Vec<_> = held
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["check"].as_str().is_some_and(|c| c.starts_with("cmd")))
            .map(|r| r["path"].clone())
            .collect();
        assert!(
            commands.is_empty(),
            "round {round}: command checks held after allow_cmd_checks went off: {commands:?}"
        );
    }
}
