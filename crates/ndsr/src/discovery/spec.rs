//! What every face of ndsr (the CLI, the agent, the Python module) gives
//! to announce an instance or to pick one, as flat fields and strings, and
//! the library's types made from them, here once: an [`InstanceSpec`]
//! becomes an [`Announcement`]; a [`SelectorSpec`] becomes a [`Selector`].

use std::collections::BTreeMap;

use serde::Serialize;

use super::{CuratorInstance, CuratorPayload, Endpoint, Format, LabelFilter, NerveInstance, Selector};
use super::{ServerSetMember, Strategy, UriSpec};
use crate::{Registry, Result};

/// An instance to announce, in flat fields (as `ndsr register --as`, the
/// agent's configuration and API, and Python's `announce` give it).
/// Serialized, it is what the agent shows of a registration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InstanceSpec {
    /// Host name or address.
    pub host: String,
    /// Main port.
    pub port: u16,
    /// Curator: the service's name; nerve: the instance's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Curator: the instance id (default: a new UUID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Curator `sslPort`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_port: Option<u16>,
    /// Curator `uriSpec` template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri_spec: Option<String>,
    /// ServerSet shard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<i32>,
    /// nerve weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Curator payload strings, ServerSet metadata, nerve labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// ServerSet additional endpoints: name to host and port.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, (String, u16)>,
    /// nerve: the node name carries the instance, base64-encoded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_encoding: bool,
}

impl InstanceSpec {
    /// An instance at `host:port`, every other field unset.
    pub fn new(host: &str, port: u16) -> InstanceSpec {
        InstanceSpec { host: host.to_string(), port, ..InstanceSpec::default() }
    }

    /// Parses an endpoint's `HOST:PORT` (the last colon splits, so an IPv6
    /// literal keeps its colons); `None` when the host is empty or the
    /// port is not a number from 0 to 65535.
    ///
    /// ```
    /// use ndsr::discovery::InstanceSpec;
    /// assert_eq!(InstanceSpec::parse_endpoint("db:5432"), Some(("db".to_string(), 5432)));
    /// assert_eq!(InstanceSpec::parse_endpoint(":5432"), None);
    /// ```
    pub fn parse_endpoint(text: &str) -> Option<(String, u16)> {
        text.rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
            .filter(|(h, _)| !h.is_empty())
    }
}

/// Why an [`InstanceSpec`] makes no [`Announcement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnnounceError {
    /// Curator and nerve instances need [`InstanceSpec::name`]; `what` says
    /// what the name is ("the service", "the instance id").
    #[error("a {format} instance needs a name ({what})")]
    NameMissing {
        /// The format asked for.
        format: Format,
        /// What the name stands for in that format.
        what: &'static str,
    },
    /// The format has no instances to announce (nd nodes are plain nodes
    /// with data).
    #[error("{0} has no instances to announce: curator, serverset or nerve")]
    NotAnInstance(Format),
}

/// An instance in one format, and where it goes: what
/// [`Announcement::register`] writes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Announcement {
    /// A Curator instance, at `<base>/<name>/<id>`.
    Curator {
        /// Curator's base path (the service's parent).
        base: String,
        /// The instance.
        instance: CuratorInstance,
    },
    /// A ServerSet member, a sequential node in `dir`.
    ServerSet {
        /// The service directory.
        dir: String,
        /// The member.
        member: ServerSetMember,
    },
    /// A nerve instance, a sequential node in `dir`.
    Nerve {
        /// The service directory.
        dir: String,
        /// The instance.
        instance: NerveInstance,
        /// Whether the node's name carries the instance, base64-encoded.
        path_encoding: bool,
    },
}

