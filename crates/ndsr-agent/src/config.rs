//! The agent's configuration file (TOML): what it serves, renders and
//! registers. `docs/agent.example.toml` shows every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use std::collections::BTreeMap;

use ndsr::discovery::{Announcement, Format, InstanceSpec};
use ndsr::path::parent;

use crate::check::{check_interval, Check};
use crate::hold::{Checked, Target};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub zookeeper: ZooKeeper,
    #[serde(default)]
    pub http: Http,
    /// Paths the API may serve (with everything under them); nothing else.
    pub roots: Vec<String>,
    #[serde(default, rename = "service")]
    pub services: Vec<Service>,
    #[serde(default, rename = "template")]
    pub templates: Vec<TemplateFile>,
    #[serde(default, rename = "register")]
    pub registrations: Vec<RegisterFields>,
    #[serde(default)]
    pub config: ConfigReleases,
    #[serde(default, rename = "mirror")]
    pub mirrors: Vec<MirrorFields>,
    /// `[exec]`: a child process the agent supervises.
    pub exec: Option<crate::exec::Exec>,
    pub dns: Option<DnsFields>,
    /// On SIGTERM, the registrations are marked not serving, kept this
    /// long, then removed (a second signal cuts it short).
    #[serde(default, with = "crate::durations::optional")]
    pub drain: Option<Duration>,
}

/// `[config]`: configuration releases (issue 24).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigReleases {
    /// Configuration paths whose values written outside ndsr the agent
    /// records as `external` releases: an exact path, or a prefix ending
    /// in `/` (its direct children).
    #[serde(default)]
    pub record_external: Vec<String>,
    /// Who this agent is to configuration canaries (default: the host
    /// name); read at start.
    #[serde(default)]
    pub identity: Option<String>,
    /// This agent's labels, matched by a canary by labels; read at start.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// `[zookeeper]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZooKeeper {
    /// HOST:PORT,...[/chroot]; `--server` wins over it.
    pub servers: Option<String>,
    #[serde(default, with = "crate::durations::optional")]
    pub session_timeout: Option<Duration>,
}

/// `[http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The bearer token that writes need (and reads, with `read_token`).
    pub token: Option<Token>,
    /// A file holding the token (its first line), instead of `token`.
    pub token_file: Option<PathBuf>,
    /// Reads need the token too.
    #[serde(default)]
    pub read_token: bool,
    /// Refuse every write with 403.
    #[serde(default)]
    pub readonly: bool,
    /// The API may register `check_cmd` checks (they run as the agent's
    /// user); the file's `[[register]]` always may.
    #[serde(default)]
    pub allow_cmd_checks: bool,
    /// The API may register TCP and HTTP checks of other hosts (not only
    /// `localhost` and loopback addresses).
    #[serde(default)]
    pub allow_remote_checks: bool,
    /// The largest request body, in bytes (larger: 413).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// The longest a blocking query waits (`?wait=`).
    #[serde(default = "default_max_wait", with = "crate::durations::required")]
    pub max_wait: Duration,
    /// The most paths the API keeps watched (more: 429).
    #[serde(default = "default_max_paths")]
    pub max_paths: usize,
    /// How long a path followed only because a reader asked stays
    /// followed once no request or stream uses it.
    #[serde(default = "default_path_idle", with = "crate::durations::required")]
    pub path_idle: Duration,
    /// How long a connection may take to send a request's headers.
    #[serde(default = "default_header_timeout", with = "crate::durations::required")]
    pub header_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    #[serde(default = "default_idle_timeout", with = "crate::durations::required")]
    pub idle_timeout: Duration,
    /// The most connections served at once; more wait to be accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// The most event streams and blocking queries in progress at once
    /// (more: 503 `too_many_streams`); at most half of `max_connections`,
    /// so that readers who need no token never hold every connection.
    /// Default: 256, or half of `max_connections` if less.
    pub max_streams: Option<usize>,
}

