//! `ndsr watch`: the snapshot now, then one line per change.

use std::process::ExitCode;

use ndsr::discovery::{Instance, InstanceChange};
use ndsr::{Snapshot, State};
use serde::Serialize;

use crate::args::{Global, WatchArgs, WatchFormat};
use crate::cmd::{check_path, connect, interrupted};
use crate::error::CliResult;
use crate::output;

#[derive(Serialize)]
struct Change<'a> {
    time: String,
    path: &'a str,
    exists: bool,
    data: &'a Option<ndsr::Object>,
    children: &'a [String],
}

fn render(s: &Snapshot, format: WatchFormat) -> String {
    let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    match format {
        WatchFormat::Json => output::json_line(&Change {
            time,
            path: &s.path,
            exists: s.exists(),
            data: &s.data,
            children: &s.children,
        }),
        WatchFormat::Text if !s.exists() => format!("{time} {} (no node)", s.path),
        WatchFormat::Text => {
            let data = s.data.as_ref().map_or("null".to_string(), output::json_line);
            format!("{time} {} children={} data={data}", s.path, output::json_line(&s.children))
        }
    }
}

#[derive(Serialize)]
struct InstancesChange<'a> {
    time: String,
    path: &'a str,
    format: Option<String>,
    stale: bool,
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<String>,
    bad: Vec<String>,
    instances: Vec<String>,
}

fn render_instances(change: &InstanceChange, format: WatchFormat) -> String {
    let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let list = &change.instances;
    match format {
        WatchFormat::Json => output::json_line(&InstancesChange {
            time,
            path: &list.path,
            format: list.format.map(|f| f.to_string()),
            stale: list.stale,
            added: change.added.iter().map(|i| i.key.clone()).collect(),
            removed: change.removed.iter().map(|i| i.key.clone()).collect(),
            changed: change.changed.iter().map(|(_, i)| i.key.clone()).collect(),
            bad: list.bad.iter().map(|b| b.key.clone()).collect(),
            instances: list.instances.iter().map(|i| i.address()).collect(),
        }),
        WatchFormat::Text => {
            let format = list.format.map_or("no format yet".to_string(), |f| f.to_string());
            let mut lines = vec![format!(
                "{time} {} ({format}): {} instances, {} serving",
                list.path,
                list.instances.len(),
                list.serving().count()
            )];
            let drained = |i: &Instance| if i.serving { "" } else { " (not serving)" };
            lines.extend(change.added.iter().map(|i| format!("  + {} {}{}", i.key, i.address(), drained(i))));
            lines.extend(change.removed.iter().map(|i| format!("  - {} {}", i.key, i.address())));
            lines.extend(
                change.changed.iter().map(|(_, i)| format!("  ~ {} {}{}", i.key, i.address(), drained(i))),
            );
            lines.extend(list.bad.iter().map(|b| format!("  ! {} {}", b.key, b.reason)));
            lines.join("\n")
        }
    }
}

/// What `watch` follows.
enum Followed {
    Node(ndsr::Subscription),
    Instances(ndsr::discovery::InstanceWatch),
}

impl Followed {
    /// The next change, rendered; `None` when it ends.
    async fn next(&mut self, format: WatchFormat) -> Option<String> {
        match self {
            Followed::Node(changes) => changes.next().await.map(|s| render(&s, format)),
            Followed::Instances(changes) => changes.next().await.map(|c| render_instances(&c, format)),
        }
    }
}

pub async fn run(global: &Global, args: WatchArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    // Not lazy: a wrong server is an error at once. After that, outages are
    // reported and ridden out.
    let registry = connect(global, false).await?;
    let mut states = registry.state_changes();
    let mut changes = if args.instances {
        Followed::Instances(registry.watch_instances(&args.path, args.as_format.map(Into::into))?)
    } else {
        Followed::Node(registry.subscribe(&args.path)?)
    };
    let stop = interrupted();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            line = changes.next(args.format) => match line {
                Some(line) => output::line(&line)?,
                None => break,
            },
            changed = states.changed() => {
                if changed.is_err() {
                    break;
                }
                let state = *states.borrow_and_update();
                if !global.quiet {
                    match state {
                        State::Connected => eprintln!("ndsr: connected; {} is live", args.path),
                        State::Disconnected => eprintln!("ndsr: disconnected; showing the last known state while reconnecting"),
                        State::Expired => eprintln!("ndsr: session expired; building a new one (last known state kept)"),
                        _ => {}
                    }
                }
            }
        }
    }
    registry.close().await;
    Ok(ExitCode::SUCCESS)
}
