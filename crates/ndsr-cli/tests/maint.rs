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
