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

/// The command's process group, known by the id it had at spawn: it
/// stays valid after the command (its leader) is reaped, for as long as
/// anything it started runs, so that what it left behind can be stopped.
#[derive(Clone, Copy)]
struct Group(Option<nix::unistd::Pid>);

impl Group {
    fn of(child: &tokio::process::Child) -> Group {
        Group(child.id().and_then(|p| i32::try_from(p).ok()).map(nix::unistd::Pid::from_raw))
    }

    /// Sends `signal` to every process of the group.
    fn signal(self, signal: nix::sys::signal::Signal) {
        if let Some(pgid) = self.0 {
            let _ = nix::sys::signal::killpg(pgid, signal);
        }
    }

    /// Does any process of the group still exist?
    fn alive(self) -> bool {
        self.0.is_some_and(|pgid| nix::sys::signal::killpg(pgid, None).is_ok())
    }

    /// SIGKILLs every process of the group and waits (at most `within`)
    /// until none is left; `false` if some still were.
    async fn end(self, within: std::time::Duration) -> bool {
        let by = tokio::time::Instant::now() + within;
        self.signal(nix::sys::signal::Signal::SIGKILL);
        while self.alive() {
            if tokio::time::Instant::now() >= by {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        true
    }
}

/// How long the group's last processes may take to go after SIGKILL.
const REAP: std::time::Duration = std::time::Duration::from_secs(5);

/// SIGKILLs the command's whole process group, reaps the command, and
/// waits for the rest of the group to go.
async fn kill_group(
    child: &mut tokio::process::Child,
    group: Group,
) -> std::io::Result<std::process::ExitStatus> {
    group.signal(nix::sys::signal::Signal::SIGKILL);
    let status = child.wait().await;
    leftovers(group, REAP).await;
    status
}

/// Ends what the command left running in its group (background jobs,
/// daemons it started): nothing it started may run on once the lock ends.
async fn leftovers(group: Group, within: std::time::Duration) {
    if group.alive() && !group.end(within).await {
        eprintln!("ndsr: some processes of the command's group did not end after SIGKILL");
    }
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
                    let by = stop_by(guard.session_deadline(), args.grace);
                    group.signal(nix::sys::signal::Signal::SIGTERM);
                    let how = tokio::select! {
                        _ = child.wait() => "stopped",
                        () = tokio::time::sleep_until(by) => {
                            group.signal(nix::sys::signal::Signal::SIGKILL);
                            let _ = child.wait().await;
                            "killed"
                        }
                    };
                    // What the command left in its group goes too, by the
                    // same deadline.
                    let left = tokio::time::Instant::from_std(guard.session_deadline())
                        .saturating_duration_since(tokio::time::Instant::now());
                    leftovers(group, left.max(std::time::Duration::from_millis(100))).await;
                    how
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
            group.signal(nix::sys::signal::Signal::SIGTERM);
            let status = tokio::select! {
                status = child.wait() => status?,
                () = tokio::time::sleep(args.grace) => {
                    eprintln!(
                        "ndsr: {program} did not exit within {} of SIGTERM; killing it",
                        humantime::format_duration(args.grace)
                    );
                    kill_group(&mut child, group).await?
                }
                _ = signals.next() => {
                    eprintln!("ndsr: second signal; killing {program}");
                    kill_group(&mut child, group).await?
                }
                () = guard.lost() => kill_group(&mut child, group).await?,
            };
            leftovers(group, REAP).await;
            let _ = guard.release().await;
            exit_code_of(status)
        }
    };
    registry.close().await;
    Ok(code)
}
