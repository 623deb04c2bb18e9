//! `ndsr mirror`: a one-way copy of a subtree on another ensemble (the
//! engine is `ndsr_agent::mirror`).

use std::process::ExitCode;
use std::time::Duration;

use ndsr::Registry;
use ndsr_agent::mirror::{Endpoint, Mirror, Options, Pass, Status};

use crate::args::{Global, MirrorArgs};
use crate::cmd::{check_path, interrupted, secure};
use crate::error::{CliError, CliResult, Exit};
use crate::output;

/// A registry on one side: the global timeouts and credentials; lazy when
/// the mirror keeps running (a side that is down at the start is waited for).
async fn side(global: &Global, end: &Endpoint, lazy: bool, src: bool) -> CliResult<Registry> {
    let builder = Registry::builder(&end.servers)
        .session_timeout(global.session_timeout)
        .connect_timeout(global.timeout)
        .operation_timeout(global.timeout)
        .readonly(src)
        .create_chroot(!src && global.create_chroot)
        .lazy(lazy);
    Ok(secure(global, builder)?.build().await?)
}

/// The line of a pass: what it did, and how far behind DST is (or how
/// long it was behind, once equal).
fn line(pass: &Pass, status: &Status) -> String {
    let time = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    let show = |d: Duration| humantime::format_duration(Duration::from_millis(d.as_millis() as u64));
    match (status.behind_since, status.caught_up) {
        (None, Some(took)) => format!("{time} {pass}; caught up in {}", show(took)),
        (None, None) => format!("{time} {pass}; equal"),
        (Some(_), _) => format!("{time} {pass}; lag {}, {} behind", show(status.lag()), status.nodes_behind),
    }
}

pub async fn run(global: &Global, args: MirrorArgs) -> CliResult<ExitCode> {
    let parse = |text: &str, which: &str| {
        text.parse::<Endpoint>().map_err(|e| CliError::new(Exit::InvalidInput, format!("{which}: {e}")))
    };
    let (src_end, dst_end) = (parse(&args.src, "SRC")?, parse(&args.dst, "DST")?);
    check_path(&args.config_root)
        .map_err(|e| CliError::new(Exit::InvalidInput, format!("--config-root: {}", e.message)))?;
    if args.interval.is_zero() {
        return Err(CliError::new(Exit::InvalidInput, "--interval must be more than zero"));
    }
    if global.readonly {
        return Err(CliError::new(
            Exit::ReadOnly,
            "mirror writes to DST, and --readonly refuses every write",
        ));
    }
    let src = side(global, &src_end, !args.once, true).await?;
    let dst = match side(global, &dst_end, !args.once, false).await {
        Ok(dst) => dst,
        Err(e) => {
            src.close().await;
            return Err(e);
        }
    };
    let options =
        Options { registrations: args.registrations, interval: args.interval, config_root: args.config_root };
    let mut mirror = Mirror::new(src.clone(), &src_end.path, dst.clone(), &dst_end.path, options);
    let result = if args.once {
        once(&mut mirror, &src_end).await
    } else {
        let quiet = global.quiet;
        let mut failing = false;
        let mut printed = Ok(());
        mirror
            .run(interrupted(), |pass, status| match pass {
                Ok(pass) => {
                    if std::mem::take(&mut failing) && !quiet {
                        eprintln!("ndsr: mirror passes succeed again");
                    }
                    if pass.changes() > 0 || pass.failed > 0 || pass.source_missing {
                        if let Err(e) = output::line(&line(pass, status)) {
                            printed = Err(e);
                        }
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    if !quiet {
                        eprintln!("ndsr: mirror pass failed ({e}); retrying with back-off");
                    }
                }
                Err(_) => {}
            })
            .await;
        printed.map(|()| ExitCode::SUCCESS)
    };
    src.close().await;
    dst.close().await;
    result
}

/// `--once`: one pass, then whether DST equals SRC.
async fn once(mirror: &mut Mirror, src: &Endpoint) -> CliResult<ExitCode> {
    let pass = mirror.pass().await?;
    let status = mirror.status().borrow().clone();
    if pass.source_missing {
        return Err(CliError::new(
            Exit::NoNode,
            format!("{src}: the source path does not exist; nothing written"),
        ));
    }
    output::line(&line(&pass, &status))?;
    if pass.failed > 0 {
        let what = if pass.failed == 1 { "write was" } else { "writes were" };
        return Err(CliError::new(
            Exit::Failure,
            format!("{} {what} refused by the destination (see the warnings above)", pass.failed),
        ));
    }
    Ok(ExitCode::SUCCESS)
}
