//! `/v1/config/<path>`: configuration releases (issue 24) over HTTP. The
//! value with its version (and, with `?release=1`, the release that wrote
//! it), the history, diffs, publishes and rollbacks, through the
//! registry's [`release`](ndsr::release) API.
//!
//! A plain `GET` answers from the agent's cache (no ZooKeeper request, and
//! `?index=&wait=` blocks as on `/v1/nodes`); `?release=1` reads the
//! history, which is every kept entry with its value, so it is asked for,
//! not done on every read.
//!
//! Canaries (issue 25): `GET <path>/canary`, `POST <path>/canary` (see
//! the `canary` module); a plain `GET` of a path whose canary picks this
//! agent answers the canary's value, with `"canary"` saying so.
//!
//! Issue 24's sub-routes are served too: `GET <path>/history` is
//! `<path>?history` and `POST <path>/rollback` (`{"to": N}`) is
//! `<path>?rollback=N`, when `<path>` is a configuration path with
//! releases. Otherwise `.../history` and `.../rollback` are ordinary node
//! paths; under a configuration path with releases, a publish to a node
//! named `history` or `rollback` is refused (rename it).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ndsr::release::{Entry, History, HistoryItem, PublishOptions, Release};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::common::{block, read_headers, status, zk_path, ApiError, ReadQuery, Streams};
use crate::state::{Agent, Versioned};
use crate::views::millis;

/// A refusal of a configuration route: the agent's `{"error", "code"}`
/// answer, with what the client needs to act on it (`current`,
/// `violations`, `available`).
#[derive(Debug)]
pub struct ConfigError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Map<String, Value>,
}

impl ConfigError {
    fn with(status: StatusCode, code: &'static str, message: String, extra: Value) -> ConfigError {
        let extra = match extra {
            Value::Object(extra) => extra,
            _ => Map::new(),
        };
        ConfigError { status, code, message, extra }
    }
}

impl From<ApiError> for ConfigError {
    fn from(e: ApiError) -> ConfigError {
        ConfigError { status: status(e.kind), code: e.code, message: e.message, extra: Map::new() }
    }
}

impl From<ndsr::Error> for ConfigError {
    fn from(e: ndsr::Error) -> ConfigError {
        use ndsr::Error as E;
        let message = e.to_string();
        match e {
            E::VersionConflict { current, .. } => ConfigError::with(
                StatusCode::CONFLICT,
                "version_conflict",
                message,
                json!({ "current": current }),
            ),
            E::Invalid { violations, .. } => ConfigError::with(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                message,
                json!({ "violations": violations }),
            ),
            E::NotInHistory { available, .. } => ConfigError::with(
                StatusCode::NOT_FOUND,
                "not_in_history",
                message,
                json!({ "available": available }),
            ),
            E::SchemaInvalid { .. } => {
                ConfigError::with(StatusCode::CONFLICT, "schema_invalid", message, Value::Null)
            }
            E::NoCanary { .. } => ConfigError::with(StatusCode::NOT_FOUND, "no_canary", message, Value::Null),
            E::NoRelease { .. } => {
                ConfigError::with(StatusCode::CONFLICT, "no_release", message, Value::Null)
            }
            E::Contention { .. } => {
                ConfigError::with(StatusCode::CONFLICT, "contention", message, Value::Null)
            }
            E::OutcomeUnknown { .. } => {
                ConfigError::with(StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown", message, Value::Null)
            }
            e => ApiError::from(e).into(),
        }
    }
}

impl IntoResponse for ConfigError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("error".into(), Value::from(self.message));
        body.insert("code".into(), Value::from(self.code));
        body.extend(self.extra);
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

type ConfigResult<T> = Result<T, ConfigError>;

fn bad(message: String) -> ConfigError {
    ApiError::bad(message).into()
}

/// The query of `GET /v1/config/<path>`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    index: Option<u64>,
    wait: Option<String>,
    /// Also the release that wrote the live value (reads the history).
    release: Option<String>,
    /// The history instead of the value.
    history: Option<String>,
    /// With `history`: only what came after this version.
    since: Option<i32>,
    /// With `history`: each release's value too.
    values: Option<String>,
    /// A diff (`from`, `to`), or with `history` each release's changes.
    diff: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The query of `POST /v1/config/<path>`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostQuery {
    message: Option<String>,
    rollback: Option<i32>,
    /// `POST <path>/rollback?to=N`: the version to roll back to.
    to: Option<i32>,
    /// `POST <path>/canary`: its rule, one of three.
    hosts: Option<String>,
    labels: Option<String>,
    percent: Option<f64>,
    /// `POST <path>/canary?promote` or `?abort`.
    promote: Option<String>,
    abort: Option<String>,
}

/// The body of `POST <path>/rollback` (it may be empty, with `?to=N`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    to: Option<i32>,
    message: Option<String>,
}

