//! Twitter commons / Finagle / Aurora ServerSets, both ways.
//!
//! Members are `EPHEMERAL_SEQUENTIAL` nodes named `member_<seq>` (readers
//! take only `^member_-?[0-9]+$`), holding compact JSON that starts with
//! `{"` (the Java reader takes anything else for the legacy Thrift
//! encoding): `serviceEndpoint`, `additionalEndpoints` (always present),
//! `status`, optional `shard` and string `metadata`. Read as Finagle's zk2
//! reader does: a member whose status is missing or not `ALIVE` does not
//! serve.

use serde_json::Value;

use super::{check_host, check_port, compact, labels_of, Decoded, Endpoint, Format, Instance};
use crate::Object;

/// A ServerSet member's status (the Thrift enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerSetStatus {
    /// Serving (the only status writers should use).
    Alive,
    /// Not serving: draining before leaving.
    Stopping,
}

/// A ServerSet membership: the node `<group>/member_<seq>`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerSetMember {
    /// The main endpoint.
    pub service_endpoint: Endpoint,
    /// Named endpoints (`http`, `admin`, Aurora's `aurora`, ...).
    pub additional_endpoints: std::collections::BTreeMap<String, Endpoint>,
    /// `ALIVE` unless draining.
    pub status: ServerSetStatus,
    /// The shard (Aurora: the task's instance id).
    pub shard: Option<i32>,
    /// String metadata (Finagle's `ZkMetadata`).
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl ServerSetMember {
    /// An `ALIVE` member with no additional endpoints.
    pub fn new(host: &str, port: u16) -> ServerSetMember {
        ServerSetMember {
            service_endpoint: Endpoint { host: host.to_string(), port },
            additional_endpoints: Default::default(),
            status: ServerSetStatus::Alive,
            shard: None,
            metadata: Default::default(),
        }
    }

    /// The bytes the Java writer (`ServerSetImpl`'s JSON codec) writes.
    pub fn encode(&self) -> Vec<u8> {
        let endpoint = |e: &Endpoint| {
            let mut o = Object::new();
            o.insert("host".into(), Value::from(e.host.as_str()));
            o.insert("port".into(), Value::from(e.port));
            Value::Object(o)
        };
        let mut o = Object::new();
        o.insert("serviceEndpoint".into(), endpoint(&self.service_endpoint));
        let additional = self.additional_endpoints.iter().map(|(k, e)| (k.clone(), endpoint(e))).collect();
        o.insert("additionalEndpoints".into(), Value::Object(additional));
        let status = match self.status {
            ServerSetStatus::Alive => "ALIVE",
            ServerSetStatus::Stopping => "STOPPING",
        };
        o.insert("status".into(), Value::from(status));
        if let Some(shard) = self.shard {
            o.insert("shard".into(), Value::from(shard));
        }
        if !self.metadata.is_empty() {
            let metadata = self.metadata.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
            o.insert("metadata".into(), Value::Object(metadata));
        }
        compact(&o)
    }
}

