//! `PUT` and `DELETE /v1/maintenance/<path>`: take an instance out of
//! rotation, or put it back, without deregistering it (the write token
//! is needed, as for every write).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ndsr::discovery::MarkError;
use serde::Deserialize;
use serde_json::json;

use super::common::{json_body, zk_path, ApiError, ApiResult};
use crate::drain::mark_held;
use crate::error::ErrorKind;
use crate::state::Agent;

/// The body of a `PUT` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    /// Why (kept in the nd format's `maintenance` field).
    reason: Option<String>,
}

/// `PUT /v1/maintenance/<path>` (body: optional `{"reason": "..."}`): marks
/// the instance not serving in its own format.
pub async fn put(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let path = zk_path(&agent, path)?;
    let body = match body {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Body::default(),
        other => json_body(other)?,
    };
    set(&agent, &path, true, body.reason.as_deref()).await
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
/// that the agent keeps it marked), else by a compare-and-set write.
async fn set(agent: &Agent, path: &str, on: bool, reason: Option<&str>) -> ApiResult<Response> {
    let marked = match agent.registrations.held_format(path) {
        Some(format) => mark_held(&agent.registry, format, path, on, reason).await,
        None => agent.registry.set_maintenance(path, on, reason).await,
    };
    let format = marked.map_err(api_error)?;
    agent.changed();
    Ok(Json(json!({ "path": path, "format": format.name(), "maintenance": on })).into_response())
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
