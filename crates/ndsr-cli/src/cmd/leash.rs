//! The leash: how a command run under `ndsr lock` or `ndsr elect` is tied
//! to its `ndsr`, so that nothing it started keeps acting when `ndsr`
//! itself dies (SIGKILL, a crash, the OOM killer) and its lock or
//! leadership passes to another.
//!
//! The command runs under `ndsr __ndsr-leash`, a small supervisor that
//! leads the command's process group. It asks the kernel for a signal when
//! `ndsr` dies (Linux's parent-death signal), checks that `ndsr` has not
//! died already, and starts the command in its group. When `ndsr` dies it
//! SIGKILLs the whole group: the command and everything the command
//! started. It outlives the stop signals `ndsr` sends the group (the
//! command gets them; the leash waits for it), and exits as the command
//! did: its code, or 128 + the signal that killed it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use nix::sys::signal::Signal;

/// The hidden first argument that makes `ndsr` a leash; never typed by
/// users.
pub const LEASH: &str = "__ndsr-leash";

/// The command line to run `program` with `args` under a lock or a
/// leadership: on a leash (see the module), in a process group of its own,
/// killed if dropped.
///
/// # Errors
/// `program` cannot be found or is not executable, said before anything
/// runs.
pub fn command(program: &str, args: &[String]) -> std::io::Result<tokio::process::Command> {
    let resolved = resolve(program)?;
    // The running binary itself, even if replaced on disk since (an
    // upgrade): /proc/self/exe still runs it.
    let mut cmd = if cfg!(target_os = "linux") {
        let mut cmd = tokio::process::Command::new("/proc/self/exe");
        cmd.arg0("ndsr")
            .arg(LEASH)
            .arg(std::process::id().to_string())
            .arg(program)
            .arg(&resolved)
            .args(args);
        cmd
    } else {
        let mut cmd = tokio::process::Command::new(&resolved);
        cmd.args(args);
        cmd
    };
    cmd.process_group(0).kill_on_drop(true);
    Ok(cmd)
}

/// `program` as a path to a file this user may execute: as given when it
/// names a path, else the first such file in `PATH` (an empty entry is the
/// current directory), as the shell finds it.
///
/// # Errors
/// Not found, or not executable.
pub fn resolve(program: &str) -> std::io::Result<PathBuf> {
    let executable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file())
            && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
    };
    if program.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "an empty command name"));
    }
    if program.contains('/') {
        let path = PathBuf::from(program);
        return if executable(&path) {
            Ok(path)
        } else {
            Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no file there that this user may execute"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir })
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not found in PATH"))
}

/// The leash's whole life (`ndsr __ndsr-leash PARENT NAME PATH ARGS...`,
/// from [`command`]); returns the command's exit as its own.
pub fn leash(args: Vec<OsString>) -> ExitCode {
    let [parent, name, path, rest @ ..] = args.as_slice() else {
        eprintln!("ndsr: {LEASH} is ndsr's own; it runs a command under ndsr lock or ndsr elect");
        return ExitCode::from(2);
    };
    let Some(parent) = parent.to_str().and_then(|p| p.parse::<i32>().ok()) else {
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ndsr: cannot start the command's leash: {e}");
            return ExitCode::from(126);
        }
    };
    runtime.block_on(supervise(parent, name, path, rest))
}

/// The signal the kernel sends the leash when `ndsr` dies. Anyone may send
/// it too, so the leash checks that its parent is gone before acting.
const ORPHANED: Signal = Signal::SIGUSR2;

async fn supervise(parent: i32, name: &OsString, path: &OsString, rest: &[OsString]) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let listen =
        |kind: SignalKind| signal(kind).map_err(|e| eprintln!("ndsr: the command's leash: {e}")).ok();
    // Listening first: from then on these signals no longer end the leash.
    let Some(mut orphaned) = listen(SignalKind::from_raw(ORPHANED as i32)) else {
        return ExitCode::from(126);
    };
    // Stops sent to the group are for the command; the leash waits for it.
    let _stops: Vec<_> = [SignalKind::terminate(), SignalKind::interrupt(), SignalKind::hangup()]
        .into_iter()
        .map(listen)
        .collect();
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_pdeathsig(ORPHANED) {
        eprintln!("ndsr: cannot tie the command to ndsr: {e}");
        return ExitCode::from(126);
    }
    // ndsr may have died before the request: then no signal comes.
    if nix::unistd::getppid().as_raw() != parent {
        return ExitCode::from(137);
    }
    let spawned = tokio::process::Command::new(path).arg0(name).args(rest).spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!("ndsr: cannot run {}: {e}", name.to_string_lossy());
            // As shells say it: 127 not found, 126 found but not runnable.
            let code = if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
            return ExitCode::from(code);
        }
    };
    loop {
        tokio::select! {
            status = child.wait() => {
                use std::os::unix::process::ExitStatusExt;
                return match status {
                    Ok(s) => match (s.code(), s.signal()) {
                        (Some(code), _) => ExitCode::from(code.clamp(0, 255) as u8),
                        (None, Some(signal)) => ExitCode::from((128 + signal).clamp(0, 255) as u8),
                        _ => ExitCode::FAILURE,
                    },
                    Err(_) => ExitCode::FAILURE,
                };
            }
            _ = orphaned.recv() => {
                if nix::unistd::getppid().as_raw() != parent {
                    // ndsr is gone: the whole group goes, the leash with it.
                    let _ = nix::sys::signal::killpg(nix::unistd::getpgrp(), Signal::SIGKILL);
                    return ExitCode::from(137);
                }
            }
        }
    }
}
