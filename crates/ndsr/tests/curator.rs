//! The real Apache Curator 5.4.0 as the oracle for ndsr's Curator format:
//! what ndsr announces, Curator's `ServiceDiscovery` reads with every field
//! equal; what Curator registers, ndsr reads the same; Curator's
//! `ServiceCache` never sees ndsr's instance flap while ndsr reconnects;
//! an instance `Registry::set_maintenance` marks is disabled for Curator's
//! reader and never picked by its `ServiceProvider`, then picked again.
//!
//! Needs a JDK and Debian's `libcurator-discovery-java` and
//! `libcurator-recipes-java` (installed by `scripts/setup.sh`), or
//! `NDSR_CURATOR_JARS` naming a directory with Curator 5's jars and their
//! dependencies.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use ndsr::discovery::{CuratorInstance, CuratorPayload, Format, UriSpec};
use ndsr::Registry;
use ndsr_testkit::{eventually, unique_path, FaultProxy, ZkServer};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The compiled oracle's class path (compiled once per test binary).
fn classpath() -> &'static str {
    static CLASSPATH: OnceLock<String> = OnceLock::new();
    CLASSPATH.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("curator-oracle");
        ndsr_testkit::curator::compile_oracle(&out).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// A running oracle command; killed when dropped.
struct Oracle {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Oracle {
    fn start(args: &[&str]) -> Oracle {
        let mut child = tokio::process::Command::new("java")
            .arg("-cp")
            .arg(classpath())
            .arg("CuratorOracle")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("java");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Oracle { child, lines }
    }

    /// The next line, within the test deadline.
    async fn line(&mut self) -> String {
        let next = tokio::time::timeout(WAIT, self.lines.next_line()).await;
        next.expect("the oracle answers in time").unwrap().expect("the oracle printed a line")
    }

    /// Every line until the process exits.
    async fn rest(mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, self.lines.next_line()).await {
            lines.push(line);
        }
        let _ = self.child.wait().await;
        lines
    }

