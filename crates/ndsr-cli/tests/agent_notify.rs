//! systemd readiness (issue 27): the real agent, started with
//! `NOTIFY_SOCKET` naming a datagram socket the test binds, sends
//! `READY=1` only once its first sync is done (ZooKeeper reached, the
//! services listed, the templates rendered), `WATCHDOG=1` when
//! `WATCHDOG_USEC` asks, and `STOPPING=1` on SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use common::*;
use ndsr_testkit::{unique_path, FaultProxy, ZkServer};
use serde_json::json;

/// Every datagram the socket receives, as text.
fn datagrams(socket: UnixDatagram) -> Receiver<String> {
    let (tx, rx) = channel();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    std::thread::spawn(move || {
        let mut buffer = vec![0; 4096];
        loop {
            match socket.recv(&mut buffer) {
                Ok(n) => {
                    if tx.send(String::from_utf8_lossy(&buffer[..n]).into_owned()).is_err() {
                        return;
                    }
                }
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    // Stop once the test is done with the messages.
                    if tx.send(String::new()).is_err() {
                        return;
                    }
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
    });
    rx
}

/// GET `url`: the status and the body.
fn get(url: &str) -> (u16, String) {
    let client: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut response = client.get(url).call().unwrap();
    (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
}

/// The messages received so far (without waiting).
fn so_far(rx: &Receiver<String>) -> Vec<String> {
    rx.try_iter().filter(|m| !m.is_empty()).collect()
}

/// Starts `ndsr agent` with `env`, a config of one service and one
/// template in `dir`: the running agent and its URL.
fn start(server: &str, dir: &std::path::Path, root: &str, env: &[(&str, &str)]) -> (Running, String) {
    std::fs::write(dir.join("web.j2"), "{% for i in services.web %}server {{ i.address }}\n{% endfor %}")
        .unwrap();
    let config = format!(
        "roots = [\"{root}\"]\n[[service]]\npath = \"{root}/web\"\n\
         [[template]]\nsource = \"web.j2\"\ndestination = \"web.cfg\"\n"
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, config).unwrap();
    let args = ["agent", "--config", path.to_str().unwrap(), "--listen", "127.0.0.1:0"];
    let mut command = ndsr(server, &args);
    command.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC").env_remove("WATCHDOG_PID");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = forward(child.stdout.take().unwrap(), false);
    let errors = forward(child.stderr.take().unwrap(), true);
    let running = Running { child, lines, errors };
    let line = running.line_where("listening", |l| l.contains("listening on"));
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().trim_end_matches('/');
    (running, url.to_string())
}

#[test]
fn ready_only_after_the_first_sync_then_stopping_on_sigterm() {
    let rt = runtime();
    let zookeeper = ZkServer::shared().connect_string();
    let root = unique_path("agent-notify");
    let writer = rt.block_on(ndsr::Registry::builder(&zookeeper).build()).unwrap();
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.1:80"), json!({}))).unwrap();
    // ZooKeeper cannot be reached when the agent starts.
    let proxy = FaultProxy::start(&zookeeper).unwrap();
    proxy.cut();
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let messages = datagrams(UnixDatagram::bind(&socket_path).unwrap());
    let (agent, url) = start(
        &proxy.connect_string(),
        dir.path(),
        &root,
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );

    // It serves (its health says ZooKeeper is not reached) and says it
    // waits, but is not ready.
    let waiting = next_where(&messages, "STATUS=waiting", |m| m.starts_with("STATUS=waiting"));
    // It says what it waits for: the session and the service's first list.
    assert!(waiting.contains("the ZooKeeper session"), "{waiting}");
    assert!(waiting.contains(&format!("the list of {root}/web")), "{waiting}");
    poll("the agent answers", || get(&format!("{url}/v1/health")).0 == 503);
    let early = so_far(&messages);
    assert!(!early.iter().any(|m| m.contains("READY=1")), "ready before ZooKeeper was reached: {early:?}");
    assert!(!dir.path().join("web.cfg").exists(), "rendered without ZooKeeper");

    // ZooKeeper comes back: READY=1, and by then the template is rendered
    // and the service is served.
    proxy.heal();
    let ready = next_where(&messages, "READY=1", |m| m.contains("READY=1"));
    assert_eq!(ready, "READY=1\nSTATUS=serving: first sync done");
    let file = std::fs::read_to_string(dir.path().join("web.cfg")).unwrap();
    assert_eq!(file, "server 10.0.0.1:80\n");
    let (status, service) = get(&format!("{url}/v1/services{root}/web"));
    assert_eq!(status, 200, "{service}");
    assert!(service.contains("10.0.0.1"), "{service}");
    assert!(!so_far(&messages).iter().any(|m| m.contains("WATCHDOG")), "no WATCHDOG_USEC, no watchdog");

    agent.signal(nix::sys::signal::Signal::SIGTERM);
    let stopping = next_where(&messages, "STOPPING=1", |m| m.contains("STOPPING=1"));
    assert!(stopping.starts_with("STOPPING=1\nSTATUS=stopping"), "{stopping}");
    assert_eq!(agent.wait(), 0);
}

#[test]
fn an_abstract_socket_and_the_watchdog() {
    let rt = runtime();
    let zookeeper = ZkServer::shared().connect_string();
    let root = unique_path("agent-notify-abstract");
    let writer = rt.block_on(ndsr::Registry::builder(&zookeeper).build()).unwrap();
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.2:80"), json!({}))).unwrap();
    let name = format!("ndsr-test-notify-{}-{}", std::process::id(), root.replace('/', "-"));
    let address = {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
    };
    let messages = datagrams(UnixDatagram::bind_addr(&address).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("@{name}");
    let env = [("NOTIFY_SOCKET", socket.as_str()), ("WATCHDOG_USEC", "200000")];
    let (agent, _) = start(&zookeeper, dir.path(), &root, &env);
    next_where(&messages, "READY=1", |m| m.contains("READY=1"));
    assert_eq!(std::fs::read_to_string(dir.path().join("web.cfg")).unwrap(), "server 10.0.0.2:80\n");
    // Half of WATCHDOG_USEC apart; two of them show it repeats.
    next_where(&messages, "WATCHDOG=1", |m| m == "WATCHDOG=1");
    next_where(&messages, "a second WATCHDOG=1", |m| m == "WATCHDOG=1");
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    next_where(&messages, "STOPPING=1", |m| m.contains("STOPPING=1"));
    assert_eq!(agent.wait(), 0);
}
