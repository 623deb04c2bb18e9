//! `ndsr agent` against a real ZooKeeper: the HTTP API (reads, blocking
//! queries, SSE, registrations with health checks), its checks (token,
//! read-only, bad input, limits), templates, metrics, SIGTERM and SIGHUP.

mod agent_logs;
mod common;

use std::time::Duration;

use common::agent::{event_where, status_with_host, Agent, TOKEN};
use common::*;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::json;

fn config(root: &str, extra: &str) -> String {
    format!("roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n{extra}")
}

fn registry(rt: &tokio::runtime::Runtime, server: &str) -> ndsr::Registry {
    rt.block_on(ndsr::Registry::builder(server).build()).unwrap()
}

/// The node's (czxid, ephemeral owner, data) as a plain client reads it.
fn truth(
    rt: &tokio::runtime::Runtime,
    client: &zookeeper_client::Client,
    path: &str,
) -> Option<(i64, i64, String)> {
    match rt.block_on(client.get_data(path)) {
        Ok((data, stat)) => {
            Some((stat.czxid, stat.ephemeral_owner, String::from_utf8_lossy(&data).into_owned()))
        }
        Err(zookeeper_client::Error::NoNode) => None,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn reads_block_until_a_change_and_stream_every_change() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-read");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_data(&format!("{root}/config/db"), json!({"host": "db1"}))).unwrap();
    let agent = Agent::start(&server, &config(&root, ""));
    let http = agent.http();

    let node = http.get(&format!("/v1/nodes{root}/config/db"));
    assert_eq!(node.status, 200, "{}", node.text);
    assert_eq!(node.body["data"]["host"], "db1");
    assert_eq!(node.body["stale"], false);
    let index = node.index.expect("an X-Ndsr-Index header");
    assert_eq!(node.body["index"], index);

    // A missing node is 404 with the same body, so a client can wait for it.
    let missing = http.get(&format!("/v1/nodes{root}/config/nope"));
    assert_eq!((missing.status, &missing.body["exists"]), (404, &json!(false)), "{}", missing.text);

    // A blocking query with no change answers the same index when the wait is up.
    let same = http.get(&format!("/v1/nodes{root}/config/db?index={index}&wait=300ms"));
    assert_eq!((same.status, same.index), (200, Some(index)));

    // A blocking query answers once the node changes.
    let events = http.events(&format!("/v1/watch{root}/config/db"));
    let first = event_where(&events, "the current value", |e| e["data"]["host"] == "db1");
    assert_eq!(first["index"], index);
    let blocked = {
        let url = format!("/v1/nodes{root}/config/db?index={index}&wait=30s");
        let http = agent.http();
        std::thread::spawn(move || http.get(&url))
    };
    rt.block_on(writer.set_data(&format!("{root}/config/db"), json!({"host": "db2"}))).unwrap();
    let answered = blocked.join().unwrap();
    assert_eq!(answered.body["data"]["host"], "db2", "{}", answered.text);
    assert!(answered.index.unwrap() > index);
    let changed = event_where(&events, "the change", |e| e["data"]["host"] == "db2");
    assert_eq!(changed["index"], answered.body["index"]);

    // Services: decoded instances, and a pick that goes round.
    for (host, zone) in [("10.0.0.1:80", "a"), ("10.0.0.2:80", "b")] {
        rt.block_on(writer.set_node(&format!("{root}/web/{host}"), json!({"zone": zone}))).unwrap();
    }
    let listing = http.get(&format!("/v1/services{root}/web"));
    let blocked = {
        let url = format!("/v1/services{root}/web?index={}&wait=30s", listing.index.unwrap());
        let http = agent.http();
        std::thread::spawn(move || http.get(&url))
    };
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.9:80"), json!({"zone": "z"}))).unwrap();
    let answered = blocked.join().unwrap();
    assert!(
        answered.text.contains("10.0.0.9:80"),
        "a services blocking query answers the change: {}",
        answered.text
    );
    rt.block_on(writer.unset(&format!("{root}/web/10.0.0.9:80"))).unwrap();
    poll("both instances listed", || {
        http.get(&format!("/v1/services{root}/web")).body["instances"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    let picks: Vec<_> = (0..4)
        .map(|_| {
            http.get(&format!("/v1/pick{root}/web?strategy=round_robin")).body["instance"]["address"].clone()
        })
        .collect();
    assert_ne!(picks[0], picks[1], "round robin goes round across requests: {picks:?}");
    assert_eq!(picks[0], picks[2]);
    let zone_b = http.get(&format!("/v1/pick{root}/web?label=zone=b"));
    assert_eq!(zone_b.body["instance"]["address"], "10.0.0.2:80", "{}", zone_b.text);
    let none = http.get(&format!("/v1/pick{root}/web?label=zone=c"));
    assert_eq!((none.status, &none.body["code"]), (503, &json!("no_instance")), "{}", none.text);
    rt.block_on(writer.close());
}

#[test]
fn registrations_need_the_token_follow_their_check_and_change_in_place() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let root = unique_path("agent-register");
    let agent = Agent::start(&server, &config(&root, ""));
    let node = format!("{root}/web/10.0.0.1:80");
    let url = format!("/v1/registrations{node}");

    let anonymous = agent.http().put(&url, r#"{"data": {"zone": "a"}}"#);
    assert_eq!((anonymous.status, &anonymous.body["code"]), (401, &json!("unauthorized")));
    let wrong = agent.http().with_token("not-the-token-at-all").put(&url, "{}");
    assert_eq!(wrong.status, 401);
    assert!(truth(&rt, &client, &node).is_none(), "a refused write wrote nothing");

    let http = agent.authorized();
    let created = http.put(&url, r#"{"data": {"zone": "a"}}"#);
    assert_eq!((created.status, &created.body["state"]), (201, &json!("registered")), "{}", created.text);
    let (czxid, owner, data) = truth(&rt, &client, &node).expect("registered");
    assert_ne!(owner, 0, "ephemeral");
    assert!(data.contains("\"zone\":\"a\""), "{data}");
    assert_eq!(http.put(&url, r#"{"data": {"zone": "a"}}"#).status, 200, "the same again is no change");

    // New data replaces the old in place: the node never vanishes.
    assert_eq!(http.put(&url, r#"{"data": {"zone": "b"}}"#).status, 200);
    poll("the new data", || truth(&rt, &client, &node).is_some_and(|(_, _, d)| d.contains("\"zone\":\"b\"")));
    assert_eq!(truth(&rt, &client, &node).unwrap().0, czxid, "replaced in place, not re-created");

    // A health check: absent while failing, present once it passes.
    let checked = format!("{root}/web/10.0.0.2:80");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let body = format!(r#"{{"check_tcp": "127.0.0.1:{port}", "interval": "100ms", "rise": 2, "fall": 2}}"#);
    assert_eq!(http.put(&format!("/v1/registrations{checked}"), &body).status, 201);
    poll("the check to fail", || {
        let status = http.get(&format!("/v1/registrations{checked}"));
        status.body["state"] == "checking"
            && status.body["detail"].as_str().is_some_and(|d| d.contains("tcp"))
    });
    assert!(truth(&rt, &client, &checked).is_none(), "not registered while the check fails");
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    poll("registered once the check passes", || truth(&rt, &client, &checked).is_some());
    drop(listener);
    poll("withdrawn once the check fails", || truth(&rt, &client, &checked).is_none());
    assert_eq!(http.get(&format!("/v1/registrations{checked}")).body["state"], "unhealthy");

    let listed = http.get("/v1/registrations");
    assert_eq!(listed.body["registrations"].as_array().unwrap().len(), 2, "{}", listed.text);
    assert_eq!(http.delete(&url).status, 204);
    assert!(truth(&rt, &client, &node).is_none(), "removed at once");
    assert_eq!(http.delete(&url).status, 404);

    // Bad registrations are refused with what is wrong, and write nothing.
    for (body, says) in [
        (r#"{"data": 3}"#, "object, a string or null"),
        (r#"{"check_tcp": "nonsense"}"#, "HOST:PORT"),
        (r#"{"check_cmd": "true", "interval": "1ms"}"#, "too short"),
        (r#"{"rise": 2}"#, "need a check"),
        (r#"{"surprise": 1}"#, "unknown field"),
        ("not json", "not the JSON expected"),
    ] {
        let refused = http.put(&url, body);
        assert_eq!(refused.status, 400, "{body}: {}", refused.text);
        assert!(refused.body["error"].as_str().unwrap().contains(says), "{body}: {}", refused.text);
    }
    assert!(truth(&rt, &client, &node).is_none());
}

#[test]
fn bad_requests_get_json_errors_and_nothing_outside_the_roots_is_served() {
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-bad");
    let agent = Agent::start(&server, &config(&root, "max_body_bytes = 1024"));
    let http = agent.http();
    for (path, status, code) in [
        ("/v1/nodes/zookeeper", 403, "outside_roots"),
        (&format!("/v1/nodes{root}x") as &str, 403, "outside_roots"),
        (&format!("/v1/nodes{root}/a/"), 400, "bad_request"),
        (&format!("/v1/nodes{root}/a/../../zookeeper"), 400, "bad_request"),
        (&format!("/v1/nodes{root}/a%00b"), 400, "bad_request"),
        (&format!("/v1/nodes{root}?wait=5s"), 400, "bad_request"),
        (&format!("/v1/nodes{root}?index=x"), 400, "bad_request"),
        (&format!("/v1/nodes{root}?surprise=1"), 400, "bad_request"),
        (&format!("/v1/services{root}?format=corba"), 400, "bad_request"),
        (&format!("/v1/pick{root}?strategy=best"), 400, "bad_request"),
        ("/v1/nope", 404, "not_found"),
    ] {
        let answer = http.get(path);
        assert_eq!(
            (answer.status, answer.body["code"].as_str()),
            (status, Some(code)),
            "{path}: {}",
            answer.text
        );
        assert!(answer.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}: {}", answer.text);
    }
    for route in ["/v1/nodes", "/v1/watch", "/v1/services", "/v1/pick", "/v1/registrations"] {
        let answer = http.get(&format!("{route}/zookeeper/quota"));
        assert_eq!((answer.status, answer.body["code"].as_str()), (403, Some("outside_roots")), "{route}");
    }
    // DNS rebinding: a page on another name pointed at 127.0.0.1 gets nothing.
    let other_name = status_with_host(&agent.url, &format!("/v1/nodes{root}"), "evil.example");
    assert_eq!(other_name, 403);
    assert_eq!(status_with_host(&agent.url, "/v1/health", "localhost:1234"), 200);
    let wrong_method = agent.authorized().post(&format!("/v1/nodes{root}"), "{}");
    assert_eq!(wrong_method.status, 405, "{}", wrong_method.text);
    let large = format!(r#"{{"data": {{"blob": "{}"}}}}"#, "x".repeat(4096));
    let too_large = agent.authorized().put(&format!("/v1/registrations{root}/big"), &large);
    assert_eq!((too_large.status, &too_large.body["code"]), (413, &json!("too_large")), "{}", too_large.text);

    // Without a token in the file, writes are off.
    let tokenless = Agent::start(&server, &format!("roots = [\"{root}\"]\n"));
    let refused = tokenless.http().put(&format!("/v1/registrations{root}/a"), "{}");
    assert_eq!((refused.status, &refused.body["code"]), (403, &json!("no_token")), "{}", refused.text);
    // --readonly refuses writes even with the token.
    let readonly = Agent::start_with(&server, &config(&root, ""), &["--readonly"], |_| {});
    let refused = readonly.authorized().put(&format!("/v1/registrations{root}/a"), "{}");
    assert_eq!((refused.status, &refused.body["code"]), (403, &json!("readonly")), "{}", refused.text);
    assert_eq!(readonly.http().get(&format!("/v1/nodes{root}")).status, 404, "reads still work");
    // With read_token, reads need it too (the health check does not).
    let private = Agent::start(&server, &config(&root, "read_token = true"));
    assert_eq!(private.http().get(&format!("/v1/nodes{root}")).status, 401);
    assert_eq!(private.authorized().get(&format!("/v1/nodes{root}")).status, 404);
    assert_eq!(private.http().get("/metrics").status, 401, "metrics name the services");
    assert_eq!(private.http().get("/v1/health").status, 200);
    assert_eq!(private.http().get("/").status, 200, "the dashboard's page");
}

#[test]
fn the_agent_starts_and_serves_while_zookeeper_is_down() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = closed.local_addr().unwrap().to_string();
    drop(closed);
    let root = unique_path("agent-down");
    let node = format!("{root}/web/a:1");
    // A registration in the file must not hold up the start.
    let agent = Agent::start(&server, &config(&root, &format!("[[register]]\npath = \"{node}\"\n")));
    let health = agent.http().get("/v1/health");
    assert_eq!((health.status, &health.body["status"]), (503, &json!("degraded")), "{}", health.text);
    assert_eq!(agent.http().get("/").status, 200, "the dashboard is up");
    poll("the registration is retrying", || {
        agent.http().get(&format!("/v1/registrations{node}")).body["state"] == "retrying"
    });
}

#[test]
fn metrics_show_the_session_registrations_and_requests() {
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-metrics");
    let agent = Agent::start(
        &server,
        // --server wins over the file's servers (nothing listens on port 1).
        &config(
            &root,
            &format!(
                "[[service]]\npath = \"{root}/web\"\n[[register]]\npath = \"{root}/web/a:1\"\n\
                 [zookeeper]\nservers = \"127.0.0.1:1\"\n"
            ),
        ),
    );
    poll("registered", || agent.http().get("/v1/registrations").text.contains("\"registered\""));
    agent.http().get(&format!("/v1/nodes{root}/nope"));
    let events = agent.http().events(&format!("/v1/watch{root}/web"));
    event_where(&events, "the first event", |_| true);
    let metrics = agent.http().get("/metrics").text;
    for line in [
        "ndsr_session_state{state=\"connected\"} 1",
        "ndsr_agent_registrations{state=\"registered\"} 1",
        &format!("ndsr_service_instances{{service=\"{root}/web\",serving=\"true\"}} 1"),
        "ndsr_http_requests_total{route=\"/v1/nodes/{*path}\",method=\"GET\",status=\"404\"} 1",
        "ndsr_reconnects_total 0",
        "ndsr_session_expiries_total 0",
        "ndsr_http_streams_open{route=\"/v1/watch/{*path}\"} 1",
        "ndsr_http_requests_in_flight 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no line {line:?} in\n{metrics}");
    }
    assert!(metrics.contains("ndsr_zookeeper_requests_total "), "{metrics}");
    assert!(metrics.contains("ndsr_watched_paths "), "{metrics}");
}

#[test]
fn sigterm_removes_registrations_at_once_and_exits_0() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let root = unique_path("agent-term");
    let node = format!("{root}/web/a:1");
    // A session timeout far beyond the test's wait: only a removal can pass.
    let agent = Agent::start_with(
        &server,
        &config(&root, &format!("[[register]]\npath = \"{node}\"\n")),
        &["--session-timeout", "60s"],
        |_| {},
    );
    poll("registered", || truth(&rt, &client, &node).is_some());
    let events = agent.http().events("/v1/dashboard/events");
    event_where(&events, "the model", |e| e["session"]["state"] == "connected");
    agent.running.signal(nix::sys::signal::Signal::SIGTERM);
    agent.running.line_where("stopped", |l| l.contains("stopped"));
    assert!(truth(&rt, &client, &node).is_none(), "removed before the agent says it stopped");
    let Agent { running, dir: _dir, .. } = agent;
    assert_eq!(running.wait(), 0, "exit 0, with a dashboard stream open");
}

#[test]
fn sighup_reloads_keeping_the_registrations_that_stayed() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let root = unique_path("agent-hup");
    let register = |paths: &[&str]| {
        let mut text = config(&root, "");
        for p in paths {
            text += &format!("[[register]]\npath = \"{root}/web/{p}\"\n");
        }
        text
    };
    let agent = Agent::start(&server, &register(&["a:1", "b:1"]));
    poll("both registered", || {
        ["a:1", "b:1"].iter().all(|p| truth(&rt, &client, &format!("{root}/web/{p}")).is_some())
    });
    let (czxid, ..) = truth(&rt, &client, &format!("{root}/web/a:1")).unwrap();

    std::fs::write(&agent.config, register(&["a:1", "c:1"])).unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGHUP);
    agent.running.line_where("reloaded", |l| l.starts_with("reloaded"));
    poll("c registered", || truth(&rt, &client, &format!("{root}/web/c:1")).is_some());
    assert!(truth(&rt, &client, &format!("{root}/web/b:1")).is_none(), "b removed");
    assert_eq!(truth(&rt, &client, &format!("{root}/web/a:1")).unwrap().0, czxid, "a untouched");

    // A bad file changes nothing.
    std::fs::write(&agent.config, "roots = [").unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGHUP);
    agent.running.error_where("reload refused", |l| l.contains("reload refused"));
    assert_eq!(truth(&rt, &client, &format!("{root}/web/a:1")).unwrap().0, czxid);
    assert!(truth(&rt, &client, &format!("{root}/web/c:1")).is_some());
    assert_eq!(agent.http().get("/v1/health").status, 200, "still serving");
}

#[test]
fn templates_render_on_change_and_keep_the_last_good_file_while_zookeeper_is_down() {
    let rt = runtime();
    let zk_server = ZkServer::new().unwrap();
    let server = zk_server.connect_string();
    let root = unique_path("agent-template");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.1:80"), json!({"zone": "a"}))).unwrap();
    let extra = format!(
        "[[service]]\npath = \"{root}/web\"\n\
         [[template]]\nsource = \"web.j2\"\ndestination = \"out/web.cfg\"\n\
         command = \"date +%s%N >> commands.log\"\nmin_interval = \"1s\"\n"
    );
    let agent = Agent::start_with(&server, &config(&root, &extra), &["--session-timeout", "4s"], |dir| {
        std::fs::create_dir(dir.join("out")).unwrap();
        std::fs::write(dir.join("web.j2"), "{% for i in services.web %}server {{ i.key }} {{ i.address }} zone={{ i.labels.zone }}\n{% endfor %}")
            .unwrap();
        std::fs::write(dir.join("out/web.cfg"), "old").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("out/web.cfg"), std::fs::Permissions::from_mode(0o640)).unwrap();
    });
    let file = agent.dir.path().join("out/web.cfg");
    let commands = agent.dir.path().join("commands.log");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    poll("the first render", || read(&file) == "server 10.0.0.1:80 10.0.0.1:80 zone=a\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o640, "mode kept");
    poll("the command ran", || read(&commands).lines().count() == 1);

    // Two changes close together: both reach the file, the command runs at
    // most once per interval and runs again for the second.
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.2:80"), json!({"zone": "b"}))).unwrap();
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.3:80"), json!({"zone": "c"}))).unwrap();
    poll("both new instances in the file", || read(&file).lines().count() == 3);
    poll("the command ran again", || read(&commands).lines().count() >= 2);
    let runs: Vec<u64> = read(&commands).lines().map(|l| l.parse().unwrap()).collect();
    assert!(runs.len() <= 3, "{} runs for three renders at most", runs.len());
    for pair in runs.windows(2) {
        // The command's own clock: runs at least min_interval apart (a
        // little slack for `date` starting later than the run).
        assert!(pair[1] - pair[0] >= 900_000_000, "runs closer than the 1 s interval: {runs:?}");
    }

    // ZooKeeper goes away: the file keeps the last good list, long after
    // the session timeout (no "empty because we cannot see" render).
    let good = read(&file);
    let events = agent.http().events(&format!("/v1/watch{root}/web"));
    event_where(&events, "a fresh event", |e| e["stale"] == false);
    zk_server.stop().unwrap();
    let stale = event_where(&events, "the stale marker over SSE", |e| e["stale"] == true);
    assert!(stale["stale_since_ms"].as_u64().is_some(), "{stale}");
    assert_eq!(stale["children"].as_array().unwrap().len(), 3, "the last known children: {stale}");
    poll("the agent sees the outage", || agent.http().get("/v1/health").status == 503);
    poll("the services are marked stale", || {
        agent.http().get(&format!("/v1/services{root}/web")).body["stale"] == true
    });
    // A registration made meanwhile is accepted (202) and kept as desired.
    let late = format!("{root}/web/10.0.0.9:80");
    let accepted = agent.authorized().put(&format!("/v1/registrations{late}"), r#"{"data": {"zone": "z"}}"#);
    assert_eq!((accepted.status, &accepted.body["state"]), (202, &json!("retrying")), "{}", accepted.text);
    std::thread::sleep(Duration::from_secs(5)); // beyond the 4 s session timeout: nothing may change
    assert_eq!(read(&file), good, "the last good file stays");
    let metrics = agent.http().get("/metrics").text;
    assert!(metrics.contains("result=\"skipped_stale\""), "{metrics}");
    assert!(metrics.contains("ndsr_template_commands_total{template="), "{metrics}");

    // Back: the agent's own registrations and renders resume, nothing is lost.
    zk_server.start().unwrap();
    poll("connected again", || agent.http().get("/v1/health").status == 200);
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.4:80"), json!({"zone": "d"}))).ok();
    poll("renders resume", || read(&file).contains("10.0.0.4:80"));
    poll("the late registration is made and confirmed", || {
        read(&file).contains("10.0.0.9:80")
            && agent.http().get(&format!("/v1/registrations{late}")).body["state"] == "registered"
    });
    rt.block_on(writer.close());
}

#[test]
fn curator_and_serverset_instances_are_registered_through_the_api() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let root = unique_path("agent-formats");
    let agent = Agent::start(&server, &config(&root, ""));
    let http = agent.authorized();

    // Curator: the path is <base>/<service>/<id>, the node that very path.
    let curator = format!("{root}/discovery/api/api-1");
    let body = r#"{"as": "curator", "host": "10.0.0.1", "port": 8080, "labels": {"zone": "a"}}"#;
    let created = http.put(&format!("/v1/registrations{curator}"), body);
    assert_eq!((created.status, &created.body["state"]), (201, &json!("registered")), "{}", created.text);
    let (_, owner, data) = truth(&rt, &client, &curator).expect("the Curator instance");
    assert_ne!(owner, 0);
    let instance: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        (&instance["name"], &instance["id"], &instance["port"]),
        (&json!("api"), &json!("api-1"), &json!(8080))
    );
    let listed = http.get(&format!("/v1/services{root}/discovery/api"));
    assert_eq!(listed.body["format"], "curator", "{}", listed.text);
    assert_eq!(listed.body["instances"][0]["labels"]["zone"], "a");

    // A ServerSet member: the path names the registration; the node is a
    // sequential member of its directory.
    let dir = format!("{root}/aurora/web");
    let member = format!("{dir}/web-0");
    let body = r#"{"as": "serverset", "host": "10.0.0.2", "port": 80, "shard": 0, "endpoints": {"admin": "10.0.0.2:9990"}}"#;
    let created = http.put(&format!("/v1/registrations{member}"), body);
    assert_eq!(created.status, 201, "{}", created.text);
    let node = created.body["node"].as_str().expect("the member's node").to_string();
    assert!(node.starts_with(&format!("{dir}/member_")), "{node}");
    let picked = http.get(&format!("/v1/pick{dir}"));
    assert_eq!(picked.body["instance"]["endpoints"]["admin"], "10.0.0.2:9990", "{}", picked.text);

    // A change of a member replaces it (a new sequence number), never two.
    let body = r#"{"as": "serverset", "host": "10.0.0.2", "port": 81}"#;
    assert_eq!(http.put(&format!("/v1/registrations{member}"), body).status, 200);
    let members = rt.block_on(client.list_children(&dir)).unwrap();
    assert_eq!(members.len(), 1, "one member: {members:?}");
    assert!(truth(&rt, &client, &node).is_none(), "the old member is gone");

    assert_eq!(http.delete(&format!("/v1/registrations{member}")).status, 204);
    assert!(rt.block_on(client.list_children(&dir)).unwrap().is_empty(), "removed at once");
    assert_eq!(http.delete(&format!("/v1/registrations{curator}")).status, 204);
    assert!(truth(&rt, &client, &curator).is_none());

    // A ServerSet member in a Curator directory is refused, and writes nothing.
    http.put(
        &format!("/v1/registrations{curator}"),
        r#"{"as": "curator", "host": "10.0.0.1", "port": 8080}"#,
    );
    let body = r#"{"as": "serverset", "host": "10.0.0.3", "port": 80}"#;
    let conflict = http.put(&format!("/v1/registrations{root}/discovery/api/web-1"), body);
    assert_eq!((conflict.status, &conflict.body["code"]), (409, &json!("conflict")), "{}", conflict.text);
    let children = rt.block_on(client.list_children(&format!("{root}/discovery/api"))).unwrap();
    assert_eq!(children, ["api-1"], "nothing written");
    assert_eq!(http.get(&format!("/v1/registrations{root}/discovery/api/web-1")).status, 404, "not held");
}

#[test]
fn a_missing_service_directory_is_404_with_the_body_in_the_configured_format() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-missing-service");
    let writer = registry(&rt, &server);
    let extra = format!("[[service]]\npath = \"{root}/api\"\nformat = \"curator\"\n");
    let agent = Agent::start(&server, &config(&root, &extra));
    let http = agent.http();

    // Not there: 404 with the body a 200 would have, in the file's format
    // (or the one asked; none to detect from otherwise).
    for (url, format) in [
        (format!("/v1/services{root}/api"), json!("curator")),
        (format!("/v1/services{root}/api?format=nd"), json!("nd")),
        (format!("/v1/services{root}/nowhere"), json!(null)),
    ] {
        let answer = http.get(&url);
        assert_eq!(answer.status, 404, "{url}: {}", answer.text);
        assert_eq!(
            (&answer.body["format"], &answer.body["instances"]),
            (&format, &json!([])),
            "{url}: {}",
            answer.text
        );
        assert!(answer.index.is_some(), "{url}: a blocking query can start from it");
    }

    // A blocking query on it is answered when an instance registers: 200.
    let missing = http.get(&format!("/v1/services{root}/api"));
    let url = format!("/v1/services{root}/api?index={}&wait=30s", missing.index.unwrap());
    let blocked = std::thread::spawn(move || http.get(&url));
    let instance = json!({"name": "api", "id": "api-1", "address": "10.0.0.1", "port": 8080});
    rt.block_on(writer.set_node(&format!("{root}/api/api-1"), instance)).unwrap();
    let answered = blocked.join().unwrap();
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert_eq!(answered.body["format"], "curator");
    assert_eq!(answered.body["instances"][0]["address"], "10.0.0.1:8080", "{}", answered.text);

    // An empty directory exists: 200.
    rt.block_on(writer.set_data(&format!("{root}/empty"), json!({}))).unwrap();
    let empty = agent.http().get(&format!("/v1/services{root}/empty"));
    assert_eq!((empty.status, &empty.body["instances"]), (200, &json!([])), "{}", empty.text);
    rt.block_on(writer.close());
}

#[test]
fn a_registration_dropped_before_zookeeper_answered_never_appears() {
    let rt = runtime();
    let zk_server = ZkServer::new().unwrap();
    let server = zk_server.connect_string();
    zk_server.stop().unwrap();
    let root = unique_path("agent-dropped");
    let (kept, dropped) = (format!("{root}/web/kept:1"), format!("{root}/web/dropped:1"));
    let file = |paths: &[&str]| {
        let mut text = config(&root, "");
        for p in paths {
            text += &format!("[[register]]\npath = \"{p}\"\n");
        }
        text
    };
    let agent = Agent::start(&server, &file(&[&kept, &dropped]));
    // Both are being written (ZooKeeper is down); one is dropped from the file.
    std::fs::write(&agent.config, file(&[&kept])).unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGHUP);
    agent.running.line_where("reloaded", |l| l.starts_with("reloaded"));
    zk_server.start().unwrap();
    let client = zk(&rt, &server);
    poll("the kept registration is made", || truth(&rt, &client, &kept).is_some());
    poll("the agent confirms it", || {
        agent.http().get(&format!("/v1/registrations{kept}")).body["state"] == "registered"
    });
    assert!(truth(&rt, &client, &dropped).is_none(), "the dropped registration never appears");
}
