//! `GET /v1/elections/<path>` of `ndsr agent` against a real ZooKeeper:
//! the leader and contenders of an election the agent does not join, a
//! blocking query and the event stream following a resignation, a path
//! with none, a path of two layouts, bad requests, and the stream's
//! failure event while ZooKeeper is down.

mod common;

use common::agent::{event_where, Agent, TOKEN};
use common::*;
use ndsr::election::ElectionLayout;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::json;

fn registry(rt: &tokio::runtime::Runtime, server: &str) -> ndsr::Registry {
    rt.block_on(ndsr::Registry::builder(server).build()).unwrap()
}

fn join(
    rt: &tokio::runtime::Runtime,
    registry: &ndsr::Registry,
    path: &str,
    id: &str,
) -> ndsr::election::Election {
    rt.block_on(registry.election(path, id).layout(ElectionLayout::Kazoo).join()).unwrap()
}

#[test]
fn the_leader_and_contenders_of_a_kazoo_election_and_the_next_leader_after_a_resignation() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-elect");
    let path = format!("{root}/cron");
    let (one, two) = (registry(&rt, &server), registry(&rt, &server));
    let a = join(&rt, &one, &path, "host-a");
    let b = join(&rt, &two, &path, "host-b");
    let agent = Agent::start(&server, &format!("roots = [\"{root}\"]\n"));
    let http = agent.http();

    let got = http.get(&format!("/v1/elections{path}"));
    assert_eq!(got.status, 200, "{}", got.text);
    let body = &got.body;
    assert_eq!(body["path"], path);
    assert_eq!(body["layouts"], json!(["kazoo"]));
    let contenders = body["contenders"].as_array().unwrap();
    let ids: Vec<&str> = contenders.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["host-a", "host-b"], "leader first: {body}");
    assert_eq!(body["leader"], contenders[0]);
    for c in contenders {
        assert_eq!(c["layout"], "kazoo");
        let node = c["node"].as_str().unwrap();
        let (head, digits) = node.rsplit_once("__lock__").expect("kazoo's name");
        assert_eq!(head.len(), 32, "{node}");
        assert_eq!(c["sequence"], digits.parse::<i64>().unwrap(), "{node}");
    }
    assert!(contenders[0]["sequence"].as_i64() < contenders[1]["sequence"].as_i64());
    let index = got.index.expect("an X-Ndsr-Index header");
    assert_eq!(body["index"], index);
    // What the library's own reader says, node for node.
    let library = rt.block_on(ndsr::election::contenders(&one, &path, ElectionLayout::Kazoo)).unwrap();
    let nodes: Vec<&str> = library.iter().map(|c| c.node.as_str()).collect();
    assert_eq!(nodes, contenders.iter().map(|c| c["node"].as_str().unwrap()).collect::<Vec<_>>());

    // The leader resigns: a blocking query and the stream both see the next.
    let events = http.events(&format!("/v1/elections{path}?stream"));
    let first = event_where(&events, "the first leader", |e| e["leader"]["id"] == "host-a");
    assert_eq!(first["contenders"].as_array().unwrap().len(), 2, "{first}");
    let blocked = {
        let url = format!("/v1/elections{path}?index={index}&wait=30s");
        let http = agent.http();
        std::thread::spawn(move || http.get(&url))
    };
    rt.block_on(a.resign());
    let next = event_where(&events, "the next leader", |e| e["leader"]["id"] == "host-b");
    assert_eq!(next["contenders"].as_array().unwrap().len(), 1, "{next}");
    assert_eq!(next["layouts"], json!(["kazoo"]));
    let answered = blocked.join().unwrap();
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert!(answered.index.unwrap() > index, "{}", answered.text);
    assert_eq!(answered.body["leader"]["id"], "host-b", "{}", answered.text);

    // The last one goes: no leader, no contenders, still a 200.
    rt.block_on(b.resign());
    let none = event_where(&events, "no contender", |e| e["contenders"] == json!([]));
    assert_eq!((&none["leader"], &none["layouts"]), (&json!(null), &json!([])), "{none}");
}

