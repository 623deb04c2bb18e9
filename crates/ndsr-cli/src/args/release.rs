//! The grammar of the configuration commands: `config ...` (releases)
//! and `export`, `diff`, `apply` (configuration as code).

use super::*;

/// Arguments of `config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
    /// Where histories and schemas are kept (under the chroot, if any); every client of a path must use the same
    #[arg(long, global = true, env = "NDSR_CONFIG_ROOT", default_value = "/ndsr", value_name = "PATH")]
    pub config_root: String,
    /// Who publishes, as recorded in the history (default: $USER)
    #[arg(long, global = true, env = "NDSR_AUTHOR", value_name = "NAME")]
    pub author: Option<String>,
}

/// The `config` commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Publish a JSON value (its exact bytes) as a new release of PATH.
    ///
    /// Checked against PATH's schema first (exit 12 listing each
    /// violation, nothing written). Prints the release: version, history
    /// entry and SHA-256.
    Publish(PublishArgs),
    /// Show PATH's releases, oldest first, one line each; versions written
    /// outside ndsr and entries tampered with are said plainly.
    History(HistoryArgs),
    /// What changed between two releases, key by key (exit 0 either way).
    ///
    /// No version: the newest release before the live value, against the
    /// live value. A alone: release A against the live value.
    Diff(DiffArgs),
    /// Publish the exact value of an earlier release again (a new release).
    Rollback(RollbackArgs),
    /// Set, show or remove PATH's JSON Schema (draft 2020-12).
    Schema(SchemaArgs),
    /// Check a value against PATH's schema without writing (exit 12 if it does not fit).
    Validate(ValidateArgs),
    /// Start (or replace) a canary: FILE's value goes to the ndsr clients
    /// a rule picks; the live node keeps the stable value for every other
    /// reader.
    ///
    /// Clients (Rust and Python `config()`) pick by their identity (the
    /// host name unless set) and labels; a percentage is sticky per
    /// identity. Checked against PATH's schema first (exit 12). PATH needs
    /// an ndsr release first (exit 3).
    Canary(CanaryArgs),
    /// Make PATH's canary its next release, in one transaction; every
    /// client then runs it.
    ///
    /// Exit 13 (nothing written) if the live value changed since the
    /// canary began: start the canary again over it.
    Promote(PromoteArgs),
    /// Remove PATH's canary: its clients go back to the live value.
    Abort(CanaryPathArgs),
    /// PATH's canary, and what each ndsr client following PATH runs: how
    /// many the stable value, how many the canary, and who refused it.
    Status(CanaryPathArgs),
}

/// Arguments of `config canary`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("rule").required(true).args(["hosts", "labels", "percent"]))]
pub struct CanaryArgs {
    /// The configuration path
    pub path: String,
    /// The canary value's file (`-`: stdin); its bytes are used exactly
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// The clients with these identities
    #[arg(long, value_delimiter = ',', value_name = "H1,H2")]
    pub hosts: Vec<String>,
    /// The clients that have all these labels
    #[arg(long, value_delimiter = ',', value_name = "K=V,...")]
    pub labels: Vec<String>,
    /// This share of clients, 0 to 100, chosen by a stable hash of PATH and each identity
    #[arg(long, value_name = "P")]
    pub percent: Option<f64>,
    /// Message and --if-version (of the live node)
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// Output
    #[command(flatten)]
    pub output: ConfigOutput,
}

/// Arguments of `config promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The configuration path
    pub path: String,
    /// Why: recorded in the history (default: the canary's own message)
    #[arg(short, long, default_value = "", hide_default_value = true)]
    pub message: String,
    /// Output
    #[command(flatten)]
    pub output: ConfigOutput,
}

/// Arguments of `config abort` and `config status`.
#[derive(Debug, Args)]
pub struct CanaryPathArgs {
    /// The configuration path
    pub path: String,
    /// Output
    #[command(flatten)]
    pub output: ConfigOutput,
}

/// Output formats of the `config` commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConfigFormat {
    /// Lines for people.
    Text,
    /// Pretty JSON.
    Json,
}

/// The output format of a `config` command.
#[derive(Debug, Args)]
pub struct ConfigOutput {
    /// Output format
    #[arg(long, value_enum, default_value_t = ConfigFormat::Text)]
    pub format: ConfigFormat,
    /// Same as --format json
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

impl ConfigOutput {
    /// Is the output JSON?
    pub fn is_json(&self) -> bool {
        self.json || self.format == ConfigFormat::Json
    }
}

/// Compare-and-set and the message of a release.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// Why: recorded in the history (at most 4 KiB)
    #[arg(short, long, default_value = "", hide_default_value = true)]
    pub message: String,
    /// Write only if the live node is at this version (-1: only if it does not exist); else exit 13
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub if_version: Option<i32>,
}

/// Arguments of `config publish`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("value").required(true).args(["data", "file", "input"]))]
pub struct PublishArgs {
    /// The configuration path, e.g. /config/web
    pub path: String,
    /// The value's file (`-`: stdin), instead of --data or --file
    #[arg(value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// The value as JSON text
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    /// Read the value from this file (`-`: stdin); its bytes are written exactly
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Message and --if-version
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// Output
    #[command(flatten)]
    pub output: ConfigOutput,
}

/// Arguments of `config history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The configuration path
    pub path: String,
    /// Under each release, what changed from the release before it
    #[arg(long)]
    pub diff: bool,
    /// Output
    #[command(flatten)]
    pub output: ConfigOutput,
}

/// Arguments of `config diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The configuration path
    pub path: String,
    /// The old release's version (default: the newest release before the live value)
    #[arg(value_name = "A")]
    pub from: Option<i32>,
    /// The new release's version (default: the live value)
    #[arg(value_name = "B")]
    pub to: Option<i32>,
    /// Output
    #[command(flatten)]
    pub output: ConfigOutput,
}

/// Arguments of `config rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The configuration path
    pub path: String,
    /// The version whose value to publish again (see `ndsr config history`)
    #[arg(long, value_name = "N")]
    pub to: i32,
    /// Message and --if-version
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// Output
    #[command(flatten)]
    pub output: ConfigOutput,
}

/// Arguments of `config schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SchemaCommand,
}

/// The `config schema` commands.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Set PATH's schema from FILE (`-`: stdin); refused (exit 12) if the live value does not fit, unless --force.
    Set(SchemaSetArgs),
    /// Print PATH's schema (exit 10 if it has none).
    Get(SchemaPathArgs),
    /// Remove PATH's schema.
    Rm(SchemaPathArgs),
}

/// Arguments of `config schema set`.
#[derive(Debug, Args)]
pub struct SchemaSetArgs {
    /// The configuration path
    pub path: String,
    /// The JSON Schema's file (`-`: stdin)
    pub file: PathBuf,
    /// Set it even if the live value does not fit it (the violations are printed and recorded)
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `config schema get` and `rm`.
#[derive(Debug, Args)]
pub struct SchemaPathArgs {
    /// The configuration path
    pub path: String,
}

/// Arguments of `config validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The configuration path
    pub path: String,
    /// The value's file (`-`: stdin)
    pub file: PathBuf,
}
