//! Discovery: the service-registry formats of the other ZooKeeper-based
//! systems a fleet runs beside nd_service_registry (Apache Curator's
//! x-discovery, Twitter/Finagle/Aurora ServerSets, Airbnb SmartStack's
//! nerve), read into one [`Instance`] model, and written byte for byte as
//! their own libraries write them. See `docs/DISCOVERY.md` for each format's
//! exact bytes and what ndsr does better than the native library.
//!
//! Reading is lenient where the native readers are (missing fields take
//! their defaults, unknown fields are ignored), and one bad child never
//! fails a listing: it is reported in [`Instances::bad`] and skipped. It is
//! strict where they are not: a host that is not a host name (RFC 1123) or
//! an IP address, or a port outside 1-65535, makes a child bad in every
//! format, so that no instance can carry a newline or a space into the
//! configuration files and command lines it is rendered into.
//!
//! ```no_run
//! # async fn demo(registry: ndsr::Registry) -> ndsr::Result<()> {
//! use ndsr::discovery::{CuratorInstance, Format};
//! // Register the way Curator's ServiceDiscovery does (`/discovery/web/i-1`).
//! let me = CuratorInstance::new("web", "i-1", "10.0.0.1", 8080);
//! registry.announce_curator("/discovery", &me).await?;
//! // Read any format (detected, or given).
//! let web = registry.instances("/discovery/web", None).await?;
//! assert_eq!(web.format, Some(Format::Curator));
//! for instance in web.serving() {
//!     println!("{}:{}", instance.host, instance.port.unwrap_or(0));
//! }
//! # Ok(()) }
//! ```

mod announce;
mod curator;
mod kept;
mod maintenance;
mod nd;
mod nerve;
mod select;
mod serverset;
mod spec;
mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

pub use curator::{CuratorInstance, CuratorPayload, ServiceType, UriSpec};
pub use maintenance::{mark, MarkError, ND_MAINTENANCE};
pub use nerve::NerveInstance;
pub use select::{InFlight, LabelFilter, NoInstance, Selector, Strategy};
pub use serverset::{ServerSetMember, ServerSetStatus};
pub use spec::{AnnounceError, Announcement, InstanceSpec, SelectorSpec, SpecError};
pub use watch::{InstanceChange, InstanceWatch};

use crate::{Object, Snapshot};

/// A service-registry format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Format {
    /// Apache Curator x-discovery: `<base>/<service>/<id>`, JSON
    /// `ServiceInstance`.
    Curator,
    /// Twitter commons / Finagle / Aurora ServerSets: `member_<seq>` nodes
    /// with `serviceEndpoint`, `additionalEndpoints`, `status`.
    ServerSet,
    /// Airbnb SmartStack nerve: `<instance>_<seq>` nodes with `host`,
    /// `port`, `name`, optional `weight` and `labels`.
    Nerve,
    /// nd_service_registry (and ndsr's own registrations): children named
    /// `host:port`, data a JSON object with `pid` and `created`.
    Nd,
}

impl Format {
    /// The format's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Curator => "curator",
            Format::ServerSet => "serverset",
            Format::Nerve => "nerve",
            Format::Nd => "nd",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "curator" => Ok(Format::Curator),
            "serverset" | "serversets" | "finagle" | "aurora" => Ok(Format::ServerSet),
            "nerve" | "smartstack" => Ok(Format::Nerve),
            "nd" | "ndsr" | "nd_service_registry" => Ok(Format::Nd),
            other => Err(format!("unknown format `{other}` (curator, serverset, nerve or nd)")),
        }
    }
}

