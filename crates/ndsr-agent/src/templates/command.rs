//! A template's command: `sh -c` after its file changed, at most once per
//! `min_interval`, killed after `command_timeout`.

use super::*;

/// Runs the command if the file changed and the interval since the last
/// run is over; its exit status is logged, exported, and recorded in the
/// template's status (`command_error`, what `--once` fails on). It runs
/// in a process group of its own: on timeout the whole group is killed,
/// not only the shell.
pub(super) async fn run_command_if_due(agent: &Agent, template: &mut Template) {
    let Some(command) = template.file.command.clone() else { return };
    if !template.command_due || template.last_run.is_some_and(|at| at.elapsed() < template.min_interval()) {
        return;
    }
    template.command_due = false;
    template.last_run = Some(Instant::now());
    let name = template.name();
    let timeout = template.file.command_timeout.unwrap_or(Duration::from_secs(60));
    let spawned = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(&template.dir)
        .stdin(std::process::Stdio::null())
        // systemd's readiness is the agent's to send.
        .env_remove("NOTIFY_SOCKET")
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let (result, code, error) = match spawned {
        Err(e) => {
            tracing::error!(file = %name, command, "command did not start: {e}");
            ("failed", -1, Some(format!("command {command:?} did not start: {e}")))
        }
        Ok(mut child) => {
            let group = child.id().and_then(|p| i32::try_from(p).ok()).map(nix::unistd::Pid::from_raw);
            match tokio::time::timeout(timeout, child.wait()).await {
                Ok(Ok(status)) if status.success() => {
                    tracing::info!(file = %name, command, "command succeeded");
                    ("ok", 0, None)
                }
                Ok(Ok(status)) => {
                    tracing::error!(file = %name, command, %status, "command failed");
                    (
                        "failed",
                        status.code().unwrap_or(-1),
                        Some(format!("command {command:?} failed: {status}")),
                    )
                }
                Ok(Err(e)) => {
                    tracing::error!(file = %name, command, "command failed: {e}");
                    ("failed", -1, Some(format!("command {command:?} failed: {e}")))
                }
                Err(_) => {
                    tracing::error!(file = %name, command, ?timeout, "command timed out and was killed");
                    if let Some(group) = group {
                        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                    }
                    let _ = child.wait().await;
                    (
                        "timeout",
                        -1,
                        Some(format!("command {command:?} timed out after {timeout:?} and was killed")),
                    )
                }
            }
        }
    };
    agent.templates.record_command(&name, error);
    counter!("ndsr_template_commands_total", "template" => name.clone(), "result" => result).increment(1);
    gauge!("ndsr_template_command_exit_code", "template" => name).set(f64::from(code));
}
