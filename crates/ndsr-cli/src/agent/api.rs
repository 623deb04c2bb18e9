//! The HTTP API: routes, errors, the token and read-only checks, and the
//! read and registration handlers. Streams (SSE, blocking queries) are in
//! `events`, the dashboard in `dashboard`, metrics in `metrics`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::{parse_format, RegisterFields};
use super::registrations::{api_check_allowed, Put, Source, Spec, Status};
use super::state::{Agent, Versioned};
use super::{dashboard, events, metrics};
use crate::cmd::discovery::{instance_view, listing_view};

/// An error answer: a status and a JSON body `{"error": what, "code": kind}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: String) -> ApiError {
        ApiError { status, code, message }
    }
    pub fn bad(message: String) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unavailable(message: String) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    pub fn too_many(message: String) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_paths", message)
    }
    fn not_found(message: String) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(json!({"error": self.message, "code": self.code}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ndsr::Error> for ApiError {
    fn from(e: ndsr::Error) -> ApiError {
        use ndsr::Error as E;
        let (status, code) = match &e {
            E::InvalidPath { .. } | E::DataTooLarge { .. } | E::Data { .. } | E::InvalidArgument(_) => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            E::NotAuthorized { .. } => (StatusCode::FORBIDDEN, "not_authorized"),
            E::ReadOnly(_) => (StatusCode::FORBIDDEN, "readonly"),
            E::Conflict { .. } | E::FormatConflict { .. } => (StatusCode::CONFLICT, "conflict"),
            E::NoConnection(_) | E::Closed => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ => (StatusCode::BAD_GATEWAY, "zookeeper"),
        };
        ApiError::new(status, code, e.to_string())
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
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body is larger than the agent takes ([http] max_body_bytes): {}", e.body_text()),
            );
        }
        ApiError::bad(format!("bad body: {}", e.body_text()))
    }
}

/// A JSON body (whatever the Content-Type says: curl's `-d` says a form).
fn json_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let body = body?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("the body is not the JSON expected: {e}")))
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The router, with every route, limit and check.
pub fn router(agent: Arc<Agent>) -> Router {
    let max_body = agent.config().http.max_body_bytes;
    Router::new()
        .route("/v1/nodes/{*path}", get(node))
        .route("/v1/watch/{*path}", get(events::watch))
        .route("/v1/services/{*path}", get(service))
        .route("/v1/pick/{*path}", get(pick))
        .route("/v1/registrations", get(registrations))
        .route(
            "/v1/registrations/{*path}",
            get(registration).put(put_registration).delete(delete_registration),
        )
        .route("/v1/health", get(health))
        .route("/v1/agent", get(dashboard::model_json))
        .route("/v1/dashboard/events", get(dashboard::events))
        .route("/metrics", get(metrics::render))
        .merge(dashboard::assets())
        .fallback(|| async { ApiError::not_found("no such route; see docs/AGENT.md".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method".into(),
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(agent.clone(), guard))
        .layer(middleware::from_fn(metrics::count))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(agent)
}

/// The token and read-only checks, before any handler.
async fn guard(State(agent): State<Arc<Agent>>, request: Request, next: Next) -> Response {
    let config = agent.config();
    let write = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // The health probe and the dashboard's static files never need the
    // token (the dashboard's data does).
    let path = request.uri().path();
    let public = path == "/v1/health" || path == "/" || path.starts_with("/assets/");
    // On loopback, only local names: a web page whose name an attacker
    // points at 127.0.0.1 (DNS rebinding) gets nothing.
    if config.http.listen.ip().is_loopback() {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        if host.is_some_and(|host| !is_loopback_host(host)) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "bad_host",
                "this agent listens on loopback and answers only to a loopback Host (localhost, 127.0.0.1, [::1])"
                    .into(),
            )
            .into_response();
        }
    }
    if write && config.http.readonly {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "readonly",
            "the agent is read-only (--readonly or [http] readonly)".into(),
        )
        .into_response();
    }
    if write || (config.http.read_token && !public) {
        let Some(token) = &config.token else {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "no_token",
                "writes are off: no token is configured ([http] token or token_file)".into(),
            )
            .into_response();
        };
        if !bearer_matches(request.headers(), &token.0) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid `Authorization: Bearer <token>` header is needed".into(),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Is a Host header (with or without a port) a loopback name?
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => match host.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        },
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether the request carries `Bearer <token>`, compared in constant time.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .as_bytes();
    let token = token.as_bytes();
    let differs = given.len() != token.len();
    let mut diff = 0u8;
    for (i, t) in token.iter().enumerate() {
        diff |= t ^ given.get(i).copied().unwrap_or(!t);
    }
    !differs && diff == 0
}