/// A named endpoint (a ServerSet's `additionalEndpoints`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// One instance of a service, whatever its format.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Instance {
    /// The node's name in the service directory: the instance's identity
    /// (what Curator's cache and synapse key on).
    pub key: String,
    /// The format it was read in.
    pub format: Format,
    /// The format's own instance id: Curator's `id`, nerve's `name`, the
    /// node name for ServerSets (Finagle's `memberId`) and nd.
    pub id: String,
    /// Host name or address (Curator's `address`).
    pub host: String,
    /// The main port, if any (Curator's `port`, a ServerSet's
    /// `serviceEndpoint.port`).
    pub port: Option<u16>,
    /// Curator's `sslPort`.
    pub ssl_port: Option<u16>,
    /// Whether it takes traffic: Curator `enabled` and Spring Cloud's
    /// `metadata.instance_status` (`UP` or empty), ServerSet `status`
    /// `ALIVE`, nd no `maintenance` field (see [`mark`]); nerve instances
    /// always serve (they deregister instead).
    pub serving: bool,
    /// A weight for weighted selection: nerve's `weight`, or a `weight`
    /// label (metadata) of the other formats.
    pub weight: Option<u32>,
    /// A ServerSet's `shard` (Aurora's instance number).
    pub shard: Option<i64>,
    /// String labels: nerve `labels`, ServerSet `metadata`, Curator
    /// payload strings and Spring/Dubbo `metadata`, nd data strings.
    pub labels: BTreeMap<String, String>,
    /// Named endpoints (ServerSet `additionalEndpoints`).
    pub endpoints: BTreeMap<String, Endpoint>,
    /// The node's data as read (JSON).
    pub data: Object,
}

impl Instance {
    /// `host:port` (just the host without a port).
    pub fn address(&self) -> String {
        match self.port {
            Some(port) if self.host.contains(':') => format!("[{}]:{port}", self.host),
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    fn weight_from_labels(&mut self) {
        if self.weight.is_none() {
            self.weight = self.labels.get("weight").and_then(|w| w.trim().parse().ok());
        }
    }
}

/// Why a child of a service directory is not an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadChild {
    /// The child's node name.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// What decoding one child gives.
#[derive(Debug, PartialEq)]
pub(crate) enum Decoded {
    Instance(Box<Instance>),
    /// Not an instance, nor meant to be one (a ServerSet's `vector_` node).
    Other,
    Bad(String),
}

/// Decodes one child of a service directory in `format` (its node name and
/// its data as read).
pub fn decode(format: Format, key: &str, data: &Object) -> Result<Option<Instance>, String> {
    match decode_child(format, key, data) {
        Decoded::Instance(instance) => Ok(Some(*instance)),
        Decoded::Other => Ok(None),
        Decoded::Bad(reason) => Err(reason),
    }
}

pub(crate) fn decode_child(format: Format, key: &str, data: &Object) -> Decoded {
    if let Some(text) = data.get("string_value").filter(|_| data.len() == 1) {
        // The nd codec's wrapping of data that is not a JSON object.
        let text = text.as_str().unwrap_or("");
        let shown: String = text.chars().take(40).collect();
        if format != Format::Nd && !(format == Format::Nerve && key.starts_with("base64_")) {
            if too_deeply_nested(text) {
                return Decoded::Bad(format!(
                    "too deeply nested: JSON objects within objects more than 128 deep ({shown:?}...)"
                ));
            }
            return Decoded::Bad(format!("not a JSON object: {shown:?}"));
        }
    }
    let decoded = match format {
        Format::Curator => curator::decode(key, data),
        Format::ServerSet => serverset::decode(key, data),
        Format::Nerve => nerve::decode(key, data),
        Format::Nd => nd::decode(key, data),
    };
    match decoded {
        Decoded::Instance(instance) => match check_text(&instance) {
            Ok(()) => Decoded::Instance(instance),
            Err(reason) => Decoded::Bad(reason),
        },
        other => other,
    }
}

/// Checks the text an instance carries besides its host and port: its key
/// and id are one word (no whitespace, no control character), its labels'
/// names and values one line (no control character, no Unicode line
/// separator). Anyone who can write a service directory (ZooKeeper's
/// default ACL is open) could otherwise stop every template that renders
/// the service (the filters `cfg` and `cfg_token` refuse such text), or
/// add a line to a configuration file whose template forgot the filters.
pub(crate) fn check_text(instance: &Instance) -> Result<(), String> {
    let shown = |text: &str| {
        let shown: String = text.chars().take(64).collect();
        let more = if text.chars().count() > 64 { "..." } else { "" };
        format!("{shown:?}{more}")
    };
    let line_break = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    for (field, text) in [("key", &instance.key), ("id", &instance.id)] {
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("the {field} {} holds {c:?}: an id is one word", shown(text)));
        }
    }
    for (name, value) in &instance.labels {
        if let Some(c) = name.chars().find(|c| line_break(*c)) {
            return Err(format!("the label name {} holds the control character {c:?}", shown(name)));
        }
        if let Some(c) = value.chars().find(|c| line_break(*c)) {
            return Err(format!(
                "the label {} = {} holds the control character {c:?}",
                shown(name),
                shown(value)
            ));
        }
    }
    Ok(())
}

