//! The `ndsr` command line: a thin layer over the `ndsr` library.

mod agent;
mod args;
mod cmd;
mod error;
mod logging;
mod output;

use std::process::ExitCode;

use crate::args::{Cli, Command};
use crate::error::CliError;

/// The version `--version` prints: the package's, and the commit it was
/// built from when known (build.rs), e.g. `0.1.0 (0123456789ab 2025-01-31)`.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), env!("NDSR_BUILD_INFO"));

fn main() -> ExitCode {
    // A command run under `ndsr lock` or `ndsr elect`, on its leash.
    if std::env::args_os().nth(1).is_some_and(|a| a == cmd::leash::LEASH) {
        return cmd::leash::leash(std::env::args_os().skip(2).collect());
    }
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Options given (on the command line or in the environment) win over
    // the agent's file; their defaults do not.
    let given = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
        )
    };
    let given = agent::Given {
        server: given("server"),
        server_from_env: matches.value_source("server") == Some(clap::parser::ValueSource::EnvVariable),
        session_timeout: given("session_timeout"),
    };
    logging::init(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return report(CliError::from(e)),
    };
    match runtime.block_on(run(cli, given)) {
        Ok(code) => code,
        Err(e) => report(e),
    }
}

fn report(e: CliError) -> ExitCode {
    eprintln!("ndsr: {}", e.message);
    for line in &e.details {
        eprintln!("  {line}");
    }
    e.code()
}

async fn run(cli: Cli, given: agent::Given) -> Result<ExitCode, CliError> {
    let global = &cli.global;
    match cli.command {
        Command::Get(args) => cmd::get::run(global, args).await,
        Command::Watch(args) => cmd::watch::run(global, args).await,
        Command::Register(args) => cmd::register::run(global, *args).await,
        Command::Maint(args) => cmd::maint::run(global, args).await,
        Command::SetData(args) => cmd::write::set_data(global, args).await,
        Command::Unset(args) => cmd::write::unset(global, args).await,
        Command::Lock(args) => cmd::lock::run(global, args).await,
        Command::Elect(args) => cmd::elect::run(global, args).await,
        Command::Pick(args) => cmd::discovery::pick(global, args).await,
        Command::Sandbox(args) => cmd::sandbox::run(global, args).await,
        Command::Agent(args) => agent::run(global, args, given).await,
        Command::Config(args) => cmd::config::run(global, args).await,
        Command::Export(args) => cmd::tree::export(global, args).await,
        Command::Diff(args) => cmd::tree::diff(global, args).await,
        Command::Apply(args) => cmd::tree::apply(global, args).await,
        Command::Mirror(args) => cmd::mirror::run(global, args).await,
        Command::Completions(args) => cmd::docs::completions(args),
        Command::Man(args) => cmd::docs::man(args),
    }
}
