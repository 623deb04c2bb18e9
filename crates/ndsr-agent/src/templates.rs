//! Files rendered from templates on change (synapse's and
//! consul-template's job): rendered with minijinja from the services'
//! instances, written atomically only when the bytes change, then a
//! command run (at most once per interval). While any service is stale or
//! not read yet, nothing is rendered: our own outage never empties a file.
//! With `wait`, a changed file waits for its output to be quiet (`quiet`).

mod command;
mod perms;
mod quiet;

pub use perms::Perms;
pub use quiet::Wait;

use command::run_command_if_due;
use quiet::Quiet;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::TemplateFile;
use crate::state::Agent;
use crate::template_status::{TemplateStatus, TemplateStatuses};
use crate::write::{write_with, Options};

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
    /// Since when it waits for a service's first list.
    waiting_since: Option<Instant>,
    /// The text last written (or found already there).
    written: Option<String>,
    /// A changed text held by `wait`, and when it changed.
    held: Option<String>,
    quiet: Quiet,
}

impl Template {
    fn min_interval(&self) -> Duration {
        self.file.min_interval.unwrap_or(Duration::from_secs(1))
    }

    fn name(&self) -> String {
        self.file.destination.display().to_string()
    }

    /// How long it may wait for a service's first list (default 30s).
    fn wait_limit(&self) -> Duration {
        self.file.wait_limit.unwrap_or(DEFAULT_WAIT_LIMIT)
    }

    /// When its wait for a first list starts to count as a failure, if
    /// it waits and that is still to come.
    fn wait_deadline(&self) -> Option<Instant> {
        self.waiting_since.map(|since| since + self.wait_limit()).filter(|at| *at > Instant::now())
    }

    /// When its held text is to be written (`wait`), if one is held.
    fn quiet_due(&self) -> Option<Instant> {
        self.held.as_ref()?;
        self.quiet.due(self.file.wait?)
    }

    /// Whether its first render is done: rendered (or failed), or given up
    /// waiting for a service's first list.
    fn settled(&self, agent: &Agent) -> bool {
        agent.templates.get(&self.name()).is_some_and(|s| s.waiting.is_empty() || !s.ok)
    }
}

/// How long a template may wait for a service's first list before it
/// counts as failing: long enough for a slow first read after a start or
/// a reconnection, short enough that a list the agent may never read (an
/// ACL) shows in `/v1/health`.
const DEFAULT_WAIT_LIMIT: Duration = Duration::from_secs(30);

impl TemplateStatuses {
    /// Records a render's result: true when the template went from ok to
    /// failing or back, or its error changed (what the dashboard shows).
    fn record(&self, template: &Template, result: Result<(), String>) -> bool {
        let now = crate::views::millis(std::time::SystemTime::now());
        let (ok, error) = match result {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        };
        let mut statuses = self.lock();
        let old = statuses.get(&template.name());
        let changed = old.is_none_or(|old| old.ok != ok || old.error != error);
        let since_ms = match old {
            Some(old) if old.ok == ok => old.since_ms,
            _ => now,
        };
        let status = TemplateStatus {
            template: template.name(),
            source: template.file.source.display().to_string(),
            ok,
            error,
            at_ms: now,
            since_ms,
            waiting: Vec::new(),
            command_error: old.and_then(|old| old.command_error.clone()),
        };
        statuses.insert(template.name(), status);
        changed
    }

    /// Records that a template waits for the first list of `paths`: as it
    /// was (or ok) until it has waited `wait_limit`, then failing. True
    /// when what the dashboard shows changed.
    fn record_waiting(&self, template: &Template, paths: Vec<String>, over: bool) -> bool {
        let now = crate::views::millis(std::time::SystemTime::now());
        let mut statuses = self.lock();
        let old = statuses.get(&template.name());
        let (ok, error) = if over {
            let error = format!(
                "not rendered: no list of {} after {:?} (wait_limit): the agent may not be allowed to read it \
                 (its ACL), or the path is wrong; GET /v1/services/<path> says why",
                paths.join(", "),
                template.wait_limit()
            );
            (false, Some(error))
        } else {
            old.map_or((true, None), |old| (old.ok, old.error.clone()))
        };
        let changed = old.is_none_or(|old| old.ok != ok || old.error != error || old.waiting != paths);
        let since_ms = match old {
            Some(old) if old.ok == ok => old.since_ms,
            _ => now,
        };
        let at_ms = old.map_or(now, |old| old.at_ms);
        let status = TemplateStatus {
            template: template.name(),
            source: template.file.source.display().to_string(),
            ok,
            error,
            at_ms,
            since_ms,
            command_error: old.and_then(|old| old.command_error.clone()),
            waiting: paths,
        };
        statuses.insert(template.name(), status);
        changed
    }