/// Whether `text` is a JSON object that failed to parse only because it
/// nests deeper than serde_json's limit of 128 (the codec then wraps it as
/// a string like any other text).
fn too_deeply_nested(text: &str) -> bool {
    text.starts_with('{')
        && serde_json::from_str::<Value>(text)
            .is_err_and(|e| e.to_string().starts_with("recursion limit exceeded"))
}

/// Checks that `host` is a host name or an IP literal: a host name is at
/// most 253 characters (one trailing dot aside) of dot-separated RFC 1123
/// labels, each 1 to 63 letters, digits, hyphens and underscores (which
/// real fleets use, although RFC 1123 does not), neither starting nor
/// ending with a hyphen; an IP literal is IPv4 dotted-quad or IPv6 (without
/// brackets, with an optional `%zone` as Java writes link-local
/// addresses). Anything else (spaces, newlines, `<script>`, an empty label)
/// could not be connected to, and would inject text into the configuration
/// files and command lines instances are rendered into.
pub(crate) fn check_host(host: &str, field: &str) -> Result<(), String> {
    if host.parse::<std::net::IpAddr>().is_ok() || is_zoned_ipv6(host) || is_host_name(host) {
        return Ok(());
    }
    let shown: String = host.chars().take(64).collect();
    let more = if host.chars().count() > 64 { "..." } else { "" };
    Err(format!("`{field}` {shown:?}{more} is not a host name or an IP address"))
}

fn is_host_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label)
}

/// An IPv6 literal with a zone, as Java writes a link-local address
/// (`fe80:0:0:0:0:0:0:1%eth0`): the zone is a short interface name or
/// number.
fn is_zoned_ipv6(host: &str) -> bool {
    let Some((address, zone)) = host.split_once('%') else { return false };
    address.parse::<std::net::Ipv6Addr>().is_ok()
        && (1..=32).contains(&zone.len())
        && zone.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks a port read from a format: 1 to 65535.
pub(crate) fn check_port(port: u64, field: &str) -> Result<u16, String> {
    u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("`{field}` {port} is not a port (1-65535)"))
}

/// The format a child looks like, if it says.
pub(crate) fn looks_like(key: &str, data: &Object) -> Option<Format> {
    if serverset::is_member(key) && data.contains_key("serviceEndpoint") {
        return Some(Format::ServerSet);
    }
    if ["serviceType", "registrationTimeUTC", "uriSpec"].iter().any(|k| data.contains_key(*k)) {
        return Some(Format::Curator);
    }
    if key.starts_with("base64_") || (data.contains_key("host") && data.contains_key("port")) {
        return Some(Format::Nerve);
    }
    if data.contains_key("pid") && data.contains_key("created") {
        return Some(Format::Nd);
    }
    None
}

/// The format of a directory's children, from the first (by name) that
/// says which it is; `None` for an empty directory or one whose children
/// say nothing.
pub fn detect<'a>(children: impl IntoIterator<Item = (&'a str, &'a Object)>) -> Option<Format> {
    children.into_iter().find_map(|(key, data)| looks_like(key, data))
}

/// The instances of a service directory at one moment.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Instances {
    /// The directory.
    pub path: String,
    /// The format read (given, or detected; `None`: nothing to detect from).
    pub format: Option<Format>,
    /// The instances, sorted by node name.
    pub instances: Vec<Arc<Instance>>,
    /// Children that are not valid instances of the format, with why:
    /// data that is not a JSON object (or nests too deep), a field the
    /// native reader rejects, a host that is not a host name or an IP
    /// address, a port outside 1-65535.
    pub bad: Vec<BadChild>,
    /// Whether the directory's snapshot is stale (read while disconnected).
    pub stale: bool,
}

