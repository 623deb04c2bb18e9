//! Blocking queries (`?index=&wait=`, Consul's) and Server-Sent Events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;

use super::api::{node_view, zk_path, ApiError, ApiResult};
use super::state::{Agent, Held, Versioned};

/// The feed's value now, or (for a blocking query `(index, wait)`) once
/// its index passes `index`, or when `wait` is up (then the same value
/// again, as Consul answers). The path is held (in use) meanwhile.
pub async fn block<T: Clone>(
    agent: &Agent,
    mut rx: Held<T>,
    wait: Option<(u64, Duration)>,
) -> ApiResult<Versioned<T>> {
    if let Some((index, wait)) = wait {
        // A little jitter, so that many clients woken together do not come
        // back together (Consul adds up to wait/16).
        let jitter = wait.mul_f64(rand::random::<f64>() / 16.0);
        let passed = rx.wait_for(|v| v.as_ref().is_some_and(|v| v.index > index));
        tokio::select! {
            () = agent.cancel.cancelled() => {}
            _ = tokio::time::timeout(wait + jitter, passed) => {}
        }
    }
    let value = rx.borrow().clone();
    value.ok_or_else(|| ApiError::unavailable("no value yet".into()))
}

/// `GET /v1/watch/<path>`: Server-Sent Events, `event: node` with the
/// node's JSON (as `GET /v1/nodes`) now and on every change of the node or
/// of its freshness; `id:` is its index.
pub async fn watch(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let path = zk_path(&agent, path)?;
    let rx = agent.node(&path).await?;
    let stream = node_events(agent, rx);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// The events of one node: each change of its snapshot, and each change
/// of the connection state (the stale marker), until shutdown. The path is
/// held (in use, never let go) while the stream is open.
fn node_events(
    agent: Arc<Agent>,
    rx: Held<Arc<ndsr::Snapshot>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let states = agent.registry.state_changes();
    let last: Option<(u64, bool)> = None;
    let open = super::metrics::OpenStream::new("/v1/watch/{*path}");
    futures::stream::unfold(
        (agent, rx, states, last, open),
        |(agent, mut rx, mut states, last, open)| async move {
            loop {
                let current = rx.borrow_and_update().clone();
                if let Some(current) = current {
                    let view = node_view(&agent, &current);
                    let key = (view.index, view.stale);
                    if last != Some(key) {
                        let event = Event::default()
                            .event("node")
                            .id(view.index.to_string())
                            .json_data(&view)
                            .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()));
                        return Some((Ok(event), (agent, rx, states, Some(key), open)));
                    }
                }
                tokio::select! {
                    () = agent.cancel.cancelled() => return None,
                    changed = rx.changed() => if changed.is_err() { return None },
                    changed = states.changed() => if changed.is_err() { return None },
                }
            }
        },
    )
}
