//! The command line's grammar (clap derive).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
EXIT CODES:
    0    success (for `lock` and `elect`: the command's own exit code; `elect` stopped by SIGTERM/SIGHUP)
    1    unexpected ZooKeeper or system error; mirror --once: a write to the destination was refused
    2    usage error (unknown command or option)
    3    invalid input: bad path or server list, missing chroot, TLS files or certificates, invalid JSON data,
         data too large, a node with children for unset, a lock path that is not
         a lock, an election path holding another layout's contenders, bad argument;
         config: a JSON Schema that cannot be used, a version not in the history (the
         message lists those it holds)
    4    no connection: ZooKeeper unreachable within --timeout
    5    not authorized: the node's ACL refuses these credentials, or ZooKeeper refused the SASL credentials
    6    read-only: a write was attempted with --readonly
    7    lock not obtained within --wait
    8    lock lost while the command ran (session expired); the command was killed
         elect --once: leadership lost while the command ran; the command was stopped
    9    the node is held by another session, or a service directory holds another format;
         apply: a planned node is ephemeral, or a node to delete has children now
    10   no such node (get, unless --allow-missing; export; mirror: the source path); config
         history: no release and no node; config schema get: no schema
    11   no instance to pick (pick): none serving, none matching, or all failing
    12   invalid (config): the value, or the live value a schema is set over, does not fit
         the schema; each violation is listed as POINTER: message (a schema that is not a
         usable schema is 3)
    13   version conflict (config --if-version): the node is not at that version; nothing
         was written. apply: a node changed since the plan (the message names it and both
         versions); nothing of its batch is written (earlier batches are)
    14   diff: the plan has changes (0: the live tree matches the file)
    130  elect: stopped by SIGINT

ENVIRONMENT:
    NDSR_SERVER      default for --server
    NDSR_PASSWORD    default for --password
    NDSR_CONFIG_ROOT default for config's --config-root
    NDSR_AUTHOR      default for config's --author
    NDSR_LOG_FORMAT  default for --log-format
    RUST_LOG         log filter for -v output (e.g. ndsr=debug)";

/// A service registry and dynamic configuration on Apache ZooKeeper.
///
/// Inspect and watch paths, hold a registration for a service (with an
/// optional health check), publish configuration, run a command while
/// leader or under a lock, run the agent (HTTP, DNS, templates), or start
/// a local ZooKeeper for development. Results go to stdout; logs and connection
/// news go to stderr.
#[derive(Debug, Parser)]
#[command(name = "ndsr", version = crate::VERSION, after_long_help = EXIT_CODES, after_help = EXIT_CODES)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,

    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// ZooKeeper servers: HOST:PORT,HOST:PORT,... optionally followed by a /chroot
    #[arg(short, long, global = true, env = "NDSR_SERVER", default_value = "localhost:2181")]
    pub server: String,

    /// How long to wait for a connection (and each operation), e.g. 10s, 500ms
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: Duration,

    /// ZooKeeper session timeout: how long a registration outlives a lost connection
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "10s")]
    pub session_timeout: Duration,

    /// Username for ZooKeeper digest auth
    #[arg(short, long, global = true, requires = "password")]
    pub username: Option<String>,

    /// Password for ZooKeeper digest auth
    #[arg(short, long, global = true, env = "NDSR_PASSWORD", hide_env_values = true, requires = "username")]
    pub password: Option<String>,

    /// Authenticate --username/--password with SASL DIGEST-MD5 (a server's JAAS users) instead of the digest scheme
    #[arg(long, global = true, requires = "username")]
    pub sasl: bool,

    /// TLS: the CA (PEM file) that signed the servers' certificates; the servers' TLS port
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// TLS: this client's certificate (PEM file), for servers that ask for one
    #[arg(long, global = true, value_name = "FILE", requires = "tls_ca", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS: this client's private key (PEM file)
    #[arg(long, global = true, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Refuse every write (exit code 6)
    #[arg(long, global = true)]
    pub readonly: bool,

    /// Create the chroot of --server if it is missing (otherwise a missing chroot is exit 3)
    #[arg(long, global = true, conflicts_with = "readonly")]
    pub create_chroot: bool,

    /// Print nothing on stderr but errors
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log to stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Logs on stderr as text, or as JSON (one object per line)
    #[arg(long, global = true, value_enum, env = "NDSR_LOG_FORMAT", default_value_t = crate::logging::LogFormat::Text)]
    pub log_format: crate::logging::LogFormat,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a node: its children, stat and (with -d) data; -r walks the subtree.
    Get(GetArgs),
    /// Print a node now and again on every change, until interrupted.
    ///
    /// Keeps running across server restarts and session expiry; connection
    /// news and staleness go to stderr.
    Watch(WatchArgs),
    /// Hold an ephemeral registration for as long as this runs (a sidecar).
    ///
    /// With a health check, the node exists only while the check passes:
    /// it is withdrawn after --fall failures in a row and returns after
    /// --rise successes; a check that starts or stops failing is logged.
    /// SIGINT, SIGTERM or SIGHUP removes the node at once and exits 0;
    /// with --drain, it is first marked not serving in its format and
    /// removed after the period (a second signal cuts the wait short).
    Register(Box<RegisterArgs>),
    /// Take an instance out of rotation (--on) or put it back (--off)
    /// without deregistering it.
    ///
    /// Marks it in its own format, keeping its other fields: Curator
    /// `enabled: false`, ServerSet `STOPPING`, nd a `maintenance` field
    /// (true or --reason). A nerve node (which withdraws instead) or a node
    /// of no known format is refused (exit 3). A node held by `ndsr
    /// register` or the agent is written back by its holder: use the
    /// agent's /v1/maintenance, or --drain.
    Maint(crate::cmd::maint::MaintArgs),
    /// Write a persistent data node (created with its parents if missing).
    SetData(SetDataArgs),
    /// Remove a node (absent is fine); -r --yes removes a whole subtree.
    Unset(UnsetArgs),
    /// Run a command while holding a lock; exit with the command's code.
    ///
    /// Compatible with the Python original's and kazoo's locks (kazoo's
    /// `Semaphore`), or with kazoo's `Lock`/`ReadLock`/`WriteLock` or
    /// Curator's mutex and read/write lock (--layout, --mode); a path of
    /// another layout is refused (exit 3). The lock
    /// path must be free or a lock: a node that is ephemeral, holds other
    /// data or has other children is refused (exit 3), never changed. The
    /// command runs in its own process group. If the lock is lost (session
    /// expired, or ZooKeeper silent for --lost-after of the session
    /// timeout), the group is stopped before another process can take the
    /// lock, and ndsr exits 8. SIGINT/SIGTERM/SIGHUP are passed on to the
    /// group as SIGTERM; if it has not exited after --grace (or on a second
    /// signal), it is killed. Whatever the command leaves running in its
    /// group is killed before the lock is released.
    Lock(LockArgs),
    /// Run a command only while leading an election; exit with the
    /// command's code.
    ///
    /// Joins the election at PATH in kazoo's or Curator's node layout.
    /// While leading, CMD runs in its own process group with
    /// NDSR_LEADER_TOKEN (the fencing token), NDSR_ELECTION_PATH and
    /// NDSR_ELECTION_ID set. On loss of leadership the group gets SIGTERM,
    /// and SIGKILL after --grace or before the server could expire the
    /// session, whichever comes first; then ndsr waits to lead again
    /// (--once: exits 8). If CMD exits by itself, ndsr resigns and exits
    /// with its code. SIGTERM/SIGHUP (exit 0) and SIGINT (exit 130) stop
    /// CMD the same way and resign. --status shows the leader and the
    /// contenders, in any layout.
    Elect(ElectArgs),
    /// Print one instance of a service as HOST:PORT, for scripts.
    ///
    /// Reads the service directory in any format (Curator, ServerSet,
    /// nerve, nd_service_registry; detected unless --as), keeps serving
    /// instances matching the filters, and picks one with --strategy.
    /// Exit 11 when there is none.
    Pick(PickArgs),
    /// Start a local ZooKeeper for development; Ctrl-C stops it.
    ///
    /// Prints the connection string on stdout. Needs ZooKeeper installed
    /// (scripts/setup.sh, or `apt-get install -y zookeeper`).
    Sandbox(SandboxArgs),
    /// Serve the registry to every program on the host: an HTTP API, a
    /// live web dashboard, files rendered from templates, and metrics.
    ///
    /// Configured by a TOML file: --config, else /etc/ndsr/agent.toml (see
    /// docs/agent.example.toml and docs/AGENT.md). The dashboard is at
    /// http://LISTEN/. SIGTERM or SIGINT removes the agent's registrations
    /// (at once, or after marking them not serving for `drain` when it is
    /// set) and exits 0; SIGHUP reloads the file (registrations that
    /// stayed are untouched; a bad file changes nothing).
    Agent(AgentArgs),
    /// Configuration releases: publish, history, diff, rollback, schemas.
    ///
    /// The live node stays a plain node every client reads; each write
    /// through `ndsr config` is recorded with its author, host, time and
    /// message in the same transaction, under --config-root. See
    /// docs/CONFIG.md.
    Config(ConfigArgs),
    /// Write a subtree as one YAML or JSON document (configuration as code).
    ///
    /// Each node's exact bytes, tagged `json`, `text` or `base64` so they
    /// round-trip. Ephemeral nodes are left out unless --ephemeral; the
    /// --config-root tree always. See docs/CONFIG.md.
    Export(ExportArgs),
    /// Compare a tree file (or a directory of them) with the live tree and
    /// print the plan.
    ///
    /// `+` create, `~` update (with the JSON changes), `-` delete (--prune).
    /// Exit 0 when there is nothing to do, 14 when there is.
    Diff(TreeDiffArgs),
    /// Apply a tree file (planned now) or a saved plan to the live tree.
    ///
    /// Each node is written as an `apply` release (history, schema,
    /// compare-and-set on the planned version); a node changed since the
    /// plan stops the apply (exit 13). Values are checked against their
    /// schemas before anything is written (exit 12). Re-running converges.
    Apply(ApplyArgs),
    /// Keep a one-way copy of a subtree on another ensemble.
    ///
    /// Persistent nodes copied byte for byte (created, updated, deleted);
    /// with --registrations, the source's ephemeral nodes held on the
    /// destination by the mirror's session. Rides out either side's outage
    /// and expiry; prints a line per pass that changed something, with the
    /// lag. SIGINT or SIGTERM exits 0. See docs/CONFIG.md.
    Mirror(MirrorArgs),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// e.g. `ndsr completions bash > /etc/bash_completion.d/ndsr`, or
    /// `source <(ndsr completions bash)` in ~/.bashrc.
    Completions(crate::cmd::docs::CompletionsArgs),
    /// Print the man page ndsr.1, or write every page with --out-dir.
    Man(crate::cmd::docs::ManArgs),
}

