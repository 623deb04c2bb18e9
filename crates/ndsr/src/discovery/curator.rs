//! Apache Curator x-discovery's `ServiceInstance`, both ways.
//!
//! Written exactly as Curator 4.x/5.x's default (compatibility-mode)
//! `JsonInstanceSerializer` writes it: compact JSON with the nine fields
//! `name, id, address, port, sslPort, payload, registrationTimeUTC,
//! serviceType, uriSpec` in that order, nulls explicit; `enabled` only when
//! false (readers before 2.12/3.3 reject it, and a missing `enabled` reads
//! as true). Read as leniently as Curator 4+ (Jackson with unknown fields
//! ignored, numeric strings coerced), but a node Curator itself rejects is
//! reported rather than taken.

use serde_json::{Map, Value};

use super::{check_host, compact, labels_of, port_of, string_of, Decoded, Format, Instance};
use crate::Object;

/// Curator's `ServiceType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceType {
    /// An ephemeral node (the default).
    Dynamic,
    /// An ephemeral sequential node.
    DynamicSequential,
    /// A persistent node that `curator-x-discovery-server` cleans up.
    Static,
    /// A persistent node.
    Permanent,
}

impl ServiceType {
    fn name(self) -> &'static str {
        match self {
            ServiceType::Dynamic => "DYNAMIC",
            ServiceType::DynamicSequential => "DYNAMIC_SEQUENTIAL",
            ServiceType::Static => "STATIC",
            ServiceType::Permanent => "PERMANENT",
        }
    }

    fn parse(name: &str) -> Option<ServiceType> {
        // Exactly as Jackson reads the enum: upper case only.
        match name {
            "DYNAMIC" => Some(ServiceType::Dynamic),
            "DYNAMIC_SEQUENTIAL" => Some(ServiceType::DynamicSequential),
            "STATIC" => Some(ServiceType::Static),
            "PERMANENT" => Some(ServiceType::Permanent),
            _ => None,
        }
    }
}

/// A Curator `UriSpec`: a template such as `{scheme}://{address}:{port}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriSpec {
    /// `(value, variable)` parts, as Curator stores them.
    pub parts: Vec<(String, bool)>,
}

impl UriSpec {
    /// Parses a template: `{name}` is a variable; `[` and `]` stand for
    /// literal braces, as in Curator.
    pub fn parse(template: &str) -> UriSpec {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    if !literal.is_empty() {
                        parts.push((std::mem::take(&mut literal), false));
                    }
                    let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    parts.push((name, true));
                }
                '[' | ']' => {
                    if !literal.is_empty() {
                        parts.push((std::mem::take(&mut literal), false));
                    }
                    parts.push((if c == '[' { "{" } else { "}" }.to_string(), false));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push((literal, false));
        }
        UriSpec { parts }
    }

    fn to_json(&self) -> Value {
        let parts = self
            .parts
            .iter()
            .map(|(value, variable)| {
                let mut part = Map::new();
                part.insert("value".into(), Value::from(value.as_str()));
                part.insert("variable".into(), Value::from(*variable));
                Value::Object(part)
            })
            .collect();
        let mut spec = Map::new();
        spec.insert("parts".into(), Value::Array(parts));
        Value::Object(spec)
    }
}

/// What a Curator instance carries as its `payload`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum CuratorPayload {
    /// `null`, for readers with a `Void` payload class.
    None,
    /// A plain JSON value: an object without `@class` (read as a map by
    /// `Object`/`Map` readers), a string, a number.
    Json(Value),
    /// A typed object: `@class` first, then the fields, e.g. Spring Cloud's
    /// `org.springframework.cloud.zookeeper.discovery.ZookeeperInstance`
    /// with `id`, `name` and `metadata`.
    Typed {
        /// The Java class Curator's readers will instantiate.
        class: String,
        /// The object's fields.
        fields: Object,
    },
}

/// A Curator x-discovery registration: the node `<base>/<name>/<id>`.
#[derive(Clone, Debug, PartialEq)]
pub struct CuratorInstance {
    /// The service name (the directory under the base path).
    pub name: String,
    /// The instance id (the node name).
    pub id: String,
    /// Host name or address.
    pub address: String,
    /// The port, if any.
    pub port: Option<u16>,
    /// The TLS port, if any (makes `{scheme}` https).
    pub ssl_port: Option<u16>,
    /// The payload.
    pub payload: CuratorPayload,
    /// Milliseconds since the epoch of the first registration (set when
    /// announced if zero, and kept through re-registrations).
    pub registration_time_utc: i64,
    /// Only `Dynamic` (an ephemeral node) is announced by ndsr today.
    pub service_type: ServiceType,
    /// The URI template, if any.
    pub uri_spec: Option<UriSpec>,
    /// `false` drains the instance (Curator's `ServiceProvider` skips it);
    /// written only when false, so that old readers still parse the node.
    pub enabled: bool,
}