/// The parent of `path` when its last segment is `name` (`/a/b/history`
/// and `history`: `/a/b`); `None` for another name or a parent that is the
/// root.
fn sub_route<'p>(path: &'p str, name: &str) -> Option<&'p str> {
    let parent = path.strip_suffix(name)?.strip_suffix('/')?;
    (!parent.is_empty()).then_some(parent)
}

/// The history of `parent` when it is a configuration path with releases
/// (and within the agent's roots), so that `parent/history` and
/// `parent/rollback` are its sub-routes; `None` otherwise: they are
/// ordinary node paths.
async fn with_releases(agent: &Agent, parent: &str) -> ConfigResult<Option<History>> {
    if !agent.config().allows(parent) {
        return Ok(None);
    }
    match agent.registry.history(parent).await {
        Ok(history) if history.releases().next().is_some() => Ok(Some(history)),
        Ok(_) | Err(ndsr::Error::InvalidPath { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A flag of the query: `?name`, `?name=1` or `?name=true` (`0` and
/// `false` turn it off).
fn flag(name: &str, value: &Option<String>) -> ConfigResult<bool> {
    match value.as_deref() {
        None | Some("0" | "false") => Ok(false),
        Some("" | "1" | "true") => Ok(true),
        Some(other) => Err(bad(format!("{name}={other:?}: give {name}, {name}=1 or {name}=0"))),
    }
}

/// A version of a diff: a number, or `live` (also when not given).
fn version_of(name: &str, value: &Option<String>) -> ConfigResult<Option<i32>> {
    match value.as_deref() {
        None | Some("live" | "") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| bad(format!("{name}={text:?} is not a version (a number, or live)"))),
    }
}

/// SHA-256 of `bytes`, in hex (as the library's releases give it).
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A value as the API shows it: its JSON, or its text when it is not JSON.
fn shown(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The value of a cached snapshot: its object as decoded, or (what the
/// original's decoding keeps as `{"string_value": text}`) its text, parsed
/// when it is JSON. `null` for a node without data.
fn cached_value(snapshot: &ndsr::Snapshot) -> Value {
    let Some(data) = &snapshot.data else {
        return Value::Null;
    };
    match data.get("string_value") {
        Some(Value::String(text)) if data.len() == 1 => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
        }
        _ => Value::Object(data.clone()),
    }
}

/// A release as the API shows it (without its value).
fn release_view(entry: &Entry) -> Value {
    json!({
        "entry": entry.name,
        "op": entry.op,
        "version": entry.version,
        "previous_version": entry.previous_version,
        "sha256": entry.sha256,
        "author": entry.author,
        "host": entry.host,
        "time": entry.time,
        "message": entry.message,
        "schema_version": entry.schema_version,
        "rollback_of": entry.rollback_of,
    })
}

/// `GET /v1/config/<path>`: the value and its version; `?release=1` with
/// its release and SHA-256; `?history` the history; `?diff&from=&to=` a
/// diff. 404 when the node does not exist.
pub async fn get(
    State(agent): State<Arc<Agent>>,
    Extension(streams): Extension<Arc<Streams>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> ConfigResult<Response> {
    let path = zk_path(&agent, path)?;
    let Query(query) = query.map_err(ApiError::from)?;
    // The reads of ZooKeeper are boxed: a blocking read's future (one per
    // waiting client) stays small.
    let query = match Box::pin(sub_routes(&agent, &path, query)).await? {
        Ok(answer) => return Ok(answer),
        Err(query) => query,
    };
    match ask(&agent, query)? {
        Ask::History { since, values, diff } => {
            Box::pin(history_answer(&agent, &path, since, values, diff)).await
        }
        Ask::Diff { from, to } => Box::pin(diff_answer(&agent, &path, from, to)).await,
        Ask::Value { wait, release } => {
            let rx = agent.node(&path).await?;
            let versioned = block(&agent, &streams, rx, wait).await?;
            Box::pin(value_with_canary(&agent, &path, &versioned, release)).await
        }
    }
}

/// The answer of a plain `GET` once the value is there: with the canary
/// that picks this agent, if any (not for `?release=1`).
async fn value_with_canary(
    agent: &Arc<Agent>,
    path: &str,
    versioned: &Versioned<Arc<ndsr::Snapshot>>,
    release: bool,
) -> ConfigResult<Response> {
    let live = versioned.value.stat.as_ref().map(|s| s.version);
    let canary = match live {
        Some(version) if !release => canary::applied(agent, path, version).await,
        _ => None,
    };
    value_answer(agent, path, versioned, release, canary).await
}

/// `GET <path>/canary` and `GET <path>/history` when `<path>` is a
/// configuration path with releases: their answer; else the query back.
async fn sub_routes(agent: &Agent, path: &str, query: GetQuery) -> ConfigResult<Result<Response, GetQuery>> {
    if let Some(parent) = sub_route(path, "canary") {
        if with_releases(agent, parent).await?.is_some() {
            let status = agent.registry.canary_status(parent).await?;
            return Ok(Ok(Json(status.view()).into_response()));
        }
    }
    if let Some(parent) = sub_route(path, "history") {
        if let Some(history) = with_releases(agent, parent).await? {
            return history_route(&history, query).map(Ok);
        }
    }
    Ok(Err(query))
}

/// `GET <path>/history[?since=N][&values=1][&diff=1]` on a configuration
/// path with releases: as `<path>?history`.
fn history_route(history: &History, query: GetQuery) -> ConfigResult<Response> {
    let GetQuery { index: None, wait: None, release: None, history: None, from: None, to: None, .. } = query
    else {
        return Err(bad(format!("{}/history takes since, values and diff only", history.path)));
    };
    let (values, diff) = (flag("values", &query.values)?, flag("diff", &query.diff)?);
    Ok(history_view(history, query.since, values, diff))
}

/// What a `GET` asks for.
enum Ask {
    History { since: Option<i32>, values: bool, diff: bool },
    Diff { from: Option<i32>, to: Option<i32> },
    Value { wait: Option<(u64, std::time::Duration)>, release: bool },
}

/// The query of a `GET`, checked: what it asks for.
fn ask(agent: &Agent, query: GetQuery) -> ConfigResult<Ask> {
    let history = flag("history", &query.history)?;
    let diff = flag("diff", &query.diff)?;
    let release = flag("release", &query.release)?;
    let values = flag("values", &query.values)?;
    let blocking = query.index.is_some() || query.wait.is_some();
    let versions = query.from.is_some() || query.to.is_some();
    if history {
        if release || blocking || versions {
            return Err(bad("history takes since, values and diff only".into()));
        }
        return Ok(Ask::History { since: query.since, values, diff });
    }
    if query.since.is_some() || values {
        return Err(bad("since and values are for ?history".into()));
    }
    if diff {
        if release || blocking {
            return Err(bad("diff takes from and to only".into()));
        }
        return Ok(Ask::Diff { from: version_of("from", &query.from)?, to: version_of("to", &query.to)? });
    }
    if versions {
        return Err(bad("from and to are for ?diff".into()));
    }
    let wait = ReadQuery { index: query.index, wait: query.wait, format: None }.wait(agent)?;
    if release && wait.is_some() {
        return Err(bad("release=1 reads ZooKeeper; it cannot block (drop index and wait)".into()));
    }
    Ok(Ask::Value { wait, release })
}

/// The value of `GET /v1/config/<path>` from the cache; with `release`
/// read from ZooKeeper instead: the exact value (its JSON, or its text),
/// its SHA-256, the release that records it (`null` when none does: it
/// was written outside ndsr and not recorded) and the schema.
async fn value_answer(
    agent: &Agent,
    path: &str,
    versioned: &Versioned<Arc<ndsr::Snapshot>>,
    release: bool,
    canary: Option<Arc<ndsr::release::Canary>>,
) -> ConfigResult<Response> {
    let snapshot = &versioned.value;
    let since = agent.stale_since(&snapshot.path);
    let mut body = json!({
        "path": path,
        "value": cached_value(snapshot),
        "version": snapshot.stat.as_ref().map(|s| s.version),
        "index": versioned.index,
        "stale": since.is_some(),
    });
    if let Some(since) = since {
        body["stale_since_ms"] = json!(millis(since));
    }
    if let Some(canary) = canary.filter(|_| snapshot.exists()) {
        // This agent is picked by the path's canary: its value, said so.
        body["value"] = shown(&canary.value);
        body["canary"] = json!({
            "base_version": canary.base_version,
            "revision": canary.revision,
            "sha256": canary.sha256,
            "rule": canary.rule,
        });
    }
    if release {
        let (raw, history, schema) = tokio::join!(
            agent.registry.read_raw(path),
            agent.registry.history(path),
            agent.registry.schema(path)
        );
        let Some((bytes, stat)) = raw? else {
            return Err(ApiError::not_found(format!("{path} does not exist")).into());
        };
        let (history, schema) = (history?, schema?);
        // The live value as ZooKeeper holds it, whoever wrote it; its
        // release when one records this version of this life of the node.
        body["value"] = shown(&bytes);
        body["version"] = json!(stat.version);
        body["sha256"] = json!(sha256_hex(&bytes));
        body["schema_version"] = json!(schema.as_ref().map(|s| s.version));
        body["schema"] = match schema {
            Some(info) => json!({"schema": info.schema, "version": info.version}),
            None => Value::Null,
        };
        let live =
            history.releases().filter(|e| e.version == stat.version && e.node_czxid == stat.czxid).last();
        body["release"] = live.map_or(Value::Null, release_view);
    } else if !snapshot.exists() {
        return Err(ApiError::not_found(format!("{path} does not exist")).into());
    }
    Ok((read_headers(versioned.index, since.is_some()), Json(body)).into_response())
}

/// `GET /v1/config/<path>?diff&from=A&to=B` (`None`: the live value).
async fn diff_answer(
    agent: &Agent,
    path: &str,
    from: Option<i32>,
    to: Option<i32>,
) -> ConfigResult<Response> {
    let changes = agent.registry.config_diff(path, from, to).await?;
    let changes: Vec<Value> = changes.iter().map(change_view).collect();
    Ok(Json(json!({"path": path, "from": from, "to": to, "changes": changes})).into_response())
}

/// A change as the API shows it: its fields and its line (`~ /a: 1 -> 2`).
fn change_view(change: &ndsr::release::Change) -> Value {
    let mut view = serde_json::to_value(change).unwrap_or_default();
    view["text"] = json!(change.to_string());
    view
}

/// What of a history comes after version `since`, in the node's present
/// life: newest first, the releases and gaps past it, tampered entries
/// among them, and a re-creation (before which versions counted another
/// life) ends it.
fn after(items: &[HistoryItem], since: i32) -> &[HistoryItem] {
    let mut start = items.len();
    for (i, item) in items.iter().enumerate().rev() {
        let keep = match item {
            HistoryItem::Release(e) => e.version > since,
            HistoryItem::Gap { to, .. } => *to > since,
            HistoryItem::Tampered { .. } => true,
            HistoryItem::Recreated => {
                start = i;
                break;
            }
        };
        if !keep {
            break;
        }
        start = i;
    }
    &items[start..]
}

/// `GET /v1/config/<path>?history[&since=N][&values=1][&diff=1]`.
async fn history_answer(
    agent: &Agent,
    path: &str,
    since: Option<i32>,
    values: bool,
    diff: bool,
) -> ConfigResult<Response> {
    let history = agent.registry.history(path).await?;
    Ok(history_view(&history, since, values, diff))
}

/// A history as `?history` answers it.
fn history_view(history: &History, since: Option<i32>, values: bool, diff: bool) -> Response {
    let items = match since {
        Some(since) => after(&history.items, since),
        None => &history.items,
    };
    let views: Vec<Value> = items.iter().map(|item| item_view(history, item, values, diff)).collect();
    Json(json!({"path": history.path, "live_version": history.live_version, "items": views})).into_response()
}

/// One history item: as the library serializes it, with its line
/// (`text`), and for a release its value (`values`) and its changes from
/// the release before it (`diff`; `null` when that release is not in the
/// history or versions came between them outside ndsr).
fn item_view(history: &History, item: &HistoryItem, values: bool, diff: bool) -> Value {
    let mut view = serde_json::to_value(item).unwrap_or_default();
    view["text"] = json!(history.describe(item));
    if let HistoryItem::Release(entry) = item {
        if values {
            view["value"] = shown(&entry.value);
        }
        if diff {
            let before = entry.previous_version.and_then(|v| {
                history
                    .releases()
                    .find(|e| e.version == v && e.node_czxid == entry.node_czxid && e.name < entry.name)
            });
            view["changes"] = match before {
                Some(before) => {
                    let changes = ndsr::release::diff(&shown(&before.value), &shown(&entry.value));
                    Value::Array(changes.iter().map(change_view).collect())
                }
                None => Value::Null,
            };
        }
    }
    view
}

mod canary;
mod write;

#[cfg(test)]
use write::if_match;
pub use write::post;

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a four-argument handler returns.
    fn future_size<A, B, C, D, F: std::future::Future>(_: impl FnOnce(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A blocking read's future lives as long as it waits (one per
    /// waiting client): as small as `/v1/nodes`' (1,024 bytes), the reads
    /// of ZooKeeper boxed.
    #[test]
    fn a_waiting_config_read_costs_little_memory() {
        assert!(future_size(get) <= 1024, "get: {} bytes", future_size(get));
    }

    #[test]
    fn if_match_takes_a_version_or_minus_one() {
        for (given, want) in [("3", 3), ("\"7\"", 7), ("-1", -1), (" 0 ", 0)] {
            assert_eq!(if_match(&HeaderValue::from_static(given)).unwrap(), want, "{given}");
        }
        for given in ["-2", "x", "", "*", "1.5"] {
            let e = if_match(&HeaderValue::from_static(given)).unwrap_err();
            assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "bad_request"), "{given}");
        }
    }

    #[test]
    fn sub_routes_are_the_last_segment_under_a_parent() {
        assert_eq!(sub_route("/app/web/history", "history"), Some("/app/web"));
        assert_eq!(sub_route("/app/web/rollback", "rollback"), Some("/app/web"));
        assert_eq!(sub_route("/history", "history"), None, "the root is no configuration path");
        assert_eq!(sub_route("/app/webhistory", "history"), None);
        assert_eq!(sub_route("/app/history/x", "history"), None);
        assert_eq!(sub_route("/app/rollback", "history"), None);
    }

    #[test]
    fn flags_are_present_one_or_true() {
        assert!(!flag("h", &None).unwrap());
        assert!(flag("h", &Some(String::new())).unwrap());
        assert!(flag("h", &Some("1".into())).unwrap());
        assert!(!flag("h", &Some("false".into())).unwrap());
        assert!(flag("h", &Some("yes please".into())).is_err());
    }

    #[test]
    fn library_refusals_carry_what_the_client_needs() {
        let conflict: ConfigError =
            ndsr::Error::VersionConflict { path: "/c".into(), expected: 1, current: Some(4) }.into();
        assert_eq!(
            (conflict.status, conflict.code, &conflict.extra["current"]),
            (StatusCode::CONFLICT, "version_conflict", &json!(4))
        );
        let missing: ConfigError =
            ndsr::Error::NotInHistory { path: "/c".into(), version: 9, available: vec![0, 1] }.into();
        assert_eq!((missing.status, &missing.extra["available"]), (StatusCode::NOT_FOUND, &json!([0, 1])));
        let data: ConfigError = ndsr::Error::Data { path: "/c".into(), reason: "x".into() }.into();
        assert_eq!((data.status, data.code), (StatusCode::BAD_REQUEST, "bad_request"));
    }

    #[test]
    fn cached_values_are_objects_or_their_text() {
        let snapshot = |bytes: &[u8]| ndsr::Snapshot {
            path: Arc::from("/c"),
            data: ndsr::codec::decode(bytes),
            stat: None,
            children: vec![],
            freshness: ndsr::Freshness::Fresh,
        };
        assert_eq!(cached_value(&snapshot(br#"{"a": 1}"#)), json!({"a": 1}));
        assert_eq!(cached_value(&snapshot(b"[1, 2]")), json!([1, 2]));
        assert_eq!(cached_value(&snapshot(b"plain")), json!("plain"));
        assert_eq!(cached_value(&snapshot(b"")), Value::Null);
    }
}