/// The ZooKeeper path of a request path, checked: valid and within the roots.
pub fn zk_path(agent: &Agent, path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    let Path(path) = path?;
    let path = format!("/{path}");
    ndsr::validate_path(&path).map_err(ApiError::from)?;
    if !agent.config().allows(&path) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
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

    fn format(&self) -> ApiResult<Option<ndsr::discovery::Format>> {
        self.format.as_deref().map(parse_format).transpose().map_err(ApiError::bad)
    }
}

pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
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
    let since = agent.stale_since(&versioned.value.path);
    NodeView {
        snapshot: &versioned.value,
        exists: versioned.value.exists(),
        index: versioned.index,
        stale: since.is_some(),
        stale_since_ms: since.map(millis),
    }
}

/// Headers every read answer carries: its index and staleness.
fn read_headers(index: u64, stale: bool) -> [(header::HeaderName, HeaderValue); 3] {
    [
        (header::HeaderName::from_static("x-ndsr-index"), HeaderValue::from(index)),
        (
            header::HeaderName::from_static("x-ndsr-stale"),
            HeaderValue::from_static(if stale { "true" } else { "false" }),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

/// `GET /v1/nodes/<path>`: the snapshot; 404 (with the same body) for a
/// missing node, so a client can block until it appears.
async fn node(
    State(agent): State<Arc<Agent>>,
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
    let versioned = events::block(&agent, rx, wait).await?;
    let view = node_view(&agent, &versioned);
    let status = if view.exists { StatusCode::OK } else { StatusCode::NOT_FOUND };
    Ok((status, read_headers(view.index, view.stale), Json(&view)).into_response())
}

/// `GET /v1/services/<path>?format=`: the decoded instances.
async fn service(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let path = zk_path(&agent, path)?;
    let Query(query) = query?;
    let wait = query.wait(&agent)?;
    let rx = agent.service(&path, query.format()?).await?;
    let versioned = events::block(&agent, rx, wait).await?;
    let body = service_json(&agent, &versioned);
    let stale = body["stale"] == json!(true);
    Ok((read_headers(versioned.index, stale), Json(body)).into_response())
}

/// A service listing as the API and dashboard show it.
pub fn service_json(agent: &Agent, versioned: &Versioned<ndsr::discovery::Instances>) -> serde_json::Value {
    let since = agent.stale_since(&versioned.value.path);
    let mut body = serde_json::to_value(listing_view(&versioned.value)).unwrap_or_default();
    body["index"] = json!(versioned.index);
    body["stale"] = json!(since.is_some());
    if let Some(since) = since {
        body["stale_since_ms"] = json!(millis(since));
    }
    body
}

/// `?strategy=&label=&prefer=&include_draining=&format=` of a pick.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PickQuery {
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
async fn pick(
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
    let picked = selector.pick(&versioned.value.instances).map_err(|none| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_instance", format!("{path}: {none}"))
    })?;
    let body = json!({"path": path, "index": versioned.index, "instance": instance_view(&picked)});
    Ok((read_headers(versioned.index, agent.stale_since(&path).is_some()), Json(body)).into_response())
}

/// Whether the request carries the write token: its reader may see whole
/// checks (command lines, URLs with their secrets).
pub fn is_owner(agent: &Agent, headers: &HeaderMap) -> bool {
    agent.config().token.as_ref().is_some_and(|token| bearer_matches(headers, &token.0))
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

/// `GET /v1/registrations`: the checks whole only for the token's holder.
async fn registrations(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> Response {
    let owner = is_owner(&agent, &headers);
    let statuses: Vec<Status> =
        agent.registrations.statuses().into_iter().map(|s| status_for(owner, s)).collect();
    Json(json!({"registrations": statuses})).into_response()
}

/// `GET /v1/registrations/<path>`: the check whole only for the token's holder.
async fn registration(
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
async fn put_registration(
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
            StatusCode::CONFLICT,
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
async fn delete_registration(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let path = zk_path(&agent, path)?;
    if agent.config().registrations.iter().any(|r| r.path == path) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
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
async fn health(State(agent): State<Arc<Agent>>) -> Response {
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

    #[test]
    fn only_loopback_hosts_are_loopback() {
        for host in [
            "localhost",
            "localhost:8500",
            "127.0.0.1:8500",
            "127.0.0.2",
            "[::1]:8500",
            "[::1]",
            "LOCALHOST.",
            "a.localhost:1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8500",
            "10.0.0.1:8500",
            "localhost.evil.example",
            "[::2]:80",
            "127.0.0.1.evil.example",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_token_must_match_exactly() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            headers
        };
        let token = "0123456789abcdef";
        assert!(bearer_matches(&with("Bearer 0123456789abcdef"), token));
        for wrong in [
            "Bearer 0123456789abcdeF",
            "Bearer 0123456789abcde",
            "Bearer 0123456789abcdef0",
            "0123456789abcdef",
            "Bearer ",
        ] {
            assert!(!bearer_matches(&with(wrong), token), "{wrong}");
        }
        assert!(!bearer_matches(&HeaderMap::new(), token));
    }
}
