//! The agent's DNS interface asked by an in-process stub resolver
//! (hickory-resolver), as a program that resolves names with a library
//! would: addresses of the serving instances only (an instance in
//! maintenance is not among them), SRV with port, weight and targets
//! whose addresses come in the additional section, label filters,
//! NXDOMAIN vs NODATA with the SOA's minimum as the negative TTL, a
//! 100-instance answer truncated over UDP and fetched whole over TCP, and
//! the configured TTLs. `agent_dns.rs` asks the same things with `dig`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use common::agent::Agent;
use common::*;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, Record};
use hickory_resolver::{Resolver, TokioResolver};
use ndsr_testkit::{unique_path, ZkServer};
use serde_json::json;

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

/// A resolver asking only the agent at 127.0.0.1:`port`, over UDP (with
/// TCP after a truncated answer) or over UDP alone; no system
/// configuration, no hosts file. Its cache is emptied before each
/// question (see [`ask`]), so every lookup reaches the agent.
fn resolver(rt: &tokio::runtime::Runtime, port: u16, tcp: bool) -> TokioResolver {
    let mut connections = vec![ConnectionConfig::udp()];
    if tcp {
        connections.push(ConnectionConfig::tcp());
    }
    for connection in &mut connections {
        connection.port = port;
    }
    let server = NameServerConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), true, connections);
    let config = ResolverConfig::from_name_servers(vec![server]);
    let _entered = rt.enter();
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    builder.options_mut().use_hosts_file = ResolveHosts::Never;
    builder.build().unwrap()
}

/// Runs one lookup with an empty cache.
fn ask<T>(
    rt: &tokio::runtime::Runtime,
    resolver: &TokioResolver,
    lookup: impl std::future::Future<Output = T>,
) -> T {
    resolver.clear_cache();
    rt.block_on(lookup)
}

/// The NODATA / NXDOMAIN details of a lookup that found nothing.
fn no_records<T: std::fmt::Debug>(result: Result<T, NetError>) -> NoRecords {
    match result {
        Err(NetError::Dns(DnsError::NoRecordsFound(no))) => no,
        other => panic!("expected no records, got {other:?}"),
    }
}

/// The addresses a lookup's answer records hold, and the TTLs they carry.
fn addresses(records: &[Record]) -> (BTreeSet<IpAddr>, BTreeSet<u32>) {
    let ips = records.iter().filter_map(|r| r.data.ip_addr()).collect();
    let ttls = records.iter().map(|r| r.ttl).collect();
    (ips, ttls)
}

fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn a_resolver_gets_serving_addresses_srv_labels_and_negative_answers() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-dns-resolver");
    let writer = registry(&rt, &server);
    // web: three serving instances (one IPv6) with weights, and one in
    // maintenance (the nd format's `maintenance` field).
    for (key, data) in [
        ("10.0.0.1:80", json!({"zone": "blue", "weight": 5})),
        ("10.0.0.2:81", json!({"zone": "green"})),
        ("[2001:db8::5]:82", json!({"zone": "blue", "weight": 3})),
        ("10.0.0.9:83", json!({"zone": "blue", "maintenance": "deploy"})),
    ] {
        rt.block_on(writer.set_node(&format!("{root}/web/{key}"), data)).unwrap();
    }
    // api: Curator's format, one instance disabled.
    for (id, address, enabled) in [("c1", "10.0.1.1", true), ("c2", "10.0.1.2", false)] {
        let instance = json!({"name": "api", "id": id, "address": address, "port": 9000, "sslPort": null,
            "payload": null, "registrationTimeUTC": 1, "serviceType": "DYNAMIC", "uriSpec": null,
            "enabled": enabled});
        rt.block_on(writer.set_data(&format!("{root}/api/{id}"), instance)).unwrap();
    }
    rt.block_on(writer.set_data(&format!("{root}/empty"), json!({}))).unwrap();
    let (_agent, port) = start(&server, &root, "ttl = 7");
    let resolver = resolver(&rt, port, true);

    // Addresses (A and AAAA both asked): the serving instances only, with
    // the configured TTL.
    let web = ask(&rt, &resolver, resolver.lookup_ip("web.service.ndsr.")).unwrap();
    assert_eq!(web.iter().collect::<BTreeSet<_>>(), ips(&["10.0.0.1", "10.0.0.2", "2001:db8::5"]));
    let (_, ttls) = addresses(web.as_lookup().answers());
    assert_eq!(ttls, BTreeSet::from([7]), "the [dns] ttl");
    let v4 = ask(&rt, &resolver, resolver.ipv4_lookup("web.service.ndsr.")).unwrap();
    assert_eq!(addresses(v4.answers()), (ips(&["10.0.0.1", "10.0.0.2"]), BTreeSet::from([7])));
    assert!(v4.message().metadata.authoritative, "an authoritative answer");
    let v6 = ask(&rt, &resolver, resolver.ipv6_lookup("web.service.ndsr.")).unwrap();
    assert_eq!(addresses(v6.answers()), (ips(&["2001:db8::5"]), BTreeSet::from([7])));
    // Curator's format: the disabled instance is not answered.
    let api = ask(&rt, &resolver, resolver.lookup_ip("api.service.ndsr.")).unwrap();
    assert_eq!(api.iter().collect::<BTreeSet<_>>(), ips(&["10.0.1.1"]));

    // SRV: priority 1, the instance's weight (1 if none), its port, and a
    // target whose address is in the additional section.
    let srv = ask(&rt, &resolver, resolver.srv_lookup("web.service.ndsr.")).unwrap();
    let mut records = BTreeSet::new();
    for record in srv.answers() {
        let RData::SRV(s) = &record.data else { panic!("not an SRV record: {record:?}") };
        assert_eq!(record.ttl, 7, "{record:?}");
        records.insert((s.priority, s.weight, s.port, s.target.to_string()));
    }
    let expected = BTreeSet::from([
        (1, 5, 80, "0a000001.addr.ndsr.".to_string()),
        (1, 1, 81, "0a000002.addr.ndsr.".to_string()),
        (1, 3, 82, "20010db8000000000000000000000005.addr.ndsr.".to_string()),
    ]);
    assert_eq!(records, expected);
    let glue: BTreeMap<String, IpAddr> = srv
        .additionals()
        .iter()
        .filter_map(|r| r.data.ip_addr().map(|ip| (r.name.to_string(), ip)))
        .collect();
    let wanted: BTreeMap<String, IpAddr> = [
        ("0a000001.addr.ndsr.", "10.0.0.1"),
        ("0a000002.addr.ndsr.", "10.0.0.2"),
        ("20010db8000000000000000000000005.addr.ndsr.", "2001:db8::5"),
    ]
    .into_iter()
    .map(|(name, ip)| (name.to_string(), ip.parse().unwrap()))
    .collect();
    assert_eq!(glue, wanted, "the targets' addresses in the additional section");
    // Each target also resolves on its own, to its instance's address.
    for (target, ip) in &wanted {
        let resolved = ask(&rt, &resolver, resolver.lookup_ip(target.as_str())).unwrap();
        assert_eq!(resolved.iter().collect::<Vec<_>>(), [*ip], "{target}");
    }

    // A label's value filters; the blue one in maintenance stays out.
    let blue = ask(&rt, &resolver, resolver.lookup_ip("blue.web.service.ndsr.")).unwrap();
    assert_eq!(blue.iter().collect::<BTreeSet<_>>(), ips(&["10.0.0.1", "2001:db8::5"]));
    let green = ask(&rt, &resolver, resolver.ipv4_lookup("green.web.service.ndsr.")).unwrap();
    assert_eq!(addresses(green.answers()).0, ips(&["10.0.0.2"]));
    let red = no_records(ask(&rt, &resolver, resolver.ipv4_lookup("red.web.service.ndsr.")));
    assert_eq!(red.response_code, ResponseCode::NoError, "a known service, no instance with the label");

    // NXDOMAIN for an unknown service; NODATA (NOERROR, no records) for a
    // known one without instances; both with the SOA, whose minimum (the
    // ttl) is the negative TTL.
    let unknown = no_records(ask(&rt, &resolver, resolver.ipv4_lookup("nope.service.ndsr.")));
    assert_eq!(unknown.response_code, ResponseCode::NXDomain);
    let empty = no_records(ask(&rt, &resolver, resolver.ipv4_lookup("empty.service.ndsr.")));
    assert_eq!(empty.response_code, ResponseCode::NoError, "NODATA, not NXDOMAIN");
    for (what, negative) in [("nope", &unknown), ("empty", &empty)] {
        let soa = negative.soa.as_ref().unwrap_or_else(|| panic!("{what}: no SOA"));
        assert_eq!((soa.name.to_string().as_str(), soa.data.minimum), ("ndsr.", 7), "{what}");
        assert_eq!(negative.negative_ttl, Some(7), "{what}: the negative TTL");
    }
    // lookup_ip says the same (both A and AAAA found nothing).
    let err = ask(&rt, &resolver, resolver.lookup_ip("nope.service.ndsr.")).unwrap_err();
    assert!(err.is_nx_domain(), "{err:?}");
    let err = ask(&rt, &resolver, resolver.lookup_ip("empty.service.ndsr.")).unwrap_err();
    assert!(err.is_no_records_found() && !err.is_nx_domain(), "{err:?}");

    // The answers follow the registry: an instance taken out of rotation
    // (its holder rewrites its data) and one added.
    rt.block_on(
        writer.set_node(&format!("{root}/web/10.0.0.2:81"), json!({"zone": "green", "maintenance": true})),
    )
    .unwrap();
    rt.block_on(writer.set_node(&format!("{root}/web/10.0.0.3:84"), json!({"zone": "red"}))).unwrap();
    poll("the resolver sees the change", || {
        let now = ask(&rt, &resolver, resolver.ipv4_lookup("web.service.ndsr."));
        now.is_ok_and(|l| addresses(l.answers()).0 == ips(&["10.0.0.1", "10.0.0.3"]))
    });
    let green = no_records(ask(&rt, &resolver, resolver.ipv4_lookup("green.web.service.ndsr.")));
    assert_eq!(green.response_code, ResponseCode::NoError);
    let red = ask(&rt, &resolver, resolver.ipv4_lookup("red.web.service.ndsr.")).unwrap();
    assert_eq!(addresses(red.answers()).0, ips(&["10.0.0.3"]));
    rt.block_on(writer.close());
}

