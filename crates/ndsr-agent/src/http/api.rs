//! The HTTP API's handlers: reads (nodes, services, picks), the
//! registrations, and health.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::auth::is_owner;
use super::common::{
    block, json_body, node_view_at, read_answer, read_headers, service_json_at, status_for, zk_path,
    ApiError, ApiResult, ReadQuery, Streams,
};
use crate::config::{parse_format, RegisterFields};
use crate::error::ErrorKind;
use crate::registration::{Put, Source, Spec, Status};
use crate::registrations::api_check_allowed;
use crate::state::Agent;
use crate::views::instance_view;

/// `GET /v1/nodes/<path>`: the snapshot; 404 (with the same body) for a
/// missing node, so a client can block until it appears.
pub async fn node(
    State(agent): State<Arc<Agent>>,
    Extension(streams): Extension<Arc<Streams>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let path = zk_path(&agent, path)?;
    let Query(query) = query?;
    if query.format.is_some() {
        return Err(ApiError::bad("format is for /v1/services and /v1/pick".into()));
    }
    let wait = query.wait(&agent)?;
    let rx = agent.node(&path).await?;
    let versioned = block(&agent, &streams, rx, wait).await?;
    let since = agent.stale_since(&versioned.value.path);
    let status = if versioned.value.exists() { StatusCode::OK } else { StatusCode::NOT_FOUND };
    Ok(read_answer(status, &versioned, since, || node_view_at(&versioned, since)))
}

/// `GET /v1/services/<path>?format=`: the decoded instances, in the
/// format asked, else the `[[service]]`'s, else the one detected; 404
/// (with the same body) for a directory that does not exist, as
/// `/v1/nodes` answers.
pub async fn service(
    State(agent): State<Arc<Agent>>,
    Extension(streams): Extension<Arc<Streams>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let path = zk_path(&agent, path)?;
    let Query(query) = query?;
    let wait = query.wait(&agent)?;
    let format = query.format()?.or_else(|| configured_format(&agent, &path));
    let rx = agent.service(&path, format).await?;
    let versioned = block(&agent, &streams, rx, wait).await?;
    let since = agent.stale_since(&versioned.value.path);
    let status = if dir_exists(&agent, &path) { StatusCode::OK } else { StatusCode::NOT_FOUND };
    Ok(read_answer(status, &versioned, since, || service_json_at(&versioned, since)))
}

/// The format of the `[[service]]` at `path`, if the file names one.
fn configured_format(agent: &Agent, path: &str) -> Option<ndsr::discovery::Format> {
    agent.config().services.iter().find(|s| s.path == path).and_then(|s| s.format())
}

/// Whether the service directory exists, as the registry's cache knows
/// it (following a service watches its directory); unknown counts as
/// existing.
fn dir_exists(agent: &Agent, path: &str) -> bool {
    agent.registry.get_cached(path).ok().flatten().is_none_or(|dir| dir.exists())
}

/// `?strategy=&label=&prefer=&include_draining=&format=` of a pick.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PickQuery {
    strategy: Option<String>,
    /// KEY=VALUE or KEY!=VALUE, several joined by commas.
    label: Option<String>,
    /// KEY=VALUE: prefer these, fall back to the others.
    prefer: Option<String>,
    #[serde(default)]
    include_draining: bool,
    format: Option<String>,
}

/// `GET /v1/pick/<path>`: one instance; 503 with the reason when none can be picked.
pub async fn pick(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PickQuery>, QueryRejection>,
) -> ApiResult<Response> {
    use ndsr::discovery::{SelectorSpec, SpecError};
    let path = zk_path(&agent, path)?;
    let Query(query) = query?;
    let strategy = query.strategy.as_deref().unwrap_or("round_robin");
    let mut spec = SelectorSpec::new(
        strategy.parse().map_err(|e| ApiError::bad(format!("strategy={strategy:?}: {e}")))?,
    );
    spec.include_draining = query.include_draining;
    let format = query.format.as_deref().map(parse_format).transpose().map_err(ApiError::bad)?;
    let format = format.or_else(|| configured_format(&agent, &path));
    for label in query.label.iter().flat_map(|l| l.split(',')) {
        spec.labels.push(SelectorSpec::parse_label(label).map_err(|e| match e {
            SpecError::NoKey(_) => ApiError::bad(format!("label={label:?} has no key")),
            _ => ApiError::bad(format!("label={label:?} is not KEY=VALUE or KEY!=VALUE")),
        })?);
    }
    if let Some(p) = &query.prefer {
        let zone = SelectorSpec::parse_prefer(p)
            .map_err(|_| ApiError::bad(format!("prefer={p:?} is not KEY=VALUE")))?;
        spec.prefer = Some(zone);
    }
    let selector = agent.selector(&path, format, &spec)?;
    let rx = agent.service(&path, format).await?;
    let versioned = rx.borrow().clone().ok_or_else(|| ApiError::unavailable("no list yet".into()))?;
    let picked = selector
        .pick(&versioned.value.instances)
        .map_err(|none| ApiError::new(ErrorKind::Unavailable, "no_instance", format!("{path}: {none}")))?;
    let body = json!({"path": path, "index": versioned.index, "instance": instance_view(&picked)});
    Ok((read_headers(versioned.index, agent.stale_since(&path).is_some()), Json(body)).into_response())
}

