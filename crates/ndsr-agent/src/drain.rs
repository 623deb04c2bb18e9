//! Draining a held registration before it goes: marked not serving in its
//! own format (readers and selectors stop picking it), a wait, then
//! removed. The stop of `ndsr register --drain` and of the agent's
//! registrations with `drain`.

use std::future::Future;
use std::time::Duration;

use ndsr::discovery::{mark, Format};

use crate::hold::Target;

/// The reason written where the format has room for one (nd's
/// `maintenance` field).
pub const DRAINING: &str = "draining";

/// How a drain began.
#[derive(Debug, PartialEq, Eq)]
pub enum Begun {
    /// Marked not serving.
    Marked,
    /// Not marked (a nerve instance, data that is no JSON object, no node
    /// to mark): removed at once instead, for this reason. The period is
    /// still waited, so that the process outlives its last connections.
    Withdrawn(String),
    /// Marking failed, for this reason (the node stays serving until it is
    /// removed).
    MarkFailed(String),
}

/// The format `target` is written in.
fn format_of(target: &Target) -> Format {
    match target {
        Target::Node { .. } => Format::Nd,
        Target::Announce(announcement) => announcement.format(),
    }
}

/// Marks the node at `path` (held for `target` by `registry`) not serving,
/// keeping its other fields: its registration is rewritten, so that the
/// registry keeps it so. `Err((true, why))`: it cannot be marked (a
/// nerve instance, no node, data that is no JSON object); `Err((false,
/// why))`: marking failed.
async fn mark_draining(registry: &ndsr::Registry, target: &Target, path: &str) -> Result<(), (bool, String)> {
    let format = format_of(target);
    let read = registry.read_raw(path).await.map_err(|e| (false, e.to_string()))?;
    let Some((bytes, _)) = read else { return Err((true, format!("{path}: no node to mark"))) };
    let Ok(serde_json::Value::Object(data)) = serde_json::from_slice(&bytes) else {
        return Err((true, format!("{path}: the node's data is not a JSON object")));
    };
    let marked = mark(format, &data, true, Some(DRAINING)).map_err(|e| (true, e.to_string()))?;
    let bytes = serde_json::to_vec(&marked).map_err(|e| (false, e.to_string()))?;
    registry.set_node_raw(path, bytes).await.map_err(|e| (false, e.to_string()))
}

/// Begins draining the node at `path`, held for `target`: marks it not
/// serving, or removes it at once when it cannot be marked. The caller
/// then waits ([`wait`]) and removes the node.
pub async fn begin(registry: &ndsr::Registry, target: &Target, path: &str) -> Begun {
    match mark_draining(registry, target, path).await {
        Ok(()) => Begun::Marked,
        Err((true, why)) => {
            let _ = registry.unset(path).await;
            Begun::Withdrawn(why)
        }
        Err((false, why)) => Begun::MarkFailed(why),
    }
}

/// Waits `period`, or until `skip` completes; true when cut short.
pub async fn wait(period: Duration, skip: impl Future<Output = ()>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(period) => false,
        () = skip => true,
    }
}
