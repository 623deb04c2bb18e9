//! Case 14: the agent's DNS interface against dnsmasq (Debian's), both on
//! this machine, serving the same A records in the same run.
//!
//! The agent (the real `ndsr agent` binary, `[dns]` on a free port) serves
//! the services registered on the run's ZooKeeper; dnsmasq serves the same
//! addresses from a hosts file. Concurrent clients ([`load`]) each send an
//! A query and wait for its answer, for a fixed time; queries per second
//! and the p50/p99 latency from send are compared.
//!
//! A 100-instance A answer is 1,645 bytes: more than the 1,232-byte EDNS
//! payload both servers allow over UDP, so both truncate it (TC, with the
//! 73 or 74 addresses that fit). So the 100-instance service is measured over
//! TCP (one connection per client, kept open), where both answer all 100;
//! over UDP the service has as many instances as both servers answer whole
//! in 1,232 bytes (73: see [`a_records_fitting`]).

mod dnsmasq;
mod load;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use self::load::{Expect, Load, Transport};
use crate::agent::{cpu_ns, ndsr_binary};
use crate::common::{fresh, Ctx, Row};
use crate::stats::quantile;

/// The instances of the service measured over TCP.
const INSTANCES: usize = 100;
/// The domain the agent serves by default.
const DOMAIN: &str = "service.ndsr.";

/// How many A records for a name of `name_len` wire bytes both servers
/// answer whole in an EDNS payload of `payload` bytes: header (12),
/// question (name, type, class), the OPT record (11), then 16 bytes per
/// record (a compressed name, type, class, TTL, length, 4 bytes of
/// address). hickory-server, under the agent, writes the question from the
/// query's bytes without noting the name for compression, so its first
/// record carries the whole name: `name_len - 2` bytes more than dnsmasq's
/// answer, which fits one record more (74 against 73 at 1,232 bytes).
fn a_records_fitting(payload: u16, name_len: usize) -> usize {
    (usize::from(payload) - 12 - (name_len + 4) - 11 - (name_len - 2)) / 16
}

/// The wire length of a dotted name ("web.service.ndsr." is 18).
fn wire_len(name: &str) -> usize {
    name.trim_end_matches('.').split('.').map(|label| label.len() + 1).sum::<usize>() + 1
}

/// The agent with `[dns]`; killed on drop.
struct DnsAgent {
    child: Child,
    dns: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for DnsAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DnsAgent {
    fn start(servers: &str, root: &str) -> Result<DnsAgent, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let config = dir.path().join("agent.toml");
        let text = format!("roots = [\"{root}\"]\n[dns]\nlisten = \"127.0.0.1:0\"\n");
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let mut child = Command::new(ndsr_binary()?)
            .args(["--server", servers, "-q", "agent", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting ndsr agent: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut reader = std::io::BufReader::new(stdout);
        let mut seen = String::new();
        // "listening on http://..." then "DNS on 127.0.0.1:PORT (UDP and TCP)".
        for _ in 0..2 {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut reader, &mut line).map_err(|e| e.to_string())?;
            if let Some(rest) = line.split("DNS on ").nth(1) {
                let address = rest.split_whitespace().next().unwrap_or_default();
                let dns = address.parse().map_err(|_| format!("the agent's DNS address: {line:?}"))?;
                return Ok(DnsAgent { child, dns, _dir: dir });
            }
            seen.push_str(&line);
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("the agent did not say where DNS listens: {seen:?}"))
    }
}

/// One server under load.
struct Peer {
    name: &'static str,
    address: SocketAddr,
    pid: u32,
}

/// A server's figures for one transport over the rounds.
#[derive(Default)]
struct Figures {
    qps: Vec<f64>,
    latencies_us: Vec<f64>,
    cpu_us_per_answer: Vec<f64>,
    answers: u64,
    parsed: u64,
    reconnects: u64,
    errors: load::Errors,
}

impl Figures {
    fn add(&mut self, load: Load, cpu_ns: u64) {
        self.qps.push(load.qps());
        self.cpu_us_per_answer.push(cpu_ns as f64 / 1000.0 / load.answers.max(1) as f64);
        self.answers += load.answers;
        self.parsed += load.parsed;
        self.reconnects += load.reconnects;
        self.errors.add(&load.errors);
        self.latencies_us.extend(load.latencies_us);
    }

