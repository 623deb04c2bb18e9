//! nd_service_registry's own layout: children named `host:port`, data a
//! JSON object (`pid`, `created` and the user's keys).

use super::{labels_of, Decoded, Format, Instance};
use crate::Object;

pub(super) fn decode(key: &str, data: &Object) -> Decoded {
    let (host, port) = match key.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(port) => (host.trim_start_matches('[').trim_end_matches(']'), Some(port)),
            Err(_) => (key, None),
        },
        None => (key, None),
    };
    let mut instance = Instance {
        key: key.to_string(),
        format: Format::Nd,
        id: key.to_string(),
        host: host.to_string(),
        port,
        ssl_port: None,
        serving: true,
        weight: None,
        shard: None,
        labels: labels_of(data, &["pid", "created"]),
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
    }
}
