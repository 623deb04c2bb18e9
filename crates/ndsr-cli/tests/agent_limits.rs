//! `ndsr agent`'s limits against a real ZooKeeper: paths followed for
//! readers are let go when unused (so new paths never stay refused),
//! connections have a header timeout, an idle timeout and a cap, and
//! streams and blocking queries a cap of their own below it.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::agent::{Agent, TOKEN};
use common::*;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::json;

fn config(root: &str, extra: &str) -> String {
    format!("roots = [\"{root}\"]\n[http]\ntoken = \"{TOKEN}\"\n{extra}")
}

fn registry(rt: &tokio::runtime::Runtime, server: &str) -> ndsr::Registry {
    rt.block_on(ndsr::Registry::builder(server).build()).unwrap()
}

/// The value of the metric line `name` (labels included), if shown.
fn metric(agent: &Agent, name: &str) -> Option<f64> {
    let text = agent.http().get("/metrics").text;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A raw connection to the agent.
fn connect(agent: &Agent) -> TcpStream {
    let stream = TcpStream::connect(agent.url.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

/// Sends a GET on a kept-alive connection and reads the answer: status and body.
fn get(stream: &mut TcpStream, path: &str) -> (u16, String) {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    read_answer(stream)
}

fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Whether the agent closed the connection: a read ends (0 bytes or a
/// reset) within `WAIT`, rather than timing out.
fn closed_by_agent(stream: &mut TcpStream) -> bool {
    let mut buf = [0; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(_) => return true, // reset
        }
    }
}

/// An SSE stream on a raw connection (closed when dropped): its events' data.
struct Stream {
    reader: BufReader<TcpStream>,
}

impl Stream {
    fn open(agent: &Agent, path: &str) -> Stream {
        Stream::open_on(connect(agent), path)
    }

    /// Opens the stream on `stream`, a connection that may have served
    /// requests already.
    fn open_on(mut stream: TcpStream, path: &str) -> Stream {
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{path}: {status}");
        Stream { reader }
    }

    /// The next event's data for which `pred` holds.
    fn next_where(&mut self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.reader.read_line(&mut line);
            assert!(read.as_ref().is_ok_and(|n| *n > 0), "the stream ended before {what}: {read:?}");
            if let Some(data) = line.trim_end().strip_prefix("data: ") {
                let event = serde_json::from_str(data).unwrap();
                if pred(&event) {
                    return event;
                }
            }
        }
    }
}

#[test]
fn paths_read_once_are_let_go_and_never_lock_out_new_ones() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("limits-paths");
    let writer = registry(&rt, &server);
    for (host, zone) in [("10.0.0.1:80", "a"), ("10.0.0.2:80", "b")] {
        rt.block_on(writer.set_node(&format!("{root}/web/{host}"), json!({"zone": zone}))).unwrap();
    }
    let registered = format!("{root}/reg/a:1");
    let agent = Agent::start(
        &server,
        &config(
            &root,
            &format!(
                "max_paths = 5\npath_idle = \"500ms\"\n[[service]]\npath = \"{root}/web\"\n\
                 [[register]]\npath = \"{registered}\"\n"
            ),
        ),
    );
    let http = agent.http();
    poll("the configured service is read", || {
        http.get(&format!("/v1/services{root}/web")).body["instances"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    poll("registered", || http.get(&format!("/v1/registrations{registered}")).body["state"] == "registered");
    assert_eq!(http.get(&format!("/v1/nodes{registered}")).status, 200);
    let watched = metric(&agent, "ndsr_watched_paths").expect("ndsr_watched_paths");

    // Three times max_paths made-up paths, one after another: each answers.
    for i in 0..15 {
        let answer = http.get(&format!("/v1/nodes{root}/made-up/{i}"));
        assert_eq!(answer.status, 404, "path {i}: {}", answer.text);
        let answer = http.get(&format!("/v1/services{root}/made-up/{i}"));
        assert_eq!(answer.status, 404, "service {i}: {}", answer.text);
    }
    // Picks with ever new options do not fill the table either.
    for i in 0..15 {
        let answer = http.get(&format!("/v1/pick{root}/web?label=zone!=z{i}"));
        assert_eq!(answer.status, 200, "pick {i}: {}", answer.text);
    }

    // Unused, they are let go (and their watches with them); the
    // configured service and the registration's path stay.
    poll("the made-up paths let go", || {
        metric(&agent, "ndsr_agent_followed{kind=\"node\"}") == Some(1.0)
            && metric(&agent, "ndsr_agent_followed{kind=\"service\"}") == Some(1.0)
    });
    poll("their watches released", || metric(&agent, "ndsr_watched_paths") == Some(watched));
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.3:80"), json!({"zone": "c"}))).unwrap();
    poll("the configured service still follows changes", || {
        agent.http().get("/v1/agent").text.contains("10.0.0.3:80")
    });
    rt.block_on(writer.close());
}

#[test]
fn a_streamed_path_is_kept_and_429_only_while_every_slot_is_in_use() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("limits-streams");
    let writer = registry(&rt, &server);
    for name in ["a", "b"] {
        rt.block_on(writer.set_data(&format!("{root}/{name}"), json!({"v": 0}))).unwrap();
    }
    let agent = Agent::start(&server, &config(&root, "max_paths = 3\npath_idle = \"200ms\"\n"));
    let mut a = Stream::open(&agent, &format!("/v1/watch{root}/a"));
    a.next_where("a's first event", |e| e["data"]["v"] == 0);
    let mut b = Stream::open(&agent, &format!("/v1/watch{root}/b"));
    b.next_where("b's first event", |e| e["data"]["v"] == 0);

    // A path read once is let go after path_idle; the streamed ones stay
    // (a change still arrives).
    assert_eq!(agent.http().get(&format!("/v1/nodes{root}/c")).status, 404);
    poll("c let go", || metric(&agent, "ndsr_agent_followed{kind=\"node\"}") == Some(2.0));
    rt.block_on(writer.set_data(&format!("{root}/a"), json!({"v": 1}))).unwrap();
    a.next_where("a's change", |e| e["data"]["v"] == 1);

    // Every slot in use: a new path is refused, with the reason.
    let mut c = Stream::open(&agent, &format!("/v1/watch{root}/c"));
    c.next_where("c's first event", |e| e["exists"] == false);
    let refused = agent.http().get(&format!("/v1/nodes{root}/d"));
    assert_eq!((refused.status, &refused.body["code"]), (429, &json!("too_many_paths")), "{}", refused.text);
    assert!(refused.text.contains("in use"), "{}", refused.text);

    // Once a stream ends, its slot serves new paths.
    drop(b);
    poll("a new path answers once b's stream closed", || {
        agent.http().get(&format!("/v1/nodes{root}/d")).status == 404
    });
    for i in 0..5 {
        let answer = agent.http().get(&format!("/v1/nodes{root}/d{i}"));
        assert_eq!(answer.status, 404, "{}", answer.text);
    }
    rt.block_on(writer.set_data(&format!("{root}/a"), json!({"v": 2}))).unwrap();
    a.next_where("a's second change", |e| e["data"]["v"] == 2);
    rt.block_on(writer.set_data(&format!("{root}/c"), json!({"v": 3}))).unwrap();
    c.next_where("c's change", |e| e["data"]["v"] == 3);
    rt.block_on(writer.close());
}

#[test]
fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let server = ZkServer::shared().connect_string();
    let root = unique_path("limits-header");
    let agent = Agent::start(&server, &config(&root, "header_timeout = \"300ms\"\nidle_timeout = \"1h\"\n"));
    let mut half = connect(&agent);
    half.write_all(b"GET /v1/registrations HT").unwrap();
    assert!(closed_by_agent(&mut half), "half a request line is closed after header_timeout");

    // Headers sent a byte at a time (slowloris) get no more time.
    let mut slow = connect(&agent);
    slow.write_all(b"GET /v1/registrations HTTP/1.1\r\n").unwrap();
    let writer = {
        let mut slow = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..(WAIT.as_millis() / 50) {
                if slow.write_all(b"X").is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        })
    };
    assert!(closed_by_agent(&mut slow), "a trickle of header bytes is closed after header_timeout");
    assert!(writer.join().unwrap(), "writes fail once closed");

    // A whole request within the limit is answered.
    let mut whole = connect(&agent);
    assert_eq!(get(&mut whole, "/v1/registrations").0, 200);
}

#[test]
fn an_idle_connection_is_closed_but_streams_and_blocking_queries_are_not() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("limits-idle");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_data(&format!("{root}/a"), json!({"v": 0}))).unwrap();
    let agent = Agent::start(&server, &config(&root, "header_timeout = \"1h\"\nidle_timeout = \"300ms\"\n"));
    // The stream and the blocking query each on a kept-alive connection
    // after a first request: the idle timeout, not the header timeout (an
    // hour), is what would cut them.
    let kept_alive = || {
        let mut connection = connect(&agent);
        assert_eq!(get(&mut connection, "/v1/registrations").0, 200);
        connection
    };
    let mut events = Stream::open_on(kept_alive(), &format!("/v1/watch{root}/a"));
    let first = events.next_where("the first event", |e| e["data"]["v"] == 0);
    let blocked = {
        let (url, mut connection) =
            (format!("/v1/nodes{root}/a?index={}&wait=30s", first["index"]), kept_alive());
        std::thread::spawn(move || get(&mut connection, &url))
    };
    // The blocking query waits at the agent (a slot of max_streams, as the
    // stream holds one) before the idle connection's time starts.
    poll("the blocking query waiting", || metric(&agent, "ndsr_http_streams_in_use") == Some(2.0));

    // A kept-alive connection that asks nothing more is closed after
    // idle_timeout (not header_timeout: that is an hour).
    let mut idle = kept_alive();
    assert!(closed_by_agent(&mut idle), "an idle keep-alive connection is closed after idle_timeout");

    // The stream and the blocking query, open longer than that, still answer.
    rt.block_on(writer.set_data(&format!("{root}/a"), json!({"v": 1}))).unwrap();
    events.next_where("the change", |e| e["data"]["v"] == 1);
    let (status, body) = blocked.join().unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!((status, &body["data"]["v"]), (200, &json!(1)), "{body}");
    rt.block_on(writer.close());
}