impl Instances {
    /// The instances that take traffic.
    pub fn serving(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.instances.iter().filter(|i| i.serving)
    }

    /// Decodes a directory's snapshot and its children's (each `(name,
    /// snapshot)`), in `format` or the detected one.
    pub fn decode<'a>(
        dir: &Snapshot,
        children: impl IntoIterator<Item = (&'a str, &'a Snapshot)>,
        format: Option<Format>,
    ) -> Instances {
        let empty = Object::new();
        let children: Vec<(&str, &Object)> = children
            .into_iter()
            // A child deleted since the directory was listed is gone, not bad.
            .filter(|(_, snapshot)| snapshot.exists())
            .map(|(name, snapshot)| (name, snapshot.data.as_ref().unwrap_or(&empty)))
            .collect();
        let format = format.or_else(|| detect(children.iter().copied()));
        let mut instances = Vec::new();
        let mut bad = Vec::new();
        if let Some(format) = format {
            for (key, data) in &children {
                match decode_child(format, key, data) {
                    Decoded::Instance(instance) => instances.push(Arc::new(*instance)),
                    Decoded::Other => {}
                    Decoded::Bad(reason) => bad.push(BadChild { key: key.to_string(), reason }),
                }
            }
        }
        if format == Some(Format::ServerSet) {
            instances = serverset::weigh(&children, instances);
        }
        instances.sort_by(|a, b| a.key.cmp(&b.key));
        Instances { path: dir.path.to_string(), format, instances, bad, stale: dir.is_stale() }
    }
}

/// Reads a port: a JSON integer, a numeric string, or a float (truncated,
/// as Jackson does); `null` or absent is none; 0 or beyond 65535 is an
/// error.
pub(crate) fn port_of(value: Option<&Value>, field: &str) -> Result<Option<u16>, String> {
    let number = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    match number {
        Some(n) => match u64::try_from(n) {
            Ok(n) => check_port(n, field).map(Some),
            Err(_) => Err(format!("`{field}` {n} is not a port (1-65535)")),
        },
        None => Err(format!("`{field}` is not a number: {}", value.map_or(String::new(), Value::to_string))),
    }
}

/// A string field, `None` when absent or null; an error for another type.
pub(crate) fn string_of(data: &Object, field: &str) -> Result<Option<String>, String> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("`{field}` is not a string: {other}")),
    }
}

/// The string-valued entries of an object (numbers and booleans as their
/// text), skipping `skip`.
pub(crate) fn labels_of(object: &Object, skip: &[&str]) -> BTreeMap<String, String> {
    object
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k.clone(), s.clone())),
            Value::Number(n) => Some((k.clone(), n.to_string())),
            Value::Bool(b) => Some((k.clone(), b.to_string())),
            _ => None,
        })
        .collect()
}

