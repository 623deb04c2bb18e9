//! `GET /metrics` and the count of every HTTP request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, State};
use axum::http::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics::{counter, gauge, histogram};

use crate::state::Agent;

/// One HTTP request being answered, for its metrics: counted by route,
/// method and status and timed when [`Count::finish`]ed; the number being
/// answered (blocking queries waiting included; open event streams are
/// not: they have been answered) goes down when it is dropped, answered or
/// not.
#[derive(Debug)]
pub struct Count {
    route: String,
    method: String,
    started: Instant,
}

impl Count {
    /// A request from its head: the router has matched its route (or not).
    pub fn begin<B>(request: &Request<B>) -> Count {
        gauge!("ndsr_http_requests_in_flight").increment(1.0);
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
        Count { route, method: request.method().to_string(), started: Instant::now() }
    }

    /// The request's answer: counts it and records its duration.
    pub fn finish(self, response: Response) -> Response {
        let status = response.status().as_u16().to_string();
        let method = self.method.clone();
        counter!("ndsr_http_requests_total", "route" => self.route.clone(), "method" => method, "status" => status)
            .increment(1);
        histogram!("ndsr_http_request_duration_seconds", "route" => self.route.clone())
            .record(self.started.elapsed().as_secs_f64());
        response
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        gauge!("ndsr_http_requests_in_flight").decrement(1.0);
    }
}

/// `GET /metrics`.
pub async fn render(State(agent): State<Arc<Agent>>) -> Response {
    match crate::metrics::text(&agent) {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics are not installed").into_response(),
    }
}
