//! Maintenance mode: `ndsr maint` and the agent's `/v1/maintenance` mark
//! an instance not serving in its own format without deregistering it,
//! read back by the library's reader (`instances`) and `ndsr pick`,
//! against a real ZooKeeper.

mod common;

use common::agent::{Agent, TOKEN};
use common::*;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::json;

const CURATOR: &str = r#"{"name":"web","id":"i-1","address":"10.0.0.1","port":80,"sslPort":null,"payload":null,"registrationTimeUTC":5,"serviceType":"DYNAMIC","uriSpec":null}"#;
const SERVERSET: &str = r#"{"serviceEndpoint":{"host":"10.0.0.2","port":80},"additionalEndpoints":{},"status":"ALIVE","shard":1}"#;
const ND: &str = r#"{"pid":1,"created":"2026-01-01 00:00:00","zone":"a"}"#;
const NERVE: &str = r#"{"host":"10.0.0.3","port":80,"name":"web"}"#;

/// Creates a persistent node at `path` holding `bytes` (parents made).
fn create(rt: &tokio::runtime::Runtime, client: &zookeeper_client::Client, path: &str, bytes: &str) {
    let opts = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    let parent = &path[..path.rfind('/').unwrap()];
    rt.block_on(client.mkdir(parent, &opts)).unwrap();
    rt.block_on(client.create(path, bytes.as_bytes(), &opts)).unwrap();
}

/// The node's bytes as a plain client reads them.
fn bytes(rt: &tokio::runtime::Runtime, client: &zookeeper_client::Client, path: &str) -> String {
    String::from_utf8(rt.block_on(client.get_data(path)).unwrap().0).unwrap()
}

/// Whether the one instance of `dir` serves, as the library reads it.
fn serving(rt: &tokio::runtime::Runtime, registry: &ndsr::Registry, dir: &str) -> Option<bool> {
    let instances = rt.block_on(registry.instances(dir, None)).unwrap();
    assert!(instances.bad.is_empty(), "{:?}", instances.bad);
    match instances.instances.as_slice() {
        [one] => Some(one.serving),
        _ => None,
    }
}

