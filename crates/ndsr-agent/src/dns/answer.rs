//! What a DNS question is answered with, from the agent's followed
//! services: the names (`NAME.service.DOMAIN`, `LABEL.NAME.service.DOMAIN`,
//! `HEX.addr.DOMAIN`), which service a name is, and its records.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hickory_server::proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use ndsr::discovery::Instance;
use rand::seq::SliceRandom;

use super::lookup::Kept;
use crate::config::{is_label, Dns};
use crate::state::Agent;

/// An answer, before it is put in a message.
#[derive(Debug)]
pub enum Outcome {
    /// NOERROR; no answers is NODATA (the SOA goes in the authority section).
    Records { answers: Vec<Record>, additionals: Vec<Record> },
    /// No such name (the SOA goes in the authority section).
    NxDomain,
    /// Not a name of our domain, or not of class IN.
    Refused,
    /// Not a query (an update, a notify).
    NotImp,
    /// We cannot tell now (the service was never read and ZooKeeper does not answer).
    ServFail,
}

impl Outcome {
    fn nodata() -> Outcome {
        Outcome::Records { answers: Vec::new(), additionals: Vec::new() }
    }
}

/// What a name under the domain asks for.
#[derive(Debug, PartialEq, Eq)]
enum Question<'a> {
    /// The domain itself.
    Apex,
    /// A service's instances, those with a label of this value if given.
    Service { name: &'a str, label: Option<&'a str> },
    /// The address an SRV target names.
    Address(IpAddr),
    /// `service.DOMAIN` or `addr.DOMAIN`: names exist below it, so it
    /// exists with no records (an empty non-terminal; RFC 8020).
    Branch,
    /// Nothing we serve.
    Unknown,
}

/// Reads `name` (lower case, fully qualified) against `domain` (lower
/// case, ending in `.`); `None`: outside the domain.
fn question<'a>(name: &'a str, domain: &str) -> Option<Question<'a>> {
    if name == domain {
        return Some(Question::Apex);
    }
    let rest = name.strip_suffix(domain)?.strip_suffix('.')?;
    let labels: Vec<&str> = rest.split('.').collect();
    Some(match labels.as_slice() {
        [service, "service"] if is_label(service) => Question::Service { name: service, label: None },
        [label, service, "service"] if is_label(service) => {
            Question::Service { name: service, label: Some(label) }
        }
        [hex, "addr"] => address_of(hex).map_or(Question::Unknown, Question::Address),
        ["service" | "addr"] => Question::Branch,
        _ => Question::Unknown,
    })
}