#[test]
fn a_path_without_contenders_is_an_empty_election_and_two_layouts_have_no_leader() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-elect-empty");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_data(&format!("{root}/plain/child"), json!({"not": "a contender"}))).unwrap();
    let agent = Agent::start(&server, &format!("roots = [\"{root}\"]\n"));
    let http = agent.http();
    for path in [format!("{root}/plain"), format!("{root}/missing")] {
        let got = http.get(&format!("/v1/elections{path}"));
        assert_eq!(got.status, 200, "{path}: {}", got.text);
        assert_eq!(got.body["contenders"], json!([]), "{path}");
        assert_eq!(got.body["layouts"], json!([]), "{path}");
        assert_eq!(got.body["leader"], json!(null), "{path}");
    }

    // A kazoo contender and a Curator latch's node in one path: both listed,
    // by sequence, and no leader (their clients disagree on who leads).
    let path = format!("{root}/mixed");
    let kazoo = join(&rt, &writer, &path, "k");
    let zk = rt.block_on(zookeeper_client::Client::connect(&server)).unwrap();
    let latch =
        zookeeper_client::CreateMode::EphemeralSequential.with_acls(zookeeper_client::Acls::anyone_all());
    let name = format!("{path}/_c_8b8a2d6e-8a7e-4b7c-9c5e-3d2f1a0b9c8d-latch-");
    rt.block_on(zk.create(&name, b"curator", &latch)).unwrap();
    let got = http.get(&format!("/v1/elections{path}"));
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["layouts"], json!(["kazoo", "curator-latch"]), "{}", got.text);
    assert_eq!(got.body["leader"], json!(null), "{}", got.text);
    let ids: Vec<&str> =
        got.body["contenders"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["k", "curator"]);
    drop(kazoo);
}

#[test]
fn bad_election_requests_are_refused_with_a_message() {
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-elect-bad");
    let agent = Agent::start(&server, &format!("roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n"));
    let http = agent.http();

    let trailing = http.get(&format!("/v1/elections{root}/e/"));
    assert_eq!((trailing.status, &trailing.body["code"]), (400, &json!("bad_request")), "{}", trailing.text);
    assert!(trailing.body["error"].as_str().unwrap().contains(&format!("{root}/e/")), "{}", trailing.text);

    let dots = http.get(&format!("/v1/elections{root}/../e"));
    assert_eq!(dots.status, 400, "{}", dots.text);

    let flag = http.get(&format!("/v1/elections{root}/e?stream=yes"));
    assert_eq!(flag.status, 400, "{}", flag.text);
    assert_eq!(flag.body["error"], "stream=\"yes\": give stream, stream=1 or stream=0");

    let both = http.get(&format!("/v1/elections{root}/e?stream&index=3"));
    assert_eq!(both.status, 400, "{}", both.text);
    assert_eq!(both.body["error"], "stream takes no index or wait: it sends every change");

    let unknown = http.get(&format!("/v1/elections{root}/e?format=json"));
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert!(unknown.body["error"].as_str().unwrap().contains("format"), "{}", unknown.text);

    let outside = http.get("/v1/elections/elsewhere/e");
    assert_eq!((outside.status, &outside.body["code"]), (403, &json!("outside_roots")), "{}", outside.text);

    // Read-only: the route takes no write, even with the token.
    let post = agent.authorized().post(&format!("/v1/elections{root}/e"), "");
    assert_eq!((post.status, &post.body["code"]), (405, &json!("method_not_allowed")), "{}", post.text);
}

#[test]
fn the_stream_says_when_the_election_cannot_be_read_and_reads_it_again_after() {
    let rt = runtime();
    let zk = ZkServer::new().unwrap();
    let server = zk.connect_string();
    let root = unique_path("agent-elect-down");
    let path = format!("{root}/cron");
    let contender = registry(&rt, &server);
    let _a = join(&rt, &contender, &path, "host-a");
    let config = format!("roots = [\"{root}\"]\n[zookeeper]\nsession_timeout = \"4s\"\n");
    let agent = Agent::start(&server, &config);
    let events = agent.http().events(&format!("/v1/elections{path}?stream"));
    event_where(&events, "the leader", |e| e["leader"]["id"] == "host-a");

    zk.stop().unwrap();
    let failure = event_where(&events, "a failure", |e| e.get("error").is_some());
    // No connection, or the read's connection reset as the server went.
    assert!(["unavailable", "zookeeper"].contains(&failure["code"].as_str().unwrap()), "{failure}");
    assert!(!failure["error"].as_str().unwrap().is_empty(), "{failure}");

    zk.start().unwrap();
    let back = event_where(&events, "the leader again", |e| e["leader"]["id"] == "host-a");
    assert_eq!(back["layouts"], json!(["kazoo"]), "{back}");
}
