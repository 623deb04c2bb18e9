//! `ndsr agent`: the registry for every language on the host. An HTTP API
//! (JSON, blocking queries, Server-Sent Events), a live web dashboard,
//! files rendered from templates on change, registrations with health
//! checks, and Prometheus metrics, on one registry session.

mod api;
mod config;
mod dashboard;
mod events;
mod metrics;
mod registrations;
mod server;
mod state;
mod templates;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use self::config::Config;
use self::registrations::{Source, Spec};
use self::state::Agent;
use crate::args::{AgentArgs, Global};
use crate::error::{CliError, CliResult, Exit};
use crate::output;

/// How long shutdown waits for open requests and tasks.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Loads the file and applies the flags that override it.
fn load(args: &AgentArgs, global: &Global) -> Result<Config, String> {
    let mut config = Config::load(&args.config)?;
    if let Some(listen) = args.listen {
        config.http.listen = listen;
    }
    config.http.readonly |= global.readonly;
    Ok(config)
}

/// Which global options were given (not defaulted): those win over the file.
#[derive(Clone, Copy, Debug)]
pub struct Given {
    /// `--server` or `NDSR_SERVER`.
    pub server: bool,
    /// `--session-timeout`.
    pub session_timeout: bool,
}

pub async fn run(global: &Global, args: AgentArgs, given: Given) -> CliResult<ExitCode> {
    let config = load(&args, global).map_err(|e| CliError::new(Exit::InvalidInput, e))?;
    if args.check {
        output::line(&format!("{}: OK", args.config.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    metrics::install().map_err(|e| CliError::new(Exit::Failure, e))?;
    let servers = match (&config.servers, given.server) {
        (Some(servers), false) => servers.clone(),
        _ => global.server.clone(),
    };
    let session_timeout = match (config.session_timeout, given.session_timeout) {
        (Some(timeout), false) => timeout,
        _ => global.session_timeout,
    };
    let builder = ndsr::Registry::builder(&servers)
        .session_timeout(session_timeout)
        .connect_timeout(global.timeout)
        .operation_timeout(global.timeout)
        .readonly(config.http.readonly)
        // The agent starts (and serves its dashboard) with ZooKeeper down.
        .lazy(true);
    let registry = crate::cmd::secure(global, builder)?.build().await?;
    let listener = tokio::net::TcpListener::bind(config.http.listen).await.map_err(|e| {
        CliError::new(Exit::InvalidInput, format!("cannot listen on {}: {e}", config.http.listen))
    })?;
    let address = listener.local_addr()?;
    let agent = Agent::new(registry, config);
    apply(&agent).await;
    agent.tasks.spawn(templates::run(agent.clone()));
    let server = tokio::spawn(server::serve(listener, api::router(agent.clone()), agent.clone()));
    // The handlers first: a signal sent as soon as the line below is read
    // must find them (SIGHUP's default would end the process).
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    output::line(&format!("ndsr agent listening on http://{address}/ (ZooKeeper {servers})"))?;
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => reload(&agent, &args, global).await,
        }
    }

    // Shutdown: streams and tasks end, then the session closes, which
    // removes every registration at once.
    agent.cancel.cancel();
    agent.registry.close().await;
    // A closed stdout must not skip the waits below.
    let _ = output::line("ndsr agent stopped; registrations removed");
    if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
        tracing::warn!("open requests did not finish within {SHUTDOWN_GRACE:?}");
    }
    agent.tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, agent.tasks.wait()).await.is_err() {
        tracing::warn!("agent tasks did not finish within {SHUTDOWN_GRACE:?}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Puts the configuration in force: follows its services and holds its
/// registrations (the ones that stayed are untouched).
async fn apply(agent: &Arc<Agent>) {
    let config = agent.config();
    for service in &config.services {
        let (agent, path) = (agent.clone(), service.path.clone());
        let format = service.format();
        agent.clone().tasks.spawn(async move {
            if let Err(e) = agent.service(&path, format).await {
                tracing::warn!(service = %path, "not read yet: {}", e.message);
            }
        });
    }
    let wanted = config
        .registrations
        .iter()
        .map(|r| Spec {
            path: r.path.clone(),
            what: r.what.clone(),
            checked: r.checked.clone(),
            source: Source::Config,
        })
        .collect();
    agent.registrations.reconcile(agent, wanted).await;
}

/// SIGHUP: reads the file again; a bad file changes nothing.
async fn reload(agent: &Arc<Agent>, args: &AgentArgs, global: &Global) {
    let config = match load(args, global) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("reload refused, the running configuration stays: {e}");
            eprintln!("ndsr: reload refused, the running configuration stays: {e}");
            return;
        }
    };
    let old = agent.config();
    if config.http.listen != old.http.listen
        || config.servers != old.servers
        || config.session_timeout != old.session_timeout
        || config.http.readonly != old.http.readonly
        || config.http.max_body_bytes != old.http.max_body_bytes
        || config.http.max_connections != old.http.max_connections
    {
        tracing::warn!(
            "listen, servers, session_timeout, readonly, max_body_bytes and max_connections change only on restart"
        );
    }
    // What is in force says what is served.
    let mut config = config;
    config.http.listen = old.http.listen;
    config.http.readonly = old.http.readonly;
    config.http.max_body_bytes = old.http.max_body_bytes;
    config.http.max_connections = old.http.max_connections;
    agent.set_config(config);
    apply(agent).await;
    let _ = output::line(&format!("reloaded {}", args.config.display()));
}
