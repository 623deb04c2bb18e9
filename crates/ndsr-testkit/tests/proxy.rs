//! The fault proxy forwards, counts, cuts and heals.

use std::time::Duration;

use ndsr_testkit::{FaultProxy, ZkServer};
use zookeeper_client::{Client, SessionState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_counts_cuts_and_heals() {
    let server = ZkServer::shared();
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let client = Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&proxy.connect_string())
        .await
        .unwrap();
    let before = proxy.bytes_to_client();
    client.get_children("/").await.unwrap();
    assert!(proxy.bytes_to_client() > before, "the reply passed through the proxy");
    assert!(proxy.bytes_to_server() > 0);
    assert_eq!(proxy.open_connections(), 1);

    let mut state = client.state_watcher();
    proxy.cut();
    assert_eq!(proxy.open_connections(), 0);
    let seen = tokio::time::timeout(Duration::from_secs(10), state.changed()).await.unwrap();
    assert_eq!(seen, SessionState::Disconnected);
    let refused_before = proxy.connections_accepted();
    // While cut, the client's reconnect attempts are accepted and closed.
    tokio::time::timeout(Duration::from_secs(10), async {
        while proxy.connections_accepted() == refused_before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the client retries while the proxy is cut");
    assert_eq!(client.state(), SessionState::Disconnected);

    proxy.heal();
    let seen = tokio::time::timeout(Duration::from_secs(20), state.changed()).await.unwrap();
    assert_eq!(seen, SessionState::SyncConnected);
    client.get_children("/").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_slows_every_round_trip() {
    let server = ZkServer::shared();
    let proxy = FaultProxy::start(&server.connect_string()).unwrap();
    let client = Client::connect(&proxy.connect_string()).await.unwrap();
    proxy.delay(Duration::from_millis(200));
    let started = std::time::Instant::now();
    client.check_stat("/").await.unwrap();
    // Two hops of at least 200 ms each: a lower bound, not a timing claim.
    assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
}
