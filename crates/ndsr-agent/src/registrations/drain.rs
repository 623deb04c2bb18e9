//! The agent's shutdown with `drain`: every registration is marked not
//! serving in its own format, kept for the period (or until a second
//! signal), then removed. And which held registration a node is (for
//! `/v1/maintenance`).

use std::future::Future;
use std::time::Duration;

use super::*;
use crate::drain::{begin, format_of, wait, Begun};

impl Registrations {
    /// Stops holding every registration, marks each node not serving (a
    /// nerve instance is removed at once), waits `period` or until `skip`
    /// completes, then removes them. New registrations wait meanwhile (the
    /// agent is stopping).
    pub async fn drain(&self, agent: &Agent, period: Duration, skip: impl Future<Output = ()>) {
        let _changing = self.changing.lock().await;
        let held: Vec<Held> = std::mem::take(&mut *lock(&self.held)).into_values().collect();
        let mut nodes = Vec::new();
        for held in held {
            let _ = held.stop.send(Release::Keep);
            if let Ok(Some(node)) = held.task.await {
                nodes.push((held.spec.what.target(&held.spec.path), node));
            }
        }
        agent.changed();
        for (target, node) in &nodes {
            match begin(&agent.registry, target, node).await {
                Begun::Marked => tracing::warn!(%node, "draining: not serving"),
                Begun::Withdrawn(why) => tracing::warn!(%node, "draining: {why}: removed at once"),
                Begun::MarkFailed(why) => {
                    tracing::warn!(%node, "draining: marking it not serving failed: {why}")
                }
            }
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

    /// The format of the registration held whose node is `node`, if any.
    pub fn held_format(&self, node: &str) -> Option<ndsr::discovery::Format> {
        let held = lock(&self.held);
        let held =
            held.values().find(|h| h.status.borrow().node.as_deref().unwrap_or(&h.spec.path) == node)?;
        Some(format_of(&held.spec.what.target(&held.spec.path)))
    }
}