impl CuratorInstance {
    /// An enabled `DYNAMIC` instance with no payload and no URI template.
    pub fn new(name: &str, id: &str, address: &str, port: u16) -> CuratorInstance {
        CuratorInstance {
            name: name.to_string(),
            id: id.to_string(),
            address: address.to_string(),
            port: Some(port),
            ssl_port: None,
            payload: CuratorPayload::None,
            registration_time_utc: 0,
            service_type: ServiceType::Dynamic,
            uri_spec: None,
            enabled: true,
        }
    }

    /// Spring Cloud Zookeeper's payload
    /// (`org.springframework.cloud.zookeeper.discovery.ZookeeperInstance`),
    /// whose `metadata.instance_status` (`UP` / `OUT_OF_SERVICE`) Spring's
    /// load balancer honours.
    pub fn with_spring_payload(mut self, metadata: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut fields = Object::new();
        fields.insert("id".into(), Value::from(self.id.as_str()));
        fields.insert("name".into(), Value::from(self.name.as_str()));
        let metadata: Object = metadata.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
        fields.insert("metadata".into(), Value::Object(metadata));
        self.payload = CuratorPayload::Typed {
            class: "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance".into(),
            fields,
        };
        self
    }

    /// The bytes Curator's default serializer writes for this instance.
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Object::new();
        o.insert("name".into(), Value::from(self.name.as_str()));
        o.insert("id".into(), Value::from(self.id.as_str()));
        o.insert("address".into(), Value::from(self.address.as_str()));
        o.insert("port".into(), self.port.map_or(Value::Null, Value::from));
        o.insert("sslPort".into(), self.ssl_port.map_or(Value::Null, Value::from));
        let payload = match &self.payload {
            CuratorPayload::None => Value::Null,
            CuratorPayload::Json(value) => value.clone(),
            CuratorPayload::Typed { class, fields } => {
                let mut typed = Object::new();
                typed.insert("@class".into(), Value::from(class.as_str()));
                typed.extend(
                    fields.iter().filter(|(k, _)| *k != "@class").map(|(k, v)| (k.clone(), v.clone())),
                );
                Value::Object(typed)
            }
        };
        o.insert("payload".into(), payload);
        o.insert("registrationTimeUTC".into(), Value::from(self.registration_time_utc));
        o.insert("serviceType".into(), Value::from(self.service_type.name()));
        o.insert("uriSpec".into(), self.uri_spec.as_ref().map_or(Value::Null, UriSpec::to_json));
        if !self.enabled {
            o.insert("enabled".into(), Value::from(false));
        }
        compact(&o)
    }
}

pub(super) fn decode(key: &str, data: &Object) -> Decoded {
    match read(key, data) {
        Ok(instance) => Decoded::Instance(Box::new(instance)),
        Err(reason) => Decoded::Bad(reason),
    }
}

