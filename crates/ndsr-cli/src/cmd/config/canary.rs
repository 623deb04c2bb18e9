//! `ndsr config canary|promote|abort|status`: canary releases.

use std::collections::BTreeMap;

use ndsr::release::{Applied, Canary, CanaryRule, CanaryStatus, ClientReport, PublishOptions};

use super::*;
use crate::args::{CanaryArgs, CanaryPathArgs, PromoteArgs};

/// The rule of `--hosts`, `--labels` or `--percent`.
fn rule(args: &CanaryArgs) -> CliResult<CanaryRule> {
    if let Some(share) = args.percent {
        if !share.is_finite() || !(0.0..=100.0).contains(&share) {
            return Err(CliError::new(Exit::InvalidInput, format!("--percent {share}: give 0 to 100")));
        }
        return Ok(CanaryRule::Percent(share));
    }
    if !args.labels.is_empty() {
        let mut labels = BTreeMap::new();
        for pair in &args.labels {
            match pair.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    labels.insert(k.to_string(), v.to_string());
                }
                _ => {
                    return Err(CliError::new(
                        Exit::InvalidInput,
                        format!("--labels {pair:?}: give NAME=VALUE pairs, separated by commas"),
                    ))
                }
            }
        }
        return Ok(CanaryRule::Labels(labels));
    }
    Ok(CanaryRule::Hosts(args.hosts.clone()))
}

fn canary_line(canary: &Canary) -> String {
    let mut line = format!(
        "canary of {} to {} over version {} (revision {}, sha256 {}), by {}@{} at {}",
        canary.path,
        canary.rule,
        canary.base_version,
        canary.revision,
        canary.sha256.get(..12).unwrap_or(&canary.sha256),
        canary.author,
        canary.host,
        canary.time
    );
    if !canary.message.is_empty() {
        line.push_str(&format!(": {}", canary.message));
    }
    line
}

/// `config canary`.
pub(super) async fn start(registry: &Registry, args: CanaryArgs, value: &[u8]) -> CliResult<ExitCode> {
    let rule = rule(&args)?;
    let canary = registry.start_canary(&args.path, value, rule, options(&args.release)).await?;
    if args.output.is_json() {
        output::line(&output::json_pretty(&canary.view()))?;
    } else {
        output::line(&format!("started: {}", canary_line(&canary)))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `config promote`.
pub(super) async fn promote(registry: &Registry, args: PromoteArgs) -> CliResult<ExitCode> {
    let options = PublishOptions::message(args.message.clone());
    match registry.promote_canary(&args.path, options).await {
        Ok(release) => {
            if args.output.is_json() {
                print_release(&release, None, &args.output)?;
            } else {
                output::line(&format!(
                    "canary of {} promoted: version {}, entry {}, sha256 {}",
                    release.path, release.version, release.entry, release.sha256
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ndsr::Error::VersionConflict { path, expected, current }) => Err(CliError::new(
            Exit::VersionConflict,
            format!(
                "{path} is at version {}, not {expected} as when the canary began: nothing was written \
                 (see what changed with `ndsr config history {path}`, then start the canary again)",
                current.map_or("none".to_string(), |v| v.to_string())
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `config abort`.
pub(super) async fn abort(registry: &Registry, args: CanaryPathArgs) -> CliResult<ExitCode> {
    let removed = registry.abort_canary(&args.path).await?;
    if args.output.is_json() {
        output::line(&output::json_pretty(&json!({"path": args.path, "aborted": removed})))?;
    } else if removed {
        output::line(&format!("canary of {} aborted: its clients go back to the live value", args.path))?;
    } else {
        output::line(&format!("{} has no canary", args.path))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn applied_text(applied: &Applied, status: &CanaryStatus) -> String {
    match applied {
        Applied::Stable { version } if Some(*version) == status.stable_version => {
            format!("stable v{version}")
        }
        Applied::Stable { version } => format!("v{version} (an older value)"),
        Applied::Canary { sha256, .. } => match &status.canary {
            Some(c) if c.sha256 == *sha256 => "canary".to_string(),
            _ => format!("an older canary ({})", sha256.get(..12).unwrap_or(sha256)),
        },
        Applied::Other => "a default or saved value".to_string(),
    }
}

fn client_line(client: &ClientReport, status: &CanaryStatus) -> String {
    let labels: Vec<String> = client.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut line = format!("  {}", client.identity);
    if !labels.is_empty() {
        line.push_str(&format!(" [{}]", labels.join(",")));
    }
    line.push_str(&format!(
        " pid {} on {}: {}",
        client.pid,
        client.host,
        applied_text(&client.applied, status)
    ));
    if let Some(refused) = &client.refused {
        let what = if refused.canary { "the canary" } else { "the live value" };
        line.push_str(&format!("; refused {what}: {}", refused.reasons.join("; ")));
    }
    line
}

/// `config status`.
pub(super) async fn status(registry: &Registry, args: CanaryPathArgs) -> CliResult<ExitCode> {
    let status = registry.canary_status(&args.path).await?;
    if args.output.is_json() {
        let view = status.view();
        output::line(&output::json_pretty(&view))?;
        return Ok(ExitCode::SUCCESS);
    }
    let live = status.stable_version.map_or("no live node".to_string(), |v| format!("live version {v}"));
    match &status.canary {
        Some(canary) => output::line(&canary_line(canary))?,
        None => output::line(&format!("{} has no canary", status.path))?,
    }
    let mut counts = format!(
        "{live}; {}: {} on the stable value",
        count(status.clients.len(), "client"),
        status.on_stable()
    );
    if status.canary.is_some() {
        counts.push_str(&format!(
            ", {} on the canary, {} refused it",
            status.on_canary(),
            status.refused_canary().len()
        ));
    }
    output::line(&counts)?;
    for client in &status.clients {
        output::line(&client_line(client, &status))?;
    }
    Ok(ExitCode::SUCCESS)
}
