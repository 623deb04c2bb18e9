//! Files rendered from templates on change (synapse's and
//! consul-template's job): rendered with minijinja from the services'
//! instances, written atomically only when the bytes change, then a
//! command run (at most once per interval). While any service is stale or
//! not read yet, nothing is rendered: our own outage never empties a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge};
use serde::Serialize;
use tokio::time::Instant;

use super::config::TemplateFile;
use super::state::Agent;

/// How long changes are gathered before rendering.
const SETTLE: Duration = Duration::from_millis(100);

/// One template's state between renders.
struct Template {
    file: TemplateFile,
    /// Where the command runs: the config file's directory.
    dir: PathBuf,
    /// When the command last ran.
    last_run: Option<Instant>,
    /// The file changed and the command waits for its interval.
    command_due: bool,
}

impl Template {
    fn min_interval(&self) -> Duration {
        self.file.min_interval.unwrap_or(Duration::from_secs(1))
    }

    fn name(&self) -> String {
        self.file.destination.display().to_string()
    }
}

/// An instance as templates see it.
#[derive(Serialize)]
struct InstanceContext<'a> {
    key: &'a str,
    id: &'a str,
    host: &'a str,
    port: Option<u16>,
    address: String,
    serving: bool,
    weight: Option<u32>,
    shard: Option<i64>,
    labels: &'a BTreeMap<String, String>,
    data: &'a ndsr::Object,
}

/// Renders the configured templates on every change, until shutdown.
pub async fn run(agent: Arc<Agent>) {
    let mut changes = agent.changes();
    let mut templates: Vec<Template> = Vec::new();
    loop {
        // Reloads change the list: keep each kept file's command state.
        let config = agent.config();
        let dir = config
            .file_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let files = config.templates.clone();
        if templates.iter().map(|t| &t.file).ne(files.iter()) {
            let mut old: Vec<Template> = std::mem::take(&mut templates);
            for file in files {
                let kept = old.iter().position(|t| t.file == file).map(|i| old.swap_remove(i));
                templates.push(kept.unwrap_or(Template {
                    file,
                    dir: dir.clone(),
                    last_run: None,
                    command_due: false,
                }));
            }
        }
        for template in &mut templates {
            render(&agent, template).await;
            run_command_if_due(template).await;
        }
        // Wake on the next change, or when a delayed command is due.
        let due = templates
            .iter()
            .filter(|t| t.command_due)
            .filter_map(|t| t.last_run.map(|at| at + t.min_interval()))
            .min();
        let sleep = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = agent.cancel.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
            () = sleep => {}
        }
        tokio::time::sleep(SETTLE).await;
        changes.borrow_and_update();
    }
}

/// Renders one template if every service is current, and writes it if the
/// bytes changed.
async fn render(agent: &Agent, template: &mut Template) {
    let name = template.name();
    let Some(context) = context(agent) else {
        counter!("ndsr_template_renders_total", "template" => name, "result" => "skipped_stale").increment(1);
        return;
    };
    let source = match std::fs::read_to_string(&template.file.source) {
        Ok(source) => source,
        Err(e) => {
            tracing::error!(template = %template.file.source.display(), "cannot read the template: {e}");
            counter!("ndsr_template_renders_total", "template" => name, "result" => "error").increment(1);
            return;
        }
    };
    let rendered = environment().render_str(&source, context);
    let text = match rendered {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(template = %template.file.source.display(), "template error (the file is kept): {e:#}");
            counter!("ndsr_template_renders_total", "template" => name, "result" => "error").increment(1);
            return;
        }
    };
    let destination = &template.file.destination;
    if std::fs::read(destination).is_ok_and(|old| old == text.as_bytes()) {
        counter!("ndsr_template_renders_total", "template" => name, "result" => "unchanged").increment(1);
        return;
    }
    match write_atomically(destination, text.as_bytes()) {
        Ok(()) => {
            tracing::info!(file = %destination.display(), "rendered");
            counter!("ndsr_template_renders_total", "template" => name, "result" => "written").increment(1);
            template.command_due = template.file.command.is_some();
        }
        Err(e) => {
            tracing::error!(file = %destination.display(), "cannot write: {e}");
            counter!("ndsr_template_renders_total", "template" => name, "result" => "error").increment(1);
        }
    }
}

