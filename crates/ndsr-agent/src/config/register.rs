//! `[[register]]` and the API's registration body: the fields, and how
//! they become an announcement and a health check.

use super::*;

/// A registration as the file's `[[register]]` and the API's body give
/// it: a node of ndsr's own format (`data`), or an instance in another
/// format (`as` with `host`, `port`, ...), with an optional health check.
/// (No `flatten`: serde cannot refuse unknown fields through it.)
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegisterFields {
    /// The node's path: the file's key (the API's is in the URL).
    pub path: Option<String>,
    /// The node's data (nd format): an object, a string or null.
    pub data: Option<serde_json::Value>,
    /// `curator`, `serverset` or `nerve`: an instance in that format.
    #[serde(rename = "as")]
    pub format: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub ssl_port: Option<u16>,
    pub uri_spec: Option<String>,
    pub shard: Option<i32>,
    pub weight: Option<u32>,
    pub labels: Option<BTreeMap<String, String>>,
    /// ServerSet additional endpoints: name to `HOST:PORT`.
    pub endpoints: Option<BTreeMap<String, String>>,
    pub path_encoding: Option<bool>,
    pub check_tcp: Option<String>,
    pub check_http: Option<String>,
    pub check_cmd: Option<String>,
    #[serde(default, with = "crate::durations::optional")]
    pub interval: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
}

/// What a registration holds.
#[derive(Clone, Debug, PartialEq)]
pub enum What {
    /// An nd node with this data.
    Node(serde_json::Value),
    /// An instance (`spec`, as given and shown) and its announcement: for
    /// Curator the path is `<base>/<name>/<id>`; for ServerSet and nerve
    /// the path is `<dir>/<handle>` and the node is a sequential node in
    /// `<dir>` (nerve's instance name is the handle).
    Instance {
        /// The instance's fields.
        spec: InstanceSpec,
        /// What is registered.
        announcement: Box<Announcement>,
    },
}

impl What {
    /// Whether its node gets a new name each time it is made.
    pub fn sequential(&self) -> bool {
        matches!(self, What::Instance { announcement, .. } if announcement.sequential())
    }

    /// The JSON the API and dashboard show for it.
    pub fn json(&self) -> serde_json::Value {
        match self {
            What::Node(data) => data.clone(),
            What::Instance { spec, announcement } => {
                let mut value = serde_json::to_value(spec).unwrap_or_default();
                value["as"] = serde_json::json!(announcement.format().name());
                value
            }
        }
    }

    /// What the hold loop registers at `path` (an instance's path was
    /// given when it was checked).
    pub fn target(&self, path: &str) -> Target {
        match self {
            What::Node(data) => Target::Node { path: path.to_string(), data: ndsr::Data::from(data.clone()) },
            What::Instance { announcement, .. } => Target::Announce((**announcement).clone()),
        }
    }
}

/// The parent of `path`, `/` for `/` itself.
fn parent_or_root(path: &str) -> &str {
    parent(path).unwrap_or("/")
}

