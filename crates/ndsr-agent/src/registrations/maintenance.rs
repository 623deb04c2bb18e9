//! Maintenance of the agent's registrations: the whole agent's (every
//! registration held, and every one added while it lasts) and a
//! registration's own (`/v1/maintenance/<path>` of a node the agent
//! holds). Each hold follows the marks ([`crate::hold::hold_marked`]): its
//! node is registered, and kept, marked not serving in its own format. A
//! registration's own mark outlives the agent's; neither outlives the
//! agent (the session's nodes go with it).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use super::*;
use crate::hold::{Maintenance, Target};

/// One maintenance asked for: why, and since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mark {
    /// Why (written where the format has room for it: nd's
    /// `maintenance` field).
    pub reason: Option<String>,
    /// Since when (ms since the epoch).
    pub since_ms: u64,
}

/// The maintenance asked for: the whole agent's, and registrations' own.
#[derive(Clone, Debug, Default)]
pub struct Marks {
    /// The whole agent's, if on.
    pub agent: Option<Mark>,
    /// Registrations' own, by registration path.
    pub paths: BTreeMap<String, Mark>,
}

/// A registration's maintenance, as its status shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusMark {
    /// Why.
    pub reason: Option<String>,
    /// Since when (ms since the epoch).
    pub since_ms: u64,
    /// `path` (its own, which wins) or `agent` (the whole agent's).
    pub by: &'static str,
}

impl Marks {
    /// The maintenance the registration of `path` is in: its own, else
    /// the whole agent's.
    pub fn of(&self, path: &str) -> Option<StatusMark> {
        let (mark, by) = match (self.paths.get(path), &self.agent) {
            (Some(own), _) => (own, "path"),
            (None, Some(agent)) => (agent, "agent"),
            (None, None) => return None,
        };
        Some(StatusMark { reason: mark.reason.clone(), since_ms: mark.since_ms, by })
    }

    /// The mark its hold writes.
    pub fn maintenance(&self, path: &str) -> Option<Maintenance> {
        self.of(path).map(|m| Maintenance { reason: m.reason })
    }
}

/// A mark asked for now: `reason`, since the earlier mark's time when
/// there was one (a new reason does not restart it).
fn mark_now(earlier: Option<&Mark>, reason: Option<&str>) -> Mark {
    let reason = reason.filter(|r| !r.is_empty()).map(str::to_string);
    Mark { reason, since_ms: earlier.map_or_else(now_ms, |m| m.since_ms) }
}

impl Registrations {
    /// Whether a drain has begun.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The maintenance asked for now.
    pub fn marks(&self) -> Marks {
        self.marks.borrow().clone()
    }

    /// The registration held whose node (or registration path) is `node`:
    /// its registration path and what it registers.
    pub fn held_target(&self, node: &str) -> Option<(String, Target)> {
        let held = lock(&self.held);
        let held = held.values().find(|h| {
            h.spec.path == node || h.status.borrow().node.as_deref().unwrap_or(&h.spec.path) == node
        })?;
        Some((held.spec.path.clone(), held.spec.what.target(&held.spec.path)))
    }

    /// Puts the whole agent in maintenance (`on`, for `reason`) or ends
    /// it. Registrations in their own maintenance stay in it.
    pub fn set_agent_maintenance(&self, agent: &Agent, on: bool, reason: Option<&str>) {
        self.marks.send_modify(|marks| {
            marks.agent = on.then(|| mark_now(marks.agent.as_ref(), reason));
        });
        agent.changed();
    }

    /// Puts the registration of `path` in its own maintenance (`on`, for
    /// `reason`) or ends it (the whole agent's, if on, still holds it);
    /// `false` when it is no longer held.
    pub fn set_path_maintenance(&self, agent: &Agent, path: &str, on: bool, reason: Option<&str>) -> bool {
        {
            // Under the table's lock: a registration removed meanwhile
            // leaves no mark behind (`forget_mark` runs after its removal).
            let held = lock(&self.held);
            if !held.contains_key(path) {
                return false;
            }
            self.marks.send_modify(|marks| {
                if on {
                    let mark = mark_now(marks.paths.get(path), reason);
                    marks.paths.insert(path.to_string(), mark);
                } else {
                    marks.paths.remove(path);
                }
            });
        }
        agent.changed();
        true
    }

    /// Forgets the own mark of `path`, a registration removed.
    pub(crate) fn forget_mark(&self, path: &str) {
        self.marks.send_if_modified(|marks| marks.paths.remove(path).is_some());
    }

    /// Waits (at most `bound`) until the node of every registration held
    /// (or of `only`) carries the mark asked for: a registration with no
    /// node now is written with it when it is registered. True when they
    /// all do.
    pub async fn applied(&self, agent: &Agent, only: Option<&str>, bound: Duration) -> bool {
        let mut changes = agent.changes();
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            changes.borrow_and_update();
            if self.pending(only).is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changes.changed()).await.map_or(true, |r| r.is_err()) {
                return self.pending(only).is_empty();
            }
        }
    }

    /// The registrations (all, or `only`) whose node does not carry the
    /// mark asked for yet, and those withheld (nerve) whose maintenance
    /// ended but that are not registered again yet.
    fn pending(&self, only: Option<&str>) -> Vec<String> {
        let marks = self.marks();
        let held = lock(&self.held);
        held.values()
            .filter(|h| only.is_none_or(|p| p == h.spec.path))
            .filter(|h| {
                let status = h.status.borrow();
                let wanted = marks.maintenance(&h.spec.path);
                (status.state == "registered" && status.carries != wanted)
                    || (status.state == "maintenance" && wanted.is_none())
            })
            .map(|h| h.spec.path.clone())
            .collect()
    }

    /// `GET /v1/maintenance`'s answer: the whole agent's maintenance, and
    /// each registration in maintenance (its own or the agent's) with the
    /// node held and whether that node carries the mark now (`marked`;
    /// false with no node: it is written marked when registered).
    pub fn maintenance_json(&self) -> serde_json::Value {
        let marks = self.marks();
        let registrations: Vec<serde_json::Value> = self
            .statuses()
            .into_iter()
            .filter_map(|status| {
                let mark = status.maintenance.clone()?;
                let marked = status.carries.is_some() || status.state == "maintenance";
                Some(serde_json::json!({
                    "path": status.path,
                    "node": status.node.as_deref().unwrap_or(&status.path),
                    "state": status.state,
                    "reason": mark.reason,
                    "since_ms": mark.since_ms,
                    "by": mark.by,
                    "marked": marked,
                }))
            })
            .collect();
        serde_json::json!({
            "maintenance": marks.agent.is_some(),
            "reason": marks.agent.as_ref().and_then(|m| m.reason.clone()),
            "since_ms": marks.agent.as_ref().map(|m| m.since_ms),
            "draining": self.draining(),
            "registrations": registrations,
        })
    }
}