/// The name of `ip` under `addr.`: its bytes in hex (Consul's form).
fn hex_of(ip: IpAddr) -> String {
    let bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn address_of(hex: &str) -> Option<IpAddr> {
    let byte = |i: usize| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok());
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::new(byte(0)?, byte(2)?, byte(4)?, byte(6)?))),
        32 => {
            let mut octets = [0u8; 16];
            for (i, octet) in octets.iter_mut().enumerate() {
                *octet = byte(i * 2)?;
            }
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

/// The SOA of the domain: its minimum (and TTL) is the answers' TTL, which
/// bounds negative caching.
pub fn soa(dns: &Dns) -> Record {
    let domain = fqdn(&dns.domain);
    let mname = fqdn(&format!("ns.{}", dns.domain));
    let rname = fqdn(&format!("hostmaster.{}", dns.domain));
    let soa = SOA::new(mname, rname, 1, 3600, 600, 86400, dns.ttl);
    Record::from_rdata(domain, dns.ttl, RData::SOA(soa))
}

/// A fully qualified name from a checked one (the root if it is not one).
fn fqdn(name: &str) -> Name {
    let mut name = Name::from_ascii(name).unwrap_or_else(|_| Name::root());
    name.set_fqdn(true);
    name
}

/// Answers `qtype` for `owner` (as asked) whose lower-case text is `lower`.
pub async fn answer(
    agent: &Arc<Agent>,
    kept: &Kept,
    dns: &Dns,
    owner: &Name,
    lower: &str,
    qtype: RecordType,
) -> Outcome {
    let Some(question) = question(lower, &dns.domain) else { return Outcome::Refused };
    match question {
        Question::Unknown => Outcome::NxDomain,
        Question::Branch => Outcome::nodata(),
        Question::Apex => match qtype {
            RecordType::SOA => Outcome::Records { answers: vec![soa(dns)], additionals: Vec::new() },
            _ => Outcome::nodata(),
        },
        Question::Address(ip) => match (qtype, ip) {
            (RecordType::A | RecordType::ANY, IpAddr::V4(_))
            | (RecordType::AAAA | RecordType::ANY, IpAddr::V6(_)) => Outcome::Records {
                answers: vec![address(owner.clone(), ip, dns.ttl)],
                additionals: Vec::new(),
            },
            _ => Outcome::nodata(),
        },
        Question::Service { name, label } => match kept.instances(agent, dns, name).await {
            Err(()) => Outcome::ServFail,
            Ok(None) => Outcome::NxDomain,
            Ok(Some(instances)) => {
                let chosen: Vec<&Instance> = instances
                    .serving()
                    .filter(|i| label.is_none_or(|l| i.labels.values().any(|v| v.eq_ignore_ascii_case(l))))
                    .map(|i| &**i)
                    .collect();
                records(dns, dns.ttl_of(name), owner, qtype, &chosen)
            }
        },
    }
}

/// The records of `chosen` for `qtype`, shuffled; ANY gets one address
/// record (RFC 8482: a minimal answer, not every record of the name).
fn records(dns: &Dns, ttl: u32, owner: &Name, qtype: RecordType, chosen: &[&Instance]) -> Outcome {
    let ip = |i: &&Instance| i.host.parse::<IpAddr>().ok();
    let mut answers = Vec::new();
    let mut additionals = Vec::new();
    match qtype {
        RecordType::A | RecordType::AAAA | RecordType::ANY => {
            for address_ in chosen.iter().filter_map(ip) {
                let wanted = match address_ {
                    IpAddr::V4(_) => qtype != RecordType::AAAA,
                    IpAddr::V6(_) => qtype != RecordType::A,
                };
                if wanted {
                    answers.push(address(owner.clone(), address_, ttl));
                }
            }
        }
        RecordType::SRV => {
            for instance in chosen {
                let Some(port) = instance.port else { continue };
                let weight = u16::try_from(instance.weight.unwrap_or(1)).unwrap_or(u16::MAX);
                let target = match ip(instance) {
                    Some(at) => {
                        let target = fqdn(&format!("{}.addr.{}", hex_of(at), dns.domain));
                        additionals.push(address(target.clone(), at, ttl));
                        target
                    }
                    None => match Name::from_ascii(&instance.host) {
                        Ok(mut name) => {
                            name.set_fqdn(true);
                            name
                        }
                        Err(_) => continue,
                    },
                };
                let srv = SRV::new(1, weight, port, target);
                answers.push(Record::from_rdata(owner.clone(), ttl, RData::SRV(srv)));
            }
        }
        _ => {}
    }
    let mut rng = rand::thread_rng();
    answers.shuffle(&mut rng);
    if qtype == RecordType::ANY {
        answers.truncate(1);
    }
    Outcome::Records { answers, additionals }
}

fn address(owner: Name, ip: IpAddr, ttl: u32) -> Record {
    let rdata = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner, ttl, rdata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_against_the_domain() {
        let d = "ndsr.";
        assert_eq!(question("ndsr.", d), Some(Question::Apex));
        assert_eq!(question("web.service.ndsr.", d), Some(Question::Service { name: "web", label: None }));
        assert_eq!(
            question("blue.web.service.ndsr.", d),
            Some(Question::Service { name: "web", label: Some("blue") })
        );
        assert_eq!(question("7f000001.addr.ndsr.", d), Some(Question::Address("127.0.0.1".parse().unwrap())));
        assert_eq!(question("x.web.ndsr.", d), Some(Question::Unknown));
        assert_eq!(question("zz.addr.ndsr.", d), Some(Question::Unknown));
        assert_eq!(question("service.ndsr.", d), Some(Question::Branch));
        assert_eq!(question("addr.ndsr.", d), Some(Question::Branch));
        assert_eq!(question("x.y.web.service.ndsr.", d), Some(Question::Unknown));
        assert_eq!(question("web.service.example.", d), None);
        assert_eq!(question("xndsr.", d), None);
    }

    #[test]
    fn addresses_round_trip_through_hex() {
        for ip in ["10.0.0.255", "::1", "2001:db8::8a2e:370:7334"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(address_of(&hex_of(ip)), Some(ip));
        }
        assert_eq!(hex_of("192.0.2.10".parse().unwrap()), "c000020a");
    }
}