impl RegisterFields {
    /// What it registers at `path`, checked; `allows` says whether a path
    /// is within the roots (a sequential node's directory must be).
    pub fn what(&self, path: &str, allows: impl Fn(&str) -> bool) -> Result<What, String> {
        let Some(format) = &self.format else {
            let extra = [
                ("host", self.host.is_some()),
                ("port", self.port.is_some()),
                ("ssl_port", self.ssl_port.is_some()),
                ("uri_spec", self.uri_spec.is_some()),
                ("shard", self.shard.is_some()),
                ("weight", self.weight.is_some()),
                ("labels", self.labels.is_some()),
                ("endpoints", self.endpoints.is_some()),
                ("path_encoding", self.path_encoding.is_some()),
            ];
            if let Some((name, _)) = extra.iter().find(|(_, given)| *given) {
                return Err(format!("{name} is for instances: give \"as\" (curator, serverset or nerve)"));
            }
            let data = self.data.clone().unwrap_or(serde_json::Value::Null);
            check_data(&data)?;
            return Ok(What::Node(data));
        };
        let format = match format.as_str() {
            "curator" => Format::Curator,
            "serverset" => Format::ServerSet,
            "nerve" => Format::Nerve,
            "nd" => return Err("as = \"nd\" is the default: leave \"as\" out and give data".into()),
            other => return Err(format!("as = {other:?}: curator, serverset or nerve")),
        };
        if self.data.is_some() {
            return Err("data is for nd nodes; an instance takes labels".into());
        }
        let (Some(host), Some(port)) = (&self.host, self.port) else {
            return Err("an instance needs host and port".into());
        };
        if host.is_empty() || port == 0 {
            return Err("host must not be empty and port must be 1 to 65535".into());
        }
        let parent = parent_or_root(path);
        let last = ndsr::path::name(path).to_string();
        let mut endpoints = BTreeMap::new();
        for (name, address) in self.endpoints.iter().flatten() {
            let parsed = InstanceSpec::parse_endpoint(address)
                .ok_or_else(|| format!("endpoints.{name} = {address:?} is not HOST:PORT"))?;
            endpoints.insert(name.clone(), parsed);
        }
        let (name, id) = match format {
            Format::Curator => {
                let service = ndsr::path::name(parent).to_string();
                if parent_or_root(parent) == "/" || service.is_empty() {
                    return Err(format!(
                        "a Curator instance's path is <base>/<service>/<id>: {path} is too short"
                    ));
                }
                (Some(service), Some(last))
            }
            _ => {
                if parent == "/" || !allows(parent) {
                    return Err(format!(
                        "a {format} member's path is <directory>/<name>, and the directory {parent} must be within the roots"
                    ));
                }
                let name = (format == Format::Nerve).then_some(last);
                (name, None)
            }
        };
        let spec = InstanceSpec {
            host: host.clone(),
            port,
            name,
            id,
            ssl_port: self.ssl_port,
            uri_spec: self.uri_spec.clone(),
            shard: self.shard,
            weight: self.weight,
            labels: self.labels.clone().unwrap_or_default(),
            endpoints,
            path_encoding: self.path_encoding.unwrap_or(false),
        };
        let base = match format {
            Format::Curator => parent_or_root(parent),
            _ => parent,
        };
        let announcement = Announcement::new(format, base, spec.clone()).map_err(|e| e.to_string())?;
        Ok(What::Instance { spec, announcement: Box::new(announcement) })
    }
}

impl RegisterFields {
    /// The check, validated.
    pub fn checked(&self) -> Result<Option<Checked>, String> {
        let check = match (&self.check_tcp, &self.check_http, &self.check_cmd) {
            (None, None, None) => {
                if self.interval.is_some() || self.rise.is_some() || self.fall.is_some() {
                    return Err(
                        "interval, rise and fall need a check (check_tcp, check_http or check_cmd)".into()
                    );
                }
                return Ok(None);
            }
            (Some(tcp), None, None) => Check::tcp(tcp)?,
            (None, Some(url), None) => Check::http(url)?,
            (None, None, Some(cmd)) if !cmd.trim().is_empty() => Check::Cmd(cmd.clone()),
            (None, None, Some(_)) => return Err("check_cmd is empty".into()),
            _ => return Err("give one check: check_tcp, check_http or check_cmd".into()),
        };
        let interval = self.interval.unwrap_or(Duration::from_secs(2));
        check_interval("interval", interval)?;
        let (rise, fall) = (self.rise.unwrap_or(1), self.fall.unwrap_or(1));
        if rise == 0 || fall == 0 || rise > 100 || fall > 100 {
            return Err("rise and fall are counts from 1 to 100".into());
        }
        Ok(Some(Checked { check, interval, rise, fall }))
    }
}