    /// Forgets the templates no longer configured.
    fn retain(&self, templates: &[Template]) {
        self.lock().retain(|name, _| templates.iter().any(|t| &t.name() == name));
    }
}

/// Renders the configured templates on every change, until shutdown;
/// `settled` turns true once every template's first render is done (and
/// its command run): the first sync, for readiness, `--once` and `[exec]`.
/// `written` counts the passes that wrote a file (`[exec]` reloads).
pub async fn run(agent: Arc<Agent>, settled: watch::Sender<bool>, written: watch::Sender<u64>) {
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
                    waiting_since: None,
                    written: None,
                    held: None,
                    quiet: Quiet::default(),
                }));
            }
            agent.templates.retain(&templates);
        }
        let mut wrote = false;
        for template in &mut templates {
            wrote |= render(&agent, template).await;
            run_command_if_due(&agent, template).await;
        }
        if wrote {
            written.send_modify(|n| *n += 1);
        }
        if !*settled.borrow() && templates.iter().all(|t| t.settled(&agent)) {
            settled.send_replace(true);
        }
        // Wake on the next change, when a delayed command is due, or when
        // a template has waited too long for a first list.
        let due = templates
            .iter()
            .filter(|t| t.command_due)
            .filter_map(|t| t.last_run.map(|at| at + t.min_interval()))
            .chain(templates.iter().filter_map(Template::wait_deadline))
            .chain(templates.iter().filter_map(Template::quiet_due))
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
/// bytes changed. The result (ok, or the error that kept the file) is kept
/// for the health check, the dashboard and the metrics.
async fn render(agent: &Agent, template: &mut Template) -> bool {
    let name = template.name();
    let context = match context(agent) {
        Ok(context) => context,
        Err(NotNow::Outage) => {
            counter!("ndsr_template_renders_total", "template" => name, "result" => "skipped_stale")
                .increment(1);
            return false;
        }
        Err(NotNow::Waiting(paths)) => {
            let result = "skipped_waiting";
            counter!("ndsr_template_renders_total", "template" => name.clone(), "result" => result)
                .increment(1);
            let since = *template.waiting_since.get_or_insert_with(Instant::now);
            let over = since.elapsed() >= template.wait_limit();
            let shown = paths.join(", ");
            if agent.templates.record_waiting(template, paths, over) {
                if over {
                    tracing::error!(file = %name, services = %shown, "not rendered: no list yet (wait_limit)");
                }
                agent.changed();
            }
            return false;
        }
    };
    template.waiting_since = None;
    let file = template.file.clone();
    let rendered = tokio::task::spawn_blocking(move || render_text(&file, context)).await;
    let rendered = rendered.unwrap_or_else(|e| Err(format!("the render did not finish: {e}")));
    let mut wrote = false;
    let result = match rendered {
        Ok(text) if hold(template, &text) => {
            counter!("ndsr_template_renders_total", "template" => name, "result" => "held").increment(1);
            Ok(())
        }
        Ok(text) => {
            let file = template.file.clone();
            let (written, text) = tokio::task::spawn_blocking(move || (write(&file, text.as_bytes()), text))
                .await
                .unwrap_or_else(|e| (Err(format!("the write did not finish: {e}")), String::new()));
            match written {
                Ok(written) => {
                    template.written = Some(text);
                    wrote = written;
                    if written {
                        template.command_due = template.file.command.is_some();
                    }
                    let result = if written { "written" } else { "unchanged" };
                    counter!("ndsr_template_renders_total", "template" => name, "result" => result)
                        .increment(1);
                    Ok(())
                }
                Err(e) => {
                    counter!("ndsr_template_renders_total", "template" => name, "result" => "error")
                        .increment(1);
                    Err(e)
                }
            }
        }
        Err(e) => {
            counter!("ndsr_template_renders_total", "template" => name, "result" => "error").increment(1);
            Err(e)
        }
    };
    if agent.templates.record(template, result) {
        agent.changed();
    }
    wrote
}

