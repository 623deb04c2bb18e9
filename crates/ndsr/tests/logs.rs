//! What the registry logs, read back from a capturing subscriber: a log
//! line a user acts on must be there when it should, and only then.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use ndsr_testkit::{eventually, unique_path, ZkServer};
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures the logs of everything run on this (current-thread) runtime.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("ndsr=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(flavor = "current_thread")]
async fn a_second_set_node_is_not_reported_as_someone_elses_change() {
    let (logs, _guard) = capture();
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let zk = other(&server.connect_string()).await;
    let path = format!("{}/h:1", unique_path("log-set-node"));
    r.set_node(&path, json!({"v": 1})).await.unwrap();
    r.set_node(&path, json!({"v": 2})).await.unwrap();
    assert!(!logs.text().contains("changed by someone else"), "{}", logs.text());

    // Someone else's change is still reported.
    zk.set_data(&path, b"intruder", None).await.unwrap();
    eventually(WAIT, "the warning", || async { logs.text().contains("changed by someone else") })
        .await
        .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_panicking_callback_is_logged_with_its_message() {
    let (logs, _guard) = capture();
    let server = ZkServer::shared();
    let r = registry(&server.connect_string()).await;
    let path = unique_path("log-panic");
    let seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = seen.clone();
    r.add_callback(&path, move |_| {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        panic!("the callback's own words {}", 42)
    })
    .unwrap();
    eventually(WAIT, "the panic logged", || async { logs.text().contains("the callback's own words 42") })
        .await
        .unwrap();
    assert!(seen.load(std::sync::atomic::Ordering::SeqCst));
    assert!(logs.text().contains("callback panicked"), "{}", logs.text());
}
