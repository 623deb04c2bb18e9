//! The grammar of configuration as code: `export`, `diff`, `apply`.

use super::*;

/// Where histories and schemas are kept, and who writes (the tree commands).
#[derive(Debug, Args)]
pub struct TreeConfig {
    /// Where histories and schemas are kept (left out of exports and plans)
    #[arg(long, env = "NDSR_CONFIG_ROOT", default_value = "/ndsr", value_name = "PATH")]
    pub config_root: String,
    /// Who applies, as recorded in the history (default: $USER)
    #[arg(long, env = "NDSR_AUTHOR", value_name = "NAME")]
    pub author: Option<String>,
}

/// Formats of `export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TreeFormat {
    /// YAML (the default).
    Yaml,
    /// Pretty JSON.
    Json,
}

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The subtree's root, e.g. /app
    pub path: String,
    /// Write to FILE instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The document's format
    #[arg(long, value_enum, default_value_t = TreeFormat::Yaml)]
    pub format: TreeFormat,
    /// Include ephemeral nodes (registrations)
    #[arg(long)]
    pub ephemeral: bool,
    /// Include each node's ACL (`acl: [{perms: rwcda, scheme: world, id: anyone}]`)
    #[arg(long)]
    pub acls: bool,
    /// Where histories and schemas are kept, and who writes.
    #[command(flatten)]
    pub tree: TreeConfig,
}

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct TreeDiffArgs {
    /// The tree file (YAML or JSON, as `export` writes it), or a directory of them
    pub file: PathBuf,
    /// Also delete live persistent nodes under the root that the file does not have
    #[arg(long)]
    pub prune: bool,
    /// Save the plan (with the versions it was made against) for `apply --plan`
    #[arg(long, value_name = "PLAN")]
    pub plan_out: Option<PathBuf>,
    /// Where histories and schemas are kept, and who writes.
    #[command(flatten)]
    pub tree: TreeConfig,
}

/// Arguments of `apply`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).multiple(true).args(["file", "plan"]))]
pub struct ApplyArgs {
    /// The tree file or directory (planned now); with --plan, checked to be the plan's tree
    pub file: Option<PathBuf>,
    /// Apply a plan saved by `diff --plan-out`
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// Also delete live persistent nodes under the root that the file does not have
    #[arg(long, conflicts_with = "plan")]
    pub prune: bool,
    /// Print the plan (as `ndsr diff` does, exit 0 or 14) and write nothing
    #[arg(long, conflicts_with = "plan")]
    pub dry_run: bool,
    /// Why: recorded in each node's history
    #[arg(short, long, default_value = "", hide_default_value = true)]
    pub message: String,
    /// Where histories and schemas are kept, and who writes.
    #[command(flatten)]
    pub tree: TreeConfig,
}
