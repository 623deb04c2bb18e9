//! `ndsr agent`'s canary routes (issue 25, item 5) against a real
//! ZooKeeper: an agent whose labels a canary picks answers the canary's
//! value on a plain GET (said so), `GET <path>/canary` counts the library
//! clients following the path, promote and abort over POST, and bad
//! canaries refused with the agent's error codes.

mod common;

use common::agent::{Agent, TOKEN};
use common::*;
use ndsr::Registry;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::{json, Value};

#[test]
fn an_agent_picked_by_a_canary_serves_it_and_promotes_it() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-canary");
    let path = format!("{root}/web");
    let route = format!("/v1/config{path}");
    let config = format!(
        "roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n[config]\nidentity = \"agent-1\"\nlabels = {{ zone = \"a\" }}\n"
    );
    let agent = Agent::start(&server, &config);
    let (http, admin) = (agent.http(), agent.authorized());

    assert_eq!(admin.post(&route, r#"{"pool": 1}"#).status, 200);
    // Not a configuration path with releases: an ordinary node path.
    assert_eq!(http.get(&format!("/v1/config{root}/other/canary")).status, 404);
    let refused = admin.post(&format!("{route}/canary?percent=150"), r#"{"pool": 2}"#);
    assert_eq!((refused.status, &refused.body["code"]), (400, &json!("bad_request")), "{}", refused.text);
    let refused = admin.post(&format!("{route}/canary?percent=5&hosts=a"), r#"{"pool": 2}"#);
    assert_eq!(refused.status, 400, "{}", refused.text);
    let none = admin.post(&format!("{route}/canary?promote"), "");
    assert_eq!((none.status, &none.body["code"]), (404, &json!("no_canary")), "{}", none.text);
    assert_eq!(http.post(&format!("{route}/canary?labels=zone=a"), r#"{"pool": 2}"#).status, 401);

    // A library client in zone b follows the path.
    let (_b, in_b) = rt.block_on(async {
        let b = Registry::builder(&server).identity("lib-b").label("zone", "b").build().await.unwrap();
        let config = b.config::<Value>(&path).build().await.unwrap();
        (b, config)
    });

    let started = admin.post(&format!("{route}/canary?labels=zone=a&message=try"), r#"{"pool": 2}"#);
    assert_eq!(started.status, 200, "{}", started.text);
    assert_eq!(
        (&started.body["rule"], &started.body["value"]),
        (&json!({"labels": {"zone": "a"}}), &json!({"pool": 2}))
    );
    poll("the agent serves the canary", || http.get(&route).body["value"] == json!({"pool": 2}));
    let read = http.get(&route);
    assert_eq!(
        (&read.body["version"], &read.body["canary"]["base_version"]),
        (&json!(0), &json!(0)),
        "{}",
        read.text
    );
    let exact = http.get(&format!("{route}?release=1"));
    assert_eq!(exact.body["value"], json!({"pool": 1}), "release=1 is the live value: {}", exact.text);
    assert_eq!(in_b.get()["pool"], json!(1), "zone b is not picked");
    poll("the zone b client reports", || {
        http.get(&format!("{route}/canary")).body["counts"]["clients"] == json!(1)
    });
    let status = http.get(&format!("{route}/canary"));
    assert_eq!(status.body["counts"]["on_stable"], json!(1), "{}", status.text);
    assert_eq!(status.body["canary"]["message"], json!("try"));

    let promoted = admin.post(&format!("{route}/canary?promote"), "");
    assert_eq!(
        (promoted.status, &promoted.body["op"], &promoted.body["version"]),
        (200, &json!("promote"), &json!(1)),
        "{}",
        promoted.text
    );
    poll("zone b runs the promoted value", || in_b.get()["pool"] == json!(2));
    poll("the agent serves the live value, no canary", || {
        let read = http.get(&route);
        read.body["version"] == json!(1) && read.body.get("canary").is_none()
    });
    let aborted = admin.post(&format!("{route}/canary?abort"), "");
    assert_eq!((aborted.status, &aborted.body["aborted"]), (200, &json!(false)), "{}", aborted.text);
}
