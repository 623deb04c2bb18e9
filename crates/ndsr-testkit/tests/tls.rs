//! A TLS server from the test kit: a client with its CA and certificate
//! talks to it; the plain port still serves.

use std::time::Duration;

use ndsr_testkit::ZkServer;
use zookeeper_client::{Client, TlsOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_serves_clients_with_its_ca_and_certificate() {
    let server = ZkServer::builder().tls(true).start().unwrap();
    let tls = server.tls().unwrap();
    let options = TlsOptions::new()
        .with_pem_ca(&tls.ca_pem)
        .unwrap()
        .with_pem_identity(&tls.client_cert_pem, &tls.client_key_pem)
        .unwrap();
    let client = Client::connector()
        .with_tls(options)
        .with_session_timeout(Duration::from_secs(10))
        .secure_connect(&server.tls_connect_string().unwrap())
        .await
        .unwrap();
    client.list_children("/").await.unwrap();
    let plain = Client::connect(&server.connect_string()).await.unwrap();
    plain.list_children("/").await.unwrap();
}
