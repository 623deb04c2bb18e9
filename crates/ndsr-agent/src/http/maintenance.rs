//! `/v1/maintenance`: the whole agent in maintenance (`PUT`, `DELETE`,
//! `GET`), and `PUT` and `DELETE /v1/maintenance/<path>`: take an
//! instance out of rotation, or put it back, without deregistering it (the
//! write token is needed, as for every write). While the agent drains,
//! changes are refused (503 `draining`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ndsr::discovery::MarkError;
use serde::Deserialize;
use serde_json::json;

use super::common::{json_body, zk_path, ApiError, ApiResult};
use crate::error::ErrorKind;
use crate::state::Agent;

/// The body of a `PUT` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    /// Why (kept in the nd format's `maintenance` field).
    reason: Option<String>,
}

/// The optional body: empty (or blank) is none.
fn body(body: Result<Bytes, BytesRejection>) -> ApiResult<Body> {
    match body {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Body::default()),
        other => json_body(other),
    }
}

/// 503 `draining` while the agent drains: its registrations are being
/// marked and removed, and stay so.
fn refuse_while_draining(agent: &Agent) -> ApiResult<()> {
    if agent.registrations.draining() {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "draining",
            "the agent is draining its registrations before it stops: maintenance cannot change now".into(),
        ));
    }
    Ok(())
}

/// How long a change waits for the nodes to carry it: the session
/// timeout, as a drain's marking.
fn bound(agent: &Agent) -> std::time::Duration {
    agent.config().session_timeout.unwrap_or(ndsr::config::DEFAULT_SESSION_TIMEOUT)
}

/// `GET /v1/maintenance`: the whole agent's maintenance and each
/// registration in maintenance.
pub async fn get(State(agent): State<Arc<Agent>>) -> Response {
    Json(agent.registrations.maintenance_json()).into_response()
}

/// `PUT /v1/maintenance` (body: optional `{"reason": "..."}`): puts the
/// whole agent in maintenance: every registration held, and every one
/// added while it lasts, marked not serving in its own format (a nerve
/// instance withdrawn).
pub async fn put_agent(
    State(agent): State<Arc<Agent>>,
    given: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let given = body(given)?;
    set_agent(&agent, true, given.reason.as_deref()).await
}

/// `DELETE /v1/maintenance`: ends the whole agent's maintenance
/// (registrations in their own stay in it).
pub async fn delete_agent(State(agent): State<Arc<Agent>>) -> ApiResult<Response> {
    set_agent(&agent, false, None).await
}

/// Sets the whole agent's maintenance and answers once every node carries
/// it (200), or after the bound with some not yet (202: the agent keeps
/// at it). Refused while the agent drains: checked under the
/// registrations' `changing` lock, which a drain takes before it marks
/// them, so a change never undoes a drain's marks.
async fn set_agent(agent: &Agent, on: bool, reason: Option<&str>) -> ApiResult<Response> {
    {
        refuse_while_draining(agent)?;
        let _changing = agent.registrations.changing.lock().await;
        refuse_while_draining(agent)?;
        agent.registrations.set_agent_maintenance(agent, on, reason);
    }
    let applied = agent.registrations.applied(agent, None, bound(agent)).await;
    let status = if applied { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, Json(agent.registrations.maintenance_json())).into_response())
}

/// `PUT /v1/maintenance/<path>` (body: optional `{"reason": "..."}`): marks
/// the instance not serving in its own format.
pub async fn put(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    given: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let path = zk_path(&agent, path)?;
    let given = body(given)?;
    set(&agent, &path, true, given.reason.as_deref()).await
}

/// `DELETE /v1/maintenance/<path>`: marks the instance serving again.
pub async fn delete(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let path = zk_path(&agent, path)?;
    set(&agent, &path, false, None).await
}

/// Marks `path`: through its registration when the agent holds it (so
/// that the agent keeps it marked, whenever it writes it), else by a
/// compare-and-set write.
///
/// Under the registrations' `changing` lock until the mark is asked for:
/// a registration being replaced (out of the table while its old hold
/// ends) is found once its new hold is in, not written behind its back,
/// and a drain that began is seen (refused), never undone.
async fn set(agent: &Agent, path: &str, on: bool, reason: Option<&str>) -> ApiResult<Response> {
    // At once while draining (a drain holds the lock to its end); again
    // under the lock, for one that began meanwhile.
    refuse_while_draining(agent)?;
    let changing = agent.registrations.changing.lock().await;
    refuse_while_draining(agent)?;
    let Some((registration, target)) = agent.registrations.held_target(path) else {
        let format = agent.registry.set_maintenance(path, on, reason).await.map_err(api_error)?;
        drop(changing);
        agent.changed();
        return Ok(Json(json!({ "path": path, "format": format.name(), "maintenance": on })).into_response());
    };
    let format = target.mark_format();
    if target.marked(None).is_none() {
        return Err(api_error(MarkError::Unmarkable(format)));
    }
    if !agent.registrations.set_path_maintenance(agent, &registration, on, reason) {
        return Err(ApiError::not_found(format!("{path}: the agent no longer holds it")));
    }
    drop(changing);
    let applied = agent.registrations.applied(agent, Some(&registration), bound(agent)).await;
    // The whole agent's maintenance, if on, still holds it after a DELETE.
    let now = agent.registrations.marks().maintenance(&registration).is_some();
    let status = if applied { StatusCode::OK } else { StatusCode::ACCEPTED };
    let node = agent.registrations.status(&registration).and_then(|s| s.node).unwrap_or(registration);
    Ok((status, Json(json!({ "path": node, "format": format.name(), "maintenance": now }))).into_response())
}

fn api_error(e: MarkError) -> ApiError {
    match e {
        MarkError::Registry(e) => e.into(),
        MarkError::NoNode { .. } => ApiError::not_found(e.to_string()),
        MarkError::Unmarkable(_) | MarkError::NotAnObject { .. } | MarkError::NotAnInstance { .. } => {
            ApiError::new(ErrorKind::BadRequest, "not_markable", e.to_string())
        }
        other => ApiError::new(ErrorKind::Conflict, "conflict", other.to_string()),
    }
}