#[test]
fn connections_beyond_the_cap_wait_until_one_closes() {
    let server = ZkServer::shared().connect_string();
    let root = unique_path("limits-cap");
    let agent = Agent::start(
        &server,
        &config(&root, "max_connections = 2\nheader_timeout = \"1h\"\nidle_timeout = \"1h\"\n"),
    );
    let mut first = connect(&agent);
    assert_eq!(get(&mut first, "/v1/registrations").0, 200);
    let mut second = connect(&agent);
    assert_eq!(get(&mut second, "/v1/registrations").0, 200);

    // A third is not served while both are open...
    let mut third = connect(&agent);
    write!(third, "GET /v1/registrations HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    third.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut byte = [0; 1];
    let early = third.peek(&mut byte);
    assert!(
        early.as_ref().is_err_and(|e| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "a third connection is not served beyond max_connections: {early:?}"
    );
    let (_, metrics) = get(&mut second, "/metrics");
    assert!(metrics.lines().any(|l| l == "ndsr_http_connections_open 2"), "{metrics}");
    // ...and is once one closes.
    drop(first);
    third.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(read_answer(&mut third).0, 200, "served once a slot is free");

    // SIGTERM with connections open (one idle, one mid-request): exit 0.
    drop(third);
    let mut half = TcpStream::connect(agent.url.trim_start_matches("http://")).unwrap();
    half.write_all(b"GET /v1/hea").unwrap();
    agent.running.signal(nix::sys::signal::Signal::SIGTERM);
    agent.running.line_where("stopped", |l| l.contains("stopped"));
    let Agent { running, dir: _dir, .. } = agent;
    assert_eq!(running.wait(), 0);
    drop((second, half));
}

#[test]
fn streams_and_blocking_queries_beyond_max_streams_are_refused_and_leave_room_for_the_rest() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("limits-streams");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_data(&format!("{root}/a"), json!({"v": 0}))).unwrap();
    let agent = Agent::start(
        &server,
        &config(
            &root,
            "max_connections = 8\nmax_streams = 3\nheader_timeout = \"1h\"\nidle_timeout = \"1h\"\n",
        ),
    );
    let watch = format!("/v1/watch{root}/a");
    let mut streams: Vec<Stream> = (0..3).map(|_| Stream::open(&agent, &watch)).collect();
    let first = streams[0].next_where("the first event", |e| e["data"]["v"] == 0);
    // The dashboard's stream counts too; each is refused at once.
    for path in [watch.clone(), "/v1/dashboard/events".to_string()] {
        let refused = agent.http().get(&path);
        assert_eq!(
            (refused.status, &refused.body["code"]),
            (503, &json!("too_many_streams")),
            "{path}: {}",
            refused.text
        );
    }
    let blocking = format!("/v1/nodes{root}/a?index={}&wait=1h", first["index"]);
    let refused = agent.http().get(&blocking);
    assert_eq!(
        (refused.status, &refused.body["code"]),
        (503, &json!("too_many_streams")),
        "{}",
        refused.text
    );
    assert!(refused.body["error"].as_str().unwrap().contains("max_streams"), "{}", refused.text);
    // A plain read, the health probe and a write still answer.
    assert_eq!(agent.http().get(&format!("/v1/nodes{root}/a")).status, 200);
    assert_eq!(agent.http().get("/v1/health").status, 200);
    let put = agent.authorized().put(&format!("/v1/registrations{root}/web/10.0.0.1:80"), "{}");
    assert_eq!(put.status, 201, "{}", put.text);

    // Closing a stream gives its slot back.
    drop(streams.pop());
    poll("a slot given back", || metric(&agent, "ndsr_http_streams_in_use") == Some(2.0));
    let blocked = {
        let http = agent.http();
        std::thread::spawn(move || http.get(&blocking))
    };
    poll("the blocking query waiting", || metric(&agent, "ndsr_http_streams_in_use") == Some(3.0));
    assert_eq!(agent.http().get(&watch).status, 503, "the blocking query holds the freed slot");
    rt.block_on(writer.set_data(&format!("{root}/a"), json!({"v": 1}))).unwrap();
    let answered = blocked.join().unwrap();
    assert_eq!((answered.status, &answered.body["data"]["v"]), (200, &json!(1)), "{}", answered.text);
    // Answered, it gives its slot back to a new stream.
    poll("the query's slot given back", || metric(&agent, "ndsr_http_streams_in_use") == Some(2.0));
    streams.push(Stream::open(&agent, &watch));
    streams[2].next_where("the new stream's first event", |e| e["data"]["v"] == 1);
    rt.block_on(writer.close());
}