impl Default for Http {
    fn default() -> Http {
        Http {
            listen: default_listen(),
            token: None,
            token_file: None,
            read_token: false,
            readonly: false,
            allow_cmd_checks: false,
            allow_remote_checks: false,
            max_body_bytes: default_max_body(),
            max_wait: default_max_wait(),
            max_paths: default_max_paths(),
            path_idle: default_path_idle(),
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            max_streams: None,
        }
    }
}

impl Http {
    /// How many event streams and blocking queries may be in progress at
    /// once: `max_streams` (default 256), never more than half of
    /// `max_connections` (the one in force: a reload that changes only
    /// `max_streams` keeps the restart-only `max_connections`).
    pub fn stream_limit(&self) -> usize {
        self.max_streams.unwrap_or(DEFAULT_MAX_STREAMS).min(self.max_connections / 2)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8500))
}
fn default_max_body() -> usize {
    256 * 1024
}
fn default_max_wait() -> Duration {
    Duration::from_secs(600)
}
fn default_max_paths() -> usize {
    10_000
}
fn default_path_idle() -> Duration {
    Duration::from_secs(300)
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_connections() -> usize {
    1024
}
/// The most `max_connections` can be.
const MAX_CONNECTIONS: usize = 1_000_000;
/// `max_streams` when not given (or half of `max_connections`, if less).
const DEFAULT_MAX_STREAMS: usize = 256;

/// A secret token: its `Debug` never shows it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// `[[service]]`: a service directory the dashboard shows and templates see.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub path: String,
    /// curator, serverset, nerve or nd (default: detected).
    pub format: Option<String>,
    /// The name templates use (default: the path's last part).
    pub name: Option<String>,
}

impl Service {
    /// Its format (checked when the file was loaded), `None` to detect.
    pub fn format(&self) -> Option<ndsr::discovery::Format> {
        self.format.as_deref().and_then(|f| parse_format(f).ok())
    }

    /// The name templates and the dashboard use.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| ndsr::path::name(&self.path).to_string())
    }
}

/// `[[template]]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    /// The template (minijinja), relative to the config file.
    pub source: PathBuf,
    /// The file written, relative to the config file.
    pub destination: PathBuf,
    /// Run with `sh -c` after the file changed.
    pub command: Option<String>,
    /// At most one command per this interval (default 1s).
    #[serde(default, with = "crate::durations::optional")]
    pub min_interval: Option<Duration>,
    /// The command's time limit (default 60s).
    #[serde(default, with = "crate::durations::optional")]
    pub command_timeout: Option<Duration>,
    /// How long the template may wait for a service's first list before
    /// it counts as failing (default 30s).
    #[serde(default, with = "crate::durations::optional")]
    pub wait_limit: Option<Duration>,
    /// `"MIN:MAX"` or `"MIN"`: write a changed file once its output has
    /// been quiet for MIN, at the latest MAX after it changed.
    #[serde(default)]
    pub wait: Option<crate::templates::Wait>,
    /// The file's mode (`"0640"`); default: the old file's, or 0644.
    #[serde(default)]
    pub perms: Option<crate::templates::Perms>,
    /// Keep the replaced file as `NAME.bak`.
    #[serde(default)]
    pub backup: bool,
    /// Make the destination's missing directories (default true).
    #[serde(default)]
    pub create_dest_dirs: Option<bool>,
}

mod dns;
mod mirror;
mod register;

pub use dns::*;
pub use mirror::*;
pub use register::*;

