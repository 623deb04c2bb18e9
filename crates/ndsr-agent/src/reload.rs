//! SIGHUP: the file read again and put in force, or refused. Either way one
//! line says so (what changed, or why it was refused), and
//! `ndsr_agent_reloads_total{result}` counts it.

use std::sync::Arc;

use metrics::counter;

use crate::config::Config;
use crate::external::Recorders;
use crate::state::Agent;
use crate::Options;

/// Counts a reload by its result: `ok` or `refused`.
fn count(result: &'static str) {
    counter!("ndsr_agent_reloads_total", "result" => result).increment(1);
}

/// Makes both series of `ndsr_agent_reloads_total` exist (at 0) from the
/// start, so that a rate over them works before the first reload.
pub fn register_metrics() {
    for result in ["ok", "refused"] {
        counter!("ndsr_agent_reloads_total", "result" => result).increment(0);
    }
}

/// SIGHUP: reads the file again; a bad file changes nothing. A reload in
/// force prints one line on stdout naming what changed; a refused one
/// logs one error naming why.
pub async fn reload(agent: &Arc<Agent>, options: &Options, recorders: &Recorders) {
    let config = match crate::load(options) {
        Ok(config) => config,
        Err(e) => {
            count("refused");
            tracing::error!("reload refused, the running configuration stays: {e}");
            return;
        }
    };
    let old = agent.config();
    if config.http.listen != old.http.listen
        || config.servers != old.servers
        || config.session_timeout != old.session_timeout
        || config.http.readonly != old.http.readonly
        || config.http.max_body_bytes != old.http.max_body_bytes
        || config.http.max_connections != old.http.max_connections
    {
        tracing::warn!(
            "listen, servers, session_timeout, readonly, max_body_bytes and max_connections change only on restart"
        );
    }
    if config.dns.as_ref().map(|d| d.listen) != old.dns.as_ref().map(|d| d.listen) {
        tracing::warn!("[dns] listen, and adding or removing [dns], change only on restart");
    }
    if config.exec != old.exec {
        tracing::warn!("[exec] changes only on restart: the child runs on as it was started");
    }
    // What is in force says what is served.
    let mut config = config;
    config.exec.clone_from(&old.exec);
    config.http.listen = old.http.listen;
    config.http.readonly = old.http.readonly;
    config.http.max_body_bytes = old.http.max_body_bytes;
    config.http.max_connections = old.http.max_connections;
    let changed = changes(&old, &config);
    agent.set_config(config);
    crate::apply(agent).await;
    recorders.reconcile(agent).await;
    count("ok");
    let changed = if changed.is_empty() { "nothing changed".to_string() } else { changed.join("; ") };
    let _ = crate::line(&format!("reloaded {}: {changed}", options.config.display()));
}

/// What differs between the configuration in force and the one replacing
/// it, for the reload's line: each part once (`services +/a -/b ~/c`,
/// `[http] token`, ...); empty when nothing does. Restart-only keys are
/// left out (they are warned about, and not put in force).
pub fn changes(old: &Config, new: &Config) -> Vec<String> {
    let mut parts = Vec::new();
    if old.roots != new.roots {
        parts.push(format!("roots {}", new.roots.join(", ")));
    }
    let mut list = |what: &str, diff: Vec<String>| {
        if !diff.is_empty() {
            parts.push(format!("{what} {}", diff.join(" ")));
        }
    };
    list("services", keyed(&old.services, &new.services, |s| s.path.clone()));
    list("templates", keyed(&old.templates, &new.templates, |t| t.destination.display().to_string()));
    list("registrations", keyed(&old.registrations, &new.registrations, |r| r.path.clone()));
    list("mirrors", keyed(&old.mirrors, &new.mirrors, |m| m.name.clone()));
    let (o, n) = (&old.http, &new.http);
    let http: Vec<&str> = [
        ("token", old.token != new.token),
        ("read_token", o.read_token != n.read_token),
        ("allow_cmd_checks", o.allow_cmd_checks != n.allow_cmd_checks),
        ("allow_remote_checks", o.allow_remote_checks != n.allow_remote_checks),
        ("max_wait", o.max_wait != n.max_wait),
        ("max_paths", o.max_paths != n.max_paths),
        ("path_idle", o.path_idle != n.path_idle),
        ("header_timeout", o.header_timeout != n.header_timeout),
        ("idle_timeout", o.idle_timeout != n.idle_timeout),
        ("max_streams", o.max_streams != n.max_streams),
    ]
    .into_iter()
    .filter_map(|(key, differs)| differs.then_some(key))
    .collect();
    if !http.is_empty() {
        parts.push(format!("[http] {}", http.join(", ")));
    }
    if old.config.record_external != new.config.record_external {
        parts.push("[config] record_external".into());
    }
    if old.dns != new.dns {
        parts.push("[dns]".into());
    }
    if old.drain != new.drain {
        parts.push("drain".into());
    }
    parts
}

/// The entries of two lists by key: `+KEY` added, `-KEY` removed, `~KEY`
/// changed, in the new list's order (the removed ones after).
fn keyed<T: PartialEq>(old: &[T], new: &[T], key: impl Fn(&T) -> String) -> Vec<String> {
    let find = |list: &[T], k: &str| list.iter().find(|item| key(item) == k).map(|_| ());
    let mut diff = Vec::new();
    for item in new {
        let k = key(item);
        match old.iter().find(|o| key(o) == k) {
            None => diff.push(format!("+{k}")),
            Some(o) if o != item => diff.push(format!("~{k}")),
            Some(_) => {}
        }
    }
    for item in old {
        let k = key(item);
        if find(new, &k).is_none() {
            diff.push(format!("-{k}"));
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap()
    }

    #[test]
    fn a_reload_names_what_changed() {
        let old = config(
            "roots = [\"/s\"]\n[[service]]\npath = \"/s/a\"\n[[service]]\npath = \"/s/b\"\n\
             [[register]]\npath = \"/s/a/1:80\"\n",
        );
        assert!(changes(&old, &old).is_empty(), "the same file: nothing");
        let new = config(
            "roots = [\"/s\"]\ndrain = \"5s\"\n[http]\ntoken = \"0123456789abcdef\"\n\
             [[service]]\npath = \"/s/b\"\nformat = \"nd\"\n[[service]]\npath = \"/s/c\"\n\
             [[register]]\npath = \"/s/a/1:80\"\ndata = \"x\"\n",
        );
        assert_eq!(
            changes(&old, &new),
            ["services ~/s/b +/s/c -/s/a", "registrations ~/s/a/1:80", "[http] token", "drain"]
        );
    }
}