impl Announcement {
    /// The announcement of `spec` in `format` under `path` (Curator's base
    /// path; the ServerSet's or nerve's service directory). A Curator
    /// instance without an id gets a new UUID.
    ///
    /// # Errors
    /// [`AnnounceError::NameMissing`] for a Curator or nerve instance
    /// without a name; [`AnnounceError::NotAnInstance`] for nd.
    ///
    /// ```
    /// use ndsr::discovery::{Announcement, Format, InstanceSpec};
    /// let mut spec = InstanceSpec::new("10.0.0.1", 8080);
    /// spec.name = Some("web".into());
    /// spec.id = Some("i-1".into());
    /// let announcement = Announcement::new(Format::Curator, "/discovery", spec).unwrap();
    /// assert_eq!(announcement.known_path().as_deref(), Some("/discovery/web/i-1"));
    /// ```
    pub fn new(
        format: Format,
        path: &str,
        spec: InstanceSpec,
    ) -> std::result::Result<Announcement, AnnounceError> {
        let name = |what| spec.name.clone().ok_or(AnnounceError::NameMissing { format, what });
        Ok(match format {
            Format::Curator => {
                let name = name("the service")?;
                let id = spec.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                let mut instance = CuratorInstance::new(&name, &id, &spec.host, spec.port);
                instance.ssl_port = spec.ssl_port;
                instance.uri_spec = spec.uri_spec.as_deref().map(UriSpec::parse);
                if !spec.labels.is_empty() {
                    let payload =
                        spec.labels.into_iter().map(|(k, v)| (k, serde_json::Value::from(v))).collect();
                    instance.payload = CuratorPayload::Json(serde_json::Value::Object(payload));
                }
                Announcement::Curator { base: path.to_string(), instance }
            }
            Format::ServerSet => {
                let mut member = ServerSetMember::new(&spec.host, spec.port);
                member.shard = spec.shard;
                member.metadata = spec.labels;
                for (name, (host, port)) in spec.endpoints {
                    member.additional_endpoints.insert(name, Endpoint { host, port });
                }
                Announcement::ServerSet { dir: path.to_string(), member }
            }
            Format::Nerve => {
                let mut instance = NerveInstance::new(&name("the instance id")?, &spec.host, spec.port);
                instance.weight = spec.weight;
                instance.labels = spec.labels;
                Announcement::Nerve { dir: path.to_string(), instance, path_encoding: spec.path_encoding }
            }
            Format::Nd => return Err(AnnounceError::NotAnInstance(format)),
        })
    }

    /// Its format.
    pub fn format(&self) -> Format {
        match self {
            Announcement::Curator { .. } => Format::Curator,
            Announcement::ServerSet { .. } => Format::ServerSet,
            Announcement::Nerve { .. } => Format::Nerve,
        }
    }

    /// Registers it (and keeps it registered, as every registration);
    /// returns the node's path.
    ///
    /// # Errors
    /// As [`Registry::announce_curator`], [`Registry::announce_serverset`]
    /// and [`Registry::announce_nerve`].
    pub async fn register(&self, registry: &Registry) -> Result<String> {
        match self {
            Announcement::Curator { base, instance } => registry.announce_curator(base, instance).await,
            Announcement::ServerSet { dir, member } => registry.announce_serverset(dir, member).await,
            Announcement::Nerve { dir, instance, path_encoding } => {
                registry.announce_nerve(dir, instance, *path_encoding).await
            }
        }
    }

    /// The node's path before it is registered: Curator's is
    /// `<base>/<name>/<id>`; a sequential node's is known only once made.
    pub fn known_path(&self) -> Option<String> {
        match self {
            Announcement::Curator { base, instance } => {
                Some(format!("{}/{}/{}", base.trim_end_matches('/'), instance.name, instance.id))
            }
            _ => None,
        }
    }

    /// Whether its node has a sequence number (a new name each time).
    pub fn sequential(&self) -> bool {
        !matches!(self, Announcement::Curator { .. })
    }
}

/// What a [`Selector`] is made of, as the faces give it: a strategy, label
/// filters, a preferred zone, and whether drained instances count. Equal
/// specs make selectors that behave alike, so a spec (with the path) is
/// the key of a cache of selectors that keep their state across picks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SelectorSpec {
    /// How to choose.
    pub strategy: Strategy,
    /// Label predicates, all of which must hold.
    pub labels: Vec<LabelFilter>,
    /// `(label, value)`: prefer these instances, fall back to the others.
    pub prefer: Option<(String, String)>,
    /// Whether drained (not serving) instances may be picked.
    pub include_draining: bool,
}

/// Why text makes no [`SelectorSpec`]; each names the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A label filter that is neither `KEY=VALUE` nor `KEY!=VALUE`.
    #[error("`{0}` is not KEY=VALUE or KEY!=VALUE")]
    NotAFilter(String),
    /// A preferred zone that is not `KEY=VALUE`.
    #[error("`{0}` is not KEY=VALUE")]
    NotAPair(String),
    /// A filter or preference with an empty key.
    #[error("`{0}` has no key")]
    NoKey(String),
    /// A strategy's name that is not known (the message lists the known).
    #[error("{0}")]
    Strategy(String),
}

impl SelectorSpec {
    /// A spec with `strategy`, no filters, no preference, serving
    /// instances only.
    pub fn new(strategy: Strategy) -> SelectorSpec {
        SelectorSpec { strategy, labels: Vec::new(), prefer: None, include_draining: false }
    }

