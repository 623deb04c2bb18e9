//! The agent's DNS interface (`[dns]`) against a real ZooKeeper, asked
//! with `dig` (Debian's bind9-dnsutils): A and SRV of serving instances,
//! label filters, aliases, NXDOMAIN vs NODATA with the SOA, truncation
//! then TCP, shuffled order, metrics, and the last answers while
//! ZooKeeper is down.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::agent::Agent;
use common::*;
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::json;

/// `dig`'s answer, parsed.
#[derive(Debug)]
struct Dig {
    status: String,
    flags: Vec<String>,
    answer: Vec<Vec<String>>,
    authority: Vec<Vec<String>>,
    additional: Vec<Vec<String>>,
    text: String,
}

impl Dig {
    /// The last field (the data) of each answer record of type `kind`.
    fn data(&self, kind: &str) -> Vec<String> {
        self.answer.iter().filter(|r| r[3] == kind).map(|r| r[4..].join(" ")).collect()
    }
}

/// Asks the agent at `port` with `dig` (`extra`: more options).
fn dig(port: u16, name: &str, kind: &str, extra: &[&str]) -> Dig {
    let port = port.to_string();
    let mut args = vec!["@127.0.0.1", "-p", &port, "+time=5", "+tries=1", "+norecurse", name, kind];
    args.extend_from_slice(extra);
    let output =
        Command::new("/usr/bin/dig").args(&args).output().expect("dig (apt-get install bind9-dnsutils)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "dig {args:?}: {text}");
    let mut dig = Dig {
        status: String::new(),
        flags: Vec::new(),
        answer: Vec::new(),
        authority: Vec::new(),
        additional: Vec::new(),
        text: text.clone(),
    };
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            dig.status = rest.split(',').next().unwrap_or_default().to_string();
        }
        if let Some(rest) = line.strip_prefix(";; flags: ") {
            dig.flags =
                rest.split(';').next().unwrap_or_default().split_whitespace().map(String::from).collect();
        }
        if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
        } else if line.starts_with(";; ADDITIONAL SECTION") {
            section = "additional";
        } else if line.is_empty() || line.starts_with(';') {
            section = "";
        } else {
            let record: Vec<String> = line.split_whitespace().map(String::from).collect();
            match section {
                "answer" => dig.answer.push(record),
                "authority" => dig.authority.push(record),
                "additional" => dig.additional.push(record),
                _ => {}
            }
        }
    }
    dig
}

/// Starts an agent with `[dns]` on a free port: the agent and the port.
fn start(server: &str, root: &str, dns: &str) -> (Agent, u16) {
    let config = format!("roots = [\"{root}\"]\n[dns]\nlisten = \"127.0.0.1:0\"\n{dns}");
    let agent = Agent::start(server, &config);
    let port = agent.dns_port();
    (agent, port)
}

fn registry(rt: &tokio::runtime::Runtime, server: &str) -> ndsr::Registry {
    rt.block_on(ndsr::Registry::builder(server).build()).unwrap()
}

fn curator(id: &str, address: &str, port: u16, enabled: bool) -> serde_json::Value {
    json!({"name": "api", "id": id, "address": address, "port": port, "sslPort": null, "payload": null,
           "registrationTimeUTC": 1, "serviceType": "DYNAMIC", "uriSpec": null, "enabled": enabled})
}

