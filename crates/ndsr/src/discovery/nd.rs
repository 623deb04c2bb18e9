//! nd_service_registry's own layout: children named `host:port`, data a
//! JSON object (`pid`, `created` and the user's keys).

use super::{check_host, check_port, labels_of, Decoded, Format, Instance};
use crate::Object;

/// The host and port a child's name gives: `host:port`, `[v6]:port`, or a
/// host (or IP address) alone; an error when the host is not a host name
/// or an IP address, or the port is not 1-65535.
fn address(key: &str) -> Result<(&str, Option<u16>), String> {
    let in_name = |e: String| format!("the name {key:?}: {e}");
    if let Some((host, port)) = key.rsplit_once(':') {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            match check_host(host, "host") {
                Ok(()) => {
                    let port = check_port(port.parse().unwrap_or(u64::MAX), "port").map_err(in_name)?;
                    return Ok((host, Some(port)));
                }
                // `fe80::1`: an IPv6 address, no port.
                Err(_) if key.parse::<std::net::Ipv6Addr>().is_ok() => return Ok((key, None)),
                Err(e) => return Err(in_name(e)),
            }
        }
    }
    check_host(key, "host").map_err(in_name)?;
    Ok((key, None))
}

pub(super) fn decode(key: &str, data: &Object) -> Decoded {
    let (host, port) = match address(key) {
        Ok(address) => address,
        Err(reason) => return Decoded::Bad(reason),
    };
    let mut instance = Instance {
        key: key.to_string(),
        format: Format::Nd,
        id: key.to_string(),
        host: host.to_string(),
        port,
        ssl_port: None,
        serving: !super::maintenance::nd_in_maintenance(data),
        weight: None,
        shard: None,
        labels: labels_of(data, &["pid", "created", super::ND_MAINTENANCE]),
        endpoints: Default::default(),
        data: data.clone(),
    };
    instance.weight_from_labels();
    Decoded::Instance(Box::new(instance))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_come_from_the_name() {
        let data: Object = serde_json::from_str(r#"{"pid":1,"created":"x","zone":"a"}"#).unwrap();
        let Decoded::Instance(i) = decode("10.0.0.1:80", &data) else { panic!() };
        assert_eq!((i.host.as_str(), i.port), ("10.0.0.1", Some(80)));
        assert_eq!(i.labels.keys().collect::<Vec<_>>(), ["zone"]);
        let Decoded::Instance(i) = decode("[::1]:80", &data) else { panic!() };
        assert_eq!((i.host.as_str(), i.address()), ("::1", "[::1]:80".to_string()));
        let Decoded::Instance(i) = decode("worker-7", &data) else { panic!() };
        assert_eq!((i.host.as_str(), i.port), ("worker-7", None));
        let Decoded::Instance(i) = decode("fe80::1", &data) else { panic!() };
        assert_eq!((i.host.as_str(), i.port), ("fe80::1", None));
    }

    #[test]
    fn a_name_that_is_not_an_address_is_bad() {
        let data = Object::new();
        for (key, why) in [
            ("10.0.0.1:0", "`port` 0 is not a port"),
            ("10.0.0.1:65536", "`port` 65536 is not a port"),
            ("<script>:80", "is not a host name or an IP address"),
            ("a b:80", "is not a host name or an IP address"),
            ("web;1:80", "is not a host name or an IP address"),
            ("[10.0.0.1:80", "is not a host name or an IP address"),
        ] {
            let Decoded::Bad(reason) = decode(key, &data) else { panic!("{key} was taken") };
            assert!(reason.contains(why) && reason.contains(key), "{key}: {reason}");
        }
    }
}
