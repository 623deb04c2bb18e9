//! The agent's shutdown with `drain`: every registration is marked not
//! serving in its own format, kept for the period (or until a second
//! signal), then removed. Maintenance is no longer changed meanwhile.

use std::future::Future;
use std::time::Duration;

use super::*;
use crate::drain::{begin, wait, Begun};
use crate::hold::Target;

impl Registrations {
    /// Stops holding every registration, marks each node not serving (a
    /// nerve instance is removed at once), waits `period` or until `skip`
    /// completes, then removes them. New registrations wait meanwhile (the
    /// agent is stopping), and maintenance is no longer changed.
    pub async fn drain(&self, agent: &Agent, period: Duration, skip: impl Future<Output = ()>) {
        self.draining.store(true, std::sync::atomic::Ordering::SeqCst);
        agent.changed();
        let _changing = self.changing.lock().await;
        let held: Vec<Held> = std::mem::take(&mut *lock(&self.held)).into_values().collect();
        let mut tasks = Vec::new();
        for held in held {
            let _ = held.stop.send(Release::Keep);
            tasks.push(async move { held.task.await.ok().flatten().map(|node| (held.spec, node)) });
        }
        let nodes: Vec<(Target, String)> = futures::future::join_all(tasks)
            .await
            .into_iter()
            .flatten()
            .map(|(spec, node)| (spec.what.target(&spec.path), node))
            .collect();
        agent.changed();
        // All at once, within an operation timeout (the session timeout,
        // its default): a node not marked by then is still removed after
        // the period.
        let bound = agent.config().session_timeout.unwrap_or(ndsr::config::DEFAULT_SESSION_TIMEOUT);
        let marking = futures::future::join_all(nodes.iter().map(|(target, node)| async move {
            match begin(&agent.registry, target, node).await {
                Begun::Marked => tracing::warn!(%node, "draining: not serving"),
                Begun::Withdrawn(why) => tracing::warn!(%node, "draining: {why}: removed at once"),
                Begun::MarkFailed(why) => {
                    tracing::warn!(%node, "draining: marking it not serving failed: {why}")
                }
            }
        }));
        if tokio::time::timeout(bound, marking).await.is_err() {
            tracing::warn!(?bound, "draining: marking the registrations not serving did not finish in time");
        }
        if !nodes.is_empty() {
            wait(period, skip).await;
        }
        for (_, node) in &nodes {
            if let Err(e) = agent.registry.unset(node).await {
                tracing::warn!(%node, error = %e, "removing failed (it goes with the session)");
            }
        }
    }
}
