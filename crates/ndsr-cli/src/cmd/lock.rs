//! `ndsr lock PATH -- CMD`: run a command while holding a lock.

use std::process::ExitCode;

use crate::args::{Global, LockArgs};
use crate::cmd::{check_path, connect, Signals};
use crate::error::{CliError, CliResult, Exit};

fn exit_code_of(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code.clamp(0, 255) as u8),
        (None, Some(signal)) => ExitCode::from((128 + signal).clamp(0, 255) as u8),
        _ => ExitCode::FAILURE,
    }
}

/// Sends `signal` to the command's process group.
fn signal_group(child: &tokio::process::Child, signal: nix::sys::signal::Signal) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// SIGKILLs the command's whole process group and reaps the command.
async fn kill_group(child: &mut tokio::process::Child) -> std::io::Result<std::process::ExitStatus> {
    signal_group(child, nix::sys::signal::Signal::SIGKILL);
    child.wait().await
}

/// When a command whose lock was lost for silence must be killed: after
/// `grace`, but never later than a little before `deadline`, when the
/// server may expire the session and another process take the lock.
fn stop_by(deadline: std::time::Instant, grace: std::time::Duration) -> tokio::time::Instant {
    let deadline = tokio::time::Instant::from_std(deadline);
    let now = tokio::time::Instant::now();
    // A margin for the signal to take effect and the process to go.
    let margin = deadline.saturating_duration_since(now).min(std::time::Duration::from_secs(2)) / 4;
    (now + grace).min(deadline - margin).max(now)
}

pub async fn run(global: &Global, args: LockArgs) -> CliResult<ExitCode> {
    check_path(&args.path)?;
    let registry = connect(global, false).await?;
    let name = args.name.clone().unwrap_or_else(|| format!("ndsr-{}", std::process::id()));
    let guard = registry
        .lock(&args.path)
        .name(name)
        .simultaneous(args.simultaneous)
        .wait(args.wait)
        .lost_after(args.lost_after)
        .acquire()
        .await?;
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    // The command runs in a process group of its own, so that losing the
    // lock stops everything it started, not just its first process.
    let spawned =
        tokio::process::Command::new(program).args(rest).process_group(0).kill_on_drop(true).spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let _ = guard.release().await;
            registry.close().await;
            return Err(CliError::new(Exit::Failure, format!("cannot run {program}: {e}")));
        }
    };
    let mut signals = Signals::new()?;
    let outcome = tokio::select! {
        status = child.wait() => Ok(status?),
        () = guard.lost() => Err(Exit::LockLost),
        _ = signals.next() => Err(Exit::Failure),
    };
    let code = match outcome {
        Ok(status) => {
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
                    let by = stop_by(guard.session_deadline(), args.grace);
                    signal_group(&child, nix::sys::signal::Signal::SIGTERM);
                    tokio::select! {
                        _ = child.wait() => "stopped",
                        () = tokio::time::sleep_until(by) => {
                            kill_group(&mut child).await?;
                            "killed"
                        }
                    }
                }
                // Another process may hold it already.
                _ => {
                    kill_group(&mut child).await?;
                    "killed"
                }
            };
            // Whatever the command left in its group goes too.
            signal_group(&child, nix::sys::signal::Signal::SIGKILL);
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
            signal_group(&child, nix::sys::signal::Signal::SIGTERM);
            let status = tokio::select! {
                status = child.wait() => status?,
                () = tokio::time::sleep(args.grace) => {
                    eprintln!(
                        "ndsr: {program} did not exit within {} of SIGTERM; killing it",
                        humantime::format_duration(args.grace)
                    );
                    kill_group(&mut child).await?
                }
                _ = signals.next() => {
                    eprintln!("ndsr: second signal; killing {program}");
                    kill_group(&mut child).await?
                }
                () = guard.lost() => kill_group(&mut child).await?,
            };
            let _ = guard.release().await;
            exit_code_of(status)
        }
    };
    registry.close().await;
    Ok(code)
}
