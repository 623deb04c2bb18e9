//! Draining a held registration before it goes: marked not serving in its
//! own format (readers and selectors stop picking it), a wait, then
//! removed. The stop of `ndsr register --drain` and of the agent's
//! registrations with `drain`.

use std::future::Future;
use std::time::Duration;

use ndsr::discovery::{detect, mark, Format, MarkError};

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

/// The format `target` is written in; `None` for data given as is (a
/// `[[register]]` `data`), whose format is the data's own.
pub fn format_of(target: &Target) -> Option<Format> {
    match target {
        Target::Node { .. } => None,
        Target::Announce(announcement) => Some(announcement.format()),
    }
}

/// Marks the node at `path`, which `registry` holds (a registration) in
/// `format` (`None`: the one its data looks like, as
/// `Registry::set_maintenance` detects it; nd if it says none), not
/// serving (`on`) or serving again, keeping its other fields: its
/// registration is rewritten, so that the registry keeps it so (until the
/// registration is written anew). Returns the format marked.
///
/// # Errors
/// [`MarkError::NoNode`], [`MarkError::NotAnObject`],
/// [`MarkError::Unmarkable`] (nerve), or the registry's error.
pub async fn mark_held(
    registry: &ndsr::Registry,
    format: Option<Format>,
    path: &str,
    on: bool,
    reason: Option<&str>,
) -> Result<Format, MarkError> {
    let Some((bytes, _)) = registry.read_raw(path).await? else {
        return Err(MarkError::NoNode { path: path.into() });
    };
    let Ok(serde_json::Value::Object(data)) = serde_json::from_slice(&bytes) else {
        return Err(MarkError::NotAnObject { path: path.into() });
    };
    let name = path.rsplit('/').next().unwrap_or_default();
    let format = format.or_else(|| detect([(name, &data)])).unwrap_or(Format::Nd);
    let marked = mark(format, &data, on, reason)?;
    let bytes = serde_json::to_vec(&marked).map_err(|_| MarkError::NotAnObject { path: path.into() })?;
    registry.set_node_raw(path, bytes).await?;
    Ok(format)
}

/// Begins draining the node at `path`, held for `target`: marks it not
/// serving, or removes it at once when it cannot be marked. The caller
/// then waits ([`wait`]) and removes the node.
pub async fn begin(registry: &ndsr::Registry, target: &Target, path: &str) -> Begun {
    match mark_held(registry, format_of(target), path, true, Some(DRAINING)).await {
        Ok(_) => Begun::Marked,
        Err(MarkError::Registry(e)) => Begun::MarkFailed(e.to_string()),
        Err(cannot) => {
            let _ = registry.unset(path).await;
            Begun::Withdrawn(cannot.to_string())
        }
    }
}

/// Waits `period`, or until `skip` completes; true when cut short.
pub async fn wait(period: Duration, skip: impl Future<Output = ()>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(period) => false,
        () = skip => true,
    }
}
