//! Airbnb SmartStack's nerve, both ways (as synapse reads it).
//!
//! Nodes `<path>/<instance_id>_<seq>` (ephemeral sequential by default)
//! hold compact JSON `{"host","port","name"[,"weight"][,"haproxy_server_options"][,"labels"]}`
//! in that order; with path encoding the name is
//! `base64_<len>_<urlsafe-base64(json)>_<seq>`, so readers can skip the
//! read. synapse takes any child with `host` and `port`. A nerve instance
//! that fails its checks is deleted, so every instance listed serves.

use base64::Engine;
use serde_json::Value;

use super::{check_host, compact, labels_of, port_of, Decoded, Format, Instance};
use crate::Object;

/// A nerve registration.
#[derive(Clone, Debug, PartialEq)]
pub struct NerveInstance {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The instance id (`instance_id`), also the node name's prefix.
    pub name: String,
    /// HAProxy weight (`use_nerve_weights`).
    pub weight: Option<u32>,
    /// Extra HAProxy server options.
    pub haproxy_server_options: Option<String>,
    /// Labels (synapse's `label_filters` match on them, e.g. `az`).
    pub labels: std::collections::BTreeMap<String, String>,
}

impl NerveInstance {
    /// An instance with no weight, options or labels.
    pub fn new(name: &str, host: &str, port: u16) -> NerveInstance {
        NerveInstance {
            host: host.to_string(),
            port,
            name: name.to_string(),
            weight: None,
            haproxy_server_options: None,
            labels: Default::default(),
        }
    }

    /// The bytes nerve writes (Ruby's compact `to_json`, its key order).
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Object::new();
        o.insert("host".into(), Value::from(self.host.as_str()));
        o.insert("port".into(), Value::from(self.port));
        o.insert("name".into(), Value::from(self.name.as_str()));
        if let Some(weight) = self.weight {
            o.insert("weight".into(), Value::from(weight));
        }
        if let Some(options) = &self.haproxy_server_options {
            o.insert("haproxy_server_options".into(), Value::from(options.as_str()));
        }
        if !self.labels.is_empty() {
            let labels = self.labels.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
            o.insert("labels".into(), Value::Object(labels));
        }
        compact(&o)
    }

    /// The node name's prefix with path encoding
    /// (`base64_<len>_<urlsafe-base64(data)>_`), or `None` when the
    /// encoding is over nerve's 65,536 characters.
    pub fn encoded_prefix(&self) -> Option<String> {
        let encoded = base64::engine::general_purpose::URL_SAFE.encode(self.encode());
        (encoded.len() <= 65_536).then(|| format!("base64_{}_{encoded}_", encoded.len()))
    }
}

/// The data carried in a `base64_<len>_<payload>_...` name.
fn data_in_name(key: &str) -> Option<Result<Object, String>> {
    let rest = key.strip_prefix("base64_")?;
    let (len, rest) = rest.split_once('_')?;
    let len: usize = len.parse().ok()?;
    let payload = rest.get(..len)?;
    let bytes = base64::engine::general_purpose::URL_SAFE.decode(payload);
    Some(match bytes.map(|b| serde_json::from_slice::<Value>(&b)) {
        Ok(Ok(Value::Object(o))) => Ok(o),
        _ => Err("its base64_ name does not hold a JSON object".to_string()),
    })
}