    /// Ends a command that runs until its stdin closes.
    fn finish(&mut self) {
        drop(self.child.stdin.take());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_reads_what_ndsr_announces() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let base = unique_path("curator-reads");
    let mut payload = serde_json::Map::new();
    payload.insert("zone".into(), json!("a"));
    let instance = CuratorInstance {
        ssl_port: Some(8443),
        payload: CuratorPayload::Json(Value::Object(payload)),
        uri_spec: Some(UriSpec::parse("{scheme}://{address}:{ssl-port}")),
        registration_time_utc: 1795859981132,
        ..CuratorInstance::new("web", "i-1", "10.0.0.1", 8080)
    };
    r.announce_curator(&base, &instance).await.unwrap();
    let drained = CuratorInstance { enabled: false, ..CuratorInstance::new("web", "i-2", "10.0.0.2", 8080) };
    r.announce_curator(&base, &drained).await.unwrap();

    let lines = Oracle::start(&["read", &server.connect_string(), &base, "web"]).rest().await;
    let read: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(read.len(), 3, "{lines:?}");
    let first = read.iter().find(|v| v["id"] == "i-1").expect("i-1 listed");
    assert_eq!(
        *first,
        json!({"name": "web", "id": "i-1", "address": "10.0.0.1", "port": 8080, "sslPort": 8443,
               "payload": {"zone": "a"}, "registrationTimeUTC": 1795859981132_i64, "serviceType": "DYNAMIC",
               "enabled": true, "uri": "https://10.0.0.1:8443"})
    );
    let second = read.iter().find(|v| v["id"] == "i-2").expect("i-2 listed");
    assert_eq!(second["enabled"], false, "Curator reads the drained instance as disabled");
    assert_eq!(read[2], json!({"picked": "i-1"}), "Curator's provider picks the enabled one only");
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndsr_reads_what_curator_registers() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let base = unique_path("curator-writes");
    let mut curator =
        Oracle::start(&["register", &server.connect_string(), &base, "web", "j-1", "10.0.0.5", "9090"]);
    assert_eq!(curator.line().await, "registered");
    let dir = format!("{base}/web");
    let listed = r.instances(&dir, None).await.unwrap();
    assert_eq!(listed.format, Some(Format::Curator));
    assert!(listed.bad.is_empty(), "{:?}", listed.bad);
    let j1 = &listed.instances[0];
    assert_eq!((j1.key.as_str(), j1.id.as_str(), j1.address()), ("j-1", "j-1", "10.0.0.5:9090".to_string()));
    assert_eq!((j1.ssl_port, j1.serving, j1.labels.get("zone").map(String::as_str)), (None, true, Some("a")));
    assert_eq!(j1.data["serviceType"], "DYNAMIC");

    // Curator leaves: ndsr's listing follows.
    curator.finish();
    eventually(WAIT, "the instance gone", || async {
        r.instances(&dir, None).await.is_ok_and(|l| l.instances.is_empty())
    })
    .await
    .unwrap();
    r.close().await;
}

/// Curator re-registers by delete + create on every reconnect
/// (CURATOR-320), so every cache watching sees the instance vanish and
/// return. ndsr's reconnect leaves the node alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curators_cache_never_sees_ndsrs_instance_flap_while_ndsr_reconnects() {
    let server = ZkServer::shared();
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    init_logs();
    let r = Registry::builder(&proxy.connect_string())
        .session_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(20))
        .build()
        .await
        .unwrap();
    let zk = other(&server.connect_string()).await;
    let base = unique_path("curator-flap");
    let path =
        r.announce_curator(&base, &CuratorInstance::new("web", "i-1", "10.0.0.1", 8080)).await.unwrap();
    let czxid = zk.check_stat(&path).await.unwrap().unwrap().czxid;
    let mut cache = Oracle::start(&["cache", &server.connect_string(), &base, "web"]);
    assert_eq!(cache.line().await, r#"{"ids":["i-1"]}"#);

    proxy.cut();
    eventually(WAIT, "ndsr disconnected", || async { r.state() == ndsr::State::Disconnected }).await.unwrap();
    proxy.heal();
    eventually(WAIT, "ndsr reconnected", || async { r.state() == ndsr::State::Connected }).await.unwrap();
    // A marker after ndsr's reconnect: the cache's next line must be the
    // marker's arrival, with our instance never gone in between.
    let marker = CuratorInstance::new("web", "m-1", "10.0.0.9", 1);
    let created = zk
        .create(
            &format!("{base}/web/m-1"),
            &marker.encode(),
            &zookeeper_client::CreateMode::Ephemeral.with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await;
    created.unwrap();
    assert_eq!(cache.line().await, r#"{"ids":["i-1","m-1"]}"#, "our instance stayed through the reconnect");
    assert_eq!(zk.check_stat(&path).await.unwrap().unwrap().czxid, czxid, "the same node, never re-created");
    cache.finish();
    let rest = cache.rest().await;
    assert!(rest.iter().all(|l| l.contains("i-1")), "{rest:?}");
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_reads_a_sequential_instance_and_a_typed_payload() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let base = unique_path("curator-sequential");
    let mut fields = serde_json::Map::new();
    fields.insert("zone".into(), json!("b"));
    let sequential = CuratorInstance {
        service_type: ndsr::discovery::ServiceType::DynamicSequential,
        payload: CuratorPayload::Typed { class: "java.util.LinkedHashMap".into(), fields },
        ..CuratorInstance::new("web", "seq-", "10.0.0.3", 8080)
    };
    let path = r.announce_curator(&base, &sequential).await.unwrap();
    let name = path.rsplit('/').next().unwrap();
    assert!(name.starts_with("seq-") && name.len() == "seq-".len() + 10, "{path}");

    let lines = Oracle::start(&["read", &server.connect_string(), &base, "web"]).rest().await;
    let read: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(read.len(), 2, "{lines:?}");
    assert_eq!(read[0]["id"], "seq-", "the JSON id, as Curator writes it for a sequential instance");
    assert_eq!(read[0]["serviceType"], "DYNAMIC_SEQUENTIAL");
    assert_eq!(read[0]["payload"], json!({"zone": "b"}), "the typed map payload, as Curator reads it");
    assert_eq!(read[1], json!({"picked": "seq-"}));
    r.close().await;
}

/// What Curator's own reader makes of `<base>/web`: each instance's
/// `enabled` as `ServiceDiscovery.queryForInstances` reads it, and the ids
/// of `PICKS` round-robin `ServiceProvider.getInstance` calls (`None`: it
/// found no instance to give).
async fn curator_view(connect: &str, base: &str) -> (BTreeMap<String, bool>, Vec<Option<String>>) {
    const PICKS: usize = 4;
    let lines = Oracle::start(&["read", connect, base, "web", &PICKS.to_string()]).rest().await;
    let mut enabled = BTreeMap::new();
    let mut picks = Vec::new();
    for line in &lines {
        let read: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        match read.get("picked") {
            Some(picked) => picks.push(picked.as_str().map(String::from)),
            None => {
                let id = read["id"].as_str().unwrap_or_else(|| panic!("{line}")).to_string();
                enabled.insert(id, read["enabled"].as_bool().unwrap_or_else(|| panic!("{line}")));
            }
        }
    }
    assert_eq!(picks.len(), PICKS, "{lines:?}");
    (enabled, picks)
}

/// `Registry::set_maintenance` on Curator instances, read back by
/// Curator's own `ServiceDiscovery` and `ServiceProvider`: one in Curator's
/// bytes from ndsr's `CuratorInstance` (an ephemeral node of a plain
/// client: a node an ndsr registry holds is written back by its holder),
/// one registered by Curator itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curators_provider_never_picks_an_instance_ndsr_puts_in_maintenance() {
    let server = ZkServer::shared();
    let connect = server.connect_string();
    let r = registry(&connect).await;
    let zk = other(&connect).await;
    let base = unique_path("curator-maintenance");
    let instance = CuratorInstance {
        registration_time_utc: 1795859981132,
        ..CuratorInstance::new("web", "i-1", "10.0.0.1", 8080)
    };
    let i1 = format!("{base}/web/i-1");
    create(&zk, &i1, &instance.encode(), zookeeper_client::CreateMode::Ephemeral).await;
    let mut curator = Oracle::start(&["register", &connect, &base, "web", "j-1", "10.0.0.5", "9090"]);
    assert_eq!(curator.line().await, "registered");
    let j1 = format!("{base}/web/j-1");
    let j1_bytes = zk.get_data(&j1).await.unwrap().0;

    let both = |i: bool, j: bool| BTreeMap::from([("i-1".to_string(), i), ("j-1".to_string(), j)]);
    let picked = |picks: &[Option<String>]| picks.iter().cloned().collect::<BTreeSet<_>>();
    let only = |id: Option<&str>| BTreeSet::from([id.map(String::from)]);
    // Both serving: round robin gives each in turn.
    let (enabled, picks) = curator_view(&connect, &base).await;
    assert_eq!(enabled, both(true, true));
    assert_eq!(picked(&picks), BTreeSet::from([Some("i-1".into()), Some("j-1".into())]), "{picks:?}");

    // i-1 in maintenance: disabled for Curator, never picked.
    let marked = r.set_maintenance(&i1, true, Some("deploy")).await.unwrap();
    assert_eq!(marked, Format::Curator);
    let data: Value = serde_json::from_slice(&zk.get_data(&i1).await.unwrap().0).unwrap();
    let mut expected: Value = serde_json::from_slice(&instance.encode()).unwrap();
    expected["enabled"] = json!(false);
    assert_eq!(data, expected, "only `enabled` changed");
    let (enabled, picks) = curator_view(&connect, &base).await;
    assert_eq!((enabled, picked(&picks)), (both(false, true), only(Some("j-1"))), "{picks:?}");

    // Curator's own registration too: nothing left to pick.
    assert_eq!(r.set_maintenance(&j1, true, None).await.unwrap(), Format::Curator);
    let (enabled, picks) = curator_view(&connect, &base).await;
    assert_eq!((enabled, picked(&picks)), (both(false, false), only(None)), "{picks:?}");

    // Out of maintenance: i-1's bytes are back as ndsr encoded them, and
    // Curator picks it again (and only it while j-1 stays disabled).
    assert_eq!(r.set_maintenance(&i1, false, None).await.unwrap(), Format::Curator);
    assert_eq!(zk.get_data(&i1).await.unwrap().0, instance.encode(), "back byte for byte");
    let (enabled, picks) = curator_view(&connect, &base).await;
    assert_eq!((enabled, picked(&picks)), (both(true, false), only(Some("i-1"))), "{picks:?}");
    assert_eq!(r.set_maintenance(&j1, false, None).await.unwrap(), Format::Curator);
    let (enabled, picks) = curator_view(&connect, &base).await;
    assert_eq!(enabled, both(true, true));
    assert_eq!(picked(&picks), BTreeSet::from([Some("i-1".into()), Some("j-1".into())]), "{picks:?}");
    assert_eq!(zk.get_data(&j1).await.unwrap().0, j1_bytes, "Curator's own bytes back byte for byte");
    curator.finish();
    r.close().await;
}