/// Arguments of `unset`.
#[derive(Debug, Args)]
pub struct UnsetArgs {
    /// The ZooKeeper path, e.g. /config/web
    pub path: String,
    /// Remove the node and its whole subtree (needs --yes)
    #[arg(short, long)]
    pub recursive: bool,
    /// Confirm a recursive removal
    #[arg(long, requires = "recursive")]
    pub yes: bool,
}

/// Output formats of `get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GetFormat {
    /// YAML (the default).
    Yaml,
    /// Pretty JSON.
    Json,
    /// One path per line.
    Dir,
}

/// Arguments of `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The ZooKeeper path
    #[arg(default_value = "/")]
    pub path: String,
    /// Include each node's decoded data
    #[arg(short, long)]
    pub data: bool,
    /// Walk the whole subtree
    #[arg(short, long)]
    pub recursive: bool,
    /// Stop a recursive walk after this many nodes (at least 1)
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_nodes: u64,
    /// Exit 0 for a missing node (otherwise exit 10)
    #[arg(long)]
    pub allow_missing: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = GetFormat::Yaml, alias = "outputformat")]
    pub format: GetFormat,
    /// Show the path's children as decoded service instances (any format)
    #[arg(short, long, conflicts_with_all = ["recursive", "data"])]
    pub instances: bool,
    /// The instances' format (with --instances; default: detected)
    #[arg(long = "as", value_name = "FORMAT", requires = "instances")]
    pub as_format: Option<DiscoveryFormat>,
}

