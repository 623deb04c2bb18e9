//! Running `ndsr agent` in tests: a config file in a temporary directory,
//! the real binary on a free port, and a small HTTP client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};

use super::{Running, WAIT};

pub const TOKEN: &str = "test-token-0123456789";

/// A running agent; killed on drop (its temporary directory removed).
pub struct Agent {
    pub running: Running,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Agent {
    /// Starts `ndsr --server SERVER agent` with `config` (TOML) written to
    /// agent.toml in a new temporary directory.
    pub fn start(server: &str, config: &str) -> Agent {
        Agent::start_with(server, config, &[], |_| {})
    }

    /// As `start`, with more arguments, and `prepare` run on the directory first.
    pub fn start_with(
        server: &str,
        config: &str,
        extra: &[&str],
        prepare: impl FnOnce(&std::path::Path),
    ) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, config).unwrap();
        let mut args = vec!["agent", "--config", path.to_str().unwrap(), "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let running = Running::start(server, &args);
        let line = running.line_where("listening", |l| l.contains("listening on"));
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        Agent { running, url, dir, config: path }
    }

    pub fn http(&self) -> Http {
        Http { base: self.url.clone(), token: None }
    }

    pub fn authorized(&self) -> Http {
        Http { base: self.url.clone(), token: Some(TOKEN.to_string()) }
    }

    /// The port of the agent's DNS interface, from its "DNS on" line.
    pub fn dns_port(&self) -> u16 {
        let line = self.running.line_where("the DNS address", |l| l.contains("DNS on"));
        let address = line.split_whitespace().find(|w| w.starts_with("127.0.0.1:")).expect(&line);
        address.rsplit(':').next().unwrap().parse().unwrap()
    }
}

/// An HTTP client of one agent.
pub struct Http {
    base: String,
    token: Option<String>,
}

/// An answer: status, headers we care about, and the body as JSON (or text).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub index: Option<u64>,
    pub body: serde_json::Value,
    pub text: String,
}

fn client() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(WAIT * 2)).build().into()
}

fn answer(mut response: ureq::http::Response<ureq::Body>) -> Answer {
    let status = response.status().as_u16();
    let index = response.headers().get("x-ndsr-index").and_then(|v| v.to_str().ok()?.parse().ok());
    let text = response.body_mut().with_config().limit(64 << 20).read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Answer { status, index, body, text }
}

impl Http {
    pub fn with_token(mut self, token: &str) -> Http {
        self.token = Some(token.to_string());
        self
    }

    fn auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        answer(self.auth(client().get(&format!("{}{path}", self.base))).call().unwrap())
    }

    pub fn put(&self, path: &str, body: &str) -> Answer {
        answer(self.auth(client().put(&format!("{}{path}", self.base))).send(body).unwrap())
    }

    pub fn post(&self, path: &str, body: &str) -> Answer {
        answer(self.auth(client().post(&format!("{}{path}", self.base))).send(body).unwrap())
    }

    pub fn delete(&self, path: &str) -> Answer {
        answer(self.auth(client().delete(&format!("{}{path}", self.base))).call().unwrap())
    }

    /// Opens a Server-Sent Events stream: each event's `data:` as JSON.
    pub fn events(&self, path: &str) -> Receiver<serde_json::Value> {
        let response = self.auth(client().get(&format!("{}{path}", self.base))).call().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let reader = BufReader::new(response.into_body().into_reader());
            for line in reader.lines().map_while(Result::ok) {
                if let Some(data) = line.strip_prefix("data: ") {
                    if tx.send(serde_json::from_str(data).unwrap()).is_err() {
                        break;
                    }
                }
            }
        });
        rx
    }
}

/// A GET with a Host header of our choosing (as a browser on a rebound
/// name would send): the status.
pub fn status_with_host(base: &str, path: &str, host: &str) -> u16 {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The next event for which `pred` holds (earlier ones are skipped).
pub fn event_where(
    rx: &Receiver<serde_json::Value>,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    super::next_where(rx, what, pred)
}