/// Whether `text`, a changed render, is held by the template's `wait`
/// (its output is not quiet yet): not the first render, not the text
/// already written, and not due.
fn hold(template: &mut Template, text: &str) -> bool {
    let held = match (template.file.wait, &template.written) {
        (Some(wait), Some(written)) if written != text => {
            let now = Instant::now();
            if template.held.as_deref() != Some(text) {
                template.quiet.change(now);
                template.held = Some(text.to_string());
            }
            template.quiet.due(wait).is_some_and(|at| at > now)
        }
        _ => false,
    };
    if !held {
        template.held = None;
        template.quiet = Quiet::default();
    }
    held
}

/// Renders the template: the text, or why the file is kept. Blocking
/// (file I/O): run it with `spawn_blocking`.
fn render_text(file: &TemplateFile, context: minijinja::Value) -> Result<String, String> {
    let source_path = &file.source;
    let source = std::fs::read_to_string(source_path).map_err(|e| {
        tracing::error!(template = %source_path.display(), "cannot read the template: {e}");
        format!("cannot read the template {}: {e}", source_path.display())
    })?;
    render_source(source_path, &source, context).map_err(|(e, detail)| {
        tracing::error!(template = %source_path.display(), "template error (the file is kept): {detail}");
        e
    })
}

/// Writes the template's file if the bytes changed: whether it wrote, or
/// why not. Blocking: run it with `spawn_blocking`.
fn write(file: &TemplateFile, bytes: &[u8]) -> Result<bool, String> {
    let destination = &file.destination;
    let options = Options {
        perms: file.perms.map(|p| p.0),
        backup: file.backup,
        create_dirs: file.create_dest_dirs.unwrap_or(true),
    };
    match write_with(destination, bytes, options) {
        Ok(written) => {
            if written {
                tracing::info!(file = %destination.display(), "rendered");
            }
            Ok(written)
        }
        Err(e) => {
            tracing::error!(file = %destination.display(), "cannot write: {e}");
            Err(format!("cannot write {}: {e}", destination.display()))
        }
    }
}

/// Renders `source` (read from `path`): the text, or the error in one
/// line (with the template's line that failed) and in detail, for the log.
fn render_source(path: &Path, source: &str, context: minijinja::Value) -> Result<String, (String, String)> {
    let file_name =
        path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
    let env = environment();
    let rendered = env.template_from_named_str(&file_name, source).and_then(|t| t.render(context));
    rendered.map_err(|e| {
        let line =
            e.line().filter(|_| e.name() == Some(file_name.as_str())).and_then(|n| source.lines().nth(n - 1));
        let brief = match line {
            Some(line) => {
                let line: String = line.trim().chars().take(120).collect();
                format!("{e}: `{line}`")
            }
            None => e.to_string(),
        };
        (brief, format!("{e:#}"))
    })
}

/// The template environment: an undefined name is an error (a typo never
/// renders an empty backend), the template's last newline is kept (config
/// files end with one), and the `cfg` and `cfg_token` filters refuse what
/// would break out of a config file's line or token.
fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_filter("cfg", cfg);
    env.add_filter("cfg_token", cfg_token);
    env
}

/// The text of a value a config file may hold: a string, number or
/// boolean; none, lists and maps are refused.
fn cfg_text(value: &minijinja::Value, filter: &str) -> Result<String, minijinja::Error> {
    use minijinja::value::ValueKind;
    let refuse = |why: String| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("{filter}: {why}"))
    };
    match value.kind() {
        ValueKind::String | ValueKind::Number | ValueKind::Bool => Ok(value.to_string()),
        ValueKind::Undefined => Err(refuse("the value is undefined".into())),
        ValueKind::None => Err(refuse("the value is none, not text".into())),
        kind => Err(refuse(format!("a {kind} is not one value of a config file"))),
    }
}

/// `{{ x | cfg }}`: `x` unchanged, or an error if it holds a control
/// character (a newline, a carriage return, a tab, NUL, ...) or a Unicode
/// line separator: a value must never start a line of its own.
fn cfg(value: minijinja::Value) -> Result<minijinja::Value, minijinja::Error> {
    let text = cfg_text(&value, "cfg")?;
    if let Some(c) = text.chars().find(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        let shown: String = text.chars().take(60).collect();
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!(
                "cfg: {shown:?} holds the control character {c:?}: refused (it would break the file's lines)"
            ),
        ));
    }
    Ok(minijinja::Value::from_safe_string(text))
}

