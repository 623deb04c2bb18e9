//! The ndsr agent: the registry for every language on the host. An HTTP
//! API (JSON, blocking queries, Server-Sent Events), a live web dashboard,
//! files rendered from templates on change, registrations with health
//! checks, and Prometheus metrics, on one registry session. `ndsr agent`
//! runs it ([`Launch`]); `ndsr register` uses its [`check`] and [`hold`].
//!
//! Layers (docs/DESIGN.md, "Agent layers"): the domain (`config`, `state`,
//! `registrations`, `templates`, `metrics`, [`check`], [`hold`], [`views`],
//! `error`) knows nothing of HTTP; `http` (the API, the event streams, the
//! dashboard, the server) depends on it, never the other way.

pub mod check;
mod config;
mod dns;
pub mod drain;
mod durations;
mod error;
mod exec;
mod external;
pub mod hold;
mod http;
mod metrics;
pub mod mirror;
mod notify;
mod once;
mod ready;
mod registration;
mod registrations;
mod reload;
mod state;
mod template_status;
mod templates;
pub mod views;
mod write;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use self::config::Config;
use self::external::Recorders;
use self::registration::{Source, Spec};
use self::state::Agent;

/// How long shutdown waits for open requests and tasks.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What starts the agent: its file and the command line's overrides.
#[derive(Clone, Debug)]
pub struct Options {
    /// The configuration file (TOML; `docs/agent.example.toml`).
    pub config: PathBuf,
    /// Listen here instead of the file's `[http] listen`.
    pub listen: Option<SocketAddr>,
    /// Serve DNS here instead of the file's `[dns] listen` (without a
    /// `[dns]`, DNS with its defaults).
    pub dns_listen: Option<SocketAddr>,
    /// Read-only whatever the file says.
    pub readonly: bool,
    /// ZooKeeper servers given on the command line: they win over the
    /// file's.
    pub servers: Option<String>,
    /// Where `servers` came from (`--server` or `NDSR_SERVER`), for the
    /// start line.
    pub servers_given: ServersGiven,
    /// ZooKeeper servers when neither the command line nor the file gives
    /// them.
    pub default_servers: String,
    /// A session timeout given on the command line: it wins over the
    /// file's.
    pub session_timeout: Option<Duration>,
    /// The session timeout when neither gives one.
    pub default_session_timeout: Duration,
}

/// Where the command line's ZooKeeper servers ([`Options::servers`]) came
/// from: the start line names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServersGiven {
    /// The `--server` flag.
    #[default]
    Flag,
    /// The `NDSR_SERVER` environment variable.
    Env,
}

/// Why the agent did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// It cannot listen on the address.
    #[error("cannot listen on {address}: {error}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The metrics recorder could not be installed.
    #[error("{0}")]
    Metrics(String),
    /// The registry could not be built.
    #[error(transparent)]
    Registry(#[from] ndsr::Error),
    /// Signals or the standard output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// `--once`: templates failed or were not rendered (each with why).
    #[error("templates not rendered: {0}")]
    Templates(String),
}

/// A loaded, checked configuration, ready to run.
pub struct Launch {
    options: Options,
    config: Config,
}

impl Launch {
    /// Reads and checks the configuration file, with the overrides of
    /// `options`.
    ///
    /// # Errors
    /// What is wrong with the file, naming the key.
    pub fn load(options: Options) -> Result<Launch, String> {
        let config = load(&options)?;
        Ok(Launch { options, config })
    }

    /// The ZooKeeper servers: the command line's, else the file's, else
    /// the default.
    pub fn servers(&self) -> &str {
        match (&self.options.servers, &self.config.servers) {
            (Some(given), _) => given,
            (None, Some(file)) => file,
            (None, None) => &self.options.default_servers,
        }
    }

    /// Where [`Launch::servers`] came from, in words: `--server`,
    /// `NDSR_SERVER` (each saying when it overrides the file's), the
    /// file's `[zookeeper] servers`, or the default.
    pub fn servers_origin(&self) -> String {
        let file = self.options.config.display();
        let over = |given: &str| match &self.config.servers {
            Some(theirs) if theirs != given => format!(", over {theirs} in {file}"),
            _ => String::new(),
        };
        match (&self.options.servers, &self.config.servers) {
            (Some(given), _) => {
                let name = match self.options.servers_given {
                    ServersGiven::Flag => "--server",
                    ServersGiven::Env => "NDSR_SERVER",
                };
                format!("{name}{}", over(given))
            }
            (None, Some(_)) => format!("[zookeeper] servers in {file}"),
            (None, None) => "the default: no --server, NDSR_SERVER or [zookeeper] servers".into(),
        }
    }

