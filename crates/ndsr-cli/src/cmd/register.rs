//! `ndsr register`: a sidecar that holds a registration while healthy.

use std::process::ExitCode;

use crate::args::{Global, RegisterArgs};
use crate::check::{Check, Health};
use crate::cmd::{check_path, connect, interrupted, read_data};
use crate::error::{CliError, CliResult, Exit};
use crate::output;

/// The shortest time between health checks.
const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

pub async fn run(global: &Global, args: RegisterArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    let data = read_data(&args.data)?;
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
    let mut registered = false;
    match check {
        None => {
            registry.set_node(&args.path, data).await?;
            registered = true;
            output::line(&format!("registered {}", args.path))?;
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
                    Some(true) => match registry.set_node(&args.path, data.clone()).await {
                        Ok(()) => {
                            registered = true;
                            output::line(&format!("registered {}", args.path))?;
                        }
                        // Kept as desired by the registry: it appears once
                        // ZooKeeper answers again.
                        Err(e) => eprintln!("ndsr: registering {}: {e}", args.path),
                    },
                    Some(false) => {
                        let why = result.err().unwrap_or_default();
                        match registry.unset(&args.path).await {
                            Ok(()) => {
                                registered = false;
                                output::line(&format!("withdrawn {} ({why})", args.path))?;
                            }
                            Err(e) => eprintln!("ndsr: withdrawing {}: {e}", args.path),
                        }
                    }
                    None => {}
                }
            }
        }
    }
    // Remove the node now, not after the session timeout.
    if registered {
        if let Err(e) = registry.unset(&args.path).await {
            eprintln!("ndsr: removing {}: {e} (it goes with the session)", args.path);
        }
    }
    registry.close().await;
    Ok(ExitCode::SUCCESS)
}
