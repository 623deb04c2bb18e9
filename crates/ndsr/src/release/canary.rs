//! Canary releases: a candidate next value of a configuration node that
//! only the ndsr clients a rule picks apply, while the live node keeps the
//! stable value for every other reader; then promoted (the canary becomes
//! the next release, in one transaction) or aborted.
//!
//! The canary lives at `<root>/config/<K>/canary` (a header line, then the
//! value's exact bytes). Each ndsr client that follows the path with
//! [`Registry::config`] and has seen a canary reports what it applied in an
//! ephemeral node of its session under `<root>/config/<K>/clients/`, which
//! [`Registry::canary_status`] counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zookeeper_client::{CreateMode, MultiWriteResult};

use super::txn::{now, Failed, Step, Txn};
use super::write::parse_json;
use super::{host_name, sha256_hex, Operation, PublishOptions, Release};
use crate::{Error, Registry, Result};

const CANARY_FORMAT: &str = "ndsr-canary";
const REPORT_FORMAT: &str = "ndsr-config-client";

/// Which ndsr clients apply a canary, by their
/// [`identity`](crate::RegistryBuilder::identity) and
/// [`labels`](crate::RegistryBuilder::label).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CanaryRule {
    /// The clients with one of these identities (by default, host names).
    Hosts(Vec<String>),
    /// The clients that have every one of these labels, with these values.
    Labels(BTreeMap<String, String>),
    /// This share of clients, in percent (0 to 100), chosen by a stable
    /// hash of the path and the identity (see [`percent_bucket`]): the
    /// same clients every time, and raising the share only adds clients.
    Percent(f64),
}

impl CanaryRule {
    /// Does a client with this identity and these labels apply a canary
    /// of `path` under this rule?
    pub fn matches(&self, path: &str, identity: &str, labels: &BTreeMap<String, String>) -> bool {
        match self {
            CanaryRule::Hosts(hosts) => hosts.iter().any(|h| h == identity),
            CanaryRule::Labels(wanted) => wanted.iter().all(|(k, v)| labels.get(k) == Some(v)),
            CanaryRule::Percent(share) => percent_bucket(path, identity) < *share,
        }
    }

    fn check(&self) -> Result<()> {
        match self {
            CanaryRule::Hosts(hosts) if hosts.is_empty() || hosts.iter().any(|h| h.is_empty()) => {
                Err(Error::InvalidArgument("a canary by hosts names at least one host, none empty"))
            }
            CanaryRule::Labels(labels) if labels.is_empty() || labels.keys().any(|k| k.is_empty()) => {
                Err(Error::InvalidArgument("a canary by labels names at least one label, none empty"))
            }
            CanaryRule::Percent(share) if !share.is_finite() || !(0.0..=100.0).contains(share) => {
                Err(Error::InvalidArgument("a canary percentage is between 0 and 100"))
            }
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for CanaryRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CanaryRule::Hosts(hosts) => write!(f, "hosts {}", hosts.join(",")),
            CanaryRule::Labels(labels) => {
                let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "labels {}", pairs.join(","))
            }
            CanaryRule::Percent(share) => write!(f, "{share}% of clients"),
        }
    }
}

/// Where a client falls in a percentage canary of `path`: a number in
/// `[0, 100)`, from the SHA-256 of the path and the identity, the same on
/// every client and every run. A client applies a canary of `p` percent
/// when its bucket is below `p`.
pub fn percent_bucket(path: &str, identity: &str) -> f64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{path}\n{identity}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 10_000) as f64 / 100.0
}

/// A canary of a configuration path (see [`Registry::start_canary`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    /// The configuration path.
    pub path: String,
    /// Who applies it.
    pub rule: CanaryRule,
    /// The live version it was started over: a promote is conditional on
    /// the live node still being at it.
    pub base_version: i32,
    /// The candidate value's exact bytes.
    pub value: Vec<u8>,
    /// SHA-256 of the value, in hex.
    pub sha256: String,
    /// Who started it (see [`author`](crate::RegistryBuilder::author)).
    pub author: String,
    /// The host it was started from.
    pub host: String,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Why.
    pub message: String,
    /// The canary node's version: each change of the canary adds one.
    pub revision: i32,
}