/// `GET /v1/registrations`: the checks whole only for the token's holder.
pub async fn registrations(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> Response {
    let owner = is_owner(&agent, &headers);
    let statuses: Vec<Status> =
        agent.registrations.statuses().into_iter().map(|s| status_for(owner, s)).collect();
    Json(json!({"registrations": statuses})).into_response()
}

/// `GET /v1/registrations/<path>`: the check whole only for the token's holder.
pub async fn registration(
    State(agent): State<Arc<Agent>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let path = zk_path(&agent, path)?;
    match agent.registrations.status(&path) {
        Some(status) => Ok(Json(status_for(is_owner(&agent, &headers), status)).into_response()),
        None => Err(ApiError::not_found(format!("the agent holds no registration at {path}"))),
    }
}

/// `PUT /v1/registrations/<path>`: hold an ephemeral node. 201 new, 200
/// replaced in place or unchanged, 202 accepted but not written yet
/// (ZooKeeper unreachable, or no answer within 15 s: the registry keeps
/// trying).
pub async fn put_registration(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let path = zk_path(&agent, path)?;
    let body: RegisterFields = json_body(body)?;
    let config = agent.config();
    if body.path.is_some() {
        return Err(ApiError::bad("the path is the URL's, not the body's".into()));
    }
    let what = body.what(&path, |p| config.allows(p)).map_err(ApiError::bad)?;
    let checked = body.checked().map_err(ApiError::bad)?;
    if let Some(checked) = &checked {
        api_check_allowed(&config.http, &checked.check)?;
    }
    let from_file = agent.config().registrations.iter().any(|r| r.path == path);
    if from_file {
        return Err(ApiError::new(
            ErrorKind::Conflict,
            "conflict",
            format!("{path} is registered by the config file; change it there"),
        ));
    }
    let spec = Spec { path: path.clone(), what, checked, source: Source::Api };
    let (put, status) = agent.registrations.put(&agent, spec, true).await?;
    let code = match (put, status.state) {
        (_, "retrying" | "pending") => StatusCode::ACCEPTED,
        (Put::Created, _) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    // The writer holds the token: the whole check.
    Ok((code, Json(status.for_owner())).into_response())
}

/// `DELETE /v1/registrations/<path>`: stop holding it; the node is removed now.
pub async fn delete_registration(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let path = zk_path(&agent, path)?;
    if agent.config().registrations.iter().any(|r| r.path == path) {
        return Err(ApiError::new(
            ErrorKind::Conflict,
            "conflict",
            format!("{path} is registered by the config file; remove it there and reload (SIGHUP)"),
        ));
    }
    if agent.registrations.remove(&agent, &path).await {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("the agent holds no registration at {path}")))
    }
}

/// `GET /v1/health`: 200 while connected to ZooKeeper and every
/// template's last render succeeded, else 503 (`degraded`), with
/// `templates` listing the failing ones and why.
pub async fn health(State(agent): State<Arc<Agent>>) -> Response {
    let state = agent.registry.state();
    let connected = state == ndsr::State::Connected;
    let failing = agent.templates.failed();
    let healthy = connected && failing.is_empty();
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "zookeeper": state.name(),
        "registrations": agent.registrations.statuses().len(),
        "templates": failing,
    });
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a four-argument handler returns.
    fn future_size<A, B, C, D, F: std::future::Future>(_: impl FnOnce(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A waiting blocking query's future lives as long as it waits (one
    /// per waiting client): keep it small (776 bytes when written).
    #[test]
    fn a_waiting_read_costs_little_memory() {
        assert!(future_size(node) <= 1024, "node: {} bytes", future_size(node));
        assert!(future_size(service) <= 1024, "service: {} bytes", future_size(service));
    }
}