/// Is `name` a member node (`^member_-?[0-9]+$`)?
pub(crate) fn is_member(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("member_") else { return false };
    let digits = rest.strip_prefix('-').unwrap_or(rest);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn endpoint_of(value: &Value) -> Result<Endpoint, String> {
    let Value::Object(o) = value else { return Err(format!("an endpoint is not an object: {value}")) };
    let host = o.get("host").and_then(Value::as_str).ok_or("an endpoint has no string `host`")?;
    check_host(host, "host")?;
    // Finagle wants a JSON integer here.
    let port = o.get("port").and_then(Value::as_u64).ok_or("an endpoint has no integer `port`")?;
    let port = check_port(port, "port")?;
    Ok(Endpoint { host: host.to_string(), port })
}

pub(super) fn decode(key: &str, data: &Object) -> Decoded {
    if !is_member(key) {
        // `vector_` weights and anything else: not members.
        return Decoded::Other;
    }
    let main = match data.get("serviceEndpoint").map(endpoint_of) {
        Some(Ok(endpoint)) => endpoint,
        Some(Err(e)) => return Decoded::Bad(format!("`serviceEndpoint`: {e}")),
        None => return Decoded::Bad("no `serviceEndpoint`: not a ServerSet member".into()),
    };
    let mut endpoints = std::collections::BTreeMap::new();
    if let Some(Value::Object(additional)) = data.get("additionalEndpoints") {
        for (name, value) in additional {
            // A bad named endpoint (an invalid host or port too) is
            // dropped, as Finagle does.
            if let Ok(endpoint) = endpoint_of(value) {
                endpoints.insert(name.clone(), endpoint);
            }
        }
    }
    let shard = data.get("shard").and_then(Value::as_i64);
    let labels = match data.get("metadata") {
        Some(Value::Object(metadata)) => labels_of(metadata, &[]),
        _ => Default::default(),
    };
    let mut instance = Instance {
        key: key.to_string(),
        format: Format::ServerSet,
        id: key.to_string(),
        host: main.host,
        port: Some(main.port),
        ssl_port: None,
        serving: data.get("status").and_then(Value::as_str) == Some("ALIVE"),
        weight: None,
        shard,
        labels,
        endpoints,
        data: data.clone(),
    };
    instance.weight_from_labels();
    Decoded::Instance(Box::new(instance))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(json: &str) -> Object {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn writes_the_bytes_the_java_writer_writes() {
        let mut member = ServerSetMember::new("foo", 1000);
        member.additional_endpoints.insert("http".into(), Endpoint { host: "foo".into(), port: 8080 });
        member.shard = Some(42);
        let bytes = member.encode();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"serviceEndpoint":{"host":"foo","port":1000},"additionalEndpoints":{"http":{"host":"foo","port":8080}},"status":"ALIVE","shard":42}"#
        );
        assert!(bytes.starts_with(b"{\""), "the Java reader takes anything else for Thrift");
    }

    #[test]
    fn reads_python_aurora_and_finagle_members() {
        let aurora = r#"{"serviceEndpoint": {"host": "10.0.0.1", "port": 8080}, "additionalEndpoints": {"http": {"host": "10.0.0.1", "port": 8080}, "aurora": {"host": "10.0.0.1", "port": 8080}, "admin": {"host": "10.0.0.1", "port": 9990}}, "status": "ALIVE", "shard": 3}"#;
        let Decoded::Instance(i) = decode("member_0000000007", &obj(aurora)) else { panic!() };
        assert_eq!((i.address(), i.shard, i.serving), ("10.0.0.1:8080".to_string(), Some(3), true));
        assert_eq!(i.endpoints["admin"], Endpoint { host: "10.0.0.1".into(), port: 9990 });
        let finagle = r#"{"status": "ALIVE", "additionalEndpoints": {"aurora": {"host": "10.0.0.1", "port": 80}, "http": {"host": "10.0.0.2", "port": 80}}, "serviceEndpoint": {"host": "10.0.0.3", "port": 80}, "shard": 0, "metadata": {"keyA":"valueA"}}"#;
        let Decoded::Instance(i) = decode("member_0000000001", &obj(finagle)) else { panic!() };
        assert_eq!(i.labels["keyA"], "valueA");
        assert_eq!(i.host, "10.0.0.3");
    }

    #[test]
    fn status_other_than_alive_does_not_serve_and_non_members_are_not_read() {
        let stopping =
            r#"{"serviceEndpoint":{"host":"h","port":1},"additionalEndpoints":{},"status":"STOPPING"}"#;
        let Decoded::Instance(i) = decode("member_1", &obj(stopping)) else { panic!() };
        assert!(!i.serving);
        let missing = r#"{"serviceEndpoint":{"host":"h","port":1},"additionalEndpoints":{}}"#;
        let Decoded::Instance(i) = decode("member_2", &obj(missing)) else { panic!() };
        assert!(!i.serving, "a missing status is not ALIVE (Finagle zk2)");
        assert_eq!(decode("vector_0000000001", &obj("{}")), Decoded::Other);
        assert!(matches!(decode("member_3", &obj(r#"{"host":"h","port":1}"#)), Decoded::Bad(_)));
        assert!(matches!(
            decode("member_4", &obj(r#"{"serviceEndpoint":{"host":"h","port":"80"}}"#)),
            Decoded::Bad(_)
        ));
        for (json, why) in [
            (r#"{"serviceEndpoint":{"host":"h check\nserver evil 6.6.6.6","port":80}}"#, "not a host name"),
            (r#"{"serviceEndpoint":{"host":"h","port":0}}"#, "`port` 0 is not a port"),
        ] {
            let Decoded::Bad(reason) = decode("member_5", &obj(json)) else { panic!("{json} was taken") };
            assert!(reason.starts_with("`serviceEndpoint`: ") && reason.contains(why), "{json}: {reason}");
        }
        let named = r#"{"serviceEndpoint":{"host":"h","port":1},"additionalEndpoints":{"http":{"host":"<b>","port":80},"admin":{"host":"h","port":2}},"status":"ALIVE"}"#;
        let Decoded::Instance(i) = decode("member_6", &obj(named)) else { panic!() };
        assert_eq!(i.endpoints.keys().collect::<Vec<_>>(), ["admin"], "a bad named endpoint is dropped");
    }

    #[test]
    fn member_names() {
        for (name, member) in [
            ("member_0000000007", true),
            ("member_-1", true),
            ("member_", false),
            ("member_x", false),
            ("member_1a", false),
            ("vector_1", false),
        ] {
            assert_eq!(is_member(name), member, "{name}");
        }
    }
}

/// Finagle's `vector_*` weight nodes: each holds `{"vector": [{"select":
/// "inet=HOST:PORT" | "member=member_N" | "shard=N", "weight": W}, ...]}`;
/// a member's weight is the product of the weights of every descriptor
/// that selects it (1.0 when none does), and -1.0 removes it. Weights are
/// kept as integers in thousandths (1.0 is 1000), so that they compare
/// with each other in [`Strategy::Weighted`](super::Strategy::Weighted).
pub(crate) fn weigh(
    children: &[(&str, &Object)],
    instances: Vec<std::sync::Arc<Instance>>,
) -> Vec<std::sync::Arc<Instance>> {
    let descriptors: Vec<(&str, f64)> = children
        .iter()
        .filter(|(key, _)| key.starts_with("vector_"))
        .filter_map(|(_, data)| data.get("vector").and_then(Value::as_array))
        .flatten()
        .filter_map(|d| Some((d.get("select")?.as_str()?, d.get("weight")?.as_f64()?)))
        .collect();
    if descriptors.is_empty() {
        return instances;
    }
    let selects = |select: &str, i: &Instance| match select.split_once('=') {
        Some(("inet", address)) => i.port.is_some_and(|port| address == format!("{}:{port}", i.host)),
        Some(("member", member)) => member == i.key,
        Some(("shard", shard)) => i.shard.is_some_and(|s| shard.parse() == Ok(s)),
        _ => false,
    };
    instances
        .into_iter()
        .filter_map(|instance| {
            let weight: f64 = descriptors
                .iter()
                .filter(|(select, _)| selects(select, &instance))
                .map(|(_, w)| *w)
                .product();
            if weight < 0.0 {
                return None; // Finagle's sentinel: removed
            }
            let thousandths = (weight * 1000.0).round().clamp(0.0, f64::from(u32::MAX)) as u32;
            if instance.weight == Some(thousandths) {
                return Some(instance);
            }
            let mut weighted = Instance::clone(&instance);
            weighted.weight = Some(thousandths);
            Some(std::sync::Arc::new(weighted))
        })
        .collect()
}

#[cfg(test)]
mod vector_tests {
    use super::*;

    #[test]
    fn vectors_multiply_and_minus_one_removes() {
        let member = |key: &str, host: &str, shard: i64| -> (String, Object) {
            let json = format!(
                r#"{{"serviceEndpoint":{{"host":"{host}","port":80}},"additionalEndpoints":{{}},"status":"ALIVE","shard":{shard}}}"#
            );
            (key.to_string(), serde_json::from_str(&json).unwrap())
        };
        let members = [member("member_1", "a", 0), member("member_2", "b", 1), member("member_3", "c", 2)];
        let vector: Object = serde_json::from_str(
            r#"{"vector":[{"select":"inet=a:80","weight":2.0},{"select":"shard=0","weight":1.5},{"select":"member=member_3","weight":-1.0}]}"#,
        )
        .unwrap();
        let mut children: Vec<(&str, &Object)> = members.iter().map(|(k, o)| (k.as_str(), o)).collect();
        children.push(("vector_0000000001", &vector));
        let instances: Vec<_> = members
            .iter()
            .map(|(k, o)| match decode(k, o) {
                Decoded::Instance(i) => std::sync::Arc::new(*i),
                _ => panic!("{k}"),
            })
            .collect();
        let weighed = weigh(&children, instances);
        let weights: Vec<_> = weighed.iter().map(|i| (i.key.as_str(), i.weight)).collect();
        assert_eq!(weights, [("member_1", Some(3000)), ("member_2", Some(1000))], "member_3 removed");
        assert_eq!(decode("vector_0000000001", &vector), Decoded::Other, "a vector is not a member");
    }
}
