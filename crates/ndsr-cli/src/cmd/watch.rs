//! `ndsr watch`: the snapshot now, then one line per change.

use std::process::ExitCode;

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

pub async fn run(global: &Global, args: WatchArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    // Not lazy: a wrong server is an error at once. After that, outages are
    // reported and ridden out.
    let registry = connect(global, false).await?;
    let mut states = registry.state_changes();
    let mut changes = registry.subscribe(&args.path)?;
    let stop = interrupted();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            snapshot = changes.next() => match snapshot {
                Some(snapshot) => output::line(&render(&snapshot, args.format))?,
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
