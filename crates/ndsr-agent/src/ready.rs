//! The first sync (what `READY=1` and `--once` wait for) and systemd's
//! notifications through [`crate::notify`].

use std::sync::Arc;

use tokio::sync::watch;

use crate::notify::{watchdog_interval, Notifier};
use crate::state::Agent;

/// Waits for the first sync: every template's first render done (or
/// given up), the session connected, every configured service listed, and
/// no registration still being written. `false` if the agent stopped
/// first. `waiting` is told what is still awaited, each time that changes.
pub(crate) async fn first_sync(
    agent: &Agent,
    mut templates: watch::Receiver<bool>,
    mut waiting: impl FnMut(&str),
) -> bool {
    let mut changes = agent.changes();
    let mut told = String::new();
    loop {
        changes.borrow_and_update();
        let pending = pending(agent, *templates.borrow_and_update());
        if pending.is_empty() {
            return true;
        }
        if pending != told {
            waiting(&pending);
            told = pending;
        }
        tokio::select! {
            () = agent.cancel.cancelled() => return false,
            changed = changes.changed() => if changed.is_err() { return false },
            changed = templates.changed() => if changed.is_err() { return false },
        }
    }
}

/// What the first sync still waits for, in words (empty: nothing): the
/// templates' first renders, the ZooKeeper session, the configured
/// services not listed yet, the registrations still being written.
fn pending(agent: &Agent, rendered: bool) -> String {
    let config = agent.config();
    let mut parts = Vec::new();
    if !rendered {
        parts.push("the templates' first render".to_string());
    }
    if agent.registry.state() != ndsr::State::Connected {
        parts.push("the ZooKeeper session".to_string());
    }
    let services: Vec<&str> = config
        .services
        .iter()
        .filter(|s| agent.service_now(&s.path, s.format()).is_none())
        .map(|s| s.path.as_str())
        .collect();
    if !services.is_empty() {
        parts.push(format!("the list of {}", shortened(&services)));
    }
    let statuses = agent.registrations.statuses();
    let registrations: Vec<&str> =
        statuses.iter().filter(|r| r.state == "pending").map(|r| r.path.as_str()).collect();
    if !registrations.is_empty() {
        parts.push(format!("the registration of {}", shortened(&registrations)));
    }
    parts.join("; ")
}

/// At most three names, then how many more.
fn shortened(names: &[&str]) -> String {
    match names.len() {
        0..=3 => names.join(", "),
        n => format!("{} and {} more", names[..3].join(", "), n - 3),
    }
}

/// Tells systemd (if `$NOTIFY_SOCKET` is set) what the agent is doing:
/// `READY=1` after the first sync, `WATCHDOG=1` at half `$WATCHDOG_USEC`
/// until shutdown. The notifier returned sends `STOPPING=1`.
pub(crate) fn announce(agent: &Arc<Agent>, templates: watch::Receiver<bool>) -> Option<Arc<Notifier>> {
    let notifier = Arc::new(Notifier::from_env()?);
    let (ready, ready_agent) = (notifier.clone(), agent.clone());
    agent.tasks.spawn(async move {
        let status = |pending: &str| ready.send(&format!("STATUS=waiting for {pending}"));
        if first_sync(&ready_agent, templates, status).await {
            tracing::info!("first sync done: ready");
            ready.send("READY=1\nSTATUS=serving: first sync done");
        }
    });
    if let Some(every) = watchdog_interval() {
        let (watchdog, agent) = (notifier.clone(), agent.clone());
        agent.clone().tasks.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = agent.cancel.cancelled() => return,
                    _ = ticks.tick() => watchdog.send("WATCHDOG=1"),
                }
            }
        });
    }
    Some(notifier)
}