    /// The session timeout: the command line's, else the file's, else the
    /// default.
    pub fn session_timeout(&self) -> Duration {
        self.options
            .session_timeout
            .or(self.config.session_timeout)
            .unwrap_or(self.options.default_session_timeout)
    }

    /// Runs the agent on a registry made by `builder` (the servers, session
    /// timeout and credentials set; the agent makes it lazy, and read-only
    /// as configured) until SIGTERM or SIGINT; SIGHUP reloads the file.
    /// Shutdown closes the session, which removes every registration.
    ///
    /// # Errors
    /// [`RunError`]: it could not start.
    pub async fn run(self, builder: ndsr::RegistryBuilder) -> Result<(), RunError> {
        metrics::install().map_err(RunError::Metrics)?;
        reload::register_metrics();
        let servers = format!("{} from {}", self.servers(), self.servers_origin());
        let Launch { options, config } = self;
        let mut builder = builder
            .readonly(config.http.readonly)
            // The agent starts (and serves its dashboard) with ZooKeeper down.
            .lazy(true);
        if let Some(identity) = &config.config.identity {
            builder = builder.identity(identity.clone());
        }
        for (name, value) in &config.config.labels {
            builder = builder.label(name.clone(), value.clone());
        }
        let registry = builder.build().await?;
        let listen = config.http.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|error| RunError::Listen { address: listen, error })?;
        let address = listener.local_addr()?;
        // DNS's sockets too, before anything is registered: a port taken fails the start.
        let dns = dns::bind(config.dns.as_ref()).await?;
        let agent = Agent::new(registry, config);
        let recorders = Recorders::default();
        apply(&agent).await;
        recorders.reconcile(&agent).await;
        let (settled, first_renders) = tokio::sync::watch::channel(false);
        let (written, writes) = tokio::sync::watch::channel(0);
        let child = exec::start(&agent, first_renders.clone(), writes);
        agent.tasks.spawn(templates::run(agent.clone(), settled, written));
        mirror::agent::start(&agent);
        let server = tokio::spawn(http::server::serve(listener, http::router(agent.clone()), agent.clone()));
        let dns = dns.map(|bound| {
            let address = bound.address();
            dns::serve(&agent, bound);
            address
        });
        // The handlers first: a signal sent as soon as the line below is read
        // must find them (SIGHUP's default would end the process).
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut hangup = signal(SignalKind::hangup())?;
        line(&format!("ndsr agent listening on http://{address}/ (ZooKeeper {servers})"))?;
        if let Some(dns) = dns {
            line(&format!("ndsr agent DNS on {dns} (UDP and TCP)"))?;
        }
        let systemd = ready::announce(&agent, first_renders);
        loop {
            tokio::select! {
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = hangup.recv() => reload::reload(&agent, &options, &recorders).await,
            }
        }
        if let Some(systemd) = &systemd {
            systemd.send("STOPPING=1\nSTATUS=stopping: removing registrations");
        }
        if let Some(period) = agent.config().drain {
            let shown = humantime::format_duration(period);
            let _ = line(&format!(
                "ndsr agent draining registrations for {shown} (a second signal cuts it short)"
            ));
            let second = async {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            };
            agent.registrations.drain(&agent, period, second).await;
        }

        // Shutdown: streams and tasks end, then the session closes, which
        // removes every registration at once.
        agent.cancel.cancel();
        agent.registry.close().await;
        // A closed stdout must not skip the waits below.
        let _ = line("ndsr agent stopped; registrations removed");
        if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
            tracing::warn!("open requests did not finish within {SHUTDOWN_GRACE:?}");
        }
        agent.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, agent.tasks.wait()).await.is_err() {
            tracing::warn!("agent tasks did not finish within {SHUTDOWN_GRACE:?}");
        }
        // `[exec]`'s child has its own kill_timeout.
        if let Some(child) = child {
            let _ = child.await;
        }
        Ok(())
    }
}

/// Writes a line to stdout; a closed pipe ends the process quietly (as
/// every ndsr command).
fn line(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other,
    }
}

/// Loads the file and applies the flags that override it.
fn load(options: &Options) -> Result<Config, String> {
    let mut config = Config::load(&options.config)?;
    if let Some(listen) = options.listen {
        config.http.listen = listen;
    }
    if let Some(listen) = options.dns_listen {
        match config.dns.as_mut() {
            Some(dns) => dns.listen = listen,
            None => config.dns = Some(config::Dns::with_defaults(listen)),
        }
    }
    config.http.readonly |= options.readonly;
    Ok(config)
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