impl Canary {
    /// The canary as JSON, as the CLI, the agent and Python show it: its
    /// fields, and `value` decoded (a canary's value is JSON; text, were it
    /// not).
    pub fn view(&self) -> serde_json::Value {
        let value = serde_json::from_slice(&self.value)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&self.value).into_owned()));
        serde_json::json!({
            "path": self.path,
            "rule": self.rule,
            "base_version": self.base_version,
            "revision": self.revision,
            "sha256": self.sha256,
            "author": self.author,
            "host": self.host,
            "time": self.time,
            "message": self.message,
            "value": value,
        })
    }
}

/// The header line of the canary node.
#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    v: u32,
    path: String,
    base_version: i32,
    rule: CanaryRule,
    sha256: String,
    size: usize,
    author: String,
    host: String,
    time: String,
    message: String,
}

impl Canary {
    /// Reads a canary node's bytes: `Ok(None)` for an empty node (no
    /// canary: a promote or an abort leaves the node empty, so that its
    /// version only grows), `Err` saying why for what is not a canary of
    /// `path`, or whose value does not match its digest.
    pub(crate) fn parse(
        path: &str,
        bytes: &[u8],
        revision: i32,
    ) -> std::result::Result<Option<Canary>, String> {
        if bytes.is_empty() {
            return Ok(None);
        }
        let split = bytes.iter().position(|&b| b == b'\n').ok_or("no header line")?;
        let header: Header = serde_json::from_slice(&bytes[..split])
            .map_err(|e| format!("a header that cannot be read: {e}"))?;
        let value = bytes[split + 1..].to_vec();
        if header.format != CANARY_FORMAT || header.path != path {
            return Err(format!("not a canary of {path}"));
        }
        if header.sha256 != sha256_hex(&value) {
            return Err("its value does not match its SHA-256 (changed outside ndsr?)".into());
        }
        Ok(Some(Canary {
            path: header.path,
            rule: header.rule,
            base_version: header.base_version,
            value,
            sha256: header.sha256,
            author: header.author,
            host: header.host,
            time: header.time,
            message: header.message,
            revision,
        }))
    }
}

/// What a client runs, as it reports it (see [`ClientReport`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Applied {
    /// The live node's value at `version`.
    Stable {
        /// The live version.
        version: i32,
    },
    /// A canary's value, started over the live version `base_version`.
    Canary {
        /// The live version the canary was started over.
        base_version: i32,
        /// SHA-256 of the canary's value.
        sha256: String,
    },
    /// Neither: a default or a saved value (nothing good from the node).
    Other,
}

/// A value a client refused (see [`ClientReport`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Was it a canary (else the live value)?
    pub canary: bool,
    /// SHA-256 of the value refused.
    pub sha256: String,
    /// Why, one line each.
    pub reasons: Vec<String>,
}

/// What one ndsr client following a configuration path reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReport {
    /// Its identity.
    pub identity: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// What it runs.
    pub applied: Applied,
    /// The last value it refused, if the value it runs is not the newest
    /// it was offered.
    pub refused: Option<Refusal>,
    /// When it applied what it runs (RFC 3339, UTC).
    pub since: String,
}

#[derive(Serialize, Deserialize)]
struct ReportDoc {
    format: String,
    #[serde(flatten)]
    report: ClientReport,
}

impl ClientReport {
    pub(crate) fn new(registry: &Registry, applied: Applied, refused: Option<Refusal>) -> ClientReport {
        let config = &registry.shared.config;
        ClientReport {
            identity: config.identity_or_default(),
            labels: config.labels.clone(),
            host: host_name().to_string(),
            pid: std::process::id(),
            applied,
            refused,
            since: now(),
        }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let doc = ReportDoc { format: REPORT_FORMAT.into(), report: self.clone() };
        serde_json::to_vec(&doc).unwrap_or_default()
    }

    pub(crate) fn parse_bytes(bytes: &[u8]) -> Option<ClientReport> {
        let doc: ReportDoc = serde_json::from_slice(bytes).ok()?;
        (doc.format == REPORT_FORMAT).then_some(doc.report)
    }
}

