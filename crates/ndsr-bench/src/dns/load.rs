//! The DNS load generator: concurrent clients, each sending an A query
//! (EDNS, payload 1232) and waiting for its answer before the next, over
//! UDP (a socket each) or TCP (a connection each, reopened when the server
//! closes it), until a deadline. Every answer's header is checked (its ID,
//! a response, NOERROR, not truncated, as many answers as instances); one
//! answer in [`FULL_CHECK_EVERY`] per client (and each client's first) is
//! parsed whole with hickory-proto and its addresses compared with the
//! expected set. Parsing every answer would take CPU the servers need on
//! this machine's two cores.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The EDNS payload the clients offer (RFC 9715; DNS flag day 2020).
pub const PAYLOAD: u16 = 1232;
/// How long a UDP client waits for an answer before counting it lost.
const UDP_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a TCP query may take (reconnects included) before the run fails.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// One answer in this many (per client) is parsed whole.
const FULL_CHECK_EVERY: u64 = 64;

/// UDP or TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// One datagram each way.
    Udp,
    /// Length-prefixed messages on a connection kept open.
    Tcp,
}

/// What a query asks and what its answer must hold.
pub struct Expect {
    /// The query, encoded (its ID is set per query).
    query: Vec<u8>,
    /// The addresses the answer must carry, each once.
    addresses: BTreeSet<Ipv4Addr>,
}

impl Expect {
    /// An A query for `name` (EDNS, payload [`PAYLOAD`], recursion desired
    /// as a stub resolver sends it) whose answer is exactly `addresses`.
    pub fn new(name: &str, addresses: &[Ipv4Addr]) -> Result<Expect, String> {
        let name = Name::from_ascii(name).map_err(|e| format!("{name}: {e}"))?;
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(name, RecordType::A));
        let mut edns = Edns::new();
        edns.set_max_payload(PAYLOAD);
        edns.set_version(0);
        message.set_edns(edns);
        let query = message.to_vec().map_err(|e| e.to_string())?;
        Ok(Expect { query, addresses: addresses.iter().copied().collect() })
    }

    /// Checks an answer to the query with `id`: `Err` says what is wrong.
    fn check(&self, answer: &[u8], id: u16, full: bool) -> Result<(), Wrong> {
        if answer.len() < 12 || answer[0..2] != id.to_be_bytes() || answer[2] & 0x80 == 0 {
            return Err(Wrong::Other);
        }
        if answer[2] & 0x02 != 0 {
            return Err(Wrong::Truncated);
        }
        if answer[3] & 0x0f != 0 {
            return Err(Wrong::Rcode);
        }
        if usize::from(u16::from_be_bytes([answer[6], answer[7]])) != self.addresses.len() {
            return Err(Wrong::Count);
        }
        if full {
            let message = Message::from_vec(answer).map_err(|_| Wrong::Other)?;
            let got: Vec<Ipv4Addr> = message
                .answers
                .iter()
                .filter_map(|r| match r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            let set: BTreeSet<Ipv4Addr> = got.iter().copied().collect();
            if got.len() != set.len() || set != self.addresses {
                return Err(Wrong::Addresses);
            }
        }
        Ok(())
    }
}

/// What was wrong with an answer.
#[derive(Clone, Copy, Debug)]
enum Wrong {
    Truncated,
    Rcode,
    Count,
    Addresses,
    Other,
}

/// Answers that did not count, by cause.
#[derive(Clone, Debug, Default)]
pub struct Errors {
    /// UDP answers not received within [`UDP_TIMEOUT`].
    pub lost: u64,
    /// Answers with TC set.
    pub truncated: u64,
    /// Answers with another rcode than NOERROR.
    pub rcode: u64,
    /// Answers with another number of records than instances.
    pub count: u64,
    /// Parsed answers whose addresses differ from the expected ones.
    pub addresses: u64,
    /// Answers that are not answers to the query (no response, bad ID...).
    pub other: u64,
}

impl Errors {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.lost + self.truncated + self.rcode + self.count + self.addresses + self.other
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Errors) {
        self.lost += other.lost;
        self.truncated += other.truncated;
        self.rcode += other.rcode;
        self.count += other.count;
        self.addresses += other.addresses;
        self.other += other.other;
    }

    fn count_wrong(&mut self, wrong: Wrong) {
        match wrong {
            Wrong::Truncated => self.truncated += 1,
            Wrong::Rcode => self.rcode += 1,
            Wrong::Count => self.count += 1,
            Wrong::Addresses => self.addresses += 1,
            Wrong::Other => self.other += 1,
        }
    }

    /// In words, for a report's note.
    pub fn describe(&self) -> String {
        if self.total() == 0 {
            return "no error".into();
        }
        format!(
            "errors: {} lost, {} truncated, {} not NOERROR, {} with another count, {} with other addresses, {} malformed",
            self.lost, self.truncated, self.rcode, self.count, self.addresses, self.other
        )
    }
}

/// What one run of the clients gave.
#[derive(Debug, Default)]
pub struct Load {
    /// Correct answers.
    pub answers: u64,
    /// Each correct answer's latency from send, µs.
    pub latencies_us: Vec<f64>,
    /// The rest.
    pub errors: Errors,
    /// Answers parsed whole (and found right).
    pub parsed: u64,
    /// TCP connections reopened after the server closed one.
    pub reconnects: u64,
    /// From the start until the last client stopped.
    pub elapsed: Duration,
}

