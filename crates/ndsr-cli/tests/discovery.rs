//! `ndsr register --as`, `ndsr get --instances` and `ndsr pick` against a
//! real ZooKeeper.

mod common;

use common::*;
use ndsr_testkit::{unique_path, ZkServer};

#[test]
fn a_serverset_member_is_held_listed_picked_and_removed() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let dir = unique_path("cli-serverset");
    let register = Running::start(
        &server,
        &[
            "register",
            &dir,
            "--as",
            "serverset",
            "--host",
            "10.0.0.1",
            "--port",
            "8080",
            "--shard",
            "2",
            "--endpoint",
            "admin=10.0.0.1:9990",
        ],
    );
    let line = register.line_where("registered", |l| l.starts_with("registered"));
    let path = line.trim_start_matches("registered ").to_string();
    assert!(path.starts_with(&format!("{dir}/member_")), "{line}");

    let (code, out, err) = run(&server, &["get", &dir, "--instances", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let listing: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listing["format"], "serverset");
    assert_eq!(listing["instances"][0]["address"], "10.0.0.1:8080");
    assert_eq!(listing["instances"][0]["shard"], 2);

    let (code, out, _) = run(&server, &["pick", &dir]);
    assert_eq!((code, out.trim()), (0, "10.0.0.1:8080"));
    let (code, out, _) = run(&server, &["pick", &dir, "--endpoint", "admin"]);
    assert_eq!((code, out.trim()), (0, "10.0.0.1:9990"));

    register.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(register.wait(), 0);
    assert!(rt.block_on(client.check_stat(&path)).unwrap().is_none(), "removed at once");
    let (code, _, err) = run(&server, &["pick", &dir]);
    assert_eq!(code, 11, "no instance: {err}");
    assert!(err.contains("no instances"), "{err}");
}

#[test]
fn a_curator_instance_is_held_and_filters_choose_among_instances() {
    let server = ZkServer::shared().connect_string();
    let base = unique_path("cli-curator");
    let a = Running::start(
        &server,
        &[
            "register", &base, "--as", "curator", "--name", "web", "--id", "a", "--host", "10.0.0.1",
            "--port", "80", "--label", "zone=a",
        ],
    );
    a.line_where("registered a", |l| l.starts_with("registered"));
    let b = Running::start(
        &server,
        &[
            "register", &base, "--as", "curator", "--name", "web", "--id", "b", "--host", "10.0.0.2",
            "--port", "80", "--label", "zone=b",
        ],
    );
    b.line_where("registered b", |l| l.starts_with("registered"));
    let dir = format!("{base}/web");
    for _ in 0..5 {
        let (code, out, _) = run(&server, &["pick", &dir, "--label", "zone=b"]);
        assert_eq!((code, out.trim()), (0, "10.0.0.2:80"));
        let (_, out, _) = run(&server, &["pick", &dir, "--prefer", "zone=a", "--strategy", "weighted"]);
        assert_eq!(out.trim(), "10.0.0.1:80");
    }
    let (code, _, err) = run(&server, &["pick", &dir, "--label", "zone=c"]);
    assert_eq!(code, 11, "{err}");
    let (code, _, err) = run(&server, &["register", &base, "--as", "curator", "--host", "h", "--port", "1"]);
    assert_eq!(code, 3, "--name is required: {err}");
    assert!(err.contains("--name"), "{err}");
    for running in [a, b] {
        running.signal(nix::sys::signal::Signal::SIGTERM);
        assert_eq!(running.wait(), 0);
    }
}

#[test]
fn watch_instances_prints_each_change() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let client = zk(&rt, &server);
    let dir = unique_path("cli-watch-instances");
    let opts = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    rt.block_on(client.mkdir(&dir, &opts)).unwrap();
    let nerve = |name: &str| ndsr::discovery::NerveInstance::new(name, "10.0.0.1", 80).encode();
    rt.block_on(client.create(&format!("{dir}/a_0000000001"), &nerve("a"), &opts)).unwrap();
    let watch = Running::start(&server, &["watch", &dir, "--instances", "--format", "json"]);
    let first: serde_json::Value =
        serde_json::from_str(&watch.line_where("the first list", |l| l.contains("a_0000000001"))).unwrap();
    assert_eq!(
        (first["format"].as_str(), first["added"].clone()),
        (Some("nerve"), serde_json::json!(["a_0000000001"]))
    );
    rt.block_on(client.create(&format!("{dir}/b_0000000002"), &nerve("b"), &opts)).unwrap();
    let added: serde_json::Value =
        serde_json::from_str(&watch.line_where("b added", |l| l.contains("\"added\":[\"b_0000000002\"]")))
            .unwrap();
    assert_eq!(added["instances"].as_array().map(Vec::len), Some(2));
    rt.block_on(client.delete(&format!("{dir}/a_0000000001"), None)).unwrap();
    watch.line_where("a removed", |l| l.contains("\"removed\":[\"a_0000000001\"]"));
    watch.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(watch.wait(), 0);
}