/// `{{ x | cfg_token }}`: `x` unchanged if it is one non-empty word of
/// letters, digits and `- . _ : [ ] / @ +` (a server name, a host, an
/// address), else an error: no space, quote, `#`, `;`, brace or control
/// character can add an option, a comment or a line.
fn cfg_token(value: minijinja::Value) -> Result<minijinja::Value, minijinja::Error> {
    let text = cfg_text(&value, "cfg_token")?;
    let allowed = |c: char| c.is_alphanumeric() || "-._:[]/@+".contains(c);
    if text.is_empty() || !text.chars().all(allowed) {
        let shown: String = text.chars().take(60).collect();
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("cfg_token: {shown:?} is not one word of letters, digits and - . _ : [ ] / @ +: refused"),
        ));
    }
    Ok(minijinja::Value::from_safe_string(text))
}

/// Why a template is not rendered now.
enum NotNow {
    /// The session is not connected, or a service is stale: our outage
    /// must never empty a file; the health check shows it already.
    Outage,
    /// These services (paths) have no list yet.
    Waiting(Vec<String>),
}

/// What templates see: `services` (name to its serving instances),
/// `all_services` (with drained ones), `paths` (name to directory); not
/// while the session is not connected or a service is stale or has no
/// list yet.
fn context(agent: &Agent) -> Result<minijinja::Value, NotNow> {
    if agent.registry.state() != ndsr::State::Connected {
        return Err(NotNow::Outage);
    }
    let config = agent.config();
    let mut listings = Vec::new();
    let mut waiting = Vec::new();
    let mut stale = false;
    for service in &config.services {
        let Some(listing) = agent.service_now(&service.path, service.format()) else {
            waiting.push(service.path.clone());
            continue;
        };
        stale |= agent.stale_since(&service.path).is_some();
        let name = service.name();
        listings.push((name, service.path.clone(), listing.value));
    }
    if !waiting.is_empty() {
        return Err(NotNow::Waiting(waiting));
    }
    if stale {
        return Err(NotNow::Outage);
    }
    Ok(context_of(
        listings.iter().map(|(name, path, listing)| (name.as_str(), path.as_str(), &listing.instances[..])),
    ))
}

/// The context of `(name, directory, instances)` listings.
fn context_of<'a>(
    listings: impl IntoIterator<Item = (&'a str, &'a str, &'a [Arc<ndsr::discovery::Instance>])>,
) -> minijinja::Value {
    let mut services = BTreeMap::new();
    let mut all = BTreeMap::new();
    let mut paths = BTreeMap::new();
    for (name, path, instances) in listings {
        let serving = instances.iter().filter(|i| i.serving);
        services.insert(name, serving.map(|i| instance_value(i)).collect::<Vec<_>>());
        all.insert(name, instances.iter().map(|i| instance_value(i)).collect::<Vec<_>>());
        paths.insert(name, path);
    }
    minijinja::context! { services => services, all_services => all, paths => paths }
}

/// An instance as templates see it.
fn instance_value(i: &ndsr::discovery::Instance) -> minijinja::Value {
    use minijinja::Value;
    let optional = |v: Option<Value>| v.unwrap_or(Value::from(()));
    let labels: Value = i.labels.iter().map(|(k, v)| (k.as_str(), Value::from(v.as_str()))).collect();
    [
        ("key", Value::from(i.key.as_str())),
        ("id", Value::from(i.id.as_str())),
        ("host", Value::from(i.host.as_str())),
        ("port", optional(i.port.map(Value::from))),
        ("address", Value::from(i.address())),
        ("serving", Value::from(i.serving)),
        ("weight", optional(i.weight.map(Value::from))),
        ("shard", optional(i.shard.map(Value::from))),
        ("labels", labels),
        ("data", i.data.iter().map(|(k, v)| (k.as_str(), json_value(v))).collect()),
    ]
    .into_iter()
    .collect()
}

/// Node data as templates see it. Not through `Value::from_serialize`:
/// with serde_json's `arbitrary_precision` a number serializes as a
/// private struct (`{"$serde_json::private::Number": "5"}`).
fn json_value(value: &serde_json::Value) -> minijinja::Value {
    use minijinja::Value;
    use serde_json::Value as J;
    match value {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => number_value(n),
        J::String(s) => Value::from(s.as_str()),
        J::Array(items) => items.iter().map(json_value).collect(),
        J::Object(object) => object.iter().map(|(k, v)| (k.as_str(), json_value(v))).collect(),
    }
}

