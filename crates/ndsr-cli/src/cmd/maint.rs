//! `ndsr maint`: takes an instance out of rotation, or puts it back,
//! without deregistering it.

use std::process::ExitCode;

use clap::Args;
use ndsr::discovery::MarkError;

use crate::args::Global;
use crate::cmd::{check_path, connect};
use crate::error::{CliError, CliResult, Exit};
use crate::output;

/// Arguments of `maint`.
#[derive(Debug, Args)]
pub struct MaintArgs {
    /// The instance's node, e.g. /discovery/web/i-1
    pub path: String,
    /// Mark it not serving
    #[arg(long, conflicts_with = "off", required_unless_present = "off")]
    pub on: bool,
    /// Mark it serving again
    #[arg(long)]
    pub off: bool,
    /// Why (kept in the nd format's `maintenance` field)
    #[arg(long, value_name = "TEXT", conflicts_with = "off")]
    pub reason: Option<String>,
}

pub async fn run(global: &Global, args: MaintArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    let registry = connect(global, false).await?;
    let marked = registry.set_maintenance(&args.path, args.on, args.reason.as_deref()).await;
    registry.close().await;
    let format = marked.map_err(cli_error)?;
    let state = if args.on { "not serving (maintenance)" } else { "serving" };
    output::line(&format!("{} {format} instance {state}", args.path))?;
    Ok(ExitCode::SUCCESS)
}

fn cli_error(e: MarkError) -> CliError {
    let exit = match &e {
        MarkError::Registry(e) => return CliError::from(e.clone()),
        MarkError::NoNode { .. } => Exit::NoNode,
        MarkError::Unmarkable(_) | MarkError::NotAnObject { .. } | MarkError::NotAnInstance { .. } => {
            Exit::InvalidInput
        }
        _ => Exit::Failure,
    };
    CliError::new(exit, e.to_string())
}