/// A service-registry format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiscoveryFormat {
    /// Apache Curator x-discovery.
    Curator,
    /// Twitter/Finagle/Aurora ServerSets.
    Serverset,
    /// Airbnb SmartStack nerve.
    Nerve,
    /// nd_service_registry.
    Nd,
}

impl From<DiscoveryFormat> for ndsr::discovery::Format {
    fn from(f: DiscoveryFormat) -> ndsr::discovery::Format {
        match f {
            DiscoveryFormat::Curator => ndsr::discovery::Format::Curator,
            DiscoveryFormat::Serverset => ndsr::discovery::Format::ServerSet,
            DiscoveryFormat::Nerve => ndsr::discovery::Format::Nerve,
            DiscoveryFormat::Nd => ndsr::discovery::Format::Nd,
        }
    }
}

/// Strategies of `pick`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PickStrategy {
    /// Uniformly at random.
    Random,
    /// The first in name order (a process picks once, so "in turn" is the
    /// first of the rotation).
    RoundRobin,
    /// At random in proportion to the weights (nerve weight, a `weight` label).
    Weighted,
}

/// Arguments of `pick`.
#[derive(Debug, Args)]
pub struct PickArgs {
    /// The service directory, e.g. /discovery/web
    pub path: String,
    /// How to choose
    #[arg(long, value_enum, default_value_t = PickStrategy::Random)]
    pub strategy: PickStrategy,
    /// The instances' format (default: detected)
    #[arg(long = "as", value_name = "FORMAT")]
    pub as_format: Option<DiscoveryFormat>,
    /// Only instances whose label KEY equals VALUE (repeatable; KEY!=VALUE: differs)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Prefer instances whose label KEY equals VALUE, falling back to the others
    #[arg(long, value_name = "KEY=VALUE")]
    pub prefer: Option<String>,
    /// Also pick instances that are drained (not serving)
    #[arg(long)]
    pub include_draining: bool,
    /// Print the named endpoint (a ServerSet's additionalEndpoints) instead of the main one
    #[arg(long, value_name = "NAME")]
    pub endpoint: Option<String>,
}