#[test]
fn answers_a_srv_labels_aliases_and_negative_answers_with_the_soa() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-dns");
    let writer = registry(&rt, &server);
    for (host, zone) in [("10.0.0.1:80", "blue"), ("10.0.0.2:81", "green")] {
        rt.block_on(writer.set_node(&format!("{root}/web/{host}"), json!({"zone": zone}))).unwrap();
    }
    rt.block_on(writer.set_data(&format!("{root}/empty"), json!({}))).unwrap();
    for host in ["[2001:db8::1]:443", "db.example.com:5432"] {
        rt.block_on(writer.set_node(&format!("{root}/v6/{host}"), json!({}))).unwrap();
    }
    // A deeper path, by alias, in Curator's format: the disabled one is not served.
    rt.block_on(writer.set_data(&format!("{root}/deep/api/c1"), curator("c1", "10.0.1.1", 9000, true)))
        .unwrap();
    rt.block_on(writer.set_data(&format!("{root}/deep/api/c2"), curator("c2", "10.0.1.2", 9000, false)))
        .unwrap();
    let dns = format!(
        "ttl = 7\n[dns.services]\napi = \"{root}/deep/api\"\n[dns.service_ttl]\n\"v*\" = 30\nv6 = 40\n\"ap*\" = 50"
    );
    let (agent, port) = start(&server, &root, &dns);

    let a = dig(port, "web.service.ndsr", "A", &[]);
    assert_eq!(a.status, "NOERROR", "{}", a.text);
    assert!(a.flags.contains(&"aa".to_string()), "authoritative: {}", a.text);
    let addresses: BTreeSet<String> = a.data("A").into_iter().collect();
    assert_eq!(addresses, BTreeSet::from(["10.0.0.1".into(), "10.0.0.2".into()]), "{}", a.text);
    assert!(a.answer.iter().all(|r| r[1] == "7"), "the TTL: {}", a.text);
    // Names are not case-sensitive.
    assert_eq!(dig(port, "WEB.Service.NDSR", "A", &[]).data("A").len(), 2);

    // SRV: priority, weight, port and a target whose address is in the
    // additional section (and resolves on its own).
    let srv = dig(port, "web.service.ndsr", "SRV", &[]);
    let records: BTreeSet<String> = srv.data("SRV").into_iter().collect();
    let expected =
        BTreeSet::from(["1 1 80 0a000001.addr.ndsr.".to_string(), "1 1 81 0a000002.addr.ndsr.".into()]);
    assert_eq!(records, expected, "{}", srv.text);
    let glue: BTreeSet<String> =
        srv.additional.iter().filter(|r| r[3] == "A").map(|r| r[4].clone()).collect();
    assert_eq!(glue, BTreeSet::from(["10.0.0.1".into(), "10.0.0.2".into()]), "{}", srv.text);
    assert_eq!(dig(port, "0a000002.addr.ndsr", "A", &[]).data("A"), ["10.0.0.2"]);

    // IPv6 and host names: AAAA, SRV to the address's name or the host's.
    let aaaa = dig(port, "v6.service.ndsr", "AAAA", &[]);
    assert_eq!(aaaa.data("AAAA"), ["2001:db8::1"], "{}", aaaa.text);
    assert_eq!(aaaa.answer[0][1], "40", "the service's own TTL: {}", aaaa.text);
    let only_v6 = dig(port, "v6.service.ndsr", "A", &[]);
    assert_eq!((only_v6.status.as_str(), only_v6.answer.len()), ("NOERROR", 0), "{}", only_v6.text);
    let srv6: BTreeSet<String> = dig(port, "v6.service.ndsr", "SRV", &[]).data("SRV").into_iter().collect();
    let expected = BTreeSet::from([
        "1 1 443 20010db8000000000000000000000001.addr.ndsr.".to_string(),
        "1 1 5432 db.example.com.".into(),
    ]);
    assert_eq!(srv6, expected);
    assert_eq!(
        dig(port, "20010db8000000000000000000000001.addr.ndsr", "AAAA", &[]).data("AAAA"),
        ["2001:db8::1"]
    );

    // A label's value filters (Consul's tag form).
    assert_eq!(dig(port, "green.web.service.ndsr", "A", &[]).data("A"), ["10.0.0.2"]);
    let none = dig(port, "red.web.service.ndsr", "A", &[]);
    assert_eq!((none.status.as_str(), none.answer.len()), ("NOERROR", 0), "{}", none.text);

    // An alias, in any format the discovery layer reads; only serving instances.
    let api = dig(port, "api.service.ndsr", "A", &[]);
    assert_eq!(api.data("A"), ["10.0.1.1"], "{}", api.text);
    assert_eq!(api.answer[0][1], "50", "a prefix's TTL: {}", api.text);

    // NXDOMAIN for an unknown service, NODATA for a known one without
    // instances; both with the SOA, whose minimum is the TTL.
    let soa = |d: &Dig| d.authority.iter().find(|r| r[3] == "SOA").cloned().unwrap_or_default();
    let unknown = dig(port, "nope.service.ndsr", "A", &[]);
    assert_eq!((unknown.status.as_str(), unknown.answer.len()), ("NXDOMAIN", 0), "{}", unknown.text);
    let record = soa(&unknown);
    assert_eq!(record.first().map(String::as_str), Some("ndsr."), "{}", unknown.text);
    assert_eq!(record.last().map(String::as_str), Some("7"), "the SOA minimum: {}", unknown.text);
    let empty = dig(port, "empty.service.ndsr", "A", &[]);
    assert_eq!((empty.status.as_str(), empty.answer.len()), ("NOERROR", 0), "{}", empty.text);
    assert_eq!(soa(&empty).last().map(String::as_str), Some("7"), "{}", empty.text);
    let other = dig(port, "web.service.ndsr", "TXT", &[]);
    assert_eq!((other.status.as_str(), other.answer.len()), ("NOERROR", 0), "{}", other.text);
    assert!(!soa(&other).is_empty(), "{}", other.text);
    // The empty non-terminals exist (NODATA, not NXDOMAIN: RFC 8020).
    for branch in ["service.ndsr", "addr.ndsr"] {
        let nodata = dig(port, branch, "A", &[]);
        assert_eq!((nodata.status.as_str(), nodata.answer.len()), ("NOERROR", 0), "{}", nodata.text);
        assert_eq!(soa(&nodata).first().map(String::as_str), Some("ndsr."), "{}", nodata.text);
    }
    let outside = dig(port, "web.service.example", "A", &[]);
    assert_eq!(outside.status, "REFUSED", "{}", outside.text);
    let chaos = dig(port, "web.service.ndsr", "A", &["-c", "CH"]);
    assert_eq!((chaos.status.as_str(), chaos.answer.len()), ("REFUSED", 0), "{}", chaos.text);
    // An update is not implemented (nsupdate, from the same package as dig).
    let mut nsupdate = Command::new("/usr/bin/nsupdate")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let script =
        format!("server 127.0.0.1 {port}\nzone ndsr.\nupdate add x.service.ndsr. 60 A 10.9.9.9\nsend\n");
    std::io::Write::write_all(nsupdate.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    let output = nsupdate.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("NOTIMP"), "{said}");

    // TCP answers the same.
    let tcp = dig(port, "web.service.ndsr", "A", &["+tcp"]);
    assert_eq!(tcp.data("A").len(), 2, "{}", tcp.text);

    // A new instance is answered once the agent sees it.
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.3:82"), json!({"zone": "blue"}))).unwrap();
    poll("the new instance", || dig(port, "web.service.ndsr", "A", &[]).data("A").len() == 3);
    assert_eq!(dig(port, "blue.web.service.ndsr", "A", &[]).data("A").len(), 2);

    let metrics = agent.http().get("/metrics").text;
    assert!(metrics.contains(r#"ndsr_dns_queries_total{type="A",rcode="NXDOMAIN"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"ndsr_dns_queries_total{type="SRV",rcode="NOERROR"}"#), "{metrics}");
}

#[test]
fn large_answers_are_truncated_over_udp_whole_over_tcp_and_shuffled() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-dns-big");
    let writer = registry(&rt, &server);
    for i in 1..=60 {
        rt.block_on(writer.set_node(&format!("{root}/big/10.0.2.{i}:80"), json!({}))).unwrap();
    }
    let (_agent, port) = start(&server, &root, "");
    poll("all 60 instances", || dig(port, "big.service.ndsr", "A", &["+tcp"]).data("A").len() == 60);

    // Plain DNS (512 bytes, no EDNS): truncated, and dig does not retry.
    let udp = dig(port, "big.service.ndsr", "A", &["+noedns", "+ignore"]);
    assert!(udp.flags.contains(&"tc".to_string()), "the TC bit: {}", udp.text);
    assert!(udp.data("A").len() < 60, "{}", udp.text);
    // dig's default: truncated over UDP, then whole over TCP.
    let retried = dig(port, "big.service.ndsr", "A", &["+noedns"]);
    assert_eq!(retried.data("A").len(), 60, "{}", retried.text);
    assert!(!retried.flags.contains(&"tc".to_string()), "{}", retried.text);
    // A client's EDNS size above 1232 is not honoured: 60 SRV records and
    // their addresses (about 2.7 kB) are truncated over UDP, whole over TCP.
    let big = dig(port, "big.service.ndsr", "SRV", &["+bufsize=4096", "+notcp", "+ignore"]);
    assert!(big.flags.contains(&"tc".to_string()), "the TC bit: {}", big.text);
    assert!(big.data("SRV").len() < 60, "{}", big.text);
    let whole = dig(port, "big.service.ndsr", "SRV", &["+bufsize=4096"]);
    assert_eq!(whole.data("SRV").len(), 60, "{}", whole.text);
    // ANY: one record (RFC 8482).
    let any = dig(port, "big.service.ndsr", "ANY", &["+notcp", "+ignore"]);
    assert_eq!((any.status.as_str(), any.answer.len()), ("NOERROR", 1), "{}", any.text);
    assert!(!any.flags.contains(&"tc".to_string()), "{}", any.text);

    // The order changes from answer to answer.
    let first = dig(port, "big.service.ndsr", "A", &["+tcp"]).data("A");
    let orders: BTreeSet<Vec<String>> =
        (0..5).map(|_| dig(port, "big.service.ndsr", "A", &["+tcp"]).data("A")).chain([first]).collect();
    assert!(orders.len() > 1, "six answers in one order");
}

