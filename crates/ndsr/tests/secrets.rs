//! Secrets (issue 14): with every log at TRACE, the digest password, the
//! SASL password and the TLS key appear in no log line, error message or
//! `Debug`, nor in the cache file.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ndsr::{Error, Registry, Tls};
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_or_key_in_trace_logs_errors_debug_or_the_cache_file() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let (digest, sasl) = ("digest-Pw-9vX", "sasl-Pw-3kQ");
    let server = ZkServer::builder().tls(true).sasl_user("alice", sasl).start().unwrap();
    let m = server.tls().unwrap();
    let key_line = m.client_key_pem.lines().nth(1).unwrap().to_string();
    let tls = Tls::new(&m.ca_pem).identity(&m.client_cert_pem, &m.client_key_pem);
    let cache = tempfile::tempdir().unwrap();
    let cache_file = cache.path().join("cache.json");
    let builder = Registry::builder(&server.tls_connect_string().unwrap())
        .auth("bob", digest)
        .sasl_digest_md5("alice", sasl)
        .tls(tls.clone())
        .cache_file(&cache_file);
    let mut shown = vec![format!("{builder:?}")];
    let registry = builder.build().await.unwrap();
    let dir = unique_path("secrets");
    registry.set_node(&format!("{dir}/a:1"), json!({"x": 1})).await.unwrap();
    registry.get(&dir).await.unwrap();
    shown.push(format!("{registry:?}"));
    registry.close().await;
    // Refusals, at trace level too: a wrong SASL password, a wrong CA.
    let refused = Registry::builder(&server.tls_connect_string().unwrap())
        .sasl_digest_md5("alice", "wrong-Pw-1zZ")
        .tls(tls)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .await;
    assert!(matches!(refused, Err(Error::AuthFailed { .. })), "{refused:?}");
    shown.push(format!("{refused:?}"));
    let wrong_ca = Registry::builder(&server.tls_connect_string().unwrap())
        .tls(Tls::new(&m.other_ca_pem).identity(&m.client_cert_pem, &m.client_key_pem))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .await;
    shown.push(format!("{wrong_ca:?}"));

    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(logged.contains("TRACE"), "trace logging was on");
    let cached = std::fs::read_to_string(&cache_file).unwrap();
    assert!(cached.contains("a:1"), "the cache file was written");
    for (what, text) in
        [("logs", &logged), ("the cache file", &cached), ("Debug and errors", &shown.join("\n"))]
    {
        for secret in [digest, sasl, "wrong-Pw-1zZ", key_line.as_str()] {
            assert!(!text.contains(secret), "a secret is in {what}");
        }
    }
}
