//! `ndsr get --instances`, `ndsr pick` and `ndsr register --as`: services
//! in any registry format.

use std::collections::BTreeMap;
use std::process::ExitCode;

use ndsr::discovery::{
    CuratorInstance, CuratorPayload, Endpoint, Instance, Instances, NerveInstance, Selector, ServerSetMember,
    Strategy, UriSpec,
};
use ndsr::Registry;
use serde::Serialize;

use crate::args::{AnnounceFormat, GetArgs, GetFormat, Global, PickArgs, PickStrategy, RegisterArgs};
use crate::cmd::{check_path, connect};
use crate::error::{CliError, CliResult, Exit};
use crate::output;

/// A service listing, for JSON and YAML.
#[derive(Serialize)]
pub struct ListingView {
    path: String,
    format: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stale: bool,
    instances: Vec<InstanceView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bad: Vec<BadView>,
}

/// One instance, for JSON and YAML.
#[derive(Serialize)]
pub struct InstanceView {
    key: String,
    id: String,
    address: String,
    serving: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssl_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shard: Option<i64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    endpoints: BTreeMap<String, String>,
}

/// A child that is not an instance.
#[derive(Serialize)]
pub struct BadView {
    key: String,
    reason: String,
}

/// A listing as `get --instances` and the agent show it.
pub fn listing_view(listing: &Instances) -> ListingView {
    ListingView {
        path: listing.path.clone(),
        format: listing.format.map(|f| f.to_string()),
        stale: listing.stale,
        instances: listing.instances.iter().map(|i| instance_view(i)).collect(),
        bad: listing.bad.iter().map(|b| BadView { key: b.key.clone(), reason: b.reason.clone() }).collect(),
    }
}

/// An instance as `get --instances` and the agent show it.
pub fn instance_view(i: &Instance) -> InstanceView {
    InstanceView {
        key: i.key.clone(),
        id: i.id.clone(),
        address: i.address(),
        serving: i.serving,
        ssl_port: i.ssl_port,
        weight: i.weight,
        shard: i.shard,
        labels: i.labels.clone(),
        endpoints: i.endpoints.iter().map(|(k, e)| (k.clone(), format!("{}:{}", e.host, e.port))).collect(),
    }
}

