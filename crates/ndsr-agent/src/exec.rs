//! `[exec]` (consul-template's): the agent starts a child process once
//! every template is first rendered, sends it a reload signal after a
//! render wrote a file, restarts it with back-off when it dies, and stops
//! it on shutdown (the kill signal, then SIGKILL after `kill_timeout`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use metrics::counter;
use nix::sys::signal::Signal;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::state::Agent;

/// The longest wait before a restart; a child that ran this long starts
/// the back-off again from one second.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// `[exec]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    /// One program and its arguments, run as `sh -c "exec COMMAND"` (the
    /// shell expands it, then becomes the program, which gets the
    /// signals), in the config file's directory, in a process group of
    /// its own (SIGKILLed as a whole after `kill_timeout`).
    pub command: String,
    /// Sent after a render wrote a file (default SIGHUP); `""`: none.
    #[serde(default = "default_reload", deserialize_with = "optional_signal")]
    pub reload_signal: Option<SignalName>,
    /// Sent on shutdown (default SIGTERM).
    #[serde(default = "default_kill", deserialize_with = "signal")]
    pub kill_signal: SignalName,
    /// How long the child may take to exit, then SIGKILL (default 30s).
    #[serde(default, with = "crate::durations::optional")]
    pub kill_timeout: Option<Duration>,
}

/// A signal, as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalName(pub Signal);

fn default_reload() -> Option<SignalName> {
    Some(SignalName(Signal::SIGHUP))
}

fn default_kill() -> SignalName {
    SignalName(Signal::SIGTERM)
}

/// Reads `"SIGHUP"` or `"HUP"`.
fn parse_signal(text: &str) -> Result<SignalName, String> {
    let name = if text.starts_with("SIG") { text.to_string() } else { format!("SIG{text}") };
    name.parse::<Signal>()
        .map(SignalName)
        .map_err(|_| format!("{text:?} is not a signal name like \"SIGHUP\""))
}

fn signal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SignalName, D::Error> {
    parse_signal(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn optional_signal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SignalName>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    parse_signal(&text).map(Some).map_err(serde::de::Error::custom)
}

/// Starts supervising the configured `[exec]` child, if any: the task
/// ends once the child is stopped (after shutdown began).
pub(crate) fn start(
    agent: &Arc<Agent>,
    settled: watch::Receiver<bool>,
    written: watch::Receiver<u64>,
) -> Option<tokio::task::JoinHandle<()>> {
    let config = agent.config();
    let exec = config.exec.clone()?;
    let dir =
        config.file_path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    Some(tokio::spawn(supervise(agent.clone(), exec, dir.to_path_buf(), settled, written)))
}

/// Supervises the `[exec]` child until shutdown: started once `settled`
/// is true, signalled when `written` changes, restarted with back-off.
async fn supervise(
    agent: Arc<Agent>,
    exec: Exec,
    dir: PathBuf,
    mut settled: watch::Receiver<bool>,
    mut written: watch::Receiver<u64>,
) {
    tokio::select! {
        () = agent.cancel.cancelled() => return,
        ready = settled.wait_for(|s| *s) => if ready.is_err() { return },
    }
    let mut failures: u32 = 0;
    loop {
        let started = Instant::now();
        match spawn(&exec, &dir) {
            Ok(mut child) => {
                let pid = child.id().and_then(|p| i32::try_from(p).ok()).map(nix::unistd::Pid::from_raw);
                tracing::info!(command = %exec.command, pid = ?pid, "exec: started");
                written.borrow_and_update();
                let status = loop {
                    tokio::select! {
                        () = agent.cancel.cancelled() => {
                            stop(&mut child, pid, &exec).await;
                            return;
                        }
                        status = child.wait() => break status,
                        changed = written.changed() => {
                            if changed.is_err() {
                                stop(&mut child, pid, &exec).await;
                                return;
                            }
                            if let (Some(pid), Some(reload)) = (pid, exec.reload_signal) {
                                tracing::info!(signal = %reload.0, "exec: a file changed, signalling the child");
                                let _ = nix::sys::signal::kill(pid, reload.0);
                                counter!("ndsr_exec_reloads_total").increment(1);
                            }
                        }
                    }
                };
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                tracing::error!(command = %exec.command, %status, "exec: the child exited");
            }
            Err(e) => tracing::error!(command = %exec.command, "exec: cannot start: {e}"),
        }
        if started.elapsed() >= MAX_BACKOFF {
            failures = 0;
        }
        let backoff = Duration::from_secs(1 << failures.min(5)).min(MAX_BACKOFF);
        failures = failures.saturating_add(1);
        counter!("ndsr_exec_restarts_total").increment(1);
        tracing::info!(?backoff, "exec: restarting");
        tokio::select! {
            () = agent.cancel.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
    }
}

/// Starts `sh -c "exec COMMAND"` in its own process group.
fn spawn(exec: &Exec, dir: &std::path::Path) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec {}", exec.command))
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .env_remove("NOTIFY_SOCKET")
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

/// Sends the kill signal to the child, then SIGKILL to its group after
/// the kill timeout.
async fn stop(child: &mut tokio::process::Child, pid: Option<nix::unistd::Pid>, exec: &Exec) {
    let timeout = exec.kill_timeout.unwrap_or(MAX_BACKOFF);
    if let Some(pid) = pid {
        let _ = nix::sys::signal::kill(pid, exec.kill_signal.0);
    }
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => tracing::info!(status = ?status.ok(), "exec: the child stopped"),
        Err(_) => {
            tracing::warn!(?timeout, "exec: the child did not stop in time; killing it");
            if let Some(pgid) = pid {
                let _ = nix::sys::signal::killpg(pgid, Signal::SIGKILL);
            }
            let _ = child.wait().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("SIGHUP"), Ok(SignalName(Signal::SIGHUP)));
        assert_eq!(parse_signal("USR1"), Ok(SignalName(Signal::SIGUSR1)));
        assert!(parse_signal("SIGNOPE").unwrap_err().contains("not a signal"));
    }
}
