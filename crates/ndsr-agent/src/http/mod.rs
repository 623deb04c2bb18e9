//! The HTTP layer: the API (`api`, configuration releases in `config`,
//! elections in `elections`), the event streams (`events`), the dashboard
//! (`dashboard`), metrics (`metrics`) and the server (`server`), over the
//! domain. It depends on the domain; nothing in the domain depends on it.

mod api;
mod auth;
mod common;
mod config;
mod dashboard;
mod elections;
mod events;
mod front;
mod maintenance;
mod metrics;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Router};
use tower_http::classify::ServerErrorsFailureClass;

use self::common::{ApiError, Streams};
use crate::error::ErrorKind;
use crate::state::Agent;

/// The router, with every route, limit and check.
pub fn router(agent: Arc<Agent>) -> Router {
    let max_body = agent.config().http.max_body_bytes;
    Router::new()
        .route("/v1/nodes/{*path}", get(api::node))
        .route("/v1/watch/{*path}", get(events::watch))
        .route("/v1/services/{*path}", get(api::service))
        .route("/v1/pick/{*path}", get(api::pick))
        .route("/v1/config/{*path}", get(config::get).post(config::post))
        .route("/v1/elections/{*path}", get(elections::get))
        .route("/v1/registrations", get(api::registrations))
        .route(
            "/v1/registrations/{*path}",
            get(api::registration).put(api::put_registration).delete(api::delete_registration),
        )
        .route(
            "/v1/maintenance",
            get(maintenance::get).put(maintenance::put_agent).delete(maintenance::delete_agent),
        )
        .route("/v1/maintenance/{*path}", axum::routing::put(maintenance::put).delete(maintenance::delete))
        .route("/v1/health", get(api::health))
        .route("/v1/agent", get(dashboard::model_json))
        .route("/v1/dashboard/events", get(dashboard::events))
        .route("/metrics", get(metrics::render))
        .merge(dashboard::assets())
        .fallback(|| async { ApiError::not_found("no such route; see docs/AGENT.md".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorKind::NotAllowed,
                "method_not_allowed",
                "this route does not take that method".into(),
            )
        })
        // One layer call, the outermost first: each `Router::layer` boxes
        // the future of what it wraps again, for every request (one per
        // waiting client while blocking queries wait).
        .layer((
            tower_http::trace::TraceLayer::new_for_http().on_failure(log_failure),
            front::Front::new(agent.clone()),
            Extension(Arc::new(Streams::default())),
            DefaultBodyLimit::max(max_body),
        ))
        .with_state(agent)
}

/// Logs an answer tower-http counts as a failure (a 5xx, or an error in a
/// body). The API's own 5xx answers are expected (a health probe's 503
/// while ZooKeeper is away, `no_instance`, `too_many_streams`, a 502 from
/// ZooKeeper): DEBUG, as every answer. Only a 500 (the agent failed to
/// make its answer) is an error, and an error in a body a warning.
fn log_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    let latency_seconds = latency.as_secs_f64();
    match class {
        ServerErrorsFailureClass::StatusCode(status) if status == StatusCode::INTERNAL_SERVER_ERROR => {
            tracing::error!(
                status = status.as_u16(),
                latency_seconds,
                "answered 500: the agent failed to answer"
            );
        }
        ServerErrorsFailureClass::StatusCode(status) => {
            tracing::debug!(status = status.as_u16(), latency_seconds, "answered {status}");
        }
        ServerErrorsFailureClass::Error(e) => {
            tracing::warn!(latency_seconds, "an answer's body failed: {e}");
        }
    }
}
