//! The registrations the agent holds (from the config file and the API),
//! each by one task running the health-check loop of `ndsr register`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::check::Check;
use crate::config::Http;
use crate::error::{AgentError, ErrorKind};
use crate::hold::{hold_marked, Event, MarkEvent, Release};
use crate::registration::{lock, now_ms, Held, Put, Registrations, Source, Spec, Status};
use crate::state::Agent;

mod drain;
pub(crate) mod maintenance;

/// How long a PUT waits for the first write.
const FIRST_WRITE: Duration = Duration::from_secs(15);

impl Registrations {
    /// Holds `spec`, replacing a registration of the same path without
    /// removing its node in between.
    ///
    /// With `wait`, returns once the first write is done (bounded); a
    /// registration that ZooKeeper refuses for good (not authorized, data
    /// too large) is then dropped and its error returned. Without, returns
    /// at once (the file's registrations: a refusal shows as `failed`).
    ///
    /// The API's check is checked again here, under the `changing` lock,
    /// against the configuration in force: a reload that turned it off
    /// either ran its scan before (and drops this registration) or set the
    /// configuration before this (and this refuses it).
    pub async fn put(&self, agent: &Arc<Agent>, spec: Spec, wait: bool) -> Result<(Put, Status), AgentError> {
        let _changing = self.changing.lock().await;
        if let (Source::Api, Some(checked)) = (spec.source, &spec.checked) {
            api_check_allowed(&agent.config().http, &checked.check)?;
        }
        let mut inherited = false;
        let old = {
            let mut held = lock(&self.held);
            match held.get(&spec.path) {
                Some(old) if old.spec == spec => return Ok((Put::Unchanged, old.status.borrow().clone())),
                _ => held.remove(&spec.path),
            }
        };
        let put = match old {
            Some(old) => {
                // A sequential member cannot be rewritten in place: its
                // replacement is a new member.
                let release = if old.spec.what.sequential() { Release::Withdraw } else { Release::Keep };
                let _ = old.stop.send(release);
                inherited = old.task.await.ok().flatten().is_some() && release == Release::Keep;
                Put::Replaced
            }
            None => Put::Created,
        };
        let (status, rx) = watch::channel(Status {
            path: spec.path.clone(),
            source: spec.source,
            state: if spec.checked.is_some() && !inherited { "checking" } else { "pending" },
            detail: None,
            check: spec.checked.as_ref().map(|c| c.check.summary()),
            full_check: spec.checked.as_ref().map(|c| c.check.describe()),
            data: spec.what.json(),
            node: None,
            since_ms: now_ms(),
            refusal: None,
            maintenance: None,
            carries: None,
        });
        let (stop, stopped) = oneshot::channel();
        let task = agent.tasks.spawn(run(agent.clone(), spec.clone(), status, inherited, stopped));
        lock(&self.held).insert(spec.path.clone(), Held { spec, status: rx.clone(), stop, task });
        agent.changed();
        drop(_changing);
        if !wait {
            let status = rx.borrow().clone();
            return Ok((put, status));
        }
        // Answer once the first write is done (or known to be retrying).
        let mut rx = rx;
        let written = rx.wait_for(|s| s.state != "pending");
        let _ = tokio::time::timeout(FIRST_WRITE, written).await;
        let status = rx.borrow().clone();
        if let (Some((code, kind)), Some(detail)) = (status.refusal, &status.detail) {
            self.remove(agent, &status.path).await;
            return Err(AgentError::new(code, kind, detail.clone()));
        }
        Ok((put, status))
    }

    /// Stops holding `path` and removes its node now; `false` when it was
    /// not held.
    pub async fn remove(&self, agent: &Agent, path: &str) -> bool {
        let _changing = self.changing.lock().await;
        self.remove_changing(agent, path).await
    }

    /// `remove`, the `changing` lock held by the caller.
    async fn remove_changing(&self, agent: &Agent, path: &str) -> bool {
        let Some(old) = lock(&self.held).remove(path) else { return false };
        let _ = old.stop.send(Release::Withdraw);
        let _ = old.task.await;
        self.forget_mark(path);
        agent.changed();
        true
    }

