//! Server-Sent Events of a node (`GET /v1/watch`). Blocking queries
//! (`?index=&wait=`, Consul's) are `common::block`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::Stream;

use super::common::{node_view, zk_path, ApiResult, StreamSlot, Streams};
use crate::state::{Agent, Held};

/// `GET /v1/watch/<path>`: Server-Sent Events, `event: node` with the
/// node's JSON (as `GET /v1/nodes`) now and on every change of the node or
/// of its freshness; `id:` is its index. Beyond `[http] max_streams`, 503
/// `too_many_streams`.
pub async fn watch(
    State(agent): State<Arc<Agent>>,
    Extension(streams): Extension<Arc<Streams>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let path = zk_path(&agent, path)?;
    let slot = streams.take(&agent)?;
    let rx = agent.node(&path).await?;
    let stream = node_events(agent, rx, slot);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// The events of one node: each change of its snapshot, and each change
/// of the connection state (the stale marker), until shutdown. The path is
/// held (in use, never let go) while the stream is open.
fn node_events(
    agent: Arc<Agent>,
    rx: Held<Arc<ndsr::Snapshot>>,
    slot: StreamSlot,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let states = agent.registry.state_changes();
    let last: Option<(u64, bool)> = None;
    let open = (crate::metrics::OpenStream::new("/v1/watch/{*path}"), slot);
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