/// A path's canary and what its clients run (see
/// [`Registry::canary_status`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryStatus {
    /// The configuration path.
    pub path: String,
    /// The canary, if there is one.
    pub canary: Option<Canary>,
    /// The live version (`None`: no node).
    pub stable_version: Option<i32>,
    /// The reports of the ndsr clients following the path that have seen
    /// a canary, by node name.
    pub clients: Vec<ClientReport>,
}

impl CanaryStatus {
    /// The clients running the live value at its present version.
    pub fn on_stable(&self) -> usize {
        let at = self.stable_version;
        self.clients
            .iter()
            .filter(|c| matches!(c.applied, Applied::Stable { version } if Some(version) == at))
            .count()
    }

    /// The clients running the present canary.
    pub fn on_canary(&self) -> usize {
        let Some(canary) = &self.canary else { return 0 };
        self.clients
            .iter()
            .filter(|c| matches!(&c.applied, Applied::Canary { sha256, .. } if *sha256 == canary.sha256))
            .count()
    }

    /// The clients that refused the present canary.
    pub fn refused_canary(&self) -> Vec<&ClientReport> {
        let Some(canary) = &self.canary else { return Vec::new() };
        self.clients
            .iter()
            .filter(|c| c.refused.as_ref().is_some_and(|r| r.canary && r.sha256 == canary.sha256))
            .collect()
    }
}

impl CanaryStatus {
    /// The status as JSON, as `ndsr config status --json` and the agent's
    /// `GET <path>/canary` answer it: the canary ([`Canary::view`], or
    /// null), the live version, the counts and every client's report.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path,
            "stable_version": self.stable_version,
            "canary": self.canary.as_ref().map(Canary::view),
            "counts": {
                "clients": self.clients.len(),
                "on_stable": self.on_stable(),
                "on_canary": self.on_canary(),
                "refused_canary": self.refused_canary().len(),
            },
            "clients": self.clients,
        })
    }
}

/// Checks a client's identity and labels (see
/// [`RegistryBuilder::identity`](crate::RegistryBuilder::identity)).
pub(crate) fn check_identity(identity: &str, labels: &BTreeMap<String, String>) -> Result<()> {
    if identity.is_empty()
        || identity.len() > 255
        || identity.contains('/')
        || identity.chars().any(char::is_control)
    {
        return Err(Error::InvalidArgument(
            "an identity is 1 to 255 bytes, without '/' or control characters",
        ));
    }
    if labels.iter().any(|(k, v)| k.is_empty() || k.chars().chain(v.chars()).any(char::is_control)) {
        return Err(Error::InvalidArgument("a label has a name, and no control characters"));
    }
    Ok(())
}

impl Registry {
    /// Who this client is to canaries (see
    /// [`RegistryBuilder::identity`](crate::RegistryBuilder::identity)).
    pub fn identity(&self) -> String {
        self.shared.config.identity_or_default()
    }