    /// Makes the file's registrations exactly `wanted`: the ones that
    /// stayed are untouched, changed ones are replaced in place, gone ones
    /// removed. The API's registrations stay.
    pub async fn reconcile(&self, agent: &Arc<Agent>, wanted: Vec<Spec>) {
        let gone: Vec<String> = {
            let held = lock(&self.held);
            held.values()
                .filter(|h| h.spec.source == Source::Config && !wanted.iter().any(|w| w.path == h.spec.path))
                .map(|h| h.spec.path.clone())
                .collect()
        };
        for path in gone {
            self.remove(agent, &path).await;
        }
        for spec in wanted {
            let path = spec.path.clone();
            if let Err(e) = self.put(agent, spec, false).await {
                tracing::error!(%path, "the file's registration is refused: {}", e.message);
            }
        }
        // The API's registrations whose check the file no longer allows
        // (allow_cmd_checks or allow_remote_checks turned off) are dropped,
        // under the `changing` lock: a PUT that checked the old
        // configuration is either held already (and seen here) or checks
        // again in `put` against this one.
        let _changing = self.changing.lock().await;
        let config = agent.config();
        let disallowed: Vec<(String, AgentError)> = {
            let held = lock(&self.held);
            held.values()
                .filter(|h| h.spec.source == Source::Api)
                .filter_map(|h| {
                    let check = &h.spec.checked.as_ref()?.check;
                    api_check_allowed(&config.http, check).err().map(|e| (h.spec.path.clone(), e))
                })
                .collect()
        };
        for (path, why) in disallowed {
            tracing::error!(%path, "the API's registration is dropped: {}", why.message);
            self.remove_changing(agent, &path).await;
        }
    }
}

/// Whether the API may register a check under the file's `[http]`: a
/// command only with `allow_cmd_checks` (it runs as the agent's user); a
/// TCP or HTTP check of another host only with `allow_remote_checks` (the
/// token must not make the agent a port scanner of its network).
pub fn api_check_allowed(http: &Http, check: &Check) -> Result<(), AgentError> {
    match check {
        Check::Cmd(_) if !http.allow_cmd_checks => Err(AgentError::new(
            ErrorKind::Forbidden,
            "cmd_checks_off",
            "check_cmd is refused from the API: it would run a shell command as the agent's user. \
             Use check_tcp or check_http, register it in the config file's [[register]], or set \
             [http] allow_cmd_checks = true in the config file"
                .into(),
        )),
        Check::Tcp(_) | Check::Http(_) if !http.allow_remote_checks && !check.targets_loopback() => {
            let host = check.host().unwrap_or_default();
            let host = host.trim_end_matches('.');
            if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
                return Err(AgentError::new(
                    ErrorKind::Forbidden,
                    "remote_checks_off",
                    format!(
                        "{} is refused from the API: {host} is a name, which the system resolver \
                         (/etc/hosts, search domains) may send elsewhere; use 127.0.0.1 or [::1]",
                        check.summary()
                    ),
                ));
            }
            Err(AgentError::new(
                ErrorKind::Forbidden,
                "remote_checks_off",
                format!(
                    "{} is refused from the API: checks from the API may only target this host \
                     by a loopback address (such as 127.0.0.1 or [::1]); \
                     set [http] allow_remote_checks = true in the config file to allow others",
                    check.summary()
                ),
            ))
        }
        _ => Ok(()),
    }
}

