//! `ndsr lock PATH -- CMD`: run a command while holding a lock.

use std::process::ExitCode;

use crate::args::{Global, LockArgs};
use crate::cmd::child::{exit_code_of, kill_group, leftovers, pass_stop_on, stop_before, Group, REAP};
use crate::cmd::leash;
use crate::cmd::{check_path, connect, Signals};
use crate::error::{CliError, CliResult, Exit};

pub async fn run(global: &Global, args: LockArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    let registry = connect(global, false).await?;
    let name = args.name.clone().unwrap_or_else(|| format!("ndsr-{}", std::process::id()));
    let guard = registry
        .lock(&args.path)
        .name(name)
        .simultaneous(args.simultaneous)
        .layout(args.layout.into())
        .mode(args.mode.into())
        .wait(args.wait)
        .lost_after(args.lost_after)
        .acquire()
        .await?;
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    // Signals are caught before the command starts: one sent in between
    // would otherwise end ndsr and leave the command running unguarded.
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(e) => {
            let _ = guard.release().await;
            registry.close().await;
            return Err(e);
        }
    };
    // The command runs in a process group of its own, so that losing the
    // lock stops everything it started, not just its first process.
    let spawned = leash::command(program, rest).and_then(|mut command| command.spawn());
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let _ = guard.release().await;
            registry.close().await;
            return Err(CliError::new(Exit::Failure, format!("cannot run {program}: {e}")));
        }
    };
    let group = Group::of(&child);
    let outcome = tokio::select! {
        status = child.wait() => Ok(status?),
        () = guard.lost() => Err(Exit::LockLost),
        _ = signals.next() => Err(Exit::Failure),
    };
    let code = match outcome {
        Ok(status) => {
            leftovers(group, REAP).await;
            let _ = guard.release().await;
            exit_code_of(status)
        }
        Err(Exit::LockLost) => {
            let why = guard.lost_reason().unwrap_or(ndsr::LockLost::SessionEnded);
            let how = match why {
                // The server may still hold the session: the command gets
                // SIGTERM and what is left of --grace before the server can
                // expire the session, then SIGKILL.
                ndsr::LockLost::Silent(_) => {
                    stop_before(&mut child, group, guard.session_deadline(), args.grace).await
                }
                // Another process may hold it already.
                _ => {
                    kill_group(&mut child, group).await?;
                    "killed"
                }
            };
            // The guard holds a client of the dead session: drop it first,
            // or close() would wait for that session to close.
            drop(guard);
            registry.close().await;
            return Err(CliError::new(
                Exit::LockLost,
                format!("lock {} lost ({why}); {how} {program}", args.path),
            ));
        }
        Err(_) => {
            // Interrupted: pass it on and wait for the command, but not
            // for ever: a command that ignores SIGTERM must not keep
            // running without the lock after we are gone. After the grace
            // period, or a second signal, the whole group is killed.
            let status =
                pass_stop_on(&mut child, group, program, args.grace, &mut signals, guard.lost()).await?;
            let _ = guard.release().await;
            exit_code_of(status)
        }
    };
    registry.close().await;
    Ok(code)
}