/// The configuration in force: the file, checked, with paths resolved.
#[derive(Debug)]
pub struct Config {
    pub file_path: PathBuf,
    pub servers: Option<String>,
    pub session_timeout: Option<Duration>,
    pub http: Http,
    /// The token, read from `token` or `token_file`.
    pub token: Option<Token>,
    pub roots: Vec<String>,
    pub services: Vec<Service>,
    pub templates: Vec<TemplateFile>,
    pub registrations: Vec<Registration>,
    /// `[config]`, checked.
    pub config: ConfigReleases,
    /// `[[mirror]]`, checked.
    pub mirrors: Vec<MirrorSpec>,
    /// `[exec]` (changes on restart).
    pub exec: Option<crate::exec::Exec>,
    /// `[dns]`, checked (`None`: no DNS).
    pub dns: Option<Dns>,
    /// `drain`: how long the registrations are kept not serving on SIGTERM.
    pub drain: Option<Duration>,
}

/// A followed path of `[config] record_external`: a node, or the direct
/// children of a node (given as a prefix ending in `/`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Recorded {
    /// This node.
    Node(String),
    /// Each direct child of this node.
    Children(String),
}

impl Recorded {
    /// An entry of `record_external`, checked against the roots.
    fn parse(entry: &str, within: impl Fn(&str) -> bool) -> Result<Recorded, String> {
        let what = format!("[config] record_external {entry:?}");
        let (path, children) = match entry.strip_suffix('/') {
            Some(parent) if !parent.is_empty() => (parent, true),
            _ => (entry, false),
        };
        ndsr::validate_path(path).map_err(|e| format!("{what}: {e}"))?;
        if path == "/" {
            return Err(format!("{what}: name a configuration node or a prefix under the roots"));
        }
        if !within(path) {
            return Err(format!("{what} is outside the roots"));
        }
        Ok(if children { Recorded::Children(path.into()) } else { Recorded::Node(path.into()) })
    }
}

/// A registration from the file, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    pub path: String,
    pub what: What,
    pub checked: Option<Checked>,
}