#[test]
fn serves_the_last_answers_while_zookeeper_is_down() {
    let rt = runtime();
    let zk_server = ZkServer::new().unwrap();
    let server = zk_server.connect_string();
    let root = unique_path("agent-dns-stale");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.3.1:80"), json!({}))).unwrap();
    rt.block_on(writer.set_data(&format!("{root}/empty"), json!({}))).unwrap();
    rt.block_on(writer.set_data(&format!("{root}/other"), json!({}))).unwrap();
    // Paths followed only for a reader are let go after path_idle; DNS's stay.
    let (agent, port) = start(&server, &root, "[http]\npath_idle = \"300ms\"");
    assert_eq!(dig(port, "web.service.ndsr", "A", &[]).data("A"), ["10.0.3.1"]);
    assert_eq!(dig(port, "empty.service.ndsr", "A", &[]).status, "NOERROR");
    let followed = |kind: &str| -> u64 {
        let metrics = agent.http().get("/metrics").text;
        let prefix = format!("ndsr_agent_followed{{kind=\"{kind}\"}} ");
        let line = metrics.lines().find_map(|l| l.strip_prefix(&prefix).map(String::from));
        line.and_then(|n| n.trim().parse().ok()).unwrap_or(0)
    };
    // A node read over HTTP after DNS's reads (DNS keeps the root it lists).
    assert_eq!(agent.http().get(&format!("/v1/nodes{root}/other")).status, 200);
    poll("the HTTP reader's node let go", || followed("node") == 1);
    assert_eq!(followed("service"), 2, "the services DNS answered stay followed");

    zk_server.stop().unwrap();
    poll("the agent sees the outage", || agent.http().get("/v1/health").status == 503);
    poll("the service is marked stale", || {
        agent.http().get(&format!("/v1/services{root}/web")).body["stale"] == true
    });
    // The last known answers, not an empty one caused by the outage.
    let stale = dig(port, "web.service.ndsr", "A", &[]);
    assert_eq!(
        (stale.status.as_str(), stale.data("A")),
        ("NOERROR", vec!["10.0.3.1".to_string()]),
        "{}",
        stale.text
    );
    assert_eq!(dig(port, "web.service.ndsr", "SRV", &[]).data("SRV"), ["1 1 80 0a000301.addr.ndsr."]);
    assert_eq!(dig(port, "empty.service.ndsr", "A", &[]).status, "NOERROR");
    assert_eq!(dig(port, "nope.service.ndsr", "A", &[]).status, "NXDOMAIN");
}

