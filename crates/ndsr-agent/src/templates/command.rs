//! A template's command: `sh -c` after its file changed, at most once per
//! `min_interval`, killed after `command_timeout`.

use super::*;

/// Runs the command if the file changed and the interval since the last
/// run is over; its exit status is logged and exported.
pub(super) async fn run_command_if_due(template: &mut Template) {
    let Some(command) = template.file.command.clone() else { return };
    if !template.command_due || template.last_run.is_some_and(|at| at.elapsed() < template.min_interval()) {
        return;
    }
    template.command_due = false;
    template.last_run = Some(Instant::now());
    let name = template.name();
    let timeout = template.file.command_timeout.unwrap_or(Duration::from_secs(60));
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(&template.dir)
        .stdin(std::process::Stdio::null())
        // systemd's readiness is the agent's to send.
        .env_remove("NOTIFY_SOCKET")
        .kill_on_drop(true)
        .status();
    let (result, code) = match tokio::time::timeout(timeout, child).await {
        Ok(Ok(status)) if status.success() => {
            tracing::info!(file = %name, command, "command succeeded");
            ("ok", 0)
        }
        Ok(Ok(status)) => {
            tracing::error!(file = %name, command, %status, "command failed");
            ("failed", status.code().unwrap_or(-1))
        }
        Ok(Err(e)) => {
            tracing::error!(file = %name, command, "command did not start: {e}");
            ("failed", -1)
        }
        Err(_) => {
            tracing::error!(file = %name, command, ?timeout, "command timed out and was killed");
            ("timeout", -1)
        }
    };
    counter!("ndsr_template_commands_total", "template" => name.clone(), "result" => result).increment(1);
    gauge!("ndsr_template_command_exit_code", "template" => name).set(f64::from(code));
}
