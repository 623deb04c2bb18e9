//! `ndsr register`: a sidecar that holds a registration while healthy.

use std::process::ExitCode;

use crate::args::{Global, RegisterArgs};
use crate::cmd::{check_path, connect, read_data, Signals};
use crate::error::{CliError, CliResult, Exit};
use crate::output;
use ndsr_agent::check::{check_interval, Check};
use ndsr_agent::drain::{begin, wait, Begun};
use ndsr_agent::hold::{hold, Checked, Event, Release, Target};

pub async fn run(global: &Global, args: RegisterArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    let target = match args.as_format {
        Some(format) => Target::Announce(crate::cmd::discovery::announcement(&args, format)?),
        None => Target::Node { path: args.path.clone(), data: read_data(&args.data)? },
    };
    let invalid = |why: String| CliError::new(Exit::InvalidInput, why);
    let check = match (&args.check_tcp, &args.check_http, &args.check_cmd) {
        (Some(tcp), _, _) => Some(Check::tcp(tcp).map_err(invalid)?),
        (_, Some(url), _) => Some(Check::http(url).map_err(invalid)?),
        (_, _, Some(cmd)) => Some(Check::Cmd(cmd.clone())),
        _ => None,
    };
    if check.is_some() {
        check_interval("--interval", args.interval).map_err(invalid)?;
    }
    let checked =
        check.map(|check| Checked { check, interval: args.interval, rise: args.rise, fall: args.fall });
    // Installed before connecting: a signal sent meanwhile is seen.
    let mut signals = Signals::new()?;
    let registry = connect(global, false).await?;
    let path = &args.path;
    let stop = async {
        signals.next().await;
        // Draining: kept, to be marked, waited for, then removed.
        if args.drain.is_some() {
            Release::Keep
        } else {
            Release::Withdraw
        }
    };
    // A failure asked again at each check is said once, until it changes.
    let mut last_failure = None;
    let result = hold(&registry, &target, checked.as_ref(), false, stop, |event| {
        match event {
            Event::Registered(path) => {
                last_failure = None;
                output::line(&format!("registered {path}"))?
            }
            // Without a check, a registration that fails is the command's error.
            Event::RegisterFailed(_, e) if checked.is_none() => return Err(CliError::from(e)),
            Event::RegisterFailed(path, e) => {
                let message = format!("ndsr: registering {path}: {e}");
                if last_failure.as_ref() != Some(&message) {
                    eprintln!("{message}");
                    last_failure = Some(message);
                }
            }
            Event::Failing(why) => tracing::warn!(%path, "health check failing: {why}"),
            Event::Passing => tracing::warn!(%path, "health check passing again"),
            Event::Withdrawn(path, why) => output::line(&format!("withdrawn {path} ({why})"))?,
            Event::WithdrawFailed(path, e) => {
                eprintln!("ndsr: removing {path}: {e} (it goes with the session)")
            }
        }
        Ok(())
    })
    .await;
    let result = match (result, args.drain) {
        (Ok(Some(node)), Some(period)) => drain_then_remove(&registry, &target, &node, period, signals).await,
        (result, _) => result.map(|_| ()),
    };
    registry.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

/// Drains `node` (held for `target`) for `period`, or until the next stop
/// signal, then removes it.
async fn drain_then_remove(
    registry: &ndsr::Registry,
    target: &Target,
    node: &str,
    period: std::time::Duration,
    mut signals: Signals,
) -> CliResult<()> {
    let shown = humantime::format_duration(period);
    match begin(registry, target, node).await {
        Begun::Marked => output::line(&format!(
            "draining {node} (not serving; removed in {shown}, or on a second signal)"
        ))?,
        Begun::Withdrawn(why) => eprintln!("ndsr: draining {node}: {why}: removed at once"),
        Begun::MarkFailed(why) => eprintln!("ndsr: marking {node} not serving: {why}"),
    }
    wait(period, async {
        signals.next().await;
    })
    .await;
    match registry.unset(node).await {
        Ok(()) => output::line(&format!("withdrawn {node} (drained)"))?,
        Err(e) => eprintln!("ndsr: removing {node}: {e} (it goes with the session)"),
    }
    Ok(())
}