/// `ndsr get --instances`.
pub async fn instances(global: &Global, args: &GetArgs) -> CliResult<ExitCode> {
    let registry = connect(global, false).await?;
    let listed = registry.instances(&args.path, args.as_format.map(Into::into)).await;
    let exists = registry.get(&args.path).await.map(|s| s.exists());
    registry.close().await;
    let listing = listed?;
    let view = listing_view(&listing);
    let text = match args.format {
        GetFormat::Json => output::json_pretty(&view),
        GetFormat::Yaml => output::yaml(&view),
        GetFormat::Dir => view.instances.iter().map(|i| i.address.clone()).collect::<Vec<_>>().join("\n"),
    };
    if !text.is_empty() {
        output::line(&text)?;
    }
    for bad in &listing.bad {
        if !global.quiet {
            eprintln!("ndsr: {}/{} is not an instance: {}", args.path, bad.key, bad.reason);
        }
    }
    if !exists.unwrap_or(false) && !args.allow_missing {
        return Err(CliError::new(
            Exit::NoNode,
            format!("no node at {} (--allow-missing to exit 0)", args.path),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn key_value(text: &str, what: &str) -> CliResult<(String, String)> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(CliError::new(Exit::InvalidInput, format!("{what} `{text}` is not KEY=VALUE"))),
    }
}

/// `ndsr pick`.
pub async fn pick(global: &Global, args: PickArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    let strategy = match args.strategy {
        PickStrategy::Random => Strategy::Random,
        PickStrategy::RoundRobin => Strategy::RoundRobin,
        PickStrategy::Weighted => Strategy::Weighted,
    };
    let mut selector = Selector::new(strategy);
    if args.include_draining {
        selector = selector.include_draining();
    }
    for label in &args.labels {
        selector = match label.split_once("!=") {
            Some((k, v)) if !k.is_empty() => selector.label(k, v, false),
            _ => {
                let (k, v) = key_value(label, "--label")?;
                selector.label(&k, &v, true)
            }
        };
    }
    if let Some(prefer) = &args.prefer {
        let (k, v) = key_value(prefer, "--prefer")?;
        selector = selector.prefer_zone(&k, &v);
    }
    let registry = connect(global, false).await?;
    let listed = registry.instances(&args.path, args.as_format.map(Into::into)).await;
    registry.close().await;
    let listing = listed?;
    let picked = selector
        .pick(&listing.instances)
        .map_err(|none| CliError::new(Exit::NoInstance, format!("{}: {none}", args.path)))?;
    let address = match &args.endpoint {
        None => picked.address(),
        Some(name) => match picked.endpoints.get(name) {
            Some(Endpoint { host, port }) => format!("{host}:{port}"),
            None => {
                return Err(CliError::new(
                    Exit::NoInstance,
                    format!("{}: the picked instance {} has no endpoint `{name}`", args.path, picked.key),
                ))
            }
        },
    };
    output::line(&address)?;
    Ok(ExitCode::SUCCESS)
}

/// What `register --as` holds.
pub enum Announcement {
    Curator { base: String, instance: CuratorInstance },
    ServerSet { dir: String, member: ServerSetMember },
    Nerve { dir: String, instance: NerveInstance, path_encoding: bool },
}

/// An instance to announce, as `register --as` and the agent's API give it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InstanceFields {
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
    /// ServerSet additional endpoints.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, (String, u16)>,
    /// nerve: the node name carries the instance, base64-encoded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_encoding: bool,
}

/// Parses `HOST:PORT` of an endpoint.
pub fn endpoint(text: &str) -> Option<(String, u16)> {
    text.rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
        .filter(|(h, _)| !h.is_empty())
}

impl Announcement {
    /// The announcement `register --as` describes.
    pub fn from_args(args: &RegisterArgs, format: AnnounceFormat) -> CliResult<Announcement> {
        let invalid = |why: String| {
            CliError::new(Exit::InvalidInput, format!("register --as {}: {why}", format_name(format)))
        };
        let mut endpoints = BTreeMap::new();
        for text in &args.endpoints {
            let (name, address) = key_value(text, "--endpoint")?;
            let parsed = endpoint(&address).ok_or_else(|| {
                CliError::new(Exit::InvalidInput, format!("--endpoint `{text}` is not NAME=HOST:PORT"))
            })?;
            endpoints.insert(name, parsed);
        }
        let fields = InstanceFields {
            host: args.host.clone().ok_or_else(|| invalid("--host is required".into()))?,
            port: args.port.ok_or_else(|| invalid("--port is required".into()))?,
            name: args.name.clone(),
            id: args.id.clone(),
            ssl_port: args.ssl_port,
            uri_spec: args.uri_spec.clone(),
            shard: args.shard,
            weight: args.weight,
            labels: args.labels.iter().map(|l| key_value(l, "--label")).collect::<CliResult<_>>()?,
            endpoints,
            path_encoding: args.path_encoding,
        };
        let missing = |what: &str| invalid(format!("{what} is required"));
        match format {
            AnnounceFormat::Curator if fields.name.is_none() => return Err(missing("--name (the service)")),
            AnnounceFormat::Nerve if fields.name.is_none() => {
                return Err(missing("--name (the instance id)"))
            }
            _ => {}
        }
        Ok(Announcement::new(format, &args.path, fields))
    }

    /// The announcement of `fields` in `format` under `path` (Curator's
    /// base path; the ServerSet's or nerve's service directory). Curator
    /// and nerve need `fields.name`.
    pub fn new(format: AnnounceFormat, path: &str, fields: InstanceFields) -> Announcement {
        let name = fields.name.clone().unwrap_or_default();
        match format {
            AnnounceFormat::Curator => {
                let id = fields.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                let mut instance = CuratorInstance::new(&name, &id, &fields.host, fields.port);
                instance.ssl_port = fields.ssl_port;
                instance.uri_spec = fields.uri_spec.as_deref().map(UriSpec::parse);
                if !fields.labels.is_empty() {
                    let payload =
                        fields.labels.into_iter().map(|(k, v)| (k, serde_json::Value::from(v))).collect();
                    instance.payload = CuratorPayload::Json(serde_json::Value::Object(payload));
                }
                Announcement::Curator { base: path.to_string(), instance }
            }
            AnnounceFormat::Serverset => {
                let mut member = ServerSetMember::new(&fields.host, fields.port);
                member.shard = fields.shard;
                member.metadata = fields.labels;
                for (name, (host, port)) in fields.endpoints {
                    member.additional_endpoints.insert(name, Endpoint { host, port });
                }
                Announcement::ServerSet { dir: path.to_string(), member }
            }
            AnnounceFormat::Nerve => {
                let mut instance = NerveInstance::new(&name, &fields.host, fields.port);
                instance.weight = fields.weight;
                instance.labels = fields.labels;
                Announcement::Nerve { dir: path.to_string(), instance, path_encoding: fields.path_encoding }
            }
        }
    }

    /// Registers it; returns the node's path.
    pub async fn register(&self, registry: &Registry) -> ndsr::Result<String> {
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

fn format_name(format: AnnounceFormat) -> &'static str {
    match format {
        AnnounceFormat::Curator => "curator",
        AnnounceFormat::Serverset => "serverset",
        AnnounceFormat::Nerve => "nerve",
    }
}
