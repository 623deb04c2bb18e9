//! `ndsr mirror` against two real ZooKeeper servers: `--once` copies a
//! tree and exits 0 (and finds nothing to do the second time); bad input
//! and a missing source have their exit codes; running, it follows
//! changes and registrations and exits 0 on SIGTERM. (The engine's own
//! tests, a 10,000-node tree and restarts, are in ndsr-agent's.)

mod common;

use serde_json::json;

use common::*;
use ndsr_testkit::ZkServer;
use zookeeper_client::{Acls, Client, CreateMode};

fn put(rt: &tokio::runtime::Runtime, zk: &Client, path: &str, bytes: &[u8]) {
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    rt.block_on(zk.mkdir(path.rsplit_once('/').unwrap().0, &options)).ok();
    rt.block_on(zk.create(path, bytes, &options)).unwrap();
}

fn data(rt: &tokio::runtime::Runtime, zk: &Client, path: &str) -> Option<(Vec<u8>, i64)> {
    match rt.block_on(zk.get_data(path)) {
        Ok((bytes, stat)) => Some((bytes, stat.ephemeral_owner)),
        Err(zookeeper_client::Error::NoNode) => None,
        Err(e) => panic!("{path}: {e}"),
    }
}

fn mirror(server: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = ndsr(server, &[&["mirror"], args].concat());
    cmd.env_remove("NDSR_CONFIG_ROOT");
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn once_copies_the_tree_and_then_finds_nothing_to_do() {
    let (a, b) = (ZkServer::new().unwrap(), ZkServer::new().unwrap());
    let rt = runtime();
    let (src, dst) = (zk(&rt, &a.connect_string()), zk(&rt, &b.connect_string()));
    put(&rt, &src, "/app/config/web", b"{\"replicas\":2}");
    put(&rt, &src, "/app/blob", &[0xff, 0x00, 0x7f]);
    put(&rt, &src, "/ndsr/history/app/x", b"history");
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    rt.block_on(src.create("/app/config/web-1", b"reg", &ephemeral)).unwrap();
    put(&rt, &dst, "/copy/app/stale/child", b"x");
    put(&rt, &dst, "/copy/app/blob", b"old");

    let (s, d) = (format!("{}:/", a.connect_string()), format!("{}:/copy", b.connect_string()));
    let (code, out, err) = mirror(&s, &[&s, &d, "--once"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("5 nodes: 2 created, 1 updated, 2 deleted"), "{out}");
    assert!(out.contains("; caught up in "), "{out}");
    assert_eq!(data(&rt, &dst, "/copy/app/config/web"), Some((b"{\"replicas\":2}".to_vec(), 0)));
    assert_eq!(data(&rt, &dst, "/copy/app/blob"), Some((vec![0xff, 0x00, 0x7f], 0)));
    assert_eq!(data(&rt, &dst, "/copy/app/stale"), None, "deleted with its child");
    assert_eq!(data(&rt, &dst, "/copy/app/config/web-1"), None, "registrations only with --registrations");
    assert_eq!(data(&rt, &dst, "/copy/ndsr"), None, "the history root is left out");
    assert_eq!(data(&rt, &dst, "/copy/zookeeper"), None, "ZooKeeper's own tree is left out");

    let (code, out, err) = mirror(&s, &[&s, &d, "--once"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("5 nodes: 0 created, 0 updated, 0 deleted; equal"), "{out}");
}

#[test]
fn bad_input_and_a_missing_source_have_their_exit_codes() {
    let a = ZkServer::shared();
    let s = format!("{}:/mirror-nothing-here", a.connect_string());
    let d = format!("{}:/mirror-dst", a.connect_string());
    let (code, _, err) = mirror(&s, &["zk1:2181/app", &d, "--once"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("SRC: \"zk1:2181/app\" has no path"), "{err}");
    let (code, _, err) = mirror(&s, &[&s, "a:1,,b:2:/x", "--once"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("DST: \"a:1,,b:2:/x\" has an empty server"), "{err}");
    let (code, _, err) = mirror(&s, &[&s, &format!("{}:/a//b", a.connect_string()), "--once"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("the path"), "{err}");
    let (code, _, err) = mirror(&s, &[&s, &d, "--once", "--interval", "0s"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = mirror(&s, &[&s, &d, "--once", "--readonly"]);
    assert_eq!(code, 6, "{err}");
    let (code, out, err) = mirror(&s, &[&s, &d, "--once"]);
    assert_eq!(code, 10, "{out}{err}");
    assert!(err.contains("the source path does not exist; nothing written"), "{err}");
    let (code, _, err) = mirror(&s, &["127.0.0.1:1:/x", &d, "--once", "--timeout", "1s"]);
    assert_eq!(code, 4, "{err}");
}

#[test]
fn running_it_follows_changes_and_registrations_and_exits_0_on_sigterm() {
    let (a, b) = (ZkServer::new().unwrap(), ZkServer::new().unwrap());
    let rt = runtime();
    let (src, dst) = (zk(&rt, &a.connect_string()), zk(&rt, &b.connect_string()));
    put(&rt, &src, "/svc/config", b"1");
    let (s, d) = (format!("{}:/svc", a.connect_string()), format!("{}:/svc", b.connect_string()));
    let running = Running::start(&s, &["mirror", &s, &d, "--registrations", "--interval", "1s"]);
    running.line_where("the first pass", |l| l.contains("2 nodes: 2 created"));
    assert_eq!(data(&rt, &dst, "/svc/config"), Some((b"1".to_vec(), 0)));

    rt.block_on(src.set_data("/svc/config", b"2", None)).unwrap();
    running.line_where("the update", |l| l.contains("1 updated"));
    assert_eq!(data(&rt, &dst, "/svc/config"), Some((b"2".to_vec(), 0)));

    put(&rt, &src, "/svc/web/dir", b"");
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    rt.block_on(src.create("/svc/web/10.0.0.1:80", b"up", &ephemeral)).unwrap();
    poll("the registration on DST", || {
        data(&rt, &dst, "/svc/web/10.0.0.1:80").is_some_and(|(bytes, owner)| bytes == b"up" && owner != 0)
    });
    rt.block_on(src.delete("/svc/web/10.0.0.1:80", None)).unwrap();
    poll("the registration gone from DST", || data(&rt, &dst, "/svc/web/10.0.0.1:80").is_none());

    rt.block_on(src.create("/svc/web/10.0.0.2:80", b"up", &ephemeral)).unwrap();
    poll("another registration on DST", || data(&rt, &dst, "/svc/web/10.0.0.2:80").is_some());
    running.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(running.wait(), 0);
    assert_eq!(data(&rt, &dst, "/svc/web/10.0.0.2:80"), None, "the mirror's session ended with it");
    assert_eq!(data(&rt, &dst, "/svc/web/dir"), Some((Vec::new(), 0)), "persistent nodes stay");
}

#[test]
fn the_agent_runs_its_mirrors_with_their_lag_as_metrics() {
    let (a, b) = (ZkServer::new().unwrap(), ZkServer::new().unwrap());
    let rt = runtime();
    let (src, dst) = (zk(&rt, &a.connect_string()), zk(&rt, &b.connect_string()));
    put(&rt, &src, "/m/config", b"{\"v\":1}");
    let config = format!(
        "roots = [\"/m\"]\n\n[[mirror]]\nname = \"dc2\"\nsource = \"{}:/m\"\ndestination = \"{}:/m\"\n\
         registrations = true\ninterval = \"1s\"\n",
        a.connect_string(),
        b.connect_string()
    );
    let agent = common::agent::Agent::start(&a.connect_string(), &config);
    poll("the tree on DST", || data(&rt, &dst, "/m/config").is_some());
    rt.block_on(src.set_data("/m/config", b"{\"v\":2}", None)).unwrap();
    poll("the change on DST", || data(&rt, &dst, "/m/config") == Some((b"{\"v\":2}".to_vec(), 0)));
    poll("the metrics say converged", || {
        let text = agent.http().get("/metrics").text;
        text.lines().any(|l| l == "ndsr_mirror_lag_seconds{mirror=\"dc2\"} 0")
            && text.lines().any(|l| l == "ndsr_mirror_nodes_behind{mirror=\"dc2\"} 0")
    });
    // The dashboard's model says the same.
    let model = agent.http().get("/v1/agent").body;
    let mirror = &model["mirrors"][0];
    assert_eq!(
        (&mirror["name"], &mirror["nodes_behind"], &mirror["lag_seconds"]),
        (&json!("dc2"), &json!(0), &json!(0.0)),
        "{model}"
    );
    assert_eq!(mirror["source"], json!(format!("{}:/m", a.connect_string())));
    assert!(mirror["passes"].as_u64().unwrap() >= 1 && mirror["error"].is_null(), "{mirror}");
    drop(agent);
}

#[test]
fn it_rides_out_a_destination_that_is_down_at_the_start() {
    let (a, b) = (ZkServer::new().unwrap(), ZkServer::new().unwrap());
    let rt = runtime();
    let src = zk(&rt, &a.connect_string());
    put(&rt, &src, "/late/x", b"1");
    b.stop().unwrap();
    let (s, d) = (format!("{}:/late", a.connect_string()), format!("{}:/late", b.connect_string()));
    let running = Running::start(&s, &["mirror", &s, &d, "--interval", "1s", "--timeout", "2s"]);
    running.error_where("the failure", |l| l.contains("ndsr: mirror pass failed ("));
    b.start().unwrap();
    running.error_where("the recovery", |l| l.contains("ndsr: mirror passes succeed again"));
    running.line_where("the copy", |l| l.contains("2 nodes: 2 created") && l.contains("caught up in"));
    let dst = zk(&rt, &b.connect_string());
    assert_eq!(data(&rt, &dst, "/late/x"), Some((b"1".to_vec(), 0)));
    running.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(running.wait(), 0);
}