impl Config {
    /// Reads and checks the file at `path`; the error says what is wrong and where.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let config = Config::check(path, &base, file).map_err(|e| format!("{}: {e}", path.display()))?;
        if config.http.allow_cmd_checks {
            tracing::warn!(
                "{}: [http] allow_cmd_checks = true: anyone with the token can run shell commands \
                 as this agent's user (check_cmd through PUT /v1/registrations)",
                path.display()
            );
        }
        Ok(config)
    }

    fn check(path: &Path, base: &Path, file: File) -> Result<Config, String> {
        if file.roots.is_empty() {
            return Err(
                "roots is empty: name the paths the agent may serve, e.g. roots = [\"/services\"]".into()
            );
        }
        for root in &file.roots {
            ndsr::validate_path(root).map_err(|e| format!("roots: {e}"))?;
            if root == "/" {
                return Err("roots: \"/\" would serve all of ZooKeeper; name the subtrees to serve".into());
            }
        }
        let token = match (&file.http.token, &file.http.token_file) {
            (Some(_), Some(_)) => return Err("[http] has both token and token_file: give one".into()),
            (Some(token), None) => Some(token.clone()),
            (None, Some(file)) => {
                let file = base.join(file);
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("[http] token_file {}: {e}", file.display()))?;
                Some(Token(text.lines().next().unwrap_or_default().trim().to_string()))
            }
            (None, None) => None,
        };
        if token.as_ref().is_some_and(|t| t.0.len() < 16) {
            return Err("[http] token is shorter than 16 characters: use a long random one".into());
        }
        if file.http.read_token && token.is_none() {
            return Err("[http] read_token needs a token".into());
        }
        if file.http.max_body_bytes == 0 || file.http.max_paths == 0 {
            return Err("[http] max_body_bytes and max_paths must be at least 1".into());
        }
        if !(1..=MAX_CONNECTIONS).contains(&file.http.max_connections) {
            return Err(format!("[http] max_connections must be 1 to {MAX_CONNECTIONS}"));
        }
        if let Some(streams) = file.http.max_streams {
            let most = file.http.max_connections / 2;
            if !(1..=most).contains(&streams) {
                return Err(format!(
                    "[http] max_streams must be 1 to {most} (half of max_connections = {}): \
                     streams and blocking queries must leave connections for everything else",
                    file.http.max_connections
                ));
            }
        }
        for (key, value) in [
            ("path_idle", file.http.path_idle),
            ("header_timeout", file.http.header_timeout),
            ("idle_timeout", file.http.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(format!("[http] {key} must be more than 0s"));
            }
        }
        let within = |p: &str| file.roots.iter().any(|root| is_within(p, root));
        for service in &file.services {
            ndsr::validate_path(&service.path).map_err(|e| format!("[[service]] {e}"))?;
            if !within(&service.path) {
                return Err(format!("[[service]] {} is outside the roots", service.path));
            }
            if let Some(format) = &service.format {
                parse_format(format).map_err(|e| format!("[[service]] {}: {e}", service.path))?;
            }
        }
        let mut templates = file.templates;
        for template in &mut templates {
            template.source = base.join(&template.source);
            template.destination = base.join(&template.destination);
        }
        let mut registrations = Vec::new();
        for r in file.registrations {
            let Some(path) = r.path.clone() else {
                return Err("a [[register]] has no path".into());
            };
            let what = format!("[[register]] {path}");
            ndsr::validate_path(&path).map_err(|e| format!("{what}: {e}"))?;
            if !within(&path) {
                return Err(format!("{what} is outside the roots"));
            }
            let registration = r.what(&path, within).map_err(|e| format!("{what}: {e}"))?;
            let checked = r.checked().map_err(|e| format!("{what}: {e}"))?;
            if registrations.iter().any(|other: &Registration| other.path == path) {
                return Err(format!("{what} is given twice"));
            }
            registrations.push(Registration { path, what: registration, checked });
        }
        let mut recorded = Vec::new();
        for entry in &file.config.record_external {
            let parsed = Recorded::parse(entry, within)?;
            if recorded.contains(&parsed) {
                return Err(format!("[config] record_external {entry:?} is given twice"));
            }
            recorded.push(parsed);
        }
        let dns = check_dns(file.dns, within)?;
        Ok(Config {
            file_path: path.to_path_buf(),
            servers: file.zookeeper.servers,
            session_timeout: file.zookeeper.session_timeout,
            http: file.http,
            token,
            roots: file.roots,
            services: file.services,
            templates,
            registrations,
            config: file.config,
            mirrors: check_mirrors(file.mirrors)?,
            exec: file.exec,
            dns,
            drain: file.drain,
        })
    }

    /// `[config] record_external`, parsed (the file was checked).
    pub fn recorded(&self) -> Vec<Recorded> {
        let within = |p: &str| self.allows(p);
        self.config.record_external.iter().filter_map(|e| Recorded::parse(e, within).ok()).collect()
    }

    /// Is `path` one of the roots or under one?
    pub fn allows(&self, path: &str) -> bool {
        self.roots.iter().any(|root| is_within(path, root))
    }
}

/// Is `path` `root` or under it?
pub fn is_within(path: &str, root: &str) -> bool {
    path == root || path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'))
}

/// A format's name as the file and the API give it.
pub fn parse_format(name: &str) -> Result<ndsr::discovery::Format, String> {
    use ndsr::discovery::Format;
    match name {
        "curator" => Ok(Format::Curator),
        "serverset" => Ok(Format::ServerSet),
        "nerve" => Ok(Format::Nerve),
        "nd" => Ok(Format::Nd),
        other => Err(format!("unknown format {other:?}: curator, serverset, nerve or nd")),
    }
}