#[test]
fn answers_servfail_once_zookeeper_is_down_longer_than_max_stale() {
    let rt = runtime();
    let zk_server = ZkServer::new().unwrap();
    let server = zk_server.connect_string();
    let root = unique_path("agent-dns-max-stale");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.5.1:80"), json!({}))).unwrap();
    let dns = format!("max_stale = \"1s\"\n[dns.services]\nnever = \"{root}/never\"");
    let (agent, port) = start(&server, &root, &dns);
    assert_eq!(dig(port, "web.service.ndsr", "A", &[]).data("A"), ["10.0.5.1"]);

    zk_server.stop().unwrap();
    poll("the agent sees the outage", || agent.http().get("/v1/health").status == 503);
    // Past max_stale: SERVFAIL, never an empty or NXDOMAIN answer.
    poll("SERVFAIL past max_stale", || {
        let answer = dig(port, "web.service.ndsr", "A", &[]);
        assert!(matches!(answer.status.as_str(), "NOERROR" | "SERVFAIL"), "{}", answer.text);
        assert!(answer.status == "SERVFAIL" || answer.data("A") == ["10.0.5.1"], "{}", answer.text);
        answer.status == "SERVFAIL"
    });
    // A service never read: SERVFAIL within dig's 5 s (DNS waits 2 s for a first read).
    let never = dig(port, "never.service.ndsr", "A", &[]);
    assert_eq!(never.status, "SERVFAIL", "{}", never.text);
    drop(writer);
}