#[test]
fn ndsr_maint_marks_each_format_in_place_and_back() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let reader = rt.block_on(ndsr::Registry::builder(&server).build()).unwrap();
    let root = unique_path("maint-cli");
    for (key, json, marked, format) in [
        ("i-1", CURATOR, CURATOR.replace("null}", r#"null,"enabled":false}"#), "curator"),
        ("member_0000000001", SERVERSET, SERVERSET.replace("ALIVE", "STOPPING"), "serverset"),
        ("10.0.0.1:80", ND, ND.replace(r#""a"}"#, r#""a","maintenance":"deploy 42"}"#), "nd"),
    ] {
        let dir = format!("{root}/{format}");
        let node = format!("{dir}/{key}");
        create(&rt, &client, &node, json);
        assert_eq!(serving(&rt, &reader, &dir), Some(true), "{format}");

        let (code, out, err) = run(&server, &["maint", &node, "--on", "--reason", "deploy 42"]);
        assert_eq!(code, 0, "{format}: {err}");
        assert_eq!(out, format!("{node} {format} instance not serving (maintenance)\n"));
        assert_eq!(bytes(&rt, &client, &node), marked, "{format}: the other fields kept in place");
        poll("not serving", || serving(&rt, &reader, &dir) == Some(false));
        let (code, _, err) = run(&server, &["pick", &dir]);
        assert_eq!(code, 11, "{format}: no serving instance: {err}");

        let (code, out, err) = run(&server, &["maint", &node, "--off"]);
        assert_eq!(code, 0, "{format}: {err}");
        assert_eq!(out, format!("{node} {format} instance serving\n"));
        assert_eq!(bytes(&rt, &client, &node), json, "{format}: back byte for byte");
        poll("serving again", || serving(&rt, &reader, &dir) == Some(true));
    }

    let nerve = format!("{root}/nerve/web_0000000001");
    create(&rt, &client, &nerve, NERVE);
    let (code, _, err) = run(&server, &["maint", &nerve, "--on"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("a nerve instance cannot be marked not serving"), "{err}");
    assert_eq!(bytes(&rt, &client, &nerve), NERVE, "untouched");
    let plain = format!("{root}/plain/x");
    create(&rt, &client, &plain, "hello");
    let (code, _, err) = run(&server, &["maint", &plain, "--on"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not a JSON object"), "{err}");
    let (code, _, err) = run(&server, &["maint", &format!("{root}/missing/i-9"), "--on"]);
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("no such node"), "{err}");
    let (code, _, err) = run(&server, &["maint", &plain]);
    assert_eq!(code, 2, "--on or --off is required: {err}");
    rt.block_on(reader.close());
}

#[test]
fn the_agent_marks_its_own_registrations_and_other_nodes() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let reader = rt.block_on(ndsr::Registry::builder(&server).build()).unwrap();
    let root = unique_path("maint-agent");
    let own = format!("{root}/nd/10.0.0.1:80");
    let config = format!(
        "roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n\
         [[register]]\npath = \"{own}\"\ndata = {{ zone = \"a\" }}\n"
    );
    let agent = Agent::start(&server, &config);
    let nd = format!("{root}/nd");
    poll("registered", || serving(&rt, &reader, &nd) == Some(true));

    let url = format!("/v1/maintenance{own}");
    assert_eq!(agent.http().put(&url, "").status, 401, "the write token is needed");
    let on = agent.authorized().put(&url, r#"{"reason":"deploy"}"#);
    assert_eq!(on.status, 200, "{}", on.text);
    assert_eq!(on.body, json!({"path": own, "format": "nd", "maintenance": true}));
    poll("not serving", || serving(&rt, &reader, &nd) == Some(false));
    let data: serde_json::Value = serde_json::from_str(&bytes(&rt, &client, &own)).unwrap();
    assert_eq!((data["zone"].as_str(), data["maintenance"].as_str()), (Some("a"), Some("deploy")));
    // The agent keeps it so: a write by someone else is put back marked.
    rt.block_on(client.set_data(&own, b"{}", None)).unwrap();
    poll("written back marked", || bytes(&rt, &client, &own).contains(r#""maintenance":"deploy""#));
    let off = agent.authorized().delete(&url);
    assert_eq!((off.status, &off.body["maintenance"]), (200, &json!(false)), "{}", off.text);
    poll("serving again", || serving(&rt, &reader, &nd) == Some(true));

    // A node the agent does not hold: a compare-and-set write.
    let curator = format!("{root}/disc/web/i-1");
    create(&rt, &client, &curator, CURATOR);
    let on = agent.authorized().put(&format!("/v1/maintenance{curator}"), "");
    assert_eq!((on.status, &on.body["format"]), (200, &json!("curator")), "{}", on.text);
    poll("curator not serving", || serving(&rt, &reader, &format!("{root}/disc/web")) == Some(false));
    assert!(bytes(&rt, &client, &curator).ends_with(r#""uriSpec":null,"enabled":false}"#));

    let nerve = format!("{root}/nerve/web_0000000001");
    create(&rt, &client, &nerve, NERVE);
    let refused = agent.authorized().put(&format!("/v1/maintenance{nerve}"), "");
    assert_eq!((refused.status, &refused.body["code"]), (400, &json!("not_markable")), "{}", refused.text);
    let missing = agent.authorized().delete(&format!("/v1/maintenance{root}/none/i-9"));
    assert_eq!(missing.status, 404, "{}", missing.text);
    let outside = agent.authorized().put("/v1/maintenance/elsewhere/i-1", "");
    assert_eq!(outside.status, 403, "outside the roots: {}", outside.text);
    rt.block_on(reader.close());
}

#[test]
fn the_agent_marks_a_registration_given_as_raw_data_in_the_format_its_data_has() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let reader = rt.block_on(ndsr::Registry::builder(&server).build()).unwrap();
    let root = unique_path("maint-agent-raw");
    // Curator's fields given as data, not with as = "curator".
    let own = format!("{root}/web/i-3");
    let config = format!(
        "roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n\
         [[register]]\npath = \"{own}\"\n\
         data = {{ name = \"web\", id = \"i-3\", address = \"10.0.0.3\", port = 80, \
         registrationTimeUTC = 5, serviceType = \"DYNAMIC\" }}\n"
    );
    let agent = Agent::start(&server, &config);
    let web = format!("{root}/web");
    poll("registered", || serving(&rt, &reader, &web) == Some(true));
    let on = agent.authorized().put(&format!("/v1/maintenance{own}"), "");
    assert_eq!((on.status, &on.body["format"]), (200, &json!("curator")), "{}", on.text);
    poll("not serving", || serving(&rt, &reader, &web) == Some(false));
    let data: serde_json::Value = serde_json::from_str(&bytes(&rt, &client, &own)).unwrap();
    assert_eq!((data["enabled"].as_bool(), data.get("maintenance")), (Some(false), None), "{data}");
    rt.block_on(reader.close());
}

/// The instances of `dir` as the library's reader reads them (the format
/// detected): (key, serving).
fn listed(rt: &tokio::runtime::Runtime, registry: &ndsr::Registry, dir: &str) -> Vec<(String, bool)> {
    let instances = rt.block_on(registry.instances(dir, None)).unwrap();
    assert!(instances.bad.is_empty(), "{:?}", instances.bad);
    instances.instances.iter().map(|i| (i.key.clone(), i.serving)).collect()
}

/// Whether each instance of `dir` serves (`[]`: none listed).
fn serving_all(rt: &tokio::runtime::Runtime, registry: &ndsr::Registry, dir: &str) -> Vec<bool> {
    listed(rt, registry, dir).into_iter().map(|(_, serving)| serving).collect()
}

/// The nd `maintenance` field of the node at `path`, as the library reads it.
fn nd_reason(rt: &tokio::runtime::Runtime, registry: &ndsr::Registry, path: &str) -> serde_json::Value {
    let snapshot = rt.block_on(registry.get(path)).unwrap();
    snapshot.data.as_ref().and_then(|d| d.get("maintenance").cloned()).unwrap_or_default()
}

/// Polls until `dir` lists an instance, then says whether it serves at
/// first sight.
fn first_seen_serving(rt: &tokio::runtime::Runtime, registry: &ndsr::Registry, dir: &str) -> bool {
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        if let [(_, serving)] = listed(rt, registry, dir).as_slice() {
            return *serving;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for an instance of {dir}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn the_whole_agent_in_maintenance_marks_every_registration_in_its_format_and_keeps_them_so() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let reader = rt.block_on(ndsr::Registry::builder(&server).build()).unwrap();
    let root = unique_path("maint-whole");
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    std::fs::write(&up, "").unwrap();
    let (nd, curator, serverset, nerve, checked, added) = (
        format!("{root}/nd"),
        format!("{root}/disc/web"),
        format!("{root}/ss"),
        format!("{root}/nerve"),
        format!("{root}/checked"),
        format!("{root}/added"),
    );
    let registrations = format!(
        "[[register]]\npath = \"{nd}/10.0.0.1:80\"\ndata = {{ zone = \"a\" }}\n\
         [[register]]\npath = \"{curator}/i-1\"\nas = \"curator\"\nhost = \"10.0.0.2\"\nport = 80\n\
         [[register]]\npath = \"{serverset}/api-0\"\nas = \"serverset\"\nhost = \"10.0.0.3\"\nport = 80\n\
         [[register]]\npath = \"{nerve}/web\"\nas = \"nerve\"\nhost = \"10.0.0.4\"\nport = 80\n\
         [[register]]\npath = \"{checked}/10.0.0.5:80\"\ncheck_cmd = \"test -f '{}'\"\n\
         interval = \"100ms\"\nrise = 1\nfall = 1\n",
        up.display()
    );
    let config = format!("roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n{registrations}");
    let agent = Agent::start(&server, &config);
    let all = [&nd, &curator, &serverset, &nerve, &checked];
    poll("every registration serving", || all.iter().all(|dir| serving_all(&rt, &reader, dir) == [true]));
    let state = agent.http().get("/v1/maintenance");
    assert_eq!((state.status, &state.body["maintenance"]), (200, &json!(false)), "{}", state.text);

    // On: each marked in its own format (nerve, which has no mark, withdrawn).
    assert_eq!(agent.http().put("/v1/maintenance", "").status, 401, "the write token is needed");
    let on = agent.authorized().put("/v1/maintenance", r#"{"reason": "kernel upgrade"}"#);
    assert_eq!(on.status, 200, "{}", on.text);
    assert_eq!((&on.body["maintenance"], &on.body["reason"]), (&json!(true), &json!("kernel upgrade")));
    let marked = on.body["registrations"].as_array().unwrap();
    assert_eq!(marked.len(), 5, "{}", on.text);
    assert!(marked.iter().all(|r| r["marked"] == json!(true) && r["by"] == json!("agent")), "{}", on.text);
    poll("every one not serving", || {
        [&nd, &curator, &serverset, &checked].iter().all(|dir| serving_all(&rt, &reader, dir) == [false])
            && listed(&rt, &reader, &nerve).is_empty()
    });
    assert_eq!(nd_reason(&rt, &reader, &format!("{nd}/10.0.0.1:80")), json!("kernel upgrade"));
    assert!(bytes(&rt, &client, &format!("{curator}/i-1")).ends_with(r#""enabled":false}"#));
    let instances = rt.block_on(reader.instances(&serverset, None)).unwrap();
    assert_eq!(instances.format, Some(ndsr::discovery::Format::ServerSet));
    let (code, _, err) = run(&server, &["pick", &curator]);
    assert_eq!(code, 11, "Curator's reader picks none: {err}");

    // Kept so: someone else's write is put back marked ...
    rt.block_on(client.set_data(&format!("{nd}/10.0.0.1:80"), b"{}", None)).unwrap();
    poll("written back marked", || nd_reason(&rt, &reader, &format!("{nd}/10.0.0.1:80")) == "kernel upgrade");
    // ... a node its check withdraws comes back marked ...
    std::fs::remove_file(&up).unwrap();
    poll("withdrawn by its check", || listed(&rt, &reader, &checked).is_empty());
    std::fs::write(&up, "").unwrap();
    assert!(!first_seen_serving(&rt, &reader, &checked), "back marked, never serving");
    // ... and a registration added by a reload is registered marked.
    std::fs::write(&agent.config, format!("{config}[[register]]\npath = \"{added}/10.0.0.6:80\"\n")).unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGHUP);
    agent.running.line_where("the reload", |l| l.starts_with("reloaded"));
    assert!(!first_seen_serving(&rt, &reader, &added), "registered marked, never serving");
    assert_eq!(nd_reason(&rt, &reader, &format!("{added}/10.0.0.6:80")), json!("kernel upgrade"));

    // A registration's own maintenance outlives the agent's (and its reason wins).
    let own = format!("/v1/maintenance{checked}/10.0.0.5:80");
    let put = agent.authorized().put(&own, r#"{"reason": "bad disk"}"#);
    assert_eq!((put.status, &put.body["maintenance"]), (200, &json!(true)), "{}", put.text);
    poll("its own reason", || nd_reason(&rt, &reader, &format!("{checked}/10.0.0.5:80")) == "bad disk");
    let listed_by = agent.authorized().get(&format!("/v1/registrations{checked}/10.0.0.5:80"));
    assert_eq!(listed_by.body["maintenance"]["by"], json!("path"), "{}", listed_by.text);

    // Off: each serving again (nerve registered again), but the one in its own maintenance.
    let off = agent.authorized().delete("/v1/maintenance");
    assert_eq!((off.status, &off.body["maintenance"]), (200, &json!(false)), "{}", off.text);
    let still: Vec<_> =
        off.body["registrations"].as_array().unwrap().iter().map(|r| r["path"].clone()).collect();
    assert_eq!(still, [json!(format!("{checked}/10.0.0.5:80"))], "{}", off.text);
    poll("serving again", || {
        [&nd, &curator, &serverset, &nerve, &added].iter().all(|dir| serving_all(&rt, &reader, dir) == [true])
    });
    assert_eq!(nd_reason(&rt, &reader, &format!("{nd}/10.0.0.1:80")), serde_json::Value::Null);
    assert!(!bytes(&rt, &client, &format!("{curator}/i-1")).contains("enabled"), "as Curator writes it");
    assert_eq!(serving_all(&rt, &reader, &checked), [false], "still in its own maintenance");
    // Its own mark survives its check too.
    std::fs::remove_file(&up).unwrap();
    poll("withdrawn by its check", || listed(&rt, &reader, &checked).is_empty());
    std::fs::write(&up, "").unwrap();
    assert!(!first_seen_serving(&rt, &reader, &checked), "back marked, never serving");
    assert_eq!(nd_reason(&rt, &reader, &format!("{checked}/10.0.0.5:80")), json!("bad disk"));
    let off = agent.authorized().delete(&own);
    assert_eq!((off.status, &off.body["maintenance"]), (200, &json!(false)), "{}", off.text);
    poll("serving", || serving_all(&rt, &reader, &checked) == [true]);
    let state = agent.http().get("/v1/maintenance");
    assert_eq!(state.body["registrations"], json!([]), "{}", state.text);
    rt.block_on(reader.close());
}

#[test]
fn maintenance_changes_are_refused_while_the_agent_drains() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let reader = rt.block_on(ndsr::Registry::builder(&server).build()).unwrap();
    let root = unique_path("maint-drain");
    let node = format!("{root}/nd/10.0.0.1:80");
    let config = format!(
        "drain = \"60s\"\nroots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n\
         [[register]]\npath = \"{node}\"\ndata = {{ zone = \"a\" }}\n"
    );
    let agent = Agent::start(&server, &config);
    let nd = format!("{root}/nd");
    poll("registered", || serving(&rt, &reader, &nd) == Some(true));

    agent.running.signal(nix::sys::signal::Signal::SIGTERM);
    poll("draining", || agent.http().get("/v1/maintenance").body["draining"] == json!(true));
    let http = agent.authorized();
    let route = format!("/v1/maintenance{node}");
    for (what, answer) in [
        ("PUT /v1/maintenance", http.put("/v1/maintenance", "")),
        ("DELETE /v1/maintenance", http.delete("/v1/maintenance")),
        ("PUT /v1/maintenance/<path>", http.put(&route, r#"{"reason": "late"}"#)),
        ("DELETE /v1/maintenance/<path>", http.delete(&route)),
    ] {
        assert_eq!(
            (answer.status, &answer.body["code"]),
            (503, &json!("draining")),
            "{what}: {}",
            answer.text
        );
    }
    poll("the drain's mark, not the refused ones", || nd_reason(&rt, &reader, &node) == "draining");

    agent.running.signal(nix::sys::signal::Signal::SIGTERM);
    agent.running.line_where("stopped", |l| l.starts_with("ndsr agent stopped"));
    poll("gone", || serving(&rt, &reader, &nd).is_none());
    rt.block_on(reader.close());
}

/// A maintenance asked for while a reload replaces the registration (its
/// old hold ending, out of the agent's table meanwhile) is kept by the
/// new hold: never written behind its back, then overwritten unmarked.
#[test]
fn maintenance_asked_for_during_a_replacement_is_kept_by_the_new_hold() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let root = unique_path("maint-replace");
    let node = format!("{root}/nd/10.0.0.1:80");
    // The old hold spends most of its time in its check: a replacement
    // waits for it to end.
    let config = |zone: &str| {
        format!(
            "roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n\
             [[register]]\npath = \"{node}\"\ndata = {{ zone = \"{zone}\" }}\n\
             check_cmd = \"sleep 2\"\ninterval = \"3s\"\nrise = 1\nfall = 1\n"
        )
    };
    let agent = Agent::start(&server, &config("a"));
    let data = || -> serde_json::Value {
        match rt.block_on(client.get_data(&node)) {
            Ok((bytes, _)) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    };
    poll("registered", || data()["zone"] == json!("a"));
    let held = || agent.authorized().get("/v1/registrations").text.contains(&format!("\"{node}\""));
    // Replaced until the request lands while the replacement waits
    // (the old hold in its check, most of the time).
    let mut asked = None;
    for zone in ["b", "c", "d", "e", "f", "g"] {
        std::fs::write(&agent.config, config(zone)).unwrap();
        agent.running.signal(nix::sys::signal::Signal::SIGHUP);
        let deadline = std::time::Instant::now() + common::WAIT;
        let replacing = loop {
            if !held() {
                break true;
            }
            if data()["zone"] == json!(zone) {
                break false;
            }
            assert!(std::time::Instant::now() < deadline, "timed out waiting for the replacement");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        if replacing {
            let on = agent.authorized().put(&format!("/v1/maintenance{node}"), r#"{"reason": "mid-reload"}"#);
            assert!(on.status == 200 || on.status == 202, "{}", on.text);
            asked = Some(zone);
            break;
        }
        poll("the replacement done", held);
    }
    let zone = asked.expect("a maintenance request landed during a replacement");
    poll("the new hold's data, marked", || {
        let data = data();
        data["zone"] == json!(zone) && data["maintenance"] == json!("mid-reload")
    });
    let status = agent.authorized().get(&format!("/v1/registrations{node}"));
    assert_eq!(status.body["maintenance"]["by"], json!("path"), "{}", status.text);
}

/// The whole agent's maintenance of a nerve instance (withdrawn: its format
/// has no mark) answers once it is withdrawn, and its end once it is
/// registered again.
#[test]
fn the_whole_agent_maintenance_answers_once_a_nerve_instance_is_back() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let root = unique_path("maint-nerve");
    let nerve = format!("{root}/nerve");
    let config = format!(
        "roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n\
         [[register]]\npath = \"{nerve}/web\"\nas = \"nerve\"\nhost = \"10.0.0.4\"\nport = 80\n"
    );
    let agent = Agent::start(&server, &config);
    let members = || rt.block_on(client.list_children(&nerve)).unwrap_or_default();
    poll("registered", || members().len() == 1);
    for _ in 0..3 {
        let on = agent.authorized().put("/v1/maintenance", "");
        assert_eq!(on.status, 200, "{}", on.text);
        assert_eq!(members(), Vec::<String>::new(), "withdrawn before the answer");
        let off = agent.authorized().delete("/v1/maintenance");
        assert_eq!(off.status, 200, "{}", off.text);
        assert_eq!(members().len(), 1, "registered again before the answer");
        let status = agent.authorized().get(&format!("/v1/registrations{nerve}/web"));
        assert_eq!(status.body["state"], json!("registered"), "{}", status.text);
    }
}

/// A ServerSet registration whose check passes again, reloaded away while
/// the agent writes its member (the link to ZooKeeper slow), leaves no
/// member behind: the write finishes, then the member is removed.
#[test]
fn a_serverset_member_written_when_its_registration_is_reloaded_away_is_not_left_behind() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let proxy = ndsr_testkit::FaultProxy::start(&server).unwrap();
    let client = zk(&rt, &server);
    let root = unique_path("maint-seq-stop");
    let serverset = format!("{root}/ss");
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    std::fs::write(&up, "").unwrap();
    let base = format!("roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n");
    let config = format!(
        "{base}[[register]]\npath = \"{serverset}/api-0\"\nas = \"serverset\"\nhost = \"10.0.0.3\"\n\
         port = 80\ncheck_cmd = \"test -f '{}'\"\ninterval = \"100ms\"\nrise = 1\nfall = 1\n",
        up.display()
    );
    let agent = Agent::start(&proxy.connect_string(), &config);
    let members = || rt.block_on(client.list_children(&serverset)).unwrap_or_default();
    poll("registered", || members().len() == 1);
    std::fs::remove_file(&up).unwrap();
    poll("withdrawn by its check", || members().is_empty());
    // Every chunk late: the member is made well before the agent hears so.
    proxy.delay(std::time::Duration::from_millis(1500));
    std::fs::write(&up, "").unwrap();
    poll("made again", || members().len() == 1);
    std::fs::write(&agent.config, &base).unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGHUP);
    agent.running.line_where("the reload", |l| l.starts_with("reloaded"));
    proxy.delay(std::time::Duration::ZERO);
    assert_eq!(members(), Vec::<String>::new(), "no member left behind, owned by no one");
}

/// A nerve instance withheld by maintenance whose check then fails shows
/// `unhealthy`, not `maintenance`; it comes back once both are over.
#[test]
fn a_withheld_nerve_instance_whose_check_fails_shows_unhealthy() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let root = unique_path("maint-nerve-check");
    let nerve = format!("{root}/nerve");
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    std::fs::write(&up, "").unwrap();
    let config = format!(
        "roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n\
         [[register]]\npath = \"{nerve}/web\"\nas = \"nerve\"\nhost = \"10.0.0.4\"\nport = 80\n\
         check_cmd = \"test -f '{}'\"\ninterval = \"100ms\"\nrise = 1\nfall = 1\n",
        up.display()
    );
    let agent = Agent::start(&server, &config);
    let members = || rt.block_on(client.list_children(&nerve)).unwrap_or_default();
    let state = || agent.authorized().get(&format!("/v1/registrations{nerve}/web")).body["state"].clone();
    poll("registered", || members().len() == 1);
    assert_eq!(agent.authorized().put("/v1/maintenance", "").status, 200);
    assert_eq!(state(), json!("maintenance"));
    std::fs::remove_file(&up).unwrap();
    poll("unhealthy", || state() == json!("unhealthy"));
    assert_eq!(agent.authorized().delete("/v1/maintenance").status, 200);
    assert!(members().is_empty(), "not back while its check fails");
    std::fs::write(&up, "").unwrap();
    poll("back", || members().len() == 1 && state() == json!("registered"));
}