/// Output formats of `watch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WatchFormat {
    /// One human line per change.
    Text,
    /// JSON Lines: one object per change.
    Json,
}

/// Arguments of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The ZooKeeper path
    pub path: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = WatchFormat::Text)]
    pub format: WatchFormat,
    /// Follow the path's children as decoded service instances (any
    /// format): each change lists the instances added (+), removed (-) and
    /// changed (~), and children that are not instances (!)
    #[arg(short, long)]
    pub instances: bool,
    /// The instances' format (with --instances; default: detected)
    #[arg(long = "as", value_name = "FORMAT", requires = "instances")]
    pub as_format: Option<DiscoveryFormat>,
}

/// Data given on the command line or in a file.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct DataArgs {
    /// The node's data as JSON: an object, a "string", or null (arrays, numbers and booleans are refused, as the original refuses them)
    #[arg(long)]
    pub data: Option<String>,
    /// Read the JSON data from this file
    #[arg(long, value_name = "FILE")]
    pub data_file: Option<PathBuf>,
}

/// Arguments of `register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The node to hold, e.g. /services/web/10.0.0.1:80
    pub path: String,
    /// The node's data
    #[command(flatten)]
    pub data: DataArgs,
    /// Health check: a TCP connection to HOST:PORT succeeds
    #[arg(long, value_name = "HOST:PORT", group = "check")]
    pub check_tcp: Option<String>,
    /// Health check: an HTTP GET of URL answers 2xx
    #[arg(long, value_name = "URL", group = "check")]
    pub check_http: Option<String>,
    /// Health check: `sh -c CMD` exits 0
    #[arg(long, value_name = "CMD", group = "check")]
    pub check_cmd: Option<String>,
    /// Time between checks (each check must finish within it; at least 100ms)
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub interval: Duration,
    /// Successes in a row before (re)registering
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub rise: u32,
    /// Failures in a row before withdrawing
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub fall: u32,
    /// On a stop signal, mark the node not serving (Curator enabled: false, ServerSet
    /// STOPPING, nd maintenance; nerve: removed), wait DUR, then remove it
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub drain: Option<Duration>,
    /// Register in another system's format; PATH is then the service
    /// directory (for curator: the base path, the service is --name)
    #[arg(long = "as", value_name = "FORMAT", conflicts_with_all = ["data", "data_file"])]
    pub as_format: Option<AnnounceFormat>,
    /// The instance: its host or address (--as)
    #[arg(long, requires = "as_format")]
    pub host: Option<String>,
    /// The instance: its port (--as)
    #[arg(long, requires = "as_format")]
    pub port: Option<u16>,
    /// Curator: the service name; nerve: the instance id
    #[arg(long, requires = "as_format")]
    pub name: Option<String>,
    /// Curator: the instance id (default: a random UUID, as Curator)
    #[arg(long, requires = "as_format")]
    pub id: Option<String>,
    /// Curator: the TLS port
    #[arg(long, requires = "as_format")]
    pub ssl_port: Option<u16>,
    /// Curator: the URI template, e.g. '{scheme}://{address}:{port}'
    #[arg(long, requires = "as_format")]
    pub uri_spec: Option<String>,
    /// ServerSet: the shard
    #[arg(long, requires = "as_format")]
    pub shard: Option<i32>,
    /// nerve: the HAProxy weight
    #[arg(long, requires = "as_format")]
    pub weight: Option<u32>,
    /// A label (nerve labels, ServerSet metadata, Curator payload), repeatable
    #[arg(long = "label", value_name = "KEY=VALUE", requires = "as_format")]
    pub labels: Vec<String>,
    /// ServerSet: a named additional endpoint, repeatable
    #[arg(long = "endpoint", value_name = "NAME=HOST:PORT", requires = "as_format")]
    pub endpoints: Vec<String>,
    /// nerve: carry the data in the node's name too (synapse then skips the read)
    #[arg(long, requires = "as_format")]
    pub path_encoding: bool,
}

