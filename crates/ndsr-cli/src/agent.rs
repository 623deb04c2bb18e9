//! `ndsr agent`: reads the flags, connects as every command does, and runs
//! the agent (the `ndsr-agent` crate).

use std::path::PathBuf;
use std::process::ExitCode;

use ndsr_agent::{Launch, Options, RunError, ServersGiven};

use crate::args::{AgentArgs, Global, DEFAULT_AGENT_CONFIG};
use crate::error::{CliError, CliResult, Exit};
use crate::output;

/// Which global options were given (not defaulted): those win over the file.
#[derive(Clone, Copy, Debug)]
pub struct Given {
    /// `--server` or `NDSR_SERVER`.
    pub server: bool,
    /// The server came from `NDSR_SERVER`, not `--server`.
    pub server_from_env: bool,
    /// `--session-timeout`.
    pub session_timeout: bool,
}

pub async fn run(global: &Global, args: AgentArgs, given: Given) -> CliResult<ExitCode> {
    let config = config_file(&args)?;
    let options = Options {
        config: config.clone(),
        listen: args.listen,
        dns_listen: args.dns_listen,
        readonly: global.readonly,
        servers: given.server.then(|| global.server.clone()),
        servers_given: if given.server_from_env { ServersGiven::Env } else { ServersGiven::Flag },
        default_servers: global.server.clone(),
        session_timeout: given.session_timeout.then_some(global.session_timeout),
        default_session_timeout: global.session_timeout,
    };
    let launch = Launch::load(options).map_err(|e| CliError::new(Exit::InvalidInput, e))?;
    if args.check {
        output::line(&format!("{}: OK", config.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let builder = ndsr::Registry::builder(launch.servers())
        .session_timeout(launch.session_timeout())
        .connect_timeout(global.timeout)
        .operation_timeout(global.timeout);
    let builder = crate::cmd::secure(global, builder)?;
    let ran = if args.once { launch.once(builder).await } else { launch.run(builder).await };
    ran.map_err(|e| match e {
        RunError::Listen { .. } => CliError::new(Exit::InvalidInput, e.to_string()),
        RunError::Metrics(why) => CliError::new(Exit::Failure, why),
        RunError::Registry(e) => CliError::from(e),
        RunError::Io(e) => CliError::from(e),
        other => CliError::new(Exit::Failure, other.to_string()),
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `--config`, or else the default file (`/etc/ndsr/agent.toml`, or
/// `NDSR_AGENT_DEFAULT_CONFIG` for tests) when it exists; without either,
/// an error naming both.
fn config_file(args: &AgentArgs) -> CliResult<PathBuf> {
    if let Some(config) = &args.config {
        return Ok(config.clone());
    }
    let default = std::env::var_os("NDSR_AGENT_DEFAULT_CONFIG")
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_AGENT_CONFIG), PathBuf::from);
    if default.exists() {
        tracing::info!(config = %default.display(), "no --config: using the default file");
        return Ok(default);
    }
    Err(CliError::new(
        Exit::InvalidInput,
        format!(
            "no configuration: give --config FILE, or write {} (read when --config is absent); see docs/agent.example.toml",
            default.display()
        ),
    ))
}
