//! `GET /v1/elections/<path>`: an election's layouts, leader and
//! contenders (issue 26), in whichever layout its clients use (kazoo's,
//! Curator's `LeaderLatch` or `LeaderSelector`), read with
//! [`ndsr::election::status`]. The agent joins no election: it only reads.
//!
//! The agent follows the path's node as `/v1/nodes` does (its children are
//! the contenders), so `?index=&wait=` blocks until the node or its
//! children change, and `?stream` sends an event whenever the layouts or
//! the contenders change. Each answer reads the contenders (their nodes'
//! ids) from ZooKeeper, with the library's timeouts.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::Stream;
use ndsr::election::{Contender, ElectionStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use super::common::{block, read_headers, zk_path, ApiError, ApiResult, ReadQuery, StreamSlot, Streams};
use crate::state::{Agent, Held};

/// The query of `GET /v1/elections/<path>`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectionQuery {
    index: Option<u64>,
    wait: Option<String>,
    /// Server-Sent Events instead of one answer.
    stream: Option<String>,
}

/// `?stream`, `?stream=1` or `?stream=true` (`0` and `false` turn it off).
fn streamed(value: Option<&str>) -> ApiResult<bool> {
    match value {
        None | Some("0" | "false") => Ok(false),
        Some("" | "1" | "true") => Ok(true),
        Some(other) => Err(ApiError::bad(format!("stream={other:?}: give stream, stream=1 or stream=0"))),
    }
}

/// A contender as the API shows it.
fn contender_view(c: &Contender) -> Value {
    json!({"node": c.node, "id": c.id, "sequence": c.sequence, "layout": c.layout.name()})
}

/// An election as the API shows it, without its index.
fn election_view(path: &str, status: &ElectionStatus) -> Value {
    json!({
        "path": path,
        "layouts": status.layouts.iter().map(|l| l.name()).collect::<Vec<_>>(),
        "leader": status.leader().map(contender_view),
        "contenders": status.contenders.iter().map(contender_view).collect::<Vec<_>>(),
    })
}

/// The election at `path` now, with `index` (the followed node's).
async fn read(agent: &Agent, path: &str, index: u64) -> ApiResult<Value> {
    let status = ndsr::election::status(&agent.registry, path).await?;
    let mut body = election_view(path, &status);
    body["index"] = json!(index);
    Ok(body)
}

/// `GET /v1/elections/<path>`: `{path, layouts, leader, contenders,
/// index}` (a path with no contenders, or no node, has none: not a 404);
/// `?index=&wait=` blocks as on `/v1/nodes`; `?stream` is Server-Sent
/// Events (see [`election_events`]).
pub async fn get(
    State(agent): State<Arc<Agent>>,
    Extension(streams): Extension<Arc<Streams>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ElectionQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let path = zk_path(&agent, path)?;
    let Query(query) = query?;
    if streamed(query.stream.as_deref())? {
        if query.index.is_some() || query.wait.is_some() {
            return Err(ApiError::bad("stream takes no index or wait: it sends every change".into()));
        }
        let slot = streams.take(&agent)?;
        let rx = agent.node(&path).await?;
        let stream = election_events(agent, path, rx, slot);
        return Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response());
    }
    let wait = ReadQuery { index: query.index, wait: query.wait, format: None }.wait(&agent)?;
    let rx = agent.node(&path).await?;
    let index = block(&agent, &streams, rx, wait).await?.index;
    // Boxed: a waiting query's future stays small (one per waiting client).
    let body = Box::pin(read(&agent, &path, index)).await?;
    Ok((read_headers(index, false), Json(body)).into_response())
}