async fn run(
    agent: Arc<Agent>,
    spec: Spec,
    status: watch::Sender<Status>,
    inherited: bool,
    stopped: oneshot::Receiver<Release>,
) -> Option<String> {
    let target = spec.what.target(&spec.path);
    let stop = async {
        tokio::select! {
            how = stopped => how.unwrap_or(Release::Withdraw),
            // Shutdown: `close()` ends the session, which removes every node at once.
            () = agent.cancel.cancelled() => Release::Keep,
        }
    };
    // Sets the state (and detail); true when the state changed.
    let set = |state: Option<&'static str>, detail: Option<String>| {
        let mut changed = false;
        status.send_modify(|status| {
            let state = state.unwrap_or(status.state);
            if status.state != state {
                status.since_ms = now_ms();
                changed = true;
            }
            status.state = state;
            status.detail = detail;
        });
        agent.changed();
        changed
    };
    let path = spec.path.clone();
    // The maintenance it is in (its own, or the whole agent's).
    let marks = agent.registrations.marks.subscribe();
    let mark_of = |marks: &maintenance::Marks| marks.maintenance(&path);
    // A marking failure tried again every second is said once, until it changes.
    let mut last_failure = None;
    let on_mark = |event| match event {
        MarkEvent::Carries(node, mark) => {
            last_failure = None;
            match &mark {
                Some(m) => tracing::warn!(%node, reason = ?m.reason, "in maintenance: not serving"),
                None => tracing::warn!(%node, "maintenance over: serving"),
            }
            status.send_modify(|s| s.carries = mark);
            agent.changed();
        }
        MarkEvent::Failed(node, why) => {
            if last_failure.as_ref() != Some(&why) {
                tracing::warn!(%node, "marking it for maintenance failed (tried again): {why}");
                last_failure = Some(why);
            }
        }
        MarkEvent::Withheld => {
            tracing::warn!(%path, "in maintenance: withdrawn (its format has no mark)");
            status.send_modify(|s| s.node = None);
            set(Some("maintenance"), Some("withdrawn while in maintenance: nerve has no mark".into()));
        }
        MarkEvent::WithheldUnhealthy(why) => {
            tracing::warn!(%path, "withdrawn: {why}");
            set(Some("unhealthy"), Some(why));
        }
    };
    let checked = spec.checked.as_ref();
    let held = hold_marked(
        &agent.registry,
        &target,
        checked,
        inherited,
        marks,
        mark_of,
        stop,
        |event| {
            match event {
                Event::Registered(node) => {
                    let node = (node != path).then_some(node);
                    status.send_modify(|s| s.node = node);
                    set(Some("registered"), None);
                }
                Event::RegisterFailed(_, e) if e.is_retryable() => {
                    // Asked again every second while ZooKeeper is away: said once.
                    if set(Some("retrying"), Some(e.to_string())) {
                        tracing::warn!(%path, error = %e, "registering failed; the registry keeps trying");
                    }
                }
                Event::RegisterFailed(_, e) => {
                    tracing::error!(%path, error = %e, "registering refused; the agent stops holding it");
                    let refusal = AgentError::from(e);
                    status.send_modify(|s| s.refusal = Some((refusal.kind, refusal.code)));
                    set(Some("failed"), Some(refusal.message));
                    return Err(());
                }
                Event::Failing(why) => {
                    tracing::warn!(%path, "health check failing: {why}");
                    set(None, Some(why));
                }
                Event::Passing => {
                    tracing::warn!(%path, "health check passing again");
                    set(None, None);
                }
                Event::Withdrawn(_, why) => {
                    tracing::warn!(%path, "withdrawn: {why}");
                    // No node, no mark: it is written marked again if it returns in maintenance.
                    status.send_modify(|s| s.carries = None);
                    set(Some("unhealthy"), Some(why));
                }
                Event::WithdrawFailed(_, e) => tracing::warn!(%path, error = %e, "removing failed"),
            }
            Ok(())
        },
        on_mark,
    )
    .await;
    held.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_checks_of_localhost_by_name_are_refused_unless_remote_checks_are_allowed() {
        let http = Http::default();
        for check in [
            Check::tcp("localhost:80").unwrap(),
            Check::tcp("LOCALHOST.:80").unwrap(),
            Check::tcp("db.localhost:80").unwrap(),
            Check::http("http://localhost:8080/health").unwrap(),
        ] {
            let refused = api_check_allowed(&http, &check).unwrap_err();
            assert_eq!(
                (refused.kind, refused.code),
                (ErrorKind::Forbidden, "remote_checks_off"),
                "{check:?}"
            );
            assert!(refused.message.contains("use 127.0.0.1 or [::1]"), "{}", refused.message);
        }
        for check in [Check::tcp("127.0.0.1:80").unwrap(), Check::http("http://[::1]:8080/h").unwrap()] {
            assert!(api_check_allowed(&http, &check).is_ok(), "{check:?}");
        }
        let remote = Http { allow_remote_checks: true, ..Http::default() };
        assert!(api_check_allowed(&remote, &Check::tcp("localhost:80").unwrap()).is_ok());
    }
}
