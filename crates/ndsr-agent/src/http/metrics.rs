//! `GET /metrics` and the count of every HTTP request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, gauge, histogram};

use crate::state::Agent;

/// Counts every HTTP request by route, method and status, times it, and
/// keeps the number being answered (blocking queries waiting included;
/// open event streams are not: they have been answered).
pub async fn count(request: Request, next: Next) -> Response {
    /// Leaves the in-flight count when the request ends, answered or dropped.
    struct InFlight;
    impl Drop for InFlight {
        fn drop(&mut self) {
            gauge!("ndsr_http_requests_in_flight").decrement(1.0);
        }
    }
    gauge!("ndsr_http_requests_in_flight").increment(1.0);
    let _in_flight = InFlight;
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    counter!("ndsr_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    histogram!("ndsr_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub async fn render(State(agent): State<Arc<Agent>>) -> Response {
    match crate::metrics::text(&agent) {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics are not installed").into_response(),
    }
}
