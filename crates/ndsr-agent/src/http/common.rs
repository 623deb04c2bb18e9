//! What the HTTP modules share: the domain's errors as answers (each
//! `ErrorKind` a status code), request paths and queries checked, and the
//! views and headers of read answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::parse_format;
use crate::error::{AgentError, ErrorKind};
use crate::registration::Status;
use crate::state::{Agent, Held, Versioned};
use crate::views::{listing_view, millis};

/// An error answer: the domain's error, with a status and a JSON body
/// `{"error": message, "code": code}`.
pub type ApiError = AgentError;

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

/// The status code of a kind of failure.
pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::NotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::TooMany => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
    }
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let status = status(self.kind);
        let mut response = (status, Json(json!({"error": self.message, "code": self.code}))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        ApiError::bad(format!("bad path: {}", e.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::bad(format!("bad query: {}", e.body_text()))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> ApiError {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                ErrorKind::TooLarge,
                "too_large",
                format!("the body is larger than the agent takes ([http] max_body_bytes): {}", e.body_text()),
            );
        }
        ApiError::bad(format!("bad body: {}", e.body_text()))
    }
}

/// A JSON body (whatever the Content-Type says: curl's `-d` says a form).
pub fn json_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let body = body?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("the body is not the JSON expected: {e}")))
}

/// The ZooKeeper path of a request path, checked: valid and within the roots.
pub fn zk_path(agent: &Agent, path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    let Path(path) = path?;
    let path = format!("/{path}");
    ndsr::validate_path(&path).map_err(ApiError::from)?;
    if !agent.config().allows(&path) {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "outside_roots",
            format!("{path} is outside the agent's roots ({})", agent.config().roots.join(", ")),
        ));
    }
    Ok(path)
}

/// `?wait=&index=` of a blocking query, and `?format=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    pub index: Option<u64>,
    pub wait: Option<String>,
    pub format: Option<String>,
}

impl ReadQuery {
    /// How long to block: `wait` (default 5m, at most `[http] max_wait`),
    /// only when an index is given.
    pub fn wait(&self, agent: &Agent) -> ApiResult<Option<(u64, Duration)>> {
        let Some(index) = self.index else {
            if self.wait.is_some() {
                return Err(ApiError::bad("wait needs index: the index of the answer you have".into()));
            }
            return Ok(None);
        };
        let wait = match &self.wait {
            None => Duration::from_secs(300),
            Some(text) => humantime::parse_duration(text)
                .map_err(|e| ApiError::bad(format!("wait={text:?} is not a duration like 30s ({e})")))?,
        };
        Ok(Some((index, wait.min(agent.config().http.max_wait))))
    }

    /// `?format=`, parsed.
    pub fn format(&self) -> ApiResult<Option<ndsr::discovery::Format>> {
        self.format.as_deref().map(parse_format).transpose().map_err(ApiError::bad)
    }
}

/// A node as the API shows it.
#[derive(Serialize)]
pub struct NodeView<'a> {
    #[serde(flatten)]
    pub snapshot: &'a ndsr::Snapshot,
    pub exists: bool,
    pub index: u64,
    pub stale: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_since_ms: Option<u64>,
}

pub fn node_view<'a>(agent: &Agent, versioned: &'a Versioned<Arc<ndsr::Snapshot>>) -> NodeView<'a> {
    node_view_at(versioned, agent.stale_since(&versioned.value.path))
}

/// A node as the API shows it, stale since `since` (`None`: fresh).
pub fn node_view_at(versioned: &Versioned<Arc<ndsr::Snapshot>>, since: Option<SystemTime>) -> NodeView<'_> {
    NodeView {
        snapshot: &versioned.value,
        exists: versioned.value.exists(),
        index: versioned.index,
        stale: since.is_some(),
        stale_since_ms: since.map(millis),
    }
}

