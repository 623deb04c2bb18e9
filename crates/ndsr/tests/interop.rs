//! Scenarios 25-26: a Rust and a Python fleet share one ZooKeeper.
//!
//! Drives the Python original, `nd_service_registry` 1.1.0, through
//! `tests/interop/original.py` in the venv that `scripts/setup.sh` makes
//! (`.venv` at the workspace root, or `NDSR_INTEROP_PYTHON`).

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use ndsr::Error;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("NDSR_INTEROP_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "the Python original is not installed: run scripts/setup.sh (it makes .venv with nd-service-registry==1.1.0)"
    );
    venv
}

/// A running `original.py`: its first output line, and its stdin held open
/// (closing it ends the script and its session).
struct Original {
    child: Child,
    first_line: String,
}

impl Original {
    async fn start(server: &str, args: &[&str]) -> Original {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/original.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(server)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the Python original");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first_line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("the Python original answers")
            .unwrap()
            .expect("a line of output");
        Original { child, first_line }
    }

    async fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = tokio::time::timeout(WAIT, self.child.wait()).await.expect("the script exits").unwrap();
        assert!(status.success(), "original.py failed: {status}");
    }
}

async fn python_get(server: &str, path: &str) -> Value {
    let original = Original::start(server, &["get", path]).await;
    let value = serde_json::from_str(&original.first_line).expect("JSON from original.py");
    original.finish().await;
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s26_what_the_original_writes_ndsr_reads_as_the_same_data() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let base = unique_path("s26-py");
    for (name, data) in
        [("dict", json!({"type": "apache", "port": 80})), ("string", json!("hello")), ("none", json!(null))]
    {
        let path = format!("{base}/{name}");
        let original =
            Original::start(&server.connect_string(), &["register", &path, &data.to_string()]).await;
        assert_eq!(original.first_line, "ready");

        let ours = r.read(&path).await.unwrap();
        let theirs = python_get(&server.connect_string(), &path).await;
        let decoded = Value::Object(ours.data.clone().expect("the original always writes data"));
        assert_eq!(decoded, theirs["data"], "{name}: ndsr and the original decode the same");
        assert!(decoded["pid"].is_u64() && decoded["created"].is_string(), "{name}: {decoded}");
        match name {
            "dict" => assert_eq!((&decoded["type"], &decoded["port"]), (&json!("apache"), &json!(80))),
            "string" => assert_eq!(decoded["string_value"], "hello"),
            _ => assert_eq!(decoded.as_object().unwrap().len(), 2, "only the defaults: {decoded}"),
        }
        original.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s26_what_ndsr_writes_the_original_reads_as_the_same_data() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let base = unique_path("s26-rs");
    for (name, data) in
        [("dict", json!({"type": "apache", "port": 80})), ("string", json!("hello")), ("none", json!(null))]
    {
        let path = format!("{base}/{name}");
        r.set_node(&path, data.clone()).await.unwrap();
        let ours = Value::Object(r.read(&path).await.unwrap().data.clone().unwrap());
        let theirs = python_get(&server.connect_string(), &path).await;
        assert_eq!(theirs["data"], ours, "{name}: the original reads what ndsr wrote");
        assert_eq!(theirs["data"]["pid"], json!(std::process::id()));
    }
    let listing = python_get(&server.connect_string(), &base).await;
    assert_eq!(listing["children"], json!(["dict", "none", "string"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s25_locks_exclude_each_other_across_python_and_rust() {
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let path = unique_path("s25");

    // Python holds it: ndsr is refused.
    let python = Original::start(&server.connect_string(), &["lock", &path, "python"]).await;
    assert_eq!(python.first_line, "acquired");
    match r.lock(&path).name("rust").try_acquire().await {
        Err(Error::LockTimeout { .. }) => {}
        other => panic!("ndsr took a lock Python holds: {other:?}"),
    }
    // Python releases: ndsr, waiting, gets it.
    let waiting = {
        let r = r.clone();
        let path = path.clone();
        tokio::spawn(async move { r.lock(&path).name("rust").wait(Duration::from_secs(30)).acquire().await })
    };
    python.finish().await;
    let guard =
        tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap().expect("ndsr gets the freed lock");

    // ndsr holds it: Python is refused.
    let python = Original::start(&server.connect_string(), &["lock", &path, "python"]).await;
    assert_eq!(python.first_line, "refused");
    python.finish().await;
    guard.release().await.unwrap();
}
