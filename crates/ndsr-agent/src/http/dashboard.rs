//! The live web dashboard: static assets embedded in the binary, and the
//! model they show (`GET /v1/agent`, and `GET /v1/dashboard/events`, which
//! sends it again on every change).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use futures::Stream;
use serde_json::{json, Value};

use super::auth::is_owner;
use super::common::{service_json, status_for, ApiResult, StreamSlot, Streams};
use crate::state::Agent;
use crate::views::millis;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const ELECTIONS: &str = include_str!("assets/elections.js");
const STYLE: &str = include_str!("assets/style.css");

/// At most this many models a second go to each dashboard.
const MIN_GAP: Duration = Duration::from_millis(100);

/// `/`, `/assets/app.js`, `/assets/elections.js`, `/assets/style.css`.
pub fn assets() -> Router<Arc<Agent>> {
    let asset = |body: &'static str, kind: &'static str| {
        get(move || async move {
            ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response()
        })
    };
    Router::new()
        .route("/", asset(INDEX, "text/html; charset=utf-8"))
        .route("/assets/app.js", asset(SCRIPT, "text/javascript; charset=utf-8"))
        .route("/assets/elections.js", asset(ELECTIONS, "text/javascript; charset=utf-8"))
        .route("/assets/style.css", asset(STYLE, "text/css; charset=utf-8"))
}

/// Everything the dashboard shows; the registrations' whole checks only
/// for the token's holder (`owner`), their kind and target otherwise.
pub fn model(agent: &Agent, owner: bool) -> Value {
    let config = agent.config();
    let stats = agent.registry.stats();
    let marks = agent.registrations.marks();
    let services: Vec<Value> = config
        .services
        .iter()
        .map(|service| {
            let mut body = match agent.service_now(&service.path, service.format()) {
                Some(listing) => service_json(agent, &listing),
                None => json!({"path": service.path, "instances": [], "loading": true}),
            };
            body["name"] = json!(service.name());
            body
        })
        .collect();
    json!({
        "agent": {
            "version": env!("CARGO_PKG_VERSION"),
            "started_ms": millis(agent.started),
            "readonly": config.http.readonly,
            "writes": config.token.is_some() && !config.http.readonly,
            "roots": config.roots,
            "config": config.file_path.display().to_string(),
            // The whole agent's maintenance (`null`: none), and whether it drains.
            "maintenance": marks.agent,
            "draining": agent.registrations.draining(),
        },
        "session": {
            "state": stats.state.name(),
            "id": agent.registry.session().map(|s| format!("{:#x}", s.id().0)),
            "stale_since_ms": stats.disconnected_since.map(millis),
            "reconnects": stats.reconnects,
            "expiries": stats.expiries,
            "watched_paths": stats.watched_paths,
        },
        "services": services,
        "templates": templates(agent),
        "mirrors": mirrors(agent),
        "registrations": agent
            .registrations
            .statuses()
            .into_iter()
            .map(|s| status_for(owner, s))
            .collect::<Vec<_>>(),
    })
}

/// The running `[[mirror]]` entries: `name`, `source`, `destination`,
/// `lag_seconds`, `nodes_behind`, `nodes`, `passes`, `error`,
/// `caught_up_ms` (how long the last catch-up took).
fn mirrors(agent: &Agent) -> Vec<Value> {
    let mirrors = agent.mirrors.lock().unwrap_or_else(|e| e.into_inner());
    mirrors
        .iter()
        .map(|m| {
            let status = m.status.borrow();
            json!({
                "name": m.name,
                "source": m.source,
                "destination": m.destination,
                "lag_seconds": status.lag().as_secs_f64(),
                "nodes_behind": status.nodes_behind,
                "nodes": status.nodes,
                "passes": status.passes,
                "error": status.error,
                "caught_up_ms": status.caught_up.map(|d| d.as_millis() as u64),
            })
        })
        .collect()
}

/// The configured templates and their last render (`ok`, `error`,
/// `at_ms`, `since_ms`); `pending` until the first.
fn templates(agent: &Agent) -> Vec<Value> {
    let config = agent.config();
    config
        .templates
        .iter()
        .map(|t| {
            let destination = t.destination.display().to_string();
            match agent.templates.get(&destination) {
                Some(status) => json!(status),
                None => json!({"template": destination, "source": t.source.display().to_string(), "pending": true}),
            }
        })
        .collect()
}

/// `GET /v1/agent`: the model once.
pub async fn model_json(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> Response {
    let owner = is_owner(&agent, &headers);
    Json(model(&agent, owner)).into_response()
}

/// `GET /v1/dashboard/events`: `event: model` now and after every change
/// (at most ten a second), until shutdown. Beyond `[http] max_streams`,
/// 503 `too_many_streams`.
pub async fn events(
    State(agent): State<Arc<Agent>>,
    Extension(streams): Extension<Arc<Streams>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let owner = is_owner(&agent, &headers);
    let slot = streams.take(&agent)?;
    Ok(Sse::new(model_events(agent, owner, slot)).keep_alive(KeepAlive::default()).into_response())
}

fn model_events(
    agent: Arc<Agent>,
    owner: bool,
    slot: StreamSlot,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let changes = agent.changes();
    let open = (crate::metrics::OpenStream::new("/v1/dashboard/events"), slot);
    futures::stream::unfold(
        (agent, changes, true, open),
        move |(agent, mut changes, first, open)| async move {
            if !first {
                tokio::select! {
                    () = agent.cancel.cancelled() => return None,
                    changed = changes.changed() => if changed.is_err() { return None },
                }
                // Gather a burst of changes into one model.
                tokio::time::sleep(MIN_GAP).await;
            }
            changes.borrow_and_update();
            let event = Event::default().event("model").json_data(model(&agent, owner)).unwrap_or_default();
            Some((Ok(event), (agent, changes, false, open)))
        },
    )
}