#[test]
fn a_hundred_instances_come_whole_over_tcp_after_a_truncated_udp_answer() {
    let rt = runtime();
    let server = ZkServer::shared().connect_string();
    let root = unique_path("agent-dns-resolver-big");
    let writer = registry(&rt, &server);
    let all: BTreeSet<IpAddr> = (1..=100).map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 4, i))).collect();
    let writes = all.iter().map(|ip| {
        let path = format!("{root}/big/{ip}:80");
        let writer = &writer;
        async move { writer.set_node(&path, json!({})).await }
    });
    for written in rt.block_on(futures::future::join_all(writes)) {
        written.unwrap();
    }
    let (_agent, port) = start(&server, &root, "ttl = 7\n[dns.service_ttl]\nbig = 11");
    let resolver = resolver(&rt, port, true);
    poll("all 100 instances", || {
        let answer = ask(&rt, &resolver, resolver.ipv4_lookup("big.service.ndsr."));
        answer.is_ok_and(|l| l.answers().len() == 100)
    });

    // Over UDP alone the answer is truncated (100 A records do not fit the
    // resolver's 1232-byte EDNS payload), and this resolver cannot go on.
    let udp_only = self::resolver(&rt, port, false);
    let truncated = ask(&rt, &udp_only, udp_only.ipv4_lookup("big.service.ndsr."));
    assert!(matches!(truncated, Err(NetError::Truncated)), "{truncated:?}");
    // A small answer over UDP alone is whole.
    let small = ask(&rt, &udp_only, udp_only.ipv4_lookup("0a000401.addr.ndsr.")).unwrap();
    assert_eq!(addresses(small.answers()).0, ips(&["10.0.4.1"]));

    // With TCP, the resolver asks again after the truncated UDP answer and
    // gets every instance, with the service's own TTL.
    let whole = ask(&rt, &resolver, resolver.ipv4_lookup("big.service.ndsr.")).unwrap();
    assert_eq!(whole.answers().len(), 100, "no address twice");
    assert_eq!(addresses(whole.answers()), (all.clone(), BTreeSet::from([11])));
    assert!(!whole.message().metadata.truncation, "the answer used is the whole one");
    let srv = ask(&rt, &resolver, resolver.srv_lookup("big.service.ndsr.")).unwrap();
    assert_eq!(srv.answers().len(), 100);
    assert_eq!(addresses(srv.additionals()), (all.clone(), BTreeSet::from([11])));
    let ports: BTreeSet<u16> = srv
        .answers()
        .iter()
        .map(|r| match &r.data {
            RData::SRV(s) => s.port,
            other => panic!("not an SRV record: {other:?}"),
        })
        .collect();
    assert_eq!(ports, BTreeSet::from([80]));

    // The order changes from answer to answer (six in one order of 100:
    // about 1 in 10^790 by chance).
    let orders: BTreeSet<Vec<IpAddr>> = (0..6)
        .map(|_| ask(&rt, &resolver, resolver.ipv4_lookup("big.service.ndsr.")).unwrap())
        .map(|l| l.answers().iter().filter_map(|r| r.data.ip_addr()).collect())
        .collect();
    assert!(orders.len() > 1, "six answers in one order");
    rt.block_on(writer.close());
}