    fn note(&self, name: &str) -> String {
        format!(
            "{name}: {} answers ({} parsed whole), {}{}",
            self.answers,
            self.parsed,
            self.errors.describe(),
            if self.reconnects > 0 {
                format!(", {} reconnects after the server closed", self.reconnects)
            } else {
                String::new()
            }
        )
    }
}

/// The hosts file dnsmasq serves: each address of each name on its line.
fn hosts(services: &[(String, Vec<Ipv4Addr>)]) -> String {
    let mut text = String::new();
    for (name, addresses) in services {
        for a in addresses {
            text.push_str(&format!("{a} {}\n", name.trim_end_matches('.')));
        }
    }
    text
}

/// Runs the case: its rows, or why it could not run (no dnsmasq, say).
pub async fn run(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let binary = dnsmasq::binary()?;
    let version = dnsmasq::version(&binary);
    let clients = ctx.size(8, 4);
    let rounds = ctx.size(3, 1);
    let duration = Duration::from_millis(ctx.size(3000, 500) as u64);
    let warm_up = Duration::from_millis(ctx.size(500, 200) as u64);

    // Two services: `web`, 100 instances (TCP), and `api`, as many as fit
    // a UDP answer whole.
    let web = format!("web.{DOMAIN}");
    let api = format!("api.{DOMAIN}");
    let fitting = a_records_fitting(load::PAYLOAD, wire_len(&api));
    let web_addresses: Vec<Ipv4Addr> = (1..=INSTANCES as u8).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
    let api_addresses: Vec<Ipv4Addr> = (1..=fitting as u8).map(|i| Ipv4Addr::new(198, 51, 100, i)).collect();
    let services = vec![(web.clone(), web_addresses.clone()), (api.clone(), api_addresses.clone())];

    let root = fresh("dns");
    let servers = ctx.servers();
    let registry = ndsr::Registry::builder(&servers).build().await.map_err(|e| e.to_string())?;
    let registrations = services.iter().flat_map(|(name, addresses)| {
        let service = name.split('.').next().unwrap_or_default().to_string();
        let (root, registry) = (&root, &registry);
        addresses.iter().map(move |a| {
            let path = format!("{root}/{service}/{a}:80");
            async move { registry.set_node(&path, json!({})).await }
        })
    });
    for registered in futures::future::join_all(registrations).await {
        registered.map_err(|e| e.to_string())?;
    }

    let agent = {
        let (servers, root) = (servers.clone(), root.clone());
        tokio::task::spawn_blocking(move || DnsAgent::start(&servers, &root))
            .await
            .map_err(|e| e.to_string())??
    };
    let text = hosts(&services);
    let dnsmasq = {
        let binary = binary.clone();
        tokio::task::spawn_blocking(move || dnsmasq::Dnsmasq::start(&binary, &text))
            .await
            .map_err(|e| e.to_string())??
    };
    let peers = [
        Peer { name: "ndsr agent", address: agent.dns, pid: agent.child.id() },
        Peer { name: "dnsmasq", address: dnsmasq.address, pid: dnsmasq.pid() },
    ];
    let udp = Arc::new(Expect::new(&api, &api_addresses)?);
    let tcp = Arc::new(Expect::new(&web, &web_addresses)?);
    let checks = [(Transport::Udp, &udp), (Transport::Tcp, &tcp)];
    for peer in &peers {
        for (transport, expect) in checks {
            load::ready(peer.address, transport, expect, Duration::from_secs(15))
                .await
                .map_err(|e| format!("{}: {e}", peer.name))?;
        }
    }

    // Rounds alternate which server goes first; each measurement follows a
    // warm-up of the same clients.
    let mut figures: [[Figures; 2]; 2] = Default::default();
    for round in 0..rounds {
        for (t, (transport, expect)) in checks.iter().enumerate() {
            for p in [round % 2, 1 - round % 2] {
                let peer = &peers[p];
                load::run(peer.address, *transport, expect, clients, warm_up).await?;
                let cpu = cpu_ns(&format!("/proc/{}", peer.pid));
                let measured = load::run(peer.address, *transport, expect, clients, duration).await?;
                let cpu = cpu_ns(&format!("/proc/{}", peer.pid)).saturating_sub(cpu);
                figures[t][p].add(measured, cpu);
            }
        }
    }
    registry.close().await;
    drop(agent);
    drop(dnsmasq);

    let peer = if version.is_empty() {
        "dnsmasq".to_string()
    } else {
        version.replace("Dnsmasq version", "dnsmasq")
    };
    let peer = peer.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let method = format!(
        "{clients} clients, each one query at a time (EDNS payload {}); {rounds} rounds of {:.1} s per server \
         after a {:.1} s warm-up, alternating which goes first; clients and servers share the machine",
        load::PAYLOAD,
        duration.as_secs_f64(),
        warm_up.as_secs_f64()
    );
    let mut rows = Vec::new();
    for (t, (transport, label, n)) in
        [(Transport::Udp, "UDP", fitting), (Transport::Tcp, "TCP", INSTANCES)].into_iter().enumerate()
    {
        let [ours, theirs] = &figures[t];
        let note = format!("{method}; {}; {}", ours.note("ndsr"), theirs.note("dnsmasq"));
        let what = format!("{label}, A of {n} instances");
        if ours.errors.total() > 0 || theirs.errors.total() > 0 {
            eprintln!(
                "ndsr-bench: case 14 {what}: ndsr {}; dnsmasq {}",
                ours.errors.describe(),
                theirs.errors.describe()
            );
        }
        rows.push(Row::compare(
            "14 dns",
            &format!("{what}: answers/s, {clients} clients (median of rounds)"),
            quantile(&ours.qps, 0.5),
            &peer,
            quantile(&theirs.qps, 0.5),
            "≥ dnsmasq's rate",
            Some(|r| r >= 1.0),
            note.clone(),
        ));
        for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
            rows.push(Row::compare(
                "14 dns",
                &format!("{what}: answer {name} from send, µs"),
                quantile(&ours.latencies_us, q),
                &peer,
                quantile(&theirs.latencies_us, q),
                "",
                None,
                note.clone(),
            ));
        }
        if transport == Transport::Udp {
            rows.push(Row::compare(
                "14 dns",
                &format!("{what}: server CPU per answer, µs (median of rounds)"),
                quantile(&ours.cpu_us_per_answer, 0.5),
                &peer,
                quantile(&theirs.cpu_us_per_answer, 0.5),
                "",
                None,
                "each server's CPU time over a measurement (all its threads, /proc/<pid>/task/*/schedstat), \
                 over its correct answers"
                    .into(),
            ));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_sizes() {
        assert_eq!(wire_len("web.service.ndsr."), 18);
        assert_eq!(wire_len("web.service.ndsr"), 18);
        // dnsmasq: 12 + 22 + 74 * 16 + 11 = 1,229 bytes; the agent 16 more
        // for 74 (1,245, truncated to 73 as `dig` shows), 1,229 for 73.
        assert_eq!(a_records_fitting(1232, 18), 73);
        assert_eq!(a_records_fitting(512, 18), 28);
    }
}