/// Compact JSON of an object, in its key order.
pub(crate) fn compact(object: &Object) -> Vec<u8> {
    serde_json::to_vec(object).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(json: &str) -> Object {
        match serde_json::from_str(json).unwrap() {
            Value::Object(o) => o,
            _ => panic!("not an object"),
        }
    }

    /// The snapshot of an existing node at `path` holding `json`.
    pub(super) fn existing(path: &str, json: &str) -> Snapshot {
        let stat = crate::Stat {
            czxid: 1,
            mzxid: 1,
            ctime: 0,
            mtime: 0,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 1,
            num_children: 0,
            pzxid: 1,
        };
        Snapshot { stat: Some(stat), data: Some(obj(json)), ..Snapshot::missing(path) }
    }

    #[test]
    fn ports_as_the_native_readers_take_them() {
        assert_eq!(port_of(Some(&Value::from(8080)), "port"), Ok(Some(8080)));
        assert_eq!(port_of(Some(&Value::from("8080")), "port"), Ok(Some(8080)));
        assert_eq!(port_of(Some(&serde_json::json!(8080.5)), "port"), Ok(Some(8080)));
        assert_eq!(port_of(Some(&Value::Null), "port"), Ok(None));
        assert_eq!(port_of(None, "port"), Ok(None));
        assert!(port_of(Some(&Value::from(70000)), "port").unwrap_err().contains("not a port"));
        assert!(port_of(Some(&Value::from("eighty")), "port").unwrap_err().contains("not a number"));
    }

    #[test]
    fn formats_are_detected_from_the_first_child_that_says() {
        let curator =
            obj(r#"{"name":"web","id":"i-1","address":"10.0.0.1","port":80,"serviceType":"DYNAMIC"}"#);
        let serverset =
            obj(r#"{"serviceEndpoint":{"host":"h","port":1},"additionalEndpoints":{},"status":"ALIVE"}"#);
        let nerve = obj(r#"{"host":"10.0.0.1","port":8080,"name":"i-0abc"}"#);
        let nd = obj(r#"{"pid":1,"created":"2026-01-01 00:00:00"}"#);
        let junk = obj(r#"{"string_value":"junk"}"#);
        assert_eq!(detect([("i-1", &curator)]), Some(Format::Curator));
        assert_eq!(detect([("member_0000000001", &serverset)]), Some(Format::ServerSet));
        assert_eq!(detect([("x", &junk), ("i-0abc_0000000001", &nerve)]), Some(Format::Nerve));
        assert_eq!(detect([("10.0.0.1:80", &nd)]), Some(Format::Nd));
        assert_eq!(detect([("x", &junk)]), None);
        assert_eq!(detect(std::iter::empty()), None);
    }

    #[test]
    fn one_bad_child_is_reported_and_the_rest_listed() {
        let dir = Snapshot::missing("/discovery/web");
        let good = existing(
            "/discovery/web/i-1",
            r#"{"name":"web","id":"i-1","address":"10.0.0.1","port":8080,"sslPort":null,"payload":null,"registrationTimeUTC":1,"serviceType":"DYNAMIC","uriSpec":null}"#,
        );
        let junk = existing("/discovery/web/junk", r#"{"string_value":"10.0.0.9:80"}"#);
        let typo = existing("/discovery/web/i-2", r#"{"address":"10.0.0.2","serviceType":"dynamic"}"#);
        let gone = Snapshot::missing("/discovery/web/i-3");
        let list =
            Instances::decode(&dir, [("i-1", &good), ("junk", &junk), ("i-2", &typo), ("i-3", &gone)], None);
        assert_eq!(list.format, Some(Format::Curator));
        assert_eq!(list.instances.len(), 1);
        assert_eq!(list.instances[0].address(), "10.0.0.1:8080");
        let reasons: Vec<_> = list.bad.iter().map(|b| (b.key.as_str(), b.reason.as_str())).collect();
        assert_eq!(reasons.len(), 2, "a child deleted meanwhile is not bad: {reasons:?}");
        assert!(reasons[0].0 == "junk" && reasons[0].1.contains("not a JSON object"), "{reasons:?}");
        assert!(reasons[1].0 == "i-2" && reasons[1].1.contains("serviceType"), "{reasons:?}");
    }

    #[test]
    fn hosts_are_host_names_or_ip_literals() {
        let long_label = "a".repeat(64);
        let long_name = ["abcdefghi"; 26].join("."); // 259 characters
        for good in [
            "10.0.0.1",
            "::1",
            "fe80::1:2",
            "fe80:0:0:0:0:0:0:1%eth0",
            "web-1.example.com",
            "web_1.internal",
            "localhost",
            "web.",
            "123",
            "A-b",
        ] {
            assert_eq!(check_host(good, "host"), Ok(()), "{good}");
        }
        for bad in [
            "",
            "10.0.0.9 check\n    server evil 6.6.6.6:443",
            "<script>alert(1)</script>",
            "a b",
            "-web",
            "fe80::1%eth0 x",
            "10.0.0.1%eth0",
            "web-",
            "a..b",
            ".",
            "[::1]",
            "h\u{0}",
            "caf\u{e9}",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            let why = check_host(bad, "address").unwrap_err();
            assert!(
                why.starts_with("`address` ") && why.contains("is not a host name or an IP address"),
                "{why}"
            );
            assert!(!why.contains('\n'), "the reason is one line: {why}");
        }
        assert_eq!(check_port(1, "port"), Ok(1));
        assert_eq!(check_port(65535, "port"), Ok(65535));
        assert_eq!(check_port(0, "port"), Err("`port` 0 is not a port (1-65535)".into()));
        assert!(check_port(65536, "port").is_err());
        assert!(port_of(Some(&Value::from(0)), "port").unwrap_err().contains("0 is not a port"));
        assert!(port_of(Some(&Value::from(-1)), "port").unwrap_err().contains("-1 is not a port"));
    }

    #[test]
    fn an_object_nested_too_deep_is_reported_as_such() {
        let deep = format!("{}1{}", "{\"a\":".repeat(5000), "}".repeat(5000));
        let data = crate::codec::decode(deep.as_bytes()).unwrap();
        for format in [Format::Curator, Format::ServerSet, Format::Nerve] {
            let key = if format == Format::ServerSet { "member_1" } else { "i-1" };
            let Decoded::Bad(why) = decode_child(format, key, &data) else { panic!("{format} took it") };
            assert!(why.starts_with("too deeply nested"), "{format}: {why}");
        }
        let junk = crate::codec::decode(b"{not json}").unwrap();
        let Decoded::Bad(why) = decode_child(Format::Curator, "i-1", &junk) else { panic!() };
        assert!(why.starts_with("not a JSON object"), "{why}");
    }

    #[test]
    fn a_serverset_listing_follows_its_weight_vectors() {
        let dir = Snapshot::missing("/ss");
        let member = existing(
            "/ss/member_1",
            r#"{"serviceEndpoint":{"host":"a","port":80},"additionalEndpoints":{},"status":"ALIVE"}"#,
        );
        let vector = existing("/ss/vector_1", r#"{"vector":[{"select":"member=member_1","weight":0.5}]}"#);
        let list = Instances::decode(&dir, [("member_1", &member), ("vector_1", &vector)], None);
        assert_eq!(list.format, Some(Format::ServerSet));
        assert_eq!(list.instances.iter().map(|i| i.weight).collect::<Vec<_>>(), [Some(500)]);
        assert!(list.bad.is_empty(), "a vector is not a bad member: {:?}", list.bad);
    }

    #[test]
    fn an_id_with_whitespace_or_a_label_with_a_newline_is_bad() {
        let curator = |id: &str, payload: &str| {
            obj(&format!(
                r#"{{"name":"web","id":{},"address":"10.0.0.1","port":80,"payload":{payload},"serviceType":"DYNAMIC"}}"#,
                serde_json::to_string(id).unwrap()
            ))
        };
        let good = curator("i-1", r#"{"zone":"us east # 1"}"#);
        assert!(matches!(decode_child(Format::Curator, "i-1", &good), Decoded::Instance(_)));
        for (key, id, payload, why) in [
            ("x y", "i-1", "null", "the key \"x y\" holds ' '"),
            ("i-1", "x y", "null", "the id \"x y\" holds ' '"),
            ("i-1", "x\ny", "null", "the id \"x\\ny\" holds '\\n'"),
            ("i-1", "x\u{2028}y", "null", "holds '\\u{2028}'"),
            (
                "i-1",
                "i-1",
                r#"{"zone":"a\nb"}"#,
                "the label \"zone\" = \"a\\nb\" holds the control character",
            ),
            ("i-1", "i-1", r#"{"a\rb":"x"}"#, "the label name \"a\\rb\" holds the control character '\\r'"),
            ("i-1", "i-1", r#"{"zone":"a\u2029b"}"#, "holds the control character '\\u{2029}'"),
        ] {
            let Decoded::Bad(reason) = decode_child(Format::Curator, key, &curator(id, payload)) else {
                panic!("{key:?} {id:?} {payload}: taken")
            };
            assert!(reason.contains(why), "{key:?} {id:?} {payload}: {reason}");
        }
        // Every format: nd's labels are its data strings.
        let nd = obj(r#"{"zone":"a\nserver evil"}"#);
        assert!(matches!(decode_child(Format::Nd, "10.0.0.1:80", &nd), Decoded::Bad(_)));
    }

    #[test]
    fn format_names_round_trip() {
        for format in [Format::Curator, Format::ServerSet, Format::Nerve, Format::Nd] {
            assert_eq!(format.name().parse::<Format>(), Ok(format));
        }
        assert!("zookeeper".parse::<Format>().is_err());
    }
}