fn read(key: &str, data: &Object) -> Result<Instance, String> {
    if let Some(kind) = data.get("serviceType").filter(|v| !v.is_null()) {
        let known = kind.as_str().and_then(ServiceType::parse);
        if known.is_none() {
            return Err(format!(
                "`serviceType` {kind} is not one of DYNAMIC, DYNAMIC_SEQUENTIAL, STATIC, PERMANENT"
            ));
        }
    }
    let address = string_of(data, "address")?.filter(|a| !a.is_empty());
    let Some(host) = address else {
        return Err("no `address`: not a Curator instance".into());
    };
    check_host(&host, "address")?;
    let port = port_of(data.get("port"), "port")?;
    let ssl_port = port_of(data.get("sslPort"), "sslPort")?;
    let id = string_of(data, "id")?.unwrap_or_default();
    // Jackson: absent is true, null is false.
    let enabled = match data.get("enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::Null) => false,
        Some(other) => return Err(format!("`enabled` is not a boolean: {other}")),
    };
    let mut labels = Default::default();
    if let Some(Value::Object(payload)) = data.get("payload") {
        labels = labels_of(payload, &["@class"]);
        if let Some(Value::Object(metadata)) = payload.get("metadata") {
            labels.extend(labels_of(metadata, &[]));
        }
    }
    // Spring Cloud's draining: `UP`, empty or absent serve.
    let status_up =
        labels.get("instance_status").is_none_or(|s| s.is_empty() || s.eq_ignore_ascii_case("UP"));
    let mut instance = Instance {
        key: key.to_string(),
        format: Format::Curator,
        id,
        host,
        port,
        ssl_port,
        serving: enabled && status_up,
        weight: None,
        shard: None,
        labels,
        endpoints: Default::default(),
        data: data.clone(),
    };
    instance.weight_from_labels();
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Curator 5.4.0 (discovery-formats.md 1.2).
    const CAPTURED: &str = r#"{"name":"web","id":"i-1","address":"10.0.0.1","port":8080,"sslPort":null,"payload":{"@class":"java.util.LinkedHashMap","zone":"us-east-1a"},"registrationTimeUTC":1795859981132,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false},{"value":"address","variable":true},{"value":":","variable":false},{"value":"port","variable":true}]}}"#;

    fn obj(json: &str) -> Object {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn writes_the_bytes_curator_writes() {
        let mut payload = Object::new();
        payload.insert("zone".into(), Value::from("us-east-1a"));
        let instance = CuratorInstance {
            payload: CuratorPayload::Typed { class: "java.util.LinkedHashMap".into(), fields: payload },
            registration_time_utc: 1795859981132,
            uri_spec: Some(UriSpec::parse("{scheme}://{address}:{port}")),
            ..CuratorInstance::new("web", "i-1", "10.0.0.1", 8080)
        };
        assert_eq!(String::from_utf8(instance.encode()).unwrap(), CAPTURED);
    }

    #[test]
    fn a_void_payload_with_an_ssl_port_and_a_drained_instance() {
        let instance = CuratorInstance {
            ssl_port: Some(8443),
            registration_time_utc: 1700000000000,
            ..CuratorInstance::new("web", "id-1", "10.0.0.1", 8080)
        };
        assert_eq!(
            String::from_utf8(instance.encode()).unwrap(),
            r#"{"name":"web","id":"id-1","address":"10.0.0.1","port":8080,"sslPort":8443,"payload":null,"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":null}"#
        );
        let drained = CuratorInstance { enabled: false, ..instance };
        assert!(String::from_utf8(drained.encode()).unwrap().ends_with(r#""uriSpec":null,"enabled":false}"#));
    }

    #[test]
    fn reads_what_curator_writes() {
        let Decoded::Instance(i) = decode("i-1", &obj(CAPTURED)) else { panic!() };
        assert_eq!(
            (i.id.as_str(), i.host.as_str(), i.port, i.ssl_port),
            ("i-1", "10.0.0.1", Some(8080), None)
        );
        assert!(i.serving);
        assert_eq!(i.labels.get("zone").map(String::as_str), Some("us-east-1a"));
        assert!(!i.labels.contains_key("@class"));
    }

    #[test]
    fn reads_spring_draining_and_curator_enabled() {
        let spring = r#"{"name":"waiter-service","id":"53565860","address":"10.20.14.30","port":52930,"sslPort":null,"payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","id":"waiter-service-1","name":"waiter-service","metadata":{"instance_status":"OUT_OF_SERVICE","weight":"3"}},"registrationTimeUTC":1628750040704,"serviceType":"DYNAMIC","uriSpec":null}"#;
        let Decoded::Instance(i) = decode("53565860", &obj(spring)) else { panic!() };
        assert!(!i.serving, "OUT_OF_SERVICE drains");
        assert_eq!(i.weight, Some(3));
        let up = spring.replace("OUT_OF_SERVICE", "up");
        let Decoded::Instance(i) = decode("53565860", &obj(&up)) else { panic!() };
        assert!(i.serving, "UP in any case serves");
        let Decoded::Instance(i) = decode("i", &obj(r#"{"address":"h","enabled":null}"#)) else { panic!() };
        assert!(!i.serving, "null enabled is false, as Jackson reads it");
        let Decoded::Instance(i) = decode("i", &obj(r#"{"address":"h","port":"8080"}"#)) else { panic!() };
        assert_eq!(i.port, Some(8080), "a numeric string is a number");
    }

    #[test]
    fn reports_what_curator_rejects_or_cannot_use() {
        for (json, why) in [
            (r#"{"address":"h","serviceType":"dynamic"}"#, "serviceType"),
            (r#"{"address":"h","port":"eighty"}"#, "port"),
            (r#"{"host":"10.0.0.1","port":80,"name":"x"}"#, "address"),
            (r#"{"address":"h","enabled":"yes"}"#, "enabled"),
            // Issue 22: a hostile address would be a line of its own in a config file.
            (
                r#"{"address":"10.0.0.9 check\n    server evil 6.6.6.6:443","port":80}"#,
                "`address` \"10.0.0.9 check\\n",
            ),
            (r#"{"address":"<script>alert(1)</script>","port":80}"#, "not a host name or an IP address"),
            (r#"{"address":"10.0.0.9","port":0}"#, "`port` 0 is not a port"),
            (r#"{"address":"10.0.0.9","port":80,"sslPort":70000}"#, "`sslPort` 70000 is not a port"),
        ] {
            let Decoded::Bad(reason) = decode("k", &obj(json)) else { panic!("{json} was taken") };
            assert!(reason.contains(why), "{json}: {reason}");
        }
    }

    #[test]
    fn uri_spec_templates() {
        let spec = UriSpec::parse("{scheme}://{address}:{port}/[x]");
        let values: Vec<_> = spec.parts.iter().map(|(v, var)| (v.as_str(), *var)).collect();
        assert_eq!(
            values,
            [
                ("scheme", true),
                ("://", false),
                ("address", true),
                (":", false),
                ("port", true),
                ("/", false),
                ("{", false),
                ("x", false),
                ("}", false)
            ]
        );
    }
}