pub(super) fn decode(key: &str, data: &Object) -> Decoded {
    // The name's data when the node's own is not there (or not JSON).
    let from_name;
    let data = if data.contains_key("host") {
        data
    } else {
        match data_in_name(key) {
            Some(Ok(o)) => {
                from_name = o;
                &from_name
            }
            Some(Err(e)) => return Decoded::Bad(e),
            None => data,
        }
    };
    let Some(host) = data.get("host").and_then(Value::as_str) else {
        return Decoded::Bad("no string `host`: not a nerve instance".into());
    };
    if let Err(e) = check_host(host, "host") {
        return Decoded::Bad(e);
    }
    let port = match port_of(data.get("port"), "port") {
        Ok(Some(port)) => port,
        Ok(None) => return Decoded::Bad("no `port`: not a nerve instance".into()),
        Err(e) => return Decoded::Bad(e),
    };
    let labels = match data.get("labels") {
        Some(Value::Object(labels)) => labels_of(labels, &[]),
        _ => Default::default(),
    };
    let weight = data.get("weight").and_then(Value::as_u64).and_then(|w| u32::try_from(w).ok());
    let id = data.get("name").and_then(Value::as_str).map_or_else(|| key.to_string(), str::to_string);
    Decoded::Instance(Box::new(Instance {
        key: key.to_string(),
        format: Format::Nerve,
        id,
        host: host.to_string(),
        port: Some(port),
        ssl_port: None,
        serving: true,
        weight,
        shard: None,
        labels,
        endpoints: Default::default(),
        data: data.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERBATIM: &str = r#"{"host":"10.0.0.1","port":8080,"name":"i-0abc123","weight":2,"haproxy_server_options":"backup","labels":{"az":"us-east-1a"}}"#;
    const ENCODED_NAME: &str = "base64_168_eyJob3N0IjoiMTAuMC4wLjEiLCJwb3J0Ijo4MDgwLCJuYW1lIjoiaS0wYWJjMTIzIiwid2VpZ2h0IjoyLCJoYXByb3h5X3NlcnZlcl9vcHRpb25zIjoiYmFja3VwIiwibGFiZWxzIjp7ImF6IjoidXMtZWFzdC0xYSJ9fQ==_0000000042";

    fn sample() -> NerveInstance {
        let mut instance = NerveInstance::new("i-0abc123", "10.0.0.1", 8080);
        instance.weight = Some(2);
        instance.haproxy_server_options = Some("backup".into());
        instance.labels.insert("az".into(), "us-east-1a".into());
        instance
    }

    #[test]
    fn writes_the_bytes_nerve_writes_and_its_encoded_name() {
        assert_eq!(String::from_utf8(sample().encode()).unwrap(), VERBATIM);
        assert_eq!(sample().encoded_prefix().unwrap() + "0000000042", ENCODED_NAME);
    }

    #[test]
    fn reads_data_or_the_name_without_it() {
        let data: Object = serde_json::from_str(VERBATIM).unwrap();
        let Decoded::Instance(i) = decode("i-0abc123_0000000042", &data) else { panic!() };
        assert_eq!(
            (i.id.as_str(), i.address(), i.weight),
            ("i-0abc123", "10.0.0.1:8080".to_string(), Some(2))
        );
        assert_eq!(i.labels["az"], "us-east-1a");
        let Decoded::Instance(from_name) = decode(ENCODED_NAME, &Object::new()) else { panic!() };
        assert_eq!(from_name.data, i.data);
    }

    #[test]
    fn synapse_needs_host_and_port() {
        let port_string: Object = serde_json::from_str(r#"{"host":"h","port":"8888"}"#).unwrap();
        let Decoded::Instance(i) = decode("x", &port_string) else { panic!() };
        assert_eq!(i.port, Some(8888), "synapse's own specs use string ports");
        let no_port: Object = serde_json::from_str(r#"{"host":"h"}"#).unwrap();
        assert!(matches!(decode("x", &no_port), Decoded::Bad(_)));
        assert!(matches!(decode("base64_4_!!!!_1", &Object::new()), Decoded::Bad(_)));
        for (json, why) in [
            (r#"{"host":"h\nserver evil 6.6.6.6:443","port":80}"#, "`host` \"h\\nserver evil"),
            (r#"{"host":"h","port":0}"#, "`port` 0 is not a port"),
        ] {
            let data: Object = serde_json::from_str(json).unwrap();
            let Decoded::Bad(reason) = decode("x", &data) else { panic!("{json} was taken") };
            assert!(reason.contains(why), "{json}: {reason}");
        }
    }
}
