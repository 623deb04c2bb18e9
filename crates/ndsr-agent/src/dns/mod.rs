//! The DNS interface (`[dns]`): the serving instances of services as A,
//! AAAA and SRV records, over UDP and TCP, on `hickory-server`. Every use
//! of hickory's API is in this module (`answer` makes the records), so its
//! changes stay here.
//!
//! Names: `NAME.service.DOMAIN`, `LABEL.NAME.service.DOMAIN` (instances
//! with a label of that value), `HEX.addr.DOMAIN` (an SRV target's
//! address). NXDOMAIN for an unknown service, NODATA for a known one with
//! no instance, both with the domain's SOA; the empty non-terminals
//! `service.DOMAIN` and `addr.DOMAIN` are NODATA (RFC 8020). Answers too
//! large for UDP are truncated (TC) by hickory; TCP carries them whole.
//! The UDP payload is the client's EDNS size clamped to 512..=1232 (RFC
//! 9715), and ANY is answered with one record (RFC 8482), so a small
//! forged query cannot get a large answer. At most [`IN_FLIGHT`] queries
//! are answered at once (SERVFAIL beyond), and a service never read is
//! waited for at most [`FIRST_READ`] (SERVFAIL after), so clients get an
//! answer before they time out during an outage.

mod answer;
mod lookup;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use metrics::{counter, histogram};

use self::answer::Outcome;
use self::lookup::Kept;
use crate::config::Dns;
use crate::state::Agent;
use crate::RunError;

/// How long a TCP connection may stay without a request.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection.
const TCP_BUFFER: usize = 32;
/// The largest UDP payload answered, whatever the client's EDNS size (RFC
/// 9715; DNS flag day 2020).
const MAX_UDP_PAYLOAD: u16 = 1232;
/// Queries answered at once; more are SERVFAIL at once.
pub const IN_FLIGHT: usize = 256;
/// How long a query waits for a service's first read (ZooKeeper down: SERVFAIL after).
pub const FIRST_READ: Duration = Duration::from_secs(2);

/// The DNS sockets, bound before anything is registered.
pub struct Bound {
    udp: tokio::net::UdpSocket,
    tcp: tokio::net::TcpListener,
    address: SocketAddr,
}

impl Bound {
    /// The address bound (UDP and TCP).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// Binds UDP and TCP on `[dns] listen` if `dns` is set (the listen address
/// is read only here: it changes on restart).
///
/// # Errors
/// [`RunError::Listen`] naming the address.
pub async fn bind(dns: Option<&Dns>) -> Result<Option<Bound>, RunError> {
    let Some(dns) = dns else { return Ok(None) };
    let listen = dns.listen;
    let (udp, tcp) = bind_both(listen).await.map_err(|error| RunError::Listen { address: listen, error })?;
    let address = udp.local_addr()?;
    Ok(Some(Bound { udp, tcp, address }))
}

/// Serves DNS on `bound` with the agent's `[dns]` (or the one it started
/// with, if a reload removed it). It stops when the agent does.
pub fn serve(agent: &Arc<Agent>, bound: Bound) {
    let Some(started) = agent.config().dns.clone() else { return };
    let handler = Handler {
        agent: agent.clone(),
        started,
        kept: Kept::default(),
        in_flight: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)),
    };
    let mut server = Server::new(handler);
    server.register_socket(bound.udp);
    server.register_listener(bound.tcp, TCP_TIMEOUT, TCP_BUFFER);
    let cancel = agent.cancel.clone();
    agent.tasks.spawn(async move {
        cancel.cancelled().await;
        if let Err(e) = server.shutdown_gracefully().await {
            tracing::warn!("DNS server: {e}");
        }
    });
}

/// A UDP socket and a TCP listener on the same address; port 0 picks a
/// port free for both.
async fn bind_both(listen: SocketAddr) -> std::io::Result<(tokio::net::UdpSocket, tokio::net::TcpListener)> {
    let mut tries = 0;
    loop {
        let udp = tokio::net::UdpSocket::bind(listen).await?;
        let mut at = listen;
        at.set_port(udp.local_addr()?.port());
        match tokio::net::TcpListener::bind(at).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if listen.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => {
                tries += 1
            }
            Err(e) => return Err(e),
        }
    }
}

/// Answers each request from the agent's state.
struct Handler {
    agent: Arc<Agent>,
    /// `[dns]` as the agent started, in force if a reload removes it.
    started: Dns,
    /// The services answered, kept followed.
    kept: Kept,
    /// Bounds the queries answered at once.
    in_flight: Arc<tokio::sync::Semaphore>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let begun = Instant::now();
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            edns.set_version(0);
            edns
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let (qtype, outcome) = match request.request_info() {
            Ok(info) => {
                let qtype = info.query.query_type();
                let lower = info.query.name().to_string().to_ascii_lowercase();
                let owner = Name::from(info.query.name().clone());
                let dns = self.agent.config().dns.clone().unwrap_or_else(|| self.started.clone());
                let permit = self.in_flight.clone().try_acquire_owned();
                let outcome = if request.metadata.op_code != OpCode::Query {
                    Outcome::NotImp
                } else if info.query.query_class() != DNSClass::IN {
                    Outcome::Refused
                } else if permit.is_err() {
                    Outcome::ServFail
                } else {
                    let answer = answer::answer(&self.agent, &self.kept, &dns, &owner, &lower, qtype);
                    tokio::time::timeout(FIRST_READ, answer).await.unwrap_or(Outcome::ServFail)
                };
                drop(permit);
                (Some(qtype), Some((dns, outcome)))
            }
            Err(_) => (None, None),
        };
        let (answers, additionals, soa): (Vec<Record>, Vec<Record>, Vec<Record>) = match outcome {
            Some((dns, Outcome::Records { answers, additionals })) => {
                metadata.authoritative = true;
                let soa = if answers.is_empty() { vec![answer::soa(&dns)] } else { Vec::new() };
                (answers, additionals, soa)
            }
            Some((dns, Outcome::NxDomain)) => {
                metadata.authoritative = true;
                metadata.response_code = ResponseCode::NXDomain;
                (Vec::new(), Vec::new(), vec![answer::soa(&dns)])
            }
            Some((_, Outcome::ServFail)) => {
                metadata.response_code = ResponseCode::ServFail;
                Default::default()
            }
            Some((_, Outcome::NotImp)) => {
                metadata.response_code = ResponseCode::NotImp;
                Default::default()
            }
            Some((_, Outcome::Refused)) | None => {
                metadata.response_code = match qtype {
                    Some(_) => ResponseCode::Refused,
                    None => ResponseCode::FormErr,
                };
                Default::default()
            }
        };
        let rcode = metadata.response_code;
        let message = builder.build(metadata, answers.iter(), [].iter(), soa.iter(), additionals.iter());
        let info = match response.send_response(message).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!("DNS: cannot answer {}: {e}", request.src());
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
            }
        };
        let kind: &'static str = qtype.map_or("none", <&'static str>::from);
        counter!("ndsr_dns_queries_total", "type" => kind, "rcode" => rcode_name(rcode)).increment(1);
        histogram!("ndsr_dns_answer_seconds").record(begun.elapsed().as_secs_f64());
        info
    }
}

/// A response code as `dig` shows it.
fn rcode_name(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::NotImp => "NOTIMP",
        _ => "OTHER",
    }
}