impl Load {
    /// Correct answers per second.
    pub fn qps(&self) -> f64 {
        self.answers as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `clients` clients against `server` for `duration` (each sends at
/// least one query, stops sending at the deadline and waits for its last
/// answer).
pub async fn run(
    server: SocketAddr,
    transport: Transport,
    expect: &Arc<Expect>,
    clients: usize,
    duration: Duration,
) -> Result<Load, String> {
    let start = Instant::now();
    let until = start + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let expect = expect.clone();
            // IDs differ between clients, so a stray answer never matches.
            let first_id = (i as u16).wrapping_mul(7919);
            tokio::spawn(async move {
                match transport {
                    Transport::Udp => udp_client(server, expect, first_id, until).await,
                    Transport::Tcp => tcp_client(server, expect, first_id, until).await,
                }
            })
        })
        .collect();
    let mut load = Load::default();
    let mut failed = None;
    for task in futures::future::join_all(tasks).await {
        match task {
            Ok(Ok(client)) => {
                load.answers += client.answers;
                load.latencies_us.extend(client.latencies_us);
                load.errors.add(&client.errors);
                load.parsed += client.parsed;
                load.reconnects += client.reconnects;
            }
            Ok(Err(e)) => failed = Some(e),
            Err(e) => failed = Some(e.to_string()),
        }
    }
    load.elapsed = start.elapsed();
    match failed {
        Some(e) => Err(e),
        None => Ok(load),
    }
}

/// One client's tally.
#[derive(Default)]
struct Tally {
    answers: u64,
    latencies_us: Vec<f64>,
    errors: Errors,
    parsed: u64,
    reconnects: u64,
    sent: u64,
}

impl Tally {
    fn record(&mut self, expect: &Expect, answer: &[u8], id: u16, latency: Duration) {
        let full = self.sent.is_multiple_of(FULL_CHECK_EVERY);
        self.sent += 1;
        match expect.check(answer, id, full) {
            Ok(()) => {
                self.answers += 1;
                self.parsed += u64::from(full);
                self.latencies_us.push(latency.as_secs_f64() * 1e6);
            }
            Err(wrong) => self.errors.count_wrong(wrong),
        }
    }
}

async fn udp_client(
    server: SocketAddr,
    expect: Arc<Expect>,
    mut id: u16,
    until: Instant,
) -> Result<Tally, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    let mut query = expect.query.clone();
    let mut buf = vec![0u8; 65_535];
    let mut tally = Tally::default();
    // At least one query, then until the deadline.
    loop {
        id = id.wrapping_add(1);
        query[0..2].copy_from_slice(&id.to_be_bytes());
        let sent = Instant::now();
        socket.send(&query).await.map_err(|e| format!("UDP send to {server}: {e}"))?;
        // Answers to earlier (lost) queries are skipped.
        let received = loop {
            match tokio::time::timeout_at((sent + UDP_TIMEOUT).into(), socket.recv(&mut buf)).await {
                Err(_) => break None,
                Ok(Err(e)) => return Err(format!("UDP receive from {server}: {e}")),
                Ok(Ok(n)) if n >= 2 && buf[0..2] == id.to_be_bytes() => break Some(n),
                Ok(Ok(_)) => continue,
            }
        };
        let latency = sent.elapsed();
        match received {
            Some(n) => tally.record(&expect, &buf[..n], id, latency),
            None => {
                tally.sent += 1;
                tally.errors.lost += 1;
            }
        }
        if Instant::now() >= until {
            return Ok(tally);
        }
    }
}

async fn connect(server: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(server).await.map_err(|e| format!("TCP connect to {server}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Sends `framed` on `stream` and reads one length-prefixed message into
/// `buf`: its length.
async fn exchange(stream: &mut TcpStream, framed: &[u8], buf: &mut Vec<u8>) -> std::io::Result<usize> {
    stream.write_all(framed).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let len = usize::from(u16::from_be_bytes(len));
    if buf.len() < len {
        buf.resize(len, 0);
    }
    stream.read_exact(&mut buf[..len]).await?;
    Ok(len)
}

async fn tcp_client(
    server: SocketAddr,
    expect: Arc<Expect>,
    mut id: u16,
    until: Instant,
) -> Result<Tally, String> {
    let mut stream = connect(server).await?;
    let len = u16::try_from(expect.query.len()).map_err(|e| e.to_string())?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&expect.query);
    let mut buf = vec![0u8; 65_535];
    let mut tally = Tally::default();
    // At least one query, then until the deadline.
    loop {
        id = id.wrapping_add(1);
        framed[2..4].copy_from_slice(&id.to_be_bytes());
        let sent = Instant::now();
        // A server may close a connection after some queries (dnsmasq:
        // after 100): a new one is opened and the query sent again, the
        // time counted in this query's latency, as a client would see it.
        let answered = tokio::time::timeout_at((sent + TCP_TIMEOUT).into(), async {
            let mut tries = 0;
            loop {
                match exchange(&mut stream, &framed, &mut buf).await {
                    Ok(n) => return Ok(n),
                    Err(e) if tries >= 3 => return Err(format!("TCP query to {server}: {e}")),
                    Err(_) => {
                        tries += 1;
                        tally.reconnects += 1;
                        stream = connect(server).await?;
                    }
                }
            }
        })
        .await
        .map_err(|_| format!("TCP query to {server}: no answer in {TCP_TIMEOUT:?}"))??;
        let latency = sent.elapsed();
        tally.record(&expect, &buf[..answered], id, latency);
        if Instant::now() >= until {
            return Ok(tally);
        }
    }
}

/// One query to `server`, repeated until an answer passes every check (or
/// `limit` passes): whether the server is ready and answers in full.
pub async fn ready(
    server: SocketAddr,
    transport: Transport,
    expect: &Arc<Expect>,
    limit: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        match run(server, transport, expect, 1, Duration::ZERO).await {
            Ok(load) if load.answers == 1 && load.parsed == 1 => return Ok(()),
            Ok(load) => last = load.errors.describe(),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{server} ({transport:?}) gave no full answer within {limit:?}: {last}"))
}
