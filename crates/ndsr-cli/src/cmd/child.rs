//! A command run under a lock or a leadership (`ndsr lock`, `ndsr elect`):
//! its process group, and how it is stopped before the session could
//! expire.

use std::process::ExitCode;
use std::time::Duration;

use nix::sys::signal::Signal;

/// The exit code that passes a command's status on: its own code, or
/// 128 + the signal that killed it.
pub fn exit_code_of(status: std::process::ExitStatus) -> ExitCode {
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
pub struct Group(Option<nix::unistd::Pid>);

impl Group {
    /// The group of a command spawned with `process_group(0)`.
    pub fn of(child: &tokio::process::Child) -> Group {
        Group(child.id().and_then(|p| i32::try_from(p).ok()).map(nix::unistd::Pid::from_raw))
    }

    /// Sends `signal` to every process of the group.
    pub fn signal(self, signal: Signal) {
        if let Some(pgid) = self.0 {
            let _ = nix::sys::signal::killpg(pgid, signal);
        }
    }

    /// Does any process of the group still exist?
    pub fn alive(self) -> bool {
        self.0.is_some_and(|pgid| nix::sys::signal::killpg(pgid, None).is_ok())
    }

    /// SIGKILLs every process of the group and waits (at most `within`)
    /// until none is left; `false` if some still were.
    pub async fn end(self, within: Duration) -> bool {
        let by = tokio::time::Instant::now() + within;
        self.signal(Signal::SIGKILL);
        while self.alive() {
            if tokio::time::Instant::now() >= by {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// How long the group's last processes may take to go after SIGKILL.
pub const REAP: Duration = Duration::from_secs(5);

/// SIGKILLs the command's whole process group, reaps the command, and
/// waits for the rest of the group to go.
pub async fn kill_group(
    child: &mut tokio::process::Child,
    group: Group,
) -> std::io::Result<std::process::ExitStatus> {
    group.signal(Signal::SIGKILL);
    let status = child.wait().await;
    leftovers(group, REAP).await;
    status
}

/// Ends what the command left running in its group (background jobs,
/// daemons it started): nothing it started may run on once the lock ends.
pub async fn leftovers(group: Group, within: Duration) {
    if group.alive() && !group.end(within).await {
        eprintln!("ndsr: some processes of the command's group did not end after SIGKILL");
    }
}

/// When a command whose lock was lost for silence must be killed: after
/// `grace`, but never later than a little before `deadline`, when the
/// server may expire the session and another process take the lock.
pub fn stop_by(deadline: std::time::Instant, grace: Duration) -> tokio::time::Instant {
    let deadline = tokio::time::Instant::from_std(deadline);
    let now = tokio::time::Instant::now();
    // A margin for the signal to take effect and the process to go.
    let margin = deadline.saturating_duration_since(now).min(Duration::from_secs(2)) / 4;
    (now + grace).min(deadline - margin).max(now)
}

/// Stops a command whose session may still be alive: SIGTERM to its
/// group, SIGKILL once `grace` is over or a little before `deadline`
/// (see [`stop_by`]), and what it left in its group by `deadline`.
/// Says how it went: `stopped` (it exited on SIGTERM) or `killed`.
pub async fn stop_before(
    child: &mut tokio::process::Child,
    group: Group,
    deadline: std::time::Instant,
    grace: Duration,
) -> &'static str {
    stop_before_or(child, group, deadline, grace, std::future::pending()).await
}

/// As [`stop_before`], and SIGKILL at once when `escalate` resolves (the
/// session is found gone: another process may hold what it held).
pub async fn stop_before_or(
    child: &mut tokio::process::Child,
    group: Group,
    deadline: std::time::Instant,
    grace: Duration,
    escalate: impl std::future::Future<Output = ()>,
) -> &'static str {
    let by = stop_by(deadline, grace);
    group.signal(Signal::SIGTERM);
    let how = tokio::select! {
        _ = child.wait() => "stopped",
        () = tokio::time::sleep_until(by) => "killed",
        () = escalate => "killed",
    };
    if how == "killed" {
        group.signal(Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // What the command left in its group goes too, by the same deadline.
    let left =
        tokio::time::Instant::from_std(deadline).saturating_duration_since(tokio::time::Instant::now());
    leftovers(group, left.max(Duration::from_millis(100))).await;
    how
}

/// Passes a stop signal (SIGINT, SIGTERM, SIGHUP to ndsr) on to the
/// command: SIGTERM to its group, then SIGKILL after `grace`, on a second
/// signal, or when `lost` resolves (the lock or leadership went meanwhile);
/// then what the group left. The command's status.
pub async fn pass_stop_on(
    child: &mut tokio::process::Child,
    group: Group,
    program: &str,
    grace: Duration,
    signals: &mut crate::cmd::Signals,
    lost: impl std::future::Future<Output = ()>,
) -> std::io::Result<std::process::ExitStatus> {
    group.signal(Signal::SIGTERM);
    let status = tokio::select! {
        status = child.wait() => status?,
        () = tokio::time::sleep(grace) => {
            eprintln!(
                "ndsr: {program} did not exit within {} of SIGTERM; killing it",
                humantime::format_duration(grace)
            );
            kill_group(child, group).await?
        }
        _ = signals.next() => {
            eprintln!("ndsr: second signal; killing {program}");
            kill_group(child, group).await?
        }
        () = lost => kill_group(child, group).await?,
    };
    leftovers(group, REAP).await;
    Ok(status)
}