/// The events of one election: `event: election` with the JSON of
/// [`get`] now and whenever the layouts or contenders change (`id:` is the
/// index), and `event: failure` with `{"error", "code"}` when they cannot
/// be read (ZooKeeper unreachable); read again on each change of the node
/// (its children) and of the connection, until shutdown. The path is held
/// (in use) while the stream is open.
fn election_events(
    agent: Arc<Agent>,
    path: String,
    rx: Held<Arc<ndsr::Snapshot>>,
    slot: StreamSlot,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let states = agent.registry.state_changes();
    let last: Option<Value> = None;
    let open = (crate::metrics::OpenStream::new("/v1/elections/{*path}"), slot);
    futures::stream::unfold(
        (agent, path, rx, states, last, open),
        |(agent, path, mut rx, mut states, last, open)| async move {
            loop {
                let index = rx.borrow_and_update().as_ref().map(|v| v.index);
                if let Some(index) = index {
                    // A read waits for a connection (within the library's
                    // timeout); shutdown does not wait for it.
                    let read = tokio::select! {
                        () = agent.cancel.cancelled() => return None,
                        read = ndsr::election::status(&agent.registry, &path) => read,
                    };
                    let (shown, event) = match read {
                        Ok(status) => {
                            let view = election_view(&path, &status);
                            let mut body = view.clone();
                            body["index"] = json!(index);
                            (view, Event::default().event("election").id(index.to_string()).json_data(&body))
                        }
                        Err(e) => {
                            let e = ApiError::from(e);
                            let body = json!({"error": e.message, "code": e.code});
                            (body.clone(), Event::default().event("failure").json_data(&body))
                        }
                    };
                    if last.as_ref() != Some(&shown) {
                        let event =
                            event.unwrap_or_else(|e| Event::default().event("failure").data(e.to_string()));
                        return Some((Ok(event), (agent, path, rx, states, Some(shown), open)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndsr::election::ElectionLayout;

    /// The size of the future a four-argument handler returns.
    fn future_size<A, B, C, D, F: std::future::Future>(_: impl FnOnce(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_waiting_election_read_costs_little_memory() {
        assert!(future_size(get) <= 1024, "get: {} bytes", future_size(get));
    }

    #[test]
    fn stream_is_a_flag() {
        assert!(
            streamed(Some("")).unwrap() && streamed(Some("1")).unwrap() && streamed(Some("true")).unwrap()
        );
        assert!(!streamed(None).unwrap() && !streamed(Some("0")).unwrap());
        let refused = streamed(Some("yes")).unwrap_err();
        assert_eq!(refused.message, "stream=\"yes\": give stream, stream=1 or stream=0");
    }

    fn contender(node: &str, layout: ElectionLayout, sequence: i64, id: &str) -> Contender {
        Contender { node: node.into(), layout, sequence, id: id.into() }
    }

    #[test]
    fn the_view_names_the_leader_only_for_one_layout() {
        let a = contender("a__lock__0000000001", ElectionLayout::Kazoo, 1, "a");
        let b = contender("b__lock__0000000002", ElectionLayout::Kazoo, 2, "b");
        let one = ElectionStatus { layouts: vec![ElectionLayout::Kazoo], contenders: vec![a.clone(), b] };
        let view = election_view("/e", &one);
        assert_eq!(view["layouts"], json!(["kazoo"]));
        assert_eq!(
            view["leader"],
            json!({"node": "a__lock__0000000001", "id": "a", "sequence": 1, "layout": "kazoo"})
        );
        assert_eq!(view["contenders"][1]["id"], "b");
        let latch = contender("_c_x-latch-0000000003", ElectionLayout::CuratorLatch, 3, "c");
        let mixed = ElectionStatus {
            layouts: vec![ElectionLayout::Kazoo, ElectionLayout::CuratorLatch],
            contenders: vec![a, latch],
        };
        let view = election_view("/e", &mixed);
        assert_eq!(view["leader"], Value::Null);
        assert_eq!(view["layouts"], json!(["kazoo", "curator-latch"]));
        let none = election_view("/e", &ElectionStatus { layouts: vec![], contenders: vec![] });
        assert_eq!(none, json!({"path": "/e", "layouts": [], "leader": null, "contenders": []}));
    }
}