/// A JSON number as a minijinja number that prints as its JSON text (an
/// integer up to 128 bits, a float whose text round-trips), so that
/// arithmetic works; else (a longer integer, `1e3`, `2.50`) its exact text.
fn number_value(n: &serde_json::Number) -> minijinja::Value {
    use minijinja::Value;
    let text = n.to_string();
    let exact = |v: Value| (v.to_string() == text).then_some(v);
    n.as_i64()
        .map(Value::from)
        .and_then(exact)
        .or_else(|| n.as_u64().map(Value::from).and_then(exact))
        .or_else(|| text.parse::<i128>().ok().map(Value::from).and_then(exact))
        .or_else(|| text.parse::<u128>().ok().map(Value::from).and_then(exact))
        .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(Value::from).and_then(exact))
        .unwrap_or_else(|| Value::from_safe_string(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    use ndsr::discovery::{decode, Format, Instance};

    /// An instance of `format` decoded from its node name and data.
    fn decoded(format: Format, key: &str, json: &str) -> Arc<Instance> {
        let data: ndsr::Object = serde_json::from_str(json).unwrap();
        Arc::new(decode(format, key, &data).unwrap().unwrap())
    }

    /// Renders `source` with the services `(name, instances)`.
    fn render(source: &str, services: &[(&str, Vec<Arc<Instance>>)]) -> Result<String, String> {
        let context = context_of(services.iter().map(|(name, list)| (*name, "/s", &list[..])));
        render_source(Path::new("t.j2"), source, context).map_err(|(brief, _)| brief)
    }

    #[test]
    fn the_sample_configuration_and_its_template_work() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        let config = crate::config::Config::load(&docs.join("agent.example.toml")).unwrap();
        let source = std::fs::read_to_string(&config.templates[0].source).unwrap();
        // Issue 22: one instance without a `zone` label stopped every render.
        let web = vec![
            decoded(Format::Nd, "10.0.0.1:80", r#"{"zone":"a"}"#),
            decoded(Format::Nd, "10.0.0.2:80", r#"{"pid":7}"#),
        ];
        let api = vec![decoded(Format::Curator, "i-1", r#"{"id":"i-1","address":"10.0.1.1","port":8080}"#)];
        let text = render(&source, &[("web", web), ("api", api)]).unwrap();
        assert!(text.contains("\n    server 10.0.0.1_80 10.0.0.1:80 check # zone a\n"), "{text}");
        assert!(text.contains("\n    server 10.0.0.2_80 10.0.0.2:80 check\n"), "unlabelled: {text}");
        assert!(text.contains("\n    server i-1 10.0.1.1:8080 check\n"), "{text}");
        assert!(text.contains("2 web and 1 api instances"), "{text}");
        assert!(text.ends_with("\n"), "the file ends with a newline: {text:?}");
        let none = render(&source, &[("web", vec![]), ("api", vec![])]).unwrap();
        assert!(none.contains("0 web and 0 api instances"), "{none}");
        let typo = render("{{ services.wbe | length }}", &[]);
        let typo = typo.unwrap_err();
        assert!(typo.contains("undefined") && typo.contains("t.j2:1"), "{typo}");
        assert!(typo.contains("`{{ services.wbe | length }}`"), "the line that failed: {typo}");
        let old = "{% for i in services.web %}{% if i.labels.zone %}z{% endif %}{% endfor %}";
        let unlabelled = vec![decoded(Format::Nd, "10.0.0.2:80", "{}")];
        assert!(
            render(old, &[("web", unlabelled)]).is_err(),
            "the old sample's error, under strict undefined"
        );
    }

    #[test]
    fn the_sample_refuses_a_value_that_would_inject_a_line() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        let source = std::fs::read_to_string(docs.join("agent/haproxy.cfg.j2")).unwrap();
        // The library refuses such addresses; ids, keys and labels are the
        // instance's own text: the filters stop them.
        // The library makes such instances bad (ids with whitespace, labels
        // with control characters): the filters are a second line of
        // defence, tried here on instances changed after decoding.
        let good = || {
            let json = r#"{"id":"i-1","address":"10.0.0.9","port":80,"payload":{"zone":"a"}}"#;
            (*decoded(Format::Curator, "i-1", json)).clone()
        };
        let mut newline_id = good();
        newline_id.id = "x check\n    server evil 6.6.6.6:443".into();
        let mut spaced_id = good();
        spaced_id.id = "x backup".into();
        let mut label = good();
        label.key = "i 1".into();
        label.labels.insert("zone".into(), "a\nserver evil".into());
        for instance in [newline_id, spaced_id, label] {
            let json = format!("{instance:?}");
            let api = vec![Arc::new(instance.clone())];
            let web = vec![Arc::new(instance)];
            let error = render(&source, &[("web", web), ("api", api)]).unwrap_err();
            assert!(error.contains("refused"), "{json}: {error}");
            assert!(!error.contains('\n'), "the error is one line: {error:?}");
        }
    }

    #[test]
    fn the_cfg_filters() {
        let one = |source: &str, value: minijinja::Value| {
            environment().render_str(source, minijinja::context! { v => value }).map_err(|e| e.to_string())
        };
        assert_eq!(one("{{ v | cfg }}", "us east # 1".into()).unwrap(), "us east # 1");
        assert_eq!(one("{{ v | cfg }}", 5.into()).unwrap(), "5");
        assert_eq!(one("{{ v | cfg_token }}", "[::1]:80".into()).unwrap(), "[::1]:80");
        assert_eq!(one("{{ v | cfg_token }}", "member_0000000001".into()).unwrap(), "member_0000000001");
        for text in ["a\nb", "a\rb", "a\tb", "a\u{0}b", "a\u{2028}b", "a\u{85}b"] {
            let error = one("{{ v | cfg }}", text.into()).unwrap_err();
            assert!(error.contains("cfg: ") && error.contains("control character"), "{text:?}: {error}");
            assert!(one("{{ v | cfg_token }}", text.into()).is_err(), "{text:?}");
        }
        for text in ["a b", "", "a#b", "a;b", "a\"b", "a'b", "{a}", "a\\b"] {
            let error = one("{{ v | cfg_token }}", text.into()).unwrap_err();
            assert!(error.contains("cfg_token: ") && error.contains("one word"), "{text:?}: {error}");
        }
        for filter in ["cfg", "cfg_token"] {
            let source = format!("{{{{ v | {filter} }}}}");
            assert!(one(&source, minijinja::Value::from(())).unwrap_err().contains("none"), "{filter}");
            assert!(one(&source, vec![1, 2].into()).is_err(), "{filter}: a list is refused");
            assert!(one(&format!("{{{{ nothing | {filter} }}}}"), 1.into()).is_err(), "{filter}: undefined");
        }
    }

    #[test]
    fn numbers_in_node_data_render_as_numbers() {
        // Issue 22: serde_json's `arbitrary_precision` made `{{ i.data.w }}`
        // render `{"$serde_json::private::Number": "5"}`.
        let json = r#"{"w":5,"f":2.5,"neg":-3,"big":123456789012345678901234567890,"huge":1234567890123456789012345678901234567890123,"e":1e3,"u":18446744073709551615,"list":[1,2.5],"o":{"n":7}}"#;
        let web = vec![decoded(Format::Nd, "10.0.0.1:80", json)];
        let pid = decoded(Format::Nd, "10.0.0.2:80", r#"{"pid":4242,"created":"2026-01-01 00:00:00"}"#);
        let services = [("web", web), ("pids", vec![pid])];
        let one = |expr: &str| {
            render(&format!("{{% for i in services.web %}}{{{{ {expr} }}}}{{% endfor %}}"), &services)
                .unwrap()
        };
        assert_eq!(one("i.data.w"), "5");
        assert_eq!(one("i.data.w + 1"), "6");
        assert_eq!(one("i.data.w * 2 > 9"), "True");
        assert_eq!(one("i.data.f"), "2.5");
        assert_eq!(one("i.data.f * 2"), "5.0");
        assert_eq!(one("i.data.neg"), "-3");
        assert_eq!(one("i.data.big"), "123456789012345678901234567890");
        assert_eq!(one("i.data.big + 1"), "123456789012345678901234567891");
        assert_eq!(one("i.data.huge"), "1234567890123456789012345678901234567890123");
        assert_eq!(one("i.data.e"), "1e+3", "as serde_json writes it in the API's JSON");
        assert_eq!(one("i.data.u"), "18446744073709551615");
        assert_eq!(one("i.data.list"), "[1, 2.5]");
        assert_eq!(one("i.data.o.n"), "7");
        assert_eq!(one("i.port"), "80");
        assert_eq!(one("i.data.w | cfg"), "5");
        let pid = render(
            "{% for i in services.pids %}{{ i.data.pid }}/{{ i.data.pid + 1 }}{% endfor %}",
            &services,
        );
        assert_eq!(pid.unwrap(), "4242/4243");
    }
}