    /// This client's labels (see
    /// [`RegistryBuilder::label`](crate::RegistryBuilder::label)).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.shared.config.labels
    }

    /// The node that holds the canary of `path` (see the module's
    /// layout): follow it to learn when a canary starts, changes or ends.
    pub fn canary_node(&self, path: &str) -> String {
        self.layout(path).canary
    }

    /// Does this client apply `canary` (by its rule, this client's
    /// identity and labels)?
    pub fn picked_by(&self, canary: &Canary) -> bool {
        canary.rule.matches(&canary.path, &self.identity(), self.labels())
    }

    /// Starts (or replaces) a canary of the configuration node `path`:
    /// `value` is applied by the ndsr clients that `rule` picks (see
    /// [`Registry::config`]), while the live node keeps the stable value
    /// for every other reader. The value is checked against the path's
    /// schema before anything is sent, and the canary is written in one
    /// transaction that checks the live version and the schema's.
    /// [`if_version`](PublishOptions::if_version) makes it conditional on
    /// the live version.
    ///
    /// # Errors
    /// [`Error::NoRelease`] when the path has no ndsr release yet;
    /// [`Error::InvalidArgument`] for a bad rule (a percentage outside
    /// 0-100, no hosts, no labels) or a value equal to the live one;
    /// otherwise as [`publish`](Self::publish). Nothing is written on error.
    pub async fn start_canary(
        &self,
        path: &str,
        value: &[u8],
        rule: CanaryRule,
        options: PublishOptions,
    ) -> Result<Canary> {
        let parsed = self.check_release(path, value, &options)?;
        rule.check()?;
        let layout = self.layout(path);
        let client = self.config_client().await?;
        let attempts = self.shared.config.reconcile_attempts;
        for _ in 0..attempts {
            let found = self.read_found(&client, &layout, path).await?;
            let existing =
                match self.shared.call("get_data", &layout.canary, client.get_data(&layout.canary)).await {
                    Ok((_, stat)) => Some(stat),
                    Err(e) if e.is_no_node() => None,
                    Err(e) => return Err(e),
                };
            let (Some(live), Some(history)) = (&found.live, &found.history) else {
                return Err(Error::NoRelease { path: path.into() });
            };
            if history.is_empty() {
                return Err(Error::NoRelease { path: path.into() });
            }
            if let Some(expected) = options.if_version.filter(|v| *v != live.version) {
                return Err(Error::VersionConflict {
                    path: path.into(),
                    expected,
                    current: Some(live.version),
                });
            }
            let (bytes, _) = self.shared.call("get_data", path, client.get_data(path)).await?;
            if bytes == value {
                return Err(Error::InvalidArgument("the canary's value is the live value"));
            }
            if let Some((schema, stat)) = &found.schema {
                self.check_schema(path, schema, stat.mzxid, &parsed)?;
            }
            let header = Header {
                format: CANARY_FORMAT.into(),
                v: 1,
                path: path.into(),
                base_version: live.version,
                rule: rule.clone(),
                sha256: sha256_hex(value),
                size: value.len(),
                author: self.shared.config.author_or_default(),
                host: host_name().into(),
                time: now(),
                message: options.message.clone(),
            };
            let mut node = serde_json::to_vec(&header)
                .map_err(|e| Error::Data { path: path.into(), reason: e.to_string() })?;
            node.push(b'\n');
            node.extend_from_slice(value);

            let mut txn = Txn::new(&client, self.acl_size());
            txn.check(Step::Live, path, live.version)?;
            if let Some((_, stat)) = &found.schema {
                txn.check(Step::Schema, &layout.schema, stat.version)?;
            }
            match existing {
                Some(stat) => txn.set(Step::Canary, &layout.canary, &node, stat.version)?,
                None => {
                    let persistent = self.shared.create_options(CreateMode::Persistent);
                    txn.create(Step::Canary, &layout.canary, &node, &persistent)?;
                }
            }
            txn.fits(path, self.shared.config.max_request_size)?;
            match self.commit(txn, "canary", path, options.if_version).await {
                Ok((results, _)) => {
                    let revision = results
                        .iter()
                        .find_map(|r| match r {
                            MultiWriteResult::SetData { stat } => Some(stat.version),
                            _ => None,
                        })
                        .unwrap_or(0);
                    return match Canary::parse(path, &node, revision) {
                        Ok(Some(canary)) => Ok(canary),
                        Ok(None) => Err(Error::Data { path: path.into(), reason: "an empty canary".into() }),
                        Err(reason) => Err(Error::Data { path: path.into(), reason }),
                    };
                }
                // The live node, the schema or the canary changed since
                // read: read again.
                Err(Failed::Retry) => continue,
                Err(Failed::Fail(e)) => return Err(e),
            }
        }
        Err(Error::Contention { path: path.into(), during: "while its canary was being started", attempts })
    }

    /// The canary of `path`, if there is one.
    ///
    /// # Errors
    /// [`Error::Data`] for a canary node that cannot be read (changed
    /// outside ndsr); [`Error::InvalidPath`]; [`Error::NoConnection`].
    pub async fn canary(&self, path: &str) -> Result<Option<Canary>> {
        self.check_config_path(path)?;
        let layout = self.layout(path);
        let client = self.config_client().await?;
        match self.shared.call("get_data", &layout.canary, client.get_data(&layout.canary)).await {
            Ok((bytes, stat)) => Canary::parse(path, &bytes, stat.version)
                .map_err(|reason| Error::Data { path: layout.canary.clone(), reason }),
            Err(e) if e.is_no_node() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes the canary of `path` its next release, in one transaction: the
    /// live node takes the canary's value (conditional on the live version
    /// the canary was started over), the history records it (`promote`),
    /// and the canary is removed (conditional on its revision: the node is
    /// emptied, never deleted, so a canary aborted and started again
    /// meanwhile has another revision and is not promoted in its place).
    /// Every client then applies it. An empty message records the
    /// canary's own.
    ///
    /// # Errors
    /// [`Error::NoCanary`]; [`Error::VersionConflict`] (both versions
    /// named) when the live value changed since the canary began: start
    /// the canary again over the new value; [`Error::Contention`] when the
    /// canary changed or was aborted while being promoted; otherwise as
    /// [`publish`](Self::publish). Nothing is written on error.
    pub async fn promote_canary(&self, path: &str, options: PublishOptions) -> Result<Release> {
        let canary = self.canary(path).await?.ok_or_else(|| Error::NoCanary { path: path.into() })?;
        let message = if options.message.is_empty() {
            format!("promote canary ({}): {}", canary.rule, canary.message)
        } else {
            options.message
        };
        let mut cut = message.len().min(super::MAX_MESSAGE);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        let options = PublishOptions::message(&message[..cut]).if_version(canary.base_version);
        let parsed = parse_json(path, &canary.value)?;
        let canary_node = (self.layout(path).canary, canary.revision);
        self.release_with(path, &canary.value, Some(parsed), Operation::Promote, &options, Some(canary_node))
            .await
    }

    /// Removes the canary of `path`: its clients go back to the live
    /// value. Returns whether there was one. The canary node is emptied at
    /// the revision read, not deleted, so that its revisions only grow.
    ///
    /// # Errors
    /// [`Error::InvalidPath`], [`Error::ReadOnly`], [`Error::NoConnection`],
    /// [`Error::NotAuthorized`]; [`Error::Contention`] when the canary kept
    /// changing through every attempt.
    pub async fn abort_canary(&self, path: &str) -> Result<bool> {
        self.check_writable("abort_canary")?;
        self.check_config_path(path)?;
        let layout = self.layout(path);
        let client = self.config_client().await?;
        let attempts = self.shared.config.reconcile_attempts;
        for _ in 0..attempts {
            let stat =
                match self.shared.call("get_data", &layout.canary, client.get_data(&layout.canary)).await {
                    Ok((bytes, _)) if bytes.is_empty() => return Ok(false),
                    Ok((_, stat)) => stat,
                    Err(e) if e.is_no_node() => return Ok(false),
                    Err(e) => return Err(e),
                };
            let emptied = client.set_data(&layout.canary, b"", Some(stat.version));
            match self.shared.call("set_data", &layout.canary, emptied).await {
                Ok(_) => return Ok(true),
                // Changed (or removed) since read: read again.
                Err(Error::ZooKeeper {
                    source: zookeeper_client::Error::BadVersion | zookeeper_client::Error::NoNode,
                    ..
                }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Contention { path: path.into(), during: "while its canary was being aborted", attempts })
    }

    /// The canary of `path`, the live version, and what each ndsr client
    /// following the path reports it runs: how many run the stable value,
    /// how many the canary, and who refused it.
    ///
    /// # Errors
    /// As [`canary`](Self::canary).
    pub async fn canary_status(&self, path: &str) -> Result<CanaryStatus> {
        let canary = self.canary(path).await?;
        let layout = self.layout(path);
        let client = self.config_client().await?;
        let s = &self.shared;
        let (live, names) = tokio::join!(
            s.call("exists", path, client.check_stat(path)),
            s.call("get_children", &layout.clients, client.list_children(&layout.clients)),
        );
        let mut names = match names {
            Ok(names) => names,
            Err(e) if e.is_no_node() => Vec::new(),
            Err(e) => return Err(e),
        };
        names.sort();
        let reads = names.iter().map(|name| {
            let node = format!("{}/{name}", layout.clients);
            let client = client.clone();
            async move { s.call("get_data", &node, client.get_data(&node)).await }
        });
        let mut clients = Vec::new();
        for read in futures::future::join_all(reads).await {
            match read {
                Ok((bytes, _)) => clients.extend(ClientReport::parse_bytes(&bytes)),
                // A client that went meanwhile.
                Err(e) if e.is_no_node() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(CanaryStatus { path: path.into(), canary, stable_version: live?.map(|s| s.version), clients })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentage_is_sticky_and_grows_by_adding_clients() {
        let ids: Vec<String> = (0..400).map(|i| format!("host-{i}")).collect();
        let labels = BTreeMap::new();
        let picked = |share: f64| -> Vec<&String> {
            ids.iter().filter(|id| CanaryRule::Percent(share).matches("/c", id, &labels)).collect()
        };
        let ten = picked(10.0);
        let fifty = picked(50.0);
        assert!((20..=60).contains(&ten.len()), "{} of 400 at 10%", ten.len());
        assert!((160..=240).contains(&fifty.len()), "{} of 400 at 50%", fifty.len());
        assert!(ten.iter().all(|id| fifty.contains(id)), "raising the share drops no client");
        assert_eq!(picked(10.0), ten, "the same clients every time");
        assert!(picked(0.0).is_empty());
        assert_eq!(picked(100.0).len(), 400);
        // Another path picks other clients.
        let other: Vec<&String> =
            ids.iter().filter(|id| CanaryRule::Percent(10.0).matches("/d", id, &labels)).collect();
        assert_ne!(other, ten);
    }

    #[test]
    fn rules_match_hosts_and_every_label() {
        let labels: BTreeMap<String, String> =
            [("zone".to_string(), "a".to_string()), ("rack".to_string(), "2".to_string())].into();
        let by_zone = CanaryRule::Labels([("zone".to_string(), "a".to_string())].into());
        assert!(by_zone.matches("/c", "h", &labels));
        let both = CanaryRule::Labels([("zone".into(), "a".into()), ("rack".into(), "3".into())].into());
        assert!(!both.matches("/c", "h", &labels));
        assert!(CanaryRule::Hosts(vec!["h".into()]).matches("/c", "h", &labels));
        assert!(!CanaryRule::Hosts(vec!["g".into()]).matches("/c", "h", &labels));
        assert!(CanaryRule::Percent(100.5).check().is_err());
        assert!(CanaryRule::Percent(-1.0).check().is_err());
        assert!(CanaryRule::Percent(f64::NAN).check().is_err());
        assert!(CanaryRule::Hosts(vec![]).check().is_err());
        assert!(CanaryRule::Labels(BTreeMap::new()).check().is_err());
        assert_eq!(serde_json::to_string(&CanaryRule::Percent(10.0)).unwrap(), r#"{"percent":10.0}"#);
    }

    #[test]
    fn a_canary_node_is_read_back_and_a_changed_value_refused() {
        let header = Header {
            format: CANARY_FORMAT.into(),
            v: 1,
            path: "/c".into(),
            base_version: 3,
            rule: CanaryRule::Hosts(vec!["a".into()]),
            sha256: sha256_hex(b"{}"),
            size: 2,
            author: "me".into(),
            host: "h".into(),
            time: now(),
            message: "try".into(),
        };
        let mut bytes = serde_json::to_vec(&header).unwrap();
        bytes.extend_from_slice(b"\n{}");
        let canary = Canary::parse("/c", &bytes, 2).unwrap().unwrap();
        assert_eq!(Canary::parse("/c", b"", 3), Ok(None), "an empty node is no canary");
        assert_eq!((canary.base_version, canary.revision, canary.value.as_slice()), (3, 2, &b"{}"[..]));
        assert!(Canary::parse("/d", &bytes, 2).is_err());
        bytes.push(b' ');
        assert!(Canary::parse("/c", &bytes, 2).unwrap_err().contains("SHA-256"));
    }
}