/// Headers every read answer carries: its index and staleness.
pub fn read_headers(index: u64, stale: bool) -> [(header::HeaderName, HeaderValue); 3] {
    [
        (header::HeaderName::from_static("x-ndsr-index"), HeaderValue::from(index)),
        (
            header::HeaderName::from_static("x-ndsr-stale"),
            HeaderValue::from_static(if stale { "true" } else { "false" }),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

/// A read answer: `status`, the read headers, and `view` as JSON. A fresh
/// answer's body (`since` is `None`) is made once per value and shared:
/// every blocking query woken by one change answers with the same bytes.
/// A stale one's (its `stale_since_ms` moves) is made for each reader.
pub fn read_answer<T, V: Serialize>(
    status: StatusCode,
    versioned: &Versioned<T>,
    since: Option<SystemTime>,
    view: impl Fn() -> V,
) -> Response {
    let made = |view: V| serde_json::to_vec(&view).ok().map(Bytes::from);
    let body = match since {
        None => versioned.rendered.get_or_init(|| made(view())).clone(),
        Some(_) => made(view()),
    };
    let Some(body) = body else {
        // Not serializable: axum's own answer to that (500).
        return (status, Json(view())).into_response();
    };
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.extend(read_headers(versioned.index, since.is_some()));
    response
}

/// A service listing as the API and dashboard show it.
pub fn service_json(agent: &Agent, versioned: &Versioned<ndsr::discovery::Instances>) -> serde_json::Value {
    service_json_at(versioned, agent.stale_since(&versioned.value.path))
}

/// A service listing as the API shows it, stale since `since` (`None`: fresh).
pub fn service_json_at(
    versioned: &Versioned<ndsr::discovery::Instances>,
    since: Option<SystemTime>,
) -> serde_json::Value {
    let mut body = serde_json::to_value(listing_view(&versioned.value)).unwrap_or_default();
    body["index"] = json!(versioned.index);
    body["stale"] = json!(since.is_some());
    if let Some(since) = since {
        body["stale_since_ms"] = json!(millis(since));
    }
    body
}

/// A registration's status as its reader may see it: the whole check
/// only for the token's holder (`owner`).
pub fn status_for(owner: bool, status: Status) -> Status {
    if owner {
        status.for_owner()
    } else {
        status
    }
}

/// The slots of the requests that hold a connection for long: event
/// streams and blocking queries in progress, at most `[http] max_streams`
/// (never more than half of `max_connections`). Beyond it they are
/// answered 503 `too_many_streams` at once, so that readers, who need no
/// token, cannot take every connection from the health probe, the
/// dashboard and writes.
#[derive(Debug, Default)]
pub struct Streams {
    used: AtomicUsize,
}

/// A slot of [`Streams`], given back when dropped.
#[derive(Debug)]
pub struct StreamSlot(Arc<Streams>);

impl Streams {
    /// A slot, or 503 `too_many_streams` when all are in use.
    pub fn take(self: &Arc<Streams>, agent: &Agent) -> ApiResult<StreamSlot> {
        let limit = agent.config().http.stream_limit();
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| (used < limit).then_some(used + 1))
            .map_err(|_| {
                ApiError::new(
                    ErrorKind::Unavailable,
                    "too_many_streams",
                    format!(
                        "{limit} event streams and blocking queries are in progress, the most the agent \
                         serves at once ([http] max_streams); try again later, or read without ?index="
                    ),
                )
            })?;
        ::metrics::gauge!("ndsr_http_streams_in_use").increment(1.0);
        Ok(StreamSlot(self.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::SeqCst);
        ::metrics::gauge!("ndsr_http_streams_in_use").decrement(1.0);
    }
}

/// The feed's value now, or (for a blocking query `(index, wait)`) once
/// its index passes `index`, or when `wait` is up (then the same value
/// again, as Consul answers). The path is held (in use) meanwhile. A query
/// that has to wait takes a slot of `streams` (or is refused 503 at once).
pub async fn block<T: Clone>(
    agent: &Agent,
    streams: &Arc<Streams>,
    mut rx: Held<T>,
    wait: Option<(u64, Duration)>,
) -> ApiResult<Versioned<T>> {
    if let Some((index, wait)) = wait {
        let passed = |v: &Option<Versioned<T>>| v.as_ref().is_some_and(|v| v.index > index);
        let _slot = if passed(&rx.borrow()) { None } else { Some(streams.take(agent)?) };
        // A little jitter, so that many clients woken together do not come
        // back together (Consul adds up to wait/16).
        let jitter = wait.mul_f64(rand::random::<f64>() / 16.0);
        let passed = rx.wait_for(passed);
        tokio::select! {
            () = agent.cancel.cancelled() => {}
            _ = tokio::time::timeout(wait + jitter, passed) => {}
        }
    }
    let value = rx.borrow().clone();
    value.ok_or_else(|| ApiError::unavailable("no value yet".into()))
}