#[test]
fn a_reload_changes_the_ttl_and_aliases_and_keeps_the_listener() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-dns-reload");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.6.1:80"), json!({}))).unwrap();
    let (agent, port) = start(&server, &root, "ttl = 7");
    let web = dig(port, "web.service.ndsr", "A", &[]);
    assert_eq!(
        (web.data("A"), web.answer[0][1].as_str()),
        (vec!["10.0.6.1".to_string()], "7"),
        "{}",
        web.text
    );
    assert_eq!(dig(port, "www.service.ndsr", "A", &[]).status, "NXDOMAIN");

    let reload = |config: String| {
        std::fs::write(&agent.config, config).unwrap();
        agent.running.signal(nix::sys::signal::Signal::SIGHUP);
        agent.running.line_where("reloaded", |l| l.starts_with("reloaded"));
    };
    reload(format!(
        "roots = [\"{root}\"]\n[dns]\nlisten = \"127.0.0.1:0\"\nttl = 9\n[dns.services]\nwww = \"{root}/web\""
    ));
    let www = dig(port, "www.service.ndsr", "A", &[]);
    assert_eq!(
        (www.data("A"), www.answer[0][1].as_str()),
        (vec!["10.0.6.1".to_string()], "9"),
        "{}",
        www.text
    );

    // Without [dns] the listener and its last [dns] stay until a restart.
    reload(format!("roots = [\"{root}\"]\n"));
    agent.running.error_where("the restart warning", |l| l.contains("[dns] listen"));
    assert_eq!(dig(port, "web.service.ndsr", "A", &[]).data("A"), ["10.0.6.1"]);
}

#[test]
fn a_taken_dns_port_fails_the_start_before_anything_is_registered() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-dns-taken");
    let client = zk(&rt, &server);
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_data(&root, json!({}))).unwrap();
    let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = held.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    let text = format!("roots = [\"{root}\"]\n[[register]]\npath = \"{root}/me\"\ndata = \"x\"\n[dns]\nlisten = \"{address}\"\n");
    std::fs::write(&config, text).unwrap();
    let (code, _, stderr) =
        run(&server, &["agent", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on {address}")), "{stderr}");
    // No child was ever created under the root (its cversion counts creations and deletions).
    let (_, stat) = rt.block_on(client.get_data(&root)).unwrap();
    assert_eq!((stat.cversion, stat.num_children), (0, 0));
    drop(held);
}

#[test]
fn dns_listen_serves_dns_without_a_dns_section() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-dns-flag");
    let writer = registry(&rt, &server);
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.7.1:80"), json!({}))).unwrap();
    let config = format!("roots = [\"{root}\"]\n");
    let agent = Agent::start_with(&server, &config, &["--dns-listen", "127.0.0.1:0"], |_| {});
    let port = agent.dns_port();
    assert_eq!(dig(port, "web.service.ndsr", "A", &[]).data("A"), ["10.0.7.1"]);
    drop(writer);
}

#[test]
fn dns_keeps_at_most_half_of_max_paths_services_followed() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-dns-kept-cap");
    let writer = registry(&rt, &server);
    let names = ["s1", "s2", "s3", "s4"];
    for (i, name) in names.iter().enumerate() {
        rt.block_on(writer.set_node(&format!("{root}/{name}/10.0.8.{}:80", i + 1), json!({}))).unwrap();
    }
    let (agent, port) = start(&server, &root, "[http]\npath_idle = \"300ms\"\nmax_paths = 4");
    for (i, name) in names.iter().enumerate() {
        let answer = dig(port, &format!("{name}.service.ndsr"), "A", &[]);
        assert_eq!(answer.data("A"), [format!("10.0.8.{}", i + 1)], "{}", answer.text);
    }
    let followed = || -> u64 {
        let metrics = agent.http().get("/metrics").text;
        let line = metrics.lines().find_map(|l| l.strip_prefix("ndsr_agent_followed{kind=\"service\"} "));
        line.and_then(|n| n.trim().parse().ok()).unwrap_or(u64::MAX)
    };
    // Two kept for DNS (half of max_paths); the others let go once idle.
    poll("the services beyond the cap let go", || followed() == 2);
    // Still answered, followed again while asked.
    assert_eq!(dig(port, "s4.service.ndsr", "A", &[]).data("A"), ["10.0.8.4"]);
    drop(writer);
}