/// The template environment: an undefined name is an error (a typo never
/// renders an empty backend), and the template's last newline is kept
/// (config files end with one).
fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env
}

/// What templates see: `services` (name to its serving instances),
/// `all_services` (with drained ones), `paths` (name to directory). `None`
/// while the session is not connected or a service has no list yet.
fn context(agent: &Agent) -> Option<minijinja::Value> {
    if agent.registry.state() != ndsr::State::Connected {
        return None;
    }
    let config = agent.config();
    let mut listings = Vec::new();
    for service in &config.services {
        let listing = agent.service_now(&service.path, service.format())?;
        if agent.stale_since(&service.path).is_some() {
            return None;
        }
        let name = service.name();
        listings.push((name, service.path.clone(), listing.value));
    }
    let view = |i: &ndsr::discovery::Instance| {
        minijinja::Value::from_serialize(InstanceContext {
            key: &i.key,
            id: &i.id,
            host: &i.host,
            port: i.port,
            address: i.address(),
            serving: i.serving,
            weight: i.weight,
            shard: i.shard,
            labels: &i.labels,
            data: &i.data,
        })
    };
    let mut services = BTreeMap::new();
    let mut all = BTreeMap::new();
    let mut paths = BTreeMap::new();
    for (name, path, listing) in &listings {
        services.insert(name.clone(), listing.serving().map(|i| view(i)).collect::<Vec<_>>());
        all.insert(name.clone(), listing.instances.iter().map(|i| view(i)).collect::<Vec<_>>());
        paths.insert(name.clone(), path.clone());
    }
    Some(minijinja::context! { services => services, all_services => all, paths => paths })
}

/// Runs the command if the file changed and the interval since the last
/// run is over; its exit status is logged and exported.
async fn run_command_if_due(template: &mut Template) {
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

/// Writes `bytes` to `path` by a rename of a temporary file beside it
/// (readers see the old file or the new, never half), keeping the old
/// file's mode (0644 for a new file, whose directory is made if missing).
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0o644);
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp: PathBuf = dir.join(format!(".{file_name}.ndsr-{}.tmp", std::process::id()));
    std::fs::create_dir_all(dir)?;
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_configuration_and_its_template_work() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        let config = super::super::config::Config::load(&docs.join("agent.example.toml")).unwrap();
        let source = std::fs::read_to_string(&config.templates[0].source).unwrap();
        let instance = |key: &str, zone: &str| {
            minijinja::context! { key => key, id => key, address => key, labels => minijinja::context! { zone => zone } }
        };
        let context = minijinja::context! {
            services => minijinja::context! { web => vec![instance("10.0.0.1:80", "a")], api => Vec::<minijinja::Value>::new() },
        };
        let text = environment().render_str(&source, context).unwrap();
        assert!(text.contains("server 10.0.0.1_80 10.0.0.1:80 check # zone a"), "{text}");
        assert!(text.contains("1 web and 0 api instances"), "{text}");
        assert!(text.ends_with("\n"), "the file ends with a newline: {text:?}");
        let typo = environment().render_str(
            "{{ services.wbe | length }}",
            minijinja::context! { services => minijinja::context! {} },
        );
        assert!(typo.is_err(), "an undefined name is an error, not an empty list");
    }

    #[test]
    fn writes_atomically_and_keeps_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        write_atomically(&path, b"one").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");
        write_atomically(&dir.path().join("new/dir/file"), b"x").unwrap();
        assert_eq!(std::fs::read(dir.path().join("new/dir/file")).unwrap(), b"x");
        assert!(write_atomically(&path.join("under-a-file"), b"x").is_err());
    }
}