/// Formats `register --as` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AnnounceFormat {
    /// Apache Curator x-discovery (a DYNAMIC instance).
    Curator,
    /// A Twitter/Finagle/Aurora ServerSet member.
    Serverset,
    /// An Airbnb SmartStack nerve instance.
    Nerve,
}

impl From<AnnounceFormat> for ndsr::discovery::Format {
    fn from(f: AnnounceFormat) -> ndsr::discovery::Format {
        match f {
            AnnounceFormat::Curator => ndsr::discovery::Format::Curator,
            AnnounceFormat::Serverset => ndsr::discovery::Format::ServerSet,
            AnnounceFormat::Nerve => ndsr::discovery::Format::Nerve,
        }
    }
}

/// Arguments of `set-data`.
#[derive(Debug, Args)]
pub struct SetDataArgs {
    /// The ZooKeeper path
    pub path: String,
    /// The data (one of the two is required)
    #[command(flatten)]
    pub data: DataArgs,
}

/// Arguments of `lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// The lock path, e.g. /locks/deploy
    pub path: String,
    /// This holder's name, stored in its lock node
    #[arg(long)]
    pub name: Option<String>,
    /// How many holders may hold the lock at once (the semaphore layout only)
    #[arg(long, default_value_t = 1)]
    pub simultaneous: u32,
    /// Whose node layout to use: lock in the layout the path's other clients use (another layout's
    /// path is refused, exit 3)
    #[arg(long, value_enum, default_value_t = LockLayoutArg::Semaphore)]
    pub layout: LockLayoutArg,
    /// Exclusive, or a reader or writer of a read/write lock (kazoo and curator layouts)
    #[arg(long, value_enum, default_value_t = LockModeArg::Exclusive)]
    pub mode: LockModeArg,
    /// How long to wait for the lock
    #[arg(long, value_parser = humantime::parse_duration, default_value = "300s")]
    pub wait: Duration,
    /// After passing SIGINT/SIGTERM/SIGHUP on, or SIGTERM when the lock is lost, how long the
    /// command has to exit before it is killed (cut short, when the lock is lost, so that the command
    /// has ended before the server can expire the session)
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub grace: Duration,
    /// The lock counts as lost once ZooKeeper has not answered for this part of the session timeout
    /// (above 0, at most 1): the command is then stopped before the server can expire the session
    /// and hand the lock to another process
    #[arg(long, value_name = "PART", value_parser = parse_part, default_value = "0.67")]
    pub lost_after: f64,
    /// The command to run, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Arguments of `sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Listen on this port (default: 2181 if it is free, else any free port; 0: any free port)
    #[arg(long)]
    pub port: Option<u16>,
    /// Keep data in this directory (default: a temporary one, removed on exit)
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// The agent's configuration file when `--config` is not given.
pub const DEFAULT_AGENT_CONFIG: &str = "/etc/ndsr/agent.toml";

/// Arguments of `agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The configuration file (TOML) [default: /etc/ndsr/agent.toml, when it exists]
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen on ADDR:PORT instead of the file's `[http] listen` (port 0: any free port)
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// Serve DNS on ADDR:PORT (UDP and TCP) instead of the file's `[dns] listen`; without a `[dns]`, DNS with its defaults (port 0: any free port)
    #[arg(long, value_name = "ADDR:PORT")]
    pub dns_listen: Option<std::net::SocketAddr>,
    /// Check the configuration file, print OK and exit
    #[arg(long)]
    pub check: bool,
    /// Render every template once (and run the commands of changed files), then exit: 0, or 1 naming the templates that failed
    #[arg(long, conflicts_with = "check")]
    pub once: bool,
}

/// A part of a whole: a number above 0 and at most 1.
fn parse_part(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(part) if part > 0.0 && part <= 1.0 => Ok(part),
        _ => Err(format!("{text:?} is not a number above 0 and at most 1, e.g. 0.67")),
    }
}

mod elect;
mod lock;
mod mirror;
mod release;
mod tree;

pub use elect::*;
pub use lock::*;
pub use mirror::*;
pub use release::*;
pub use tree::*;
