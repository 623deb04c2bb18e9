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

/// The hidden first argument that makes `ndsr` a leash for a command (see
/// [`command`]); never typed by users.
pub const LEASH: &str = "__ndsr-leash";

/// The command line to run `program` with `args` under a lock or a
/// leadership: in a process group of its own (so that stopping it stops
/// everything it started), killed if dropped, and tied to this process.
/// If `ndsr` itself dies (SIGKILL, a crash), the kernel SIGKILLs the
/// command at once: nothing keeps acting under a lock or a leadership
/// whose guard is gone. It runs through `ndsr` itself as a leash, which
/// asks for that (Linux's parent-death signal) and then becomes the
/// command (exec: the same process and group).
///
/// # Errors
/// `program` cannot be found or is not executable, said before anything
/// runs.
pub fn command(program: &str, args: &[String]) -> std::io::Result<tokio::process::Command> {
    let resolved = resolve(program)?;
    let mut cmd = match std::env::current_exe() {
        Ok(exe) if cfg!(target_os = "linux") => {
            let mut cmd = tokio::process::Command::new(exe);
            cmd.arg(LEASH).arg(std::process::id().to_string()).arg(program).arg(&resolved).args(args);
            cmd
        }
        _ => {
            let mut cmd = tokio::process::Command::new(&resolved);
            cmd.args(args);
            cmd
        }
    };
    cmd.process_group(0).kill_on_drop(true);
    Ok(cmd)
}

/// `program` as a path to an executable file: as given when it names a
/// path, else found in `PATH` (as the shell would).
fn resolve(program: &str) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = std::path::PathBuf::from(program);
        return if executable(&path) {
            Ok(path)
        } else {
            Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no executable file there"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not found in PATH"))
}

/// The leash's whole life (`ndsr __ndsr-leash PARENT NAME PATH ARGS...`,
/// from [`command`]): asks the kernel for SIGKILL when the parent dies,
/// checks that the parent has not died already, and becomes the command.
/// Returns only when that fails.
pub fn leash(args: Vec<std::ffi::OsString>) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let [parent, name, path, rest @ ..] = args.as_slice() else {
        eprintln!("ndsr: {LEASH} is ndsr's own; it runs a command under ndsr lock or ndsr elect");
        return ExitCode::from(2);
    };
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        eprintln!("ndsr: cannot tie the command to ndsr: {e}");
        return ExitCode::from(126);
    }
    // The parent may have died before the request: then no signal comes.
    let parent = parent.to_str().and_then(|p| p.parse::<i32>().ok());
    if parent != Some(nix::unistd::getppid().as_raw()) {
        return ExitCode::from(137);
    }
    let err = std::process::Command::new(path).arg0(name).args(rest).exec();
    eprintln!("ndsr: cannot run {}: {err}", name.to_string_lossy());
    ExitCode::from(127)
}
