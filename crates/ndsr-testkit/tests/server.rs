//! The standalone server and its fault controls really do what they say.

use std::net::TcpStream;
use std::time::Duration;

use ndsr_testkit::{eventually, four_letter_word, unique_path, Error, FaultProxy, ZkServer};
use zookeeper_client::{Acls, Client, CreateMode, SessionState};

const WAIT: Duration = Duration::from_secs(30);

async fn connect(address: &str, session_timeout: Duration) -> Client {
    Client::connector()
        .with_session_timeout(session_timeout)
        .connect(address)
        .await
        .expect("connect to the test server")
}

async fn wait_state(client: &Client, wanted: SessionState) {
    let mut watcher = client.state_watcher();
    let mut state = client.state();
    tokio::time::timeout(WAIT, async {
        while state != wanted {
            state = watcher.changed().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("client never reached {wanted:?}; last state {state:?}"));
}

#[test]
fn shared_server_answers_four_letter_words() {
    let server = ZkServer::shared();
    assert_eq!(four_letter_word(&server.connect_string(), "ruok").unwrap(), "imok");
    let srvr = four_letter_word(&server.connect_string(), "srvr").unwrap();
    assert!(srvr.contains("Mode: standalone"), "{srvr}");
    assert!(server.log_file().is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_refuses_connections_and_start_keeps_the_session() {
    let server = ZkServer::new().unwrap();
    let client = connect(&server.connect_string(), Duration::from_secs(10)).await;
    let path = unique_path("restart");
    client.mkdir(&path, &CreateMode::Persistent.with_acls(Acls::anyone_all())).await.unwrap();
    let session = client.session_id();

    server.stop().unwrap();
    assert!(!server.is_running());
    assert!(TcpStream::connect(server.connect_string()).is_err(), "a stopped server must refuse connections");
    wait_state(&client, SessionState::Disconnected).await;

    server.start().unwrap();
    wait_state(&client, SessionState::SyncConnected).await;
    assert_eq!(client.session_id(), session);
    assert!(client.check_stat(&path).await.unwrap().is_some(), "data survives a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_session_expires_the_client() {
    let server = ZkServer::shared();
    let client = connect(&server.connect_string(), Duration::from_secs(10)).await;
    let path = unique_path("expire");
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let parent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.mkdir(&path, &parent).await.unwrap();
    client.create(&format!("{path}/e"), b"x", &ephemeral).await.unwrap();

    server.expire_session(client.session()).await.unwrap();

    wait_state(&client, SessionState::Expired).await;
    let other = connect(&server.connect_string(), Duration::from_secs(10)).await;
    assert_eq!(other.check_stat(&format!("{path}/e")).await.unwrap(), None, "the ephemeral node is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_hangs_the_server_and_thaw_resumes_it() {
    let server = ZkServer::new().unwrap();
    let client = connect(&server.connect_string(), Duration::from_secs(2)).await;

    server.freeze().unwrap();
    assert!(four_letter_word(&server.connect_string(), "ruok").is_err(), "a frozen server answers nothing");
    wait_state(&client, SessionState::Disconnected).await;
    assert!(matches!(server.freeze(), Ok(())), "freezing twice is harmless");

    server.thaw().unwrap();
    assert_eq!(four_letter_word(&server.connect_string(), "ruok").unwrap(), "imok");
    assert!(matches!(server.thaw(), Err(Error::InvalidState(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_wiped_forgets_data_and_sessions() {
    let server = ZkServer::new().unwrap();
    let client = connect(&server.connect_string(), Duration::from_secs(2)).await;
    let path = unique_path("wiped");
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.mkdir(&path, &options).await.unwrap();

    server.restart_wiped().unwrap();

    // The old session is unknown to the wiped server: the client expires.
    wait_state(&client, SessionState::Expired).await;
    let fresh = connect(&server.connect_string(), Duration::from_secs(2)).await;
    assert_eq!(fresh.check_stat(&path).await.unwrap(), None);
}

#[test]
fn drop_kills_and_reaps_the_server() {
    let server = ZkServer::new().unwrap();
    let pid = server.pid().expect("running");
    let dir = server.data_dir().to_path_buf();
    drop(server);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} still exists");
    assert!(!dir.exists(), "temp dir {} was not removed", dir.display());
}

#[test]
fn drop_kills_the_server_even_when_the_test_panics() {
    let pid = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let server = ZkServer::new().unwrap();
        *pid.lock().unwrap() = server.pid();
        panic!("the test fails while the server runs");
    });
    assert!(result.is_err());
    let pid = pid.lock().unwrap().expect("server started");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} survived the panic");
}

#[test]
fn a_taken_port_fails_with_the_log_tail() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let error = ZkServer::builder()
        .port(port)
        .start_timeout(Duration::from_secs(60))
        .start()
        .expect_err("the port is taken");
    match &error {
        Error::StartFailed { log_tail, .. } => {
            assert!(log_tail.contains("Address already in use"), "log tail: {log_tail}")
        }
        other => panic!("expected StartFailed, got {other}"),
    }
    assert!(started.elapsed() < Duration::from_secs(60), "reported before the start timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventually_fails_with_what_it_waited_for() {
    let error = eventually(Duration::from_millis(100), "never", || async { false }).await.unwrap_err();
    assert_eq!(error.what, "never");
    assert!(error.waited >= Duration::from_millis(100));
    eventually(WAIT, "at once", || async { true }).await.unwrap();
}

#[test]
fn a_server_whose_port_another_server_holds_does_not_claim_to_serve() {
    let first = ZkServer::new().unwrap();
    let second = ZkServer::builder().port(first.port()).start_timeout(Duration::from_secs(30)).start();
    match second {
        Err(Error::StartFailed { log_tail, .. }) => {
            assert!(log_tail.contains("Address already in use"), "{log_tail}")
        }
        Err(other) => panic!("failed, but not as a start failure: {other}"),
        Ok(server) => panic!("claims to serve on {}, which the first server holds", server.connect_string()),
    }
    assert_eq!(four_letter_word(&first.connect_string(), "ruok").unwrap(), "imok");
}

#[test]
fn a_server_that_dies_reports_its_exit_status() {
    let server = ZkServer::new().unwrap();
    assert!(server.exit_status().is_none());
    let pid = server.pid().unwrap() as i32;
    // Our own server, by its pid.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while server.exit_status().is_none() {
        assert!(std::time::Instant::now() < deadline, "the death went unnoticed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_blackhole_drops_bytes_without_closing_and_heal_closes_what_it_spoiled() {
    use std::io::{Read, Write};
    // An echo server behind the proxy.
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = echo.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    if stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let proxy = FaultProxy::start(&upstream).unwrap();
    let mut client = std::net::TcpStream::connect(proxy.connect_string()).unwrap();
    client.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 16];
    client.write_all(b"ping").unwrap();
    client.read_exact(&mut buf[..4]).unwrap();
    assert_eq!(&buf[..4], b"ping");

    proxy.blackhole();
    client.write_all(b"lost").unwrap();
    let silent = client.read(&mut buf);
    assert!(
        matches!(&silent, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "a blackholed link is silent, not closed: {silent:?}"
    );
    // A new connection is accepted, and silent too.
    let mut late = std::net::TcpStream::connect(proxy.connect_string()).unwrap();
    late.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    late.write_all(b"hello").unwrap();
    assert!(late.read(&mut buf).is_err(), "no answer behind the blackhole");

    proxy.heal();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(matches!(client.read(&mut buf), Ok(0) | Err(_)), "a spoiled stream is closed by heal");
    let mut fresh = std::net::TcpStream::connect(proxy.connect_string()).unwrap();
    fresh.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    fresh.write_all(b"again").unwrap();
    fresh.read_exact(&mut buf[..5]).unwrap();
    assert_eq!(&buf[..5], b"again");
}
