//! SASL DIGEST-MD5 against a server that requires it (a JAAS file from the
//! test kit): registrations and watches work; a wrong password or none is
//! refused at once with a clear error.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ndsr::{Error, Registry};
use ndsr_testkit::{eventually, unique_path, ZkServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_digest_md5_registers_and_watches_and_a_wrong_password_is_refused() {
    init_logs();
    let server = ZkServer::builder().sasl_user("alice", "wonderland").start().unwrap();
    let servers = server.connect_string();
    let registrant =
        Registry::builder(&servers).sasl_digest_md5("alice", "wonderland").build().await.unwrap();
    let watcher = Registry::builder(&servers).sasl_digest_md5("alice", "wonderland").build().await.unwrap();
    let dir = unique_path("sasl");
    let mut web = watcher.subscribe(&dir).unwrap();
    web.next().await.unwrap();
    registrant.set_node(&format!("{dir}/10.0.0.1:80"), json!({})).await.unwrap();
    eventually(WAIT, "seen over SASL", || async { web.latest().is_some_and(|s| s.children.len() == 1) })
        .await
        .unwrap();

    let connect_timeout = Duration::from_secs(20);
    for (builder_name, builder) in
        [("wrong password", Registry::builder(&servers).sasl_digest_md5("alice", "not-the-password"))]
    {
        let started = Instant::now();
        let result = builder.connect_timeout(connect_timeout).build().await;
        assert!(
            matches!(&result, Err(Error::AuthFailed { reason }) if reason.contains("SASL")),
            "{builder_name}: {result:?}"
        );
        assert!(started.elapsed() < connect_timeout, "told at once");
    }
    // Without SASL, no session.
    let plain = Registry::builder(&servers).connect_timeout(connect_timeout).build().await;
    assert!(
        matches!(&plain, Err(Error::AuthFailed { reason }) if reason.contains("requires SASL")),
        "{:?}",
        plain.as_ref().map(|_| ())
    );
    registrant.close().await;
    watcher.close().await;
}