/// Registration data must be what the original accepts: an object, a
/// string or nothing.
pub fn check_data(data: &serde_json::Value) -> Result<(), String> {
    match data {
        serde_json::Value::Object(_) | serde_json::Value::String(_) | serde_json::Value::Null => Ok(()),
        _ => Err("data must be an object, a string or null".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        Config::check(Path::new("agent.toml"), Path::new("/etc/ndsr"), file)
    }

    #[test]
    fn a_full_file_loads() {
        let config = load(
            r#"
            roots = ["/services", "/config"]
            [zookeeper]
            servers = "127.0.0.1:2181"
            session_timeout = "10s"
            [http]
            listen = "127.0.0.1:9000"
            token = "0123456789abcdef0123"
            [[service]]
            path = "/services/web"
            format = "curator"
            [[template]]
            source = "web.j2"
            destination = "out/web.cfg"
            command = "true"
            min_interval = "2s"
            [[register]]
            path = "/services/web/10.0.0.1:80"
            data = { zone = "a" }
            check_tcp = "127.0.0.1:80"
            rise = 2
            [[register]]
            path = "/services/api/api-1"
            as = "curator"
            host = "10.0.0.1"
            port = 8080
            labels = { zone = "a" }
            "#,
        )
        .unwrap();
        assert_eq!(config.http.listen.port(), 9000);
        assert_eq!(config.templates[0].source, Path::new("/etc/ndsr/web.j2"));
        assert_eq!(config.registrations[0].what, What::Node(serde_json::json!({"zone": "a"})));
        assert_eq!(config.registrations[0].checked.as_ref().unwrap().rise, 2);
        let What::Instance { spec: fields, announcement } = &config.registrations[1].what else { panic!() };
        assert_eq!(announcement.format(), Format::Curator);
        assert_eq!(
            (fields.name.as_deref(), fields.id.as_deref()),
            (Some("api"), Some("api-1")),
            "from the path"
        );
        assert_eq!(
            config.registrations[1].what.target("/services/api/api-1").known_path(),
            Some("/services/api/api-1".into())
        );
        assert!(config.allows("/services/web") && config.allows("/config"));
        assert!(!format!("{config:?}").contains("0123456789abcdef0123"), "Debug never shows the token");
        assert!(!config.allows("/servicesX") && !config.allows("/") && !config.allows("/zookeeper"));
    }

    #[test]
    fn recorded_paths_are_nodes_or_prefixes() {
        let config =
            load("roots = [\"/config\"]\n[config]\nrecord_external = [\"/config/web\", \"/config/db/\"]")
                .unwrap();
        assert_eq!(
            config.recorded(),
            vec![Recorded::Node("/config/web".into()), Recorded::Children("/config/db".into())]
        );
        assert!(load("roots = [\"/s\"]").unwrap().recorded().is_empty());
    }

    #[test]
    fn streams_are_at_most_half_of_the_connections() {
        assert_eq!(Http::default().stream_limit(), 256);
        let small = Http { max_connections: 100, ..Http::default() };
        assert_eq!(small.stream_limit(), 50, "the default never exceeds half");
        // A reload keeps the restart-only max_connections: the limit in
        // force stays within half of it whatever max_streams says.
        let reloaded = Http { max_connections: 8, max_streams: Some(300), ..Http::default() };
        assert_eq!(reloaded.stream_limit(), 4);
        assert_eq!(load("roots = [\"/s\"]\n[http]\nmax_streams = 3").unwrap().http.stream_limit(), 3);
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        for (text, says) in [
            ("", "roots"),
            ("roots = []", "roots is empty"),
            ("roots = [\"/\"]", "all of ZooKeeper"),
            ("roots = [\"nope\"]", "roots"),
            ("roots = [\"/s\"]\nsurprise = 1", "unknown field"),
            ("roots = [\"/s\"]\n[http]\ntoken = \"short\"", "shorter than 16"),
            ("roots = [\"/s\"]\n[http]\nread_token = true", "needs a token"),
            ("roots = [\"/s\"]\n[http]\nmax_wait = \"soon\"", "not a duration"),
            ("roots = [\"/s\"]\n[http]\nheader_timeout = \"0s\"", "header_timeout must be more than 0s"),
            ("roots = [\"/s\"]\n[http]\npath_idle = \"0s\"", "path_idle must be more than 0s"),
            ("roots = [\"/s\"]\n[http]\nmax_connections = 0", "max_connections must be 1 to"),
            ("roots = [\"/s\"]\n[http]\nmax_streams = 0", "max_streams must be 1 to 512"),
            ("roots = [\"/s\"]\n[http]\nmax_connections = 8\nmax_streams = 5", "max_streams must be 1 to 4"),
            ("roots = [\"/s\"]\n[[service]]\npath = \"/t\"", "outside the roots"),
            ("roots = [\"/s\"]\n[config]\nrecord_external = [\"/t/a\"]", "record_external \"/t/a\" is outside the roots"),
            ("roots = [\"/s\"]\n[config]\nrecord_external = [\"/t/\"]", "outside the roots"),
            ("roots = [\"/s\"]\n[config]\nrecord_external = [\"/\"]", "record_external"),
            ("roots = [\"/s\"]\n[config]\nrecord_external = [\"s/a\"]", "record_external"),
            ("roots = [\"/s\"]\n[config]\nrecord_external = [\"/s//\"]", "record_external"),
            ("roots = [\"/s\"]\n[config]\nrecord_external = [\"/s/a\", \"/s/a\"]", "twice"),
            ("roots = [\"/s\"]\n[config]\nsurprise = 1", "unknown field"),
            ("roots = [\"/s\"]\n[[service]]\npath = \"/s/a\"\nformat = \"x\"", "unknown format"),
            ("roots = [\"/s\"]\n[[register]]\npath = \"/s/a\"\ndata = 3", "object, a string"),
            ("roots = [\"/s\"]\n[[register]]\npath = \"/s/a\"\ncheck_tcp = \"x\"", "HOST:PORT"),
            ("roots = [\"/s\"]\n[[register]]\npath = \"/s/a\"\nrise = 2", "need a check"),
            (
                "roots = [\"/s\"]\n[[register]]\npath = \"/s/a\"\ncheck_cmd = \"true\"\ninterval = \"1ms\"",
                "too short",
            ),
            ("roots = [\"/s\"]\n[[register]]\npath = \"/s/a\"\n[[register]]\npath = \"/s/a\"", "twice"),
            ("roots = [\"/s\"]\n[[register]]\npath = \"/s/a\"\nhost = \"h\"", "give \"as\""),
            ("roots = [\"/s\"]\n[[register]]\npath = \"/s/a\"\nsurprise = 1", "unknown field"),
            ("roots = [\"/s\"]\n[[register]]\npath = \"/s/a/b\"\nas = \"curator\"\nport = 1", "host and port"),
            ("roots = [\"/s\"]\n[[register]]\npath = \"/s/a\"\nas = \"curator\"\nhost = \"h\"\nport = 1", "too short"),
            ("roots = [\"/s\"]\n[[register]]\npath = \"/s/a/b\"\nas = \"corba\"", "curator, serverset or nerve"),
            ("roots = [\"/s\"]\n[[register]]\npath = \"/s/a/b\"\nas = \"nd\"", "the default"),
            ("roots = [\"/s/a\"]\n[[register]]\npath = \"/s/a\"\nas = \"serverset\"\nhost = \"h\"\nport = 1", "within the roots"),
            ("roots = [\"/s\"]\n[[register]]\npath = \"/s/a/b\"\nas = \"nerve\"\nhost = \"h\"\nport = 1\ndata = {}", "labels"),
            ("roots = [\"/s\"]\n[[register]]\npath = \"/s/a/b\"\nas = \"serverset\"\nhost = \"h\"\nport = 1\nendpoints = { admin = \"h\" }", "HOST:PORT"),
        ] {
            let error = load(text).err().unwrap_or_else(|| panic!("{text:?} loaded"));
            assert!(error.contains(says), "{text:?}: {error:?} does not say {says:?}");
        }
    }
}
