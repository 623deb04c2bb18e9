//! `ndsr agent`'s configuration routes (issue 24) against a real
//! ZooKeeper: publishes with compare-and-set, schema refusals, history
//! with the versions other clients wrote, rollback to the exact bytes,
//! diffs, metrics, the token and read-only checks of every write, the
//! exact live value of `?release=1`, and `[config] record_external`.

mod common;

use common::agent::{Agent, Answer, TOKEN};
use common::*;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::{json, Value};
use sha2::Digest;

fn config(root: &str, extra: &str) -> String {
    format!("roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n{extra}")
}

/// A POST with our headers (`If-Match`, `X-Ndsr-Message`) and the token
/// when `token` is given.
fn post(agent: &Agent, route: &str, headers: &[(&str, &str)], body: &str, token: bool) -> Answer {
    let client: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT * 2))
        .build()
        .into();
    let mut request = client.post(&format!("{}{route}", agent.url));
    if token {
        request = request.header("Authorization", &format!("Bearer {TOKEN}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.send(body).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, index: None, body, text }
}

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn texts(history: &Answer) -> Vec<String> {
    history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn publish_read_refuse_record_gaps_and_roll_back() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let root = unique_path("agent-config");
    let path = format!("{root}/web");
    let route = format!("/v1/config{path}");
    let agent = Agent::start(&server, &config(&root, ""));
    let http = agent.http();

    // Nothing there yet.
    assert_eq!(http.get(&route).status, 404);
    let missing = http.get(&format!("{route}?release=1"));
    assert_eq!((missing.status, &missing.body["code"]), (404, &json!("not_found")), "{}", missing.text);

    // A publish that must create the node; its bytes kept as sent.
    let first = r#"{"pool":  10 }"#;
    let made = post(&agent, &route, &[("If-Match", "-1"), ("X-Ndsr-Message", "first pool")], first, true);
    assert_eq!(made.status, 200, "{}", made.text);
    assert_eq!((&made.body["version"], &made.body["op"]), (&json!(0), &json!("publish")), "{}", made.text);
    assert_eq!(made.body["previous_version"], Value::Null);
    assert_eq!(made.body["sha256"], json!(sha256(first.as_bytes())));
    assert!(made.body["entry"].as_str().unwrap().starts_with("r-"), "{}", made.text);

    let read = http.get(&format!("{route}?release=1"));
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!((&read.body["value"], &read.body["version"]), (&json!({"pool": 10}), &json!(0)));
    assert_eq!(read.body["sha256"], made.body["sha256"]);
    assert_eq!((&read.body["schema_version"], &read.body["schema"]), (&Value::Null, &Value::Null));
    let release = &read.body["release"];
    assert_eq!(
        (&release["entry"], &release["op"]),
        (&made.body["entry"], &json!("publish")),
        "{}",
        read.text
    );
    assert_eq!(release["message"], "first pool");
    assert!(release["author"].as_str().is_some_and(|a| !a.is_empty()), "{}", read.text);
    assert!(release["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{}", read.text);
    // The plain read is the agent's cache: the same value and version.
    poll("the cached read sees version 0", || http.get(&route).body["version"] == 0);
    let cached = http.get(&route);
    assert_eq!((cached.status, &cached.body["value"]), (200, &json!({"pool": 10})), "{}", cached.text);
    assert!(cached.index.is_some(), "{}", cached.text);

    // Compare-and-set: a stale or wrong version is refused, naming the current one.
    for expected in ["5", "-1"] {
        let refused = post(&agent, &route, &[("If-Match", expected)], r#"{"pool": 11}"#, true);
        assert_eq!(
            (refused.status, &refused.body["code"]),
            (409, &json!("version_conflict")),
            "{}",
            refused.text
        );
        assert_eq!(refused.body["current"], 0, "{}", refused.text);
        assert!(refused.body["error"].as_str().unwrap().contains("nothing was written"), "{}", refused.text);
    }
    let bad_version = post(&agent, &route, &[("If-Match", "soon")], r#"{"pool": 11}"#, true);
    assert_eq!(
        (bad_version.status, &bad_version.body["code"]),
        (400, &json!("bad_request")),
        "{}",
        bad_version.text
    );
    // Not JSON.
    let garbage = post(&agent, &route, &[], "pool = 11", true);
    assert_eq!((garbage.status, &garbage.body["code"]), (400, &json!("bad_request")), "{}", garbage.text);
    assert!(garbage.body["error"].as_str().unwrap().contains("not JSON"), "{}", garbage.text);
    let (bytes, stat) = rt.block_on(client.get_data(&path)).unwrap();
    assert_eq!((bytes.as_slice(), stat.version), (first.as_bytes(), 0), "nothing refused was written");

    // The message as a query parameter, conditional on the right version.
    let second = post(
        &agent,
        &format!("{route}?message=more%20connections"),
        &[("If-Match", "0")],
        r#"{"pool": 20}"#,
        true,
    );
    assert_eq!((second.status, &second.body["version"]), (200, &json!(1)), "{}", second.text);
    assert_eq!(second.body["previous_version"], 0);

    // A schema (set through the library): a value that does not fit is 422, every violation listed.
    let writer = rt.block_on(ndsr::Registry::builder(&server).build()).unwrap();
    let schema = json!({"type": "object", "properties": {"pool": {"type": "integer", "maximum": 50}, "name": {"type": "string"}}});
    rt.block_on(writer.set_schema(&path, &schema, false)).unwrap();
    let invalid = post(&agent, &route, &[], r#"{"pool": 99, "name": 7}"#, true);
    assert_eq!((invalid.status, &invalid.body["code"]), (422, &json!("invalid")), "{}", invalid.text);
    let mut pointers: Vec<&str> = invalid.body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pointer"].as_str().unwrap())
        .collect();
    pointers.sort();
    assert_eq!(pointers, ["/name", "/pool"], "{}", invalid.text);
    assert!(invalid.body["violations"][0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    let read = http.get(&format!("{route}?release=1"));
    assert_eq!(
        (&read.body["version"], &read.body["value"]),
        (&json!(1), &json!({"pool": 20})),
        "{}",
        read.text
    );
    assert!(read.body["schema_version"].as_i64().is_some(), "{}", read.text);
    assert_eq!(read.body["schema"]["schema"], schema, "{}", read.text);
    assert_eq!(read.body["schema"]["version"], read.body["schema_version"], "{}", read.text);
    assert_eq!(read.body["release"]["message"], "more connections");

    // Another client writes: the live value has no release.
    rt.block_on(client.set_data(&path, br#"{"pool": 30}"#, None)).unwrap();
    let external = http.get(&format!("{route}?release=1"));
    assert_eq!(
        (&external.body["version"], &external.body["release"]),
        (&json!(2), &Value::Null),
        "{}",
        external.text
    );
    assert_eq!(external.body["value"], json!({"pool": 30}), "{}", external.text);
    assert_eq!(external.body["sha256"], json!(sha256(br#"{"pool": 30}"#)), "the live bytes' digest");

    // Rollback to version 0: the exact bytes come back, as a new release that says so.
    let rolled = post(&agent, &format!("{route}?rollback=0"), &[("X-Ndsr-Message", "back to 10")], "", true);
    assert_eq!(rolled.status, 200, "{}", rolled.text);
    assert_eq!(
        (&rolled.body["version"], &rolled.body["op"], &rolled.body["rollback_of"]),
        (&json!(3), &json!("rollback"), &json!(0))
    );
    let (bytes, stat) = rt.block_on(client.get_data(&path)).unwrap();
    assert_eq!((bytes.as_slice(), stat.version), (first.as_bytes(), 3));
    assert_eq!(rolled.body["sha256"], made.body["sha256"]);
    // A version the history does not hold: 404 with what it holds.
    let unknown = post(&agent, &format!("{route}?rollback=2"), &[], "", true);
    assert_eq!((unknown.status, &unknown.body["code"]), (404, &json!("not_in_history")), "{}", unknown.text);
    assert_eq!(unknown.body["available"], json!([0, 1, 3]), "{}", unknown.text);
    let with_body = post(&agent, &format!("{route}?rollback=0"), &[], "{}", true);
    assert_eq!(with_body.status, 400, "{}", with_body.text);

    // A diff between two releases, and to the live value.
    let diff = http.get(&format!("{route}?diff&from=0&to=1"));
    assert_eq!(diff.status, 200, "{}", diff.text);
    assert_eq!(
        diff.body["changes"],
        json!([{"pointer": "/pool", "kind": "changed", "old": 10, "new": 20, "text": "~ /pool: 10 -> 20"}])
    );
    let none = http.get(&format!("{route}?diff&from=0"));
    assert_eq!(none.body["changes"], json!([]), "the live value is version 0's: {}", none.text);
    let gone = http.get(&format!("{route}?diff&from=2&to=3"));
    assert_eq!((gone.status, &gone.body["code"]), (404, &json!("not_in_history")), "{}", gone.text);
    let wrong = http.get(&format!("{route}?diff&from=zero"));
    assert_eq!(wrong.status, 400, "{}", wrong.text);
    assert_eq!(http.get(&format!("{route}?since=1")).status, 400, "since is for ?history");

    // Every publish and refusal is counted by path and result.
    let metrics = http.get("/metrics").text;
    for (result, n) in
        [("ok", 3), ("version_conflict", 2), ("invalid", 1), ("bad_request", 3), ("not_in_history", 1)]
    {
        let line = format!("ndsr_config_publishes_total{{path=\"{path}\",result=\"{result}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "no {line:?} in\n{metrics}");
    }

    // The history: the releases, and the version another client wrote, said plainly.
    let history = http.get(&format!("{route}?history"));
    assert_eq!((history.status, &history.body["live_version"]), (200, &json!(3)), "{}", history.text);
    let kinds: Vec<&str> =
        history.body["items"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["release", "release", "gap", "release"], "{}", history.text);
    let lines = texts(&history);
    assert_eq!(lines[2], format!("version 2 of {path} was written outside ndsr; its value was not recorded"));
    assert_eq!(history.body["items"][2]["reason"], "external");
    assert!(lines[1].starts_with("version 1: publish by "), "{lines:?}");
    assert!(lines[3].starts_with("version 3 (live): rollback to version 0 by "), "{lines:?}");
    assert!(lines[3].ends_with(": back to 10"), "{lines:?}");
    assert!(history.body["items"][0].get("value").is_none(), "values only when asked: {}", history.text);

    // The history with values and each release's changes; since= what came after a version.
    let full = http.get(&format!("{route}?history&values=1&diff=1"));
    let items = full.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{}", full.text);
    assert_eq!(items[0]["value"], json!({"pool": 10}));
    assert_eq!(items[0]["changes"], Value::Null, "the first release has nothing before it");
    assert_eq!(items[1]["changes"][0]["text"], "~ /pool: 10 -> 20", "{}", full.text);
    assert_eq!(items[3]["changes"], Value::Null, "version 2 was not recorded: {}", full.text);
    assert_eq!(items[3]["rollback_of"], 0);
    let since = http.get(&format!("{route}?history&since=1"));
    let kinds: Vec<&str> =
        since.body["items"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["gap", "release"], "{}", since.text);
}

#[test]
fn config_writes_need_the_token_a_writable_agent_and_a_path_within_the_roots() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let root = unique_path("agent-config-auth");
    let route = format!("/v1/config{root}/web");
    let agent = Agent::start(&server, &config(&root, "max_body_bytes = 1024"));

    let anonymous = post(&agent, &route, &[], "{}", false);
    assert_eq!(
        (anonymous.status, &anonymous.body["code"]),
        (401, &json!("unauthorized")),
        "{}",
        anonymous.text
    );
    let outside = post(&agent, "/v1/config/zookeeper/quota", &[], "{}", true);
    assert_eq!((outside.status, &outside.body["code"]), (403, &json!("outside_roots")), "{}", outside.text);
    let read_outside = agent.http().get("/v1/config/zookeeper/quota?history");
    assert_eq!((read_outside.status, &read_outside.body["code"]), (403, &json!("outside_roots")));
    let large = format!(r#"{{"blob": "{}"}}"#, "x".repeat(2048));
    let too_large = post(&agent, &route, &[], &large, true);
    assert_eq!((too_large.status, &too_large.body["code"]), (413, &json!("too_large")), "{}", too_large.text);
    assert_eq!(agent.authorized().put(&route, "{}").status, 405, "PUT is not a config route's method");

    let tokenless = Agent::start(&server, &format!("roots = [\"{root}\"]\n"));
    let refused = post(&tokenless, &route, &[], "{}", false);
    assert_eq!((refused.status, &refused.body["code"]), (403, &json!("no_token")), "{}", refused.text);
    let readonly = Agent::start_with(&server, &config(&root, ""), &["--readonly"], |_| {});
    let refused = post(&readonly, &route, &[], "{}", true);
    assert_eq!((refused.status, &refused.body["code"]), (403, &json!("readonly")), "{}", refused.text);
    let refused = post(&readonly, &format!("{route}?rollback=0"), &[], "", true);
    assert_eq!((refused.status, &refused.body["code"]), (403, &json!("readonly")), "{}", refused.text);
    assert!(rt.block_on(client.check_stat(&format!("{root}/web"))).unwrap().is_none(), "nothing was written");

    // With read_token, the reads need the token too.
    let private = Agent::start(&server, &config(&root, "read_token = true"));
    assert_eq!(private.http().get(&format!("{route}?history")).status, 401);
    assert_eq!(private.authorized().get(&format!("{route}?history")).status, 200);
}

/// The releases of a history (`?history`): (version, op), oldest first.
fn releases(history: &Answer) -> Vec<(i64, String)> {
    history.body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|i| i["kind"] == "release")
                .map(|i| (i["version"].as_i64().unwrap(), i["op"].as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the history of `route` holds `want` releases, and returns them.
fn releases_when(http: &common::agent::Http, route: &str, want: usize) -> Vec<(i64, String)> {
    let mut last = Vec::new();
    poll(&format!("{want} releases of {route}"), || {
        last = releases(&http.get(&format!("{route}?history")));
        last.len() >= want
    });
    last
}

fn persistent() -> zookeeper_client::CreateOptions<'static> {
    zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all())
}

/// How many times `metric{path="path"}` was counted (0 when absent).
fn counted(http: &common::agent::Http, metric: &str, path: &str) -> u64 {
    let line = format!("{metric}{{path=\"{path}\"}} ");
    let text = http.get("/metrics").text;
    text.lines().find_map(|l| l.strip_prefix(&line)).map_or(0, |n| n.trim().parse().unwrap())
}

#[test]
fn a_value_written_outside_ndsr_is_read_exactly() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let root = unique_path("agent-config-raw");
    let path = format!("{root}/legacy");
    let route = format!("/v1/config{path}");
    let agent = Agent::start(&server, &config(&root, ""));
    let http = agent.http();

    // Not JSON, with what a decoding would lose (a trailing newline, spaces).
    let text = "pool = 40\n  name = \"web\"\n";
    rt.block_on(client.mkdir(&root, &persistent())).unwrap();
    rt.block_on(client.create(&path, text.as_bytes(), &persistent())).unwrap();
    let read = http.get(&format!("{route}?release=1"));
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!((&read.body["value"], &read.body["version"]), (&json!(text), &json!(0)), "{}", read.text);
    assert_eq!(read.body["sha256"], json!(sha256(text.as_bytes())), "{}", read.text);
    assert_eq!((&read.body["release"], &read.body["schema"]), (&Value::Null, &Value::Null), "{}", read.text);

    // JSON written by another client: its value, the digest of its exact bytes.
    let json_text = "{\"pool\":41 ,\"x\": [1]}";
    rt.block_on(client.set_data(&path, json_text.as_bytes(), None)).unwrap();
    let read = http.get(&format!("{route}?release=1"));
    assert_eq!((&read.body["value"], &read.body["version"]), (&json!({"pool": 41, "x": [1]}), &json!(1)));
    assert_eq!(read.body["sha256"], json!(sha256(json_text.as_bytes())), "{}", read.text);
    // Nothing records it: this agent was not asked to.
    assert_eq!(releases(&http.get(&format!("{route}?history"))), vec![]);
}

#[test]
fn record_external_records_each_outside_write_once_and_follows_reloads() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let root = unique_path("agent-config-external");
    let (web, apps, db) = (format!("{root}/web"), format!("{root}/apps"), format!("{root}/db"));
    let file = |recorded: &str| {
        format!(
            "roots = [\"{root}\"]\n[config]\nrecord_external = [{recorded}]\n[http]\ntoken = \"{TOKEN}\"\n"
        )
    };
    rt.block_on(client.mkdir(&apps, &persistent())).unwrap();
    let child = format!("{apps}/a");
    // The child twice: as itself and under the prefix (recorded once all the same).
    let agent = Agent::start(&server, &file(&format!("\"{web}\", \"{apps}/\", \"{child}\"")));
    let http = agent.http();
    let web_route = format!("/v1/config{web}");

    // Created outside ndsr: version 0 recorded as it is, not JSON.
    rt.block_on(client.create(&web, b"pool = 40", &persistent())).unwrap();
    assert_eq!(releases_when(&http, &web_route, 1), vec![(0, "external".to_string())]);
    let read = http.get(&format!("{web_route}?release=1"));
    assert_eq!((&read.body["value"], &read.body["release"]["op"]), (&json!("pool = 40"), &json!("external")));
    assert_eq!(read.body["release"]["sha256"], json!(sha256(b"pool = 40")), "{}", read.text);
    assert_eq!(read.body["sha256"], json!(sha256(b"pool = 40")), "{}", read.text);

    // A raw set_data, a publish through the agent, another raw set_data:
    // each outside write recorded once, the publish not again.
    rt.block_on(client.set_data(&web, br#"{"pool": 41}"#, None)).unwrap();
    releases_when(&http, &web_route, 2);
    let published = post(&agent, &web_route, &[], r#"{"pool": 42}"#, true);
    assert_eq!(published.status, 200, "{}", published.text);
    rt.block_on(client.set_data(&web, br#"{"pool": 43}"#, None)).unwrap();
    let recorded = releases_when(&http, &web_route, 4);
    let want: Vec<(i64, String)> = [(0, "external"), (1, "external"), (2, "publish"), (3, "external")]
        .map(|(v, op)| (v, op.into()))
        .into();
    assert_eq!(recorded, want);
    let history = http.get(&format!("{web_route}?history&values=1"));
    assert_eq!(history.body["items"][3]["value"], json!({"pool": 43}), "{}", history.text);
    assert!(texts(&history).iter().all(|t| !t.contains("was not recorded")), "no gap: {}", history.text);
    assert_eq!(counted(&http, "ndsr_config_external_recorded_total", &web), 3);

    // A prefix: each direct child, the prefix's node itself not.
    rt.block_on(client.create(&child, br#"{"x": 1}"#, &persistent())).unwrap();
    assert_eq!(releases_when(&http, &format!("/v1/config{child}"), 1), vec![(0, "external".to_string())]);
    assert_eq!(releases(&http.get(&format!("/v1/config{apps}?history"))), vec![]);

    // A reload stops following web and starts following db.
    std::fs::write(&agent.config, file(&format!("\"{apps}/\", \"{db}\""))).unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGHUP);
    agent.running.line_where("the reload", |l| l.starts_with("reloaded"));
    rt.block_on(client.create(&db, b"{}", &persistent())).unwrap();
    assert_eq!(releases_when(&http, &format!("/v1/config{db}"), 1), vec![(0, "external".to_string())]);
    // web's follower was stopped (and awaited) before the reload said so.
    rt.block_on(client.set_data(&web, br#"{"pool": 44}"#, None)).unwrap();
    rt.block_on(client.set_data(&child, br#"{"x": 2}"#, None)).unwrap();
    releases_when(&http, &format!("/v1/config{child}"), 2);
    let history = http.get(&format!("{web_route}?history"));
    assert_eq!(releases(&history).len(), 4, "{}", history.text);
    assert_eq!(history.body["live_version"], 4, "{}", history.text);
    assert!(
        texts(&history).iter().any(|t| t.contains("version 4") && t.contains("not recorded")),
        "{}",
        history.text
    );

    // A read-only agent records nothing (it says so at start).
    let quiet = format!("{root}/quiet");
    let readonly = Agent::start_with(&server, &file(&format!("\"{quiet}\"")), &["--readonly"], |_| {});
    readonly.running.error_where("the warning", |l| l.contains("record_external is ignored"));
    rt.block_on(client.create(&quiet, b"{}", &persistent())).unwrap();
    // The writable agent's follower of apps/ sees a change after this one;
    // the read-only agent has no follower at all.
    rt.block_on(client.set_data(&child, br#"{"x": 3}"#, None)).unwrap();
    let want: Vec<(i64, String)> = (0..3).map(|v| (v, "external".into())).collect();
    assert_eq!(releases_when(&http, &format!("/v1/config{child}"), 3), want, "each version once");
    assert_eq!(releases(&readonly.http().get(&format!("/v1/config{quiet}?history"))), vec![]);
    assert_eq!(counted(&readonly.http(), "ndsr_config_external_recorded_total", &quiet), 0);

    // Shutdown ends the followers with the agent's other tasks.
    agent.running.signal(nix::sys::signal::Signal::SIGTERM);
    let stopped = agent.running.line_where("the stop", |l| l.contains("ndsr agent stopped"));
    assert!(stopped.contains("registrations removed"), "{stopped}");
    assert_eq!(agent.running.wait(), 0);
}

/// Issue 24's forms of the routes: `GET <path>/history` is `?history` and
/// `POST <path>/rollback` (`{"to": N}` or `?to=N`) is `?rollback=N` on a
/// configuration path with releases; elsewhere `.../rollback` and
/// `.../history` are ordinary nodes, and under such a path a node of those
/// names cannot be published.
#[test]
fn history_and_rollback_sub_routes_serve_a_configuration_path_with_releases() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let root = unique_path("agent-config-routes");
    let path = format!("{root}/web");
    let route = format!("/v1/config{path}");
    let agent = Agent::start(&server, &config(&root, ""));
    let http = agent.http();

    let first = r#"{"pool":  10 }"#;
    assert_eq!(post(&agent, &route, &[("X-Ndsr-Message", "first")], first, true).status, 200);
    assert_eq!(post(&agent, &route, &[], r#"{"pool": 20}"#, true).status, 200);
    assert_eq!(post(&agent, &route, &[], r#"{"pool": 30}"#, true).status, 200);

    // GET .../history is ?history, with since, values and diff.
    for (sub, plain) in [("", ""), ("?since=0", "&since=0"), ("?values=1&diff=1", "&values=1&diff=1")] {
        let (sub, plain) =
            (http.get(&format!("{route}/history{sub}")), http.get(&format!("{route}?history{plain}")));
        assert_eq!((sub.status, plain.status), (200, 200), "{}", sub.text);
        assert_eq!(sub.body, plain.body);
    }
    assert_eq!(releases(&http.get(&format!("{route}/history?since=0"))).len(), 2);
    let wrong = http.get(&format!("{route}/history?release=1"));
    assert_eq!((wrong.status, &wrong.body["code"]), (400, &json!("bad_request")), "{}", wrong.text);

    // A bad version: 404 with what the history holds, nothing written.
    let unknown = post(&agent, &format!("{route}/rollback"), &[], r#"{"to": 7}"#, true);
    assert_eq!((unknown.status, &unknown.body["code"]), (404, &json!("not_in_history")), "{}", unknown.text);
    assert_eq!(unknown.body["available"], json!([0, 1, 2]), "{}", unknown.text);
    // No version, a version given twice, a stale If-Match, ?rollback= on the sub-route: refused.
    for (query, headers, body, status) in [
        ("", &[][..], "", 400),
        ("?to=0", &[][..], r#"{"to": 0}"#, 400),
        ("?rollback=0", &[][..], "", 400),
        ("", &[][..], r#"{"to": 0, "extra": 1}"#, 400),
        ("", &[("If-Match", "1")][..], r#"{"to": 0}"#, 409),
    ] {
        let refused = post(&agent, &format!("{route}/rollback{query}"), headers, body, true);
        assert_eq!(refused.status, status, "{query} {body}: {}", refused.text);
    }
    let (_, stat) = rt.block_on(client.get_data(&path)).unwrap();
    assert_eq!(stat.version, 2, "nothing refused was written");

    // POST .../rollback {"to": 0}: version 0's exact bytes again, the release answered.
    let rolled = post(
        &agent,
        &format!("{route}/rollback"),
        &[("If-Match", "2")],
        r#"{"to": 0, "message": "back to 10"}"#,
        true,
    );
    assert_eq!(rolled.status, 200, "{}", rolled.text);
    assert_eq!(
        (&rolled.body["path"], &rolled.body["version"], &rolled.body["op"], &rolled.body["rollback_of"]),
        (&json!(path), &json!(3), &json!("rollback"), &json!(0)),
        "{}",
        rolled.text
    );
    assert_eq!(rolled.body["sha256"], json!(sha256(first.as_bytes())));
    let (bytes, stat) = rt.block_on(client.get_data(&path)).unwrap();
    assert_eq!((bytes.as_slice(), stat.version), (first.as_bytes(), 3));
    // ?to= and the message as a parameter work the same.
    let again = post(&agent, &format!("{route}/rollback?to=1&message=twenty"), &[], "", true);
    assert_eq!((again.status, &again.body["rollback_of"]), (200, &json!(1)), "{}", again.text);
    let history = http.get(&format!("{route}/history"));
    let lines = texts(&history);
    assert!(lines[3].contains("rollback to version 0") && lines[3].ends_with("back to 10"), "{lines:?}");
    assert!(lines[4].contains("rollback to version 1") && lines[4].ends_with("twenty"), "{lines:?}");
    assert!(
        rt.block_on(client.get_data(&format!("{path}/rollback"))).is_err(),
        "no node /rollback was published"
    );

    // A node named history or rollback under it cannot be published: rename it.
    let reserved = post(&agent, &format!("{route}/history"), &[], r#"{"a": 1}"#, true);
    assert_eq!((reserved.status, &reserved.body["code"]), (400, &json!("bad_request")), "{}", reserved.text);
    assert!(reserved.body["error"].as_str().unwrap().contains("rename"), "{}", reserved.text);
    assert!(rt.block_on(client.get_data(&format!("{path}/history"))).is_err());

    // Under a path without releases they are ordinary nodes, as before.
    let plain = format!("{root}/plain");
    let plain_route = format!("/v1/config{plain}");
    for name in ["rollback", "history"] {
        let made = post(&agent, &format!("{plain_route}/{name}"), &[], r#"{"to": 0}"#, true);
        assert_eq!((made.status, &made.body["op"]), (200, &json!("publish")), "{name}: {}", made.text);
        assert_eq!(made.body["path"], json!(format!("{plain}/{name}")));
        let (bytes, _) = rt.block_on(client.get_data(&format!("{plain}/{name}"))).unwrap();
        assert_eq!(bytes, br#"{"to": 0}"#);
    }
    let node = http.get(&format!("{plain_route}/history?release=1"));
    assert_eq!((node.status, &node.body["value"]), (200, &json!({"to": 0})), "{}", node.text);
    let wrong = post(&agent, &format!("{plain_route}/rollback?to=0"), &[], "", true);
    assert_eq!((wrong.status, &wrong.body["code"]), (400, &json!("bad_request")), "{}", wrong.text);
}
