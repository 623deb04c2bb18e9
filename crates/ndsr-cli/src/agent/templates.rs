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
/// file's mode and owner (0644 and the agent's user for a new file, whose
/// directory is made, 0755, if missing).
///
/// The temporary file has a random name and is created exclusively (a
/// link planted in the directory is never followed; a destination that is
/// a link is replaced, not written through). A directory that other users
/// can write is refused (see `check_directory`).
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    check_directory(dir)?;
    let old = std::fs::metadata(path).ok();
    let mode = old.as_ref().map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Removed when dropped: nothing is left behind on an error.
    let mut temp =
        tempfile::Builder::new().prefix(&format!(".{file_name}.")).suffix(".ndsr.tmp").tempfile_in(dir)?;
    temp.write_all(bytes)?;
    if let Some(old) = &old {
        let new = temp.as_file().metadata()?;
        if (new.uid(), new.gid()) != (old.uid(), old.gid()) {
            std::os::unix::fs::fchown(temp.as_file(), Some(old.uid()), Some(old.gid())).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot keep {}'s owner {}:{} ({e}); the file is not written",
                        path.display(),
                        old.uid(),
                        old.gid()
                    ),
                )
            })?;
        }
    }
    // After the owner: a change of owner may clear set-id bits.
    temp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Refuses a directory that another user can write (writable by group or
/// others), unless it is sticky and owned by the agent's user: there
/// another user could replace the file we write, or plant one.
fn check_directory(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)?;
    let mode = meta.mode() & 0o7777;
    let shared = mode & 0o022 != 0;
    let sticky = mode & 0o1000 != 0;
    let ours = meta.uid() == nix::unistd::geteuid().as_raw();
    if shared && !(sticky && ours) {
        let by = if mode & 0o002 != 0 { "others" } else { "its group" };
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "refused: the directory {} is writable by {by} (mode {mode:04o}, owner uid {}), so another \
                 user could plant or replace files there; write into a directory only the agent's user \
                 can write (chmod go-w), or one that is sticky and owned by that user",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    Ok(())
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
    fn a_planted_link_at_the_old_temporary_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("haproxy.cfg");
        // The name the old code used, predictable from the process id.
        let old_temp = dir.path().join(format!(".haproxy.cfg.ndsr-{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &old_temp).unwrap();
        write_atomically(&path, b"rendered").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "the victim is unchanged");
        assert_eq!(std::fs::read(&path).unwrap(), b"rendered");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        // A destination that is a link is replaced, not written through.
        let link = dir.path().join("link.cfg");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        write_atomically(&link, b"rendered").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "not written through a link");
        assert!(!std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o777, 0o775, 0o757] {
            let shared = dir.path().join(format!("shared-{mode:o}"));
            std::fs::create_dir(&shared).unwrap();
            std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = write_atomically(&shared.join("haproxy.cfg"), b"x").unwrap_err();
            assert!(error.to_string().contains("writable by"), "{mode:o}: {error}");
            assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0, "{mode:o}: nothing written");
        }
        // Sticky and ours (as /tmp is root's): others cannot replace our files.
        let sticky = dir.path().join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        write_atomically(&sticky.join("haproxy.cfg"), b"x").unwrap();
    }

    #[test]
    fn the_owner_is_kept() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        write_atomically(&path, b"one").unwrap();
        let me = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), me, "a new file is the agent's");
        if !nix::unistd::geteuid().is_root() {
            return; // Only root can give a file to another user.
        }
        std::os::unix::fs::chown(&path, Some(4242), Some(4343)).unwrap();
        write_atomically(&path, b"two").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid(), std::fs::read(&path).unwrap()), (4242, 4343, b"two".to_vec()));
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
