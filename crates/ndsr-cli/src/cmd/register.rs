//! `ndsr register`: a sidecar that holds a registration while healthy.

use std::process::ExitCode;

use crate::args::{Global, RegisterArgs};
use crate::check::{Check, Health};
use crate::cmd::discovery::Announcement;
use crate::cmd::{check_path, connect, interrupted, read_data};
use crate::error::{CliError, CliResult, Exit};
use crate::output;

/// The shortest time between health checks.
const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// What the command holds: a node of ndsr's own format, or an instance in
/// another system's format.
enum Target {
    Node { path: String, data: ndsr::Data },
    Announce(Announcement),
}

impl Target {
    /// Registers it; returns the node's path.
    async fn register(&self, registry: &ndsr::Registry) -> ndsr::Result<String> {
        match self {
            Target::Node { path, data } => registry.set_node(path, data.clone()).await.map(|()| path.clone()),
            Target::Announce(announcement) => announcement.register(registry).await,
        }
    }

    /// The node's path before it is registered, when its name is fixed.
    fn known_path(&self) -> Option<String> {
        match self {
            Target::Node { path, .. } => Some(path.clone()),
            Target::Announce(announcement) => announcement.known_path(),
        }
    }

    /// Removes the node at `path` now. A sequential node gets a new name
    /// next time, so its path is forgotten too.
    async fn withdraw(&self, registry: &ndsr::Registry, path: &str) -> ndsr::Result<()> {
        registry.unset(path).await?;
        if matches!(self, Target::Announce(a) if a.sequential()) {
            registry.unwatch(path)?;
        }
        Ok(())
    }
}

pub async fn run(global: &Global, args: RegisterArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    let target = match args.as_format {
        Some(format) => Target::Announce(Announcement::from_args(&args, format)?),
        None => Target::Node { path: args.path.clone(), data: read_data(&args.data)? },
    };
    let invalid = |why: String| CliError::new(Exit::InvalidInput, why);
    let check = match (&args.check_tcp, &args.check_http, &args.check_cmd) {
        (Some(tcp), _, _) => Some(Check::tcp(tcp).map_err(invalid)?),
        (_, Some(url), _) => Some(Check::http(url).map_err(invalid)?),
        (_, _, Some(cmd)) => Some(Check::Cmd(cmd.clone())),
        _ => None,
    };
    if check.is_some() && args.interval < MIN_INTERVAL {
        return Err(CliError::new(
            Exit::InvalidInput,
            format!(
                "--interval {} is too short: checks need at least {}",
                humantime::format_duration(args.interval),
                humantime::format_duration(MIN_INTERVAL)
            ),
        ));
    }
    let registry = connect(global, false).await?;
    let stop = interrupted();
    tokio::pin!(stop);
    // The node held now, if any.
    let mut registered: Option<String> = None;
    match check {
        None => {
            let path = target.register(&registry).await?;
            output::line(&format!("registered {path}"))?;
            registered = Some(path);
            stop.await;
        }
        Some(check) => {
            let mut health = Health::new(args.rise, args.fall);
            // Whether the last check passed: a change is worth a WARN.
            let mut passing: Option<bool> = None;
            let mut ticks = tokio::time::interval(args.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    _ = ticks.tick() => {}
                }
                let result = check.run(args.interval).await;
                match (&result, passing) {
                    (Err(why), Some(true) | None) => {
                        tracing::warn!(path = %args.path, "health check failing: {why}")
                    }
                    (Ok(()), Some(false)) => tracing::warn!(path = %args.path, "health check passing again"),
                    (Err(why), Some(false)) => {
                        tracing::info!(path = %args.path, "health check failed: {why}")
                    }
                    (Ok(()), _) => {}
                }
                passing = Some(result.is_ok());
                match health.observe(result.is_ok()) {
                    Some(true) if registered.is_none() => match target.register(&registry).await {
                        Ok(path) => {
                            output::line(&format!("registered {path}"))?;
                            registered = Some(path);
                        }
                        // Kept as desired by the registry: it appears once
                        // ZooKeeper answers again (and goes on the next fall).
                        Err(e) => {
                            eprintln!("ndsr: registering {}: {e}", args.path);
                            registered = target.known_path();
                        }
                    },
                    Some(false) => {
                        let why = result.err().unwrap_or_default();
                        if let Some(path) = registered.take() {
                            match target.withdraw(&registry, &path).await {
                                Ok(()) => output::line(&format!("withdrawn {path} ({why})"))?,
                                Err(e) => {
                                    eprintln!("ndsr: withdrawing {path}: {e}");
                                    registered = Some(path);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    // Remove the node now, not after the session timeout.
    if let Some(path) = registered {
        if let Err(e) = target.withdraw(&registry, &path).await {
            eprintln!("ndsr: removing {path}: {e} (it goes with the session)");
        }
    }
    registry.close().await;
    Ok(ExitCode::SUCCESS)
}
