//! TLS to ZooKeeper against a real TLS server from the test kit (Netty,
//! PEM stores made at test time): register and watch over TLS; a wrong CA
//! or a refused client certificate fails at once with a clear error; a
//! plain-text client cannot use the TLS port.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ndsr::{Error, Registry, Tls};
use ndsr_testkit::{eventually, unique_path, ZkServer};
use serde_json::json;

fn server() -> ZkServer {
    ZkServer::builder().tls(true).start().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_and_watches_work_over_tls() {
    let server = server();
    let material = server.tls().unwrap();
    let tls = Tls::new(&material.ca_pem).identity(&material.client_cert_pem, &material.client_key_pem);
    let secure = server.tls_connect_string().unwrap();
    let registrant = Registry::builder(&secure).tls(tls.clone()).build().await.unwrap();
    let watcher = Registry::builder(&secure).tls(tls).build().await.unwrap();
    let dir = unique_path("tls");
    let mut web = watcher.subscribe(&dir).unwrap();
    web.next().await.unwrap();
    registrant.set_node(&format!("{dir}/10.0.0.1:80"), json!({"zone": "a"})).await.unwrap();
    eventually(WAIT, "the watcher sees the registration over TLS", || async {
        web.latest().is_some_and(|s| s.children == ["10.0.0.1:80"])
    })
    .await
    .unwrap();
    // The same data through the plain port: it is one server.
    let plain = other(&server.connect_string()).await;
    assert!(plain.check_stat(&format!("{dir}/10.0.0.1:80")).await.unwrap().is_some());
    registrant.close().await;
    watcher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_or_a_refused_certificate_fails_at_once_and_says_why() {
    let server = server();
    let m = server.tls().unwrap();
    let secure = server.tls_connect_string().unwrap();
    let connect_timeout = Duration::from_secs(20);
    let cases = [
        (
            Tls::new(&m.other_ca_pem).identity(&m.client_cert_pem, &m.client_key_pem),
            "the server's certificate",
        ),
        (
            Tls::new(&m.ca_pem).identity(&m.other_client_cert_pem, &m.other_client_key_pem),
            "refused this client",
        ),
        (Tls::new(&m.ca_pem), "refused this client"),
    ];
    for (tls, says) in cases {
        let started = Instant::now();
        let result = Registry::builder(&secure).tls(tls).connect_timeout(connect_timeout).build().await;
        let Err(Error::Tls { reason }) = result else { panic!("expected a TLS error, got {result:?}") };
        assert!(reason.contains(says), "{reason:?} does not say {says:?}");
        assert!(started.elapsed() < connect_timeout, "told at once, not after the connect timeout");
    }
    // PEM that is not PEM is refused before any connection.
    let result = Registry::builder(&secure).tls(Tls::new("not a certificate")).build().await;
    assert!(matches!(&result, Err(Error::Tls { reason }) if reason.contains("CA")), "{result:?}");
    let result = Registry::builder(&secure)
        .tls(Tls::new(&m.ca_pem).identity(&m.client_cert_pem, "no key"))
        .build()
        .await;
    assert!(matches!(&result, Err(Error::Tls { reason }) if reason.contains("key")), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_that_is_down_is_no_connection_not_a_tls_error() {
    let server = server();
    let m = server.tls().unwrap();
    let secure = server.tls_connect_string().unwrap();
    server.stop().unwrap();
    let tls = Tls::new(&m.ca_pem).identity(&m.client_cert_pem, &m.client_key_pem);
    let result = Registry::builder(&secure).tls(tls).connect_timeout(Duration::from_secs(2)).build().await;
    assert!(matches!(result, Err(Error::NoConnection(_))), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_client_cannot_use_the_tls_port() {
    let server = server();
    let result = Registry::builder(&server.tls_connect_string().unwrap())
        .connect_timeout(Duration::from_secs(3))
        .build()
        .await;
    assert!(matches!(result, Err(Error::NoConnection(_))), "{result:?}");
}

#[test]
fn debug_never_shows_the_password_or_the_key() {
    let key = "-----BEGIN PRIVATE KEY-----\nS3CRETKEYMATERIAL\n-----END PRIVATE KEY-----\n";
    let builder = Registry::builder("127.0.0.1:2181")
        .auth("alice", "s3cret-pass")
        .tls(Tls::new("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n").identity("cert", key));
    let shown = format!("{builder:?}");
    assert!(shown.contains("alice"), "{shown}");
    assert!(!shown.contains("s3cret-pass") && !shown.contains("S3CRETKEYMATERIAL"), "{shown}");
}