    /// Parses a strategy's name (as [`Strategy`]'s `FromStr`: `random`,
    /// `round-robin` or `round_robin`, ...), label filters (`KEY=VALUE` or
    /// `KEY!=VALUE`) and a preferred zone (`KEY=VALUE`).
    ///
    /// # Errors
    /// The first part that does not parse, as a [`SpecError`].
    ///
    /// ```
    /// use ndsr::discovery::{SelectorSpec, Strategy};
    /// let spec = SelectorSpec::parse("round_robin", ["tier!=canary"], Some("zone=a"), false).unwrap();
    /// assert_eq!(spec.strategy, Strategy::RoundRobin);
    /// assert!(!spec.labels[0].equals);
    /// assert!(SelectorSpec::parse("best", [], None, false).is_err());
    /// ```
    pub fn parse<'a>(
        strategy: &str,
        labels: impl IntoIterator<Item = &'a str>,
        prefer: Option<&str>,
        include_draining: bool,
    ) -> std::result::Result<SelectorSpec, SpecError> {
        Ok(SelectorSpec {
            strategy: strategy.parse().map_err(SpecError::Strategy)?,
            labels: labels
                .into_iter()
                .map(SelectorSpec::parse_label)
                .collect::<std::result::Result<_, _>>()?,
            prefer: prefer.map(SelectorSpec::parse_prefer).transpose()?,
            include_draining,
        })
    }

    /// Parses a label filter: `KEY=VALUE` (equal) or `KEY!=VALUE` (not
    /// equal); the value may be empty, the key may not.
    ///
    /// # Errors
    /// [`SpecError::NotAFilter`] without `=`, [`SpecError::NoKey`] with an
    /// empty key.
    pub fn parse_label(text: &str) -> std::result::Result<LabelFilter, SpecError> {
        let (label, value, equals) = match text.split_once("!=") {
            Some((k, v)) => (k, v, false),
            None => match text.split_once('=') {
                Some((k, v)) => (k, v, true),
                None => return Err(SpecError::NotAFilter(text.to_string())),
            },
        };
        if label.is_empty() {
            return Err(SpecError::NoKey(text.to_string()));
        }
        Ok(LabelFilter { label: label.to_string(), value: value.to_string(), equals })
    }

    /// Parses a preferred zone, `KEY=VALUE`.
    ///
    /// # Errors
    /// [`SpecError::NotAPair`] without `=`, [`SpecError::NoKey`] with an
    /// empty key.
    pub fn parse_prefer(text: &str) -> std::result::Result<(String, String), SpecError> {
        match text.split_once('=') {
            Some(("", _)) => Err(SpecError::NoKey(text.to_string())),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(SpecError::NotAPair(text.to_string())),
        }
    }

    /// A new selector as the spec says (with fresh state: its own turn,
    /// sticky choice and failure reports).
    pub fn build(&self) -> Selector {
        let mut selector = Selector::new(self.strategy);
        if self.include_draining {
            selector = selector.include_draining();
        }
        for filter in &self.labels {
            selector = selector.label(&filter.label, &filter.value, filter.equals);
        }
        if let Some((label, zone)) = &self.prefer {
            selector = selector.prefer_zone(label, zone);
        }
        selector
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::discovery::{decode, Instance, NoInstance};

    #[test]
    fn announcements_from_flat_fields() {
        let mut spec = InstanceSpec::new("10.0.0.1", 8080);
        spec.labels.insert("zone".into(), "a".into());
        spec.endpoints.insert("admin".into(), ("10.0.0.1".into(), 9090));
        spec.shard = Some(3);

        let curator = Announcement::new(Format::Curator, "/d", spec.clone());
        assert_eq!(curator, Err(AnnounceError::NameMissing { format: Format::Curator, what: "the service" }));
        let nerve = Announcement::new(Format::Nerve, "/d", spec.clone());
        assert_eq!(nerve, Err(AnnounceError::NameMissing { format: Format::Nerve, what: "the instance id" }));
        assert_eq!(
            Announcement::new(Format::Nd, "/d", spec.clone()),
            Err(AnnounceError::NotAnInstance(Format::Nd))
        );

        let Ok(Announcement::ServerSet { dir, member }) =
            Announcement::new(Format::ServerSet, "/d", spec.clone())
        else {
            panic!("a serverset member")
        };
        assert_eq!(dir, "/d");
        assert_eq!(member.shard, Some(3));
        assert_eq!(member.metadata.get("zone").map(String::as_str), Some("a"));
        assert_eq!(member.additional_endpoints["admin"], Endpoint { host: "10.0.0.1".into(), port: 9090 });

        spec.name = Some("web".into());
        let curator = Announcement::new(Format::Curator, "/d/", spec.clone()).unwrap();
        assert_eq!(curator.format(), Format::Curator);
        assert!(!curator.sequential());
        let Announcement::Curator { instance, .. } = &curator else { panic!("a curator instance") };
        // A new UUID when no id is given.
        assert_eq!(instance.id.len(), 36);
        assert_eq!(curator.known_path(), Some(format!("/d/web/{}", instance.id)));

        spec.path_encoding = true;
        spec.weight = Some(5);
        let nerve = Announcement::new(Format::Nerve, "/d", spec).unwrap();
        assert!(nerve.sequential() && nerve.known_path().is_none());
        let Announcement::Nerve { instance, path_encoding, .. } = nerve else { panic!("a nerve instance") };
        assert!(path_encoding);
        assert_eq!((instance.name.as_str(), instance.weight), ("web", Some(5)));
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(InstanceSpec::parse_endpoint("h:1"), Some(("h".into(), 1)));
        assert_eq!(InstanceSpec::parse_endpoint("fe80::1:80"), Some(("fe80::1".into(), 80)));
        for bad in ["", "h", ":1", "h:", "h:x", "h:65536"] {
            assert_eq!(InstanceSpec::parse_endpoint(bad), None, "{bad}");
        }
    }

    #[test]
    fn selector_specs_parse() {
        let spec =
            SelectorSpec::parse("weighted", ["zone=a", "tier!=", "k=v=w"], Some("dc=x"), true).unwrap();
        let filter = |label: &str, value: &str, equals| LabelFilter {
            label: label.into(),
            value: value.into(),
            equals,
        };
        assert_eq!(spec.strategy, Strategy::Weighted);
        assert_eq!(
            spec.labels,
            vec![filter("zone", "a", true), filter("tier", "", false), filter("k", "v=w", true)]
        );
        assert_eq!(spec.prefer, Some(("dc".into(), "x".into())));
        assert!(spec.include_draining);

        assert_eq!(SelectorSpec::parse_label("zone"), Err(SpecError::NotAFilter("zone".into())));
        assert_eq!(SelectorSpec::parse_label("=a"), Err(SpecError::NoKey("=a".into())));
        assert_eq!(SelectorSpec::parse_label("!=a"), Err(SpecError::NoKey("!=a".into())));
        assert_eq!(SelectorSpec::parse_prefer("zone"), Err(SpecError::NotAPair("zone".into())));
        assert_eq!(SelectorSpec::parse_prefer("=a"), Err(SpecError::NoKey("=a".into())));
        assert!(matches!(SelectorSpec::parse("fastest", [], None, false), Err(SpecError::Strategy(_))));
        assert_eq!(SpecError::NotAFilter("x".into()).to_string(), "`x` is not KEY=VALUE or KEY!=VALUE");
    }

    fn instance(key: &str, data: &str) -> Arc<Instance> {
        let data: crate::Object = serde_json::from_str(data).unwrap();
        Arc::new(decode(Format::Nerve, key, &data).unwrap().unwrap())
    }

    #[test]
    fn built_selectors_filter_prefer_and_take_turns() {
        let list = vec![
            instance(
                "a_1",
                r#"{"host":"10.0.0.1","port":1,"name":"a","labels":{"zone":"x","tier":"canary"}}"#,
            ),
            instance("b_2", r#"{"host":"10.0.0.2","port":2,"name":"b","labels":{"zone":"y"}}"#),
            instance("c_3", r#"{"host":"10.0.0.3","port":3,"name":"c","labels":{"zone":"y"}}"#),
        ];
        let spec = SelectorSpec::parse("round-robin", ["tier!=canary"], None, false).unwrap();
        let selector = spec.build();
        let picks: Vec<_> = (0..4).map(|_| selector.pick(&list).unwrap().key.clone()).collect();
        assert_eq!(picks, ["b_2", "c_3", "b_2", "c_3"]);

        let prefer = SelectorSpec::parse("random", [], Some("zone=x"), false).unwrap().build();
        assert_eq!(prefer.pick(&list).unwrap().key, "a_1");

        let none = SelectorSpec::parse("random", ["zone=z"], None, false).unwrap().build();
        assert_eq!(none.pick(&list).unwrap_err(), NoInstance::NoneMatches);
    }
}
