//! The first sync (what `READY=1` and `--once` wait for) and systemd's
//! notifications through [`crate::notify`].

use std::sync::Arc;

use tokio::sync::watch;

use crate::notify::{watchdog_interval, Notifier};
use crate::state::Agent;

/// Waits for the first sync: every template's first render done (or
/// given up), the session connected, every configured service listed, and
/// no registration still being written. `false` if the agent stopped
/// first.
pub(crate) async fn first_sync(agent: &Agent, mut templates: watch::Receiver<bool>) -> bool {
    let mut changes = agent.changes();
    tokio::select! {
        () = agent.cancel.cancelled() => return false,
        settled = templates.wait_for(|s| *s) => if settled.is_err() { return false },
    }
    loop {
        changes.borrow_and_update();
        if synced(agent) {
            return true;
        }
        tokio::select! {
            () = agent.cancel.cancelled() => return false,
            changed = changes.changed() => if changed.is_err() { return false },
        }
    }
}

/// Whether the session is connected, every configured service has a list
/// and no registration is pending.
fn synced(agent: &Agent) -> bool {
    let config = agent.config();
    agent.registry.state() == ndsr::State::Connected
        && config.services.iter().all(|s| agent.service_now(&s.path, s.format()).is_some())
        && agent.registrations.statuses().iter().all(|r| r.state != "pending")
}

/// Tells systemd (if `$NOTIFY_SOCKET` is set) what the agent is doing:
/// `READY=1` after the first sync, `WATCHDOG=1` at half `$WATCHDOG_USEC`
/// until shutdown. The notifier returned sends `STOPPING=1`.
pub(crate) fn announce(agent: &Arc<Agent>, templates: watch::Receiver<bool>) -> Option<Arc<Notifier>> {
    let notifier = Arc::new(Notifier::from_env()?);
    notifier.send("STATUS=waiting for the first sync (ZooKeeper, services, templates)");
    let (ready, ready_agent) = (notifier.clone(), agent.clone());
    agent.tasks.spawn(async move {
        if first_sync(&ready_agent, templates).await {
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
