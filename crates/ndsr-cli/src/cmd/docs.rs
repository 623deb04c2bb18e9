//! `ndsr completions` and `ndsr man`: shell completions and man pages made
//! from the command line's own definitions, so they never drift from it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::args::Cli;
use crate::error::{CliError, CliResult, Exit};
use crate::output;

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Arguments of `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write ndsr.1 and a page per subcommand (ndsr-get.1, ndsr-config-publish.1, ...) into DIR (created if missing) instead of printing ndsr.1
    #[arg(short, long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// The command line, as completions and man pages describe it.
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Prints the completion script of `args.shell`.
pub fn completions(args: CompletionsArgs) -> CliResult<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command(), "ndsr", &mut script);
    output::raw(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints ndsr.1, or writes every page into `--out-dir`.
pub fn man(args: ManArgs) -> CliResult<ExitCode> {
    let cmd = command();
    match &args.out_dir {
        None => {
            let mut page = Vec::new();
            page_of(cmd).render(&mut page)?;
            output::raw(&page)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| cannot_write(dir, &e))?;
            write_pages(cmd, dir)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The page of `cmd` (built: a subcommand's name is `ndsr-get`).
fn page_of(cmd: clap::Command) -> clap_mangen::Man {
    let page = clap_mangen::Man::new(cmd).source(format!("ndsr {}", env!("CARGO_PKG_VERSION")));
    match env!("NDSR_BUILD_DATE") {
        "" => page,
        date => page.date(date),
    }
}

/// Writes the page of `cmd` and of each visible subcommand, recursively.
fn write_pages(cmd: clap::Command, dir: &Path) -> CliResult {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir)?;
    }
    let page = page_of(cmd);
    let path = dir.join(page.get_filename());
    let mut text = Vec::new();
    page.render(&mut text)?;
    std::fs::write(&path, text).map_err(|e| cannot_write(&path, &e))
}

fn cannot_write(path: &Path, e: &std::io::Error) -> CliError {
    CliError::new(Exit::Failure, format!("cannot write {}: {e}", path.display()))
}
